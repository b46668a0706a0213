//! The incident book: every open incident by fingerprint, and the lifecycle transitions
//! (`opened`, `updated`, `resolved`) produced while handling one call. It owns the debounce of
//! `updated`: rules only say that an incident changed materially; the book announces it at most
//! once per `update_interval`.

use std::collections::BTreeMap;

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
}

/// Open incidents and pending transitions.
#[derive(Debug, Clone)]
pub(crate) struct Book {
    open: BTreeMap<String, Tracked>,
    changes: Vec<IncidentChange>,
    update_interval: SignedDuration,
    /// What pod records told about live pods (node, owner, labels), for every rule.
    pub(crate) pods: PodIndex,
}

impl Book {
    /// An empty book that announces updates at most once per `update_interval`.
    pub(crate) fn new(update_interval: SignedDuration) -> Self {
        Self {
            open: BTreeMap::new(),
            changes: Vec::new(),
            update_interval,
            pods: PodIndex::default(),
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

    /// Every open incident, by fingerprint.
    pub(crate) fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.open.values().map(|t| &t.incident)
    }

    /// Fingerprints of the open incidents of `rule`.
    pub(crate) fn fingerprints_of(&self, rule: &str) -> Vec<String> {
        self.open
            .values()
            .filter(|t| t.incident.rule == rule)
            .map(|t| t.incident.fingerprint.clone())
            .collect()
    }

    /// Adds an incident restored from the store without announcing it. Returns the incident it
    /// displaced, if one with the same fingerprint was already there.
    pub(crate) fn insert_restored(&mut self, incident: Incident) -> Option<Incident> {
        let announced_at = incident.last_seen;
        let tracked = Tracked {
            incident,
            announced_at,
            dirty: false,
        };
        self.open
            .insert(tracked.incident.fingerprint.clone(), tracked)
            .map(|t| t.incident)
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
        self.open.insert(
            incident.fingerprint.clone(),
            Tracked {
                incident,
                announced_at: now,
                dirty: false,
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
        match self.open.get_mut(fingerprint) {
            Some(t) => {
                if f(&mut t.incident) {
                    t.dirty = true;
                }
                true
            }
            None => false,
        }
    }

    /// Resolves the open incident `fingerprint`: it ended at `ended` (stored as `resolved_at`)
    /// and the transition is announced at `now`. Pending material changes are folded into the
    /// `resolved` announcement. Returns false when no such incident is open.
    pub(crate) fn resolve(&mut self, fingerprint: &str, ended: Timestamp, now: Timestamp) -> bool {
        let Some(t) = self.open.remove(fingerprint) else {
            return false;
        };
        let mut incident = t.incident;
        incident.state = IncidentState::Resolved;
        incident.resolved_at = Some(ended.max(incident.first_seen));
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
    pub(crate) fn flush_updates(&mut self, now: Timestamp) {
        for t in self.open.values_mut() {
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
