//! The incident book: every open incident by fingerprint, and the lifecycle transitions
//! (`opened`, `updated`, `resolved`) produced while handling one call. It owns the debounce of
//! `updated`: rules only say that an incident changed materially; the book announces it at most
//! once per `update_interval`.
//!
//! The book is indexed so that no call costs time proportional to all open incidents: per rule
//! the open incidents by fingerprint and by `last_seen` (a quiet-period sweep reads only the
//! incidents whose quiet period is over), and a queue of the materially changed incidents by
//! the instant their `updated` is due. [`Book::reference`] builds a book whose rules sweep
//! everything on every call instead, the plain algorithm the tests compare the indexed one with.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use herald_core::{
    Incident, IncidentChange, IncidentState, ObjectRef, RecordId, Timestamp, Transition,
};
use jiff::SignedDuration;

use crate::pods::PodIndex;

/// The most record ids an incident keeps; later supporting records only raise the count.
pub(crate) const MAX_RECORDS: usize = 500;
/// The most affected objects an incident lists; later ones only raise the count.
pub(crate) const MAX_OBJECTS: usize = 500;

/// One open incident and its announcement state.
#[derive(Debug, Clone)]
struct Tracked {
    incident: Incident,
    /// When it was last announced (`opened` or `updated`).
    announced_at: Timestamp,
    /// Whether it changed materially since it was last announced.
    dirty: bool,
    /// Its rule's index in [`Book::rules`].
    slot: usize,
}

/// The open incidents of one rule.
#[derive(Debug, Clone, Default)]
struct RuleIndex {
    /// Fingerprints, in order.
    fingerprints: BTreeSet<String>,
    /// `(last_seen, fingerprint)`, oldest first: the order in which quiet periods end.
    by_last_seen: BTreeSet<(Timestamp, String)>,
    /// `(quiet, instant)`: no quiet period of `quiet` ends before the instant (the first
    /// entry's end; `Timestamp::MAX` when there is none). Cleared when `by_last_seen` changes.
    quiet_end: Option<(SignedDuration, Timestamp)>,
}

impl RuleIndex {
    /// Moves `fingerprint` from `old` to `new` in `by_last_seen` (`None`: not there / remove).
    fn reseat(&mut self, fingerprint: &str, old: Option<Timestamp>, new: Option<Timestamp>) {
        self.quiet_end = None;
        if let Some(t) = old {
            self.by_last_seen.remove(&(t, fingerprint.to_string()));
        }
        if let Some(t) = new {
            self.by_last_seen.insert((t, fingerprint.to_string()));
        }
    }
}

/// Open incidents and pending transitions.
#[derive(Debug, Clone)]
pub(crate) struct Book {
    open: BTreeMap<String, Tracked>,
    /// Rule names to their index in `rules`; a rule keeps its index for the book's life.
    slots: BTreeMap<String, usize>,
    /// The open incidents of each rule.
    rules: Vec<RuleIndex>,
    /// `(due, fingerprint)` of incidents that changed materially: their `updated` is due at
    /// `announced_at + update_interval`. Entries of incidents announced or resolved since are
    /// skipped when they come up (lazy invalidation).
    updates_due: BinaryHeap<Reverse<(Timestamp, String)>>,
    changes: Vec<IncidentChange>,
    update_interval: SignedDuration,
    /// Rules sweep all their state on every call instead of only what is due (the reference
    /// algorithm, for tests).
    full_sweep: bool,
    /// What pod records told about live pods (node, owner, labels), for every rule.
    pub(crate) pods: PodIndex,
    /// Incidents resolved within the last [`RECENTLY_RESOLVED`], oldest first, so that an
    /// occurrence another rule holds back (an eviction waiting for `Evicted`'s `for`) is still
    /// absorbed by the incident that already told about it (its storm), even when that
    /// incident resolved meanwhile.
    recent: std::collections::VecDeque<Resolved>,
}

/// How long [`Book::recently_resolved`] remembers a resolved incident.
pub(crate) const RECENTLY_RESOLVED: SignedDuration = SignedDuration::from_mins(30);

