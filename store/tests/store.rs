//! Integration tests of `herald_store::Store` on a real sled database in a temporary directory.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use herald_core::{
    Checkpoint, DeliveryAttempt, DeliveryOutcome, EventRecord, EventSource, Incident,
    IncidentChange, IncidentId, IncidentState, Message, NodeChange, NodeTransition, Notification,
    ObjectKind, ObjectRef, ObjectState, PodChange, PodTransition, Record, RecordBody, RecordId,
    Severity, Timestamp, Transition,
};
use herald_store::{ClusterIdentity, Store, StoreError, StoreOptions, TimeQuery};

/// 2023-11-14T22:13:20Z plus `secs`.
fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn pod_record(ns: &str, name: &str, at: Timestamp) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: "test".into(),
        observed_at: at,
        object: ObjectRef::pod(ns, name),
        node: Some("node-a".into()),
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Pod(PodTransition {
            phase: Some("Running".into()),
            change: PodChange::ContainerWaiting {
                container: "app".into(),
                init: false,
                reason: "CrashLoopBackOff".into(),
                message: None,
                restart_count: 3,
            },
        }),
    }
}

fn node_record(name: &str, at: Timestamp) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: "test".into(),
        observed_at: at,
        object: ObjectRef::node(name),
        node: Some(name.into()),
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Node(NodeTransition {
            change: NodeChange::ConditionChanged {
                condition: "Ready".into(),
                from: Some("True".into()),
                to: "Unknown".into(),
                reason: Some("NodeStatusUnknown".into()),
                message: None,
                since: None,
            },
        }),
    }
}

/// An Event whose involved object is `object` (the watcher stores it under that object).
fn event_record(object: ObjectRef, at: Timestamp) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: "test".into(),
        observed_at: at,
        object,
        node: None,
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Event(EventRecord {
            uid: "ev-1".into(),
            namespace: "shop".into(),
            name: "cart-1.abc".into(),
            reason: "BackOff".into(),
            event_type: "Warning".into(),
            message: "Back-off restarting failed container".into(),
            count: 1,
            count_delta: 1,
            first_timestamp: Some(at),
            last_timestamp: Some(at),
            source: EventSource::default(),
            field_path: None,
        }),
    }
}

fn incident(fingerprint: &str, subject: ObjectRef, first_seen: Timestamp) -> Incident {
    Incident {
        id: IncidentId::new(fingerprint, first_seen),
        fingerprint: fingerprint.into(),
        rule: "Test".into(),
        severity: Severity::Warning,
        state: IncidentState::Open,
        cluster: "test".into(),
        subject,
        namespace: None,
        node: None,
        summary: "something happened".into(),
        first_seen,
        last_seen: first_seen,
        resolved_at: None,
        count: 1,
        objects: Vec::new(),
        records: Vec::new(),
        labels: BTreeMap::new(),
    }
}

fn change(transition: Transition, at: Timestamp, incident: &Incident) -> IncidentChange {
    IncidentChange {
        transition,
        at,
        incident: incident.clone(),
    }
}

fn notification(change: &IncidentChange, channel: &str) -> Notification {
    let id = Notification::key_for(change, "ops", channel);
    Notification {
        id,
        incident_id: change.incident.id.clone(),
        transition: change.transition,
        severity: change.incident.severity,
        subscription: "ops".into(),
        channel: channel.into(),
        created_at: change.at,
        change: change.clone(),
        message: Message {
            title: "t".into(),
            body: "b".into(),
        },
    }
}

fn attempt(
    n: &Notification,
    number: u32,
    at: Timestamp,
    outcome: DeliveryOutcome,
) -> DeliveryAttempt {
    DeliveryAttempt {
        notification_id: n.id.clone(),
        channel: n.channel.clone(),
        attempt: number,
        at,
        outcome,
    }
}

fn times(records: &[Record]) -> Vec<Timestamp> {
    records.iter().map(|r| r.observed_at).collect()
}

fn open(dir: &Path) -> Store {
    Store::open(dir).unwrap()
}

