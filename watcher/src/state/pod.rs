//! Pod state and transitions: `Created`, `ContainerTerminated` (once per termination),
//! `ContainerWaiting` (problem reasons only), `PhaseChanged`, `Evicted` (instead of a
//! `PhaseChanged` to `Failed`), `DeletionRequested` and `Deleted`.
//!
//! A termination is identified by a hash of its `containerID`, `startedAt`, `finishedAt`, exit
//! code and reason. The last two identities of each container (from `state.terminated` and
//! `lastState.terminated`) are kept, so the same termination moving from `state` to `lastState`
//! when the container restarts is not reported twice, and a restart seen only through
//! `lastState` (restartCount + 1) is reported once.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::objects::{ContainerStateTerminated, ContainerStatus, Pod};
use herald_core::{ObjectKind, ObjectRef, PodChange, PodTransition, Record, RecordBody, RecordId};

use super::{FirstSight, RecordCtx, Source, StateOptions, Tracker, non_empty, object_key};

/// Waiting reasons that are a normal step of starting a container, never reported.
const ROUTINE_WAITING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Whether a container waiting reason is worth reporting (`CrashLoopBackOff`,
/// `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`, `RunContainerError`, ...):
/// every reason except the routine `ContainerCreating` and `PodInitializing`.
pub fn is_problem_waiting(reason: &str) -> bool {
    !reason.is_empty() && !ROUTINE_WAITING.contains(&reason)
}

/// Compact state of one container (or init container).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerEntry {
    /// Container name (shared by every pod of a workload: interned).
    pub name: Arc<str>,
    /// Whether it is an init container.
    pub init: bool,
    /// Last seen `restartCount`.
    pub restart_count: u32,
    /// Identity of the last seen `state.terminated`.
    pub terminated: Option<u64>,
    /// Identity of the last seen `lastState.terminated`.
    pub last_terminated: Option<u64>,
    /// Last seen `state.waiting.reason` (interned).
    pub waiting: Option<Arc<str>>,
}

/// Compact state of one pod: about 200 bytes plus the pod's name, since the strings many pods
/// share (namespace, node, owner, container names, phase, reasons) are stored once in the
/// state's [`Interner`]. The persisted form (serde) is the same JSON as plain strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodEntry {
    /// Namespace (interned).
    pub namespace: Arc<str>,
    /// Name.
    pub name: Box<str>,
    /// Uid (the same allocation as the state's key).
    pub uid: Option<Arc<str>>,
    /// `spec.nodeName` (interned).
    pub node: Option<Arc<str>>,
    /// The controlling owner (interned: one allocation per owner, shared by its pods).
    pub owner: Option<Arc<ObjectRef>>,
    /// `status.phase` (interned).
    pub phase: Option<Arc<str>>,
    /// Whether the pod was evicted (`phase=Failed`, `reason=Evicted`).
    pub evicted: bool,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deletion_requested: bool,
    /// Containers, init containers first.
    pub containers: Box<[ContainerEntry]>,
}

/// Strings (and owner references) that many pods share, each stored once. Entries nobody else
/// holds any more are dropped when the interner has doubled since its last sweep, so it stays
/// proportional to what the tracked pods use.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
    owners: HashSet<Arc<ObjectRef>>,
    sweep_at: usize,
}

/// Entries below which the interner is never swept.
const INTERNER_MIN_SWEEP: usize = 4096;

impl Interner {
    /// The shared copy of `s`.
    pub fn str(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        self.maybe_sweep();
        a
    }

    /// The shared copy of `s`, when it is non-empty.
    fn non_empty(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.filter(|s| !s.is_empty()).map(|s| self.str(s))
    }

    /// The shared copy of `owner`.
    pub fn owner(&mut self, owner: ObjectRef) -> Arc<ObjectRef> {
        if let Some(a) = self.owners.get(&owner) {
            return a.clone();
        }
        let a = Arc::new(owner);
        self.owners.insert(a.clone());
        self.maybe_sweep();
        a
    }

