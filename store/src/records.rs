//! Records: appending them (id assignment, blocks and their indexes, atomically) and the history
//! queries over them.
//!
//! Everything about records lives in one tree, `records`, so that one `apply_batch` (atomic
//! within a tree, and much cheaper than a multi-tree transaction) writes a group of records with
//! all its index entries:
//!
//! - the records appended together are one **block** (`block.rs`), keyed by its highest id;
//! - each block has one entry in a sparse **time index**, keyed by the block's latest
//!   `observed_at` (and its id), holding its earliest. A block never spans more than
//!   [`BLOCK_SPAN_NANOS`] of `observed_at` (a group that does is cut into several blocks), so
//!   the blocks holding records of a window `since..=until` are among the time entries from
//!   `since` to `until + BLOCK_SPAN`;
//! - each record has one **object index** entry, `(kind, key, observed_at, id)`.

use std::ops::Bound;

use herald_core::{ObjectKind, Record, RecordId, Timestamp};

use crate::block::{self, Entry};
use crate::codec::{decode, encode};
use crate::keys::{self, ObjectRecordKey, U64_LEN};
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
struct Block {
    bytes: sled::IVec,
    entries: Vec<Entry>,
}

impl Block {
    /// Parses a block read from the tree.
    fn parse(bytes: sled::IVec) -> Result<Block, StoreError> {
        let entries = block::entries(&bytes).ok_or(StoreError::CorruptValue {
            tree: tree::RECORDS,
        })?;
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
    fn decode(&self, i: usize) -> Result<Record, StoreError> {
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

/// One record to be written: its id, time, encoded value and object index key.
struct Row {
    id: u64,
    at: Timestamp,
    value: Vec<u8>,
    object_key: Vec<u8>,
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

    /// Assigns ids, encodes and writes; the caller restores the ids on error.
    fn write_records(&self, records: &mut [Record]) -> Result<(), StoreError> {
        let i = &self.inner;
        let mut rows = Vec::with_capacity(records.len());
        for r in records.iter_mut() {
            let id = i.db.generate_id()?.saturating_add(1);
            r.id = RecordId(id);
            rows.push(Row {
                id,
                at: r.observed_at,
                value: encode(tree::RECORDS, &*r)?,
                object_key: object_record_key(r).encode(),
            });
        }
        let mut batch = sled::Batch::default();
        let mut blocks = 0usize;
        let mut start = 0;
        while start < rows.len() {
            let end = block_end(&rows[start..]) + start;
            put_block(&mut batch, &rows[start..end]);
            blocks += 1;
            start = end;
        }
        for row in &rows {
            batch.insert(row.object_key.as_slice(), &[][..]);
        }
        i.records.apply_batch(batch)?;
        tracing::trace!(records = rows.len(), blocks, "records appended");
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
        let (lo, hi) = keys::time_range(&prefix, q.since, q.until);
        self.scan_object_index(lo, hi, q, Order::Oldest)
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
        let (lo, hi) = keys::time_range(&prefix, q.since, q.until);
        let mut out = self.scan_object_index(lo, hi, q, Order::Newest)?;
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
            let Some(b) = self.inner.records.get(keys::block_key(last_id))? else {
                // Only possible while prune removes this block concurrently.
                tracing::debug!(last_id, "time index entry without its block; skipped");
                continue;
            };
            let b = Block::parse(b)?;
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

    /// Walks the object index between `lo` and `hi` and loads the records.
    fn scan_object_index(
        &self,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        q: &TimeQuery,
        order: Order,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        if !q.wants_more(0) {
            return Ok(out);
        }
        let range = self.inner.records.range((lo, hi));
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match order {
            Order::Oldest => Box::new(range),
            Order::Newest => Box::new(range.rev()),
        };
        // Records of one object are often in the same block: keep the last one parsed.
        let mut last: Option<(u64, Block)> = None;
        for entry in iter {
            let (k, _) = entry?;
            let id = k
                .len()
                .checked_sub(U64_LEN)
                .and_then(|at| keys::decode_u64(&k[at..]))
                .ok_or(StoreError::CorruptKey {
                    tree: tree::RECORDS,
                })?;
            let cached = match &last {
                Some((first, b)) => *first <= id && b.entries.last().is_some_and(|e| e.id >= id),
                None => false,
            };
            if !cached {
                last = self
                    .block_holding(id)?
                    .map(|b| (b.entries.first().map_or(u64::MAX, |e| e.id), b));
            }
            match last
                .as_ref()
                .map(|(_, b)| b.record(id))
                .transpose()?
                .flatten()
            {
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
            for &j in &old {
                match b.decode(j) {
                    Ok(r) => batch.remove(object_record_key(&r).encode()),
                    // Undecodable record: drop it; its object entry cannot be located and is
                    // skipped by queries once the record is gone.
                    Err(e) => tracing::warn!(
                        record_id = b.entries[j].id,
                        error = %e,
                        "pruning an unreadable record"
                    ),
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
                batch.insert(&block_key[..], kept);
            }
            records.apply_batch(batch)?;
            removed += old.len() as u64;
        }
        Ok(removed)
    }

    /// Stored records (one object index entry each): O(records).
    pub(crate) fn count_records(&self) -> usize {
        self.inner
            .records
            .scan_prefix([keys::REC_OBJECT])
            .keys()
            .count()
    }
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
fn put_block(batch: &mut sled::Batch, rows: &[Row]) {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return;
    };
    let min = rows.iter().map(|r| r.at).min().unwrap_or(first.at);
    let max = rows.iter().map(|r| r.at).max().unwrap_or(first.at);
    let value = block::encode(rows.iter().map(|r| (r.id, r.at, r.value.as_slice())));
    batch.insert(&keys::block_key(last.id)[..], value);
    batch.insert(&keys::block_time_key(max, last.id)[..], &keys::ts(min)[..]);
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
