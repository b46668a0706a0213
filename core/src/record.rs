//! Records: compact facts the watcher observed (an Event, a pod transition, a node transition),
//! the unit that is stored, classified and shown in history. A record never holds a whole
//! Kubernetes object, only the fields operators and rules need.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::object::ObjectRef;
use crate::time::Timestamp;

/// Identifier of a stored record, assigned by the store when the record is persisted
/// (monotonically increasing). [`RecordId::UNASSIGNED`] until then.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct RecordId(pub u64);

impl RecordId {
    /// The id of a record that has not been stored yet.
    pub const UNASSIGNED: RecordId = RecordId(0);
}

/// One observed fact about one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Store-assigned id ([`RecordId::UNASSIGNED`] before persistence).
    #[serde(default)]
    pub id: RecordId,
    /// Name of the cluster this came from (from the config).
    pub cluster: String,
    /// When the watcher observed it.
    pub observed_at: Timestamp,
    /// The object the record is about; for Events, the involved object.
    pub object: ObjectRef,
    /// The node involved: a pod's `spec.nodeName`, a node's own name, or an Event's source host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The controlling owner of the object (a pod's ReplicaSet, Job, ...), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ObjectRef>,
    /// Labels of the object (pods and nodes), for routing and rule matching.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// What was observed.
    pub body: RecordBody,
}

impl Record {
    /// A short name for the record's kind, used in tables and rule matching:
    /// `event`, `pod`, or `node`.
    pub fn kind_name(&self) -> &'static str {
        match self.body {
            RecordBody::Event(_) => "event",
            RecordBody::Pod(_) => "pod",
            RecordBody::Node(_) => "node",
        }
    }

    /// A one-line human description of what happened, for tables and messages.
    pub fn describe(&self) -> String {
        match &self.body {
            RecordBody::Event(e) => {
                let delta = if e.count_delta > 1 {
                    format!(" (x{})", e.count_delta)
                } else {
                    String::new()
                };
                format!("{} {}{}: {}", e.event_type, e.reason, delta, e.message)
            }
            RecordBody::Pod(p) => p.change.describe(),
            RecordBody::Node(n) => n.change.describe(),
        }
    }
}

/// The payload of a [`Record`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordBody {
    /// A Kubernetes Event (core/v1 or events.k8s.io/v1), or new occurrences of one.
    Event(EventRecord),
    /// A pod state transition.
    Pod(PodTransition),
    /// A node state transition.
    Node(NodeTransition),
}

/// A Kubernetes Event, or the new occurrences of one: when an Event's `count` grows, the record
/// carries the delta, so the same occurrence is never recorded twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The Event object's uid.
    pub uid: String,
    /// The Event object's namespace.
    pub namespace: String,
    /// The Event object's name.
    pub name: String,
    /// `reason`, e.g. `BackOff`, `Evicted`, `NodeNotReady`.
    pub reason: String,
    /// `type`: `Normal` or `Warning`.
    pub event_type: String,
    /// `message` (or `note` for events.k8s.io/v1).
    pub message: String,
    /// Total occurrences as of this record (`count`, or `series.count`).
    pub count: u32,
    /// Occurrences this record adds (at least 1).
    pub count_delta: u32,
    /// `firstTimestamp` (or `eventTime` / `deprecatedFirstTimestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Timestamp>,
    /// `lastTimestamp` (or `series.lastObservedTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Timestamp>,
    /// Who reported it.
    #[serde(default)]
    pub source: EventSource,
    /// `involvedObject.fieldPath`, e.g. `spec.containers{cart}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// The reporter of an Event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EventSource {
    /// `source.component` or `reportingController`, e.g. `kubelet`, `node-controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// `source.host` or `reportingInstance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A change in a pod's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodTransition {
    /// The pod's phase after the change (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// What changed.
    pub change: PodChange,
}

/// The kinds of pod transitions the watcher reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PodChange {
    /// The pod was first seen.
    Created,
    /// A container terminated (seen in `state.terminated` or `lastState.terminated`); reported
    /// once per termination.
    ContainerTerminated {
        /// Container name.
        container: String,
        /// Whether it is an init container.
        #[serde(default)]
        init: bool,
        /// `reason`, e.g. `OOMKilled`, `Error`, `Completed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Exit code.
        exit_code: i32,
        /// Signal, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// `message`, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `restartCount` of the container status after the termination.
        restart_count: u32,
        /// `finishedAt`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finished_at: Option<Timestamp>,
    },
    /// A container entered a waiting state with a reason worth knowing (`CrashLoopBackOff`,
    /// `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`, ...).
    ContainerWaiting {
        /// Container name.
        container: String,
        /// Whether it is an init container.
        #[serde(default)]
        init: bool,
        /// The waiting reason.
        reason: String,
        /// The waiting message, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `restartCount` at that time.
        restart_count: u32,
    },
    /// `status.phase` changed (other than an eviction).
    PhaseChanged {
        /// Previous phase, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// New phase.
        to: String,
        /// `status.reason`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `status.message`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The kubelet evicted the pod (`status.phase=Failed`, `status.reason=Evicted`).
    Evicted {
        /// `status.message`, e.g. "The node was low on resource: memory. ...".
        message: String,
    },
    /// The pod got a deletionTimestamp (a graceful delete started).
    DeletionRequested,
    /// The pod object was deleted.
    Deleted,
}

