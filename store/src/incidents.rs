//! Incidents: upserting them from lifecycle changes (with the change log and the time, object and
//! open indexes, atomically) and the incident queries.

use std::collections::BTreeSet;

use herald_core::{Incident, IncidentChange, IncidentId, IncidentState, ObjectKind, Timestamp};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::keys;
use crate::{Store, StoreError, TimeQuery, abort, tree, tx_error};

impl Store {
    /// Stores a lifecycle change: upserts `change.incident` by id (last write wins), appends
    /// `change` to the incident's change log, and updates the incident's indexes (by first seen,
    /// by every object in `subject` and `objects`, and the open set) in one transaction.
    /// Index entries of the previous version that no longer apply are removed.
    pub fn put_incident_change(&self, change: &IncidentChange) -> Result<(), StoreError> {
        let i = &self.inner;
        let incident = &change.incident;
        let id = incident.id.0.as_str();
        let value = sled::IVec::from(encode(tree::INCIDENTS, incident)?);
        let change_value = sled::IVec::from(encode(tree::INCIDENT_CHANGES, change)?);
        let change_key = keys::log_key(id, change.at, i.db.generate_id()?);
        let time_key = keys::time_name_key(incident.first_seen, id);
        let object_keys = incident_object_keys(incident);
        let open = incident.state == IncidentState::Open;
        (
            &i.incidents,
            &i.incidents_by_time,
            &i.incidents_by_object,
            &i.incidents_open,
            &i.incident_changes,
        )
            .transaction(|(incidents, by_time, by_object, open_set, changes)| {
                if let Some(old) = incidents.get(id)? {
                    let old: Incident = decode(tree::INCIDENTS, &old).map_err(abort)?;
                    let old_time_key = keys::time_name_key(old.first_seen, id);
                    if old_time_key != time_key {
                        by_time.remove(old_time_key)?;
                    }
                    for k in incident_object_keys(&old).difference(&object_keys) {
                        by_object.remove(k.as_slice())?;
                    }
                }
                incidents.insert(id, value.clone())?;
                by_time.insert(time_key.as_slice(), &[][..])?;
                for k in &object_keys {
                    by_object.insert(k.as_slice(), &[][..])?;
                }
                if open {
                    open_set.insert(id, &[][..])?;
                } else {
                    open_set.remove(id)?;
                }
                changes.insert(change_key.as_slice(), change_value.clone())?;
                Ok(())
            })
            .map_err(tx_error)?;
        tracing::debug!(
            incident_id = id,
            transition = %change.transition,
            objects = object_keys.len(),
            "incident change stored"
        );
        Ok(())
    }

    /// The latest state of incident `id`.
    pub fn incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        self.inner
            .incidents
            .get(id.0.as_bytes())?
            .map(|v| decode(tree::INCIDENTS, &v))
            .transpose()
    }

    /// Incidents active at some point of `q`: `first_seen <= until` and not resolved before
    /// `since` (open, or `resolved_at >= since`; a resolved incident without `resolved_at`
    /// counts as ending at `last_seen`). Chronological by `first_seen` (then id); with a limit,
    /// the first `limit` of them.
    ///
    /// Walks the first-seen index up to `until`, so its cost grows with the incidents kept
    /// (bounded by retention), not with the records.
    pub fn incidents(&self, q: &TimeQuery) -> Result<Vec<Incident>, StoreError> {
        let mut out = Vec::new();
        if !q.wants_more(0) {
            return Ok(out);
        }
        let range = keys::time_range(&[], None, q.until);
        for entry in self.inner.incidents_by_time.range(range) {
            let (k, _) = entry?;
            let (_, id) = keys::decode_time_name_key(&k).ok_or(StoreError::CorruptKey {
                tree: tree::INCIDENTS_BY_TIME,
            })?;
            let Some(incident) = self.incident(&IncidentId(id))? else {
                continue;
            };
            let active = match (q.since, ended_at(&incident)) {
                (Some(since), Some(end)) => end >= since,
                _ => true,
            };
            if active {
                out.push(incident);
                if !q.wants_more(out.len()) {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every open incident, oldest first: what the classifier restores after a restart.
    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.incidents_open.iter() {
            let (k, _) = entry?;
            let id = String::from_utf8(k.to_vec()).map_err(|_| StoreError::CorruptKey {
                tree: tree::INCIDENTS_OPEN,
            })?;
            if let Some(incident) = self.incident(&IncidentId(id))? {
                out.push(incident);
            }
        }
        out.sort_by(|a, b| {
            a.first_seen
                .cmp(&b.first_seen)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Incidents whose subject or affected objects include `kind` + `key`
    /// (`ObjectRef::key()`), chronological by `first_seen`.
    pub fn incidents_for_object(
        &self,
        kind: &ObjectKind,
        key: &str,
    ) -> Result<Vec<Incident>, StoreError> {
        let prefix = keys::object_prefix(kind.as_str(), key);
        let mut out = Vec::new();
        for entry in self.inner.incidents_by_object.scan_prefix(&prefix) {
            let (k, _) = entry?;
            let id =
                keys::object_name_key_name(prefix.len(), &k).ok_or(StoreError::CorruptKey {
                    tree: tree::INCIDENTS_BY_OBJECT,
                })?;
            if let Some(incident) = self.incident(&IncidentId(id))? {
                out.push(incident);
            }
        }
        Ok(out)
    }

    /// The change log of incident `id`, in order of `at` (then of storing).
    pub fn incident_changes(&self, id: &IncidentId) -> Result<Vec<IncidentChange>, StoreError> {
        self.inner
            .incident_changes
            .scan_prefix(keys::str_prefix(&id.0))
            .map(|entry| decode(tree::INCIDENT_CHANGES, &entry?.1))
            .collect()
    }
}

/// When an incident stopped being active: `None` while open.
pub(crate) fn ended_at(incident: &Incident) -> Option<Timestamp> {
    match incident.state {
        IncidentState::Open => None,
        IncidentState::Resolved => Some(incident.resolved_at.unwrap_or(incident.last_seen)),
    }
}

/// The `incidents_by_object` keys of `incident`: one per distinct (kind, key) among its subject
/// and affected objects.
pub(crate) fn incident_object_keys(incident: &Incident) -> BTreeSet<Vec<u8>> {
    std::iter::once(&incident.subject)
        .chain(&incident.objects)
        .map(|o| {
            keys::object_name_key(
                o.kind.as_str(),
                &o.key(),
                incident.first_seen,
                &incident.id.0,
            )
        })
        .collect()
}
