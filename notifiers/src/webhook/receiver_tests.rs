//! The webhook channel and the dispatcher against a local axum receiver on 127.0.0.1:0 that
//! checks the request shape and answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router as AxumRouter;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use herald_core::{DeliveryOutcome, Notification};

use super::*;
use crate::channel::{Channel, Channels};
use crate::dispatch::{Dispatcher, RetryPolicy};
use crate::testutil::{RecordingSleeper, notification};

/// What the receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: serde_json::Value,
}

#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Response>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(
    State(r): State<Receiver>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    r.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    r.script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| StatusCode::OK.into_response())
}

/// Starts a receiver answering `script` in order (then 200); returns its base URL.
async fn receiver(script: Vec<Response>) -> (String, Receiver) {
    let r = Receiver {
        script: Arc::new(Mutex::new(script.into())),
        ..Receiver::default()
    };
    let app = AxumRouter::new()
        .route("/{*path}", any(handle))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), r)
}

fn channel(url: &str) -> WebhookChannel {
    let yaml = format!(
        "url: {{ value: '{url}/hooks/s3cr3t-path' }}\nheaders:\n  X-Team: sre\n  Authorization: {{ value: 'Bearer t0k3n' }}\ntimeout: 2s"
    );
    let cfg: WebhookConfig = serde_saphyr::from_str(&yaml).unwrap();
    WebhookChannel::new("ops-webhook", &cfg).unwrap()
}

fn dispatcher() -> (Dispatcher, Arc<RecordingSleeper>) {
    let sleeper = Arc::new(RecordingSleeper::default());
    let d = Dispatcher::new(RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    })
    .with_sleeper(sleeper.clone());
    (d, sleeper)
}

fn channels(ch: WebhookChannel) -> Channels {
    Channels::from_channels([Arc::new(ch) as Arc<dyn Channel>])
}

fn assert_no_secrets(text: &str) {
    for secret in ["s3cr3t-path", "t0k3n"] {
        assert!(!text.contains(secret), "secret {secret:?} leaked in {text}");
    }
}

#[tokio::test]
async fn posts_the_notification_as_json_with_idempotency_key() {
    let (url, r) = receiver(vec![]).await;
    let ch = channel(&url);
    let n = notification("ops-webhook");
    assert_eq!(
        ch.send(&n).await,
        DeliveryOutcome::Delivered { status: Some(200) }
    );
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path, "/hooks/s3cr3t-path");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["idempotency-key"], n.id.as_str());
    assert_eq!(s.headers["x-team"], "sre");
    assert_eq!(s.headers["authorization"], "Bearer t0k3n");
    assert!(
        s.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("kube-herald/")
    );
    // The body is the Notification itself, incident change and rendered message included.
    assert_eq!(s.body["id"], n.id.as_str());
    assert_eq!(s.body["transition"], "opened");
    assert_eq!(s.body["severity"], "critical");
    assert_eq!(s.body["subscription"], "sre");
    assert_eq!(s.body["channel"], "ops-webhook");
    assert_eq!(s.body["change"]["incident"]["rule"], "NodeNotReady");
    assert_eq!(s.body["change"]["incident"]["subject"]["name"], "node-b");
    assert_eq!(s.body["message"]["title"], "[CRITICAL] NodeNotReady");
    let back: Notification = serde_json::from_value(s.body.clone()).unwrap();
    assert_eq!(back, n);
}

