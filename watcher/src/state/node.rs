//! Node state and transitions: `Created`, `ConditionChanged` (status changes of the
//! [`TRACKED_CONDITIONS`] only; heartbeat-only updates change nothing), `Rebooted` (bootID
//! change) and `Deleted`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::objects::{Node, NodeCondition};
use herald_core::{NodeChange, NodeTransition, ObjectRef, Record, RecordBody, RecordId};

use super::{FirstSight, RecordCtx, Source, StateOptions, Tracker, non_empty, object_key};

/// The node conditions whose status changes are reported.
pub const TRACKED_CONDITIONS: &[&str] = &[
    "Ready",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

/// Whether `status` of condition `condition` is a problem: `Ready` not `True`, or any other
/// tracked condition `True`.
pub fn is_bad_condition(condition: &str, status: &str) -> bool {
    if condition == "Ready" {
        status != "True"
    } else {
        status == "True"
    }
}

/// Compact state of one node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeEntry {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: Option<String>,
    /// Status of each tracked condition present, by type.
    pub conditions: Vec<(String, String)>,
    /// `status.nodeInfo.bootID`.
    pub boot_id: Option<String>,
}

impl NodeEntry {
    /// The compact state of `node`.
    pub fn from_node(node: &Node) -> Self {
        let status = node.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|c| TRACKED_CONDITIONS.contains(&c.type_.as_str()))
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            uid: non_empty(node.metadata.uid.as_deref()),
            conditions,
            boot_id: non_empty(
                status
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| i.boot_id.as_str()),
            ),
        }
    }

    /// The status of condition `condition`, when present.
    pub fn condition(&self, condition: &str) -> Option<&str> {
        self.conditions
            .iter()
            .find(|(t, _)| t == condition)
            .map(|(_, s)| s.as_str())
    }

    /// The object reference of the node.
    pub fn object_ref(&self) -> ObjectRef {
        let r = ObjectRef::node(self.name.clone());
        match &self.uid {
            Some(uid) => r.with_uid(uid.clone()),
            None => r,
        }
    }
}

/// The state of every node.
#[derive(Debug, Default)]
pub struct NodeState {
    nodes: HashMap<String, NodeEntry>,
    listed: bool,
    opts: StateOptions,
}

impl NodeState {
    /// An empty state.
    pub fn new(opts: StateOptions) -> Self {
        Self {
            nodes: HashMap::new(),
            listed: false,
            opts,
        }
    }

    /// Number of nodes tracked.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The state of the node with this key (uid, or name).
    pub fn get(&self, key: &str) -> Option<&NodeEntry> {
        self.nodes.get(key)
    }

    /// Whether the state was filled by a complete list.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Marks the state as filled by a complete list: from now on, unknown nodes are new.
    pub fn set_listed(&mut self) {
        self.listed = true;
    }
}

/// Applies a node seen in a list or an ADDED/MODIFIED event and returns its transitions.
pub fn apply(state: &mut NodeState, node: &Node, source: Source) -> Vec<NodeChange> {
    let Some(key) = object_key(&node.metadata) else {
        return Vec::new();
    };
    let new = NodeEntry::from_node(node);
    let mut out = Vec::new();
    match state.nodes.get(&key) {
        Some(old) => {
            for c in tracked(node) {
                let before = old.condition(&c.type_);
                // A condition appearing (a node's first status) is reported only when bad.
                let changed = match before {
                    Some(b) => b != c.status,
                    None => is_bad_condition(&c.type_, &c.status),
                };
                if changed {
                    out.push(condition_changed(c, before));
                }
            }
            if let (Some(before), Some(now)) = (&old.boot_id, &new.boot_id)
                && before != now
            {
                out.push(NodeChange::Rebooted {
                    boot_id: now.clone(),
                });
            }
        }
        None => {
            let first = FirstSight::of(source, state.listed);
            let report = first != FirstSight::Seed || state.opts.report_on_seed;
            if first == FirstSight::New {
                out.push(NodeChange::Created);
            }
            if report {
                out.extend(
                    tracked(node)
                        .filter(|c| is_bad_condition(&c.type_, &c.status))
                        .map(|c| condition_changed(c, None)),
                );
            }
        }
    }
    state.nodes.insert(key, new);
    out
}

