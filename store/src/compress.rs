//! LZ4 compression of the large values the store writes: record blocks (`block.rs`) and
//! watch-state log blocks (`watch_state.rs`).
//!
//! Why: sled 0.34 keeps values inside its leaves (up to 16 entries each) and rewrites a whole
//! leaf whenever it splits or consolidates one; a leaf above 128 KiB (a quarter of a segment)
//! is written as a file of its own. A leaf of large values is therefore copied and written
//! several times over: `herald bench ingest` wrote 4.7 bytes per byte of record JSON. Record
//! JSON compresses about 5:1 and state blocks about 3:1, which cuts those bytes (and the files
//! and syscalls with them) in the same proportion.
//!
//! A sealed value is `tag:u8 raw_len:u32 (big-endian)` followed by the LZ4 block of the raw
//! bytes. `tag` is chosen by the caller from the value's own layout/format byte space, so
//! [`open`] can tell a sealed value from one written uncompressed (by an older herald) and pass
//! the latter through.

use std::borrow::Cow;

use sled::IVec;

/// Width of a sealed value's header: tag byte and uncompressed length.
const HEAD_LEN: usize = 1 + 4;

/// Largest uncompressed length [`open`] accepts, so a corrupt length cannot ask for an absurd
/// allocation: well above anything written (a record block holds at most 1 MiB of records
/// plus its header; a state log block at most a group commit's states).
const MAX_RAW_LEN: usize = 64 << 20;

/// Compresses `raw` into a value starting with `tag`. Should compression fail (it cannot: the
/// buffer has the maximum output size), `raw` is returned as it is, which [`open`] passes
/// through: the value is stored uncompressed rather than lost.
pub(crate) fn seal(tag: u8, raw: &[u8]) -> Vec<u8> {
    let bound = lz4_flex::block::get_maximum_output_size(raw.len());
    let mut out = vec![0u8; HEAD_LEN + bound];
    out[0] = tag;
    out[1..HEAD_LEN].copy_from_slice(&(raw.len() as u32).to_be_bytes());
    match lz4_flex::block::compress_into(raw, &mut out[HEAD_LEN..]) {
        Ok(n) => {
            out.truncate(HEAD_LEN + n);
            out
        }
        Err(_) => raw.to_vec(),
    }
}

/// The raw bytes of a stored value: decompressed when it starts with `tag` (a [`seal`]ed
/// value), borrowed as they are otherwise. `None` when a sealed value is corrupt.
pub(crate) fn open(tag: u8, stored: &[u8]) -> Option<Cow<'_, [u8]>> {
    if stored.first() != Some(&tag) {
        return Some(Cow::Borrowed(stored));
    }
    let len = u32::from_be_bytes(stored.get(1..HEAD_LEN)?.try_into().ok()?);
    let len = usize::try_from(len).ok().filter(|&l| l <= MAX_RAW_LEN)?;
    let raw = lz4_flex::block::decompress(&stored[HEAD_LEN..], len).ok()?;
    (raw.len() == len).then_some(Cow::Owned(raw))
}

/// [`open`] of a value read from sled: the stored value itself when it is not sealed (no copy),
/// else the decompressed bytes. `None` when a sealed value is corrupt.
pub(crate) fn open_ivec(tag: u8, stored: IVec) -> Option<IVec> {
    match open(tag, &stored)? {
        Cow::Borrowed(_) => Some(stored),
        Cow::Owned(raw) => Some(IVec::from(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: u8 = 9;

    #[test]
    fn passes_unsealed_values_through() {
        let raw = b"\x01plain block";
        assert!(matches!(open(TAG, raw), Some(Cow::Borrowed(b)) if b == raw));
        assert!(matches!(open(TAG, b""), Some(Cow::Borrowed(b)) if b.is_empty()));
    }

    #[test]
    fn compresses_repetitive_json() {
        let raw = br#"{"kind":"Pod","namespace":"shop","name":"cart"}"#.repeat(200);
        let sealed = seal(TAG, &raw);
        assert!(
            sealed.len() * 5 < raw.len(),
            "{} of {}",
            sealed.len(),
            raw.len()
        );
        let opened = open(TAG, &sealed);
        assert_eq!(opened.as_deref(), Some(&raw[..]));
    }

    #[test]
    fn rejects_corrupt_sealed_values() {
        let sealed = seal(TAG, &b"abcdefgh".repeat(100));
        for cut in 1..sealed.len() {
            assert!(open(TAG, &sealed[..cut]).is_none(), "cut at {cut}");
        }
        let mut wrong_len = sealed.clone();
        wrong_len[4] ^= 1;
        assert!(open(TAG, &wrong_len).is_none());
        let mut huge = sealed;
        huge[1..HEAD_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(open(TAG, &huge).is_none());
    }

    proptest! {
        #[test]
        fn round_trips(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let sealed = seal(TAG, &raw);
            prop_assert_eq!(sealed[0], TAG);
            let opened = open(TAG, &sealed);
            prop_assert_eq!(opened.as_deref(), Some(&raw[..]));
        }
    }
}
