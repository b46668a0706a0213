//! The notification outbox (notifications keyed by idempotency key, the pending set, the
//! per-incident index), delivery attempts, dead letters and their retry, the fates of
//! notifications settled without a send of their own (digested, silenced) and watch
//! checkpoints (the watcher's compact state is in `watch_state.rs`).
//!
//! A notification is in exactly one of these states: pending (in `notifications_pending`; the
//! value is empty, or the instant of a `retry` of a dead letter), delivered (a `Delivered`
//! attempt), dead (in `notifications_dead`), or settled with a [`Fate`].

use herald_core::{
    Checkpoint, DeliveryAttempt, DeliveryOutcome, IncidentId, Notification, Timestamp,
};
use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::keys::{self, TS_LEN};
use crate::{Store, StoreError, tree, tx_error};

/// Why a notification left the pending set without a send of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    /// Folded into the digest notification `digest_id` (over budget, or held in quiet hours).
    Digested {
        /// The digest's id.
        digest_id: String,
        /// When it was folded.
        at: Timestamp,
    },
    /// Suppressed by the silence `silence_id`.
    Silenced {
        /// The silence's id.
        silence_id: String,
        /// When it was suppressed.
        at: Timestamp,
    },
}

impl Store {
    /// The stored watch position of `resource` (`pods`, `nodes`, `events`).
    pub fn checkpoint(&self, resource: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner
            .checkpoints
            .get(resource.as_bytes())?
            .map(|v| decode(tree::CHECKPOINTS, &v))
            .transpose()
    }

    /// Stores the watch position of `cp.resource`, replacing the previous one.
    pub fn put_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        let value = encode(tree::CHECKPOINTS, cp)?;
        self.inner
            .checkpoints
            .insert(cp.resource.as_bytes(), value)?;
        tracing::trace!(resource = %cp.resource, resource_version = %cp.resource_version, "checkpoint stored");
        Ok(())
    }

    /// Adds `n` to the outbox (pending) unless a notification with the same id (idempotency
    /// key) exists; returns whether it was inserted. An existing notification is left as it is,
    /// whatever its state, so a replayed transition is never announced twice.
    pub fn put_notification(&self, n: &Notification) -> Result<bool, StoreError> {
        let i = &self.inner;
        let value = sled::IVec::from(encode(tree::NOTIFICATIONS, n)?);
        let by_incident = keys::parent_time_name_key(&n.incident_id.0, n.created_at, &n.id);
        let inserted = (
            &i.notifications,
            &i.notifications_pending,
            &i.notifications_by_incident,
        )
            .transaction(|(notifications, pending, by_inc)| {
                if notifications.get(n.id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                notifications.insert(n.id.as_bytes(), value.clone())?;
                pending.insert(n.id.as_bytes(), &[][..])?;
                by_inc.insert(by_incident.as_slice(), &[][..])?;
                Ok(true)
            })
            .map_err(tx_error)?;
        tracing::debug!(notification_id = %n.id, channel = %n.channel, inserted, "notification stored");
        Ok(inserted)
    }

    /// The notification with idempotency key `id`.
    pub fn notification(&self, id: &str) -> Result<Option<Notification>, StoreError> {
        self.inner
            .notifications
            .get(id.as_bytes())?
            .map(|v| decode(tree::NOTIFICATIONS, &v))
            .transpose()
    }

    /// Notifications neither delivered nor dead (the outbox to re-queue after a restart), oldest
    /// `created_at` first.
    pub fn pending_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.notifications_pending.iter() {
            let (k, _) = entry?;
            let id = std::str::from_utf8(&k).map_err(|_| StoreError::CorruptKey {
                tree: tree::NOTIFICATIONS_PENDING,
            })?;
            if let Some(n) = self.notification(id)? {
                out.push(n);
            }
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Appends a delivery attempt; a `Delivered` or `Dead` outcome also takes the notification
    /// out of the pending set (in the same transaction). Attempts are kept per notification in
    /// order of `at`.
    pub fn record_delivery(&self, a: &DeliveryAttempt) -> Result<(), StoreError> {
        let i = &self.inner;
        let value = sled::IVec::from(encode(tree::DELIVERIES, a)?);
        let key = keys::log_key(&a.notification_id, a.at, i.db.generate_id()?);
        let settled = matches!(
            a.outcome,
            DeliveryOutcome::Delivered { .. } | DeliveryOutcome::Dead { .. }
        );
        if !i.notifications.contains_key(a.notification_id.as_bytes())? {
            tracing::warn!(notification_id = %a.notification_id, "delivery attempt for an unknown notification");
        }
        let dead_now = matches!(a.outcome, DeliveryOutcome::Dead { .. });
        (
            &i.deliveries,
            &i.notifications_pending,
            &i.notifications_dead,
        )
            .transaction(|(deliveries, pending, dead)| {
                deliveries.insert(key.as_slice(), value.clone())?;
                if settled {
                    pending.remove(a.notification_id.as_bytes())?;
                }
                if dead_now {
                    dead.insert(a.notification_id.as_bytes(), &[][..])?;
                } else if settled {
                    dead.remove(a.notification_id.as_bytes())?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        tracing::debug!(
            notification_id = %a.notification_id,
            attempt = a.attempt,
            settled,
            "delivery attempt stored"
        );
        Ok(())
    }

    /// The attempts made for notification `id`, in order of `at`.
    pub fn deliveries(&self, id: &str) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.inner
            .deliveries
            .scan_prefix(keys::str_prefix(id))
            .map(|entry| decode(tree::DELIVERIES, &entry?.1))
            .collect()
    }

    /// Every notification about incident `id` (oldest `created_at` first) with its attempts.
    pub fn deliveries_for_incident(
        &self,
        id: &IncidentId,
    ) -> Result<Vec<(Notification, Vec<DeliveryAttempt>)>, StoreError> {
        let mut out = Vec::new();
        for nid in self.notification_ids_for_incident(id)? {
            if let Some(n) = self.notification(&nid)? {
                let attempts = self.deliveries(&nid)?;
                out.push((n, attempts));
            }
        }
        Ok(out)
    }

    /// Ids of the notifications about incident `id`, oldest `created_at` first.
    pub(crate) fn notification_ids_for_incident(
        &self,
        id: &IncidentId,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = keys::str_prefix(&id.0);
        self.inner
            .notifications_by_incident
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, _) = entry?;
                k.get(prefix.len() + TS_LEN..)
                    .and_then(|b| String::from_utf8(b.to_vec()).ok())
                    .ok_or(StoreError::CorruptKey {
                        tree: tree::NOTIFICATIONS_BY_INCIDENT,
                    })
            })
            .collect()
    }
}

