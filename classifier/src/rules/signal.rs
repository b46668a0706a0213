//! The signal rule: the engine behind every built-in rule that is "this kind of record, this
//! often, for this long" (CrashLoopBackOff, ImagePullBackOff, FailedScheduling, FailedMount,
//! Unhealthy, JobFailed, NodePressure, NodeRebooted, Evicted) and behind every YAML rule.
//!
//! A [`SignalSpec`] says which records are occurrences ([`Match`]), which records end the
//! problem for an object (`clear`), how occurrences are grouped into one incident (`group_by`:
//! the fingerprint is the rule name plus the group's key parts), how many occurrences within
//! `window` open it (`threshold`), how long it must persist first (`persist`), when it resolves
//! (`quiet` without an occurrence, or every object cleared), its severity and escalation by
//! restart count, and its summary template.
//!
//! Times are record times, so occurrences of one window may arrive in any order: an incident
//! opens when some span of `window` (inclusive) holds `threshold` occurrences.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use herald_core::{Incident, ObjectKind, ObjectRef, Record, RecordId, Severity, Timestamp};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::{Rule, first_sentence, new_incident, node_of};
use crate::book::{Book, MAX_OBJECTS, push_record, same_object, touch};
use crate::pods::{PodIndex, workload};

/// The most occurrence times a group keeps for its window.
const MAX_HITS: usize = 4096;

/// One occurrence found in a record by a [`Match`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Signal {
    /// The reason it is about (`CrashLoopBackOff`, `MemoryPressure`, an Event's reason).
    pub(crate) reason: String,
    /// The container, when the record names one.
    pub(crate) container: Option<String>,
    /// The container's restart count, when the record tells it.
    pub(crate) restarts: Option<u32>,
    /// How many occurrences the record stands for (an Event's count delta; 0 = evidence only).
    pub(crate) weight: u64,
    /// The human message of the record.
    pub(crate) message: String,
}

/// Finds occurrences in records.
pub(crate) trait Match: std::fmt::Debug + Send {
    /// The occurrence `record` is, if any. `pods` tells what is known about the record's pod.
    fn signal(&self, record: &Record, pods: &PodIndex) -> Option<Signal>;
}

/// A [`Match`] written as a plain function (the built-in rules).
pub(crate) struct FnMatch(pub(crate) fn(&Record, &PodIndex) -> Option<Signal>);

impl std::fmt::Debug for FnMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnMatch")
    }
}

impl Match for FnMatch {
    fn signal(&self, record: &Record, pods: &PodIndex) -> Option<Signal> {
        (self.0)(record, pods)
    }
}

/// One part of an incident's identity (`group_by` of a rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKey {
    /// The cluster: one incident for the whole cluster.
    Cluster,
    /// The object's namespace.
    Namespace,
    /// The node involved (the pod's node, the node itself, an Event's reporting host).
    Node,
    /// The pod (`namespace/name`).
    Pod,
    /// The container named by the record.
    Container,
    /// The pod's workload: its controlling owner, a Deployment for the ReplicaSets it
    /// manages; the pod itself when it has no controller. Pods of one workload share one
    /// incident.
    Owner,
    /// The record's object (an Event's involved object).
    Object,
    /// The record's reason.
    Reason,
}

