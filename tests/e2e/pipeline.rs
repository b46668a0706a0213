//! The whole pipeline against the simulator's `incident` scenario: `herald run` as a separate
//! process watches the simulator over HTTP (through a kubeconfig, the same code path as a real
//! cluster) and posts to a local webhook receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Receiver, herald, start_ready, wait_for};

fn config(kubeconfig: &std::path::Path, hook: &str) -> String {
    format!(
        r#"
cluster: e2e
kubeconfig: {kubeconfig}
listen: 127.0.0.1:0
classifier:
  node_not_ready:
    grace: 2s
  oom_killed:
    resolve_after: 60s
  eviction_storm:
    threshold: 5
    window: 2m
    quiet: 4s
  update_interval: 1s
channels:
  hook:
    type: webhook
    url: {{ value: "{hook}" }}
subscriptions:
  - name: oncall
    channels: [hook]
    send_resolved: true
"#,
        kubeconfig = kubeconfig.display()
    )
}

/// Incident id -> (rule, transitions seen, last notification body).
fn incidents(bodies: &[Value]) -> BTreeMap<String, (String, Vec<String>, Value)> {
    let mut out: BTreeMap<String, (String, Vec<String>, Value)> = BTreeMap::new();
    for b in bodies {
        let inc = &b["change"]["incident"];
        let id = inc["id"].as_str().expect("incident id").to_string();
        let rule = inc["rule"].as_str().expect("rule").to_string();
        let transition = b["transition"].as_str().expect("transition").to_string();
        let e = out
            .entry(id)
            .or_insert_with(|| (rule, Vec::new(), Value::Null));
        e.1.push(transition);
        e.2 = b.clone();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_scenario_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sim = herald_sim::Simulator::new(herald_sim::SimConfig {
        token: "e2e-token".into(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let (receiver, hook) = Receiver::start().await;
    let cfg_path = dir.path().join("herald.yaml");
    std::fs::write(&cfg_path, config(&kubeconfig, &hook)).unwrap();

    let check = herald(&data, &["validate", "--config", cfg_path.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "validate: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Ready once every watcher finished its initial sync.
    let (svc, api) = start_ready(&data, &cfg_path, dir.path()).await;
    let client = reqwest::Client::new();

    // The watcher's metrics are exported, per resource.
    let metrics = client.get(format!("{api}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for resource in ["pods", "nodes", "events"] {
        assert!(
            metrics.contains(&format!(
                "herald_watch_api_requests_total{{resource=\"{resource}\",verb=\"watch\"}}"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "herald_watch_last_event_age_seconds{{resource=\"{resource}\"}}"
            )),
            "{metrics}"
        );
    }

    let scenario = herald_sim::builtin_scenario("incident").unwrap();
    let report = sim.run_scenario(&scenario, 2.0).await.unwrap();
    let (oom_ns, oom_pod, oom_container) = report
        .oom_killed()
        .into_iter()
        .next()
        .expect("scenario OOM-kills a container");
    let not_ready = report
        .not_ready_nodes()
        .into_iter()
        .next()
        .expect("scenario takes a node down");
    let evicted: BTreeSet<String> = report.evicted_pods().into_iter().collect();
    assert!(
        evicted.len() >= 10,
        "scenario evicts a dozen pods: {evicted:?}"
    );

    // Wait until the node recovered and the storm went quiet, both announced.
    let seen = wait_for("resolutions", Duration::from_secs(60), || {
        let inc = incidents(&receiver.bodies());
        let resolved = |rule: &str| {
            inc.values()
                .any(|(r, t, _)| r == rule && t.iter().any(|t| t == "resolved"))
        };
        (resolved("NodeNotReady") && resolved("EvictionStorm")).then_some(inc)
    })
    .await;

    // `herald history` works while the service holds the store (through its API).
    let out = herald(
        &data,
        &[
            "history",
            "pod",
            &format!("{oom_ns}/{oom_pod}"),
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "history: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let oom_record = history["records"].as_array().unwrap().iter().find(|r| {
        r["body"]["change"]["change"] == "container_terminated"
            && r["body"]["change"]["reason"] == "OOMKilled"
            && r["body"]["change"]["container"] == oom_container.as_str()
    });
    assert!(
        oom_record.is_some(),
        "history shows the OOMKilled transition: {history:#}"
    );
    let hist_incidents = history["incidents"].as_array().unwrap();
    assert!(
        hist_incidents
            .iter()
            .any(|i| i["incident"]["rule"] == "OOMKilled"
                && i["notifications"]
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n["delivered"] == true))),
        "history shows the OOMKilled incident and that the webhook was told: {history:#}"
    );
    let out = herald(&data, &["incidents", "-o", "json"]);
    assert!(
        out.status.success(),
        "incidents: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = svc.stop();
    assert!(status.success(), "herald run exit status {status:?}");

    // Exactly one incident per failure, none from the noise.
    let by_rule = |rule: &str| {
        seen.iter()
            .filter(|(_, (r, _, _))| r == rule)
            .collect::<Vec<_>>()
    };
    let rules: BTreeSet<&str> = seen.values().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(
        rules,
        BTreeSet::from(["NodeNotReady", "OOMKilled", "EvictionStorm"]),
        "only the three failures alert: {seen:#?}"
    );

    let nn = by_rule("NodeNotReady");
    assert_eq!(nn.len(), 1, "one NodeNotReady incident: {nn:#?}");
    let (_, (_, transitions, last)) = nn[0];
    assert_eq!(transitions.first().map(String::as_str), Some("opened"));
    assert_eq!(transitions.last().map(String::as_str), Some("resolved"));
    assert_eq!(
        last["change"]["incident"]["subject"]["name"],
        not_ready.as_str()
    );

    let oom = by_rule("OOMKilled");
    assert_eq!(oom.len(), 1, "one OOMKilled incident: {oom:#?}");
    let inc = &oom[0].1.2["change"]["incident"];
    assert_eq!(inc["subject"]["name"], oom_pod.as_str());
    assert_eq!(inc["subject"]["namespace"], oom_ns.as_str());
    assert_eq!(inc["labels"]["container"], oom_container.as_str());

    let storm = by_rule("EvictionStorm");
    assert_eq!(storm.len(), 1, "one EvictionStorm incident: {storm:#?}");
    let listed: BTreeSet<String> = storm[0].1.2["change"]["incident"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["namespace"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, evicted, "the storm lists every evicted pod");

    // Every notification carries its idempotency key and none was delivered twice.
    let keys: Vec<String> = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no notification delivered twice");
    server.shutdown().await;
}
