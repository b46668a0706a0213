//! Restarts of `herald run` against the simulator: a restart within the server's history
//! resumes every watch from the stored checkpoint with no LIST at all; a restart after the
//! history was compacted (410 Expired) re-syncs once, and the compact state stored with the
//! checkpoint lets it report what happened while it was down exactly once, and nothing that
//! it had reported before.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use herald_sim::{
    EventSpec, ObjectRef as EventObjectRef, Resource as SimResource, SimConfig, Simulator,
};
use serde_json::{Value, json};

use crate::harness::{Receiver, herald, start_ready, wait_for};

const OOM_NS: &str = "shop";
const OOM_POD: &str = "cart-6b8f9d7c54-k2x9p";

fn config(kubeconfig: &Path, hook: &str) -> String {
    format!(
        r#"
cluster: e2e
kubeconfig: {kubeconfig}
listen: 127.0.0.1:0
channels:
  hook:
    type: webhook
    url: {{ value: "{hook}" }}
subscriptions:
  - name: oncall
    channels: [hook]
"#,
        kubeconfig = kubeconfig.display()
    )
}

/// The kubelet's view of an OOM kill of the pod's first container: restartCount + 1 and
/// `lastState.terminated` with reason `OOMKilled` and exit code 137, running again.
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
    cs["containerID"] =
        json!("containerd://0f5e1c2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100");
}

/// The kubelet's image-pulled Event on the OOM-killed pod (it repeats at each restart).
fn pulled() -> EventSpec {
    EventSpec::recorder(
        EventObjectRef::pod(OOM_NS, OOM_POD),
        "Normal",
        "Pulled",
        "Container image \"registry.example.com/shop/cart:1.4.2\" already present on machine",
        "kubelet",
        Some("node-a"),
    )
    .container("cart")
}