#[test]
fn records_are_indexed_by_object_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    // Three pods and a node, interleaved, appended out of time order within each object
    // (the index orders by observed_at, not by id). Includes pre-1970 and same-instant records.
    let mut ids = Vec::new();
    for i in 0..60i64 {
        let at = t((i * 7919) % 600);
        let mut r = match i % 4 {
            0 => pod_record("shop", "cart-1", at),
            1 => pod_record("shop", "cart-10", at), // shares a prefix with cart-1
            2 => pod_record("shop2", "cart-1", at), // same name, other namespace
            _ => node_record("node-a", at),
        };
        let id = store.append_record(&mut r).unwrap();
        assert_eq!(r.id, id);
        assert_ne!(id, RecordId::UNASSIGNED);
        ids.push(id);
    }
    let mut old = pod_record("shop", "cart-1", Timestamp::from_second(-86_400).unwrap());
    store.append_record(&mut old).unwrap();
    let mut ev = event_record(ObjectRef::pod("shop", "cart-1"), t(300));
    let ev_id = store.append_record(&mut ev).unwrap();

    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids are monotonic");
    assert_eq!(store.record(ids[5]).unwrap().unwrap().id, ids[5]);
    assert_eq!(store.record(RecordId(u64::MAX)).unwrap(), None);

    // By object: all of it, chronological, only that object (plus its Event).
    let all = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &TimeQuery::all())
        .unwrap();
    assert_eq!(all.len(), 15 + 2);
    assert!(all.iter().all(|r| r.object.key() == "shop/cart-1"));
    assert!(times(&all).is_sorted());
    assert_eq!(all[0].observed_at, old.observed_at, "pre-1970 sorts first");
    assert!(
        all.iter().any(|r| r.id == ev_id),
        "events of the object are included"
    );

    // A window, inclusive at both ends, then with a limit (oldest first) and latest-N.
    let q = TimeQuery::between(Some(t(100)), Some(t(400)));
    let window = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &q)
        .unwrap();
    let expected: Vec<_> = times(&all)
        .into_iter()
        .filter(|&at| at >= t(100) && at <= t(400))
        .collect();
    assert_eq!(times(&window), expected);
    assert!(!window.is_empty());
    let first3 = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &q.with_limit(3))
        .unwrap();
    assert_eq!(times(&first3), expected[..3]);
    let last3 = store
        .latest_records_for_object(&ObjectKind::Pod, "shop/cart-1", &q.with_limit(3))
        .unwrap();
    assert_eq!(times(&last3), expected[expected.len() - 3..]);
    let none = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &q.with_limit(0))
        .unwrap();
    assert!(none.is_empty());

    // Kind and namespace matter; unknown objects are empty.
    assert_eq!(
        store
            .records_for_object(&ObjectKind::Node, "node-a", &TimeQuery::all())
            .unwrap()
            .len(),
        15
    );
    assert!(
        store
            .records_for_object(&ObjectKind::Pod, "node-a", &TimeQuery::all())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .records_for_object(&ObjectKind::Pod, "shop2/cart-1", &TimeQuery::all())
            .unwrap()
            .len(),
        15
    );
    assert!(
        store
            .records_for_object(&ObjectKind::Pod, "shop/cart", &TimeQuery::all())
            .unwrap()
            .is_empty()
    );

    // By time across objects.
    let between = store
        .records_between(&TimeQuery::between(Some(t(0)), Some(t(99))))
        .unwrap();
    assert!(times(&between).is_sorted());
    assert!(
        between
            .iter()
            .all(|r| r.observed_at >= t(0) && r.observed_at <= t(99))
    );
    let everything = store.records_between(&TimeQuery::all()).unwrap();
    assert_eq!(everything.len(), 62);
    assert_eq!(
        between.len(),
        everything
            .iter()
            .filter(|r| r.observed_at >= t(0) && r.observed_at <= t(99))
            .count()
    );
    let limited = store
        .records_between(&TimeQuery::all().with_limit(5))
        .unwrap();
    assert_eq!(times(&limited), times(&everything)[..5]);
}