impl GroupKey {
    /// Every key, with its YAML name.
    pub const ALL: [(&'static str, GroupKey); 8] = [
        ("cluster", GroupKey::Cluster),
        ("namespace", GroupKey::Namespace),
        ("node", GroupKey::Node),
        ("pod", GroupKey::Pod),
        ("container", GroupKey::Container),
        ("owner", GroupKey::Owner),
        ("object", GroupKey::Object),
        ("reason", GroupKey::Reason),
    ];
}

/// The placeholders a summary template may use.
pub(crate) const PLACEHOLDERS: [&str; 13] = [
    "rule",
    "reason",
    "subject",
    "namespace",
    "node",
    "pod",
    "container",
    "owner",
    "object",
    "count",
    "pods",
    "message",
    "restarts",
];

/// A compiled signal rule.
#[derive(Debug)]
pub(crate) struct SignalSpec {
    /// Rule name (the fingerprint's first part).
    pub(crate) name: String,
    /// Severity at opening.
    pub(crate) severity: Severity,
    /// `(restarts, severity)`: the severity rises to this once a container of the incident has
    /// restarted at least this often.
    pub(crate) escalation: Vec<(u32, Severity)>,
    /// What is an occurrence.
    pub(crate) matcher: Box<dyn Match>,
    /// What ends the problem for the record's object (its `reason`, when not empty, must be
    /// the group's).
    pub(crate) clear: Option<Box<dyn Match>>,
    /// Occurrences within `window` that open an incident (at least 1).
    pub(crate) threshold: u64,
    /// The counting window (inclusive).
    pub(crate) window: SignedDuration,
    /// How long after the first occurrence the problem must still be there (not cleared)
    /// before the incident opens.
    pub(crate) persist: SignedDuration,
    /// Resolves after this long without an occurrence; `None`: only a clear resolves it.
    pub(crate) quiet: Option<SignedDuration>,
    /// The identity of an incident.
    pub(crate) group_by: Vec<GroupKey>,
    /// Summary template (`{placeholder}`s of [`PLACEHOLDERS`]).
    pub(crate) summary: String,
    /// While the record's node has an open NotReady incident, a pod's occurrence joins that
    /// incident instead (unless this rule's incident is already open).
    pub(crate) inhibit: bool,
    /// Ignore pods being deleted (readiness failures during shutdown and the like).
    pub(crate) skip_deleting: bool,
    /// Count distinct objects rather than occurrences (two sources of one eviction).
    pub(crate) distinct_objects: bool,
    /// Rules whose open incidents absorb this one: when every object of the group is already
    /// the subject of, or listed by, an open incident of one of them (an eviction that is part
    /// of a storm, a crash loop of a container that was just OOMKilled), nothing opens; the
    /// records join that incident.
    pub(crate) absorbed_by: &'static [&'static str],
}

/// One group: the occurrences under one fingerprint.
#[derive(Debug, Clone)]
struct Group {
    cluster: String,
    subject: ObjectRef,
    node: Option<String>,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    /// Occurrence times and weights, for the window.
    hits: VecDeque<(Timestamp, u64)>,
    first: Timestamp,
    last: Timestamp,
    count: u64,
    records: Vec<RecordId>,
    objects: Vec<ObjectRef>,
    /// Keys of the objects still having the problem (not cleared).
    active: BTreeSet<String>,
    reason: String,
    message: String,
    container: Option<String>,
    restarts: Option<u32>,
    owner: Option<String>,
    /// The threshold was reached within a window.
    armed: bool,
    /// The objects its incident lists (`objects` until it opens, then the incident's), by
    /// [`object_part`]: whether an object is new costs a lookup, not a scan of up to
    /// [`MAX_OBJECTS`].
    listed: BTreeMap<String, Vec<ObjectRef>>,
    /// Tells this group from earlier ones of the same fingerprint in the timer queues.
    generation: u64,
    /// The earliest instant queued in `opens_due` for this group.
    open_queued: Option<Timestamp>,
}

impl Group {
    /// Whether `obj` (whose [`object_part`] is `key`) is listed: [`same_object`] as one of them.
    fn lists(&self, key: &str, obj: &ObjectRef) -> bool {
        self.listed
            .get(key)
            .is_some_and(|l| l.iter().any(|o| same_object(o, obj)))
    }

    /// Records that `obj` (whose [`object_part`] is `key`) is now listed.
    fn list(&mut self, key: &str, obj: &ObjectRef) {
        self.listed
            .entry(key.to_string())
            .or_default()
            .push(obj.clone());
    }
}

/// The [`Group::listed`] index of `objects`.
fn listed(objects: &[ObjectRef]) -> BTreeMap<String, Vec<ObjectRef>> {
    let mut map: BTreeMap<String, Vec<ObjectRef>> = BTreeMap::new();
    for o in objects {
        map.entry(object_part(o)).or_default().push(o.clone());
    }
    map
}

/// A timer queue entry: `(due, group generation, fingerprint)`, earliest first.
type Due = Reverse<(Timestamp, u64, String)>;

