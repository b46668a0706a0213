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
    /// The idempotency key of a notification for these parts.
    pub fn key_for(
        incident: &IncidentId,
        transition: Transition,
        subscription: &str,
        channel: &str,
    ) -> String {
        format!("{incident}/{transition}/{subscription}/{channel}")
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