#[tokio::test]
async fn server_error_is_retried_then_delivered() {
    let (url, r) = receiver(vec![
        (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
    ])
    .await;
    let (d, sleeper) = dispatcher();
    let n = notification("ops-webhook");
    let attempts = d.deliver(&channels(channel(&url)), &n).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0].outcome,
        DeliveryOutcome::Failed {
            error: "HTTP 500 Internal Server Error: boom".into(),
            retry_after_secs: None
        }
    );
    assert_eq!(
        attempts[1].outcome,
        DeliveryOutcome::Delivered { status: Some(200) }
    );
    assert_eq!((attempts[0].attempt, attempts[1].attempt), (1, 2));
    assert!(
        attempts
            .iter()
            .all(|a| a.notification_id == n.id && a.channel == "ops-webhook")
    );
    assert_eq!(sleeper.waits(), [Duration::from_secs(1)]);
    // Same idempotency key on both attempts.
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].headers["idempotency-key"],
        seen[1].headers["idempotency-key"]
    );
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let (url, r) = receiver(vec![
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
    ])
    .await;
    let (d, sleeper) = dispatcher();
    let attempts = d
        .deliver(&channels(channel(&url)), &notification("ops-webhook"))
        .await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].outcome,
        DeliveryOutcome::Failed {
            error: "HTTP 429 Too Many Requests: slow down".into(),
            retry_after_secs: Some(1)
        }
    );
    assert!(attempts[1].outcome.is_delivered());
    assert_eq!(sleeper.waits(), [Duration::from_secs(1)]);
    assert_eq!(r.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn retry_after_is_waited_for_real_with_the_tokio_sleeper() {
    let (url, _r) = receiver(vec![
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
    ])
    .await;
    let d = Dispatcher::new(RetryPolicy::default());
    let started = std::time::Instant::now();
    let attempts = d
        .deliver(&channels(channel(&url)), &notification("ops-webhook"))
        .await;
    assert!(attempts[1].outcome.is_delivered());
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn client_error_is_permanent_and_not_retried() {
    let (url, r) = receiver(vec![
        (StatusCode::BAD_REQUEST, "missing field `foo`").into_response(),
    ])
    .await;
    let (d, sleeper) = dispatcher();
    let attempts = d
        .deliver(&channels(channel(&url)), &notification("ops-webhook"))
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].outcome,
        DeliveryOutcome::Dead {
            error: "HTTP 400 Bad Request: missing field `foo`".into()
        }
    );
    assert!(sleeper.waits().is_empty());
    assert_eq!(r.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retryable_and_hides_the_url() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ch = channel(&format!("http://127.0.0.1:{port}"));
    let out = ch.send(&notification("ops-webhook")).await;
    let DeliveryOutcome::Failed { error, .. } = &out else {
        panic!("expected a retryable failure, got {out:?}");
    };
    assert!(error.starts_with("cannot connect"), "{error}");
    assert_no_secrets(error);
    assert_no_secrets(&format!("{ch:?}"));
}

#[tokio::test]
async fn timeout_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and never answer.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cfg: WebhookConfig = serde_saphyr::from_str(&format!(
        "url: {{ value: 'http://{addr}/hooks/s3cr3t-path' }}\ntimeout: 200ms"
    ))
    .unwrap();
    let ch = WebhookChannel::new("w", &cfg).unwrap();
    let out = ch.send(&notification("w")).await;
    let DeliveryOutcome::Failed { error, .. } = &out else {
        panic!("expected a retryable failure, got {out:?}");
    };
    assert!(error.starts_with("timed out after 200ms"), "{error}");
    assert_no_secrets(error);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (url, r) = receiver(vec![
        (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:9/elsewhere")],
        )
            .into_response(),
    ])
    .await;
    let out = channel(&url).send(&notification("ops-webhook")).await;
    let DeliveryOutcome::Dead { error } = out else {
        panic!("expected a permanent failure");
    };
    assert!(
        error.contains("302") && error.contains("not followed"),
        "{error}"
    );
    assert_eq!(r.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_echoed_by_the_receiver_are_scrubbed() {
    let (url, _r) = receiver(vec![
        (
            StatusCode::UNAUTHORIZED,
            "bad token Bearer t0k3n for /hooks/s3cr3t-path",
        )
            .into_response(),
    ])
    .await;
    let out = channel(&url).send(&notification("ops-webhook")).await;
    let text = format!("{out:?}");
    assert_no_secrets(&text);
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn templated_body_is_substituted_then_serialized() {
    let (url, r) = receiver(vec![]).await;
    let yaml = format!(
        "url: {{ value: '{url}/hooks/t' }}\nbody:\n  text: '{{title}}'\n  detail: 'rule={{rule}} sev={{severity}} {{unknown braces}}'\n  tags: ['{{cluster}}', 42]\n  nested: {{ id: '{{id}}', msg: '{{message}}' }}"
    );
    let cfg: WebhookConfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(cfg.problems(), vec![]);
    let ch = WebhookChannel::new("templated", &cfg).unwrap();
    let mut n = notification("templated");
    n.message.body = "he said \"}{title}\" \\ done".into();
    assert!(ch.send(&n).await.is_delivered());
    let seen = r.seen.lock().unwrap().clone();
    let b = &seen[0].body;
    assert_eq!(b["text"], n.message.title);
    assert_eq!(
        b["detail"],
        "rule=NodeNotReady sev=critical {unknown braces}"
    );
    assert_eq!(b["tags"], serde_json::json!(["prod", 42]));
    assert_eq!(b["nested"]["id"], n.id);
    // A message that looks like JSON or a placeholder stays literal.
    assert_eq!(b["nested"]["msg"], "he said \"}{title}\" \\ done");
}

#[test]
fn templated_body_rejects_unknown_placeholders() {
    let cfg: WebhookConfig =
        serde_saphyr::from_str("url: { value: 'http://x/' }\nbody: { a: '{titel}' }").unwrap();
    let p = cfg.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "body");
    assert!(
        p[0].1.contains("{titel}") && p[0].1.contains("title"),
        "{p:?}"
    );
}
