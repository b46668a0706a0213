//! What the classifier knows about live pods from their own records: node, controlling owner,
//! labels, whether a delete is under way. Events on a pod carry none of this (only the
//! involved object and the reporting host), so rules look it up here to group an Event under
//! the pod's workload, to find its node, and to ignore pods that are being deleted.

use std::collections::BTreeMap;

use herald_core::{ObjectKind, ObjectRef, PodChange, Record, RecordBody};

/// The facts remembered about one pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodInfo {
    /// `spec.nodeName`.
    pub(crate) node: Option<String>,
    /// The controlling owner (ReplicaSet, Job, StatefulSet, ...).
    pub(crate) owner: Option<ObjectRef>,
    /// The pod's labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// A graceful delete started (`deletionTimestamp` set).
    pub(crate) deleting: bool,
}

/// Live pods by `namespace/name`, filled from pod records; an entry is forgotten when the pod
/// is deleted.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodIndex {
    pods: BTreeMap<String, PodInfo>,
}

impl PodIndex {
    /// Learns from a pod record (before the rules see it). Returns true when the record deletes
    /// the pod, so the caller forgets it with [`PodIndex::forget`] after the rules ran.
    pub(crate) fn observe(&mut self, record: &Record) -> bool {
        let RecordBody::Pod(p) = &record.body else {
            return false;
        };
        if record.object.kind != ObjectKind::Pod {
            return false;
        }
        let info = self.pods.entry(record.object.key()).or_default();
        if let Some(node) = record.node.as_ref().filter(|n| !n.is_empty()) {
            info.node = Some(node.clone());
        }
        if let Some(owner) = &record.owner {
            info.owner = Some(owner.clone());
        }
        if !record.labels.is_empty() {
            info.labels.clone_from(&record.labels);
        }
        match p.change {
            PodChange::DeletionRequested => {
                info.deleting = true;
                false
            }
            PodChange::Deleted => true,
            _ => false,
        }
    }

    /// Forgets a deleted pod.
    pub(crate) fn forget(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// What is known about the pod `namespace/name`.
    pub(crate) fn get(&self, key: &str) -> Option<&PodInfo> {
        self.pods.get(key)
    }
}

/// The workload a pod belongs to: its controlling owner, with a ReplicaSet created by a
/// Deployment (name `<deployment>-<pod-template-hash>`) replaced by that Deployment. `None` for
/// a pod without a controller.
pub(crate) fn workload(
    owner: Option<&ObjectRef>,
    labels: &BTreeMap<String, String>,
) -> Option<ObjectRef> {
    let owner = owner?;
    if owner.kind.as_str() == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = owner.name.strip_suffix(&format!("-{hash}"))
        && !deployment.is_empty()
    {
        return Some(ObjectRef {
            kind: ObjectKind::Other("Deployment".to_string()),
            namespace: owner.namespace.clone(),
            name: deployment.to_string(),
            uid: None,
        });
    }
    Some(owner.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Other("ReplicaSet".into()),
            namespace: Some("shop".into()),
            name: name.into(),
            uid: None,
        }
    }

    #[test]
    fn replica_set_of_a_deployment_becomes_the_deployment() {
        let labels = BTreeMap::from([("pod-template-hash".to_string(), "7d9f8b6c5d".to_string())]);
        let w = workload(Some(&rs("cart-7d9f8b6c5d")), &labels).expect("workload");
        assert_eq!(w.to_string(), "deployment/shop/cart");
        // A bare ReplicaSet (no matching hash label) stays itself.
        let w = workload(Some(&rs("cart")), &BTreeMap::new()).expect("workload");
        assert_eq!(w.to_string(), "replicaset/shop/cart");
        assert_eq!(workload(None, &labels), None);
    }
}
