//! Churn: the configured mix after a bounded number of steps (never timing), what each
//! kind of change does to the objects, aggregation of repeated events, event TTL, and
//! the async runner stopping at its step budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{WatchReader, fixed_now, fixture, keys, start};
use herald_sim::{ChurnKind, ChurnMix, ChurnSpec, Resource, ScaleSpec, SimConfig, Simulator};
use serde_json::Value;

fn populated(nodes: usize, pods: usize) -> Simulator {
    let sim = Simulator::new(SimConfig {
        history_limit: 100_000,
        ..SimConfig::default()
    });
    sim.populate(&ScaleSpec {
        nodes,
        pods,
        namespaces: 5,
        seed: 4,
        now: Some(fixed_now()),
    })
    .unwrap();
    sim
}

fn by_key(sim: &Simulator, r: Resource) -> HashMap<String, Value> {
    sim.list(r, None)
        .into_iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                o,
            )
        })
        .collect()
}

#[test]
fn mix_after_bounded_steps_matches_the_weights() {
    let sim = populated(20, 600);
    let nodes_before = by_key(&sim, Resource::Nodes);
    let pods_before = by_key(&sim, Resource::Pods);
    let mut churner = sim.churner(&ChurnSpec {
        seed: 9,
        event_ttl: None,
        ..ChurnSpec::default()
    });
    const STEPS: u64 = 2000;
    for _ in 0..STEPS {
        churner.step().unwrap();
    }
    let r = churner.report().clone();
    assert_eq!(r.steps, STEPS);
    let share = |n: u64| n as f64 / STEPS as f64;
    // Default weights 20/30/10/35/5; skipped steps (completed Job pods) are few.
    assert!(share(r.skipped) < 0.08, "{r:?}");
    let near = |n: u64, want: f64, tol: f64| (share(n) - want).abs() <= tol;
    assert!(near(r.container_restarts, 0.20, 0.04), "{r:?}");
    assert!(near(r.readiness_flips, 0.30, 0.05), "{r:?}");
    assert!(near(r.pods_replaced, 0.10, 0.04), "{r:?}");
    assert!(near(r.event_steps, 0.35, 0.05), "{r:?}");
    assert!(near(r.node_heartbeats, 0.05, 0.025), "{r:?}");
    assert_eq!(
        r.container_restarts
            + r.readiness_flips
            + r.pods_replaced
            + r.event_steps
            + r.node_heartbeats
            + r.skipped,
        STEPS
    );
    // Repeated events were aggregated into count increments, like client-go's recorder.
    assert!(
        r.events_aggregated > 0 && r.events_created > 0 && r.warnings > 0,
        "{r:?}"
    );
    let events = sim.list(Resource::Events, None);
    assert_eq!(events.len() as u64, r.events_created);
    // Occurrences: `count` for recorder events, `series.count` for events.k8s.io ones (which
    // aggregate into `series`, as client-go's events broadcaster does).
    let occurrences = |e: &Value| {
        e["count"]
            .as_i64()
            .or_else(|| e["series"]["count"].as_i64())
            .unwrap_or(1)
    };
    let total: i64 = events.iter().map(occurrences).sum();
    assert_eq!(total as u64, r.events_created + r.events_aggregated);
    let repeated = events
        .iter()
        .find(|e| e["count"].as_i64().unwrap_or(1) > 1)
        .expect("an aggregated recorder event");
    assert!(repeated["lastTimestamp"].as_str() >= repeated["firstTimestamp"].as_str());

    // Replacements keep the pod count; replaced pods got new names.
    let pods_after = by_key(&sim, Resource::Pods);
    assert_eq!(pods_after.len(), pods_before.len());
    let new: Vec<&Value> = pods_after
        .iter()
        .filter(|(k, _)| !pods_before.contains_key(*k))
        .map(|(_, v)| v)
        .collect();
    assert!(!new.is_empty());
    for p in &new {
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["startTime"], p["metadata"]["creationTimestamp"]);
        let name = p["metadata"]["name"].as_str().unwrap();
        let generate = p["metadata"]["generateName"].as_str().unwrap_or("");
        assert!(name.starts_with(generate));
        // The new pod's service-account volume is its own, and mounted under that name.
        let sa = p["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .find(|n| n.starts_with("kube-api-access-"))
            .unwrap();
        assert!(
            p["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == sa)
        );
    }

    // Restarts: restartCount up, lastState.terminated like the kubelet's.
    let restarted = pods_after.values().find(|p| {
        let key = format!(
            "{}/{}",
            p["metadata"]["namespace"].as_str().unwrap(),
            p["metadata"]["name"].as_str().unwrap()
        );
        pods_before.get(&key).is_some_and(|old| {
            old["status"]["containerStatuses"]
                .as_array()
                .unwrap()
                .iter()
                .zip(p["status"]["containerStatuses"].as_array().unwrap())
                .any(|(a, b)| b["restartCount"].as_u64() > a["restartCount"].as_u64())
        })
    });
    let restarted = restarted.expect("a restarted pod");
    let real = fixture("datadog-gke-laststate-oomkilled.json");
    let real_terminated = &real["status"]["containerStatuses"][0]["lastState"]["terminated"];
    let terminated = restarted["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c["lastState"].get("terminated"))
        .unwrap();
    assert_eq!(keys(terminated), keys(real_terminated));
    assert!(["Error", "OOMKilled"].contains(&terminated["reason"].as_str().unwrap()));

    // Node updates are heartbeats only: nothing but lastHeartbeatTime changes.
    let strip = |n: &Value| {
        let mut n = n.clone();
        n["metadata"]["resourceVersion"] = Value::Null;
        for c in n["status"]["conditions"].as_array_mut().unwrap() {
            c["lastHeartbeatTime"] = Value::Null;
        }
        n
    };
    let mut beaten = 0;
    for (k, after) in by_key(&sim, Resource::Nodes) {
        let before = &nodes_before[&k];
        if before != &after {
            beaten += 1;
            assert_eq!(strip(before), strip(&after), "{k}");
        }
    }
    assert!(beaten > 0 && beaten as u64 <= r.node_heartbeats);
}

#[test]
fn churn_events_have_the_shape_of_real_kubelet_events() {
    let sim = populated(5, 100);
    let mut churner = sim.churner(&ChurnSpec {
        seed: 2,
        mix: ChurnMix {
            container_restart: 1,
            readiness_flip: 1,
            pod_replace: 1,
            event: 1,
            node_heartbeat: 0,
        },
        event_ttl: None,
        ..ChurnSpec::default()
    });
    for _ in 0..300 {
        churner.step().unwrap();
    }
    let events = sim.list(Resource::Events, None);
    let find = |reason: &str| {
        events
            .iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} event"))
    };
    for (reason, real) in [
        ("Unhealthy", "troubleshoot-minikube-unhealthy-liveness.json"),
        (
            "Pulled",
            "troubleshoot-minikube-pulled-already-present.json",
        ),
        ("Started", "troubleshoot-minikube-started-container.json"),
        (
            "SuccessfulCreate",
            "troubleshoot-minikube-successfulcreate-replicaset.json",
        ),
        (
            "BackOff",
            "troubleshoot-minikube-backoff-restarting-container.json",
        ),
        (
            "Killing",
            "troubleshoot-minikube-killing-stop-container.json",
        ),
    ] {
        let real = fixture(real);
        let ours = find(reason);
        let mut want = keys(&real);
        want.remove("kind");
        want.remove("apiVersion");
        assert_eq!(keys(ours), want, "{reason}");
        assert_eq!(keys(&ours["source"]), keys(&real["source"]), "{reason}");
        assert_eq!(ours["type"], real["type"], "{reason}");
        // Objects the sim does not store (ReplicaSets) carry no resourceVersion.
        let mut real_ref = keys(&real["involvedObject"]);
        if ours["involvedObject"]["kind"] != "Pod" {
            real_ref.remove("resourceVersion");
        }
        assert_eq!(keys(&ours["involvedObject"]), real_ref, "{reason}");
    }
    let pulled = find("Pulled")["message"].as_str().unwrap();
    assert!(
        pulled.starts_with("Container image \"")
            && pulled.ends_with("\" already present on machine")
    );
    // The scheduler's events.k8s.io-style Scheduled event.
    let real = fixture("troubleshoot-minikube-scheduled-via-events-api.json");
    let ours = find("Scheduled");
    assert_eq!(ours["reportingComponent"], real["reportingComponent"]);
    assert_eq!(ours["action"], real["action"]);
    assert!(
        ours["message"]
            .as_str()
            .unwrap()
            .starts_with("Successfully assigned ")
    );
}

#[test]
fn same_seed_same_sequence_and_ttl_expiry() {
    let kinds = |sim: &Simulator, ttl: Option<Duration>| {
        let mut c = sim.churner(&ChurnSpec {
            seed: 77,
            event_ttl: ttl,
            ..ChurnSpec::default()
        });
        let kinds: Vec<ChurnKind> = (0..300).map(|_| c.step().unwrap()).collect();
        (kinds, c)
    };
    let (a, _) = kinds(&populated(6, 200), None);
    let sim = populated(6, 200);
    let (b, mut churner) = kinds(&sim, Some(Duration::ZERO));
    assert_eq!(a, b);
    // With a zero TTL every event churn created is deleted on expiry.
    let created = churner.report().events_created;
    assert!(created > 0);
    assert_eq!(churner.expire_events(), created);
    assert_eq!(sim.count(Resource::Events), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_runs_to_its_step_budget_and_watchers_see_it() {
    let (sim, server, c) = start(|_| {}).await;
    sim.populate(&ScaleSpec {
        nodes: 4,
        pods: 80,
        namespaces: 3,
        seed: 1,
        now: None,
    })
    .unwrap();
    let rv = sim.resource_version();
    let resp = c
        .get(format!(
            "{}/api/v1/pods?watch=1&resourceVersion={rv}",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let spec = ChurnSpec {
        rate_per_sec: 5000.0,
        seed: 5,
        max_steps: Some(300),
        mix: ChurnMix {
            event: 0,
            node_heartbeat: 0,
            ..ChurnMix::default()
        },
        ..ChurnSpec::default()
    };
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        sim.churn(&spec, std::future::pending()),
    )
    .await
    .expect("safety net")
    .unwrap();
    assert_eq!(report.steps, 300);
    assert!(report.container_restarts + report.readiness_flips + report.pods_replaced > 250);
    // Every pod change reached the watch, in order.
    let mut last = rv;
    let mut modified = 0;
    let mut deleted = 0;
    while let Some(ev) = w.next_non_bookmark(Duration::from_secs(5)).await {
        let t = ev["type"].as_str().unwrap().to_string();
        let this = common::rv(&ev["object"]);
        assert!(this > last);
        last = this;
        match t.as_str() {
            "MODIFIED" => modified += 1,
            "DELETED" => deleted += 1,
            _ => {}
        }
        if modified == report.container_restarts + report.readiness_flips
            && deleted == report.pods_replaced
        {
            break;
        }
    }
    assert_eq!(modified, report.container_restarts + report.readiness_flips);
    assert_eq!(deleted, report.pods_replaced);
    // A stop future ends an unbounded run.
    let report = sim
        .churn(
            &ChurnSpec {
                rate_per_sec: 100.0,
                ..ChurnSpec::default()
            },
            async {},
        )
        .await
        .unwrap();
    assert_eq!(report.steps, 0);
    assert!(
        sim.churn(
            &ChurnSpec {
                rate_per_sec: 0.0,
                ..ChurnSpec::default()
            },
            async {}
        )
        .await
        .is_err()
    );
    server.shutdown().await;
}
