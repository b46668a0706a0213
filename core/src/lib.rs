//! Domain types of kube-herald, shared by every crate: object references, records (what the
//! watcher observed), incidents (what the classifier concluded), and notifications (what the
//! notifiers deliver). This crate does no I/O and has no Kubernetes client dependency, so every
//! other crate can depend on it and state logic can be tested with plain values.

pub mod incident;
pub mod notification;
pub mod object;
pub mod record;
pub mod severity;
pub mod silence;
pub mod time;

pub use incident::{Incident, IncidentChange, IncidentId, IncidentState, Transition};
pub use notification::{DeliveryAttempt, DeliveryOutcome, Message, Notification};
pub use object::{ObjectKind, ObjectRef};
pub use record::{
    Checkpoint, EventRecord, EventSource, NodeChange, NodeTransition, ObjectState, PodChange,
    PodTransition, Record, RecordBody, RecordId,
};
pub use severity::Severity;
pub use silence::{Silence, SilenceMatcher};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

/// Errors from parsing domain values (severities, object keys) given as text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    /// A severity name that is not one of `info`, `warning`, `critical`.
    #[error("unknown severity {0:?} (expected info, warning or critical)")]
    UnknownSeverity(String),
    /// An object key that is not `NAME` or `NAMESPACE/NAME`.
    #[error("invalid object key {0:?} (expected NAME or NAMESPACE/NAME)")]
    InvalidObjectKey(String),
}