/// State of one signal rule.
#[derive(Debug)]
pub(crate) struct SignalRule {
    spec: SignalSpec,
    groups: BTreeMap<String, Group>,
    /// The generation of the next group created.
    next_generation: u64,
    /// Armed groups not open yet, by the instant they have persisted long enough
    /// (`first + persist`). Entries of groups opened, removed or replaced since are skipped.
    opens_due: BinaryHeap<Due>,
    /// Groups by the instant they may be forgotten if not open (`last + keep`, as of when the
    /// entry was queued: an entry that comes up early is queued again for the group's current
    /// `last`).
    expiries: BinaryHeap<Due>,
    /// Fingerprints of the groups by the keys of their active objects (`Group::active`), so a
    /// clearing record reads only the groups it clears.
    by_object: BTreeMap<String, BTreeSet<String>>,
    /// This rule's place in the book (see [`Book::quiet_over`]).
    slot: Option<usize>,
}

/// What the key parts and subject of a record are.
struct Identity {
    fingerprint: String,
    subject: ObjectRef,
    node: Option<String>,
    namespace: Option<String>,
    owner: Option<String>,
    labels: BTreeMap<String, String>,
}

impl SignalRule {
    pub(crate) fn new(spec: SignalSpec) -> Self {
        Self {
            spec,
            groups: BTreeMap::new(),
            next_generation: 0,
            opens_due: BinaryHeap::new(),
            expiries: BinaryHeap::new(),
            by_object: BTreeMap::new(),
            slot: None,
        }
    }

    /// Forgets group `fp` (and its active objects).
    fn remove_group(&mut self, fp: &str) -> Option<Group> {
        let g = self.groups.remove(fp)?;
        for key in &g.active {
            self.unlink(key, fp);
        }
        Some(g)
    }

    /// Marks `key` as an active object of group `fp`.
    fn activate(&mut self, fp: &str, key: String) {
        let Some(g) = self.groups.get_mut(fp) else {
            return;
        };
        if g.active.insert(key.clone()) {
            self.by_object
                .entry(key)
                .or_default()
                .insert(fp.to_string());
        }
    }

    /// Removes `fp` from the groups of active object `key`.
    fn unlink(&mut self, key: &str, fp: &str) {
        if let Some(fps) = self.by_object.get_mut(key) {
            fps.remove(fp);
            if fps.is_empty() {
                self.by_object.remove(key);
            }
        }
    }

    /// How long a group that is not open is kept after its last occurrence.
    fn keep(&self) -> SignedDuration {
        self.spec
            .window
            .max(self.spec.persist)
            .saturating_add(self.spec.quiet.unwrap_or(SignedDuration::from_mins(10)))
    }

    /// When a group last seen at `last` may be forgotten (if not open).
    fn expiry(&self, last: Timestamp) -> Timestamp {
        last.saturating_add(self.keep()).unwrap_or(last)
    }

    /// When a group first seen at `first` has persisted long enough to open.
    fn persisted_at(&self, first: Timestamp) -> Timestamp {
        first.saturating_add(self.spec.persist).unwrap_or(first)
    }

    /// Adds a group, queueing its expiry.
    fn insert_group(&mut self, fp: String, mut g: Group) {
        g.generation = self.next_generation;
        self.next_generation += 1;
        self.expiries
            .push(Reverse((self.expiry(g.last), g.generation, fp.clone())));
        self.remove_group(&fp);
        for key in &g.active {
            self.by_object
                .entry(key.clone())
                .or_default()
                .insert(fp.clone());
        }
        self.groups.insert(fp, g);
    }

    /// Queues the opening of group `fp` if it is armed, not open, and not already queued for
    /// that instant or earlier.
    fn queue_open(&mut self, fp: &str, book: &Book) {
        let Some(g) = self.groups.get(fp) else {
            return;
        };
        if !g.armed || book.is_open(fp) {
            return;
        }
        let due = self.persisted_at(g.first);
        if g.open_queued.is_some_and(|q| q <= due) {
            return;
        }
        let generation = g.generation;
        if let Some(g) = self.groups.get_mut(fp) {
            g.open_queued = Some(due);
        }
        self.opens_due
            .push(Reverse((due, generation, fp.to_string())));
    }

