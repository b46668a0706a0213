//! The outbox's dead letters, retries, digests, silenced notifications and silences, on a real
//! sled database; and that all of it survives reopening the store.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use herald_core::{
    DeliveryAttempt, DeliveryOutcome, Incident, IncidentChange, IncidentId, IncidentState, Message,
    Notification, ObjectRef, Severity, Silence, SilenceMatcher, Timestamp, Transition,
};
use herald_store::{Fate, Store};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn notification(name: &str, at: Timestamp) -> Notification {
    let incident = Incident {
        id: IncidentId::new(&format!("Test/{name}"), at),
        fingerprint: format!("Test/{name}"),
        rule: "Test".into(),
        severity: Severity::Warning,
        state: IncidentState::Open,
        cluster: "test".into(),
        subject: ObjectRef::pod("shop", name),
        namespace: Some("shop".into()),
        node: None,
        summary: format!("{name} broke"),
        first_seen: at,
        last_seen: at,
        resolved_at: None,
        count: 1,
        objects: Vec::new(),
        records: Vec::new(),
        labels: BTreeMap::new(),
    };
    let change = IncidentChange {
        transition: Transition::Opened,
        at,
        incident,
    };
    Notification {
        id: Notification::key_for(&change, "ops", "hook"),
        incident_id: change.incident.id.clone(),
        transition: Transition::Opened,
        severity: Severity::Warning,
        subscription: "ops".into(),
        channel: "hook".into(),
        created_at: at,
        change,
        message: Message {
            title: name.into(),
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

#[test]
fn dead_letters_are_listed_and_retried_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let n = notification("a", t(0));
    assert!(store.put_notification(&n).unwrap());
    store
        .record_delivery(&attempt(
            &n,
            1,
            t(1),
            DeliveryOutcome::Failed {
                error: "HTTP 500".into(),
                retry_after_secs: None,
            },
        ))
        .unwrap();
    assert!(store.is_pending(&n.id).unwrap());
    assert!(store.dead_notifications().unwrap().is_empty());
    store
        .record_delivery(&attempt(
            &n,
            2,
            t(2),
            DeliveryOutcome::Dead {
                error: "too old".into(),
            },
        ))
        .unwrap();
    assert!(!store.is_pending(&n.id).unwrap());
    let dead = store.dead_notifications().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0.id, n.id);
    assert_eq!(dead[0].1.len(), 2);

    // Retry: back to pending, as of t(10); a second retry finds nothing to do.
    let back = store.retry_notification(&n.id, t(10)).unwrap().unwrap();
    assert_eq!(back.id, n.id);
    assert!(store.retry_notification(&n.id, t(11)).unwrap().is_none());
    assert!(store.retry_notification("nope", t(11)).unwrap().is_none());
    assert!(store.is_pending(&n.id).unwrap());
    assert!(!store.is_dead(&n.id).unwrap());
    assert_eq!(store.pending_since(&n.id).unwrap(), Some(t(10)));
    assert_eq!(store.pending_notifications().unwrap().len(), 1);

    // Delivered after the retry: settled, not dead.
    store
        .record_delivery(&attempt(
            &n,
            1,
            t(12),
            DeliveryOutcome::Delivered { status: Some(200) },
        ))
        .unwrap();
    assert!(!store.is_pending(&n.id).unwrap());
    assert!(store.dead_notifications().unwrap().is_empty());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.deliveries(&n.id).unwrap().len(), 3);
    assert!(store.pending_notifications().unwrap().is_empty());
}

#[test]
fn digests_settle_what_they_fold_and_silenced_notifications_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let folded: Vec<Notification> = (0..3)
        .map(|i| notification(&format!("p{i}"), t(i)))
        .collect();
    for n in &folded {
        store.put_notification(n).unwrap();
    }
    // One of them was delivered meanwhile: the digest leaves it alone.
    store
        .record_delivery(&attempt(
            &folded[2],
            1,
            t(5),
            DeliveryOutcome::Delivered { status: None },
        ))
        .unwrap();
    let mut digest = notification("digest", t(6));
    digest.id = "digest/hook/1".into();
    let ids: Vec<String> = folded.iter().map(|n| n.id.clone()).collect();
    assert!(store.put_digest(&digest, &ids, t(6)).unwrap());
    assert!(!store.put_digest(&digest, &ids, t(7)).unwrap());
    let pending: Vec<String> = store
        .pending_notifications()
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(pending, ["digest/hook/1"]);
    assert_eq!(
        store.fate(&ids[0]).unwrap(),
        Some(Fate::Digested {
            digest_id: "digest/hook/1".into(),
            at: t(6)
        })
    );
    assert_eq!(store.fate(&ids[2]).unwrap(), None);

    let s = notification("quiet", t(8));
    assert!(store.put_silenced(&s, "sil-1", t(8)).unwrap());
    assert!(!store.put_silenced(&s, "sil-1", t(9)).unwrap());
    assert!(!store.is_pending(&s.id).unwrap());
    assert!(store.notification(&s.id).unwrap().is_some());
    assert!(matches!(
        store.fate(&s.id).unwrap(),
        Some(Fate::Silenced { .. })
    ));
    // The silenced notification is part of its incident's history.
    let hist = store.deliveries_for_incident(&s.incident_id).unwrap();
    assert_eq!(hist.len(), 1);
}

#[test]
fn silences_are_stored_listed_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = Silence {
        id: "s1".into(),
        matchers: vec![SilenceMatcher {
            key: "namespace".into(),
            value: "shop".into(),
        }],
        starts_at: t(0),
        ends_at: t(7200),
        comment: "maintenance".into(),
        created_by: "me".into(),
        created_at: t(0),
    };
    store.put_silence(&s).unwrap();
    assert!(store.silences().unwrap()[0].is_active(t(1)));
    let expired = store.expire_silence("s1", t(60)).unwrap().unwrap();
    assert_eq!(expired.ends_at, t(60));
    assert!(!store.silence("s1").unwrap().unwrap().is_active(t(61)));
    // Expiring again never extends it.
    assert_eq!(
        store.expire_silence("s1", t(90)).unwrap().unwrap().ends_at,
        t(60)
    );
    assert!(store.expire_silence("nope", t(1)).unwrap().is_none());
    let who = BTreeMap::from([("ops".to_string(), "SRE rota".to_string())]);
    store.put_subscribers(&who).unwrap();
    store
        .put_subscribers(&BTreeMap::from([(
            "web".to_string(),
            "Web team".to_string(),
        )]))
        .unwrap();
    assert_eq!(
        store.subscriber("ops").unwrap().as_deref(),
        Some("SRE rota")
    );
    assert_eq!(
        store.subscriber("web").unwrap().as_deref(),
        Some("Web team")
    );
    assert_eq!(store.subscriber("nope").unwrap(), None);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.silences().unwrap().len(), 1);
    assert_eq!(
        store.subscriber("ops").unwrap().as_deref(),
        Some("SRE rota")
    );
}
