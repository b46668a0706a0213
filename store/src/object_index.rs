//! The object index's write side: the references of records appended since the index was last
//! written ("pending"), and writing them as entries.
//!
//! Appending records writes their block and time index entry at once (records are durable when
//! `append_records` returns), but their object index entries later: the `(object, observed_at,
//! id)` of new records are kept here, in memory, and written as **one entry per object** for
//! everything pending, when the pending set reaches [`MAX_PENDING_REFS`] references or
//! [`MAX_PENDING_OBJECTS`] objects, when it spans more than [`ENTRY_SPAN_NANOS`] of
//! `observed_at`, and when the store is closed. One entry per object and block (what schema 4
//! wrote) made about one sled insert per two records under load, and sled 0.34 splits a leaf
//! every eight new keys; writing pending references together makes about one insert per object
//! touched in that time instead (`herald bench ingest`: 15,500 entries a round instead of
//! 65,400).
//!
//! Queries read the pending references next to the written entries, so nothing appended is
//! missing from a history lookup. The `records` tree keeps the **indexed watermark**: the
//! highest record id whose object index entries are written, updated in the same batch as the
//! entries. Blocks after it are exactly the records still pending; opening the store after a
//! crash reads them again ([`recover`]), so the in-memory part is never the only copy of
//! anything.
//!
//! An entry is `(kind, key, first observed_at, last id of its references)`: its value lists the
//! `(observed_at, id)` of the records ([`REF_LEN`] bytes each, at most [`MAX_ENTRY_REFS`]),
//! which lie within [`ENTRY_SPAN_NANOS`] of the first, in whatever blocks hold those ids.

use std::collections::{HashMap, HashSet};

use herald_core::Timestamp;

use crate::keys::{self, TS_LEN, U64_LEN};
use crate::records::{Block, object_prefix};
use crate::{StoreError, tree};

/// Bytes of one `(observed_at, id)` in an object index value.
pub(crate) const REF_LEN: usize = TS_LEN + U64_LEN;

/// The most `observed_at` time one object index entry spans (between its first and last
/// reference); queries of a window `since..=until` read the entries from `since - span`.
pub(crate) const ENTRY_SPAN_NANOS: i128 = 10 * 60 * 1_000_000_000;

/// Most references in one entry (a value of 96 KiB), so an object with a flood of records
/// gets several entries rather than one huge value rewritten on every leaf change.
pub(crate) const MAX_ENTRY_REFS: usize = 4096;

/// Pending references that make the pending set be written (6 MiB of references; with
/// [`MAX_PENDING_OBJECTS`] keys, up to about 14 MiB in all; and what a store opened after a
/// crash reads again at most, besides the group that went past it).
pub(crate) const MAX_PENDING_REFS: usize = 1 << 18;

/// Pending objects that make the pending set be written.
pub(crate) const MAX_PENDING_OBJECTS: usize = 1 << 16;

/// Key of the indexed watermark in the `records` tree (a tag no other entry uses).
pub(crate) const WATERMARK_KEY: [u8; 1] = [keys::REC_INDEXED];

/// References of records whose object index entries are not written yet.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Object index prefix -> `(observed_at, id)` of its pending records, in id order.
    by_object: HashMap<Vec<u8>, Vec<(Timestamp, u64)>>,
    /// References held.
    refs: usize,
    /// Earliest and latest `observed_at` held.
    span: Option<(Timestamp, Timestamp)>,
    /// The highest id held (the watermark once written).
    last_id: u64,
}

impl Pending {
    /// Adds one record's reference (`object`: its object index prefix).
    pub(crate) fn add(&mut self, object: Vec<u8>, at: Timestamp, id: u64) {
        self.by_object.entry(object).or_default().push((at, id));
        self.refs += 1;
        self.span = Some(match self.span {
            Some((lo, hi)) => (lo.min(at), hi.max(at)),
            None => (at, at),
        });
        self.last_id = self.last_id.max(id);
    }

    /// Whether the pending set must be written before adding `refs` references observed within
    /// `span`: it would outgrow its limits, or span more than [`ENTRY_SPAN_NANOS`].
    pub(crate) fn full_before(&self, refs: usize, span: (Timestamp, Timestamp)) -> bool {
        let Some((lo, hi)) = self.span else {
            return false;
        };
        let (lo, hi) = (lo.min(span.0), hi.max(span.1));
        self.refs + refs > MAX_PENDING_REFS
            || self.by_object.len() >= MAX_PENDING_OBJECTS
            || hi.as_nanosecond() - lo.as_nanosecond() > ENTRY_SPAN_NANOS
    }

    /// The pending references of the object with index prefix `object`.
    pub(crate) fn refs_of(&self, object: &[u8]) -> &[(Timestamp, u64)] {
        self.by_object.get(object).map_or(&[], Vec::as_slice)
    }

