//! The watcher's error type, [`WatchError`], and helpers that turn kube-rs errors into clear
//! one-line messages (start-up errors are printed to operators as they are).

use std::path::PathBuf;

/// Errors of the watcher crate. Every message is a single line.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A kubeconfig file could not be read.
    #[error("cannot read kubeconfig {}: {message}", path.display())]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// Why (for example "No such file or directory (os error 2)").
        message: String,
    },
    /// A kubeconfig was read but cannot be used (bad YAML, unknown context, missing server, ...).
    #[error("invalid kubeconfig {source_desc}: {message}")]
    InvalidKubeconfig {
        /// Where it came from: a path, or `$KUBECONFIG (...)`.
        source_desc: String,
        /// What is wrong.
        message: String,
    },
    /// No kubeconfig was found and the process does not run inside a cluster.
    #[error(
        "no Kubernetes configuration: no --kubeconfig, $KUBECONFIG is unset, {home_config} does not exist, and not running in a cluster ({in_cluster})"
    )]
    NoConfiguration {
        /// The default kubeconfig path that was tried.
        home_config: String,
        /// Why the in-cluster configuration failed.
        in_cluster: String,
    },
    /// The Kubernetes client could not be built from the configuration.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
    /// The API server could not be reached or did not answer as expected.
    #[error("cannot reach the Kubernetes API server at {server}: {message}")]
    Connect {
        /// The server's URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The API server answered a request with an error status.
    #[error("{method} {path}: HTTP {code} {reason}: {message}")]
    Api {
        /// HTTP method.
        method: &'static str,
        /// Request path (without the query).
        path: String,
        /// HTTP status code (or the `code` of an in-stream `Status`).
        code: u16,
        /// The Status `reason` (`Expired`, `Forbidden`, ...).
        reason: String,
        /// The Status `message`.
        message: String,
        /// How long the server asked the client to wait (`Retry-After`, or the Status's
        /// `details.retryAfterSeconds`), for 429 and 5xx answers.
        retry_after: Option<std::time::Duration>,
    },
    /// A request failed below HTTP (connection refused, reset, TLS, timeout, ...).
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Request path (without the query).
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A response body could not be decoded (a list that is not JSON, a truncated stream, ...).
    #[error("{path}: cannot decode the response: {message}")]
    Decode {
        /// Request path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A watcher task panicked or was cancelled.
    #[error("watcher task for {resource} failed: {message}")]
    Task {
        /// The resource whose task failed.
        resource: String,
        /// The join error.
        message: String,
    },
}

impl WatchError {
    /// The HTTP (or in-stream Status) code, for [`WatchError::Api`].
    pub fn code(&self) -> Option<u16> {
        match self {
            WatchError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a `410 Gone`/`Expired` answer: the resourceVersion is too old and the
    /// resource must be listed again.
    pub fn is_expired(&self) -> bool {
        self.code() == Some(410)
    }

    /// Whether retrying cannot help without a change of the request (a bad request, an unknown
    /// resource). Used to fail fast before a resource's initial sync.
    pub fn is_permanent(&self) -> bool {
        matches!(self.code(), Some(400 | 404))
    }

    /// Whether the server refused the credentials (401) or the permission (403): retried
    /// slowly, since an operator may fix the token or the RBAC while herald runs.
    pub fn is_denied(&self) -> bool {
        matches!(self.code(), Some(401 | 403))
    }

    /// The wait the server asked for, when it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            WatchError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps a kube-rs error of a request to [`WatchError::Api`] or [`WatchError::Transport`].
    pub(crate) fn from_kube(method: &'static str, path: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => WatchError::Api {
                method,
                path: path.to_string(),
                code: status.code,
                reason: status.reason.clone(),
                message: one_line(&status.message),
                retry_after: None,
            },
            other => WatchError::Transport {
                method,
                path: path.to_string(),
                message: error_chain(&other),
            },
        }
    }
}

/// Collapses whitespace runs (including newlines) so a message fits on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error and its sources joined with `": "`, on one line, skipping a source whose text is
/// already part of the message (kube-rs and hyper often repeat the inner error).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = one_line(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let text = one_line(&s.to_string());
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = WatchError::ReadKubeconfig {
            path: PathBuf::from("/x"),
            message: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot read kubeconfig /x: No such file or directory (os error 2)"
        );
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }

    #[test]
    fn classifies_codes() {
        let e = WatchError::Api {
            method: "GET",
            path: "/api/v1/pods".into(),
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version".into(),
            retry_after: None,
        };
        assert!(e.is_expired() && !e.is_permanent());
        assert_eq!(
            e.to_string(),
            "GET /api/v1/pods: HTTP 410 Expired: too old resource version"
        );
    }
}
