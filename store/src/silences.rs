//! Silences (`herald silence add/list/expire`): stored by id, read by the running service;
//! and who each subscription is for (`who:`), so `herald history` can say who was told.

use std::collections::BTreeMap;

use herald_core::{Silence, Timestamp};

use crate::codec::{decode, encode};
use crate::{Store, StoreError, tree};

impl Store {
    /// Stores `s`, replacing a silence with the same id.
    pub fn put_silence(&self, s: &Silence) -> Result<(), StoreError> {
        let value = encode(tree::SILENCES, s)?;
        self.inner.silences.insert(s.id.as_bytes(), value)?;
        tracing::info!(silence_id = %s.id, ends_at = %s.ends_at, "silence stored");
        Ok(())
    }

    /// The silence with id `id`.
    pub fn silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        self.inner
            .silences
            .get(id.as_bytes())?
            .map(|v| decode(tree::SILENCES, &v))
            .transpose()
    }

    /// Every stored silence (active, future and expired), by `starts_at`.
    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let mut out: Vec<Silence> = self
            .inner
            .silences
            .iter()
            .map(|kv| decode(tree::SILENCES, &kv?.1))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Ends silence `id` at `at` (if it ends later). Returns the updated silence, `None` when
    /// there is no such silence.
    pub fn expire_silence(&self, id: &str, at: Timestamp) -> Result<Option<Silence>, StoreError> {
        let Some(mut s) = self.silence(id)? else {
            return Ok(None);
        };
        if s.ends_at > at {
            s.ends_at = at;
            self.put_silence(&s)?;
        }
        Ok(Some(s))
    }
}

impl Store {
    /// Records who each subscription (by name) is for; existing entries of other names are
    /// kept, so the history of a removed subscription still says who it was for.
    pub fn put_subscribers(&self, who: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (name, w) in who {
            batch.insert(name.as_bytes(), w.as_bytes());
        }
        self.inner.subscribers.apply_batch(batch)?;
        Ok(())
    }

    /// Who the subscription called `name` is for, when recorded.
    pub fn subscriber(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner
            .subscribers
            .get(name.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}