    fn identity(&self, record: &Record, sig: &Signal, pods: &PodIndex) -> Identity {
        let obj = &record.object;
        let is_pod = obj.kind == ObjectKind::Pod;
        let info = is_pod.then(|| pods.get(&obj.key())).flatten();
        let node = node_of(record)
            .map(str::to_string)
            .or_else(|| info.and_then(|i| i.node.clone()));
        let mut labels = record.labels.clone();
        if labels.is_empty()
            && let Some(i) = info
        {
            labels.clone_from(&i.labels);
        }
        let owner_ref = record
            .owner
            .as_ref()
            .or_else(|| info.and_then(|i| i.owner.as_ref()));
        let workload = if is_pod {
            workload(owner_ref, &labels)
        } else {
            None
        };
        let mut parts = Vec::with_capacity(self.spec.group_by.len() + 1);
        parts.push(self.spec.name.clone());
        let mut subject: Option<(u8, ObjectRef)> = None;
        let mut consider = |rank: u8, r: ObjectRef| {
            if subject.as_ref().is_none_or(|(best, _)| rank > *best) {
                subject = Some((rank, r));
            }
        };
        for key in &self.spec.group_by {
            match key {
                GroupKey::Cluster => {
                    parts.push(record.cluster.clone());
                    consider(0, named("Cluster", None, &record.cluster));
                }
                GroupKey::Namespace => {
                    let ns = obj.namespace.clone().unwrap_or_else(|| "-".to_string());
                    consider(1, named("Namespace", None, &ns));
                    parts.push(ns);
                }
                GroupKey::Node => {
                    let n = node.clone().unwrap_or_else(|| "-".to_string());
                    consider(2, ObjectRef::node(&n));
                    parts.push(n);
                }
                GroupKey::Reason => parts.push(sig.reason.clone()),
                GroupKey::Object => {
                    parts.push(object_part(obj));
                    consider(3, obj.clone());
                }
                GroupKey::Owner => match &workload {
                    Some(w) => {
                        parts.push(object_part(w));
                        consider(4, w.clone());
                    }
                    None => {
                        parts.push(object_part(obj));
                        consider(5, obj.clone());
                    }
                },
                GroupKey::Pod => {
                    parts.push(obj.key());
                    consider(5, obj.clone());
                }
                GroupKey::Container => {
                    parts.push(sig.container.clone().unwrap_or_else(|| "-".to_string()));
                    consider(5, obj.clone());
                }
            }
        }
        let subject = subject.map_or_else(|| obj.clone(), |(_, s)| s);
        Identity {
            fingerprint: parts.join("/"),
            namespace: obj.namespace.clone(),
            node,
            owner: workload.map(|w| format!("{}/{}", w.kind, w.name)),
            subject,
            labels,
        }
    }

    fn severity_for(&self, restarts: Option<u32>) -> Severity {
        let mut s = self.spec.severity;
        if let Some(r) = restarts {
            for (at_least, sev) in &self.spec.escalation {
                if r >= *at_least && *sev > s {
                    s = *sev;
                }
            }
        }
        s
    }