    /// Number of distinct entries held.
    pub fn len(&self) -> usize {
        self.strings.len() + self.owners.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn maybe_sweep(&mut self) {
        let n = self.len();
        if n < INTERNER_MIN_SWEEP.max(self.sweep_at) {
            return;
        }
        self.strings.retain(|a| Arc::strong_count(a) > 1);
        self.owners.retain(|a| Arc::strong_count(a) > 1);
        self.sweep_at = self.len() * 2;
    }

    /// `entry` with its shared parts replaced by their shared copies (after decoding).
    fn entry(&mut self, mut entry: PodEntry) -> PodEntry {
        entry.namespace = self.str(&entry.namespace);
        entry.node = entry.node.map(|n| self.str(&n));
        entry.owner = entry.owner.map(|o| self.owner((*o).clone()));
        entry.phase = entry.phase.map(|p| self.str(&p));
        for c in entry.containers.iter_mut() {
            c.name = self.str(&c.name);
            c.waiting = c.waiting.take().map(|w| self.str(&w));
        }
        entry
    }
}

impl PodEntry {
    /// The compact state of `pod` (with its own copies of every string).
    pub fn from_pod(pod: &Pod) -> Self {
        Self::build(pod, None, &mut Interner::default())
    }

    /// The compact state of `pod`, sharing strings through `interner`; `uid` is the shared
    /// copy of the pod's uid when the caller has one.
    fn build(pod: &Pod, uid: Option<Arc<str>>, interner: &mut Interner) -> Self {
        let meta = &pod.metadata;
        let status = pod.status.as_ref();
        let containers = container_statuses(pod)
            .map(|(cs, init)| ContainerEntry {
                name: interner.str(&cs.name),
                init,
                restart_count: restart_count(cs),
                terminated: cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination_id),
                last_terminated: cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(termination_id),
                waiting: waiting(cs).map(|(reason, _)| interner.str(reason)),
            })
            .collect();
        let uid = uid.or_else(|| meta.uid.as_deref().filter(|u| !u.is_empty()).map(Arc::from));
        Self {
            namespace: interner.str(meta.namespace.as_deref().unwrap_or_default()),
            name: meta.name.as_deref().unwrap_or_default().into(),
            uid,
            node: interner.non_empty(pod.spec.as_ref().and_then(|s| s.node_name.as_deref())),
            owner: controller_owner(pod).map(|o| interner.owner(o)),
            phase: interner.non_empty(status.and_then(|s| s.phase.as_deref())),
            evicted: is_evicted(pod),
            deletion_requested: meta.deletion_timestamp.is_some(),
            containers,
        }
    }

    fn container(&self, name: &str, init: bool) -> Option<&ContainerEntry> {
        self.containers
            .iter()
            .find(|c| c.init == init && &*c.name == name)
    }

    /// The object reference of the pod.
    pub fn object_ref(&self) -> ObjectRef {
        let r = ObjectRef::pod(self.namespace.to_string(), self.name.to_string());
        match &self.uid {
            Some(uid) => r.with_uid(uid.to_string()),
            None => r,
        }
    }
}

/// The state of every pod.
#[derive(Debug, Default)]
pub struct PodState {
    pods: HashMap<Arc<str>, PodEntry>,
    interner: Interner,
    listed: bool,
    opts: StateOptions,
}

impl PodState {
    /// An empty state.
    pub fn new(opts: StateOptions) -> Self {
        Self {
            opts,
            ..Self::default()
        }
    }

    /// Number of pods tracked.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is tracked.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The state of the pod with this key (uid, or `namespace/name`).
    pub fn get(&self, key: &str) -> Option<&PodEntry> {
        self.pods.get(key)
    }

    /// Distinct shared strings and owners held for the tracked pods.
    pub fn interned(&self) -> usize {
        self.interner.len()
    }

    /// Whether the state was filled by a complete list.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Marks the state as filled by a complete list: from now on, unknown pods are new.
    pub fn set_listed(&mut self) {
        self.listed = true;
    }

    /// The shared copy of `key`: the existing map key, else a new allocation.
    fn shared_key(&self, key: &str) -> Arc<str> {
        self.pods
            .get_key_value(key)
            .map_or_else(|| Arc::from(key), |(k, _)| k.clone())
    }
}

