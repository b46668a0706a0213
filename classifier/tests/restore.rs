//! `Classifier::restore`: open incidents from the store are taken over after a restart, so
//! nothing re-alerts and nothing is forgotten.

mod common;

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use common::*;
use herald_classifier::{Classifier, ClassifierConfig};
use herald_core::{
    Incident, IncidentId, IncidentState, ObjectRef, RecordId, Severity, Timestamp, Transition,
};

fn open_incident(
    rule: &str,
    fingerprint: &str,
    subject: ObjectRef,
    first: Timestamp,
    last: Timestamp,
) -> Incident {
    Incident {
        id: IncidentId::new(fingerprint, first),
        fingerprint: fingerprint.into(),
        rule: rule.into(),
        severity: Severity::Critical,
        state: IncidentState::Open,
        cluster: "prod".into(),
        node: (subject.kind == herald_core::ObjectKind::Node).then(|| subject.name.clone()),
        subject,
        namespace: None,
        summary: "restored".into(),
        first_seen: first,
        last_seen: last,
        resolved_at: None,
        count: 3,
        objects: Vec::new(),
        records: vec![RecordId(10), RecordId(11), RecordId(12)],
        labels: BTreeMap::new(),
    }
}

fn restored_node_b() -> Incident {
    let mut i = open_incident(
        "NodeNotReady",
        "NodeNotReady/node-b",
        ObjectRef::node("node-b"),
        at(0),
        at(30),
    );
    // As stored by the previous run.
    i.summary =
        "Node node-b is NotReady: Kubelet stopped posting node status. (NodeStatusUnknown)".into();
    i
}

#[test]
fn restored_node_not_ready_resolves_and_is_not_duplicated() {
    let mut c = Classifier::new(ClassifierConfig::default());
    let restored = restored_node_b();
    c.restore([restored.clone()]);
    assert_eq!(c.open_incidents(), vec![&restored]);

    // After the restart the watcher re-lists and reports the node's state again.
    let changes = c.apply(&node_ready(20, at(600), "node-b", None, "Unknown"), at(600));
    assert!(changes.is_empty(), "{changes:?}");
    assert!(
        c.tick(at(700)).is_empty(),
        "grace elapsed again, but the incident is already open"
    );
    let open = c.open_incidents();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, restored.id);
    assert_eq!(open[0].count, 4);
    assert!(open[0].records.contains(&RecordId(20)));

    // Ready again: the restored incident (same id) resolves.
    let changes = c.apply(
        &node_ready(21, at(720), "node-b", Some("Unknown"), "True"),
        at(720),
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].transition, Transition::Resolved);
    assert_eq!(changes[0].incident.id, restored.id);
    assert_eq!(changes[0].incident.resolved_at, Some(at(720)));
    assert!(c.open_incidents().is_empty());

    // A new NotReady is a new occurrence: it waits for grace again and gets a new id.
    assert!(
        c.apply(
            &node_ready(22, at(800), "node-b", Some("True"), "False"),
            at(800)
        )
        .is_empty()
    );
    assert!(c.tick(at(829)).is_empty());
    let changes = c.tick(at(830));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].transition, Transition::Opened);
    assert_ne!(changes[0].incident.id, restored.id);
    assert_eq!(changes[0].incident.first_seen, at(800));
}

#[test]
fn restored_not_ready_during_grace_of_a_repeat_does_not_reopen() {
    // NotReady records arriving while the restored incident is open only support it, even
    // when they say False instead of Unknown.
    let mut c = Classifier::new(ClassifierConfig::default());
    c.restore([restored_node_b()]);
    for (i, s) in [(0, "Unknown"), (1, "False"), (2, "Unknown")] {
        let t = at(600 + i * 60);
        let all: Vec<_> = c
            .apply(&node_ready(30 + i, t, "node-b", None, s), t)
            .into_iter()
            .chain(c.tick(t + std::time::Duration::from_secs(45)))
            .collect();
        assert!(
            all.iter().all(|ch| ch.transition == Transition::Updated),
            "{all:?}"
        );
    }
    assert_eq!(c.open_incidents().len(), 1);
}

#[test]
fn restored_oom_incident_resolves_after_quiet_from_its_last_seen() {
    let mut c = Classifier::new(ClassifierConfig::default());
    let mut i = open_incident(
        "OOMKilled",
        "OOMKilled/shop/cart-1/cart",
        ObjectRef::pod("shop", "cart-1"),
        at(0),
        at(60),
    );
    i.severity = Severity::Warning;
    c.restore([i.clone()]);
    // A repeat kill before the quiet period ends is counted on the restored incident.
    assert!(
        c.apply(
            &oom_killed(40, at(300), "node-a", "shop", "cart-1", "cart"),
            at(300)
        )
        .is_empty()
    );
    assert!(c.tick(at(899)).is_empty());
    let changes = c.tick(at(900));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].transition, Transition::Resolved);
    assert_eq!(changes[0].incident.id, i.id);
    assert_eq!(changes[0].incident.count, 4);
}

