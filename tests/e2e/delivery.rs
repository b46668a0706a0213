//! The durable outbox end to end: kill -9 of `herald run` in the middle of a slow delivery,
//! then a restart, delivers every pending notification and re-sends none that was delivered;
//! a receiver that keeps failing turns a notification into a dead letter that `herald
//! deliveries retry` sends again while the service runs; a silence added while the service
//! runs suppresses a matching notification, which is recorded as silenced.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use herald_sim::{Resource as SimResource, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::harness::{herald, start_ready, wait_for};

const OOM_NS: &str = "shop";
const OOM_POD: &str = "cart-6b8f9d7c54-k2x9p";

/// A webhook receiver that takes `delay_ms` to answer and answers `status`; it records each
/// request's idempotency key when it starts and again when its answer is ready.
#[derive(Clone, Default)]
struct SlowReceiver {
    delay_ms: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    started: Arc<Mutex<Vec<String>>>,
    answered: Arc<Mutex<Vec<String>>>,
}

impl SlowReceiver {
    async fn start(delay_ms: u64) -> (SlowReceiver, String) {
        let rx = SlowReceiver::default();
        rx.delay_ms.store(delay_ms, Ordering::SeqCst);
        rx.status.store(200, Ordering::SeqCst);
        async fn hook(State(rx): State<SlowReceiver>, headers: HeaderMap) -> StatusCode {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            rx.started.lock().unwrap().push(key.clone());
            let delay = rx.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let status = StatusCode::from_u16(rx.status.load(Ordering::SeqCst)).unwrap();
            if status.is_success() {
                rx.answered.lock().unwrap().push(key);
            }
            status
        }
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, format!("http://{addr}/hook"))
    }

    fn started(&self) -> Vec<String> {
        self.started.lock().unwrap().clone()
    }

    fn answered(&self) -> Vec<String> {
        self.answered.lock().unwrap().clone()
    }
}

fn count(keys: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k.clone()).or_insert(0) += 1;
    }
    m
}

/// `subs` subscriptions, all matching everything, on one webhook channel: one incident gives
/// `subs` notifications queued on that channel.
fn config(kubeconfig: &Path, hook: &str, subs: usize, delivery: &str) -> String {
    let mut s = format!(
        r#"
cluster: e2e
kubeconfig: {kubeconfig}
listen: 127.0.0.1:0
{delivery}
channels:
  hook:
    type: webhook
    url: {{ value: "{hook}" }}
    timeout: 30s
subscriptions:
"#,
        kubeconfig = kubeconfig.display()
    );
    for i in 0..subs {
        s.push_str(&format!("  - name: team-{i}\n    channels: [hook]\n"));
        if i == 0 {
            s.push_str("    who: \"Team zero (pager rota)\"\n");
        }
    }
    s
}

fn oom_kill(pod: &mut Value) {
    let now = jiff::Timestamp::now().to_string();
    let cs = &mut pod["status"]["containerStatuses"][0];
    let restarts = cs["restartCount"].as_u64().unwrap_or(0);
    let started = cs["state"]["running"]["startedAt"].clone();
    let id = cs["containerID"].clone();
    cs["restartCount"] = json!(restarts + 1);
    cs["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": started, "finishedAt": now, "containerID": id}});
    cs["state"] = json!({"running": {"startedAt": now}});
}