/// Applies a pod seen in a list or an ADDED/MODIFIED event and returns its transitions.
pub fn apply(state: &mut PodState, pod: &Pod, source: Source) -> Vec<PodChange> {
    let Some(key) = object_key(&pod.metadata) else {
        return Vec::new();
    };
    let key = state.shared_key(&key);
    let uid = pod
        .metadata
        .uid
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|_| key.clone());
    let new = PodEntry::build(pod, uid, &mut state.interner);
    let changes = match state.pods.get(&key) {
        Some(old) => diff(Some(old), &new, pod, None, &state.opts),
        None => {
            let first = FirstSight::of(source, state.listed);
            diff(None, &new, pod, Some(first), &state.opts)
        }
    };
    state.pods.insert(key, new);
    changes
}

/// Applies a DELETED event: the transitions of the pod's final state (when it was known), then
/// `Deleted`.
pub fn delete(state: &mut PodState, pod: &Pod) -> Vec<PodChange> {
    let Some(key) = object_key(&pod.metadata) else {
        return Vec::new();
    };
    let mut changes = match state.pods.remove(key.as_str()) {
        Some(old) => diff(Some(&old), &PodEntry::from_pod(pod), pod, None, &state.opts),
        None => Vec::new(),
    };
    changes.retain(|c| !matches!(c, PodChange::DeletionRequested));
    changes.push(PodChange::Deleted);
    changes
}

/// After a re-list: removes every pod whose key is not in `listed` and returns their entries
/// (each one is a `Deleted`).
pub fn remove_unlisted(state: &mut PodState, listed: &HashSet<String>) -> Vec<PodEntry> {
    let gone: Vec<Arc<str>> = state
        .pods
        .keys()
        .filter(|k| !listed.contains(&***k))
        .cloned()
        .collect();
    gone.into_iter()
        .filter_map(|k| state.pods.remove(&k))
        .collect()
}

/// The transitions from `old` (or from nothing, treated as `first`) to `pod`.
fn diff(
    old: Option<&PodEntry>,
    new: &PodEntry,
    pod: &Pod,
    first: Option<FirstSight>,
    opts: &StateOptions,
) -> Vec<PodChange> {
    let mut out = Vec::new();
    if first == Some(FirstSight::New) {
        out.push(PodChange::Created);
    }
    let report_current = match first {
        Some(FirstSight::Seed) => opts.report_on_seed,
        _ => true,
    };

    for (cs, init) in container_statuses(pod) {
        let old_c = old.and_then(|o| o.container(&cs.name, init));
        let restarts = restart_count(cs);
        let mut reported: Vec<u64> = Vec::new();
        let terminations = [
            cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
            cs.state.as_ref().and_then(|s| s.terminated.as_ref()),
        ];
        for t in terminations.into_iter().flatten() {
            let id = termination_id(t);
            if reported.contains(&id) {
                continue;
            }
            let report = match first {
                None => {
                    old_c.is_none_or(|c| c.terminated != Some(id) && c.last_terminated != Some(id))
                }
                Some(FirstSight::New) => true,
                Some(FirstSight::Seed) => false,
                Some(FirstSight::Resumed) => match (opts.resume_floor, &t.finished_at) {
                    (Some(floor), Some(finished)) => finished.0 >= floor,
                    _ => false,
                },
            };
            if report {
                reported.push(id);
                out.push(PodChange::ContainerTerminated {
                    container: cs.name.clone(),
                    init,
                    reason: non_empty(t.reason.as_deref()),
                    exit_code: t.exit_code,
                    signal: t.signal,
                    message: non_empty(t.message.as_deref()),
                    restart_count: restarts,
                    finished_at: t.finished_at.as_ref().map(|f| f.0),
                });
            }
        }

        if let Some((reason, message)) = waiting(cs).filter(|(r, _)| is_problem_waiting(r)) {
            let report = match first {
                None => old_c.and_then(|c| c.waiting.as_deref()) != Some(reason),
                Some(_) => report_current,
            };
            if report {
                out.push(PodChange::ContainerWaiting {
                    container: cs.name.clone(),
                    init,
                    reason: reason.to_string(),
                    message: message.map(str::to_string),
                    restart_count: restarts,
                });
            }
        }
    }

    let status = pod.status.as_ref();
    match (old, first) {
        (Some(old), _) => {
            if new.evicted && !old.evicted {
                out.push(evicted(pod));
            } else if let Some(to) = new
                .phase
                .as_ref()
                .filter(|p| Some(*p) != old.phase.as_ref())
            {
                out.push(PodChange::PhaseChanged {
                    from: old.phase.as_deref().map(str::to_string),
                    to: to.to_string(),
                    reason: non_empty(status.and_then(|s| s.reason.as_deref())),
                    message: non_empty(status.and_then(|s| s.message.as_deref())),
                });
            }
            if new.deletion_requested && !old.deletion_requested {
                out.push(PodChange::DeletionRequested);
            }
        }
        (None, Some(FirstSight::New | FirstSight::Resumed)) => {
            if new.evicted {
                out.push(evicted(pod));
            }
            if new.deletion_requested {
                out.push(PodChange::DeletionRequested);
            }
        }
        (None, _) => {}
    }
    out
}