#[test]
fn restored_storm_does_not_recount_its_pods() {
    let mut cfg = ClassifierConfig::default();
    cfg.eviction_storm.threshold = NonZeroU32::new(3).expect("3");
    let mut c = Classifier::new(cfg);
    let mut storm = open_incident(
        "EvictionStorm",
        "EvictionStorm/node-c",
        ObjectRef::node("node-c"),
        at(0),
        at(20),
    );
    storm.objects = vec![
        ObjectRef::pod("batch", "w-1").with_uid("u1"),
        ObjectRef::pod("batch", "w-2").with_uid("u2"),
        ObjectRef::pod("batch", "w-3").with_uid("u3"),
    ];
    c.restore([storm]);
    // The Event of an eviction already in the storm arrives late: evidence, not a new pod.
    assert!(
        c.apply(
            &evicted_event(50, at(30), "node-c", "batch", "w-2", Some("u2")),
            at(30)
        )
        .is_empty()
    );
    assert_eq!(c.open_incidents()[0].count, 3);
    // A new eviction joins and is announced.
    let changes = c.apply(
        &pod_evicted(51, at(40), "node-c", "batch", "w-4", "u4"),
        at(40),
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].transition, Transition::Updated);
    assert_eq!(changes[0].incident.count, 4);
    assert_eq!(changes[0].incident.objects.len(), 4);
}

#[test]
fn orphans_and_older_duplicates_are_resolved_at_the_next_call() {
    let mut cfg = ClassifierConfig::default();
    cfg.oom_killed.enabled = false;
    let mut c = Classifier::new(cfg);
    let disabled = open_incident(
        "OOMKilled",
        "OOMKilled/shop/a/a",
        ObjectRef::pod("shop", "a"),
        at(0),
        at(0),
    );
    let unknown = open_incident(
        "CrashLoop",
        "CrashLoop/shop/a",
        ObjectRef::pod("shop", "a"),
        at(0),
        at(0),
    );
    let older = open_incident(
        "NodeNotReady",
        "NodeNotReady/node-b",
        ObjectRef::node("node-b"),
        at(0),
        at(10),
    );
    let newer = open_incident(
        "NodeNotReady",
        "NodeNotReady/node-b",
        ObjectRef::node("node-b"),
        at(100),
        at(110),
    );
    let mut resolved_already = newer.clone();
    resolved_already.state = IncidentState::Resolved;
    c.restore([
        disabled.clone(),
        newer.clone(),
        unknown.clone(),
        older.clone(),
        resolved_already,
    ]);
    assert_eq!(c.open_incidents().len(), 4);

    let changes = c.tick(at(200));
    let mut resolved: Vec<_> = changes
        .iter()
        .inspect(|ch| assert_eq!(ch.transition, Transition::Resolved))
        .map(|ch| ch.incident.id.clone())
        .collect();
    resolved.sort();
    let mut want = vec![disabled.id, unknown.id, older.id];
    want.sort();
    assert_eq!(resolved, want);
    assert_eq!(c.open_incidents(), vec![&newer]);
}

/// A restart as the service does it: the open incidents go through the store (JSON here) into
/// a fresh classifier with the same configuration.
fn restart(c: &Classifier, cfg: ClassifierConfig) -> Classifier {
    let stored: Vec<String> = c
        .open_incidents()
        .iter()
        .map(|i| serde_json::to_string(i).expect("incident to JSON"))
        .collect();
    let mut fresh = Classifier::new(cfg);
    fresh.restore(
        stored
            .iter()
            .map(|s| serde_json::from_str::<Incident>(s).expect("incident from JSON")),
    );
    fresh
}

fn rec(id: u64, secs: u64, mut v: serde_json::Value) -> herald_core::Record {
    v["id"] = id.into();
    v["cluster"] = "prod".into();
    v["observed_at"] = at(secs).to_string().into();
    serde_json::from_value(v).expect("record")
}

fn crash_looping(id: u64, secs: u64, pod: &str, restarts: u32) -> herald_core::Record {
    rec(
        id,
        secs,
        serde_json::json!({
            "object": { "kind": "Pod", "namespace": "velero", "name": pod },
            "node": "node-a",
            "owner": { "kind": { "Other": "ReplicaSet" }, "namespace": "velero", "name": "velero-6996dd565b" },
            "labels": { "pod-template-hash": "6996dd565b" },
            "body": { "type": "pod", "phase": "Running", "change": {
                "change": "container_waiting", "container": "velero",
                "reason": "CrashLoopBackOff", "restart_count": restarts } }
        }),
    )
}