    /// Pending references, of all objects.
    pub(crate) fn len(&self) -> usize {
        self.refs
    }

    /// Forgets the references of the records `ids` (pruned).
    pub(crate) fn remove_ids(&mut self, ids: &HashSet<u64>) {
        let mut removed = 0;
        self.by_object.retain(|_, refs| {
            let before = refs.len();
            refs.retain(|(_, id)| !ids.contains(id));
            removed += before - refs.len();
            !refs.is_empty()
        });
        self.refs -= removed;
    }

    /// Writes the pending entries and the watermark to `records` in one batch, then empties the
    /// set. On error the set is kept (and written later).
    pub(crate) fn write(&mut self, records: &sled::Tree) -> Result<usize, StoreError> {
        if self.by_object.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        let mut entries = 0usize;
        for (object, refs) in &mut self.by_object {
            for (k, v) in entries_of(object, refs) {
                batch.insert(k, v);
                entries += 1;
            }
        }
        batch.insert(&WATERMARK_KEY[..], &keys::u64_key(self.last_id)[..]);
        records.apply_batch(batch)?;
        tracing::trace!(
            entries,
            refs = self.refs,
            watermark = self.last_id,
            "object index written"
        );
        *self = Pending {
            last_id: self.last_id,
            ..Pending::default()
        };
        Ok(entries)
    }
}