fn evicted(pod: &Pod) -> PodChange {
    PodChange::Evicted {
        message: pod
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default(),
    }
}

/// Whether the pod was evicted by the kubelet (`status.phase=Failed`, `status.reason=Evicted`).
pub fn is_evicted(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Failed") && s.reason.as_deref() == Some("Evicted")
    })
}

/// Container statuses, init containers first, with whether each is an init container.
fn container_statuses(pod: &Pod) -> impl Iterator<Item = (&ContainerStatus, bool)> {
    let status = pod.status.as_ref();
    let init = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| (c, true));
    let main = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| (c, false));
    init.chain(main)
}

fn restart_count(cs: &ContainerStatus) -> u32 {
    u32::try_from(cs.restart_count).unwrap_or(0)
}

/// `(reason, message)` of `state.waiting`, when it has a reason.
fn waiting(cs: &ContainerStatus) -> Option<(&str, Option<&str>)> {
    let w = cs.state.as_ref()?.waiting.as_ref()?;
    let reason = w.reason.as_deref().filter(|r| !r.is_empty())?;
    Some((reason, w.message.as_deref().filter(|m| !m.is_empty())))
}

/// The identity of one termination (stable within the process).
fn termination_id(t: &ContainerStateTerminated) -> u64 {
    let mut h = DefaultHasher::new();
    t.container_id.hash(&mut h);
    t.started_at
        .as_ref()
        .map(|s| s.0.as_nanosecond())
        .hash(&mut h);
    t.finished_at
        .as_ref()
        .map(|s| s.0.as_nanosecond())
        .hash(&mut h);
    t.exit_code.hash(&mut h);
    t.reason.hash(&mut h);
    h.finish()
}

/// The pod's controlling owner (the ownerReference with `controller: true`).
pub fn controller_owner(pod: &Pod) -> Option<ObjectRef> {
    let owner = pod
        .metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    Some(ObjectRef {
        kind: ObjectKind::from_kind(&owner.kind),
        namespace: non_empty(pod.metadata.namespace.as_deref()),
        name: owner.name.clone(),
        uid: non_empty(Some(&owner.uid)),
    })
}

/// A record of a pod transition, for a pod whose object is at hand.
pub(crate) fn record(
    ctx: &RecordCtx<'_>,
    entry: &PodEntry,
    labels: BTreeMap<String, String>,
    change: PodChange,
) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: ctx.cluster.to_string(),
        observed_at: ctx.now,
        object: entry.object_ref(),
        node: entry.node.as_deref().map(str::to_string),
        owner: entry.owner.as_deref().cloned(),
        labels,
        body: RecordBody::Pod(PodTransition {
            phase: entry.phase.as_deref().map(str::to_string),
            change,
        }),
    }
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

impl Tracker for PodState {
    type Object = Pod;

    fn key(obj: &Pod) -> Option<String> {
        object_key(&obj.metadata)
    }

    fn set_listed(&mut self) {
        self.listed = true;
    }

    fn set_options(&mut self, opts: StateOptions) {
        self.opts = opts;
    }