#[test]
fn incident_lifecycle_with_change_log_and_object_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    let node = ObjectRef::node("node-b");
    let mut inc = incident("NodeNotReady/node-b", node.clone(), t(10));
    store
        .put_incident_change(&change(Transition::Opened, t(10), &inc))
        .unwrap();
    assert_eq!(store.open_incidents().unwrap(), vec![inc.clone()]);

    // Updated: more affected pods, higher severity.
    inc.severity = Severity::Critical;
    inc.count = 5;
    inc.last_seen = t(20);
    inc.objects = vec![
        ObjectRef::pod("shop", "cart-1"),
        ObjectRef::pod("shop", "cart-2"),
    ];
    store
        .put_incident_change(&change(Transition::Updated, t(20), &inc))
        .unwrap();

    // A second, unrelated incident that stays open.
    let other = incident(
        "OOMKilled/shop/cart-2",
        ObjectRef::pod("shop", "cart-2"),
        t(15),
    );
    store
        .put_incident_change(&change(Transition::Opened, t(15), &other))
        .unwrap();

    // Resolved, and cart-2 is no longer listed as affected: its index entry must go.
    inc.state = IncidentState::Resolved;
    inc.resolved_at = Some(t(30));
    inc.last_seen = t(30);
    inc.objects = vec![ObjectRef::pod("shop", "cart-1")];
    store
        .put_incident_change(&change(Transition::Resolved, t(30), &inc))
        .unwrap();

    assert_eq!(store.incident(&inc.id).unwrap(), Some(inc.clone()));
    assert_eq!(store.incident(&IncidentId("nope".into())).unwrap(), None);

    let log = store.incident_changes(&inc.id).unwrap();
    let transitions: Vec<_> = log.iter().map(|c| c.transition).collect();
    assert_eq!(
        transitions,
        [
            Transition::Opened,
            Transition::Updated,
            Transition::Resolved
        ]
    );
    assert_eq!(log[1].incident.severity, Severity::Critical);
    assert_eq!(store.incident_changes(&other.id).unwrap().len(), 1);

    assert_eq!(store.open_incidents().unwrap(), vec![other.clone()]);

    let ids = |v: Vec<Incident>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .incidents_for_object(&ObjectKind::Node, "node-b")
            .unwrap()),
        [inc.id.clone()]
    );
    assert_eq!(
        ids(store
            .incidents_for_object(&ObjectKind::Pod, "shop/cart-1")
            .unwrap()),
        [inc.id.clone()]
    );
    assert_eq!(
        ids(store
            .incidents_for_object(&ObjectKind::Pod, "shop/cart-2")
            .unwrap()),
        std::slice::from_ref(&other.id),
        "the stale index entry of the resolved incident was removed"
    );
    assert!(
        store
            .incidents_for_object(&ObjectKind::Pod, "shop/cart-3")
            .unwrap()
            .is_empty()
    );

    // Active-in-range semantics, chronological by first_seen.
    let q = |since: i64, until: i64| TimeQuery::between(Some(t(since)), Some(t(until)));
    assert_eq!(
        ids(store.incidents(&TimeQuery::all()).unwrap()),
        [inc.id.clone(), other.id.clone()]
    );
    assert_eq!(
        ids(store.incidents(&q(0, 12)).unwrap()),
        [inc.id.clone()],
        "other not yet seen"
    );
    assert_eq!(
        ids(store.incidents(&q(30, 40)).unwrap()),
        [inc.id.clone(), other.id.clone()]
    );
    assert_eq!(
        ids(store.incidents(&q(31, 40)).unwrap()),
        std::slice::from_ref(&other.id),
        "inc resolved before"
    );
    assert_eq!(
        ids(store.incidents(&TimeQuery::all().with_limit(1)).unwrap()),
        [inc.id.clone()]
    );
}

#[test]
fn notifications_are_idempotent_and_leave_pending_when_settled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let inc = incident(
        "OOMKilled/shop/cart-1",
        ObjectRef::pod("shop", "cart-1"),
        t(0),
    );
    let opened = change(Transition::Opened, t(0), &inc);
    store.put_incident_change(&opened).unwrap();

    let webhook = notification(&opened, "webhook");
    let console = notification(&opened, "console");
    let mut mail = notification(&opened, "mail");
    mail.created_at = t(1);
    assert!(store.put_notification(&webhook).unwrap());
    assert!(
        !store.put_notification(&webhook).unwrap(),
        "same id twice is not a new notification"
    );
    let mut altered = webhook.clone();
    altered.message.title = "changed".into();
    assert!(!store.put_notification(&altered).unwrap());
    assert_eq!(
        store.notification(&webhook.id).unwrap(),
        Some(webhook.clone()),
        "first write wins"
    );
    assert!(store.put_notification(&console).unwrap());
    assert!(store.put_notification(&mail).unwrap());
    assert_eq!(store.notification("missing").unwrap(), None);

    let pending_ids = |s: &Store| {
        s.pending_notifications()
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(pending_ids(&store).len(), 3);

    // A failure keeps it pending; delivered and dead settle it.
    let failed = DeliveryOutcome::Failed {
        error: "503".into(),
        retry_after_secs: Some(1),
    };
    store
        .record_delivery(&attempt(&webhook, 1, t(2), failed.clone()))
        .unwrap();
    assert_eq!(pending_ids(&store).len(), 3);
    store
        .record_delivery(&attempt(
            &webhook,
            2,
            t(3),
            DeliveryOutcome::Delivered { status: Some(200) },
        ))
        .unwrap();
    store
        .record_delivery(&attempt(
            &console,
            1,
            t(3),
            DeliveryOutcome::Dead {
                error: "gone".into(),
            },
        ))
        .unwrap();
    assert_eq!(pending_ids(&store), [mail.id.clone()]);
    // Replaying the notification after delivery does not bring it back.
    assert!(!store.put_notification(&webhook).unwrap());
    assert_eq!(pending_ids(&store), [mail.id.clone()]);

    let deliveries = store.deliveries_for_incident(&inc.id).unwrap();
    assert_eq!(deliveries.len(), 3);
    let (n, attempts) = deliveries.iter().find(|(n, _)| n.id == webhook.id).unwrap();
    assert_eq!(n, &webhook);
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(attempts[1].outcome.is_delivered());
    assert_eq!(store.deliveries(&mail.id).unwrap(), vec![]);
    assert!(
        store
            .deliveries_for_incident(&IncidentId("other".into()))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn checkpoints_replace_per_resource() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.checkpoint("pods").unwrap(), None);
    let cp = |rv: &str| Checkpoint {
        resource: "pods".into(),
        resource_version: rv.into(),
    };
    store.put_checkpoint(&cp("10")).unwrap();
    store.put_checkpoint(&cp("42")).unwrap();
    store
        .put_checkpoint(&Checkpoint {
            resource: "nodes".into(),
            resource_version: "7".into(),
        })
        .unwrap();
    assert_eq!(store.checkpoint("pods").unwrap(), Some(cp("42")));
    assert_eq!(
        store.checkpoint("nodes").unwrap().unwrap().resource_version,
        "7"
    );
    assert_eq!(store.stats().unwrap().checkpoints, 2);
}

