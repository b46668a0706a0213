//! Records: appending them (id assignment plus the time and object indexes, atomically) and the
//! history queries over them.

use std::ops::Bound;

use herald_core::{ObjectKind, Record, RecordId};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::keys::{self, ObjectRecordKey, U64_LEN};
use crate::{Store, StoreError, TimeQuery, tree, tx_error};

/// Direction of an index scan.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Oldest,
    Newest,
}

impl Store {
    /// Persists `record`: assigns `record.id` (monotonic across restarts, never
    /// [`RecordId::UNASSIGNED`]) and writes the record with its time and object index entries
    /// in one transaction. On error `record.id` is left as it was.
    ///
    /// The object index uses `record.object` (for Events, the involved object) under
    /// `(kind, ObjectRef::key())`.
    pub fn append_record(&self, record: &mut Record) -> Result<RecordId, StoreError> {
        let i = &self.inner;
        let id = i.db.generate_id()?.saturating_add(1);
        let previous = record.id;
        record.id = RecordId(id);
        let value = encode(tree::RECORDS, record).map(sled::IVec::from);
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                record.id = previous;
                return Err(e);
            }
        };
        let time_key = keys::time_id_key(record.observed_at, id);
        let object_key = object_record_key(record).encode();
        let result = (&i.records, &i.records_by_time, &i.records_by_object).transaction(
            |(records, by_time, by_object)| {
                records.insert(&keys::u64_key(id), value.clone())?;
                by_time.insert(&time_key[..], &[][..])?;
                by_object.insert(object_key.as_slice(), &[][..])?;
                Ok(())
            },
        );
        if let Err(e) = result {
            record.id = previous;
            return Err(tx_error(e));
        }
        tracing::trace!(record_id = id, object = %record.object, "record appended");
        Ok(RecordId(id))
    }

    /// Persists `records` like [`Store::append_record`], all in one transaction (a group
    /// commit: under load the service writes the records that arrived together at once, which
    /// costs about as much as writing one). Ids are assigned in order. On error every `id` is
    /// left as it was and nothing is written.
    pub fn append_records(&self, records: &mut [Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let i = &self.inner;
        let previous: Vec<RecordId> = records.iter().map(|r| r.id).collect();
        let restore = |records: &mut [Record]| {
            for (r, id) in records.iter_mut().zip(&previous) {
                r.id = *id;
            }
        };
        let mut rows = Vec::with_capacity(records.len());
        for r in records.iter_mut() {
            let id = match i.db.generate_id() {
                Ok(id) => id.saturating_add(1),
                Err(e) => {
                    restore(records);
                    return Err(e.into());
                }
            };
            r.id = RecordId(id);
            let value = match encode(tree::RECORDS, &*r) {
                Ok(v) => sled::IVec::from(v),
                Err(e) => {
                    restore(records);
                    return Err(e);
                }
            };
            rows.push((
                keys::u64_key(id),
                value,
                keys::time_id_key(r.observed_at, id),
                object_record_key(r).encode(),
            ));
        }
        let result = (&i.records, &i.records_by_time, &i.records_by_object).transaction(
            |(recs, by_time, by_object)| {
                for (id_key, value, time_key, object_key) in &rows {
                    recs.insert(&id_key[..], value.clone())?;
                    by_time.insert(&time_key[..], &[][..])?;
                    by_object.insert(object_key.as_slice(), &[][..])?;
                }
                Ok(())
            },
        );
        if let Err(e) = result {
            restore(records);
            return Err(tx_error(e));
        }
        tracing::trace!(records = rows.len(), "records appended");
        Ok(())
    }

    /// The record with id `id`.
    pub fn record(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        self.inner
            .records
            .get(keys::u64_key(id.0))?
            .map(|v| decode(tree::RECORDS, &v))
            .transpose()
    }

    /// Records about the object `kind` + `key` (`ObjectRef::key()`: `NS/NAME` or `NAME`),
    /// including Events whose involved object it is, observed within `q`, oldest first; with a
    /// limit, the oldest `limit` of them.
    pub fn records_for_object(
        &self,
        kind: &ObjectKind,
        key: &str,
        q: &TimeQuery,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::object_prefix(kind.as_str(), key);
        let (lo, hi) = keys::time_range(&prefix, q.since, q.until);
        let index = (&self.inner.records_by_object, tree::RECORDS_BY_OBJECT);
        self.scan_records(index, lo, hi, q, Order::Oldest)
    }

    /// Like [`Store::records_for_object`] but, with a limit, the *newest* `limit` records of the
    /// window (still returned oldest first): what `herald history` shows. Reads only those.
    pub fn latest_records_for_object(
        &self,
        kind: &ObjectKind,
        key: &str,
        q: &TimeQuery,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::object_prefix(kind.as_str(), key);
        let (lo, hi) = keys::time_range(&prefix, q.since, q.until);
        let index = (&self.inner.records_by_object, tree::RECORDS_BY_OBJECT);
        let mut out = self.scan_records(index, lo, hi, q, Order::Newest)?;
        out.reverse();
        Ok(out)
    }

    /// Records observed within `q` (by `observed_at`), oldest first; with a limit, the oldest
    /// `limit` of them.
    pub fn records_between(&self, q: &TimeQuery) -> Result<Vec<Record>, StoreError> {
        let (lo, hi) = keys::time_range(&[], q.since, q.until);
        let index = (&self.inner.records_by_time, tree::RECORDS_BY_TIME);
        self.scan_records(index, lo, hi, q, Order::Oldest)
    }

    /// Walks an index whose keys end with a record id and loads the records.
    fn scan_records(
        &self,
        (index, index_name): (&sled::Tree, &'static str),
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        q: &TimeQuery,
        order: Order,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        if !q.wants_more(0) {
            return Ok(out);
        }
        let range = index.range((lo, hi));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match order {
            Order::Oldest => Box::new(range),
            Order::Newest => Box::new(range.rev()),
        };
        for entry in iter {
            let (k, _) = entry?;
            let id = k
                .len()
                .checked_sub(U64_LEN)
                .and_then(|at| keys::decode_u64(&k[at..]))
                .ok_or(StoreError::CorruptKey { tree: index_name })?;
            match self.record(RecordId(id))? {
                Some(r) => out.push(r),
                // Only possible while prune removes this record concurrently.
                None => tracing::debug!(record_id = id, "index entry without record; skipped"),
            }
            if !q.wants_more(out.len()) {
                break;
            }
        }
        Ok(out)
    }

    /// Removes records and their index entries in one transaction; returns how many existed.
    pub(crate) fn remove_records(&self, time_keys: &[Vec<u8>]) -> Result<u64, StoreError> {
        let i = &self.inner;
        // Read the records outside the transaction to learn their object index keys.
        let mut doomed = Vec::with_capacity(time_keys.len());
        for tk in time_keys {
            let (_, id) = keys::decode_time_id_key(tk).ok_or(StoreError::CorruptKey {
                tree: tree::RECORDS_BY_TIME,
            })?;
            let object_key = match self.record(RecordId(id)) {
                Ok(Some(r)) => Some(object_record_key(&r).encode()),
                Ok(None) => None,
                Err(e) => {
                    // Undecodable record: drop it and its time entry; its object entry (if any)
                    // cannot be located and is skipped by queries once the record is gone.
                    tracing::warn!(record_id = id, error = %e, "pruning an unreadable record");
                    None
                }
            };
            doomed.push((tk.clone(), id, object_key));
        }
        (&i.records, &i.records_by_time, &i.records_by_object)
            .transaction(|(records, by_time, by_object)| {
                let mut removed = 0u64;
                for (tk, id, ok) in &doomed {
                    if records.remove(&keys::u64_key(*id))?.is_some() {
                        removed += 1;
                    }
                    by_time.remove(tk.as_slice())?;
                    if let Some(ok) = ok {
                        by_object.remove(ok.as_slice())?;
                    }
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StoreError>>(removed)
            })
            .map_err(tx_error)
    }
}

/// The object index key of `record`.
fn object_record_key(record: &Record) -> ObjectRecordKey {
    ObjectRecordKey {
        kind: record.object.kind.as_str().to_string(),
        key: record.object.key(),
        at: record.observed_at,
        id: record.id.0,
    }
}