/// Encodes the `(observed_at, id)` of an object index value.
pub(crate) fn encode_refs(refs: &[(Timestamp, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * REF_LEN);
    for (at, id) in refs {
        out.extend_from_slice(&keys::ts(*at));
        out.extend_from_slice(&id.to_be_bytes());
    }
    out
}

/// Decodes an object index value written by [`encode_refs`].
pub(crate) fn decode_refs(v: &[u8]) -> Option<Vec<(Timestamp, u64)>> {
    if !v.len().is_multiple_of(REF_LEN) {
        return None;
    }
    v.chunks_exact(REF_LEN)
        .map(|c| {
            Some((
                keys::decode_ts(&c[..TS_LEN])?,
                keys::decode_u64(&c[TS_LEN..])?,
            ))
        })
        .collect()
}

/// The object index entries of one object's references (any order; sorted in place by
/// `(observed_at, id)`), cut into entries of at most [`MAX_ENTRY_REFS`] references within
/// [`ENTRY_SPAN_NANOS`] of their first, each keyed `(object, first observed_at, last id)`.
pub(crate) fn entries_of(object: &[u8], refs: &mut [(Timestamp, u64)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    refs.sort_unstable();
    let sorted = &*refs;
    let mut out = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let first = sorted[start].0;
        let mut end = start + 1;
        while end < sorted.len()
            && end - start < MAX_ENTRY_REFS
            && sorted[end].0.as_nanosecond() - first.as_nanosecond() <= ENTRY_SPAN_NANOS
        {
            end += 1;
        }
        let run = &sorted[start..end];
        let last_id = run.iter().map(|r| r.1).max().unwrap_or(0);
        let mut key = Vec::with_capacity(object.len() + REF_LEN);
        key.extend_from_slice(object);
        key.extend_from_slice(&keys::ts(first));
        key.extend_from_slice(&keys::u64_key(last_id));
        out.push((key, encode_refs(run)));
        start = end;
    }
    out
}

/// The indexed watermark of `records`, `None` if it has none (a database of schema 4 or older,
/// or a new one).
fn watermark(records: &sled::Tree) -> Result<Option<u64>, StoreError> {
    records
        .get(WATERMARK_KEY)?
        .map(|v| {
            keys::decode_u64(&v).ok_or(StoreError::CorruptValue {
                tree: tree::RECORDS,
            })
        })
        .transpose()
}

/// What a store opened on `records` has pending: the records of the blocks after the indexed
/// watermark, read again (left pending by a process that stopped without closing the store).
/// A database without a watermark wrote its object index with every block (schema 4 and
/// older) or has no records yet: its watermark is set to its last block.
pub(crate) fn recover(records: &sled::Tree) -> Result<Pending, StoreError> {
    let corrupt_key = || StoreError::CorruptKey {
        tree: tree::RECORDS,
    };
    let Some(indexed) = watermark(records)? else {
        let last = match records
            .range(keys::block_key(0)..=keys::block_key(u64::MAX))
            .next_back()
        {
            Some(kv) => keys::decode_block_key(&kv?.0).ok_or_else(corrupt_key)?,
            None => 0,
        };
        records.insert(WATERMARK_KEY, &keys::u64_key(last)[..])?;
        return Ok(Pending {
            last_id: last,
            ..Pending::default()
        });
    };
    let mut pending = Pending {
        last_id: indexed,
        ..Pending::default()
    };
    let Some(from) = indexed.checked_add(1) else {
        return Ok(pending);
    };
    let mut blocks = 0usize;
    for kv in records.range(keys::block_key(from)..=keys::block_key(u64::MAX)) {
        let (k, v) = kv?;
        keys::decode_block_key(&k).ok_or_else(corrupt_key)?;
        let b = Block::parse(v)?;
        for j in 0..b.entries.len() {
            match b.decode(j) {
                Ok(r) => pending.add(object_prefix(&r.object), r.observed_at, r.id.0),
                // Left out of the object index (as prune leaves it); still in time queries.
                Err(e) => tracing::warn!(
                    record_id = b.entries[j].id,
                    error = %e,
                    "unreadable record left out of the object index"
                ),
            }
        }
        blocks += 1;
    }
    if blocks > 0 {
        tracing::info!(
            blocks,
            records = pending.refs,
            watermark = indexed,
            "object index of records appended before an unclean stop read again"
        );
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn entries_are_cut_by_span_and_size() {
        let span = i64::try_from(ENTRY_SPAN_NANOS / 1_000_000_000).unwrap();
        // Out of order on purpose: entries sort their references.
        let mut refs = vec![(ts(span + 1), 3), (ts(0), 1), (ts(span), 2)];
        let e = entries_of(b"o", &mut refs);
        assert_eq!(e.len(), 2, "the third is past the span of the first");
        assert_eq!(
            decode_refs(&e[0].1).unwrap(),
            vec![(ts(0), 1), (ts(span), 2)]
        );
        assert_eq!(decode_refs(&e[1].1).unwrap(), vec![(ts(span + 1), 3)]);
        refs = (0..MAX_ENTRY_REFS as u64 + 1)
            .map(|i| (ts(5), i + 1))
            .collect();
        let e = entries_of(b"o", &mut refs);
        assert_eq!(e.len(), 2);
        assert_ne!(
            e[0].0, e[1].0,
            "same first time, told apart by their last id"
        );
    }

    #[test]
    fn pending_is_full_past_its_span() {
        let mut p = Pending::default();
        assert!(!p.full_before(1, (ts(0), ts(0))), "empty is never full");
        p.add(b"o1".to_vec(), ts(0), 1);
        let span = i64::try_from(ENTRY_SPAN_NANOS / 1_000_000_000).unwrap();
        assert!(!p.full_before(1, (ts(span), ts(span))));
        assert!(p.full_before(1, (ts(span + 1), ts(span + 1))));
        assert!(p.full_before(MAX_PENDING_REFS, (ts(1), ts(1))));
    }

    #[test]
    fn removing_ids_keeps_the_counts() {
        let mut p = Pending::default();
        p.add(b"o1".to_vec(), ts(0), 1);
        p.add(b"o1".to_vec(), ts(0), 2);
        p.add(b"o2".to_vec(), ts(0), 3);
        p.remove_ids(&HashSet::from([1, 3]));
        assert_eq!(p.len(), 1);
        assert_eq!(p.refs_of(b"o1"), &[(ts(0), 2)]);
        assert!(p.refs_of(b"o2").is_empty());
    }

    proptest! {
        /// Every reference lands in exactly one entry, each entry is sorted, within the span
        /// and the size limit, and keyed by its first time and last id.
        #[test]
        fn entries_partition_the_references(
            raw in proptest::collection::vec((0i64..4000, 1u64..1_000_000), 0..300)
        ) {
            let mut seen = HashSet::new();
            let refs: Vec<(Timestamp, u64)> = raw
                .into_iter()
                .filter(|(_, id)| seen.insert(*id))
                .map(|(s, id)| (ts(s), id))
                .collect();
            let entries = entries_of(b"obj", &mut refs.clone());
            let mut all = Vec::new();
            for (k, v) in &entries {
                let got = decode_refs(v).unwrap();
                prop_assert!(!got.is_empty() && got.len() <= MAX_ENTRY_REFS);
                prop_assert!(got.windows(2).all(|w| w[0] <= w[1]));
                let (first, last) = (got[0].0, got[got.len() - 1].0);
                prop_assert!(last.as_nanosecond() - first.as_nanosecond() <= ENTRY_SPAN_NANOS);
                prop_assert_eq!(&k[..3], b"obj");
                prop_assert_eq!(keys::decode_ts(&k[3..3 + TS_LEN]), Some(first));
                let last_id = got.iter().map(|r| r.1).max().unwrap();
                prop_assert_eq!(keys::decode_u64(&k[3 + TS_LEN..]), Some(last_id));
                all.extend(got);
            }
            let mut want = refs.clone();
            want.sort_unstable();
            all.sort_unstable();
            prop_assert_eq!(all, want);
        }
    }
}
