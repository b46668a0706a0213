//! The OOMKilled rule: a container killed for exceeding its memory limit. One incident per
//! pod and container (`OOMKilled/<ns>/<pod>/<container>`), opened by the pod's
//! `ContainerTerminated{reason: OOMKilled}` record; repeated kills raise the count; it resolves
//! after `resolve_after` without another kill. Node Events about the same kill (`OOMKilling`
//! from node-problem-detector, `SystemOOM` from the kubelet) are folded into the incident as
//! supporting records and never open one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use herald_core::{ObjectKind, PodChange, Record, RecordBody, RecordId, Severity, Timestamp};
use jiff::SignedDuration;

use super::{Rule, new_incident, node_of};
use crate::book::{Book, push_record, touch};
use crate::config::OomKilledConfig;
use crate::duration::signed;

/// Rule name.
pub(crate) const RULE: &str = "OOMKilled";

/// How far apart a node OOM Event and a container's OOMKilled termination may be and still be
/// taken for the same kill when the Event does not name the pod.
const FOLD_WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// A node-level OOM Event not (yet) matched to a container's kill.
#[derive(Debug, Clone)]
struct NodeOom {
    id: RecordId,
    at: Timestamp,
    message: String,
}

/// One container's OOM kill, from its termination record.
struct Kill<'a> {
    container: &'a str,
    init: bool,
    exit_code: i32,
}

/// State of the OOMKilled rule.
#[derive(Debug)]
pub(crate) struct OomKilled {
    severity: Severity,
    resolve_after: SignedDuration,
    /// Recent node OOM Events by node, kept for [`FOLD_WINDOW`] so a container kill seen after
    /// its node Event still picks it up.
    node_ooms: BTreeMap<String, Vec<NodeOom>>,
    /// `(time, node)` of every node OOM Event kept in `node_ooms`, earliest first.
    expiries: BinaryHeap<Reverse<(Timestamp, String)>>,
    /// This rule's place in the book (see [`Book::quiet_over`]).
    slot: Option<usize>,
}

impl OomKilled {
    pub(crate) fn new(cfg: &OomKilledConfig) -> Self {
        Self {
            severity: cfg.severity,
            resolve_after: signed(cfg.resolve_after),
            node_ooms: BTreeMap::new(),
            expiries: BinaryHeap::new(),
            slot: None,
        }
    }

    fn on_kill(
        &mut self,
        record: &Record,
        kill: Kill<'_>,
        at: Timestamp,
        now: Timestamp,
        book: &mut Book,
    ) {
        let Kill {
            container,
            init,
            exit_code,
        } = kill;
        let pod = &record.object;
        let namespace = pod.namespace.clone().unwrap_or_default();
        let fp = format!("{RULE}/{namespace}/{}/{container}", pod.name);
        let node = record.node.clone();
        // Node OOM Events seen just before this kill that are about this pod.
        let folded = node
            .as_deref()
            .map(|n| self.take_node_ooms(n, pod.uid.as_deref(), at))
            .unwrap_or_default();
        let repeated = book.update(&fp, |i| {
            i.count += 1;
            push_record(i, record.id);
            for id in &folded {
                push_record(i, *id);
            }
            touch(i, at);
            if i.subject.uid != pod.uid && pod.uid.is_some() {
                // Same name, new pod object (a StatefulSet replica): follow the newest.
                i.subject = pod.clone();
            }
            false
        });
        if repeated {
            tracing::debug!(rule = RULE, fingerprint = %fp, "repeated OOM kill");
            return;
        }
        // Inhibition: on a NotReady node the kill joins the node's incident.
        let mut ids = vec![record.id];
        ids.extend(folded.iter().copied());
        if book.attach_to_not_ready_node(node.as_deref(), pod, &ids, at) {
            tracing::debug!(rule = RULE, fingerprint = %fp, "node is NotReady; kill attached to its incident");
            return;
        }
        let mut i = new_incident(
            RULE,
            fp,
            self.severity,
            &record.cluster,
            pod.clone(),
            at,
            now,
        );
        let kind = if init { "Init container" } else { "Container" };
        i.summary = format!(
            "{kind} {container} in pod {} was OOMKilled (exit code {exit_code})",
            pod.key()
        );
        i.namespace = pod.namespace.clone();
        i.node = node;
        i.count = 1;
        push_record(&mut i, record.id);
        for id in folded {
            push_record(&mut i, id);
        }
        i.labels = record.labels.clone();
        i.labels
            .insert("container".to_string(), container.to_string());
        if let Some(owner) = &record.owner {
            i.labels.insert(
                "owner".to_string(),
                format!("{}/{}", owner.kind, owner.name),
            );
        }
        book.open(i, now);
    }

    /// Removes and returns the ids of recent node OOM Events on `node` that are this pod's kill:
    /// they name the pod's uid, or are the only ones within [`FOLD_WINDOW`].
    fn take_node_ooms(&mut self, node: &str, uid: Option<&str>, at: Timestamp) -> Vec<RecordId> {
        let Some(list) = self.node_ooms.get_mut(node) else {
            return Vec::new();
        };
        let near = |o: &NodeOom| o.at.duration_since(at).abs() <= FOLD_WINDOW;
        let mut taken = Vec::new();
        list.retain(|o| {
            let ours = near(o)
                && uid.is_none_or(|u| names_pod(&o.message, u) || !names_any_pod(&o.message));
            if ours {
                taken.push(o.id);
            }
            !ours
        });
        taken
    }

