//! Building the Kubernetes client and checking the connection at start-up.
//!
//! The configuration comes from, in this order: an explicit kubeconfig path (`--kubeconfig` or
//! the config file's `kubeconfig`), `$KUBECONFIG` (a path list, merged as kubectl does),
//! `~/.kube/config`, and the in-cluster service account. Every failure is one clear line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::error::{WatchError, error_chain, one_line};

/// How long [`check_connection`] waits for the API server.
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// A Kubernetes client and the API server it talks to.
#[derive(Clone)]
pub struct ClusterClient {
    /// The kube-rs client.
    pub client: kube::Client,
    /// The API server's URL, as configured (for messages).
    pub server: String,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Builds a client from `kubeconfig` (when given), else `$KUBECONFIG`, else `~/.kube/config`,
/// else the in-cluster configuration. `context` selects a kubeconfig context (the current
/// context when `None`; ignored in-cluster).
pub async fn client_from(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<ClusterClient, WatchError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = if let Some(path) = kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(&path_desc(path), e))?;
        from_kubeconfig(kc, &options, &path_desc(path)).await?
    } else if let Some(kc) =
        Kubeconfig::from_env().map_err(|e| kubeconfig_error(&kubeconfig_env_desc(), e))?
    {
        from_kubeconfig(kc, &options, &kubeconfig_env_desc()).await?
    } else if let Some(home) = default_kubeconfig().filter(|p| p.exists()) {
        let kc =
            Kubeconfig::read_from(&home).map_err(|e| kubeconfig_error(&path_desc(&home), e))?;
        from_kubeconfig(kc, &options, &path_desc(&home)).await?
    } else {
        if let Some(ctx) = context {
            tracing::warn!(
                context = ctx,
                "no kubeconfig found; ignoring the context and using the in-cluster configuration"
            );
        }
        kube::Config::incluster().map_err(|e| WatchError::NoConfiguration {
            home_config: default_kubeconfig()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.kube/config".to_string()),
            in_cluster: error_chain(&e),
        })?
    };
    tracing::debug!(server = %config.cluster_url, namespace = %config.default_namespace, "kubernetes client configured");
    let server = config.cluster_url.to_string();
    // Retries are the watcher's: jittered, counted, and honouring Retry-After. kube-rs's
    // default layer would retry 429/503/504 on its own, starting at 5 ms.
    let mut config = config;
    config.default_retry = false;
    let client = kube::Client::try_from(config).map_err(|e| WatchError::Client(error_chain(&e)))?;
    Ok(ClusterClient { client, server })
}

/// Asks the API server for its version (`GET /version`), so that an unreachable or
/// misconfigured server is reported once, clearly, at start-up. Returns the server's
/// `gitVersion` (e.g. `v1.34.1`).
pub async fn check_connection(cluster: &ClusterClient) -> Result<String, WatchError> {
    let connect = |message: String| WatchError::Connect {
        server: cluster.server.clone(),
        message,
    };
    match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, cluster.client.apiserver_version()).await {
        Err(_) => Err(connect(format!(
            "GET /version: no answer within {}s",
            CONNECT_CHECK_TIMEOUT.as_secs()
        ))),
        Ok(Err(kube::Error::Api(status))) => Err(connect(format!(
            "GET /version: HTTP {} {}: {}",
            status.code,
            status.reason,
            one_line(&status.message)
        ))),
        Ok(Err(e)) => Err(connect(format!("GET /version: {}", error_chain(&e)))),
        Ok(Ok(info)) => Ok(info.git_version),
    }
}