/// Applies a DELETED event: `Deleted`.
pub fn delete(state: &mut NodeState, node: &Node) -> Vec<NodeChange> {
    if let Some(key) = object_key(&node.metadata) {
        state.nodes.remove(&key);
    }
    vec![NodeChange::Deleted]
}

/// After a re-list: removes every node whose key is not in `listed` and returns their entries
/// (each one is a `Deleted`).
pub fn remove_unlisted(state: &mut NodeState, listed: &HashSet<String>) -> Vec<NodeEntry> {
    let gone: Vec<String> = state
        .nodes
        .keys()
        .filter(|k| !listed.contains(*k))
        .cloned()
        .collect();
    gone.into_iter()
        .filter_map(|k| state.nodes.remove(&k))
        .collect()
}

fn tracked(node: &Node) -> impl Iterator<Item = &NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| TRACKED_CONDITIONS.contains(&c.type_.as_str()))
}

fn condition_changed(c: &NodeCondition, before: Option<&str>) -> NodeChange {
    NodeChange::ConditionChanged {
        condition: c.type_.clone(),
        from: before.map(str::to_string),
        to: c.status.clone(),
        reason: non_empty(c.reason.as_deref()),
        message: non_empty(c.message.as_deref()),
        since: c.last_transition_time.as_ref().map(|t| t.0),
    }
}

/// A record of a node transition.
pub(crate) fn record(
    ctx: &RecordCtx<'_>,
    entry: &NodeEntry,
    labels: BTreeMap<String, String>,
    change: NodeChange,
) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: ctx.cluster.to_string(),
        observed_at: ctx.now,
        object: entry.object_ref(),
        node: Some(entry.name.clone()),
        owner: None,
        labels,
        body: RecordBody::Node(NodeTransition { change }),
    }
}

impl Tracker for NodeState {
    type Object = Node;

    fn key(obj: &Node) -> Option<String> {
        object_key(&obj.metadata)
    }

    fn set_listed(&mut self) {
        self.listed = true;
    }

    fn set_options(&mut self, opts: StateOptions) {
        self.opts = opts;
    }

    fn apply(&mut self, obj: Node, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record> {
        let changes = apply(self, &obj, source);
        to_records(ctx, &obj, changes)
    }

    fn delete(&mut self, obj: &Node, ctx: &RecordCtx<'_>) -> Vec<Record> {
        let changes = delete(self, obj);
        to_records(ctx, obj, changes)
    }

    fn remove_unlisted(&mut self, listed: &HashSet<String>, ctx: &RecordCtx<'_>) -> Vec<Record> {
        remove_unlisted(self, listed)
            .iter()
            .map(|e| record(ctx, e, BTreeMap::new(), NodeChange::Deleted))
            .collect()
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn keys(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn export(&self, key: &str) -> Option<Vec<u8>> {
        self.nodes.get(key).and_then(super::encode_entry)
    }

    fn import(&mut self, key: String, bytes: &[u8]) -> Result<(), String> {
        let entry: NodeEntry = super::decode_entry(bytes)?;
        self.nodes.insert(key, entry);
        Ok(())
    }
}

fn to_records(ctx: &RecordCtx<'_>, node: &Node, changes: Vec<NodeChange>) -> Vec<Record> {
    if changes.is_empty() {
        return Vec::new();
    }
    let entry = NodeEntry::from_node(node);
    let labels = node.metadata.labels.clone().unwrap_or_default();
    changes
        .into_iter()
        .map(|c| record(ctx, &entry, labels.clone(), c))
        .collect()
}
