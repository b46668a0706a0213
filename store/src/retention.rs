//! Retention: [`Store::prune`] deletes records and resolved incidents (with everything hanging
//! off them) older than a cutoff.

use std::ops::Bound;

use herald_core::{Incident, IncidentId, Timestamp};
use sled::Transactional;

use crate::codec::decode;
use crate::incidents::{ended_at, incident_object_keys};
use crate::keys;
use crate::{Store, StoreError, abort, tree, tx_error};

/// What [`Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Records (each with its index entries).
    pub records: u64,
    /// Resolved incidents (each with its index entries).
    pub incidents: u64,
    /// Incident changes of those incidents.
    pub incident_changes: u64,
    /// Notifications about those incidents.
    pub notifications: u64,
    /// Delivery attempts of those notifications.
    pub delivery_attempts: u64,
}

impl Store {
    /// Deletes what is older than `older_than`:
    ///
    /// - records observed before it, with their index entries;
    /// - resolved incidents that ended (`resolved_at`, else `last_seen`) before it, with their
    ///   index entries, change log, notifications and delivery attempts. Open incidents are
    ///   kept however old, and so are their notifications.
    ///
    /// Works in steps (one block of records, or one incident with its dependants, per
    /// atomic write), so it can run while the service writes and an interruption leaves no
    /// dangling index entry; running it again finishes the job.
    pub fn prune(&self, older_than: Timestamp) -> Result<PruneStats, StoreError> {
        let mut stats = PruneStats::default();
        let cutoff = keys::ts(older_than).to_vec();

        stats.records = self.prune_records(older_than)?;

        // Any incident that ended before the cutoff was first seen before it.
        let candidates = self
            .inner
            .incidents_by_time
            .range::<Vec<u8>, _>((Bound::Unbounded, Bound::Excluded(cutoff)))
            .keys()
            .map(|k| {
                let k = k?;
                keys::decode_time_name_key(&k)
                    .map(|(_, id)| IncidentId(id))
                    .ok_or(StoreError::CorruptKey {
                        tree: tree::INCIDENTS_BY_TIME,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for id in candidates {
            if let Some(incident) = self.incident(&id)?
                && prunable(&incident, older_than)
            {
                self.remove_incident(&incident, older_than, &mut stats)?;
            }
        }

        tracing::info!(
            cutoff = %older_than,
            records = stats.records,
            incidents = stats.incidents,
            incident_changes = stats.incident_changes,
            notifications = stats.notifications,
            delivery_attempts = stats.delivery_attempts,
            "store pruned"
        );
        Ok(stats)
    }

    /// Deletes one incident with its indexes, change log, notifications and their attempts,
    /// in one transaction that first re-checks the incident is still prunable.
    fn remove_incident(
        &self,
        incident: &Incident,
        older_than: Timestamp,
        stats: &mut PruneStats,
    ) -> Result<(), StoreError> {
        let i = &self.inner;
        let id = incident.id.0.as_str();
        let change_keys = prefix_keys(&i.incident_changes, &keys::str_prefix(id))?;
        let notification_index = prefix_keys(&i.notifications_by_incident, &keys::str_prefix(id))?;
        let notification_ids = self.notification_ids_for_incident(&incident.id)?;
        let mut delivery_keys = Vec::new();
        for nid in &notification_ids {
            delivery_keys.extend(prefix_keys(&i.deliveries, &keys::str_prefix(nid))?);
        }
        let removed = (
            &i.incidents,
            &i.incidents_by_time,
            &i.incidents_by_object,
            &i.incidents_open,
            &i.incident_changes,
            &i.notifications,
            &i.notifications_pending,
            &i.notifications_by_incident,
            &i.deliveries,
            &i.notifications_dead,
            &i.notification_fates,
        )
            .transaction(
                |(
                    incidents,
                    by_time,
                    by_object,
                    open,
                    changes,
                    notes,
                    pending,
                    by_inc,
                    deliveries,
                    dead,
                    fates,
                )| {
                    // Re-read inside the transaction: a concurrent change may have updated it.
                    let Some(current) = incidents.get(id)? else {
                        return Ok(false);
                    };
                    let current: Incident = decode(tree::INCIDENTS, &current).map_err(abort)?;
                    if !prunable(&current, older_than) {
                        return Ok(false);
                    }
                    incidents.remove(id)?;
                    by_time.remove(keys::time_name_key(current.first_seen, id))?;
                    for k in incident_object_keys(&current) {
                        by_object.remove(k)?;
                    }
                    open.remove(id)?;
                    for k in &change_keys {
                        changes.remove(k.as_slice())?;
                    }
                    for nid in &notification_ids {
                        notes.remove(nid.as_bytes())?;
                        pending.remove(nid.as_bytes())?;
                        dead.remove(nid.as_bytes())?;
                        fates.remove(nid.as_bytes())?;
                    }
                    for k in &notification_index {
                        by_inc.remove(k.as_slice())?;
                    }
                    for k in &delivery_keys {
                        deliveries.remove(k.as_slice())?;
                    }
                    Ok(true)
                },
            )
            .map_err(tx_error)?;
        if removed {
            stats.incidents += 1;
            stats.incident_changes += change_keys.len() as u64;
            stats.notifications += notification_ids.len() as u64;
            stats.delivery_attempts += delivery_keys.len() as u64;
            tracing::debug!(incident_id = id, "incident pruned");
        }
        Ok(())
    }
}

/// Whether `incident` is resolved and ended before `older_than`.
fn prunable(incident: &Incident, older_than: Timestamp) -> bool {
    ended_at(incident).is_some_and(|end| end < older_than)
}

/// Every key of `tree` starting with `prefix`.
fn prefix_keys(tree: &sled::Tree, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    tree.scan_prefix(prefix)
        .keys()
        .map(|k| Ok(k?.to_vec()))
        .collect()
}