/// The cluster's identity: the uid of its `kube-system` namespace, which is made when the
/// cluster is and lives as long as it does (the usual choice of cluster id, as in
/// `kubectl get ns kube-system -o jsonpath='{.metadata.uid}'`). A data directory remembers it
/// with its watch checkpoints, so that pointing herald at another cluster does not resume
/// from resourceVersions that mean nothing there.
///
/// `None` when the server does not say: `get` on that namespace not allowed (403), no such
/// namespace (404), or any other failure (each logged as a warning). The service then keeps
/// its checkpoints, as it cannot tell clusters apart.
pub async fn cluster_identity(cluster: &ClusterClient) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client.clone());
    // resourceVersion=0: served from the watch cache, not a quorum read from etcd.
    let get = async {
        match api
            .get_with("kube-system", &kube::api::GetParams::any())
            .await
        {
            Ok(ns) => Ok(Some(ns)),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    };
    match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, get).await {
        Ok(Ok(Some(ns))) => {
            let uid = ns.metadata.uid.filter(|u| !u.is_empty());
            if uid.is_none() {
                tracing::warn!(server = %cluster.server, "namespace kube-system has no uid: cannot tell this cluster from another");
            }
            uid
        }
        Ok(Ok(None)) => {
            tracing::warn!(server = %cluster.server, "no namespace kube-system: cannot tell this cluster from another");
            None
        }
        Ok(Err(kube::Error::Api(status))) => {
            tracing::warn!(
                server = %cluster.server,
                code = status.code,
                reason = %status.reason,
                message = %one_line(&status.message),
                "cannot read namespace kube-system (grant get on it, see docs/configuration.md): cannot tell this cluster from another"
            );
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(server = %cluster.server, error = %error_chain(&e), "cannot read namespace kube-system: cannot tell this cluster from another");
            None
        }
        Err(_) => {
            tracing::warn!(server = %cluster.server, "GET namespace kube-system: no answer: cannot tell this cluster from another");
            None
        }
    }
}

async fn from_kubeconfig(
    kc: Kubeconfig,
    options: &KubeConfigOptions,
    desc: &str,
) -> Result<kube::Config, WatchError> {
    kube::Config::from_custom_kubeconfig(kc, options)
        .await
        .map_err(|e| kubeconfig_error(desc, e))
}

fn path_desc(path: &Path) -> String {
    path.display().to_string()
}

fn kubeconfig_env_desc() -> String {
    format!(
        "$KUBECONFIG ({})",
        std::env::var_os("KUBECONFIG")
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

fn default_kubeconfig() -> Option<PathBuf> {
    std::env::home_dir().map(|h| h.join(".kube").join("config"))
}

/// Maps a kube-rs kubeconfig error to a one-line [`WatchError`].
fn kubeconfig_error(desc: &str, e: KubeconfigError) -> WatchError {
    match e {
        KubeconfigError::ReadConfig(io, path) => WatchError::ReadKubeconfig {
            path,
            message: io.to_string(),
        },
        KubeconfigError::LoadContext(ctx) => WatchError::InvalidKubeconfig {
            source_desc: desc.to_string(),
            message: format!("context {ctx:?} not found"),
        },
        KubeconfigError::LoadClusterOfContext(cluster) => WatchError::InvalidKubeconfig {
            source_desc: desc.to_string(),
            message: format!("cluster {cluster:?} of the context not found"),
        },
        KubeconfigError::CurrentContextNotSet => WatchError::InvalidKubeconfig {
            source_desc: desc.to_string(),
            message: "no current-context is set and no context was given".to_string(),
        },
        other => WatchError::InvalidKubeconfig {
            source_desc: desc.to_string(),
            message: error_chain(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_kubeconfig_is_one_clear_line() {
        let Err(err) = client_from(Some(Path::new("/nonexistent/kubeconfig")), None).await else {
            panic!("expected an error");
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot read kubeconfig /nonexistent/kubeconfig: "),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[tokio::test]
    async fn unknown_context_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: ctx\n",
        )
        .unwrap();
        let Err(err) = client_from(Some(&path), Some("other")).await else {
            panic!("expected an error");
        };
        assert!(
            err.to_string().contains("context \"other\" not found"),
            "{err}"
        );
        assert!(client_from(Some(&path), None).await.is_ok());
    }

    #[tokio::test]
    async fn unreachable_server_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        // Port 1 on loopback: nothing listens there.
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: ctx\n",
        )
        .unwrap();
        let client = client_from(Some(&path), None).await.unwrap();
        let err = check_connection(&client).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "cannot reach the Kubernetes API server at http://127.0.0.1:1/: GET /version: "
            ),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