    fn on_match(
        &mut self,
        record: &Record,
        sig: Signal,
        at: Timestamp,
        now: Timestamp,
        book: &mut Book,
    ) {
        let id = self.identity(record, &sig, &book.pods);
        let fp = id.fingerprint.clone();
        let obj = record.object.clone();
        let obj_key = object_part(&obj);
        if book.is_open(&fp) {
            let severity = self.severity_for(sig.restarts);
            let distinct = self.spec.distinct_objects;
            let template = self.spec.summary.clone();
            let name = self.spec.name.clone();
            let mut listed = None;
            if let Some(g) = self.groups.get_mut(&fp) {
                g.last = g.last.max(at);
                g.restarts = g.restarts.max(sig.restarts);
                g.reason.clone_from(&sig.reason);
                listed = Some(g.lists(&obj_key, &obj));
            }
            self.activate(&fp, obj_key.clone());
            let mut pushed = false;
            book.update(&fp, |i| {
                let new_object =
                    !listed.unwrap_or_else(|| i.objects.iter().any(|o| same_object(o, &obj)));
                if new_object && i.objects.len() < MAX_OBJECTS {
                    i.objects.push(obj.clone());
                    pushed = true;
                }
                if !distinct || new_object {
                    i.count += sig.weight;
                }
                push_record(i, record.id);
                touch(i, at);
                let escalated = severity > i.severity;
                if escalated {
                    i.severity = severity;
                }
                let ctx = SummaryCtx {
                    rule: &name,
                    reason: &sig.reason,
                    container: sig.container.as_deref(),
                    restarts: sig.restarts,
                    message: &sig.message,
                    owner: id.owner.as_deref(),
                };
                i.summary = render(&template, i, &ctx);
                escalated || (new_object && i.objects.len() > 1)
            });
            if pushed && let Some(g) = self.groups.get_mut(&fp) {
                g.list(&obj_key, &obj);
            }
            return;
        }
        // Inhibition: a pod-level problem on a NotReady node joins the node's incident.
        if self.spec.inhibit
            && record.object.kind == ObjectKind::Pod
            && book.attach_to_not_ready_node(id.node.as_deref(), &obj, &[record.id], at)
        {
            tracing::debug!(rule = %self.spec.name, fingerprint = %fp, "node is NotReady; attached to its incident");
            return;
        }
        if !self.groups.contains_key(&fp) {
            let g = Group {
                cluster: record.cluster.clone(),
                subject: id.subject.clone(),
                node: id.node.clone(),
                namespace: id.namespace.clone(),
                labels: id.labels.clone(),
                hits: VecDeque::new(),
                first: at,
                last: at,
                count: 0,
                records: Vec::new(),
                objects: Vec::new(),
                active: BTreeSet::new(),
                reason: String::new(),
                message: String::new(),
                container: None,
                restarts: None,
                owner: id.owner.clone(),
                armed: false,
                listed: BTreeMap::new(),
                generation: 0,
                open_queued: None,
            };
            self.insert_group(fp.clone(), g);
        }
        let Some(g) = self.groups.get_mut(&fp) else {
            return;
        };
        let new_object = !g.lists(&obj_key, &obj);
        if new_object && g.objects.len() < MAX_OBJECTS {
            g.objects.push(obj.clone());
            g.list(&obj_key, &obj);
        }
        if !self.spec.distinct_objects || new_object {
            g.count += sig.weight;
        }
        if sig.weight > 0 {
            g.first = g.first.min(at);
            if !g.armed {
                g.hits.push_back((at, sig.weight));
                // Hits more than `window` before the newest can share a window only with late
                // records from before them; below the threshold that keeps the list short.
                let newest = g.hits.iter().map(|h| h.0).max().unwrap_or(at);
                let horizon = newest.saturating_sub(self.spec.window).unwrap_or(newest);
                g.hits.retain(|h| h.0 >= horizon);
                if g.hits.len() > MAX_HITS {
                    g.hits.pop_front();
                }
            }
        }
        g.last = g.last.max(at);
        if record.id != RecordId::UNASSIGNED
            && g.records.len() < crate::book::MAX_RECORDS
            && !g.records.contains(&record.id)
        {
            g.records.push(record.id);
        }
        if g.active.insert(obj_key.clone()) {
            self.by_object
                .entry(obj_key)
                .or_default()
                .insert(fp.clone());
        }
        g.reason.clone_from(&sig.reason);
        if !sig.message.is_empty() {
            g.message.clone_from(&sig.message);
        }
        if sig.container.is_some() {
            g.container.clone_from(&sig.container);
        }
        g.restarts = g.restarts.max(sig.restarts);
        if id.node.is_some() {
            g.node.clone_from(&id.node);
        }
        if !g.armed && window_max(&g.hits, self.spec.window) >= self.spec.threshold {
            g.armed = true;
        }
        self.try_open(&fp, now, book);
        self.queue_open(&fp, book);
    }

