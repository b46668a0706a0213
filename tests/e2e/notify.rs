//! `herald notify test CHANNEL -c CONFIG` against a local receiver: the sample message goes
//! through the real channel (Slack here, with a per-channel template override), the outcome is
//! printed, the exit status follows it, and the webhook's token is never printed.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::harness::herald_bin;

#[derive(Clone, Default)]
struct SlackReceiver {
    got: Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
    status: Arc<Mutex<u16>>,
}

async fn slack(
    State(rx): State<SlackReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    rx.got.lock().unwrap().push((headers, v));
    let status = *rx.status.lock().unwrap();
    (
        StatusCode::from_u16(status).unwrap(),
        if status == 200 { "ok" } else { "no_service" },
    )
}

async fn start(status: u16) -> (SlackReceiver, String) {
    let rx = SlackReceiver {
        status: Arc::new(Mutex::new(status)),
        ..SlackReceiver::default()
    };
    let app = Router::new()
        .route("/services/T01/B02/{token}", post(slack))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        rx,
        format!("http://{addr}/services/T01/B02/sl4ck-T0KEN-e2e"),
    )
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("herald.yaml");
    std::fs::write(
        &cfg,
        r#"cluster: e2e
channels:
  ops-slack:
    type: slack
    url: { env: HERALD_E2E_SLACK_URL }
  ops-mail:
    type: email
    host: smtp.example.invalid
    from: herald@example.invalid
    to: [ops@example.invalid]
templates:
  channels:
    ops-slack:
      slack.body: { inline: "custom body for {{ incident.rule }} on {{ subject }}" }
"#,
    )
    .unwrap();
    cfg
}

/// Runs `herald notify test CHANNEL -c CFG` with the Slack URL in the environment (when
/// given), off the async runtime so the receiver keeps serving.
async fn notify_test(
    dir: &std::path::Path,
    cfg: &std::path::Path,
    url: Option<&str>,
    channel: &str,
) -> std::process::Output {
    let (dir, cfg, url, channel) = (
        dir.to_path_buf(),
        cfg.to_path_buf(),
        url.map(str::to_string),
        channel.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(herald_bin());
        cmd.arg("--data-dir")
            .arg(dir.join("data"))
            .args(["notify", "test", &channel, "-c"])
            .arg(&cfg)
            .env_remove("HERALD_E2E_SLACK_URL")
            .env_remove("KUBECONFIG");
        if let Some(url) = url {
            cmd.env("HERALD_E2E_SLACK_URL", url);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn notify_test_sends_a_sample_through_the_real_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = start(200).await;
    let cfg = write_config(dir.path());
    let out = notify_test(dir.path(), &cfg, Some(&url), "ops-slack").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("ops-slack: delivered (200) via slack"),
        "{stdout}"
    );
    assert!(!stdout.contains("sl4ck-T0KEN") && !stderr.contains("sl4ck-T0KEN"));

    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert!(
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k.starts_with("notify-test/ops-slack/"))
    );
    assert!(
        body["text"].as_str().unwrap().contains("HeraldNotifyTest"),
        "{body}"
    );
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        "custom body for HeraldNotifyTest on node/node-sample-1"
    );
}

#[tokio::test]
async fn notify_test_reports_failures_and_unknown_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = start(503).await;
    let cfg = write_config(dir.path());
    let out = notify_test(dir.path(), &cfg, Some(&url), "ops-slack").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("ops-slack: failed, retryable"), "{stdout}");
    assert!(stdout.contains("503"), "{stdout}");
    assert!(!stdout.contains("sl4ck-T0KEN"), "{stdout}");
    assert_eq!(rx.got.lock().unwrap().len(), 1);

    let out = notify_test(dir.path(), &cfg, Some(&url), "pager").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no channel \"pager\"") && stderr.contains("ops-mail, ops-slack"),
        "{stderr}"
    );

    // The config is validated first: an unset secret is named by its variable.
    let out = notify_test(dir.path(), &cfg, None, "ops-slack").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("HERALD_E2E_SLACK_URL"), "{stderr}");
    assert_eq!(rx.got.lock().unwrap().len(), 1);
}

/// `herald validate` reports channel and template problems together, each with file, line and
/// column, and never prints a secret.
#[test]
fn validate_reports_channel_and_template_problems_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.tera"),
        "ok line\n{{ incident.rule | nosuchfilter }}\n",
    )
    .unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(
        &cfg,
        r#"cluster: e2e
channels:
  ops-slack:
    type: slack
    url: { value: "not a url T0P-SECRET" }
  ops-mail:
    type: email
    host: smtp.example.invalid
    from: "not an address"
    to: []
  ops-ding:
    type: dingtalk
    url: { value: "https://oapi.dingtalk.com/robot/send?no_token=1" }
templates:
  channels:
    ops-slack:
      slack.body: { file: broken.tera }
    nowhere:
      text.body: { inline: "x" }
"#,
    )
    .unwrap();
    let out = std::process::Command::new(herald_bin())
        .args(["validate", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let c = cfg.display().to_string();
    for want in [
        format!("{c}:5:5: channels.ops-slack.url"),
        format!("{c}:9:5: channels.ops-mail.from"),
        format!("{c}:10:5: channels.ops-mail.to"),
        format!("{c}:13:5: channels.ops-ding.url"),
        "broken.tera:2:".to_string(),
        "channel ops-slack: slack.body".to_string(),
        "unknown channel \"nowhere\"".to_string(),
    ] {
        assert!(stderr.contains(&want), "{want:?} missing in\n{stderr}");
    }
    assert!(!stderr.contains("T0P-SECRET"), "{stderr}");
}
