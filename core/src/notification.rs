//! Notifications: an incident transition routed to one channel for one subscription, with its
//! rendered message; and the delivery attempts made for it.

use serde::{Deserialize, Serialize};

use crate::incident::{IncidentChange, IncidentId, Transition};
use crate::severity::Severity;
use crate::time::Timestamp;

/// A rendered message, ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Message {
    /// Short title (email subject, chat headline).
    pub title: String,
    /// Body in the channel's format (plain text, Markdown, HTML, or a JSON document).
    pub body: String,
}

/// One notification: one incident transition, for one subscription, on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key, stable for (incident id, transition, subscription, channel); receivers
    /// use it to drop duplicates of an at-least-once delivery.
    pub id: String,
    /// The incident it is about.
    pub incident_id: IncidentId,
    /// The transition it announces.
    pub transition: Transition,
    /// Severity at the time of the transition.
    pub severity: Severity,
    /// Subscription that routed it.
    pub subscription: String,
    /// Channel name it goes to.
    pub channel: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// The incident transition itself (channels that send structured JSON use it).
    pub change: IncidentChange,
    /// The rendered message.
    pub message: Message,
}

impl Notification {
    /// The idempotency key of the notification of `change` for `subscription` on `channel`:
    /// `INCIDENT/opened/SUB/CHANNEL`, `INCIDENT/resolved/SUB/CHANNEL`, and for the (possibly
    /// many) updates of one incident `INCIDENT/updated@MILLIS/SUB/CHANNEL`, where `MILLIS` is
    /// the instant of that update, so that each update is a notification of its own while a
    /// change seen twice keeps its key.
    pub fn key_for(change: &IncidentChange, subscription: &str, channel: &str) -> String {
        let incident = &change.incident.id;
        match change.transition {
            Transition::Updated => format!(
                "{incident}/updated@{}/{subscription}/{channel}",
                change.at.as_millisecond()
            ),
            t => format!("{incident}/{t}/{subscription}/{channel}"),
        }
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver accepted it.
    Delivered {
        /// HTTP status or SMTP code, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    /// It failed and may be retried.
    Failed {
        /// What went wrong (never contains a secret).
        error: String,
        /// Seconds the receiver asked us to wait, if it said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// It failed for good and became a dead letter.
    Dead {
        /// Why.
        error: String,
    },
}

impl DeliveryOutcome {
    /// Whether the receiver accepted the notification.
    pub fn is_delivered(&self) -> bool {
        matches!(self, DeliveryOutcome::Delivered { .. })
    }
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// The notification's id.
    pub notification_id: String,
    /// Channel name.
    pub channel: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt finished.
    pub at: Timestamp,
    /// What happened.
    pub outcome: DeliveryOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Incident, IncidentState};
    use crate::object::ObjectRef;

    fn change(transition: Transition, at_ms: i64) -> IncidentChange {
        let at = Timestamp::from_millisecond(at_ms).unwrap();
        let fingerprint = "EvictionStorm/node-b".to_string();
        IncidentChange {
            transition,
            at,
            incident: Incident {
                id: IncidentId::new(&fingerprint, Timestamp::UNIX_EPOCH),
                fingerprint,
                rule: "EvictionStorm".into(),
                severity: Severity::Critical,
                state: IncidentState::Open,
                cluster: "c".into(),
                subject: ObjectRef::node("node-b"),
                namespace: None,
                node: Some("node-b".into()),
                summary: "storm".into(),
                first_seen: Timestamp::UNIX_EPOCH,
                last_seen: at,
                resolved_at: None,
                count: 5,
                objects: Vec::new(),
                records: Vec::new(),
                labels: Default::default(),
            },
        }
    }

    #[test]
    fn keys_are_stable_and_each_update_has_its_own() {
        let opened = Notification::key_for(&change(Transition::Opened, 1_000), "ops", "hook");
        assert_eq!(opened, "EvictionStorm/node-b@0/opened/ops/hook");
        // Opened and resolved do not depend on when they were seen.
        assert_eq!(
            Notification::key_for(&change(Transition::Resolved, 5_000), "ops", "hook"),
            Notification::key_for(&change(Transition::Resolved, 9_000), "ops", "hook"),
        );
        let u1 = Notification::key_for(&change(Transition::Updated, 2_000), "ops", "hook");
        let u2 = Notification::key_for(&change(Transition::Updated, 3_000), "ops", "hook");
        assert_eq!(u1, "EvictionStorm/node-b@0/updated@2000/ops/hook");
        assert_ne!(u1, u2);
        assert_ne!(
            u1,
            Notification::key_for(&change(Transition::Updated, 2_000), "ops", "mail")
        );
    }
}
