//! State functions driven by real objects from `tests/fixtures/` (see `tests/fixtures/SOURCES.md`).
//! A "before" or "after" state that no capture has is derived in code from a fixture, and each
//! derivation says what it changes.

#![allow(clippy::unwrap_used)] // a test crate: panicking on a bad fixture is the point

use std::collections::HashSet;

use herald_core::{NodeChange, ObjectKind, PodChange, RecordBody, Timestamp};
use herald_watcher::objects::{Event, Node, Pod};
use herald_watcher::state::{Source, StateOptions, event, node, pod};
use serde_json::{Value, json};

fn fixture(path: &str) -> Value {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A compact, comparable summary of a pod change.
fn pod_summary(c: &PodChange) -> String {
    match c {
        PodChange::Created => "Created".into(),
        PodChange::ContainerTerminated {
            container,
            init,
            reason,
            exit_code,
            restart_count,
            ..
        } => format!(
            "Terminated({container}{},{},{exit_code},restarts={restart_count})",
            if *init { ",init" } else { "" },
            reason.as_deref().unwrap_or("-")
        ),
        PodChange::ContainerWaiting {
            container,
            init,
            reason,
            restart_count,
            ..
        } => format!(
            "Waiting({container}{},{reason},restarts={restart_count})",
            if *init { ",init" } else { "" }
        ),
        PodChange::PhaseChanged { from, to, .. } => {
            format!("Phase({}->{to})", from.as_deref().unwrap_or("?"))
        }
        PodChange::Evicted { .. } => "Evicted".into(),
        PodChange::DeletionRequested => "DeletionRequested".into(),
        PodChange::Deleted => "Deleted".into(),
    }
}

fn summaries(changes: &[PodChange]) -> Vec<String> {
    changes.iter().map(pod_summary).collect()
}

/// The container status named `name` in a raw pod.
fn container<'a>(pod: &'a mut Value, name: &str) -> &'a mut Value {
    let list = ["containerStatuses", "initContainerStatuses"]
        .into_iter()
        .find(|l| {
            pod["status"][*l]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c["name"] == name))
        })
        .unwrap_or_else(|| panic!("no container {name}"));
    pod["status"][list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap()
}

/// Derivation: the container before its last restart — running since its last termination
/// started, no `lastState`, restartCount - 1.
fn before_restart(mut pod: Value, name: &str) -> Value {
    let c = container(&mut pod, name);
    let started = c["lastState"]["terminated"]["startedAt"].clone();
    c["state"] = json!({"running": {"startedAt": started}});
    c["lastState"] = json!({});
    c["restartCount"] = json!(c["restartCount"].as_i64().unwrap() - 1);
    pod
}

/// Derivation: the same pod earlier, Running, with the container running (no termination yet).
fn running_before_termination(mut pod: Value, name: &str) -> Value {
    pod["status"]["phase"] = json!("Running");
    let c = container(&mut pod, name);
    let started = c["state"]["terminated"]["startedAt"].clone();
    c["state"] = json!({"running": {"startedAt": started}});
    pod
}

/// Derivation: an evicted pod before its eviction (Running, no reason/message).
fn before_eviction(mut pod: Value) -> Value {
    let status = pod["status"].as_object_mut().unwrap();
    status.insert("phase".into(), json!("Running"));
    status.remove("reason");
    status.remove("message");
    pod
}

/// Derivation: the container running again after the CrashLoopBackOff wait, before crashing:
/// state running, same lastState and restartCount.
fn running_between_crashes(mut pod: Value, name: &str) -> Value {
    let c = container(&mut pod, name);
    c["state"] = json!({"running": {"startedAt": "2022-04-12T01:00:00Z"}});
    pod
}

fn listed_state(objects: &[&Value]) -> pod::PodState {
    let mut st = pod::PodState::new(StateOptions::default());
    for o in objects {
        pod::apply(&mut st, &typed(o), Source::List);
    }
    st.set_listed();
    st
}