#[test]
fn watch_states_are_kept_per_resource_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let st = |key: &str, v: Option<&str>| ObjectState {
        key: key.into(),
        state: v.map(|v| v.as_bytes().to_vec()),
    };
    {
        let store = open(dir.path());
        assert_eq!(store.watch_states("pods").unwrap(), vec![]);
        store
            .put_watch_states("pods", &[st("uid-b", Some("B1")), st("uid-a", Some("A1"))])
            .unwrap();
        // A key that is a prefix of another resource's name must not leak across resources.
        store
            .put_watch_states("pod", &[st("x", Some("other"))])
            .unwrap();
        store
            .put_watch_states("pods", &[st("uid-b", None), st("uid-a", Some("A2"))])
            .unwrap();
        // Removing what is not there is fine.
        store
            .put_watch_states("pods", &[st("uid-zz", None)])
            .unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.watch_states("pods").unwrap(),
        vec![st("uid-a", Some("A2"))]
    );
    assert_eq!(
        store.watch_states("pod").unwrap(),
        vec![st("x", Some("other"))]
    );
    assert_eq!(store.watch_states("nodes").unwrap(), vec![]);
    store
        .put_checkpoint(&Checkpoint {
            resource: "pods".into(),
            resource_version: "9".into(),
        })
        .unwrap();
    store.reset_watch_positions().unwrap();
    assert_eq!(store.watch_states("pods").unwrap(), vec![]);
    assert_eq!(store.checkpoint("pods").unwrap(), None);
}