    /// A node OOM Event: folds into the open OOMKilled incident on that node it is clearly
    /// about, else is kept briefly in case the container's termination record follows.
    fn on_node_oom(&mut self, record: &Record, message: &str, at: Timestamp, book: &mut Book) {
        let Some(node) = node_of(record) else {
            return;
        };
        let candidates: Vec<(String, bool)> = book
            .incidents_of(RULE)
            .filter(|i| i.node.as_deref() == Some(node))
            .filter(|i| i.last_seen.duration_since(at).abs() <= FOLD_WINDOW)
            .map(|i| {
                let named = i
                    .subject
                    .uid
                    .as_deref()
                    .is_some_and(|u| names_pod(message, u));
                (i.fingerprint.clone(), named)
            })
            .collect();
        let target = match candidates.iter().find(|(_, named)| *named) {
            Some((fp, _)) => Some(fp.clone()),
            None if candidates.len() == 1 && !names_any_pod(message) => {
                candidates.first().map(|(fp, _)| fp.clone())
            }
            None => None,
        };
        if let Some(fp) = target {
            // The same kill seen from the node: evidence, not a new occurrence.
            book.update(&fp, |i| {
                push_record(i, record.id);
                false
            });
            tracing::debug!(rule = RULE, fingerprint = %fp, node, "node OOM event folded into incident");
            return;
        }
        self.node_ooms
            .entry(node.to_string())
            .or_default()
            .push(NodeOom {
                id: record.id,
                at,
                message: message.to_string(),
            });
        self.expiries.push(Reverse((at, node.to_string())));
    }
}

/// Whether a kernel OOM message names the pod with this uid. The cgroup path carries it as
/// `pod<uid>` (cgroupfs driver) or `pod<uid with _>` (systemd driver).
fn names_pod(message: &str, uid: &str) -> bool {
    !uid.is_empty()
        && (message.contains(&format!("pod{uid}"))
            || message.contains(&format!("pod{}", uid.replace('-', "_"))))
}

/// Whether a kernel OOM message names some pod's cgroup at all.
fn names_any_pod(message: &str) -> bool {
    message.contains("kubepods") && message.contains("pod")
}

impl Rule for OomKilled {
    fn name(&self) -> &str {
        RULE
    }

    fn on_record(&mut self, record: &Record, at: Timestamp, now: Timestamp, book: &mut Book) {
        match &record.body {
            RecordBody::Pod(p) if record.object.kind == ObjectKind::Pod => {
                if let PodChange::ContainerTerminated {
                    container,
                    init,
                    reason: Some(reason),
                    exit_code,
                    ..
                } = &p.change
                    && reason == "OOMKilled"
                {
                    let kill = Kill {
                        container,
                        init: *init,
                        exit_code: *exit_code,
                    };
                    self.on_kill(record, kill, at, now, book);
                }
            }
            RecordBody::Event(e) if e.reason == "OOMKilling" || e.reason == "SystemOOM" => {
                self.on_node_oom(record, &e.message, at, book);
            }
            _ => {}
        }
    }

    fn on_time(&mut self, now: Timestamp, book: &mut Book) {
        for fp in book.quiet_over(&mut self.slot, RULE, self.resolve_after, now) {
            book.resolve(&fp, now, now);
        }
        let horizon = now.saturating_sub(FOLD_WINDOW).unwrap_or(now);
        let forget = |list: &mut Vec<NodeOom>| {
            list.retain(|o| o.at >= horizon);
            !list.is_empty()
        };
        if book.full_sweep() {
            self.expiries.clear();
            self.node_ooms.retain(|_, list| forget(list));
            return;
        }
        // Only the nodes of Events that just passed the horizon can change.
        let mut nodes = BTreeSet::new();
        while let Some(Reverse((at, _))) = self.expiries.peek()
            && *at < horizon
        {
            if let Some(Reverse((_, node))) = self.expiries.pop() {
                nodes.insert(node);
            }
        }
        for node in nodes {
            if let Some(list) = self.node_ooms.get_mut(&node)
                && !forget(list)
            {
                self.node_ooms.remove(&node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_messages_name_pods_by_cgroup() {
        let uid = "3c9d2a10-5e4f-4b8a-a1c2-d3e4f5a6b7c8";
        let cgroupfs = format!(
            "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/kubepods/burstable/pod{uid}/4f1c"
        );
        let systemd = format!(
            "task_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-4f1c.scope",
            uid.replace('-', "_")
        );
        assert!(names_pod(&cgroupfs, uid) && names_any_pod(&cgroupfs));
        assert!(names_pod(&systemd, uid) && names_any_pod(&systemd));
        assert!(!names_pod(
            &cgroupfs,
            "ffffffff-5e4f-4b8a-a1c2-d3e4f5a6b7c8"
        ));
        let bare = "System OOM encountered, victim process: java, pid: 31337";
        assert!(!names_any_pod(bare));
    }
}
