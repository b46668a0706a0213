//! Records: appending them (id assignment, blocks and their time index, atomically), the history
//! queries over them, and prune.
//!
//! Everything about records lives in one tree, `records`, so that one `apply_batch` (atomic
//! within a tree, and much cheaper than a multi-tree transaction) writes a group of records with
//! its time index entries, and another a write of the object index with its watermark:
//!
//! - the records appended together are one **block** (`block.rs`), keyed by its highest id;
//! - each block has one entry in a sparse **time index**, keyed by the block's latest
//!   `observed_at` (and its id), holding its earliest. A block never spans more than
//!   [`BLOCK_SPAN_NANOS`] of `observed_at` (a group that does is cut into several blocks), so
//!   the blocks holding records of a window `since..=until` are among the time entries from
//!   `since` to `until + BLOCK_SPAN`;
//! - the **object index** holds entries `(kind, key, first observed_at, last id)` whose value
//!   lists the `(observed_at, id)` of records about that object (for Events, the involved
//!   object) within [`ENTRY_SPAN_NANOS`] of the first, in any blocks. They are written after
//!   the records, for everything appended since they were last written, one per object
//!   (`object_index.rs`); queries read the pending references too. An object's records of a
//!   window `since..=until` are among its entries from `since - ENTRY_SPAN` to `until`.
//!   Entries written by schema 2 to 4 read the same way: one entry per object and block
//!   (schema 3 and 4), or an empty value for one record, `(kind, key, observed_at, id)`
//!   (schema 2). Queries and prune read all three.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::{MutexGuard, PoisonError};

use herald_core::{ObjectKind, Record, RecordId, Timestamp};

use crate::block::{self, Entry};
use crate::codec::{decode, encode_into};
use crate::keys::{self, ObjectRecordKey, TS_LEN};
use crate::object_index::{self, ENTRY_SPAN_NANOS, Pending, REF_LEN, decode_refs};
use crate::{Store, StoreError, TimeQuery, tree};

/// The most `observed_at` time one block may span (between its earliest and latest record).
/// Records appended together are observed within moments of each other; a group that spans
/// more is cut into blocks, which keeps time-window queries to the blocks near the window.
pub(crate) const BLOCK_SPAN_NANOS: i128 = 60 * 1_000_000_000;
/// Most records in one block.
const BLOCK_MAX_RECORDS: usize = 1024;
/// Most bytes of encoded records in one block.
const BLOCK_MAX_BYTES: usize = 1 << 20;
/// Blocks looked at per step of [`Store::prune_records`] (each is pruned in its own batch).
const PRUNE_BLOCKS: usize = 256;

/// Direction of an index scan.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Oldest,
    Newest,
}