#[test]
fn watch_states_stream_one_at_a_time_and_stop_at_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let states: Vec<ObjectState> = (0..50)
        .map(|i| ObjectState {
            key: format!("uid-{i:03}"),
            state: Some(vec![i as u8]),
        })
        .collect();
    store.put_watch_states("pods", &states).unwrap();
    store
        .put_watch_states(
            "nodes",
            &[ObjectState {
                key: "n".into(),
                state: Some(b"x".to_vec()),
            }],
        )
        .unwrap();
    let mut seen = Vec::new();
    let n = store
        .for_each_watch_state("pods", |s| {
            seen.push(s);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(n, 50);
    assert_eq!(seen, states);
    assert_eq!(seen, store.watch_states("pods").unwrap());

    // The callback's error stops the walk and comes back as is.
    #[derive(Debug)]
    enum E {
        Store,
        Enough,
    }
    impl From<StoreError> for E {
        fn from(_: StoreError) -> Self {
            E::Store
        }
    }
    let mut calls = 0;
    let r = store.for_each_watch_state("pods", |_| {
        calls += 1;
        if calls == 3 { Err(E::Enough) } else { Ok(()) }
    });
    assert!(matches!(r, Err(E::Enough)));
    assert_eq!(calls, 3);
}

fn state(key: &str, v: Option<&str>) -> ObjectState {
    ObjectState {
        key: key.into(),
        state: v.map(|v| v.as_bytes().to_vec()),
    }
}

#[test]
fn watch_states_overwrite_delete_and_keep_resources_apart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        // Interleaved writes to resources whose names share a prefix.
        store
            .put_watch_states(
                "pods",
                &[state("ns/a", Some("a1")), state("ns/b", Some("b1"))],
            )
            .unwrap();
        store
            .put_watch_states(
                "pod",
                &[state("ns/a", Some("other")), state("ns/c", Some("c"))],
            )
            .unwrap();
        // Overwrite, delete, delete of a missing key, in one call; the later entry of a key wins.
        store
            .put_watch_states(
                "pods",
                &[
                    state("ns/a", Some("a2")),
                    state("ns/b", None),
                    state("ns/missing", None),
                    state("ns/d", Some("d1")),
                    state("ns/d", Some("d2")),
                ],
            )
            .unwrap();
        store
            .put_watch_states("pod", &[state("ns/c", None)])
            .unwrap();
        // A key deleted then written again.
        store
            .put_watch_states("pods", &[state("ns/b", Some("b2"))])
            .unwrap();
        store.put_watch_states("pods", &[]).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(
            stats.trees["watch_state_log"], 5,
            "one entry per non-empty call"
        );
        assert_eq!(stats.trees["watch_state"], 0, "nothing folded yet");
    }
    let store = open(dir.path());
    let pods = vec![
        state("ns/a", Some("a2")),
        state("ns/b", Some("b2")),
        state("ns/d", Some("d2")),
    ];
    assert_eq!(store.watch_states("pods").unwrap(), pods);
    assert_eq!(
        store.watch_states("pod").unwrap(),
        vec![state("ns/a", Some("other"))]
    );
    assert_eq!(store.watch_states("po").unwrap(), vec![]);
    let mut seen = Vec::new();
    let n = store
        .for_each_watch_state("pods", |s| {
            seen.push(s);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!((n, seen), (3, pods));
    store.reset_watch_positions().unwrap();
    assert_eq!(store.watch_states("pods").unwrap(), vec![]);
    assert_eq!(store.watch_states("pod").unwrap(), vec![]);
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.trees["watch_state_log"], stats.trees["watch_state"]),
        (0, 0)
    );
    // Writing after a reset starts a new log.
    store
        .put_watch_states("pods", &[state("ns/z", Some("z"))])
        .unwrap();
    assert_eq!(
        store.watch_states("pods").unwrap(),
        vec![state("ns/z", Some("z"))]
    );
}

#[test]
fn watch_states_survive_a_fold_at_the_default_bound_and_a_reopen() {
    // 140 calls of 256 changes over 600 keys (35,840 changes) pass the default log bound of
    // 32,768 changes once: one fold, which writes each of the 600 keys once.
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    {
        let store = open(dir.path());
        for call in 0..140u32 {
            let states: Vec<ObjectState> = (0..256u32)
                .map(|j| {
                    let k = (call * 256 + j) * 7 % 600;
                    ObjectState {
                        key: format!("ns/pod-{k:04}"),
                        // every 5th change of a call removes its key
                        state: (j % 5 != 0).then(|| format!("{call}-{j}").into_bytes()),
                    }
                })
                .collect();
            for s in &states {
                match &s.state {
                    Some(v) => model.insert(s.key.clone(), v.clone()),
                    None => model.remove(&s.key),
                };
            }
            store.put_watch_states("pods", &states).unwrap();
        }
        store
            .put_watch_states("nodes", &[state("n1", Some("ready"))])
            .unwrap();
        let stats = store.stats().unwrap();
        // The fold ran before the call that would have passed the bound (the 129th):
        // 128 blocks folded, 12 logged since, plus the node's.
        assert_eq!(stats.trees["watch_state_log"], 13);
        assert!(stats.trees["watch_state"] <= 600);
        let expected: Vec<ObjectState> = model
            .iter()
            .map(|(k, v)| ObjectState {
                key: k.clone(),
                state: Some(v.clone()),
            })
            .collect();
        assert_eq!(store.watch_states("pods").unwrap(), expected);
    }
    let store = open(dir.path());
    let got: BTreeMap<String, Vec<u8>> = store
        .watch_states("pods")
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.state.unwrap()))
        .collect();
    assert_eq!(got, model);
    assert_eq!(
        store.watch_states("nodes").unwrap(),
        vec![state("n1", Some("ready"))]
    );
}