#[test]
fn pod_transitions_table() {
    struct Case {
        name: &'static str,
        before: Value,
        after: Value,
        expect: &'static [&'static str],
    }
    let oom = fixture("pods/datadog-gke-laststate-oomkilled.json");
    let job = fixture("pods/troubleshoot-minikube-job-oomkilled-state-terminated.json");
    let evicted = fixture("pods/nri-minikube-evicted-memory.json");
    let crash = fixture("pods/sbctl-kurl-crashloop-laststate-error.json");
    let cases = [
        Case {
            name: "restart with lastState OOMKilled: one termination",
            before: before_restart(oom.clone(), "fluentd-gcp"),
            after: oom.clone(),
            expect: &["Terminated(fluentd-gcp,OOMKilled,2,restarts=1)"],
        },
        Case {
            name: "Job container OOMKilled in state.terminated, pod Failed",
            before: running_before_termination(job.clone(), "memory-eater"),
            after: job.clone(),
            expect: &[
                "Terminated(memory-eater,OOMKilled,137,restarts=0)",
                "Phase(Running->Failed)",
            ],
        },
        Case {
            name: "evicted: Evicted only, no PhaseChanged",
            before: before_eviction(evicted.clone()),
            after: evicted.clone(),
            expect: &["Evicted"],
        },
        Case {
            name: "back in CrashLoopBackOff",
            before: running_between_crashes(crash.clone(), "velero"),
            after: crash.clone(),
            expect: &["Waiting(velero,CrashLoopBackOff,restarts=3)"],
        },
        Case {
            name: "restart with lastState Error (negative control for OOM)",
            before: before_restart(
                fixture("pods/nri-minikube-static-pod-laststate-error.json"),
                "kube-controller-manager",
            ),
            after: fixture("pods/nri-minikube-static-pod-laststate-error.json"),
            expect: &["Terminated(kube-controller-manager,Error,255,restarts=1)"],
        },
    ];
    for case in cases {
        let mut st = listed_state(&[&case.before]);
        let changes = pod::apply(&mut st, &typed(&case.after), Source::Modified);
        assert_eq!(summaries(&changes), case.expect, "{}", case.name);
        // The same object again changes nothing.
        let again = pod::apply(&mut st, &typed(&case.after), Source::Modified);
        assert!(
            again.is_empty(),
            "{}: repeated: {:?}",
            case.name,
            summaries(&again)
        );
    }
}

#[test]
fn termination_moving_to_last_state_is_not_reported_twice() {
    let job = fixture("pods/troubleshoot-minikube-job-oomkilled-state-terminated.json");
    let mut st = listed_state(&[&running_before_termination(job.clone(), "memory-eater")]);
    let first = pod::apply(&mut st, &typed(&job), Source::Modified);
    assert_eq!(first.len(), 2);
    // Derivation: the container restarted; the same termination is now in lastState.
    let mut restarted = job.clone();
    restarted["status"]["phase"] = json!("Running");
    let c = container(&mut restarted, "memory-eater");
    c["lastState"] = json!({"terminated": c["state"]["terminated"].clone()});
    c["state"] = json!({"running": {"startedAt": "2023-07-11T04:43:40Z"}});
    c["restartCount"] = json!(1);
    let changes = pod::apply(&mut st, &typed(&restarted), Source::Modified);
    assert_eq!(summaries(&changes), ["Phase(Failed->Running)"]);
}

#[test]
fn initial_sync_reports_current_problems_only() {
    let cases: &[(&str, &[&str])] = &[
        // Old OOM in lastState: history, not reported; the other container is in CrashLoopBackOff now.
        (
            "pods/datadog-gke-laststate-oomkilled.json",
            &["Waiting(prometheus-to-sd-exporter,CrashLoopBackOff,restarts=0)"],
        ),
        (
            "pods/sbctl-kurl-crashloop-laststate-error.json",
            &["Waiting(velero,CrashLoopBackOff,restarts=3)"],
        ),
        (
            "pods/troubleshoot-minikube-crashloopbackoff-laststate-containercannotrun.json",
            &["Waiting(nginx,CrashLoopBackOff,restarts=4)"],
        ),
        (
            "pods/troubleshoot-minikube-pending-errimagepull.json",
            &["Waiting(demo-deployment-container,ErrImagePull,restarts=0)"],
        ),
        // PodInitializing of the main container is routine.
        (
            "pods/troubleshoot-minikube-init-container-runcontainererror.json",
            &["Waiting(install,init,RunContainerError,restarts=1)"],
        ),
        // An eviction or an OOM kill that already happened is history.
        ("pods/nri-minikube-evicted-memory.json", &[]),
        (
            "pods/troubleshoot-minikube-job-oomkilled-state-terminated.json",
            &[],
        ),
    ];
    for (path, expect) in cases {
        let mut st = pod::PodState::new(StateOptions::default());
        let changes = pod::apply(&mut st, &typed(&fixture(path)), Source::List);
        assert_eq!(summaries(&changes), *expect, "{path}");

        let mut silent = pod::PodState::new(StateOptions {
            report_on_seed: false,
            resume_floor: None,
        });
        let changes = pod::apply(&mut silent, &typed(&fixture(path)), Source::List);
        assert!(changes.is_empty(), "{path}: silent seed: {changes:?}");
    }
}