    /// Opens the incident of group `fp` if it is armed, not cleared and has persisted long
    /// enough (or attaches it to its node's NotReady incident).
    fn try_open(&mut self, fp: &str, now: Timestamp, book: &mut Book) {
        let severity;
        {
            let Some(g) = self.groups.get(fp) else {
                return;
            };
            let persisted = now >= g.first.saturating_add(self.spec.persist).unwrap_or(g.first);
            if !g.armed || g.active.is_empty() || !persisted || book.is_open(fp) {
                return;
            }
            severity = self.severity_for(g.restarts);
        }
        if !self.spec.absorbed_by.is_empty() {
            // The first absorbing incident by fingerprint, over the absorbing rules.
            let absorbing = |o: &ObjectRef| {
                self.spec
                    .absorbed_by
                    .iter()
                    .filter_map(|rule| {
                        book.incidents_of(rule)
                            .find(|i| mentions(&i.subject, &i.objects, o))
                            .map(|i| i.fingerprint.clone())
                    })
                    .min()
            };
            // Or one that resolved after this group's first occurrence: it told about the
            // object already (a storm that ended before `for` was over).
            let first = self.groups.get(fp).map(|g| g.first);
            let resolved = |o: &ObjectRef| {
                book.recently_resolved()
                    .filter(|r| first.is_some_and(|f| r.at >= f))
                    .filter(|r| self.spec.absorbed_by.contains(&r.rule.as_str()))
                    .find(|r| mentions(&r.subject, &r.objects, o))
                    .map(|r| r.fingerprint.clone())
            };
            let by: Option<Vec<String>> = self.groups.get(fp).and_then(|g| {
                g.objects
                    .iter()
                    .map(|o| absorbing(o).or_else(|| resolved(o)))
                    .collect()
            });
            if let Some(by) = by.filter(|b| !b.is_empty()) {
                tracing::debug!(rule = %self.spec.name, fingerprint = fp, by = ?by, "already told by an open incident of another rule; not opened");
                if let (Some(g), Some(first)) = (self.remove_group(fp), by.first()) {
                    book.update(first, |i| {
                        for id in &g.records {
                            push_record(i, *id);
                        }
                        false
                    });
                }
                return;
            }
        }
        let Some(g) = self.groups.get(fp) else {
            return;
        };
        let mut i = new_incident(
            &self.spec.name,
            fp.to_string(),
            severity,
            &g.cluster,
            g.subject.clone(),
            g.first,
            now,
        );
        i.last_seen = g.last;
        i.count = g.count.max(1);
        i.records = g.records.clone();
        i.objects = g.objects.clone();
        i.node = g.node.clone();
        i.namespace = g.namespace.clone();
        i.labels = g.labels.clone();
        i.labels.insert("reason".to_string(), g.reason.clone());
        if let Some(c) = &g.container {
            i.labels.insert("container".to_string(), c.clone());
        }
        if let Some(o) = &g.owner {
            i.labels.insert("owner".to_string(), o.clone());
        }
        let ctx = SummaryCtx {
            rule: &self.spec.name,
            reason: &g.reason,
            container: g.container.as_deref(),
            restarts: g.restarts,
            message: &g.message,
            owner: g.owner.as_deref(),
        };
        i.summary = render(&self.spec.summary, &i, &ctx);
        book.open(i, now);
    }

    /// A clearing record: its object no longer has the problem.
    fn on_clear(
        &mut self,
        record: &Record,
        sig: &Signal,
        at: Timestamp,
        now: Timestamp,
        book: &mut Book,
    ) {
        let key = object_part(&record.object);
        // The groups this object is active in, in fingerprint order (every group in a
        // reference classifier).
        let candidates: Vec<String> = if book.full_sweep() {
            self.groups.keys().cloned().collect()
        } else {
            self.by_object
                .get(&key)
                .map(|fps| fps.iter().cloned().collect())
                .unwrap_or_default()
        };
        let mut emptied = Vec::new();
        for fp in candidates {
            let Some(g) = self.groups.get_mut(&fp) else {
                continue;
            };
            if !sig.reason.is_empty() && g.reason != sig.reason {
                continue;
            }
            if g.active.remove(&key) {
                if g.active.is_empty() {
                    emptied.push(fp.clone());
                }
                self.unlink(&key, &fp);
            }
        }
        for fp in emptied {
            book.update(&fp, |i| {
                push_record(i, record.id);
                false
            });
            if book.resolve(&fp, at, now) {
                tracing::debug!(rule = %self.spec.name, fingerprint = %fp, "problem cleared; incident resolved");
            }
            self.remove_group(&fp);
        }
    }
}

/// Whether an incident with this subject and these listed objects is about `o`.
fn mentions(subject: &ObjectRef, objects: &[ObjectRef], o: &ObjectRef) -> bool {
    same_object(subject, o) || objects.iter().any(|x| same_object(x, o))
}