#[tokio::test]
async fn data_survives_reopen_and_ids_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let inc = incident("NodeNotReady/node-a", ObjectRef::node("node-a"), t(0));
    let opened = change(Transition::Opened, t(0), &inc);
    let n = notification(&opened, "webhook");
    let first_id;
    {
        let store = open(dir.path());
        let mut r = node_record("node-a", t(1));
        first_id = store.append_record(&mut r).unwrap();
        store.put_incident_change(&opened).unwrap();
        store.put_notification(&n).unwrap();
        store
            .put_checkpoint(&Checkpoint {
                resource: "nodes".into(),
                resource_version: "5".into(),
            })
            .unwrap();
        store.flush().await.unwrap();
    }
    {
        // Dropped without flush: sled flushes on drop too.
        let store = open(dir.path());
        let mut r = node_record("node-a", t(2));
        store.append_record(&mut r).unwrap();
    }
    let store = open(dir.path());
    let records = store
        .records_for_object(&ObjectKind::Node, "node-a", &TimeQuery::all())
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].id, first_id);
    assert!(
        records[1].id > first_id,
        "ids stay monotonic across restarts"
    );
    let mut r = node_record("node-a", t(3));
    assert!(store.append_record(&mut r).unwrap() > records[1].id);
    assert_eq!(store.open_incidents().unwrap(), vec![inc]);
    assert_eq!(store.pending_notifications().unwrap(), vec![n]);
    assert_eq!(
        store.checkpoint("nodes").unwrap().unwrap().resource_version,
        "5"
    );
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.records, stats.incidents, stats.notifications),
        (3, 1, 1)
    );
    assert!(stats.trees.contains_key("records"));
    assert!(stats.size_on_disk > 0);
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    match Store::open(dir.path()) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    // The lock goes with the last handle (sled lets go of it from a background thread a moment
    // later; opening waits for that).
    Store::open(dir.path()).unwrap();
}

#[test]
fn opening_waits_for_a_lock_released_within_lock_wait_and_no_longer() {
    let dir = tempfile::tempdir().unwrap();
    let zero = StoreOptions {
        lock_wait: Duration::ZERO,
        ..StoreOptions::default()
    };
    let short = StoreOptions {
        lock_wait: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = open(dir.path());

    // Held for longer than the wait: Locked, after about the wait and not much more.
    let start = Instant::now();
    assert!(Store::open_with(dir.path(), &zero).unwrap_err().is_locked());
    let started = Instant::now();
    assert!(
        Store::open_with(dir.path(), &short)
            .unwrap_err()
            .is_locked()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "gave up after {waited:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));

    // Released while the opener waits: the open succeeds and sees the data.
    let mut r = node_record("node-a", t(1));
    store.append_record(&mut r).unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(store);
    });
    let long = StoreOptions {
        lock_wait: Duration::from_secs(30),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), &long).unwrap();
    holder.join().unwrap();
    assert_eq!(store.stats().unwrap().records, 1);
}

const PROBE_ENV: &str = "HERALD_STORE_LOCK_PROBE_DIR";

/// Child side of `second_open_from_another_process_is_locked`: does nothing unless run by it.
#[test]
fn lock_probe_child() {
    let Some(dir) = std::env::var_os(PROBE_ENV) else {
        return;
    };
    match Store::open(Path::new(&dir)) {
        Ok(_) => println!("probe: opened"),
        Err(StoreError::Locked { .. }) => println!("probe: locked"),
        Err(e) => println!("probe: error {e}"),
    }
}

fn probe(dir: &Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_ENV, dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // libtest prints the test's output on the same line as "test lock_probe_child ... ".
    stdout
        .lines()
        .find_map(|l| l.find("probe: ").map(|at| l[at..].trim().to_string()))
        .unwrap_or_else(|| format!("probe did not run: {stdout}"))
}

#[test]
fn second_open_from_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(probe(dir.path()), "probe: locked");
    drop(store);
    assert_eq!(probe(dir.path()), "probe: opened");
}