fn pressure(id: u64, secs: u64, to: &str) -> herald_core::Record {
    rec(
        id,
        secs,
        serde_json::json!({
            "object": { "kind": "Node", "name": "worker-0" },
            "node": "worker-0",
            "body": { "type": "node", "change": {
                "change": "condition_changed", "condition": "DiskPressure", "to": to,
                "message": "kubelet has disk pressure" } }
        }),
    )
}

#[test]
fn signal_rule_incidents_survive_a_restart_without_realerting() {
    let cfg = ClassifierConfig {
        rules: herald_classifier::parse_rules(
            "rules:\n  - name: AnyBackOff\n    match: { kind: pod, reason: CrashLoopBackOff }\n    group_by: [namespace]\n",
        )
        .expect("rules"),
        ..ClassifierConfig::default()
    };
    let mut c = Classifier::new(cfg.clone());
    let opened: Vec<_> = [
        c.apply(&crash_looping(1, 0, "velero-6996dd565b-xl44t", 3), at(0)),
        c.apply(&pressure(2, 1, "True"), at(1)),
        c.tick(at(40)),
    ]
    .concat();
    let fps: Vec<&str> = opened
        .iter()
        .map(|ch| ch.incident.fingerprint.as_str())
        .collect();
    assert_eq!(
        fps,
        [
            "CrashLoopBackOff/velero/Deployment/velero",
            "AnyBackOff/velero",
            "NodePressure/worker-0/DiskPressure"
        ]
    );

    let mut c = restart(&c, cfg);
    // More of the same after the restart: counts continue, nothing opens again; a second pod
    // in each group is material (updated), escalation by restarts still applies.
    let changes = c.apply(&crash_looping(3, 60, "velero-6996dd565b-q7m2p", 12), at(60));
    let summary: Vec<(Transition, &str, u64, Severity)> = changes
        .iter()
        .map(|ch| {
            let i = &ch.incident;
            (ch.transition, i.fingerprint.as_str(), i.count, i.severity)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Transition::Updated,
                "AnyBackOff/velero",
                2,
                Severity::Warning
            ),
            (
                Transition::Updated,
                "CrashLoopBackOff/velero/Deployment/velero",
                2,
                Severity::Critical
            )
        ]
    );
    let open = c.open_incidents();
    let backoff = open
        .iter()
        .find(|i| i.fingerprint == "AnyBackOff/velero")
        .expect("yaml rule incident restored");
    assert_eq!(backoff.count, 2);
    assert_eq!(backoff.records, vec![RecordId(1), RecordId(3)]);

    // The restored pressure incident is resolved by its clearing record.
    let changes = c.apply(&pressure(4, 120, "False"), at(120));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].transition, Transition::Resolved);
    assert_eq!(
        changes[0].incident.fingerprint,
        "NodePressure/worker-0/DiskPressure"
    );
    assert_eq!(changes[0].incident.resolved_at, Some(at(120)));

    // Quiet periods continue from the restored last_seen (60s): crash loop 15m, YAML rule 10m.
    assert!(c.tick(at(60 + 599)).is_empty());
    let resolved: Vec<String> = c
        .tick(at(60 + 600))
        .into_iter()
        .map(|ch| ch.incident.fingerprint)
        .collect();
    assert_eq!(resolved, ["AnyBackOff/velero"]);
    let resolved: Vec<String> = c
        .tick(at(60 + 900))
        .into_iter()
        .map(|ch| ch.incident.fingerprint)
        .collect();
    assert_eq!(resolved, ["CrashLoopBackOff/velero/Deployment/velero"]);
    assert!(c.open_incidents().is_empty());
}

#[test]
fn restored_namespace_storm_does_not_recount_its_pods() {
    let mut cfg = ClassifierConfig::default();
    cfg.eviction_storm.enabled = false;
    cfg.evicted.enabled = Some(false);
    let mut c = Classifier::new(cfg.clone());
    let mut opened = Vec::new();
    for k in 0..5u64 {
        let r = pod_evicted(
            k + 1,
            at(k * 5),
            &format!("node-{k}"),
            "batch",
            &format!("worker-{k}"),
            &format!("uid-{k}"),
        );
        opened.extend(c.apply(&r, at(k * 5)));
    }
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].incident.fingerprint,
        "NamespaceEvictionStorm/batch"
    );
    let mut c = restart(&c, cfg);
    // The Event of an eviction already counted, then one new eviction.
    let dup = evicted_event(6, at(30), "node-0", "batch", "worker-0", Some("uid-0"));
    assert!(c.apply(&dup, at(30)).is_empty());
    let new = pod_evicted(7, at(40), "node-9", "batch", "worker-9", "uid-9");
    let changes = c.apply(&new, at(40));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].transition, Transition::Updated);
    assert_eq!(changes[0].incident.count, 6);
}