/// `t` plus `nanos`, saturating at the ends of the timestamp range.
fn shift(t: Timestamp, nanos: i128) -> Timestamp {
    Timestamp::from_nanosecond(t.as_nanosecond().saturating_add(nanos)).unwrap_or(if nanos < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// A parsed block: its value and where each record lies in it.
pub(crate) struct Block {
    bytes: sled::IVec,
    /// Where each record lies, in id order.
    pub(crate) entries: Vec<Entry>,
}

impl Block {
    /// Parses a block read from the tree.
    pub(crate) fn parse(stored: sled::IVec) -> Result<Block, StoreError> {
        let corrupt = || StoreError::CorruptValue {
            tree: tree::RECORDS,
        };
        let bytes = block::open(stored).ok_or_else(corrupt)?;
        let entries = block::entries(&bytes).ok_or_else(corrupt)?;
        Ok(Block { bytes, entries })
    }

    /// The record with `id`, if the block holds it.
    fn record(&self, id: u64) -> Result<Option<Record>, StoreError> {
        match self.entries.binary_search_by_key(&id, |e| e.id) {
            Ok(i) => self.decode(i).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Decodes the `i`th record.
    pub(crate) fn decode(&self, i: usize) -> Result<Record, StoreError> {
        let e = &self.entries[i];
        decode(tree::RECORDS, &self.bytes[e.value.clone()])
    }

    /// The time range of the block's records, `None` when it is empty.
    fn span(&self) -> Option<(Timestamp, Timestamp)> {
        let min = self.entries.iter().map(|e| e.at).min()?;
        let max = self.entries.iter().map(|e| e.at).max()?;
        Some((min, max))
    }
}

/// One record to be written: its id, time, where its encoded value lies in the group's
/// buffer, and its object index prefix.
struct Row {
    id: u64,
    at: Timestamp,
    value: std::ops::Range<usize>,
    object: Vec<u8>,
}

impl Store {
    /// Persists `record`: assigns `record.id` (monotonic across restarts, never
    /// [`RecordId::UNASSIGNED`]) and writes the record with its time and object index entries
    /// atomically. On error `record.id` is left as it was.
    ///
    /// The object index uses `record.object` (for Events, the involved object) under
    /// `(kind, ObjectRef::key())`.
    pub fn append_record(&self, record: &mut Record) -> Result<RecordId, StoreError> {
        self.append_records(std::slice::from_mut(record))?;
        Ok(record.id)
    }

    /// Persists `records` like [`Store::append_record`], all in one atomic batch (a group
    /// commit: under load the service writes the records that arrived together at once, as one
    /// block with one time index entry, which costs far less than writing them one by one).
    /// Ids are assigned in order. On error every `id` is left as it was and nothing is written.
    pub fn append_records(&self, records: &mut [Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let previous: Vec<RecordId> = records.iter().map(|r| r.id).collect();
        let result = self.write_records(records);
        if result.is_err() {
            for (r, id) in records.iter_mut().zip(&previous) {
                r.id = *id;
            }
        }
        result
    }

    /// The object index references not written yet.
    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding it leaves at worst references that were already written
        // (written again, under the same keys) or not yet added (read again at the next start).
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the pending object index entries now (closing the store does it too); returns
    /// how many entries were written.
    pub fn write_object_index(&self) -> Result<usize, StoreError> {
        self.pending().write(&self.inner.records)
    }

    /// Assigns ids, encodes and writes; the caller restores the ids on error.
    fn write_records(&self, records: &mut [Record]) -> Result<(), StoreError> {
        let i = &self.inner;
        // Held throughout, so ids enter the pending set in order and the watermark written
        // with it covers every lower id.
        let mut pending = self.pending();
        let mut rows = Vec::with_capacity(records.len());
        // Every record's encoding goes into one buffer (an allocation per group, not per
        // record); the blocks copy their slices of it.
        let mut values = Vec::with_capacity(records.len() * 1024);
        for r in records.iter_mut() {
            let id = i.db.generate_id()?.saturating_add(1);
            r.id = RecordId(id);
            let start = values.len();
            encode_into(tree::RECORDS, &*r, &mut values)?;
            rows.push(Row {
                id,
                at: r.observed_at,
                value: start..values.len(),
                object: object_prefix(&r.object),
            });
        }
        let lo = rows.iter().map(|r| r.at).min();
        let hi = rows.iter().map(|r| r.at).max();
        if let (Some(lo), Some(hi)) = (lo, hi)
            && pending.full_before(rows.len(), (lo, hi))
        {
            // Before the records, so that an error leaves nothing written.
            pending.write(&i.records)?;
        }
        let mut batch = sled::Batch::default();
        let mut blocks = 0usize;
        let mut start = 0;
        while start < rows.len() {
            let end = block_end(&rows[start..]) + start;
            put_block(&mut batch, &rows[start..end], &values);
            blocks += 1;
            start = end;
        }
        i.records.apply_batch(batch)?;
        let appended = rows.len();
        for r in rows {
            pending.add(r.object, r.at, r.id);
        }
        tracing::trace!(
            records = appended,
            blocks,
            pending = pending.len(),
            "records appended"
        );
        Ok(())
    }

    /// The record with id `id`.
    pub fn record(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        match self.block_holding(id.0)? {
            Some(b) => b.record(id.0),
            None => Ok(None),
        }
    }

    /// The block whose id range covers `id` (the first block keyed at or after it).
    fn block_holding(&self, id: u64) -> Result<Option<Block>, StoreError> {
        let lo = keys::block_key(id);
        let hi = keys::block_key(u64::MAX);
        match self.inner.records.range(lo..=hi).next() {
            Some(kv) => {
                let (k, v) = kv?;
                keys::decode_block_key(&k).ok_or(StoreError::CorruptKey {
                    tree: tree::RECORDS,
                })?;
                Ok(Some(Block::parse(v)?))
            }
            None => Ok(None),
        }
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
        let prefix = keys::record_object_prefix(kind.as_str(), key);
        self.scan_object_index(&prefix, q, Order::Oldest)
    }

    /// Like [`Store::records_for_object`] but, with a limit, the *newest* `limit` records of the
    /// window (still returned oldest first): what `herald history` shows. Reads only those.
    pub fn latest_records_for_object(
        &self,
        kind: &ObjectKind,
        key: &str,
        q: &TimeQuery,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::record_object_prefix(kind.as_str(), key);
        let mut out = self.scan_object_index(&prefix, q, Order::Newest)?;
        out.reverse();
        Ok(out)
    }

    /// Records observed within `q` (by `observed_at`), oldest first (ties by id); with a limit,
    /// the oldest `limit` of them.
    pub fn records_between(&self, q: &TimeQuery) -> Result<Vec<Record>, StoreError> {
        if !q.wants_more(0) {
            return Ok(Vec::new());
        }
        let inside =
            |at: Timestamp| q.since.is_none_or(|s| at >= s) && q.until.is_none_or(|u| at <= u);
        // Blocks whose latest record is at or after `since`; past `until + span` none can hold
        // a record of the window.
        let lo = keys::block_time_start(q.since);
        let hi = q
            .until
            .map(|u| keys::block_time_start(Some(shift(u, BLOCK_SPAN_NANOS))))
            .and_then(|k| keys::prefix_end(&k))
            .or_else(|| keys::prefix_end(&[keys::REC_TIME]));
        let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
        let mut blocks: Vec<Block> = Vec::new();
        // (observed_at, id, block, entry) of every record of the window seen so far.
        let mut hits: Vec<(Timestamp, u64, usize, usize)> = Vec::new();
        for kv in self.inner.records.range((Bound::Included(lo), hi)) {
            let (k, v) = kv?;
            let (max_at, last_id) =
                keys::decode_block_time_key(&k).ok_or(StoreError::CorruptKey {
                    tree: tree::RECORDS,
                })?;
            if let Some(limit) = q.limit
                && hits.len() >= limit
            {
                // This and every later block starts after `max_at - span`: once that is past
                // the newest hit kept, nothing later can make the cut.
                hits.sort_unstable();
                hits.truncate(limit);
                if hits
                    .last()
                    .is_some_and(|h| shift(max_at, -BLOCK_SPAN_NANOS) > h.0)
                {
                    break;
                }
            }
            let min_at = keys::decode_ts(&v).ok_or(StoreError::CorruptValue {
                tree: tree::RECORDS,
            })?;
            if q.until.is_some_and(|u| min_at > u) {
                continue;
            }
            let Some(b) = self.block(last_id)? else {
                // Only possible while prune removes this block concurrently.
                tracing::debug!(last_id, "time index entry without its block; skipped");
                continue;
            };
            let at_block = blocks.len();
            for (j, e) in b.entries.iter().enumerate() {
                if inside(e.at) {
                    hits.push((e.at, e.id, at_block, j));
                }
            }
            blocks.push(b);
        }
        hits.sort_unstable();
        if let Some(limit) = q.limit {
            hits.truncate(limit);
        }
        hits.iter()
            .map(|&(_, _, b, j)| blocks[b].decode(j))
            .collect()
    }

    /// The block keyed by `last_id`, parsed; `None` if there is none.
    fn block(&self, last_id: u64) -> Result<Option<Block>, StoreError> {
        self.inner
            .records
            .get(keys::block_key(last_id))?
            .map(Block::parse)
            .transpose()
    }

    /// Calls `f` with every record observed at or after `since`, one block at a time (block
    /// order, which is append order, not strictly time order), so a scan of millions of
    /// records holds one block. Stops at the first error, `f`'s or the store's.
    pub fn for_each_record_since<E: From<StoreError>>(
        &self,
        since: Timestamp,
        mut f: impl FnMut(Record) -> Result<(), E>,
    ) -> Result<u64, E> {
        let lo = keys::block_time_start(Some(since));
        let hi = keys::prefix_end(&[keys::REC_TIME]).map_or(Bound::Unbounded, Bound::Excluded);
        let mut n = 0u64;
        for kv in self.inner.records.range((Bound::Included(lo), hi)) {
            let (k, _) = kv.map_err(StoreError::from)?;
            let (_, last_id) = keys::decode_block_time_key(&k).ok_or(StoreError::CorruptKey {
                tree: tree::RECORDS,
            })?;
            let Some(b) = self.block(last_id)? else {
                // Only possible while prune removes this block concurrently.
                continue;
            };
            for (j, e) in b.entries.iter().enumerate() {
                if e.at >= since {
                    f(b.decode(j)?)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Walks the object index entries under `prefix` that can hold records of `q`'s window,
    /// picks the records of the window (the oldest or newest `limit` of them, in that order) and
    /// loads them.
    fn scan_object_index(
        &self,
        prefix: &[u8],
        q: &TimeQuery,
        order: Order,
    ) -> Result<Vec<Record>, StoreError> {
        if !q.wants_more(0) {
            return Ok(Vec::new());
        }
        let corrupt_key = || StoreError::CorruptKey {
            tree: tree::RECORDS,
        };
        let inside =
            |at: Timestamp| q.since.is_none_or(|s| at >= s) && q.until.is_none_or(|u| at <= u);
        // (observed_at, id) of every record of the window seen so far, the pending ones first.
        let mut hits: Vec<(Timestamp, u64)> = self
            .pending()
            .refs_of(prefix)
            .iter()
            .copied()
            .filter(|(at, _)| inside(*at))
            .collect();
        // An entry's records lie within ENTRY_SPAN after its first one.
        let since = q.since.map(|s| shift(s, -ENTRY_SPAN_NANOS));
        let (lo, hi) = keys::time_range(prefix, since, q.until);
        let range = self.inner.records.range((lo, hi));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match order {
            Order::Oldest => Box::new(range),
            Order::Newest => Box::new(range.rev()),
        };
        let keep = |hits: &mut Vec<(Timestamp, u64)>, limit: usize| {
            match order {
                Order::Oldest => hits.sort_unstable(),
                Order::Newest => hits.sort_unstable_by(|a, b| b.cmp(a)),
            }
            // A reference written while this scan ran is both pending and in an entry.
            hits.dedup();
            hits.truncate(limit);
        };
        for entry in iter {
            let (k, v) = entry?;
            let rest = k.get(prefix.len()..).ok_or_else(corrupt_key)?;
            if rest.len() != REF_LEN {
                return Err(corrupt_key());
            }
            let first = keys::decode_ts(&rest[..TS_LEN]).ok_or_else(corrupt_key)?;
            let id = keys::decode_u64(&rest[TS_LEN..]).ok_or_else(corrupt_key)?;
            if let Some(limit) = q.limit
                && hits.len() >= limit
            {
                keep(&mut hits, limit);
                let done = hits.last().is_some_and(|h| match order {
                    // This and every later entry starts after the newest hit kept.
                    Order::Oldest => first > h.0,
                    // This and every earlier entry ends before the oldest hit kept.
                    Order::Newest => shift(first, ENTRY_SPAN_NANOS) < h.0,
                });
                if done {
                    break;
                }
            }
            if v.is_empty() {
                if inside(first) {
                    hits.push((first, id));
                }
                continue;
            }
            let refs = decode_refs(&v).ok_or(StoreError::CorruptValue {
                tree: tree::RECORDS,
            })?;
            hits.extend(refs.into_iter().filter(|(at, _)| inside(*at)));
        }
        keep(&mut hits, q.limit.unwrap_or(usize::MAX));
        // Records of one object are often in the same block: keep the last one parsed.
        let mut out = Vec::with_capacity(hits.len());
        let mut last: Option<Block> = None;
        for (_, id) in hits {
            let cached = last.as_ref().is_some_and(|b| {
                b.entries.first().is_some_and(|e| e.id <= id)
                    && b.entries.last().is_some_and(|e| e.id >= id)
            });
            if !cached {
                last = self.block_holding(id)?;
            }
            match last.as_ref().map(|b| b.record(id)).transpose()?.flatten() {
                Some(r) => out.push(r),
                // Only possible while prune removes this record concurrently.
                None => tracing::debug!(record_id = id, "index entry without record; skipped"),
            }
        }
        Ok(out)
    }

    /// Deletes the records observed before `older_than` with their index entries, one block
    /// per batch (a block partly older is rewritten without them); returns how many there were.
    pub(crate) fn prune_records(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let records = &self.inner.records;
        // A block with a record before the cutoff ends before cutoff + span.
        let hi = keys::block_time_start(Some(shift(older_than, BLOCK_SPAN_NANOS)));
        let mut lo = Bound::Included(keys::block_time_start(None));
        let mut removed = 0u64;
        loop {
            let chunk = records
                .range::<Vec<u8>, _>((lo.clone(), Bound::Excluded(hi.clone())))
                .take(PRUNE_BLOCKS)
                .map(|kv| {
                    let (k, v) = kv?;
                    let (_, last_id) =
                        keys::decode_block_time_key(&k).ok_or(StoreError::CorruptKey {
                            tree: tree::RECORDS,
                        })?;
                    let min_at = keys::decode_ts(&v).ok_or(StoreError::CorruptValue {
                        tree: tree::RECORDS,
                    })?;
                    Ok((k, last_id, min_at))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let Some((last_key, _, _)) = chunk.last() else {
                break;
            };
            lo = Bound::Excluded(last_key.to_vec());
            removed += self.prune_blocks(chunk, older_than)?;
        }
        Ok(removed)
    }

    /// Prunes the records before `older_than` from the blocks of `candidates`
    /// (`(time key, last id, earliest observed_at)`).
    fn prune_blocks(
        &self,
        candidates: Vec<(sled::IVec, u64, Timestamp)>,
        older_than: Timestamp,
    ) -> Result<u64, StoreError> {
        let records = &self.inner.records;
        let mut removed = 0u64;
        for (time_key, last_id, min_at) in candidates {
            if min_at >= older_than {
                continue;
            }
            let block_key = keys::block_key(last_id);
            let Some(bytes) = records.get(block_key)? else {
                continue;
            };
            let b = Block::parse(bytes)?;
            let (old, keep): (Vec<usize>, Vec<usize>) =
                (0..b.entries.len()).partition(|&j| b.entries[j].at < older_than);
            let mut batch = sled::Batch::default();
            // The object index prefix of every readable record. An undecodable record is
            // dropped; its object entry cannot be located and is skipped by queries once the
            // record is gone.
            let objects: Vec<Option<(Vec<u8>, ObjectRecordKey)>> = (0..b.entries.len())
                .map(|j| match b.decode(j) {
                    Ok(r) => {
                        let legacy = ObjectRecordKey {
                            kind: r.object.kind.as_str().to_string(),
                            key: r.object.key(),
                            at: r.observed_at,
                            id: r.id.0,
                        };
                        Some((
                            keys::record_object_prefix(&legacy.kind, &legacy.key),
                            legacy,
                        ))
                    }
                    Err(e) => {
                        if b.entries[j].at < older_than {
                            tracing::warn!(
                                record_id = b.entries[j].id,
                                error = %e,
                                "pruning an unreadable record"
                            );
                        }
                        None
                    }
                })
                .collect();
            // Schema 2 entries (one per record), then the entries holding an old record of
            // each object, rewritten without the old records.
            let mut touched: BTreeMap<&[u8], (Timestamp, Timestamp)> = BTreeMap::new();
            for &j in &old {
                if let Some((object, legacy)) = &objects[j] {
                    batch.remove(legacy.encode());
                    let at = b.entries[j].at;
                    touched
                        .entry(object.as_slice())
                        .and_modify(|(lo, hi)| (*lo, *hi) = ((*lo).min(at), (*hi).max(at)))
                        .or_insert((at, at));
                }
            }
            let old_ids: HashSet<u64> = old.iter().map(|&j| b.entries[j].id).collect();
            // Held until the batch is applied, so no entry is written with old references
            // in between.
            let mut pending = self.pending();
            for (object, (lo, hi)) in touched {
                let (from, to) =
                    keys::time_range(object, Some(shift(lo, -ENTRY_SPAN_NANOS)), Some(hi));
                for kv in records.range((from, to)) {
                    let (k, v) = kv?;
                    if v.is_empty() {
                        continue;
                    }
                    let refs = decode_refs(&v).ok_or(StoreError::CorruptValue {
                        tree: tree::RECORDS,
                    })?;
                    let mut kept: Vec<(Timestamp, u64)> = refs
                        .iter()
                        .copied()
                        .filter(|(_, id)| !old_ids.contains(id))
                        .collect();
                    if kept.len() == refs.len() {
                        continue;
                    }
                    batch.remove(k);
                    for (k, v) in object_index::entries_of(object, &mut kept) {
                        batch.insert(k, v);
                    }
                }
            }
            if keep.is_empty() {
                batch.remove(&block_key[..]);
                batch.remove(time_key);
            } else {
                let kept = block::encode(keep.iter().map(|&j| {
                    let e = &b.entries[j];
                    (e.id, e.at, &b.bytes[e.value.clone()])
                }));
                let rest = Block::parse(sled::IVec::from(kept.as_slice()))?;
                if let Some((min, _)) = rest.span() {
                    // The latest record is kept, so the time key (latest, last id) stays.
                    batch.insert(time_key, &keys::ts(min)[..]);
                }
                batch.insert(&block_key[..], block::seal(&kept));
            }
            records.apply_batch(batch)?;
            pending.remove_ids(&old_ids);
            drop(pending);
            removed += old.len() as u64;
        }
        Ok(removed)
    }

    /// Stored records (the references of the object index, written and pending): O(records).
    pub(crate) fn count_records(&self) -> usize {
        let written: usize = self
            .inner
            .records
            .scan_prefix([keys::REC_OBJECT])
            .values()
            .filter_map(Result::ok)
            .map(|v| (v.len() / REF_LEN).max(1))
            .sum();
        written + self.pending().len()
    }
}

/// The object index prefix of records about `object` (for Events, the involved object).
pub(crate) fn object_prefix(object: &herald_core::ObjectRef) -> Vec<u8> {
    keys::record_object_prefix(object.kind.as_str(), &object.key())
}

/// How many of `rows` (at least one) go into the next block: as many as fit within
/// [`BLOCK_SPAN_NANOS`], [`BLOCK_MAX_RECORDS`] and [`BLOCK_MAX_BYTES`].
fn block_end(rows: &[Row]) -> usize {
    let (mut min, mut max) = (rows[0].at, rows[0].at);
    let mut bytes = 0usize;
    for (n, row) in rows.iter().enumerate() {
        let (lo, hi) = (min.min(row.at), max.max(row.at));
        bytes += row.value.len();
        if n > 0
            && (n >= BLOCK_MAX_RECORDS
                || bytes > BLOCK_MAX_BYTES
                || hi.as_nanosecond() - lo.as_nanosecond() > BLOCK_SPAN_NANOS)
        {
            return n;
        }
        (min, max) = (lo, hi);
    }
    rows.len()
}

/// Adds the block of `rows` (ids increasing, not empty) and its time index entry to `batch`.
fn put_block(batch: &mut sled::Batch, rows: &[Row], values: &[u8]) {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return;
    };
    let min = rows.iter().map(|r| r.at).min().unwrap_or(first.at);
    let max = rows.iter().map(|r| r.at).max().unwrap_or(first.at);
    let value = block::encode(rows.iter().map(|r| (r.id, r.at, &values[r.value.clone()])));
    batch.insert(&keys::block_key(last.id)[..], block::seal(&value));
    batch.insert(&keys::block_time_key(max, last.id)[..], &keys::ts(min)[..]);
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use herald_core::{ObjectRef, PodChange, PodTransition, RecordBody};

    use super::*;

    fn record(pod: u8, secs: i64) -> Record {
        Record {
            id: RecordId::UNASSIGNED,
            cluster: "c".into(),
            observed_at: Timestamp::from_second(1_700_000_000 + secs).unwrap(),
            object: ObjectRef::pod("ns", format!("pod-{pod}")),
            node: None,
            owner: None,
            labels: BTreeMap::new(),
            body: RecordBody::Pod(PodTransition {
                phase: None,
                change: PodChange::Created,
            }),
        }
    }

    fn object_entries_count(store: &Store) -> usize {
        store.inner.records.scan_prefix([keys::REC_OBJECT]).count()
    }

    #[test]
    fn one_object_entry_per_object_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut rs: Vec<Record> = [(0, 5), (1, 6), (0, 7), (0, 4), (2, 6), (1, 9)]
            .iter()
            .map(|&(p, s)| record(p, s))
            .collect();
        store.append_records(&mut rs).unwrap();
        let pod0 = |store: &Store| -> Vec<i64> {
            store
                .records_for_object(&ObjectKind::Pod, "ns/pod-0", &TimeQuery::all())
                .unwrap()
                .iter()
                .map(|r| r.observed_at.as_second() - 1_700_000_000)
                .collect()
        };
        assert_eq!(object_entries_count(&store), 0, "pending");
        assert_eq!(pod0(&store), [4, 5, 7], "pending, oldest first");
        assert_eq!(store.count_records(), 6);
        assert_eq!(store.write_object_index().unwrap(), 3);
        assert_eq!(object_entries_count(&store), 3, "pods 0, 1 and 2");
        assert_eq!(store.pending().len(), 0);
        assert_eq!(pod0(&store), [4, 5, 7], "written");
        assert_eq!(store.count_records(), 6);
    }

    /// The object queries of both pods, for a few windows and limits.
    fn object_answers(store: &Store) -> Vec<(Vec<Record>, Vec<Record>)> {
        let queries = [
            TimeQuery::all(),
            TimeQuery::all().with_limit(1),
            TimeQuery::all().with_limit(2),
            TimeQuery::between(
                Some(Timestamp::from_second(1_700_000_002).unwrap()),
                Some(Timestamp::from_second(1_700_000_010).unwrap()),
            ),
        ];
        let mut out = Vec::new();
        for q in &queries {
            for pod in [0, 1] {
                let key = format!("ns/pod-{pod}");
                out.push((
                    store.records_for_object(&ObjectKind::Pod, &key, q).unwrap(),
                    store
                        .latest_records_for_object(&ObjectKind::Pod, &key, q)
                        .unwrap(),
                ));
            }
        }
        out
    }

    /// Records appended in several groups get one entry per object when written, spanning the
    /// blocks; the queries answer the same from pending references, from written entries, and
    /// from both at once.
    #[test]
    fn pending_and_written_references_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = two_groups(&store);
        let pending = object_answers(&store);
        assert_eq!(
            pending[0].0,
            vec![all[0].clone(), all[2].clone(), all[3].clone()]
        );
        assert_eq!(pending[2].1, vec![all[3].clone()], "pod 0's newest");
        assert_eq!(store.write_object_index().unwrap(), 2, "one per pod");
        assert_eq!(object_answers(&store), pending);
        let mut more = vec![record(0, 12)];
        store.append_records(&mut more).unwrap();
        let both = object_answers(&store);
        assert_eq!(both[0].0.last(), Some(&more[0]));
        assert_eq!(both[0].0.len(), 4);
        // A reference both written and still pending (a query racing a write) counts once.
        let refs = store
            .pending()
            .refs_of(&keys::record_object_prefix("Pod", "ns/pod-0"))
            .to_vec();
        store.write_object_index().unwrap();
        for (at, id) in refs {
            store
                .pending()
                .add(keys::record_object_prefix("Pod", "ns/pod-0"), at, id);
        }
        assert_eq!(object_answers(&store), both);
    }

    /// A store closed without writing its pending references (killed) reads them again from
    /// the blocks after the indexed watermark when opened.
    #[test]
    fn pending_references_are_recovered_after_an_unclean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (all, answers) = {
            let store = Store::open(dir.path()).unwrap();
            let mut first = vec![record(0, 1), record(1, 2)];
            store.append_records(&mut first).unwrap();
            store.write_object_index().unwrap();
            let mut rest: Vec<Record> = [(0, 3), (0, 10), (1, 11)]
                .iter()
                .map(|&(p, s)| record(p, s))
                .collect();
            store.append_records(&mut rest).unwrap();
            let answers = object_answers(&store);
            // What a kill loses: the pending set.
            *store.pending() = Pending::default();
            ([first, rest].concat(), answers)
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pending().len(), 3, "the records after the watermark");
        assert_eq!(object_answers(&store), answers);
        assert_eq!(store.count_records(), all.len());
        let mut next = vec![record(1, 12)];
        store.append_records(&mut next).unwrap();
        assert!(next[0].id > all[4].id);
        drop(store);
        // Closed cleanly: nothing left to read again.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pending().len(), 0);
        assert_eq!(store.count_records(), all.len() + 1);
    }

    /// Prune rewrites an entry spanning several blocks without the pruned records, and drops
    /// pending references of pruned records.
    #[test]
    fn prune_rewrites_entries_and_pending_references() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = two_groups(&store);
        store.write_object_index().unwrap();
        let mut later = vec![record(0, 20), record(1, 21)];
        store.append_records(&mut later).unwrap();
        let cutoff = Timestamp::from_second(1_700_000_003).unwrap();
        assert_eq!(store.prune_records(cutoff).unwrap(), 2);
        let pod = |p: u8| {
            store
                .records_for_object(&ObjectKind::Pod, &format!("ns/pod-{p}"), &TimeQuery::all())
                .unwrap()
        };
        assert_eq!(
            pod(0),
            vec![all[2].clone(), all[3].clone(), later[0].clone()]
        );
        assert_eq!(pod(1), vec![all[4].clone(), later[1].clone()]);
        assert_eq!(store.count_records(), 5);
        // Everything but the pending two goes: the entries are removed, the pending kept.
        let cutoff = Timestamp::from_second(1_700_000_015).unwrap();
        assert_eq!(store.prune_records(cutoff).unwrap(), 3);
        assert_eq!(object_entries_count(&store), 0);
        assert_eq!(pod(0), vec![later[0].clone()]);
        assert_eq!(store.count_records(), 2);
        let cutoff = Timestamp::from_second(1_700_000_030).unwrap();
        assert_eq!(store.prune_records(cutoff).unwrap(), 2);
        assert_eq!(store.pending().len(), 0);
        assert_eq!(store.write_object_index().unwrap(), 0);
        assert!(pod(0).is_empty());
    }

    /// Replaces the object index of `store` by what schemas 3 and 4 wrote (one entry per object
    /// and block, with the block's last id) or, for the blocks `schema_2`, one empty-valued
    /// entry per record; pending references are dropped, all blocks counted as indexed.
    fn legacy_index(store: &Store, schema_2: &[u64]) {
        *store.pending() = Pending::default();
        let records = &store.inner.records;
        let mut batch = sled::Batch::default();
        for kv in records.scan_prefix([keys::REC_OBJECT]) {
            batch.remove(kv.unwrap().0);
        }
        for kv in records.scan_prefix([keys::REC_BLOCK]) {
            let (k, v) = kv.unwrap();
            let last_id = keys::decode_block_key(&k).unwrap();
            let b = Block::parse(v).unwrap();
            let mut by_object: BTreeMap<Vec<u8>, Vec<(Timestamp, u64)>> = BTreeMap::new();
            for j in 0..b.entries.len() {
                let r = b.decode(j).unwrap();
                let legacy = ObjectRecordKey {
                    kind: r.object.kind.as_str().to_string(),
                    key: r.object.key(),
                    at: r.observed_at,
                    id: r.id.0,
                };
                if schema_2.contains(&last_id) {
                    batch.insert(legacy.encode(), &[][..]);
                } else {
                    by_object
                        .entry(keys::record_object_prefix(&legacy.kind, &legacy.key))
                        .or_default()
                        .push((r.observed_at, r.id.0));
                }
            }
            for (object, mut refs) in by_object {
                refs.sort_unstable();
                let mut key = object.clone();
                key.extend_from_slice(&keys::ts(refs[0].0));
                key.extend_from_slice(&keys::u64_key(last_id));
                batch.insert(key, object_index::encode_refs(&refs));
            }
        }
        records.apply_batch(batch).unwrap();
    }

    /// Rewrites every record block of `store` uncompressed, as schemas 2 and 3 wrote them;
    /// returns how many there were.
    pub(crate) fn unseal_blocks(store: &Store) -> usize {
        let blocks: Vec<(sled::IVec, sled::IVec)> = store
            .inner
            .records
            .scan_prefix([keys::REC_BLOCK])
            .map(Result::unwrap)
            .collect();
        for (k, v) in &blocks {
            assert_eq!(v[0], block::SEALED_LAYOUT, "written compressed");
            let raw = block::open(v.clone()).unwrap().to_vec();
            assert_eq!(raw[0], block::BLOCK_LAYOUT);
            store.inner.records.insert(k, raw).unwrap();
        }
        blocks.len()
    }

    /// Appends two groups of records about pods 0 and 1 (two blocks); returns them.
    fn two_groups(store: &Store) -> Vec<Record> {
        let mut all = Vec::new();
        for g in [vec![(0, 1), (1, 2), (0, 3)], vec![(0, 10), (1, 11)]] {
            let mut rs: Vec<Record> = g.iter().map(|&(p, s)| record(p, s)).collect();
            store.append_records(&mut rs).unwrap();
            all.extend(rs);
        }
        all
    }

    /// Blocks written uncompressed (schemas 2 and 3) are read, and pruned, like compressed
    /// ones; what prune keeps of one is written back compressed.
    #[test]
    fn uncompressed_blocks_are_read_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = two_groups(&store);
        let compressed = store.records_between(&TimeQuery::all()).unwrap();
        assert_eq!(unseal_blocks(&store), 2);
        assert_eq!(
            store.records_between(&TimeQuery::all()).unwrap(),
            compressed
        );
        assert_eq!(compressed, all);
        for r in &all {
            assert_eq!(store.record(r.id).unwrap().as_ref(), Some(r));
        }
        let pod0 = store
            .records_for_object(&ObjectKind::Pod, "ns/pod-0", &TimeQuery::all())
            .unwrap();
        assert_eq!(pod0.len(), 3);
        // Prune the first two records: the first block keeps one, written compressed.
        store
            .prune_records(Timestamp::from_second(1_700_000_003).unwrap())
            .unwrap();
        let left = store.records_between(&TimeQuery::all()).unwrap();
        assert_eq!(left, all[2..].to_vec());
        let first = store
            .inner
            .records
            .get(keys::block_key(all[2].id.0))
            .unwrap()
            .unwrap();
        assert_eq!(first[0], block::SEALED_LAYOUT);
    }

    /// A store whose object index is in the layouts of schemas 2 (one entry per record, with
    /// an empty value) and 4 (one entry per object and block) answers the same, takes new
    /// records, and prunes all of them.
    #[test]
    fn older_object_entries_are_read_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let all = two_groups(&store);
        let before = object_answers(&store);
        let first_block = all[2].id.0;
        legacy_index(&store, &[first_block]);
        assert_eq!(object_entries_count(&store), 3 + 2);
        assert_eq!(object_answers(&store), before);
        assert_eq!(store.count_records(), 5);
        let mut more = vec![record(0, 12)];
        store.append_records(&mut more).unwrap();
        store.write_object_index().unwrap();
        assert_eq!(store.count_records(), 6);

        // Pruning before second 3 removes two legacy entries and keeps the third.
        let cutoff = Timestamp::from_second(1_700_000_003).unwrap();
        assert_eq!(store.prune_records(cutoff).unwrap(), 2);
        assert_eq!(store.count_records(), 4);
        let oldest = store
            .records_for_object(&ObjectKind::Pod, "ns/pod-0", &TimeQuery::all())
            .unwrap();
        assert_eq!(
            oldest,
            vec![all[2].clone(), all[3].clone(), more[0].clone()]
        );
        // Then the schema-4 entries of the second block.
        let cutoff = Timestamp::from_second(1_700_000_012).unwrap();
        assert_eq!(store.prune_records(cutoff).unwrap(), 3);
        assert_eq!(object_entries_count(&store), 1, "the new record's");
        assert_eq!(store.count_records(), 1);
    }
}
