//! The EvictionStorm rules: `threshold` or more distinct pod evictions on one node (or in one
//! namespace, or in the whole cluster: the [`Scope`]) within `window` make one incident per
//! node (`EvictionStorm/<node>`, `NamespaceEvictionStorm/<ns>`, `ClusterEvictionStorm/<cluster>`),
//! which lists every evicted pod, grows while evictions continue, and resolves after `quiet`
//! without one.
//!
//! An eviction is seen through the pod (`PodChange::Evicted`) and/or a Warning `Evicted` Event on
//! the pod; both are one eviction, identified by namespace, name and (when both sides know it)
//! uid. Times are the records' times, so the outcome does not depend on the order in which
//! records of one window arrive:
//! - evictions whose times differ by at most `window` (inclusive) are in one window;
//! - a storm opens when some window holds `threshold` unclaimed evictions, and takes every
//!   unclaimed eviction chained to it (each within `window` of the next);
//! - while open, every new eviction joins it (material: `updated`), except a late record from
//!   more than `window` before the storm's first eviction;
//! - evictions that joined a storm never count towards another one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use herald_core::{
    ObjectKind, ObjectRef, PodChange, Record, RecordBody, RecordId, Severity, Timestamp,
};
use jiff::SignedDuration;

use super::{Rule, first_sentence, new_incident};
use crate::book::{Book, MAX_OBJECTS, push_record, same_object, touch};
use crate::config::EvictionStormConfig;
use crate::duration::signed;

/// Rule name (per node).
pub(crate) const RULE: &str = "EvictionStorm";
/// Rule name of the per-namespace storm.
pub(crate) const NAMESPACE_RULE: &str = "NamespaceEvictionStorm";
/// Rule name of the cluster-wide storm.
pub(crate) const CLUSTER_RULE: &str = "ClusterEvictionStorm";

/// What evictions are counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Per node (`EvictionStorm/<node>`).
    Node,
    /// Per namespace (`NamespaceEvictionStorm/<namespace>`).
    Namespace,
    /// The whole cluster (`ClusterEvictionStorm/<cluster>`).
    Cluster,
}

impl Scope {
    fn rule(self) -> &'static str {
        match self {
            Scope::Node => RULE,
            Scope::Namespace => NAMESPACE_RULE,
            Scope::Cluster => CLUSTER_RULE,
        }
    }

    fn fingerprint(self, key: &str) -> String {
        format!("{}/{key}", self.rule())
    }

    /// The subject of a storm of this scope.
    fn subject(self, key: &str) -> ObjectRef {
        let other = |kind: &str| ObjectRef {
            kind: ObjectKind::Other(kind.to_string()),
            namespace: None,
            name: key.to_string(),
            uid: None,
        };
        match self {
            Scope::Node => ObjectRef::node(key),
            Scope::Namespace => other("Namespace"),
            Scope::Cluster => other("Cluster"),
        }
    }

    /// "on node node-a", "in namespace shop", "in cluster prod".
    fn place(self, key: &str) -> String {
        match self {
            Scope::Node => format!("on node {key}"),
            Scope::Namespace => format!("in namespace {key}"),
            Scope::Cluster => format!("in cluster {key}"),
        }
    }
}

/// One distinct eviction.
#[derive(Debug, Clone)]
struct Eviction {
    pod: ObjectRef,
    at: Timestamp,
    records: Vec<RecordId>,
    message: String,
    cluster: String,
    /// Whether it joined a storm (it then never counts towards another).
    claimed: bool,
}