/// A recently resolved incident: what it was about.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// When it resolved (record time).
    pub(crate) at: Timestamp,
    /// Its rule.
    pub(crate) rule: String,
    /// Its fingerprint.
    pub(crate) fingerprint: String,
    /// Its subject.
    pub(crate) subject: herald_core::ObjectRef,
    /// The objects it listed.
    pub(crate) objects: Vec<herald_core::ObjectRef>,
}

impl Book {
    /// An empty book that announces updates at most once per `update_interval`.
    pub(crate) fn new(update_interval: SignedDuration) -> Self {
        Self {
            open: BTreeMap::new(),
            slots: BTreeMap::new(),
            rules: Vec::new(),
            updates_due: BinaryHeap::new(),
            changes: Vec::new(),
            update_interval,
            full_sweep: false,
            pods: PodIndex::default(),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// An empty book whose timers are swept in full on every call: every open incident is
    /// checked for its quiet period and its debounced update, and rules check all their state.
    /// Slow (rules x open incidents per call) and meant as the reference the indexed timers
    /// are tested against.
    pub(crate) fn reference(update_interval: SignedDuration) -> Self {
        Self {
            full_sweep: true,
            ..Self::new(update_interval)
        }
    }

    /// Whether rules should sweep all their state on every call (see [`Book::reference`]).
    pub(crate) fn full_sweep(&self) -> bool {
        self.full_sweep
    }

    /// The index of `rule` in `rules`, added when new.
    fn slot(&mut self, rule: &str) -> usize {
        if let Some(&slot) = self.slots.get(rule) {
            return slot;
        }
        let slot = self.rules.len();
        self.rules.push(RuleIndex::default());
        self.slots.insert(rule.to_string(), slot);
        slot
    }

    /// Adds an open incident to its rule's index; returns the rule's slot.
    fn index(&mut self, incident: &Incident) -> usize {
        let slot = self.slot(&incident.rule);
        let idx = &mut self.rules[slot];
        idx.fingerprints.insert(incident.fingerprint.clone());
        idx.reseat(&incident.fingerprint, None, Some(incident.last_seen));
        slot
    }

    /// Removes an incident from its rule's index.
    fn unindex(&mut self, t: &Tracked) {
        if let Some(idx) = self.rules.get_mut(t.slot) {
            idx.fingerprints.remove(&t.incident.fingerprint);
            idx.reseat(&t.incident.fingerprint, Some(t.incident.last_seen), None);
        }
    }

    /// The open incident with this fingerprint.
    pub(crate) fn get(&self, fingerprint: &str) -> Option<&Incident> {
        self.open.get(fingerprint).map(|t| &t.incident)
    }

    /// Whether an incident with this fingerprint is open.
    pub(crate) fn is_open(&self, fingerprint: &str) -> bool {
        self.open.contains_key(fingerprint)
    }

    /// How many incidents are open.
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Every open incident, by fingerprint.
    pub(crate) fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.values().map(|t| &t.incident)
    }

    /// Incidents resolved within the last [`RECENTLY_RESOLVED`] (of record time), oldest first.
    pub(crate) fn recently_resolved(&self) -> impl Iterator<Item = &Resolved> {
        self.recent.iter()
    }

    /// The open incidents of `rule`, by fingerprint.
    pub(crate) fn incidents_of<'a>(&'a self, rule: &str) -> impl Iterator<Item = &'a Incident> {
        self.slots
            .get(rule)
            .and_then(|&slot| self.rules.get(slot))
            .into_iter()
            .flat_map(|idx| idx.fingerprints.iter())
            .filter_map(|fp| self.get(fp))
    }

    /// Fingerprints of the open incidents of `rule` whose quiet period of `quiet` after their
    /// `last_seen` is over at `now`, in fingerprint order. Reads only those incidents (plus
    /// one), or every open incident in a [reference](Book::reference) book. `slot` is the
    /// caller's cache of the rule's place in the book (`None` at first), so that the usual
    /// call, with nothing due, costs no lookup by name.
    pub(crate) fn quiet_over(
        &mut self,
        slot: &mut Option<usize>,
        rule: &str,
        quiet: SignedDuration,
        now: Timestamp,
    ) -> Vec<String> {
        let over =
            |last_seen: Timestamp| now >= last_seen.saturating_add(quiet).unwrap_or(last_seen);
        if self.full_sweep {
            return self
                .open
                .values()
                .filter(|t| t.incident.rule == rule && over(t.incident.last_seen))
                .map(|t| t.incident.fingerprint.clone())
                .collect();
        }
        let index = match *slot {
            Some(i) => i,
            None => {
                let i = self.slot(rule);
                *slot = Some(i);
                i
            }
        };
        let Some(idx) = self.rules.get_mut(index) else {
            return Vec::new();
        };
        if let Some((q, end)) = idx.quiet_end
            && q == quiet
            && now < end
        {
            return Vec::new();
        }
        let mut due: Vec<String> = idx
            .by_last_seen
            .iter()
            .take_while(|(last_seen, _)| over(*last_seen))
            .map(|(_, fp)| fp.clone())
            .collect();
        if due.is_empty() {
            let end = idx
                .by_last_seen
                .first()
                .map_or(Timestamp::MAX, |(last_seen, _)| {
                    last_seen.saturating_add(quiet).unwrap_or(*last_seen)
                });
            idx.quiet_end = Some((quiet, end));
        }
        due.sort();
        due
    }

    /// Adds an incident restored from the store without announcing it. Returns the incident it
    /// displaced, if one with the same fingerprint was already there.
    pub(crate) fn insert_restored(&mut self, incident: Incident) -> Option<Incident> {
        let displaced = self.open.remove(&incident.fingerprint);
        if let Some(d) = &displaced {
            self.unindex(d);
        }
        let slot = self.index(&incident);
        let tracked = Tracked {
            announced_at: incident.last_seen,
            incident,
            dirty: false,
            slot,
        };
        self.open
            .insert(tracked.incident.fingerprint.clone(), tracked);
        displaced.map(|t| t.incident)
    }

    /// Opens `incident` (announced as `opened` at `now`). An incident already open under the
    /// same fingerprint is left alone: rules check [`Book::is_open`] first.
    pub(crate) fn open(&mut self, mut incident: Incident, now: Timestamp) {
        if self.open.contains_key(&incident.fingerprint) {
            tracing::warn!(fingerprint = %incident.fingerprint, "incident already open; not opening twice");
            return;
        }
        incident.state = IncidentState::Open;
        incident.resolved_at = None;
        tracing::info!(
            rule = %incident.rule,
            fingerprint = %incident.fingerprint,
            id = %incident.id,
            severity = %incident.severity,
            count = incident.count,
            "incident opened"
        );
        self.changes.push(IncidentChange {
            transition: Transition::Opened,
            at: now,
            incident: incident.clone(),
        });
        let slot = self.index(&incident);
        self.open.insert(
            incident.fingerprint.clone(),
            Tracked {
                incident,
                announced_at: now,
                dirty: false,
                slot,
            },
        );
    }

    /// Changes the open incident `fingerprint` with `f`, which returns whether the change is
    /// material (worth an `updated`). Returns false when no such incident is open.
    pub(crate) fn update(
        &mut self,
        fingerprint: &str,
        f: impl FnOnce(&mut Incident) -> bool,
    ) -> bool {
        let Some(t) = self.open.get_mut(fingerprint) else {
            return false;
        };
        let last_seen = t.incident.last_seen;
        if f(&mut t.incident) && !t.dirty {
            t.dirty = true;
            let due = t
                .announced_at
                .saturating_add(self.update_interval)
                .unwrap_or(t.announced_at);
            self.updates_due
                .push(Reverse((due, fingerprint.to_string())));
        }
        if t.incident.last_seen != last_seen {
            let seen = t.incident.last_seen;
            if let Some(idx) = self.rules.get_mut(t.slot) {
                idx.reseat(fingerprint, Some(last_seen), Some(seen));
            }
        }
        true
    }

    /// Resolves the open incident `fingerprint`: it ended at `ended` (stored as `resolved_at`)
    /// and the transition is announced at `now`. Pending material changes are folded into the
    /// `resolved` announcement. Returns false when no such incident is open.
    pub(crate) fn resolve(&mut self, fingerprint: &str, ended: Timestamp, now: Timestamp) -> bool {
        let Some(t) = self.open.remove(fingerprint) else {
            return false;
        };
        self.unindex(&t);
        let mut incident = t.incident;
        incident.state = IncidentState::Resolved;
        incident.resolved_at = Some(ended.max(incident.first_seen));
        let horizon = now.saturating_sub(RECENTLY_RESOLVED).unwrap_or(now);
        while self.recent.front().is_some_and(|r| r.at < horizon) {
            self.recent.pop_front();
        }
        self.recent.push_back(Resolved {
            at: ended.max(incident.first_seen),
            rule: incident.rule.clone(),
            fingerprint: incident.fingerprint.clone(),
            subject: incident.subject.clone(),
            objects: incident.objects.clone(),
        });
        tracing::info!(
            rule = %incident.rule,
            fingerprint = %incident.fingerprint,
            id = %incident.id,
            count = incident.count,
            "incident resolved"
        );
        self.changes.push(IncidentChange {
            transition: Transition::Resolved,
            at: now,
            incident,
        });
        true
    }

    /// Announces `updated` for every materially changed incident last announced at least
    /// `update_interval` ago.
    /// Reads only the incidents whose update is due, or every open incident in a
    /// [reference](Book::reference) book; either way they are announced in fingerprint order.
    pub(crate) fn flush_updates(&mut self, now: Timestamp) {
        let mut due: Vec<String> = Vec::new();
        if self.full_sweep {
            self.updates_due.clear();
            due.extend(self.open.keys().cloned());
        } else {
            while let Some(Reverse((at, _))) = self.updates_due.peek()
                && *at <= now
            {
                if let Some(Reverse((_, fp))) = self.updates_due.pop() {
                    due.push(fp);
                }
            }
            due.sort();
            due.dedup();
        }
        for fp in due {
            let Some(t) = self.open.get_mut(&fp) else {
                continue;
            };
            let due = t
                .announced_at
                .saturating_add(self.update_interval)
                .unwrap_or(t.announced_at);
            if t.dirty && now >= due {
                t.dirty = false;
                t.announced_at = now;
                tracing::debug!(
                    rule = %t.incident.rule,
                    fingerprint = %t.incident.fingerprint,
                    count = t.incident.count,
                    objects = t.incident.objects.len(),
                    "incident updated"
                );
                self.changes.push(IncidentChange {
                    transition: Transition::Updated,
                    at: now,
                    incident: t.incident.clone(),
                });
            }
        }
    }

    /// Inhibition: while `node` has an open NodeNotReady incident, a pod-level problem on it
    /// is attached to that incident (the pod joins its `objects`, the record its `records`;
    /// material when the pod is new) instead of alerting on its own. Returns whether it was.
    pub(crate) fn attach_to_not_ready_node(
        &mut self,
        node: Option<&str>,
        pod: &ObjectRef,
        records: &[RecordId],
        at: Timestamp,
    ) -> bool {
        let Some(node) = node else {
            return false;
        };
        let fp = format!("{}/{node}", crate::rules::node_not_ready::RULE);
        self.update(&fp, |i| {
            for id in records {
                push_record(i, *id);
            }
            touch(i, at);
            let new =
                i.objects.len() < MAX_OBJECTS && !i.objects.iter().any(|o| same_object(o, pod));
            if new {
                i.objects.push(pod.clone());
                i.count += 1;
            }
            new
        })
    }

    /// Queues a transition produced outside the book (an orphaned incident resolved).
    pub(crate) fn push_change(&mut self, change: IncidentChange) {
        self.changes.push(change);
    }

    /// The transitions produced since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<IncidentChange> {
        std::mem::take(&mut self.changes)
    }
}

/// Adds `id` to `incident.records` unless it is unassigned, already there, or the list is full.
pub(crate) fn push_record(incident: &mut Incident, id: RecordId) {
    if id != RecordId::UNASSIGNED
        && incident.records.len() < MAX_RECORDS
        && !incident.records.contains(&id)
    {
        incident.records.push(id);
    }
}

/// Moves `incident.last_seen` forward to `at` (never backwards).
pub(crate) fn touch(incident: &mut Incident, at: Timestamp) {
    if at > incident.last_seen {
        incident.last_seen = at;
    }
}

/// Whether two references name the same object (the uid only compared when both know it).
pub(crate) fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.kind == b.kind
        && a.namespace == b.namespace
        && a.name == b.name
        && match (&a.uid, &b.uid) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}