#[test]
fn new_pod_is_created_with_its_problems() {
    let mut st = listed_state(&[]);
    let oom = fixture("pods/troubleshoot-minikube-job-oomkilled-state-terminated.json");
    let changes = pod::apply(&mut st, &typed(&oom), Source::Added);
    assert_eq!(
        summaries(&changes),
        [
            "Created",
            "Terminated(memory-eater,OOMKilled,137,restarts=0)"
        ]
    );
    let mut st = listed_state(&[]);
    let changes = pod::apply(
        &mut st,
        &typed(&fixture("pods/nri-minikube-evicted-memory.json")),
        Source::Added,
    );
    assert_eq!(summaries(&changes), ["Created", "Evicted"]);
}

#[test]
fn deletion_requested_then_deleted() {
    let p = fixture("pods/sbctl-kurl-crashloop-laststate-error.json");
    let mut st = listed_state(&[&p]);
    let mut deleting = p.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2022-04-12T01:10:00Z");
    let changes = pod::apply(&mut st, &typed(&deleting), Source::Modified);
    assert_eq!(summaries(&changes), ["DeletionRequested"]);
    let changes = pod::delete(&mut st, &typed(&deleting));
    assert_eq!(summaries(&changes), ["Deleted"]);
    assert!(st.is_empty());
}

#[test]
fn resumed_pod_reports_recent_terminations_only() {
    let oom = fixture("pods/datadog-gke-laststate-oomkilled.json");
    // The kill finished at 2018-02-13T16:05:48Z.
    for (floor, expect_kill) in [
        ("2018-02-13T16:00:00Z", true),
        ("2018-02-13T17:00:00Z", false),
    ] {
        let mut st = pod::PodState::new(StateOptions {
            report_on_seed: true,
            resume_floor: Some(ts(floor)),
        });
        let changes = pod::apply(&mut st, &typed(&oom), Source::Modified);
        let s = summaries(&changes);
        assert_eq!(
            s.contains(&"Terminated(fluentd-gcp,OOMKilled,2,restarts=1)".to_string()),
            expect_kill,
            "{floor}: {s:?}"
        );
        assert!(!s.contains(&"Created".to_string()));
        assert!(s.contains(
            &"Waiting(prometheus-to-sd-exporter,CrashLoopBackOff,restarts=0)".to_string()
        ));
    }
}

#[test]
fn relist_diff_reports_missing_pods() {
    let a = fixture("pods/sbctl-kurl-crashloop-laststate-error.json");
    let b = fixture("pods/nri-minikube-evicted-memory.json");
    let mut st = listed_state(&[&a, &b]);
    let keep: HashSet<String> = ["192aa0a3-9281-49a6-85fe-ca6d2ae974ba".to_string()].into();
    let gone = pod::remove_unlisted(&mut st, &keep);
    assert_eq!(gone.len(), 1);
    assert_eq!(&*gone[0].name, "sh-7c95664875-4btqh");
    assert_eq!(st.len(), 1);
}

#[test]
fn pod_entry_is_compact_and_carries_owner_and_node() {
    let oom: Pod = typed(&fixture("pods/datadog-gke-laststate-oomkilled.json"));
    let e = pod::PodEntry::from_pod(&oom);
    assert_eq!(
        e.node.as_deref(),
        Some("gke-haissam-default-pool-be5066f1-wnvn")
    );
    let owner = e.owner.clone().unwrap();
    assert_eq!(owner.kind, ObjectKind::Other("DaemonSet".into()));
    assert_eq!(owner.name, "fluentd-gcp-v2.0.10");
    assert_eq!(e.containers.len(), 3);
    assert!(e.containers[0].init);
    assert_eq!(e.phase.as_deref(), Some("Running"));
}

// ---- nodes ----

/// Derivation: the node's Ready condition as the node controller sets it when the kubelet stops
/// posting status (`Unknown`, `NodeStatusUnknown`).
fn ready_unknown(mut n: Value) -> Value {
    for c in n["status"]["conditions"].as_array_mut().unwrap() {
        if c["type"] == "Ready" {
            c["status"] = json!("Unknown");
            c["reason"] = json!("NodeStatusUnknown");
            c["message"] = json!("Kubelet stopped posting node status.");
            c["lastTransitionTime"] = json!("2024-01-01T00:00:40Z");
        }
    }
    n
}

