//! The NodeNotReady rule: a node whose `Ready` condition has been `False` or `Unknown` for at
//! least `grace`. Opens from node `ConditionChanged{Ready}` records (so it needs the timer),
//! resolves when `Ready` returns to `True` or the node is deleted. NodeNotReady Events (from the
//! node-controller, on the node or on its pods) only support an incident or a pending
//! occurrence; they never open one.

use std::collections::BTreeMap;

use herald_core::{
    Incident, NodeChange, ObjectKind, ObjectRef, Record, RecordBody, RecordId, Severity, Timestamp,
};
use jiff::SignedDuration;

use super::{Rule, new_incident, node_of};
use crate::book::{Book, MAX_OBJECTS, MAX_RECORDS, push_record, touch};
use crate::config::NodeNotReadyConfig;
use crate::duration::signed;

/// Rule name.
pub(crate) const RULE: &str = "NodeNotReady";

fn fingerprint(node: &str) -> String {
    format!("{RULE}/{node}")
}

/// A node whose Ready went non-True, still within its grace period.
#[derive(Debug, Clone)]
struct Pending {
    cluster: String,
    since: Timestamp,
    last_seen: Timestamp,
    status: String,
    reason: Option<String>,
    message: Option<String>,
    labels: BTreeMap<String, String>,
    count: u64,
    records: Vec<RecordId>,
    objects: Vec<ObjectRef>,
}

/// State of the NodeNotReady rule.
#[derive(Debug)]
pub(crate) struct NodeNotReady {
    grace: SignedDuration,
    severity: Severity,
    /// Nodes not ready for less than `grace` so far, by name.
    pending: BTreeMap<String, Pending>,
}

impl NodeNotReady {
    pub(crate) fn new(cfg: &NodeNotReadyConfig) -> Self {
        Self {
            grace: signed(cfg.grace),
            severity: cfg.severity,
            pending: BTreeMap::new(),
        }
    }

    fn on_ready_changed(
        &mut self,
        record: &Record,
        node: &str,
        change: ReadyChange<'_>,
        at: Timestamp,
        now: Timestamp,
        book: &mut Book,
    ) {
        let fp = fingerprint(node);
        if change.to == "True" {
            if self.pending.remove(node).is_some() {
                tracing::debug!(
                    rule = RULE,
                    node,
                    "node Ready again within grace; nothing to report"
                );
            }
            book.update(&fp, |i| {
                push_record(i, record.id);
                touch(i, at);
                false
            });
            book.resolve(&fp, at, now);
            return;
        }
        let summary = summary(node, change.to, change.reason, change.message);
        let supported = book.update(&fp, |i| {
            i.count += 1;
            push_record(i, record.id);
            touch(i, at);
            let material = i.summary != summary;
            i.summary = summary.clone();
            material
        });
        if supported {
            return;
        }
        // `since` is the condition's lastTransitionTime: when the node really went not ready,
        // which may be before herald saw it (e.g. right after a restart).
        let since = change.since.filter(|s| *s <= at).unwrap_or(at);
        let p = self.pending.entry(node.to_string()).or_insert_with(|| {
            tracing::debug!(
                rule = RULE,
                node,
                status = change.to,
                "node not ready; grace period started"
            );
            Pending {
                cluster: record.cluster.clone(),
                since,
                last_seen: at,
                status: String::new(),
                reason: None,
                message: None,
                labels: BTreeMap::new(),
                count: 0,
                records: Vec::new(),
                objects: Vec::new(),
            }
        });
        p.since = p.since.min(since);
        p.last_seen = p.last_seen.max(at);
        p.status = change.to.to_string();
        p.reason = change.reason.map(str::to_string);
        p.message = change.message.map(str::to_string);
        p.labels = record.labels.clone();
        p.count += 1;
        push_pending_record(p, record.id);
    }

