//! Record blocks: the records of one group commit stored as one sled value.
//!
//! sled 0.34 pays a fixed cost per written entry (a leaf holds at most 16 entries, so a stream
//! of entries is a stream of page splits and log writes) that is about the same for a 10-byte
//! and a 1 KB value. The records appended together therefore go into one entry, a *block*,
//! keyed by its highest record id (`keys::block_key`), so a record is found by its id with one
//! range lookup. Layout:
//!
//! ```text
//! layout:u8 (= BLOCK_LAYOUT)  count:u32
//! count x (id:u64 observed_at:ts(12) len:u32)      ids strictly increasing
//! count x value                                     each a codec value (format byte + payload)
//! ```
//!
//! Integers are big-endian; timestamps use the key encoding of `keys::ts`.
//!
//! A block is stored LZ4-compressed ([`seal`], `compress.rs`), its tag [`SEALED_LAYOUT`];
//! [`open`] reverses it and passes a block written uncompressed (before schema 4) through.

use std::ops::Range;

use herald_core::Timestamp;

use crate::compress;
use crate::keys::{TS_LEN, decode_ts, ts};

/// Layout byte of a block (the first byte of the value).
pub(crate) const BLOCK_LAYOUT: u8 = 1;
/// Layout byte of a compressed block ([`seal`]).
pub(crate) const SEALED_LAYOUT: u8 = 2;
/// Width of one header entry: id, observed_at, length of the value.
const ENTRY_LEN: usize = 8 + TS_LEN + 4;
/// Width of the block's own header: layout byte and count.
const HEAD_LEN: usize = 1 + 4;

/// One record's place in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The record's id.
    pub id: u64,
    /// When the record was observed.
    pub at: Timestamp,
    /// Where its encoded value lies within the block.
    pub value: Range<usize>,
}

/// Encodes a block of `(id, observed_at, encoded value)`, ids strictly increasing.
pub(crate) fn encode<'a>(
    rows: impl ExactSizeIterator<Item = (u64, Timestamp, &'a [u8])>,
) -> Vec<u8> {
    let count = rows.len();
    let mut head = Vec::with_capacity(HEAD_LEN + count * ENTRY_LEN);
    let mut body = Vec::new();
    head.push(BLOCK_LAYOUT);
    head.extend_from_slice(&(count as u32).to_be_bytes());
    for (id, at, value) in rows {
        head.extend_from_slice(&id.to_be_bytes());
        head.extend_from_slice(&ts(at));
        head.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    head.extend_from_slice(&body);
    head
}

/// Compresses an encoded block for storage.
pub(crate) fn seal(raw: &[u8]) -> Vec<u8> {
    compress::seal(SEALED_LAYOUT, raw)
}

/// The encoded block in a stored value: decompressed if it was [`seal`]ed, `None` if the
/// compressed data is corrupt. An uncompressed block is returned as it is.
pub(crate) fn open(stored: sled::IVec) -> Option<sled::IVec> {
    compress::open_ivec(SEALED_LAYOUT, stored)
}

/// Parses a block's header; `None` if the bytes are not a well-formed block.
pub(crate) fn entries(block: &[u8]) -> Option<Vec<Entry>> {
    let (&layout, rest) = block.split_first()?;
    if layout != BLOCK_LAYOUT {
        return None;
    }
    let count = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let mut at_value = HEAD_LEN.checked_add(count.checked_mul(ENTRY_LEN)?)?;
    if at_value > block.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut previous: Option<u64> = None;
    for i in 0..count {
        let e = &block[HEAD_LEN + i * ENTRY_LEN..HEAD_LEN + (i + 1) * ENTRY_LEN];
        let id = u64::from_be_bytes(e[..8].try_into().ok()?);
        if previous.is_some_and(|p| p >= id) {
            return None;
        }
        previous = Some(id);
        let at = decode_ts(&e[8..8 + TS_LEN])?;
        let len = u32::from_be_bytes(e[8 + TS_LEN..].try_into().ok()?) as usize;
        let end = at_value.checked_add(len)?;
        if end > block.len() {
            return None;
        }
        out.push(Entry {
            id,
            at,
            value: at_value..end,
        });
        at_value = end;
    }
    (at_value == block.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_rows() -> impl Strategy<Value = Vec<(u64, Timestamp, Vec<u8>)>> {
        proptest::collection::btree_map(
            any::<u64>(),
            (
                (-5_000_000_000i128..200_000_000_000_000_000_000i128),
                proptest::collection::vec(any::<u8>(), 0..40),
            ),
            0..20,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(id, (n, v))| (id, Timestamp::from_nanosecond(n).unwrap(), v))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn blocks_round_trip(rows in any_rows()) {
            let bytes = encode(rows.iter().map(|(id, at, v)| (*id, *at, v.as_slice())));
            let parsed = entries(&bytes).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for (e, (id, at, v)) in parsed.iter().zip(&rows) {
                prop_assert_eq!(e.id, *id);
                prop_assert_eq!(e.at, *at);
                prop_assert_eq!(&bytes[e.value.clone()], v.as_slice());
            }
        }

        #[test]
        fn truncated_or_extended_blocks_are_rejected(rows in any_rows(), cut in 1usize..8) {
            let bytes = encode(rows.iter().map(|(id, at, v)| (*id, *at, v.as_slice())));
            prop_assert!(entries(&bytes[..bytes.len().saturating_sub(cut)]).is_none());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(entries(&longer).is_none());
        }
    }

    #[test]
    fn other_layouts_are_rejected() {
        let mut bytes = encode(std::iter::empty());
        assert_eq!(entries(&bytes), Some(vec![]));
        bytes[0] = 2;
        assert_eq!(entries(&bytes), None);
        assert_eq!(entries(&[]), None);
    }
}