/// `Kind/name` for cluster-scoped objects, `namespace/Kind/name` otherwise (`shop/Deployment/cart`).
fn object_part(o: &ObjectRef) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}/{}", o.kind, o.name),
        None => format!("{}/{}", o.kind, o.name),
    }
}

fn named(kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::Other(kind.to_string()),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
        uid: None,
    }
}

/// The largest total weight of hits whose times lie within one span of `window`.
fn window_max(hits: &VecDeque<(Timestamp, u64)>, window: SignedDuration) -> u64 {
    let mut sorted: Vec<(Timestamp, u64)> = hits.iter().copied().collect();
    sorted.sort_by_key(|h| h.0);
    let mut best = 0;
    let mut sum = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        sum += sorted[hi].1;
        while sorted[hi].0.duration_since(sorted[lo].0) > window {
            sum -= sorted[lo].1;
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

/// Values for a summary template besides the incident's own fields.
struct SummaryCtx<'a> {
    rule: &'a str,
    reason: &'a str,
    container: Option<&'a str>,
    restarts: Option<u32>,
    message: &'a str,
    owner: Option<&'a str>,
}

/// Fills a summary template: `{name}` placeholders of [`PLACEHOLDERS`]; unknown ones stay as
/// written (templates are checked when loaded).
fn render(template: &str, i: &Incident, ctx: &SummaryCtx<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let pod = || {
            i.objects
                .iter()
                .rev()
                .find(|o| o.kind == ObjectKind::Pod)
                .map(ObjectRef::key)
        };
        let value = match name {
            "rule" => ctx.rule.to_string(),
            "reason" => ctx.reason.to_string(),
            "subject" => match &i.subject.namespace {
                Some(_) => format!("{} {}", i.subject.kind, i.subject.key()),
                None => format!("{} {}", i.subject.kind, i.subject.name),
            },
            "namespace" => i.namespace.clone().unwrap_or_default(),
            "node" => i.node.clone().unwrap_or_default(),
            "pod" => pod().unwrap_or_default(),
            "container" => ctx.container.unwrap_or_default().to_string(),
            "owner" => ctx.owner.unwrap_or_default().to_string(),
            "object" => i.objects.last().map(ObjectRef::key).unwrap_or_default(),
            "count" => i.count.to_string(),
            "pods" => i
                .objects
                .iter()
                .filter(|o| o.kind == ObjectKind::Pod)
                .count()
                .to_string(),
            "message" => first_sentence(ctx.message).to_string(),
            "restarts" => ctx.restarts.map(|r| r.to_string()).unwrap_or_default(),
            _ => {
                out.push('{');
                out.push_str(name);
                out.push('}');
                rest = &after[end + 1..];
                continue;
            }
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

impl Rule for SignalRule {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn on_record(&mut self, record: &Record, at: Timestamp, now: Timestamp, book: &mut Book) {
        if let Some(clear) = &self.spec.clear
            && let Some(sig) = clear.signal(record, &book.pods)
        {
            self.on_clear(record, &sig, at, now, book);
            return;
        }
        let Some(sig) = self.spec.matcher.signal(record, &book.pods) else {
            return;
        };
        if self.spec.skip_deleting
            && record.object.kind == ObjectKind::Pod
            && book
                .pods
                .get(&record.object.key())
                .is_some_and(|p| p.deleting)
        {
            tracing::debug!(rule = %self.spec.name, pod = %record.object.key(), "pod is being deleted; ignored");
            return;
        }
        self.on_match(record, sig, at, now, book);
    }

    fn on_time(&mut self, now: Timestamp, book: &mut Book) {
        let full = book.full_sweep();
        // Armed groups that may have persisted long enough, in fingerprint order.
        let pending: Vec<String> = if full {
            self.opens_due.clear();
            self.groups
                .iter()
                .filter(|(fp, g)| g.armed && !book.is_open(fp))
                .map(|(fp, _)| fp.clone())
                .collect()
        } else {
            let mut due = Vec::new();
            while let Some(Reverse((t, _, _))) = self.opens_due.peek()
                && *t <= now
            {
                let Some(Reverse((_, generation, fp))) = self.opens_due.pop() else {
                    break;
                };
                if let Some(g) = self.groups.get_mut(&fp)
                    && g.generation == generation
                {
                    g.open_queued = None;
                    if g.armed && !book.is_open(&fp) {
                        due.push(fp);
                    }
                }
            }
            due.sort();
            due.dedup();
            due
        };
        for fp in pending {
            self.try_open(&fp, now, book);
            if !full {
                // Still waiting (it has not persisted after all): queue it again.
                self.queue_open(&fp, book);
            }
        }
        if let Some(quiet) = self.spec.quiet {
            for fp in book.quiet_over(&mut self.slot, &self.spec.name, quiet, now) {
                book.resolve(&fp, now, now);
                self.remove_group(&fp);
            }
        }
        if full {
            self.expiries.clear();
            let keep = self.keep();
            let expired: Vec<String> = self
                .groups
                .iter()
                .filter(|(fp, g)| {
                    !(book.is_open(fp) || now < g.last.saturating_add(keep).unwrap_or(g.last))
                })
                .map(|(fp, _)| fp.clone())
                .collect();
            for fp in expired {
                self.remove_group(&fp);
            }
            return;
        }
        // Groups not open whose last occurrence is `keep` ago are forgotten; an open group is
        // forgotten when its incident resolves (above, or by a clearing record).
        while let Some(Reverse((t, _, _))) = self.expiries.peek()
            && *t <= now
        {
            let Some(Reverse((_, generation, fp))) = self.expiries.pop() else {
                break;
            };
            let Some(g) = self.groups.get(&fp).filter(|g| g.generation == generation) else {
                continue;
            };
            if book.is_open(&fp) {
                continue;
            }
            let until = self.expiry(g.last);
            if now >= until {
                self.remove_group(&fp);
            } else {
                self.expiries.push(Reverse((until, generation, fp)));
            }
        }
    }

    fn restore(&mut self, incident: &Incident) {
        let active = incident.objects.iter().map(object_part).collect();
        self.insert_group(
            incident.fingerprint.clone(),
            Group {
                cluster: incident.cluster.clone(),
                subject: incident.subject.clone(),
                node: incident.node.clone(),
                namespace: incident.namespace.clone(),
                labels: incident.labels.clone(),
                hits: VecDeque::new(),
                first: incident.first_seen,
                last: incident.last_seen,
                count: incident.count,
                records: incident.records.clone(),
                objects: incident.objects.clone(),
                active,
                reason: incident.labels.get("reason").cloned().unwrap_or_default(),
                message: String::new(),
                container: incident.labels.get("container").cloned(),
                restarts: None,
                owner: incident.labels.get("owner").cloned(),
                armed: true,
                listed: listed(&incident.objects),
                generation: 0,
                open_queued: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("ts")
    }

    #[test]
    fn window_max_is_order_independent_and_inclusive() {
        let w = SignedDuration::from_secs(60);
        let a: VecDeque<_> = [(t(0), 1), (t(60), 1), (t(61), 1), (t(200), 1)].into();
        let b: VecDeque<_> = [(t(200), 1), (t(61), 1), (t(0), 1), (t(60), 1)].into();
        assert_eq!(window_max(&a, w), 2);
        assert_eq!(window_max(&b, w), 2);
        let c: VecDeque<_> = [(t(0), 3), (t(60), 2)].into();
        assert_eq!(window_max(&c, w), 5);
    }

    #[test]
    fn summary_placeholders() {
        let mut i = new_incident(
            "X",
            "X/a".into(),
            Severity::Warning,
            "prod",
            ObjectRef::pod("shop", "cart-1"),
            t(0),
            t(0),
        );
        i.count = 3;
        i.objects.push(ObjectRef::pod("shop", "cart-1"));
        i.namespace = Some("shop".into());
        let ctx = SummaryCtx {
            rule: "X",
            reason: "BackOff",
            container: Some("cart"),
            restarts: Some(4),
            message: "Back-off restarting failed container. More.",
            owner: None,
        };
        assert_eq!(
            render(
                "{count}x {reason} in {pod}/{container} ({restarts}) {message} {nope}",
                &i,
                &ctx
            ),
            "3x BackOff in shop/cart-1/cart (4) Back-off restarting failed container. {nope}"
        );
    }
}