#[test]
fn prune_removes_old_records_and_resolved_incidents_with_their_dependants() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    // 3000 records over 3000 s (more than one prune chunk), for two objects.
    for i in 0..3000i64 {
        let mut r = if i % 2 == 0 {
            pod_record("shop", "cart-1", t(i))
        } else {
            node_record("node-a", t(i))
        };
        store.append_record(&mut r).unwrap();
    }

    // An old resolved incident with a notification and attempts, an old one still open,
    // and a recent resolved one.
    let mut old = incident(
        "OOMKilled/shop/cart-1",
        ObjectRef::pod("shop", "cart-1"),
        t(10),
    );
    old.objects = vec![ObjectRef::node("node-a")];
    let opened = change(Transition::Opened, t(10), &old);
    store.put_incident_change(&opened).unwrap();
    let n = notification(&opened, "webhook");
    store.put_notification(&n).unwrap();
    store
        .record_delivery(&attempt(
            &n,
            1,
            t(11),
            DeliveryOutcome::Failed {
                error: "x".into(),
                retry_after_secs: None,
            },
        ))
        .unwrap();
    store
        .record_delivery(&attempt(
            &n,
            2,
            t(12),
            DeliveryOutcome::Delivered { status: None },
        ))
        .unwrap();
    old.state = IncidentState::Resolved;
    old.resolved_at = Some(t(100));
    store
        .put_incident_change(&change(Transition::Resolved, t(100), &old))
        .unwrap();

    let still_open = incident("NodeNotReady/node-a", ObjectRef::node("node-a"), t(20));
    let so = change(Transition::Opened, t(20), &still_open);
    store.put_incident_change(&so).unwrap();
    let pending = notification(&so, "webhook");
    store.put_notification(&pending).unwrap();

    let mut recent = incident(
        "OOMKilled/shop/cart-9",
        ObjectRef::pod("shop", "cart-9"),
        t(1500),
    );
    store
        .put_incident_change(&change(Transition::Opened, t(1500), &recent))
        .unwrap();
    recent.state = IncidentState::Resolved;
    recent.resolved_at = Some(t(2500));
    store
        .put_incident_change(&change(Transition::Resolved, t(2500), &recent))
        .unwrap();

    let stats = store.prune(t(2000)).unwrap();
    assert_eq!(stats.records, 2000);
    assert_eq!(stats.incidents, 1);
    assert_eq!(stats.incident_changes, 2);
    assert_eq!(stats.notifications, 1);
    assert_eq!(stats.delivery_attempts, 2);

    let all = store.records_between(&TimeQuery::all()).unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0].observed_at, t(2000), "the cutoff itself is kept");
    let pod = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &TimeQuery::all())
        .unwrap();
    assert_eq!(pod.len(), 500);
    assert_eq!(store.incident(&old.id).unwrap(), None);
    assert!(store.incident_changes(&old.id).unwrap().is_empty());
    assert_eq!(store.notification(&n.id).unwrap(), None);
    assert!(store.deliveries(&n.id).unwrap().is_empty());
    assert!(
        store
            .incidents_for_object(&ObjectKind::Pod, "shop/cart-1")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .incidents_for_object(&ObjectKind::Node, "node-a")
            .unwrap(),
        vec![still_open.clone()]
    );
    assert_eq!(store.open_incidents().unwrap(), vec![still_open]);
    assert_eq!(store.pending_notifications().unwrap(), vec![pending]);
    assert_eq!(store.incident(&recent.id).unwrap(), Some(recent));

    // Every index shrank with its tree; a second prune finds nothing.
    let s = store.stats().unwrap();
    assert_eq!(s.records, 1000);
    store.write_object_index().unwrap();
    let s = store.stats().unwrap();
    assert_eq!(s.records, 1000);
    // Appended one by one: a block and a time index entry each, the watermark, and object
    // index entries of at most 10 minutes each: 2 to 4 per object for the 1000 s kept.
    let entries = s.trees["records"] - 2 * 1000 - 1;
    assert!((4..=8).contains(&entries), "{entries} object index entries");
    assert_eq!(s.trees["incidents_by_time"], 2);
    assert_eq!(s.trees["incidents_by_object"], 2);
    assert_eq!(s.trees["notifications_by_incident"], 1);
    assert_eq!(s.delivery_attempts, 0);
    assert_eq!(store.prune(t(2000)).unwrap(), Default::default());
}

#[test]
fn object_keys_with_separator_bytes_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Names are Kubernetes names in practice; the store must not care.
    let odd = ["a", "a\0", "a\0b", "a\u{1}", "\0", ""];
    for name in odd {
        let mut r = pod_record("ns", name, t(0));
        store.append_record(&mut r).unwrap();
    }
    for name in odd {
        let got = store
            .records_for_object(&ObjectKind::Pod, &format!("ns/{name}"), &TimeQuery::all())
            .unwrap();
        assert_eq!(got.len(), 1, "{name:?}");
        assert_eq!(got[0].object.name, name);
    }
}

#[test]
fn append_records_is_one_group_commit_with_the_same_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut single = pod_record("shop", "cart-1", t(10));
    let first = store.append_record(&mut single).unwrap();
    let mut group = vec![
        pod_record("shop", "cart-1", t(11)),
        node_record("node-a", t(12)),
        pod_record("shop", "cart-2", t(13)),
    ];
    store.append_records(&mut group).unwrap();
    let ids: Vec<u64> = group.iter().map(|r| r.id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    assert!(ids[0] > first.0);
    for r in &group {
        assert_eq!(store.record(r.id).unwrap().as_ref(), Some(r));
    }
    let cart1 = store
        .records_for_object(&ObjectKind::Pod, "shop/cart-1", &TimeQuery::default())
        .unwrap();
    assert_eq!(times(&cart1), vec![t(10), t(11)]);
    let all = store.records_between(&TimeQuery::default()).unwrap();
    assert_eq!(times(&all), vec![t(10), t(11), t(12), t(13)]);
    // An empty group writes nothing.
    store.append_records(&mut []).unwrap();
    assert_eq!(
        store.records_between(&TimeQuery::default()).unwrap().len(),
        4
    );
}