impl Store {
    /// Whether notification `id` is still pending (neither delivered, dead nor settled).
    pub fn is_pending(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .notifications_pending
            .contains_key(id.as_bytes())?)
    }

    /// When the pending notification `id` was last put back by [`Store::retry_notification`]
    /// (`None` for a notification pending since it was created, or not pending). Its attempts
    /// and its maximum age count from that instant.
    pub fn pending_since(&self, id: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .inner
            .notifications_pending
            .get(id.as_bytes())?
            .and_then(|v| keys::decode_ts(&v)))
    }

    /// Dead letters (oldest `created_at` first) with their attempts.
    pub fn dead_notifications(
        &self,
    ) -> Result<Vec<(Notification, Vec<DeliveryAttempt>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.notifications_dead.iter() {
            let (k, _) = entry?;
            let id = std::str::from_utf8(&k).map_err(|_| StoreError::CorruptKey {
                tree: tree::NOTIFICATIONS_DEAD,
            })?;
            if let Some(n) = self.notification(id)? {
                let attempts = self.deliveries(id)?;
                out.push((n, attempts));
            }
        }
        out.sort_by(|(a, _), (b, _)| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Whether notification `id` is a dead letter.
    pub fn is_dead(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.inner.notifications_dead.contains_key(id.as_bytes())?)
    }

    /// Puts the dead letter `id` back into the outbox as of `at` (atomically: out of the dead
    /// set, into the pending set). Returns the notification, or `None` when `id` is not a dead
    /// letter (unknown, pending, delivered or settled).
    pub fn retry_notification(
        &self,
        id: &str,
        at: Timestamp,
    ) -> Result<Option<Notification>, StoreError> {
        let i = &self.inner;
        let moved = (&i.notifications_dead, &i.notifications_pending)
            .transaction(|(dead, pending)| {
                if dead.remove(id.as_bytes())?.is_none() {
                    return Ok(false);
                }
                pending.insert(id.as_bytes(), &keys::ts(at)[..])?;
                Ok(true)
            })
            .map_err(tx_error)?;
        if !moved {
            return Ok(None);
        }
        tracing::info!(notification_id = %id, "dead letter queued again");
        self.notification(id)
    }

    /// The fate of notification `id`, when it was settled without a send of its own.
    pub fn fate(&self, id: &str) -> Result<Option<Fate>, StoreError> {
        self.inner
            .notification_fates
            .get(id.as_bytes())?
            .map(|v| decode(tree::NOTIFICATION_FATES, &v))
            .transpose()
    }

    /// Stores the digest notification `digest` (pending, as [`Store::put_notification`] does)
    /// and, in the same transaction, settles each pending notification of `folded` as
    /// [`Fate::Digested`] into it. Notifications of `folded` that are no longer pending are
    /// left alone. Returns whether the digest was inserted (`false`: it existed, nothing done).
    pub fn put_digest(
        &self,
        digest: &Notification,
        folded: &[String],
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let i = &self.inner;
        let value = sled::IVec::from(encode(tree::NOTIFICATIONS, digest)?);
        let fate = sled::IVec::from(encode(
            tree::NOTIFICATION_FATES,
            &Fate::Digested {
                digest_id: digest.id.clone(),
                at,
            },
        )?);
        let by_incident =
            keys::parent_time_name_key(&digest.incident_id.0, digest.created_at, &digest.id);
        let inserted = (
            &i.notifications,
            &i.notifications_pending,
            &i.notifications_by_incident,
            &i.notification_fates,
        )
            .transaction(|(notifications, pending, by_inc, fates)| {
                if notifications.get(digest.id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                notifications.insert(digest.id.as_bytes(), value.clone())?;
                pending.insert(digest.id.as_bytes(), &[][..])?;
                by_inc.insert(by_incident.as_slice(), &[][..])?;
                for id in folded {
                    if pending.remove(id.as_bytes())?.is_some() {
                        fates.insert(id.as_bytes(), fate.clone())?;
                    }
                }
                Ok(true)
            })
            .map_err(tx_error)?;
        tracing::debug!(notification_id = %digest.id, folded = folded.len(), inserted, "digest stored");
        Ok(inserted)
    }

    /// Stores `n` (unless its id exists) already settled as [`Fate::Silenced`] by
    /// `silence_id`: recorded, never sent. Returns whether it was inserted.
    pub fn put_silenced(
        &self,
        n: &Notification,
        silence_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let i = &self.inner;
        let value = sled::IVec::from(encode(tree::NOTIFICATIONS, n)?);
        let fate = sled::IVec::from(encode(
            tree::NOTIFICATION_FATES,
            &Fate::Silenced {
                silence_id: silence_id.to_string(),
                at,
            },
        )?);
        let by_incident = keys::parent_time_name_key(&n.incident_id.0, n.created_at, &n.id);
        let inserted = (
            &i.notifications,
            &i.notifications_by_incident,
            &i.notification_fates,
        )
            .transaction(|(notifications, by_inc, fates)| {
                if notifications.get(n.id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                notifications.insert(n.id.as_bytes(), value.clone())?;
                by_inc.insert(by_incident.as_slice(), &[][..])?;
                fates.insert(n.id.as_bytes(), fate.clone())?;
                Ok(true)
            })
            .map_err(tx_error)?;
        tracing::debug!(notification_id = %n.id, silence_id, inserted, "notification silenced");
        Ok(inserted)
    }

    /// Writes everything buffered so far to disk and waits for it (blocking; call from a
    /// blocking context). The outbox calls it before a send and after a settled attempt, so a
    /// kill -9 neither loses a notification nor forgets a delivery.
    pub fn flush_sync(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }
}
