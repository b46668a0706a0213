//! Test helpers: realistic incident changes and notifications, and a sleeper that records waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::{
    Incident, IncidentChange, IncidentId, IncidentState, Message, Notification, ObjectRef,
    Severity, Timestamp, Transition,
};

use crate::channel::BoxFuture;
use crate::dispatch::Sleeper;

/// An incident change for `rule` at a fixed instant.
pub fn change(rule: &str, severity: Severity, ns: Option<&str>, t: Transition) -> IncidentChange {
    let opened: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
    let subject = match ns {
        Some(ns) => ObjectRef::pod(ns, "cart-1"),
        None => ObjectRef::node("node-b"),
    };
    let fingerprint = format!("{rule}/{}", subject.key());
    IncidentChange {
        transition: t,
        at: opened,
        incident: Incident {
            id: IncidentId::new(&fingerprint, opened),
            fingerprint,
            rule: rule.to_string(),
            severity,
            state: if t == Transition::Resolved {
                IncidentState::Resolved
            } else {
                IncidentState::Open
            },
            cluster: "prod".into(),
            namespace: ns.map(str::to_string),
            node: Some("node-b".into()),
            summary: format!("{rule} on {subject}"),
            subject,
            first_seen: opened,
            last_seen: opened,
            resolved_at: None,
            count: 1,
            objects: vec![],
            records: vec![],
            labels: Default::default(),
        },
    }
}

/// A notification for `channel`.
pub fn notification(channel: &str) -> Notification {
    let c = change("NodeNotReady", Severity::Critical, None, Transition::Opened);
    Notification {
        id: Notification::key_for(&c, "sre", channel),
        incident_id: c.incident.id.clone(),
        transition: c.transition,
        severity: c.incident.severity,
        subscription: "sre".into(),
        channel: channel.into(),
        created_at: c.at,
        change: c,
        message: Message {
            title: "[CRITICAL] NodeNotReady".into(),
            body: "Node node-b is NotReady".into(),
        },
    }
}

/// Records requested waits and returns at once.
#[derive(Debug, Default)]
pub struct RecordingSleeper(Arc<Mutex<Vec<Duration>>>);

impl RecordingSleeper {
    /// The waits requested so far.
    pub fn waits(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(d);
        Box::pin(async {})
    }
}
