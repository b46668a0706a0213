//! Incidents: what the classifier concluded from records, with a lifecycle
//! (opened -> updated -> resolved). Only lifecycle transitions ([`IncidentChange`]) reach the
//! notifiers; repeats only update the count.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::object::ObjectRef;
use crate::record::RecordId;
use crate::severity::Severity;
use crate::time::Timestamp;

/// Identifier of one occurrence of an incident: its fingerprint plus the instant it opened, so a
/// node that goes NotReady twice has two incidents with the same fingerprint and different ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub String);

impl IncidentId {
    /// The id of the occurrence of `fingerprint` that opened at `opened`.
    pub fn new(fingerprint: &str, opened: Timestamp) -> Self {
        IncidentId(format!("{fingerprint}@{}", opened.as_millisecond()))
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an incident is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Ongoing.
    Open,
    /// Over: the condition cleared (node Ready again) or the window went quiet.
    Resolved,
}

impl IncidentState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// A lifecycle transition of an incident: the only thing that produces notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// The incident opened.
    Opened,
    /// The incident changed materially while open (more pods in a storm, higher severity).
    Updated,
    /// The incident resolved.
    Resolved,
}

impl Transition {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Updated => "updated",
            Transition::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incident occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Unique id of this occurrence.
    pub id: IncidentId,
    /// Stable identity: rule plus subject, e.g. `NodeNotReady/node-b`.
    pub fingerprint: String,
    /// The rule that raised it, e.g. `NodeNotReady`, `OOMKilled`, `EvictionStorm`.
    pub rule: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: IncidentState,
    /// Cluster name.
    pub cluster: String,
    /// What it is about: a node, a pod, a workload, a namespace.
    pub subject: ObjectRef,
    /// Namespace of the subject or of the affected pods, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Node involved, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// One-line human summary, e.g. "Node node-b is NotReady (NodeStatusUnknown)".
    pub summary: String,
    /// First supporting observation.
    pub first_seen: Timestamp,
    /// Latest supporting observation.
    pub last_seen: Timestamp,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// How many supporting observations so far.
    pub count: u64,
    /// The affected objects (for a storm: every evicted pod).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
    /// Ids of the supporting records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordId>,
    /// Labels for routing (for example the subject's labels, `container`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A transition of an incident, as handed to the store and the notifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentChange {
    /// What happened to the incident.
    pub transition: Transition,
    /// When.
    pub at: Timestamp,
    /// The incident after the transition.
    pub incident: Incident,
}
