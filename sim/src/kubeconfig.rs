//! kubeconfig writer: a minimal YAML kubeconfig pointing kubectl / kube-rs at the
//! simulator (loopback server, generated CA when TLS is on, bearer token, context
//! `herald-sim`).

use std::path::Path;

use crate::error::SimError;

/// Name of the context (and user) written into the kubeconfig.
pub const CONTEXT_NAME: &str = "herald-sim";

/// Render a kubeconfig for `server` (e.g. `https://127.0.0.1:6443`), trusting `ca_pem` if given.
pub fn render(server: &str, token: &str, cluster_name: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    // JSON string literals are valid YAML scalars and escape everything needed.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{ca}    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    namespace: default\n    user: {ctx}\n  name: {ctx}\ncurrent-context: {ctx}\npreferences: {{}}\nusers:\n- name: {ctx}\n  user:\n    token: {token}\n",
        server = q(server),
        cluster = q(cluster_name),
        ctx = CONTEXT_NAME,
        token = q(token),
    )
}

/// Write kubeconfig text (from [`render`]) to `path` (creating parent directories).
pub fn write(path: &Path, kubeconfig: &str) -> Result<(), SimError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, kubeconfig)?;
    tracing::info!(path = %path.display(), "wrote kubeconfig");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_expected_fields() {
        let y = render("http://127.0.0.1:1234", "s3cr\"t", "sim", None);
        assert!(!y.contains("certificate-authority-data"));
        let y2 = render("https://127.0.0.1:1234", "t", "sim", Some("PEM"));
        assert!(y2.contains("certificate-authority-data: UEVN"));
        assert!(y.contains("server: \"http://127.0.0.1:1234\""));
        assert!(y.contains("current-context: herald-sim"));
        assert!(y.contains("token: \"s3cr\\\"t\""));
        assert!(y.contains("name: \"sim\""));
    }
}