fn node_summary(c: &NodeChange) -> String {
    match c {
        NodeChange::Created => "Created".into(),
        NodeChange::ConditionChanged {
            condition,
            from,
            to,
            ..
        } => format!("{condition}({}->{to})", from.as_deref().unwrap_or("None")),
        NodeChange::Rebooted { boot_id } => format!("Rebooted({boot_id})"),
        NodeChange::Deleted => "Deleted".into(),
    }
}

#[test]
fn node_transitions_table() {
    let ready = fixture("nodes/k9s-minikube-node-ready.json");
    // Derivation: a heartbeat-only update (newer lastHeartbeatTime everywhere).
    let mut heartbeat = ready.clone();
    for c in heartbeat["status"]["conditions"].as_array_mut().unwrap() {
        c["lastHeartbeatTime"] = json!("2030-01-01T00:00:00Z");
    }
    // Derivation: a new bootID (the node rebooted).
    let mut rebooted = ready.clone();
    rebooted["status"]["nodeInfo"]["bootID"] = json!("5b7c6c4e-0000-4000-8000-000000000001");
    // Derivation: memory pressure.
    let mut pressure = ready.clone();
    for c in pressure["status"]["conditions"].as_array_mut().unwrap() {
        if c["type"] == "MemoryPressure" {
            c["status"] = json!("True");
        }
    }
    let cases: [(&str, &Value, &[&str]); 5] = [
        (
            "Ready True -> Unknown",
            &ready_unknown(ready.clone()),
            &["Ready(True->Unknown)"],
        ),
        ("heartbeat only", &heartbeat, &[]),
        ("same object", &ready, &[]),
        (
            "rebooted",
            &rebooted,
            &["Rebooted(5b7c6c4e-0000-4000-8000-000000000001)"],
        ),
        (
            "memory pressure",
            &pressure,
            &["MemoryPressure(False->True)"],
        ),
    ];
    for (name, after, expect) in cases {
        let mut st = node::NodeState::new(StateOptions::default());
        assert!(node::apply(&mut st, &typed(&ready), Source::List).is_empty());
        st.set_listed();
        let changes = node::apply(&mut st, &typed(after), Source::Modified);
        let s: Vec<String> = changes.iter().map(node_summary).collect();
        assert_eq!(s, expect, "{name}");
    }
}

#[test]
fn node_ready_change_carries_reason_and_since() {
    let ready = fixture("nodes/troubleshoot-node-ready-1.json");
    let mut st = node::NodeState::new(StateOptions::default());
    node::apply(&mut st, &typed(&ready), Source::List);
    let changes = node::apply(
        &mut st,
        &typed(&ready_unknown(ready.clone())),
        Source::Modified,
    );
    assert_eq!(
        changes,
        [NodeChange::ConditionChanged {
            condition: "Ready".into(),
            from: Some("True".into()),
            to: "Unknown".into(),
            reason: Some("NodeStatusUnknown".into()),
            message: Some("Kubelet stopped posting node status.".into()),
            since: Some(ts("2024-01-01T00:00:40Z")),
        }]
    );
    // And back.
    let changes = node::apply(&mut st, &typed(&ready), Source::Modified);
    assert_eq!(
        changes.iter().map(node_summary).collect::<Vec<_>>(),
        ["Ready(Unknown->True)"]
    );
}

#[test]
fn node_first_sight() {
    let ready = fixture("nodes/k9s-minikube-node-ready.json");
    let unknown = ready_unknown(ready.clone());
    let mut st = node::NodeState::new(StateOptions::default());
    // Initial sync: a healthy node is silent, a NotReady one is reported.
    assert!(node::apply(&mut st, &typed(&ready), Source::List).is_empty());
    let mut st = node::NodeState::new(StateOptions::default());
    let s: Vec<String> = node::apply(&mut st, &typed(&unknown), Source::List)
        .iter()
        .map(node_summary)
        .collect();
    assert_eq!(s, ["Ready(None->Unknown)"]);
    // A new node.
    let mut st = node::NodeState::new(StateOptions::default());
    st.set_listed();
    let s: Vec<String> = node::apply(&mut st, &typed(&ready), Source::Added)
        .iter()
        .map(node_summary)
        .collect();
    assert_eq!(s, ["Created"]);
    assert_eq!(
        node::delete(&mut st, &typed::<Node>(&ready)),
        [NodeChange::Deleted]
    );
    assert!(st.is_empty());
}

