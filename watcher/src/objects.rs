//! Slim views of the Kubernetes objects the watcher reads: Pods, Nodes, core/v1 and
//! events.k8s.io/v1 Events, decoded straight from the JSON the API server sends.
//!
//! Each view has the names and shapes of its k8s-openapi counterpart (`metadata.name:
//! Option<String>`, `status.container_statuses: Option<Vec<ContainerStatus>>`, ...) but only the
//! fields transition detection and records use; every other field of the object (the whole pod
//! spec but `nodeName`, `managedFields`, images, volumes, running states, heartbeats, ...) is
//! skipped by the JSON parser without being built. Decoding a watch line therefore allocates only
//! the few strings that are kept, which is what makes the watcher's decode cheaper than a plain
//! `serde_json::Value` of the same line (`herald bench ingest`), and means a full object never
//! exists in memory, not even for the duration of one line.
//!
//! What counts as malformed follows from this: a field the watcher reads with the wrong JSON type
//! (`count: "many"`, `status.containerStatuses: "x"`), a required one missing (a container
//! status without `name` or `restartCount`, a termination without `exitCode`), an unparsable
//! timestamp, a missing `metadata.name`, or a `kind` that is not the watched one. A wrong type in
//! a field the watcher never reads is not seen and does not make the object unusable.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

/// An object kind the watcher decodes.
pub trait KubeObject: serde::de::DeserializeOwned + Send + 'static {
    /// Its `kind` (`Pod`, `Node`, `Event`).
    const KIND: &'static str;
    /// Its metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// Its `kind` field as sent, when the object carries one (list items usually do not).
    fn kind_field(&self) -> Option<&str>;
}

/// A timestamp in RFC 3339 form (`metav1.Time`, also used for `metav1.MicroTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub jiff::Timestamp);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Time, E> {
                s.parse::<jiff::Timestamp>()
                    .map(Time)
                    .map_err(|e| E::custom(format!("invalid timestamp {s:?}: {e}")))
            }
        }
        d.deserialize_str(TimeVisitor)
    }
}

/// The parts of `metadata` the watcher uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    pub name: Option<String>,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `uid`.
    pub uid: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `labels`.
    pub labels: Option<BTreeMap<String, String>>,
    /// `annotations` (a bookmark's `k8s.io/initial-events-end`).
    pub annotations: Option<BTreeMap<String, String>>,
    /// `deletionTimestamp`.
    pub deletion_timestamp: Option<Time>,
    /// `ownerReferences`.
    pub owner_references: Option<Vec<OwnerReference>>,
}

/// One of `metadata.ownerReferences`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `uid`.
    pub uid: String,
    /// `controller`.
    pub controller: Option<bool>,
}

/// A core/v1 Pod.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Pod {
    /// `kind`, when sent.
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: Option<PodSpec>,
    /// `status`.
    pub status: Option<PodStatus>,
}

/// The part of `spec` the watcher uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// `nodeName`.
    pub node_name: Option<String>,
}

/// The parts of a pod's `status` the watcher uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `phase`.
    pub phase: Option<String>,
    /// `reason` (`Evicted`).
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
    /// `containerStatuses`.
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// `initContainerStatuses`.
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

/// One container's status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// `name` (required).
    pub name: String,
    /// `restartCount` (required).
    pub restart_count: i32,
    /// `state`.
    pub state: Option<ContainerState>,
    /// `lastState`.
    pub last_state: Option<ContainerState>,
}

/// A container's `state` or `lastState` (`running` is not used).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContainerState {
    /// `waiting`.
    pub waiting: Option<ContainerStateWaiting>,
    /// `terminated`.
    pub terminated: Option<ContainerStateTerminated>,
}

/// `state.waiting`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContainerStateWaiting {
    /// `reason`.
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
}

/// `state.terminated` / `lastState.terminated`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateTerminated {
    /// `containerID`.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    /// `exitCode` (required).
    pub exit_code: i32,
    /// `message`.
    pub message: Option<String>,
    /// `reason`.
    pub reason: Option<String>,
    /// `signal`.
    pub signal: Option<i32>,
    /// `startedAt`.
    pub started_at: Option<Time>,
    /// `finishedAt`.
    pub finished_at: Option<Time>,
}

/// A core/v1 Node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Node {
    /// `kind`, when sent.
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `status`.
    pub status: Option<NodeStatus>,
}

/// The parts of a node's `status` the watcher uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// `conditions`.
    pub conditions: Option<Vec<NodeCondition>>,
    /// `nodeInfo`.
    pub node_info: Option<NodeSystemInfo>,
}

/// One node condition (heartbeat times are not used).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// `type` (required).
    #[serde(rename = "type")]
    pub type_: String,
    /// `status` (required).
    pub status: String,
    /// `reason`.
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
    /// `lastTransitionTime`.
    pub last_transition_time: Option<Time>,
}

/// The part of `status.nodeInfo` the watcher uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NodeSystemInfo {
    /// `bootID`.
    #[serde(rename = "bootID", default)]
    pub boot_id: String,
}

/// A reference to an object (`involvedObject`, `regarding`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// `kind`.
    pub kind: Option<String>,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `uid`.
    pub uid: Option<String>,
    /// `fieldPath`.
    pub field_path: Option<String>,
}