    /// A NodeNotReady Event: supports the open incident or the pending occurrence.
    fn on_event(
        &mut self,
        record: &Record,
        node: &str,
        delta: u32,
        at: Timestamp,
        book: &mut Book,
    ) {
        let pod = (record.object.kind == ObjectKind::Pod).then(|| record.object.clone());
        let add_object = |objects: &mut Vec<ObjectRef>| {
            if let Some(pod) = &pod
                && objects.len() < MAX_OBJECTS
                && !objects.contains(pod)
            {
                objects.push(pod.clone());
            }
        };
        let supported = book.update(&fingerprint(node), |i| {
            i.count += u64::from(delta.max(1));
            push_record(i, record.id);
            touch(i, at);
            add_object(&mut i.objects);
            false
        });
        if !supported && let Some(p) = self.pending.get_mut(node) {
            p.count += u64::from(delta.max(1));
            p.last_seen = p.last_seen.max(at);
            push_pending_record(p, record.id);
            add_object(&mut p.objects);
        }
    }
}

/// The fields of a `Ready` condition change.
struct ReadyChange<'a> {
    to: &'a str,
    reason: Option<&'a str>,
    message: Option<&'a str>,
    since: Option<Timestamp>,
}

fn push_pending_record(p: &mut Pending, id: RecordId) {
    if id != RecordId::UNASSIGNED && p.records.len() < MAX_RECORDS && !p.records.contains(&id) {
        p.records.push(id);
    }
}

/// "Node node-b is NotReady: Kubelet stopped posting node status. (NodeStatusUnknown)".
fn summary(node: &str, status: &str, reason: Option<&str>, message: Option<&str>) -> String {
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    let reason = reason.filter(|r| !r.is_empty());
    match (message, reason) {
        (Some(m), Some(r)) => format!("Node {node} is NotReady: {m} ({r})"),
        (Some(m), None) => format!("Node {node} is NotReady: {m}"),
        (None, Some(r)) => format!("Node {node} is NotReady ({r})"),
        (None, None) => format!("Node {node} is NotReady (Ready={status})"),
    }
}

impl Rule for NodeNotReady {
    fn name(&self) -> &str {
        RULE
    }

    fn on_record(&mut self, record: &Record, at: Timestamp, now: Timestamp, book: &mut Book) {
        match &record.body {
            RecordBody::Node(n) if record.object.kind == ObjectKind::Node => match &n.change {
                NodeChange::ConditionChanged {
                    condition,
                    to,
                    reason,
                    message,
                    since,
                    ..
                } if condition == "Ready" => {
                    let change = ReadyChange {
                        to,
                        reason: reason.as_deref(),
                        message: message.as_deref(),
                        since: *since,
                    };
                    self.on_ready_changed(record, &record.object.name, change, at, now, book);
                }
                NodeChange::Deleted => {
                    let node = record.object.name.as_str();
                    self.pending.remove(node);
                    let fp = fingerprint(node);
                    book.update(&fp, |i| {
                        push_record(i, record.id);
                        false
                    });
                    if book.resolve(&fp, at, now) {
                        tracing::info!(
                            rule = RULE,
                            node,
                            "node deleted; NotReady incident resolved"
                        );
                    }
                }
                _ => {}
            },
            RecordBody::Event(e) if e.reason == "NodeNotReady" => {
                if let Some(node) = node_of(record) {
                    self.on_event(record, node, e.count_delta, at, book);
                }
            }
            _ => {}
        }
    }

    fn on_time(&mut self, now: Timestamp, book: &mut Book) {
        let grace = self.grace;
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.since.saturating_add(grace).unwrap_or(p.since))
            .map(|(node, _)| node.clone())
            .collect();
        for node in due {
            let Some(p) = self.pending.remove(&node) else {
                continue;
            };
            let fp = fingerprint(&node);
            if book.is_open(&fp) {
                continue;
            }
            let mut i: Incident = new_incident(
                RULE,
                fp,
                self.severity,
                &p.cluster,
                ObjectRef::node(&node),
                p.since,
                now,
            );
            i.summary = summary(&node, &p.status, p.reason.as_deref(), p.message.as_deref());
            i.node = Some(node.clone());
            i.last_seen = p.last_seen;
            i.count = p.count;
            i.records = p.records;
            i.objects = p.objects;
            i.labels = p.labels;
            book.open(i, now);
        }
    }
}