// ---- events ----

/// Derivation: the same Event after `n` more occurrences.
fn with_count(mut e: Value, count: i64, last: &str) -> Value {
    e["count"] = json!(count);
    e["lastTimestamp"] = json!(last);
    e
}

#[test]
fn event_count_deltas() {
    let pulled = fixture("events/k9s-gke-pulled.json");
    let mut st = event::EventState::new(StateOptions::default());
    st.set_listed();
    let steps: [(Value, Source, Option<u32>); 4] = [
        (pulled.clone(), Source::Added, Some(1)),
        (
            with_count(pulled.clone(), 3, "2019-08-30T20:45:00Z"),
            Source::Modified,
            Some(2),
        ),
        // An update without count growth records nothing.
        (
            with_count(pulled.clone(), 3, "2019-08-30T20:45:00Z"),
            Source::Modified,
            None,
        ),
        (
            with_count(pulled.clone(), 4, "2019-08-30T20:46:00Z"),
            Source::Modified,
            Some(1),
        ),
    ];
    for (i, (ev, source, expect)) in steps.into_iter().enumerate() {
        assert_eq!(
            event::apply(&mut st, &typed(&ev), source),
            expect,
            "step {i}"
        );
    }
    assert_eq!(st.count("c443d4b3-cb66-11e9-990f-42010a800218"), Some(4));
}

#[test]
fn event_first_sight() {
    let backoff = fixture("events/sbctl-kurl-backoff-velero.json"); // count 94
    let ev: Event = typed(&backoff);
    let mut st = event::EventState::new(StateOptions::default());
    assert_eq!(event::apply(&mut st, &ev, Source::List), Some(94));
    let mut silent = event::EventState::new(StateOptions {
        report_on_seed: false,
        resume_floor: None,
    });
    assert_eq!(event::apply(&mut silent, &ev, Source::List), None);
    // Resumed watch, unknown Event modified: at least one new occurrence.
    let mut resumed = event::EventState::new(StateOptions::default());
    assert_eq!(event::apply(&mut resumed, &ev, Source::Modified), Some(1));
    // A re-list after the state was listed: only the growth.
    st.set_listed();
    let grown = with_count(backoff.clone(), 96, "2022-04-12T00:58:00Z");
    assert_eq!(event::apply(&mut st, &typed(&grown), Source::List), Some(2));
    assert_eq!(event::apply(&mut st, &typed(&grown), Source::List), None);
}

#[test]
fn event_records() {
    let now = ts("2024-05-01T00:00:00Z");
    // kubelet event: node from source.host, object = involvedObject.
    let ev: Event = typed(&fixture("events/sbctl-kurl-backoff-velero.json"));
    let r = event::record("c1", now, &ev, 2);
    assert_eq!(r.cluster, "c1");
    assert_eq!(r.observed_at, now);
    assert_eq!(r.node.as_deref(), Some("troubleshoot-demo-002"));
    assert_eq!(r.object.kind, ObjectKind::Pod);
    assert_eq!(r.object.name, "velero-6996dd565b-mddj2");
    assert_eq!(r.object.namespace.as_deref(), Some("velero"));
    let RecordBody::Event(e) = &r.body else {
        panic!("not an event")
    };
    assert_eq!((e.count, e.count_delta), (94, 2));
    assert_eq!(e.reason, "BackOff");
    assert_eq!(e.event_type, "Warning");
    assert_eq!(e.source.component.as_deref(), Some("kubelet"));
    assert_eq!(e.last_timestamp, Some(ts("2022-04-12T00:56:09Z")));

    // Created through events.k8s.io/v1: no count, eventTime, reportingComponent.
    let ev: Event = typed(&fixture(
        "events/troubleshoot-minikube-scheduled-via-events-api.json",
    ));
    let r = event::record("c1", now, &ev, 1);
    let RecordBody::Event(e) = &r.body else {
        panic!("not an event")
    };
    assert_eq!(e.count, 1);
    assert_eq!(e.first_timestamp, Some(ts("2023-07-10T05:31:39.694297Z")));
    assert_eq!(e.source.component.as_deref(), Some("default-scheduler"));
    assert_eq!(r.node, None);

    // node-controller event about a pod: no host, not a Node.
    let ev: Event = typed(&fixture("events/kube-logging-kind-nodenotready-pod.json"));
    let r = event::record("c1", now, &ev, 1);
    assert_eq!(r.node, None);
    assert_eq!(r.object.name, "kube-scheduler-kind-control-plane");
}