impl PodChange {
    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            PodChange::Created => "pod created".to_string(),
            PodChange::ContainerTerminated {
                container,
                reason,
                exit_code,
                restart_count,
                ..
            } => {
                format!(
                    "container {container} terminated: {} (exit code {exit_code}, restarts {restart_count})",
                    reason.as_deref().unwrap_or("unknown reason")
                )
            }
            PodChange::ContainerWaiting {
                container, reason, ..
            } => {
                format!("container {container} waiting: {reason}")
            }
            PodChange::PhaseChanged {
                from, to, reason, ..
            } => {
                let from = from.as_deref().unwrap_or("?");
                match reason {
                    Some(r) => format!("phase {from} -> {to} ({r})"),
                    None => format!("phase {from} -> {to}"),
                }
            }
            PodChange::Evicted { message } => format!("evicted: {message}"),
            PodChange::DeletionRequested => "deletion requested".to_string(),
            PodChange::Deleted => "pod deleted".to_string(),
        }
    }
}

/// A change in a node's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTransition {
    /// What changed.
    pub change: NodeChange,
}

/// The kinds of node transitions the watcher reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum NodeChange {
    /// The node was first seen.
    Created,
    /// A condition (`Ready`, `MemoryPressure`, `DiskPressure`, `PIDPressure`, ...) changed status.
    ConditionChanged {
        /// Condition type.
        condition: String,
        /// Previous status (`True`, `False`, `Unknown`), `None` when first seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// New status.
        to: String,
        /// Condition `reason`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Condition `message`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `lastTransitionTime`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Timestamp>,
    },
    /// The node's `status.nodeInfo.bootID` changed: it rebooted.
    Rebooted {
        /// The new boot id.
        boot_id: String,
    },
    /// The node object was deleted.
    Deleted,
}

impl NodeChange {
    /// A one-line human description.
    pub fn describe(&self) -> String {
        match self {
            NodeChange::Created => "node created".to_string(),
            NodeChange::ConditionChanged {
                condition,
                from,
                to,
                reason,
                ..
            } => {
                let from = from.as_deref().unwrap_or("?");
                match reason {
                    Some(r) => format!("{condition} {from} -> {to} ({r})"),
                    None => format!("{condition} {from} -> {to}"),
                }
            }
            NodeChange::Rebooted { boot_id } => format!("rebooted (boot id {boot_id})"),
            NodeChange::Deleted => "node deleted".to_string(),
        }
    }
}

/// The watch position of one resource: the last resourceVersion whose records are persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The watched resource, e.g. `pods`, `nodes`, `events`.
    pub resource: String,
    /// The last resourceVersion seen (from an object or a bookmark).
    pub resource_version: String,
}

/// The watcher's compact state of one object, persisted beside the checkpoint of its resource
/// so that a restarted watcher resumes with the state it had, not from nothing. Opaque to
/// everything but the watcher, which encodes and decodes `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    /// The object's state key within its resource (its uid, or `namespace/name`).
    pub key: String,
    /// The encoded state; `None` when the object is gone and its state is to be forgotten.
    pub state: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_serializes_with_tagged_body() {
        let r = Record {
            id: RecordId::UNASSIGNED,
            cluster: "c".into(),
            observed_at: Timestamp::UNIX_EPOCH,
            object: ObjectRef::pod("shop", "cart-1"),
            node: Some("node-a".into()),
            owner: None,
            labels: BTreeMap::new(),
            body: RecordBody::Pod(PodTransition {
                phase: Some("Running".into()),
                change: PodChange::ContainerTerminated {
                    container: "cart".into(),
                    init: false,
                    reason: Some("OOMKilled".into()),
                    exit_code: 137,
                    signal: None,
                    message: None,
                    restart_count: 1,
                    finished_at: None,
                },
            }),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["body"]["type"], "pod");
        assert_eq!(v["body"]["change"]["change"], "container_terminated");
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert!(r.describe().contains("OOMKilled"));
    }
}