#[test]
fn checkpoints_are_tied_to_the_cluster_identity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cp = |rv: &str| Checkpoint {
        resource: "pods".into(),
        resource_version: rv.into(),
    };
    // A data directory from before identities were kept: its checkpoints are adopted.
    store.put_checkpoint(&cp("7")).unwrap();
    store
        .put_watch_states("pods", &[state("ns/a", Some("A"))])
        .unwrap();
    let mut r = node_record("node-a", t(1));
    store.append_record(&mut r).unwrap();
    assert_eq!(store.cluster_uid().unwrap(), None);
    assert_eq!(
        store.adopt_cluster("uid-1").unwrap(),
        ClusterIdentity::Recorded
    );
    assert_eq!(store.cluster_uid().unwrap().as_deref(), Some("uid-1"));
    assert_eq!(store.checkpoint("pods").unwrap(), Some(cp("7")));

    // The same cluster again, after a reopen: nothing changes.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.adopt_cluster("uid-1").unwrap(), ClusterIdentity::Same);
    assert_eq!(store.checkpoint("pods").unwrap(), Some(cp("7")));
    assert_eq!(store.watch_states("pods").unwrap().len(), 1);

    // Another cluster: checkpoints and compact state go, records stay.
    assert_eq!(
        store.adopt_cluster("uid-2").unwrap(),
        ClusterIdentity::Changed {
            previous: "uid-1".into()
        }
    );
    assert_eq!(store.checkpoint("pods").unwrap(), None);
    assert!(store.watch_states("pods").unwrap().is_empty());
    assert_eq!(store.stats().unwrap().records, 1);
    assert_eq!(store.cluster_uid().unwrap().as_deref(), Some("uid-2"));
    assert_eq!(store.adopt_cluster("uid-2").unwrap(), ClusterIdentity::Same);

    // An explicit reset forgets the cluster too.
    store.reset_watch_positions().unwrap();
    assert_eq!(store.cluster_uid().unwrap(), None);
    assert_eq!(
        store.adopt_cluster("uid-3").unwrap(),
        ClusterIdentity::Recorded
    );
}

#[test]
fn records_since_an_instant_stream_one_block_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Three group commits (blocks) of records at 0..30 s, appended out of time order.
    for chunk in [[20i64, 5, 25], [0, 29, 12], [7, 18, 3]] {
        let mut rs: Vec<Record> = chunk.iter().map(|&s| node_record("node-a", t(s))).collect();
        store.append_records(&mut rs).unwrap();
    }
    let mut got = Vec::new();
    let n = store
        .for_each_record_since(t(12), |r| {
            got.push(r.observed_at);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    got.sort();
    assert_eq!(
        got,
        times(
            &store
                .records_between(&TimeQuery::between(Some(t(12)), None))
                .unwrap()
        )
    );
    assert_eq!(n, 5);
    assert_eq!(got, vec![t(12), t(18), t(20), t(25), t(29)]);
    // The callback's error stops the scan.
    let mut calls = 0;
    let r = store.for_each_record_since(t(0), |_| {
        calls += 1;
        if calls == 2 {
            Err(StoreError::Locked {
                path: dir.path().to_path_buf(),
            })
        } else {
            Ok(())
        }
    });
    assert!(r.is_err());
    assert_eq!(calls, 2);
}

#[test]
fn one_resource_s_states_can_be_cleared_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let many: Vec<ObjectState> = (0..3000)
        .map(|i| state(&format!("ns/e{i}"), Some("1")))
        .collect();
    // A list-sized call (to the base) and a small one (to the log), for two resources.
    store.put_watch_states("events", &many).unwrap();
    store
        .put_watch_states("events", &[state("ns/late", Some("2"))])
        .unwrap();
    store
        .put_watch_states("pods", &[state("ns/a", Some("A"))])
        .unwrap();
    store
        .put_checkpoint(&Checkpoint {
            resource: "events".into(),
            resource_version: "9".into(),
        })
        .unwrap();
    assert_eq!(store.watch_states("events").unwrap().len(), 3001);
    assert_eq!(store.clear_watch_states("events").unwrap(), 3001);
    assert!(store.watch_states("events").unwrap().is_empty());
    assert_eq!(store.clear_watch_states("events").unwrap(), 0);
    assert_eq!(
        store.watch_states("pods").unwrap(),
        vec![state("ns/a", Some("A"))]
    );
    assert!(store.checkpoint("events").unwrap().is_some());
    // Writing again afterwards works, also across a reopen.
    store
        .put_watch_states("events", &[state("ns/new", Some("3"))])
        .unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.watch_states("events").unwrap(),
        vec![state("ns/new", Some("3"))]
    );
}
