//! Record builders shared by the integration tests, with realistic Kubernetes values.
#![allow(dead_code)]

use std::time::Duration;

use herald_core::{
    EventRecord, EventSource, NodeChange, NodeTransition, ObjectRef, PodChange, PodTransition,
    Record, RecordBody, RecordId, Timestamp,
};

/// The tests' time origin.
pub fn t0() -> Timestamp {
    "2025-06-02T10:00:00Z".parse().expect("t0")
}

/// `t0` plus `secs` seconds.
pub fn at(secs: u64) -> Timestamp {
    t0() + Duration::from_secs(secs)
}

/// `t0` plus `ms` milliseconds.
pub fn at_ms(ms: u64) -> Timestamp {
    t0() + Duration::from_millis(ms)
}

pub const EVICTION_MESSAGE: &str = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91212Ki. Container worker was using 1423012Ki, request is 256Mi, has larger consumption of memory.";

fn base(id: u64, at: Timestamp, object: ObjectRef, node: Option<&str>, body: RecordBody) -> Record {
    Record {
        id: RecordId(id),
        cluster: "prod".into(),
        observed_at: at,
        object,
        node: node.map(str::to_string),
        owner: None,
        labels: Default::default(),
        body,
    }
}

/// A pod `status.reason=Evicted` record.
pub fn pod_evicted(id: u64, at: Timestamp, node: &str, ns: &str, pod: &str, uid: &str) -> Record {
    base(
        id,
        at,
        ObjectRef::pod(ns, pod).with_uid(uid),
        Some(node),
        RecordBody::Pod(PodTransition {
            phase: Some("Failed".into()),
            change: PodChange::Evicted {
                message: EVICTION_MESSAGE.into(),
            },
        }),
    )
}

/// The kubelet's Warning `Evicted` Event for the same eviction (optionally without the uid).
pub fn evicted_event(
    id: u64,
    at: Timestamp,
    node: &str,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
) -> Record {
    let mut object = ObjectRef::pod(ns, pod);
    object.uid = uid.map(str::to_string);
    base(
        id,
        at,
        object,
        Some(node),
        RecordBody::Event(EventRecord {
            uid: format!("ev-{pod}"),
            namespace: ns.into(),
            name: format!("{pod}.1845d0a0b0c0d0e1"),
            reason: "Evicted".into(),
            event_type: "Warning".into(),
            message: EVICTION_MESSAGE.into(),
            count: 1,
            count_delta: 1,
            first_timestamp: Some(at),
            last_timestamp: Some(at),
            source: EventSource {
                component: Some("kubelet".into()),
                host: Some(node.into()),
            },
            field_path: None,
        }),
    )
}

/// A node `Ready` condition change to `to` (`True`, `False`, `Unknown`).
pub fn node_ready(id: u64, at: Timestamp, node: &str, from: Option<&str>, to: &str) -> Record {
    let (reason, message) = match to {
        "True" => ("KubeletReady", "kubelet is posting ready status"),
        "Unknown" => ("NodeStatusUnknown", "Kubelet stopped posting node status."),
        _ => (
            "KubeletNotReady",
            "PLEG is not healthy: pleg was last seen active 3m5.2s ago",
        ),
    };
    base(
        id,
        at,
        ObjectRef::node(node),
        Some(node),
        RecordBody::Node(NodeTransition {
            change: NodeChange::ConditionChanged {
                condition: "Ready".into(),
                from: from.map(str::to_string),
                to: to.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                since: Some(at),
            },
        }),
    )
}

/// A container's OOMKilled termination.
pub fn oom_killed(
    id: u64,
    at: Timestamp,
    node: &str,
    ns: &str,
    pod: &str,
    container: &str,
) -> Record {
    base(
        id,
        at,
        ObjectRef::pod(ns, pod),
        Some(node),
        RecordBody::Pod(PodTransition {
            phase: Some("Running".into()),
            change: PodChange::ContainerTerminated {
                container: container.into(),
                init: false,
                reason: Some("OOMKilled".into()),
                exit_code: 137,
                signal: None,
                message: None,
                restart_count: 1,
                finished_at: Some(at),
            },
        }),
    )
}
