//! Bad input: a malformed config, an unknown channel in a subscription and an unreachable API
//! server each give a clear one-line error (file, line and column for config) and a non-zero
//! exit, never a panic.

use std::time::{Duration, Instant};

use crate::harness::herald;

fn assert_clean_failure(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "no panic: {stderr}");
    stderr
}

#[test]
fn malformed_config_reports_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    // Line 3: `listen` is not an address; line 5: a mapping where a list is expected.
    std::fs::write(
        &cfg,
        "cluster: prod\nchannels:\n  c: {type: console}\nsubscriptions:\n  name: oops\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    let stderr = assert_clean_failure(&out);
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("error: {}:5:", cfg.display())),
        "{stderr}"
    );

    // Broken YAML syntax.
    std::fs::write(&cfg, "cluster: prod\nchannels: [unclosed\n").unwrap();
    let out = herald(dir.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    let stderr = assert_clean_failure(&out);
    assert!(stderr.contains(&format!("{}:", cfg.display())), "{stderr}");
    assert!(
        stderr.lines().next().unwrap().matches(':').count() >= 3,
        "line and column: {stderr}"
    );

    // `herald run` gives the same error and exits non-zero.
    let out = herald(dir.path(), &["run", "--config", cfg.to_str().unwrap()]);
    assert_clean_failure(&out);
}

#[test]
fn several_errors_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("multi.yaml");
    std::fs::write(
        &cfg,
        "cluster: prod\nwatch:\n  pods: maybe\nchannels:\n  c: {type: console}\nsubscriptions:\n  - name: a\n    channels: [nope]\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    let stderr = assert_clean_failure(&out);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 2, "both problems reported: {stderr}");
    assert!(errors[0].contains(":3:"), "{stderr}");
    assert!(
        errors[1].contains(":8:") && errors[1].contains("nope"),
        "{stderr}"
    );
}

#[test]
fn unknown_channel_in_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(
        &cfg,
        "cluster: prod\nchannels:\n  ops:\n    type: console\nsubscriptions:\n  - name: sre\n    channels: [ops, pager]\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    let stderr = assert_clean_failure(&out);
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("error: {}:7:", cfg.display())),
        "{stderr}"
    );
    assert!(
        first.contains("pager"),
        "names the unknown channel: {stderr}"
    );
}

#[test]
fn unreachable_api_server() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, "cluster: prod\nlisten: 127.0.0.1:0\n").unwrap();
    let started = Instant::now();
    let out = herald(
        &dir.path().join("data"),
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    let stderr = assert_clean_failure(&out);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "fails promptly"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one-line error: {stderr}");
    assert!(
        errors[0].contains("cannot reach the Kubernetes API server"),
        "{stderr}"
    );
    assert!(
        errors[0].contains(&format!("127.0.0.1:{port}")),
        "names the server: {stderr}"
    );
}

#[test]
fn missing_kubeconfig_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, "cluster: prod\nlisten: 127.0.0.1:0\n").unwrap();
    let out = herald(
        &dir.path().join("data"),
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
    );
    let stderr = assert_clean_failure(&out);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}