impl Eviction {
    /// Whether `pod` is this eviction's pod: same namespace and name, and the same uid when
    /// both sides know it.
    fn same_pod(&self, pod: &ObjectRef) -> bool {
        self.pod.namespace == pod.namespace
            && self.pod.name == pod.name
            && match (&self.pod.uid, &pod.uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// State of the EvictionStorm rule.
#[derive(Debug)]
pub(crate) struct EvictionStorm {
    scope: Scope,
    threshold: usize,
    window: SignedDuration,
    quiet: SignedDuration,
    severity: Severity,
    /// Recent evictions by node, kept `window + quiet` after they happened (longer while their
    /// storm is open) so late duplicates are recognised.
    nodes: BTreeMap<String, Vec<Eviction>>,
    /// `(eviction time, key)` of every eviction kept in `nodes`, earliest first: the keys
    /// whose lists may hold an eviction to forget.
    expiries: BinaryHeap<Reverse<(Timestamp, String)>>,
    /// This rule's place in the book (see [`Book::quiet_over`]).
    slot: Option<usize>,
}

impl EvictionStorm {
    pub(crate) fn new(cfg: &EvictionStormConfig, scope: Scope) -> Self {
        Self {
            scope,
            threshold: usize::try_from(cfg.threshold.get()).unwrap_or(usize::MAX),
            window: signed(cfg.window),
            quiet: signed(cfg.quiet),
            severity: cfg.severity,
            nodes: BTreeMap::new(),
            expiries: BinaryHeap::new(),
            slot: None,
        }
    }

    fn on_eviction(
        &mut self,
        record: &Record,
        node: &str,
        message: &str,
        at: Timestamp,
        now: Timestamp,
        book: &mut Book,
    ) {
        let fp = self.scope.fingerprint(node);
        let place = self.scope.place(node);
        let evictions = self.nodes.entry(node.to_string()).or_default();
        let pod = &record.object;
        if let Some(e) = evictions.iter_mut().find(|e| e.same_pod(pod)) {
            // The same eviction seen through the other source (or again): evidence only.
            if e.pod.uid.is_none() {
                e.pod.uid.clone_from(&pod.uid);
            }
            if record.id != RecordId::UNASSIGNED && !e.records.contains(&record.id) {
                e.records.push(record.id);
            }
            if e.claimed {
                let known = e.pod.clone();
                book.update(&fp, |i| {
                    push_record(i, record.id);
                    // The uid may have been learnt just now from the second source.
                    if let Some(o) = i.objects.iter_mut().find(|o| {
                        o.uid.is_none() && o.namespace == known.namespace && o.name == known.name
                    }) {
                        o.uid.clone_from(&known.uid);
                    }
                    false
                });
            }
            tracing::debug!(rule = RULE, node, pod = %pod.key(), "duplicate eviction record");
            return;
        }
        evictions.push(Eviction {
            pod: pod.clone(),
            at,
            records: (record.id != RecordId::UNASSIGNED)
                .then_some(record.id)
                .into_iter()
                .collect(),
            message: message.to_string(),
            cluster: record.cluster.clone(),
            claimed: false,
        });
        self.expiries.push(Reverse((at, node.to_string())));
        tracing::debug!(rule = RULE, node, pod = %pod.key(), "pod evicted");

        let window = self.window;
        // While the storm is open (no `quiet` gap yet) every new eviction joins it, unless it
        // is a late record from before the storm's chain could have reached.
        let joins_open = book
            .get(&fp)
            .is_some_and(|i| at >= i.first_seen.saturating_sub(window).unwrap_or(i.first_seen));
        if joins_open {
            if let Some(e) = evictions.last_mut() {
                e.claimed = true;
                let e = e.clone();
                book.update(&fp, |i| join(i, &e, &place));
            }
            return;
        }
        if book.is_open(&fp) {
            // Far from the open storm in time (a late record): counted for a later window only.
            return;
        }
        if let Some(members) = storm(evictions, self.threshold, window) {
            // A wider storm says nothing new while every one of its evictions is already in an
            // open narrower storm (all on one node): it waits until it spans more.
            let narrower: &[&str] = match self.scope {
                Scope::Node => &[],
                Scope::Namespace => &[RULE],
                Scope::Cluster => &[RULE, NAMESPACE_RULE],
            };
            let covered = !narrower.is_empty()
                && members.iter().all(|&m| {
                    narrower.iter().any(|rule| {
                        book.incidents_of(rule)
                            .any(|i| i.objects.iter().any(|o| same_object(o, &evictions[m].pod)))
                    })
                });
            if covered {
                tracing::debug!(
                    rule = self.scope.rule(),
                    key = node,
                    "storm already reported by a narrower scope"
                );
                return;
            }
            let first = &evictions[members[0]];
            let mut i = new_incident(
                self.scope.rule(),
                fp.clone(),
                self.severity,
                &first.cluster,
                self.scope.subject(node),
                first.at,
                now,
            );
            if self.scope == Scope::Node {
                i.node = Some(node.to_string());
            }
            for &m in &members {
                evictions[m].claimed = true;
                join(&mut i, &evictions[m], &place);
            }
            tracing::info!(
                rule = self.scope.rule(),
                key = node,
                pods = members.len(),
                "eviction storm"
            );
            book.open(i, now);
        }
    }
}

/// Adds eviction `e` to storm incident `i`; always material (one more evicted pod).
fn join(i: &mut herald_core::Incident, e: &Eviction, place: &str) -> bool {
    i.count += 1;
    if e.at < i.first_seen {
        i.first_seen = e.at;
    }
    touch(i, e.at);
    if i.objects.len() < MAX_OBJECTS && !i.objects.contains(&e.pod) {
        i.objects.push(e.pod.clone());
    }
    for id in &e.records {
        push_record(i, *id);
    }
    let namespaces: BTreeSet<_> = i
        .objects
        .iter()
        .filter_map(|o| o.namespace.as_deref())
        .collect();
    i.namespace = match namespaces.len() {
        1 => namespaces.first().map(|n| n.to_string()),
        _ => None,
    };
    if let Some(resource) = low_resource(&e.message) {
        i.labels
            .insert("resource".to_string(), resource.to_string());
    }
    let cause = first_sentence(&e.message);
    i.summary = if cause.is_empty() {
        format!("Eviction storm {place}: {} pods evicted", i.count)
    } else {
        format!("Eviction storm {place}: {} pods evicted ({cause})", i.count)
    };
    true
}

/// The resource named in a kubelet eviction message ("The node was low on resource: memory.").
fn low_resource(message: &str) -> Option<&str> {
    let rest = message.split_once("low on resource: ")?.1;
    let end = rest
        .find(|c: char| c == '.' || c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|r| !r.is_empty())
}

/// Indices (by time) of the unclaimed evictions forming a storm, if any: the chain (consecutive
/// gaps of at most `window`) around some window holding at least `threshold` of them.
fn storm(evictions: &[Eviction], threshold: usize, window: SignedDuration) -> Option<Vec<usize>> {
    let mut idx: Vec<usize> = (0..evictions.len())
        .filter(|&i| !evictions[i].claimed)
        .collect();
    idx.sort_by_key(|&i| (evictions[i].at, i));
    if idx.len() < threshold {
        return None;
    }
    let mut start = 0;
    while start < idx.len() {
        // One chain: idx[start..end].
        let mut end = start + 1;
        while end < idx.len()
            && evictions[idx[end]]
                .at
                .duration_since(evictions[idx[end - 1]].at)
                <= window
        {
            end += 1;
        }
        let chain = &idx[start..end];
        let mut lo = 0;
        for hi in 0..chain.len() {
            while evictions[chain[hi]]
                .at
                .duration_since(evictions[chain[lo]].at)
                > window
            {
                lo += 1;
            }
            if hi + 1 - lo >= threshold {
                return Some(chain.to_vec());
            }
        }
        start = end;
    }
    None
}

impl Rule for EvictionStorm {
    fn name(&self) -> &str {
        self.scope.rule()
    }

    fn on_record(&mut self, record: &Record, at: Timestamp, now: Timestamp, book: &mut Book) {
        if record.object.kind != ObjectKind::Pod {
            return;
        }
        let message = match &record.body {
            RecordBody::Pod(p) => match &p.change {
                PodChange::Evicted { message } => message.as_str(),
                _ => return,
            },
            RecordBody::Event(e) if e.reason == "Evicted" && e.event_type == "Warning" => {
                e.message.as_str()
            }
            _ => return,
        };
        let key = match self.scope {
            Scope::Node => record.node.clone(),
            Scope::Namespace => record.object.namespace.clone(),
            Scope::Cluster => Some(record.cluster.clone()),
        };
        let Some(key) = key.filter(|n| !n.is_empty()) else {
            tracing::debug!(rule = self.scope.rule(), pod = %record.object.key(), "eviction without a node; ignored");
            return;
        };
        self.on_eviction(record, &key, message, at, now, book);
    }

    fn on_time(&mut self, now: Timestamp, book: &mut Book) {
        let rule = self.scope.rule();
        let resolved = book.quiet_over(&mut self.slot, rule, self.quiet, now);
        for fp in &resolved {
            book.resolve(fp, now, now);
        }
        let keep = self.window.saturating_add(self.quiet);
        let horizon = now.saturating_sub(keep).unwrap_or(now);
        let scope = self.scope;
        let forget = |node: &str, evictions: &mut Vec<Eviction>| {
            let open = book.is_open(&scope.fingerprint(node));
            evictions.retain(|e| e.at >= horizon || (open && e.claimed));
            !evictions.is_empty()
        };
        if book.full_sweep() {
            self.expiries.clear();
            self.nodes.retain(|node, evictions| forget(node, evictions));
            return;
        }
        // Only keys holding an eviction older than the horizon can change: those of the
        // evictions that just passed it, and those whose storm just resolved (their claimed
        // evictions were kept while it was open).
        let mut keys: BTreeSet<String> = resolved
            .iter()
            .filter_map(|fp| fp.strip_prefix(rule)?.strip_prefix('/'))
            .map(str::to_string)
            .collect();
        while let Some(Reverse((at, _))) = self.expiries.peek()
            && *at < horizon
        {
            if let Some(Reverse((_, key))) = self.expiries.pop() {
                keys.insert(key);
            }
        }
        for key in keys {
            if let Some(evictions) = self.nodes.get_mut(&key)
                && !forget(&key, evictions)
            {
                self.nodes.remove(&key);
            }
        }
    }

    fn restore(&mut self, incident: &herald_core::Incident) {
        let node = match self.scope {
            Scope::Node => incident.node.clone(),
            Scope::Namespace => None,
            Scope::Cluster => Some(incident.cluster.clone()),
        }
        .unwrap_or_else(|| incident.subject.name.clone());
        let evictions = self.nodes.entry(node.clone()).or_default();
        for pod in &incident.objects {
            if !evictions.iter().any(|e| e.same_pod(pod)) {
                evictions.push(Eviction {
                    pod: pod.clone(),
                    at: incident.last_seen,
                    records: Vec::new(),
                    message: String::new(),
                    cluster: incident.cluster.clone(),
                    claimed: true,
                });
                self.expiries
                    .push(Reverse((incident.last_seen, node.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(secs: i64, claimed: bool) -> Eviction {
        Eviction {
            pod: ObjectRef::pod("ns", format!("p{secs}")),
            at: Timestamp::from_second(secs).expect("ts"),
            records: Vec::new(),
            message: String::new(),
            cluster: "c".into(),
            claimed,
        }
    }

    #[test]
    fn storm_takes_the_whole_chain_and_skips_claimed() {
        let w = SignedDuration::from_secs(10);
        // 0, 5, 10 form a window of 3; 18 chains on (8 after 10); 40 is alone.
        let evs: Vec<_> = [0, 40, 10, 18, 5].iter().map(|&s| ev(s, false)).collect();
        let members = storm(&evs, 3, w).expect("storm");
        let secs: Vec<i64> = members.iter().map(|&i| evs[i].at.as_second()).collect();
        assert_eq!(secs, vec![0, 5, 10, 18]);
        assert_eq!(storm(&evs, 4, w), None);
        let mut claimed = evs.clone();
        claimed[4].claimed = true; // the one at 5
        assert_eq!(storm(&claimed, 3, w).map(|m| m.len()), None);
    }

    #[test]
    fn resource_from_kubelet_message() {
        assert_eq!(
            low_resource(
                "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi"
            ),
            Some("ephemeral-storage")
        );
        assert_eq!(
            low_resource("Pod ephemeral local storage usage exceeds the total limit"),
            None
        );
    }
}