    fn apply(&mut self, obj: Pod, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record> {
        let changes = apply(self, &obj, source);
        to_records(ctx, &obj, changes)
    }

    fn delete(&mut self, obj: &Pod, ctx: &RecordCtx<'_>) -> Vec<Record> {
        let changes = delete(self, obj);
        to_records(ctx, obj, changes)
    }

    fn remove_unlisted(&mut self, listed: &HashSet<String>, ctx: &RecordCtx<'_>) -> Vec<Record> {
        remove_unlisted(self, listed)
            .iter()
            .map(|e| record(ctx, e, BTreeMap::new(), PodChange::Deleted))
            .collect()
    }

    fn len(&self) -> usize {
        self.pods.len()
    }

    fn keys(&self) -> Vec<String> {
        self.pods.keys().map(|k| k.to_string()).collect()
    }

    fn export(&self, key: &str) -> Option<Vec<u8>> {
        self.pods.get(key).and_then(super::encode_entry)
    }

    fn import(&mut self, key: String, bytes: &[u8]) -> Result<(), String> {
        let mut entry = self.interner.entry(super::decode_entry::<PodEntry>(bytes)?);
        // The uid and the key are one allocation, as in `apply`.
        let key: Arc<str> = match entry.uid.take() {
            Some(uid) if *uid == *key => {
                entry.uid = Some(uid.clone());
                uid
            }
            other => {
                entry.uid = other;
                Arc::from(key)
            }
        };
        self.pods.insert(key, entry);
        Ok(())
    }
}

fn to_records(ctx: &RecordCtx<'_>, pod: &Pod, changes: Vec<PodChange>) -> Vec<Record> {
    if changes.is_empty() {
        return Vec::new();
    }
    let entry = PodEntry::from_pod(pod);
    let labels = labels(pod);
    changes
        .into_iter()
        .map(|c| record(ctx, &entry, labels.clone(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, uid: &str, owner: &str, node: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "namespace": ns, "name": name, "uid": uid,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                    "uid": format!("{owner}-uid"), "controller": true
                }]
            },
            "spec": {"nodeName": node, "containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                    "state": {"running": {}}
                }]
            }
        }))
        .unwrap()
    }

    #[test]
    fn pods_share_their_common_strings() {
        let mut st = PodState::new(StateOptions::default());
        apply(
            &mut st,
            &pod("shop", "a", "u-a", "rs-1", "n1"),
            Source::List,
        );
        apply(
            &mut st,
            &pod("shop", "b", "u-b", "rs-1", "n1"),
            Source::List,
        );
        let (a, b) = (st.get("u-a").unwrap(), st.get("u-b").unwrap());
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(
            a.owner.as_ref().unwrap(),
            b.owner.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            a.node.as_ref().unwrap(),
            b.node.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(&a.containers[0].name, &b.containers[0].name));
        // The uid is the map key's allocation.
        let (k, e) = st.pods.get_key_value("u-a").unwrap();
        assert!(Arc::ptr_eq(k, e.uid.as_ref().unwrap()));
    }

    #[test]
    fn the_interner_forgets_what_no_pod_uses() {
        let mut st = PodState::new(StateOptions::default());
        for i in 0..20_000 {
            let p = pod(
                "ns",
                &format!("p{i}"),
                &format!("u{i}"),
                &format!("rs-{i}"),
                "n",
            );
            apply(&mut st, &p, Source::Added);
            delete(&mut st, &p);
        }
        assert!(st.is_empty());
        // Each pod had its own owner; a sweep runs whenever the interner doubles.
        assert!(
            st.interned() < 2 * INTERNER_MIN_SWEEP + 8,
            "{}",
            st.interned()
        );
    }

    #[test]
    fn exported_state_is_plain_json_and_imports_shared() {
        let mut st = PodState::new(StateOptions::default());
        apply(
            &mut st,
            &pod("shop", "a", "u-a", "rs-1", "n1"),
            Source::List,
        );
        let bytes = st.export("u-a").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // The same JSON as when the fields were plain `String`s (stores written before load).
        assert_eq!(v["namespace"], "shop");
        assert_eq!(v["uid"], "u-a");
        assert_eq!(v["owner"]["name"], "rs-1");
        assert_eq!(v["containers"][0]["name"], "app");
        let mut back = PodState::new(StateOptions::default());
        back.import("u-a".into(), &bytes).unwrap();
        back.import("u-b".into(), &bytes).unwrap();
        assert_eq!(back.get("u-a"), st.get("u-a"));
        let (a, b) = (back.get("u-a").unwrap(), back.get("u-b").unwrap());
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(
            a.owner.as_ref().unwrap(),
            b.owner.as_ref().unwrap()
        ));
        let (k, e) = back.pods.get_key_value("u-a").unwrap();
        assert!(Arc::ptr_eq(k, e.uid.as_ref().unwrap()));
    }
}