/// The kube-scheduler's FailedScheduling Event of `lists/troubleshoot-minikube-events-imagepull.json`
/// (written through events.k8s.io/v1: no `count`, `series.count` 3), in the core/v1 shape.
fn series_event() -> Value {
    let list = fixture("lists/troubleshoot-minikube-events-imagepull.json");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.get("series").is_some())
        .cloned()
        .unwrap()
}

/// The same Event as events.k8s.io/v1 serves it (derived: the API server's field mapping
/// `involvedObject` -> `regarding`, `message` -> `note`, `count` -> `deprecatedCount`, ...).
fn as_events_v1(core: &Value) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": core["metadata"],
        "regarding": core["involvedObject"],
        "reason": core["reason"],
        "note": core["message"],
        "type": core["type"],
        "eventTime": core["eventTime"],
        "series": core["series"],
        "action": core["action"],
        "reportingController": core["reportingComponent"],
        "reportingInstance": core["reportingInstance"],
    })
}

#[test]
fn event_series_counts_in_both_apis() {
    let core = series_event();
    assert_eq!(core["series"]["count"], 3);
    assert!(core.get("count").is_none());
    let now = ts("2023-07-11T04:50:00Z");
    // core/v1: the count is the series count; a later heartbeat records the delta.
    let mut st = event::EventState::new(StateOptions::default());
    let ev: Event = typed(&core);
    assert_eq!(event::event_count(&ev), 3);
    assert_eq!(event::apply(&mut st, &ev, Source::List), Some(3));
    let mut grown = core.clone();
    grown["series"]["count"] = json!(5);
    grown["series"]["lastObservedTime"] = json!("2023-07-11T04:48:44.000000Z");
    assert_eq!(
        event::apply(&mut st, &typed(&grown), Source::Modified),
        Some(2)
    );
    assert_eq!(
        event::apply(&mut st, &typed(&grown), Source::Modified),
        None
    );
    // A stale `count` of 1 next to a larger series count does not hide the series.
    let mut both = grown.clone();
    both["count"] = json!(1);
    assert_eq!(event::event_count(&typed(&both)), 5);
    let r = event::record("c1", now, &typed(&grown), 2);
    let RecordBody::Event(e) = &r.body else {
        panic!("not an event record")
    };
    assert_eq!((e.count, e.count_delta), (5, 2));
    assert_eq!(
        e.last_timestamp,
        Some(ts("2023-07-11T04:48:44Z")),
        "series.lastObservedTime is the newest time"
    );
    assert_eq!(e.reason, "FailedScheduling");

    // events.k8s.io/v1: the same object through the other API gives the same records.
    let v1 = as_events_v1(&core);
    let v1_grown = as_events_v1(&grown);
    let converted = event::events_v1_to_core(typed(&v1_grown));
    assert_eq!(converted.involved_object.name, ev.involved_object.name);
    assert_eq!(converted.message, ev.message);
    let ctx_records = |st: &mut event::EventsV1State, obj: &Value, source: Source| {
        st.apply(&typed(obj), source, "c1", now)
    };
    let mut v1st = event::EventsV1State::new(StateOptions::default());
    let first = ctx_records(&mut v1st, &v1, Source::List);
    let again = ctx_records(&mut v1st, &v1_grown, Source::Modified);
    let repeat = ctx_records(&mut v1st, &v1_grown, Source::Modified);
    let deltas = |rs: &[herald_core::Record]| -> Vec<(u32, u32)> {
        rs.iter()
            .map(|r| match &r.body {
                RecordBody::Event(e) => (e.count, e.count_delta),
                _ => panic!("not an event record"),
            })
            .collect()
    };
    assert_eq!(deltas(&first), vec![(3, 3)]);
    assert_eq!(deltas(&again), vec![(5, 2)]);
    assert!(repeat.is_empty());
    assert_eq!(v1st.inner().len(), 1);
    let RecordBody::Event(e) = &again[0].body else {
        panic!()
    };
    assert_eq!(e.message, core["message"].as_str().unwrap());
    assert_eq!(e.source.component.as_deref(), Some("default-scheduler"));
}