async fn simulator(dir: &Path) -> (Simulator, herald_sim::SimServer, std::path::PathBuf) {
    let sim = Simulator::new(SimConfig {
        token: "e2e-token".into(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    sim.seed(&herald_sim::builtin_scenario("incident").unwrap())
        .unwrap();
    (sim, server, kubeconfig)
}

fn json_out(data: &Path, args: &[&str]) -> Value {
    let out = herald(data, args);
    assert!(
        out.status.success(),
        "herald {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_send_then_restart_delivers_each_pending_once_and_resends_nothing() {
    const SUBS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (sim, server, kubeconfig) = simulator(dir.path()).await;
    let (rx, hook) = SlowReceiver::start(1500).await;
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, config(&kubeconfig, &hook, SUBS, "")).unwrap();

    let (mut svc, _) = start_ready(&data, &cfg, dir.path()).await;
    sim.modify(SimResource::Pods, Some(OOM_NS), OOM_POD, true, oom_kill)
        .unwrap();
    // Two answered, the third in flight (the receiver takes 1.5 s per request).
    wait_for("two answered deliveries", Duration::from_secs(30), || {
        (rx.answered().len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let in_flight = rx.started().len();
    assert!(
        in_flight >= 3,
        "a third request is in flight: {:?}",
        rx.started()
    );
    svc.child.kill().unwrap(); // SIGKILL
    let _ = svc.child.wait();
    let answered_before = rx.answered();

    // The records are all there: the kill left their object index entries pending, and
    // opening the store reads the blocks after its watermark again.
    let out = herald(
        &data,
        &[
            "-v",
            "history",
            "pod",
            &format!("{OOM_NS}/{OOM_POD}"),
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("object index of records appended before an unclean stop read again"),
        "{stderr}"
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ooms = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["body"]["change"]["reason"] == "OOMKilled")
        .count();
    assert_eq!(
        ooms, 1,
        "the OOM kill in the history after kill -9: {history:#}"
    );

    // What the store knew at the kill: every notification exists; the answered ones that it
    // recorded are settled, the rest pending.
    let pending: Value = json_out(&data, &["deliveries", "--pending", "-o", "json"]);
    let pending_ids: Vec<String> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        pending_ids.len() >= SUBS - answered_before.len() && pending_ids.len() < SUBS,
        "pending after kill -9: {pending_ids:?}, answered: {answered_before:?}"
    );

    // Restart with a fast receiver: everything pending goes out.
    rx.delay_ms.store(0, Ordering::SeqCst);
    let (svc, _) = start_ready(&data, &cfg, dir.path()).await;
    wait_for(
        "every notification delivered",
        Duration::from_secs(30),
        || (count(&rx.answered()).len() >= SUBS).then_some(()),
    )
    .await;
    // Time for a duplicate to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stderr = svc.stderr();
    assert!(svc.stop().success());

    let answered = count(&rx.answered());
    assert_eq!(
        answered.len(),
        SUBS,
        "one key per subscription: {answered:?}"
    );
    for id in &answered_before {
        if !pending_ids.contains(id) {
            assert_eq!(
                answered[id], 1,
                "{id} was delivered before the kill and must not be re-sent"
            );
        }
    }
    for id in &pending_ids {
        assert!(answered.contains_key(id), "{id} was pending and got lost");
    }
    // At-least-once: only a request in flight at the kill may arrive twice (same key).
    let twice: Vec<_> = answered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.len() <= 1, "duplicates: {twice:?}");
    assert!(twice.iter().all(|(_, n)| **n == 2), "{twice:?}");
    assert!(
        stderr.contains("pending notifications restored into the outbox"),
        "{stderr}"
    );
    let left: Value = json_out(&data, &["deliveries", "-o", "json"]);
    assert_eq!(left, json!([]), "nothing pending, no dead letters");

    // The history shows who was told, when, and that it worked.
    let history = json_out(
        &data,
        &[
            "history",
            "pod",
            &format!("{OOM_NS}/{OOM_POD}"),
            "-o",
            "json",
        ],
    );
    let notes = history["incidents"][0]["notifications"].as_array().unwrap();
    assert_eq!(notes.len(), SUBS);
    assert!(
        notes
            .iter()
            .all(|n| n["status"] == "delivered" && n["delivered"] == true)
    );
    let who: std::collections::BTreeSet<&str> =
        notes.iter().map(|n| n["who"].as_str().unwrap()).collect();
    assert!(
        who.contains("Team zero (pager rota)") && who.contains("team-1"),
        "{who:?}"
    );
    let table = herald(&data, &["history", "pod", &format!("{OOM_NS}/{OOM_POD}")]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("Team zero (pager rota) (team-0)") && table.contains("(delivered)"),
        "{table}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_retried_through_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (sim, server, kubeconfig) = simulator(dir.path()).await;
    let (rx, hook) = SlowReceiver::start(0).await;
    rx.status.store(500, Ordering::SeqCst);
    let cfg = dir.path().join("herald.yaml");
    let delivery = "delivery:\n  max_attempts: 3\n  initial_backoff: 100ms\n  max_backoff: 200ms";
    std::fs::write(&cfg, config(&kubeconfig, &hook, 1, delivery)).unwrap();
    let (svc, _) = start_ready(&data, &cfg, dir.path()).await;
    sim.modify(SimResource::Pods, Some(OOM_NS), OOM_POD, true, oom_kill)
        .unwrap();
    let dead = wait_for("a dead letter", Duration::from_secs(30), || {
        let v = json_out(&data, &["deliveries", "--dead", "-o", "json"]);
        (v.as_array().is_some_and(|a| a.len() == 1)).then_some(v)
    })
    .await;
    assert_eq!(rx.started().len(), 3, "three attempts");
    let id = dead[0]["id"].as_str().unwrap().to_string();
    assert_eq!(dead[0]["status"], "dead");
    assert_eq!(dead[0]["attempts"].as_array().unwrap().len(), 3);
    let table = herald(&data, &["deliveries", "--dead"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("HTTP 500"));

    // The receiver recovers; retry while the service runs (through its API).
    rx.status.store(200, Ordering::SeqCst);
    let out = herald(&data, &["deliveries", "retry", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the retried delivery", Duration::from_secs(20), || {
        rx.answered().contains(&id).then_some(())
    })
    .await;
    let again = herald(&data, &["deliveries", "retry", &id]);
    assert!(
        !again.status.success(),
        "a delivered notification is not retried"
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("not a dead letter"));
    let left = json_out(&data, &["deliveries", "-o", "json"]);
    assert_eq!(left, json!([]));
    assert!(svc.stop().success());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_added_while_running_suppresses_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (sim, server, kubeconfig) = simulator(dir.path()).await;
    let (rx, hook) = SlowReceiver::start(0).await;
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, config(&kubeconfig, &hook, 1, "")).unwrap();
    let (svc, api) = start_ready(&data, &cfg, dir.path()).await;

    let bad = herald(
        &data,
        &["silence", "add", "--match", "namespace", "--for", "1h"],
    );
    assert!(!bad.status.success());
    let added = json_out(
        &data,
        &[
            "silence",
            "add",
            "--match",
            "namespace=sh*",
            "--match",
            "rule=OOMKilled",
            "--for",
            "2h",
            "--comment",
            "load test",
            "-o",
            "json",
        ],
    );
    let sid = added["id"].as_str().unwrap().to_string();
    let list = json_out(&data, &["silence", "list", "-o", "json"]);
    assert_eq!(list[0]["id"], sid.as_str());
    // The service re-reads silences every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.modify(SimResource::Pods, Some(OOM_NS), OOM_POD, true, oom_kill)
        .unwrap();
    let history = wait_for("the silenced notification", Duration::from_secs(30), || {
        let h = json_out(
            &data,
            &[
                "history",
                "pod",
                &format!("{OOM_NS}/{OOM_POD}"),
                "-o",
                "json",
            ],
        );
        let silenced = h["incidents"][0]["notifications"][0]["status"] == "silenced";
        silenced.then_some(h)
    })
    .await;
    let n = &history["incidents"][0]["notifications"][0];
    assert_eq!(n["settled_by"], sid.as_str());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.started().is_empty(), "nothing sent: {:?}", rx.started());
    let metrics = reqwest::get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"herald_notifications_settled_total{channel="hook",outcome="silenced"} 1"#),
        "{metrics}"
    );

    let out = herald(&data, &["silence", "expire", &sid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let active = json_out(&data, &["silence", "list", "-o", "json"]);
    assert_eq!(active, json!([]));
    let all = json_out(&data, &["silence", "list", "--all", "-o", "json"]);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert!(svc.stop().success());
    server.shutdown().await;
}

#[test]
fn validate_reports_every_subscription_and_delivery_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(
        &cfg,
        r#"channels:
  hook:
    type: webhook
    url: { value: "http://127.0.0.1:1/hook" }
delivery:
  max_attempts: 0
subscriptions:
  - name: a
    who: ""
    channels: [hook]
    group_wait: 30s
    match:
      labels: { app: "[x" }
      nodes: ["[y"]
    quiet_hours:
      timezone: Mars/Base
      windows: [{ days: [funday], start: "9", end: "17:00" }]
"#,
    )
    .unwrap();
    let out = herald(dir.path(), &["validate", "-c", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "herald.yaml:6:3: delivery.max_attempts: must be at least 1",
        "herald.yaml:8:11: subscriptions[0] (\"a\").group_wait: group_wait needs group_by",
        "herald.yaml:9:10: subscriptions[0] (\"a\").who: who must not be empty",
        "herald.yaml:13:22: subscriptions[0] (\"a\").match.labels.app: invalid glob",
        "herald.yaml:14:15: subscriptions[0] (\"a\").match.nodes[0]: invalid glob",
        "herald.yaml:16:17: subscriptions[0] (\"a\").quiet_hours.timezone: unknown time zone \"Mars/Base\"",
        "herald.yaml:17:26: subscriptions[0] (\"a\").quiet_hours.windows[0].days[0]: invalid day \"funday\"",
        "herald.yaml:17:42: subscriptions[0] (\"a\").quiet_hours.windows[0].start: invalid time \"9\"",
        "8 problem(s) found",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
}