/// An Event's `source` (`deprecatedSource` in events.k8s.io/v1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EventSource {
    /// `component`.
    pub component: Option<String>,
    /// `host`.
    pub host: Option<String>,
}

/// A core/v1 Event's `series`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries {
    /// `count`.
    pub count: Option<i32>,
    /// `lastObservedTime`.
    pub last_observed_time: Option<Time>,
}

/// A core/v1 Event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `kind`, when sent.
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `involvedObject`.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// `reason`.
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
    /// `type` (`Normal`, `Warning`).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// `count`.
    pub count: Option<i32>,
    /// `firstTimestamp`.
    pub first_timestamp: Option<Time>,
    /// `lastTimestamp`.
    pub last_timestamp: Option<Time>,
    /// `source`.
    pub source: Option<EventSource>,
    /// `eventTime`.
    pub event_time: Option<Time>,
    /// `reportingComponent`.
    pub reporting_component: Option<String>,
    /// `reportingInstance`.
    pub reporting_instance: Option<String>,
    /// `series`.
    pub series: Option<EventSeries>,
}

/// An events.k8s.io/v1 Event's `series` (both fields required by the API).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeriesV1 {
    /// `count`.
    pub count: i32,
    /// `lastObservedTime`.
    pub last_observed_time: Time,
}

impl Default for Time {
    fn default() -> Self {
        Time(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// An events.k8s.io/v1 Event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventV1 {
    /// `kind`, when sent.
    pub kind: Option<String>,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `regarding`.
    pub regarding: Option<ObjectReference>,
    /// `reason`.
    pub reason: Option<String>,
    /// `note`.
    pub note: Option<String>,
    /// `type`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// `deprecatedCount`.
    pub deprecated_count: Option<i32>,
    /// `deprecatedFirstTimestamp`.
    pub deprecated_first_timestamp: Option<Time>,
    /// `deprecatedLastTimestamp`.
    pub deprecated_last_timestamp: Option<Time>,
    /// `deprecatedSource`.
    pub deprecated_source: Option<EventSource>,
    /// `eventTime`.
    pub event_time: Option<Time>,
    /// `reportingController`.
    pub reporting_controller: Option<String>,
    /// `reportingInstance`.
    pub reporting_instance: Option<String>,
    /// `series`.
    pub series: Option<EventSeriesV1>,
}

macro_rules! kube_object {
    ($t:ty, $kind:literal) => {
        impl KubeObject for $t {
            const KIND: &'static str = $kind;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn kind_field(&self) -> Option<&str> {
                self.kind.as_deref()
            }
        }
    };
}

kube_object!(Pod, "Pod");
kube_object!(Node, "Node");
kube_object!(Event, "Event");
kube_object!(EventV1, "Event");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_what_it_does_not_use_and_keeps_what_it_does() {
        let pod: Pod = serde_json::from_str(
            r#"{"kind":"Pod","apiVersion":"v1",
                "metadata":{"name":"p","namespace":"n","uid":"u","managedFields":[{"x":1}],
                            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"r","controller":true}]},
                "spec":{"nodeName":"node-a","containers":[{"name":"app","image":"i","env":[{"name":"A","value":"1"}]}]},
                "status":{"phase":"Running","containerStatuses":[{"name":"app","restartCount":3,"image":"i","ready":true,
                    "state":{"running":{"startedAt":"2026-12-01T10:00:00Z"}},
                    "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled","containerID":"c://1","finishedAt":"2026-12-01T09:59:00Z"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-a"));
        let status = pod.status.unwrap();
        let cs = &status.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        let t = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.exit_code, 137);
        assert_eq!(t.container_id.as_deref(), Some("c://1"));
        assert_eq!(
            t.finished_at.unwrap().0,
            "2026-12-01T09:59:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert_eq!(pod.metadata.owner_references.unwrap()[0].kind, "ReplicaSet");
    }

    #[test]
    fn wrong_types_in_used_fields_are_errors() {
        for bad in [
            r#"{"metadata":{"name":"p"},"status":{"containerStatuses":"x"}}"#,
            r#"{"metadata":{"name":"p"},"status":{"containerStatuses":[{"name":"a"}]}}"#,
            r#"{"metadata":{"name":"p"},"status":{"containerStatuses":[{"name":"a","restartCount":1,"state":{"terminated":{"reason":"x"}}}]}}"#,
            r#"{"metadata":{"name":"p","deletionTimestamp":"yesterday"}}"#,
            r#"{"metadata":{"name":5}}"#,
            r#"{"metadata":{"name":"p"},"spec":"nope"}"#,
        ] {
            assert!(serde_json::from_str::<Pod>(bad).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<Event>(r#"{"metadata":{"name":"e"},"count":"many"}"#).is_err()
        );
        // A wrong type in a field the watcher does not read is not seen.
        let ok: Pod =
            serde_json::from_str(r#"{"metadata":{"name":"p"},"spec":{"containers":"nope"}}"#)
                .unwrap();
        assert_eq!(ok.metadata.name.as_deref(), Some("p"));
    }
}