fn list_requests(sim: &Simulator) -> u64 {
    let st = sim.stats();
    ["pods", "nodes", "events"]
        .iter()
        .map(|r| st.count("list", r))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_without_listing_and_report_the_downtime_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sim = Simulator::new(SimConfig {
        token: "e2e-token".into(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let scenario = herald_sim::builtin_scenario("incident").unwrap();
    sim.seed(&scenario).unwrap();
    // Events before the first start (Normal ones, which never alert): a pull seen twice
    // (count 2) and a start.
    let pull = pulled();
    sim.record_event(&pull).unwrap();
    sim.record_event(&pull).unwrap();
    sim.record_event(&EventSpec::recorder(
        EventObjectRef::pod(OOM_NS, OOM_POD),
        "Normal",
        "Started",
        "Started container cart",
        "kubelet",
        Some("node-a"),
    ))
    .unwrap();
    let (receiver, hook) = Receiver::start().await;
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, config(&kubeconfig, &hook)).unwrap();

    // 1. First start: an initial sync from the watch cache, then stop.
    let (svc, _) = start_ready(&data, &cfg, dir.path()).await;
    assert!(svc.stop().success());
    let first = sim.stats();
    assert_eq!(
        first.reads_total.storage, 0,
        "nothing read from etcd: {first:#?}"
    );

    // 2. Restart within the history window: every watch resumes, zero LIST requests.
    sim.reset_stats();
    let (svc, _) = start_ready(&data, &cfg, dir.path()).await;
    assert!(svc.stop().success());
    let resumed = sim.stats();
    assert_eq!(
        list_requests(&sim),
        0,
        "resumed without listing: {resumed:#?}"
    );
    for r in ["pods", "nodes", "events"] {
        assert!(resumed.count("watch", r) >= 1, "{r} watched: {resumed:#?}");
    }

    // 3. While herald is down: a container is OOM-killed, and the history is compacted, so
    //    the stored resourceVersions are too old (410 Expired) when herald comes back.
    sim.modify(SimResource::Pods, Some(OOM_NS), OOM_POD, true, oom_kill)
        .unwrap();
    // ... and the pull repeats once (count 3).
    sim.record_event(&pull).unwrap();
    sim.compact();
    sim.reset_stats();
    let (svc, _) = start_ready(&data, &cfg, dir.path()).await;
    let opened = wait_for(
        "the OOMKilled notification",
        Duration::from_secs(30),
        || {
            let bodies = receiver.bodies();
            let oom: Vec<Value> = bodies
                .into_iter()
                .filter(|b| b["change"]["incident"]["rule"] == "OOMKilled")
                .collect();
            (!oom.is_empty()).then_some(oom)
        },
    )
    .await;
    // Give a duplicate the time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = herald(
        &data,
        &[
            "history",
            "pod",
            &format!("{OOM_NS}/{OOM_POD}"),
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = svc.stderr();
    assert!(svc.stop().success());
    // The Event state was rebuilt from the Event records (it is not stored separately): the
    // re-list after 410 recorded no Event a second time.
    assert!(
        stderr.contains("Event state rebuilt from the Event records"),
        "{stderr}"
    );
    // Stopped with SIGTERM before: the object index was written at shutdown, so this start
    // had no records to index again.
    assert!(stderr.contains("store opened"), "{stderr}");
    assert!(!stderr.contains("unclean stop read again"), "{stderr}");
    {
        let store = herald_store::Store::open(&data).unwrap();
        let records = store
            .records_between(&herald_store::TimeQuery::all())
            .unwrap();
        let mut seen = BTreeSet::new();
        let mut pulls = Vec::new();
        for r in &records {
            if let herald_core::RecordBody::Event(e) = &r.body {
                assert!(
                    seen.insert((e.uid.clone(), e.count)),
                    "Event {} count {} recorded twice: {records:#?}",
                    e.name,
                    e.count
                );
                if e.reason == "Pulled" {
                    pulls.push((e.count, e.count_delta));
                }
            }
        }
        assert_eq!(seen.len(), 3, "{records:#?}");
        // Count 2 at the first sync, then the one repeat during the downtime, once.
        assert_eq!(pulls, [(2, 2), (3, 1)], "{records:#?}");
    }
    let after = sim.stats();
    assert_eq!(
        after.reads_total.storage, 0,
        "the re-sync used the watch cache: {after:#?}"
    );

    assert_eq!(
        opened.len(),
        1,
        "one notification for the downtime's OOM kill: {opened:#?}"
    );
    assert_eq!(opened[0]["change"]["incident"]["subject"]["name"], OOM_POD);
    let all: Vec<Value> = receiver.bodies();
    let rules: BTreeSet<String> = all
        .iter()
        .map(|b| {
            b["change"]["incident"]["rule"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(rules, BTreeSet::from(["OOMKilled".to_string()]), "{all:#?}");

    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = history["records"].as_array().unwrap();
    let ooms = records
        .iter()
        .filter(|r| {
            r["body"]["change"]["change"] == "container_terminated"
                && r["body"]["change"]["reason"] == "OOMKilled"
        })
        .count();
    assert_eq!(ooms, 1, "the OOM kill recorded once: {history:#}");
    let created = records
        .iter()
        .filter(|r| r["body"]["change"]["change"] == "created")
        .count();
    assert_eq!(
        created, 0,
        "a pod known before the restart is not new: {history:#}"
    );
    assert!(stderr.contains("compact state restored"), "{stderr}");
    server.shutdown().await;
}

/// A data directory that moves to another cluster (here: a new simulator, whose
/// resourceVersions start again and whose objects are others) must not resume from the old
/// cluster's checkpoints or diff against its compact state: herald notices the other
/// `kube-system` uid, says so, and syncs from scratch; the history stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_on_the_same_data_directory_syncs_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scenario = herald_sim::builtin_scenario("incident").unwrap();
    let (_receiver, hook) = Receiver::start().await;
    let mut sims = Vec::new();
    for name in ["a", "b"] {
        let sim = Simulator::new(SimConfig {
            token: "e2e-token".into(),
            ..Default::default()
        });
        sim.seed(&scenario).unwrap();
        let server = sim.serve().await.unwrap();
        let kubeconfig = dir.path().join(format!("kubeconfig-{name}"));
        server.write_kubeconfig(&kubeconfig).unwrap();
        let cfg = dir.path().join(format!("herald-{name}.yaml"));
        std::fs::write(&cfg, config(&kubeconfig, &hook)).unwrap();
        sims.push((sim, server, cfg));
    }
    let (sim_a, _, cfg_a) = &sims[0];
    let (sim_b, _, cfg_b) = &sims[1];
    assert_ne!(
        sim_a.namespace_uid("kube-system"),
        sim_b.namespace_uid("kube-system")
    );

    // Cluster A, twice: the second start resumes (same cluster, no LIST).
    let (svc, _) = start_ready(&data, cfg_a, dir.path()).await;
    let first = svc.stderr();
    assert!(svc.stop().success());
    assert!(first.contains("cluster identity recorded"), "{first}");
    sim_a.reset_stats();
    let (svc, _) = start_ready(&data, cfg_a, dir.path()).await;
    let again = svc.stderr();
    assert!(svc.stop().success());
    assert_eq!(list_requests(sim_a), 0, "{:#?}", sim_a.stats());
    assert!(again.contains("compact state restored"), "{again}");
    assert!(!again.contains("another cluster"), "{again}");

    // The same data directory against cluster B: checkpoints and state of A are dropped.
    let (svc, _) = start_ready(&data, cfg_b, dir.path()).await;
    let moved = svc.stderr();
    assert!(svc.stop().success());
    assert!(
        moved.contains("the data directory was used with another cluster"),
        "{moved}"
    );
    assert!(
        moved.contains(&sim_a.namespace_uid("kube-system")),
        "names the previous cluster: {moved}"
    );
    assert!(!moved.contains("compact state restored"), "{moved}");
    let b = sim_b.stats();
    for r in ["pods", "nodes", "events"] {
        assert!(b.count("watch", r) >= 1, "{r} watched on B: {b:#?}");
    }
    assert_eq!(
        b.reads_total.storage, 0,
        "B synced from its watch cache: {b:#?}"
    );

    // B again: now B's checkpoints stand.
    sim_b.reset_stats();
    let (svc, _) = start_ready(&data, cfg_b, dir.path()).await;
    let b_again = svc.stderr();
    assert!(svc.stop().success());
    assert_eq!(list_requests(sim_b), 0, "{:#?}", sim_b.stats());
    assert!(!b_again.contains("another cluster"), "{b_again}");

    // The history of both clusters is kept.
    let out = herald(&data, &["history", "node", "node-b", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, server, _) in sims {
        server.shutdown().await;
    }
}
