//! Key encoding: every sled key the store writes is built and parsed here, so that the
//! lexicographic byte order sled sorts by is the logical order the queries need.
//!
//! Building blocks, concatenated to form composite keys:
//!
//! - **integers** (`u64` record ids, sequence numbers) are fixed-width big-endian;
//! - **timestamps** are 12 bytes: the whole seconds (floor, so pre-1970 instants work) as an
//!   `i64` with the sign bit flipped, big-endian, then the nanoseconds within that second
//!   (`0..1e9`) as a big-endian `u32`. Flipping the sign bit maps `i64::MIN..=i64::MAX` onto
//!   `0..=u64::MAX` monotonically, so negative instants sort before positive ones;
//! - **strings** in a non-final position (object kind, object key, incident id, notification id)
//!   are *escaped and terminated*: each `0x00` byte becomes `0x00 0xFF` and the component ends
//!   with `0x00 0x01`. Any byte sequence is therefore allowed (including NUL), the terminator
//!   cannot occur inside a component, and order is preserved: a string sorts before its
//!   extensions because the terminator's `0x00 0x01` is lower than any continuation (`0x01..`,
//!   or an escaped NUL `0x00 0xFF`). A string in the final position is stored raw.
//!
//! Key layouts (tree: key -> value):
//!
//! | tree | key |
//! |---|---|
//! | `records` (blocks) | `'b' last_id:u64` -> a block of records (see `block.rs`) |
//! | `records` (time index) | `'t' max_observed_at:ts last_id:u64` -> `min_observed_at:ts` |
//! | `records` (object index) | `'o' kind:str key:str first_observed_at:ts last_id:u64` -> `(observed_at:ts id:u64)*` (schema 2: `observed_at id` -> empty) |
//! | `incidents` | `incident_id` (raw) |
//! | `incidents_by_time` | `first_seen:ts incident_id` (raw) |
//! | `incidents_by_object` | `kind:str key:str first_seen:ts incident_id` (raw) |
//! | `incidents_open` | `incident_id` (raw) |
//! | `incident_changes` | `incident_id:str at:ts seq:u64` |
//! | `checkpoints` | `resource` (raw) |
//! | `watch_state` | `resource:str object_key` (raw) |
//! | `watch_state_log` | `resource:str seq:u64` |
//! | `notifications` | `notification_id` (raw) |
//! | `notifications_pending` | `notification_id` (raw) |
//! | `notifications_by_incident` | `incident_id:str created_at:ts notification_id` (raw) |
//! | `deliveries` | `notification_id:str at:ts seq:u64` |

use jiff::Timestamp;
use std::ops::Bound;

/// Width of an encoded timestamp.
pub(crate) const TS_LEN: usize = 12;
/// Width of an encoded `u64`.
pub(crate) const U64_LEN: usize = 8;

const ESCAPE: u8 = 0x00;
const ESCAPED_NUL: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Encodes a timestamp into 12 order-preserving bytes.
pub(crate) fn ts(t: Timestamp) -> [u8; TS_LEN] {
    let nanos = t.as_nanosecond();
    // Timestamp's range is a few hundred billion seconds, so the floor-seconds fit in an i64.
    let secs = nanos.div_euclid(NANOS_PER_SEC) as i64;
    let sub = nanos.rem_euclid(NANOS_PER_SEC) as u32;
    let mut out = [0u8; TS_LEN];
    out[..8].copy_from_slice(&((secs as u64) ^ (1 << 63)).to_be_bytes());
    out[8..].copy_from_slice(&sub.to_be_bytes());
    out
}

/// Decodes a timestamp written by [`ts`]; `None` if `b` is not exactly 12 valid bytes.
pub(crate) fn decode_ts(b: &[u8]) -> Option<Timestamp> {
    let secs: [u8; 8] = b.get(..8)?.try_into().ok()?;
    let sub: [u8; 4] = b.get(8..TS_LEN)?.try_into().ok()?;
    if b.len() != TS_LEN {
        return None;
    }
    let secs = (u64::from_be_bytes(secs) ^ (1 << 63)) as i64;
    let sub = u32::from_be_bytes(sub);
    if i128::from(sub) >= NANOS_PER_SEC {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(secs) * NANOS_PER_SEC + i128::from(sub)).ok()
}

/// Encodes a `u64` big-endian.
pub(crate) fn u64_key(v: u64) -> [u8; U64_LEN] {
    v.to_be_bytes()
}

/// Decodes a big-endian `u64`; `None` unless `b` is exactly 8 bytes.
pub(crate) fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Appends `s` escaped and terminated (see the module docs).
pub(crate) fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    for &b in s {
        out.push(b);
        if b == ESCAPE {
            out.push(ESCAPED_NUL);
        }
    }
    out.push(ESCAPE);
    out.push(TERMINATOR);
}

/// Splits an escaped, terminated string off the front of `b`: the unescaped bytes and the rest.
pub(crate) fn take_str(b: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == ESCAPE {
            match *b.get(i + 1)? {
                ESCAPED_NUL => out.push(ESCAPE),
                TERMINATOR => return Some((out, &b[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    None
}

/// Splits an escaped string off the front of `b` and requires it to be UTF-8.
fn take_string(b: &[u8]) -> Option<(String, &[u8])> {
    let (s, rest) = take_str(b)?;
    Some((String::from_utf8(s).ok()?, rest))
}

/// The prefix shared by every index entry of one object: `kind:str key:str`.
pub(crate) fn object_prefix(kind: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(kind.len() + key.len() + 4 + TS_LEN + U64_LEN);
    push_str(&mut out, kind.as_bytes());
    push_str(&mut out, key.as_bytes());
    out
}

/// Tag of the block entries in the `records` tree.
pub(crate) const REC_BLOCK: u8 = b'b';
/// Tag of the object index entries in the `records` tree.
pub(crate) const REC_OBJECT: u8 = b'o';
/// Tag of the sparse time index entries (one per block) in the `records` tree.
pub(crate) const REC_TIME: u8 = b't';
/// Tag of the object index's indexed watermark in the `records` tree (`object_index.rs`).
pub(crate) const REC_INDEXED: u8 = b'i';
/// Width of a block key.
pub(crate) const BLOCK_KEY_LEN: usize = 1 + U64_LEN;
/// Width of a block time key.
pub(crate) const BLOCK_TIME_KEY_LEN: usize = 1 + TS_LEN + U64_LEN;

/// A block key: `'b' last_id:u64` (the highest record id in the block).
pub(crate) fn block_key(last_id: u64) -> [u8; BLOCK_KEY_LEN] {
    let mut out = [0u8; BLOCK_KEY_LEN];
    out[0] = REC_BLOCK;
    out[1..].copy_from_slice(&u64_key(last_id));
    out
}

/// Decodes a block key.
pub(crate) fn decode_block_key(b: &[u8]) -> Option<u64> {
    match b.split_first() {
        Some((&REC_BLOCK, rest)) => decode_u64(rest),
        _ => None,
    }
}

/// A block's time index key: `'t' max_observed_at:ts last_id:u64`.
pub(crate) fn block_time_key(max_at: Timestamp, last_id: u64) -> [u8; BLOCK_TIME_KEY_LEN] {
    let mut out = [0u8; BLOCK_TIME_KEY_LEN];
    out[0] = REC_TIME;
    out[1..1 + TS_LEN].copy_from_slice(&ts(max_at));
    out[1 + TS_LEN..].copy_from_slice(&u64_key(last_id));
    out
}

/// Decodes a block time key into `(max_observed_at, last_id)`.
pub(crate) fn decode_block_time_key(b: &[u8]) -> Option<(Timestamp, u64)> {
    if b.len() != BLOCK_TIME_KEY_LEN || b[0] != REC_TIME {
        return None;
    }
    Some((decode_ts(&b[1..1 + TS_LEN])?, decode_u64(&b[1 + TS_LEN..])?))
}

/// The first key of the time index entries whose `max_observed_at` is at least `at`
/// (`'t'` alone when `at` is `None`).
pub(crate) fn block_time_start(at: Option<Timestamp>) -> Vec<u8> {
    let mut out = vec![REC_TIME];
    if let Some(at) = at {
        out.extend_from_slice(&ts(at));
    }
    out
}

/// The prefix of every object index entry of one object in the `records` tree:
/// `'o' kind:str key:str`.
pub(crate) fn record_object_prefix(kind: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + kind.len() + key.len() + 4 + TS_LEN + U64_LEN);
    out.push(REC_OBJECT);
    push_str(&mut out, kind.as_bytes());
    push_str(&mut out, key.as_bytes());
    out
}

/// An object index key of the `records` tree: `'o' kind:str key:str observed_at:ts id:u64`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectRecordKey {
    /// Object kind (`ObjectKind::as_str`).
    pub kind: String,
    /// Object key (`ObjectRef::key`).
    pub key: String,
    /// When the record was observed.
    pub at: Timestamp,
    /// Record id.
    pub id: u64,
}

impl ObjectRecordKey {
    /// Encodes the key.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = record_object_prefix(&self.kind, &self.key);
        out.extend_from_slice(&ts(self.at));
        out.extend_from_slice(&u64_key(self.id));
        out
    }

    /// Decodes a key written by [`ObjectRecordKey::encode`] (for tests and diagnostics; queries
    /// only need the trailing id).
    #[allow(
        dead_code,
        reason = "the inverse of encode, exercised by the property tests"
    )]
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let b = match b.split_first() {
            Some((&REC_OBJECT, rest)) => rest,
            _ => return None,
        };
        let (kind, rest) = take_string(b)?;
        let (key, rest) = take_string(rest)?;
        if rest.len() != TS_LEN + U64_LEN {
            return None;
        }
        Some(Self {
            kind,
            key,
            at: decode_ts(&rest[..TS_LEN])?,
            id: decode_u64(&rest[TS_LEN..])?,
        })
    }
}

/// An `incidents_by_time` key: `first_seen:ts incident_id` (raw, final).
pub(crate) fn time_name_key(at: Timestamp, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(TS_LEN + name.len());
    out.extend_from_slice(&ts(at));
    out.extend_from_slice(name.as_bytes());
    out
}

/// Decodes an `incidents_by_time` key.
pub(crate) fn decode_time_name_key(b: &[u8]) -> Option<(Timestamp, String)> {
    let at = decode_ts(b.get(..TS_LEN)?)?;
    let name = String::from_utf8(b[TS_LEN..].to_vec()).ok()?;
    Some((at, name))
}

/// An `incidents_by_object` key: `kind:str key:str first_seen:ts incident_id` (raw, final).
pub(crate) fn object_name_key(kind: &str, key: &str, at: Timestamp, name: &str) -> Vec<u8> {
    let mut out = object_prefix(kind, key);
    out.extend_from_slice(&ts(at));
    out.extend_from_slice(name.as_bytes());
    out
}

/// The final raw string of an `incidents_by_object` key found under `prefix`.
pub(crate) fn object_name_key_name(prefix_len: usize, b: &[u8]) -> Option<String> {
    String::from_utf8(b.get(prefix_len + TS_LEN..)?.to_vec()).ok()
}

/// A key of a per-parent log (`incident_changes`, `deliveries`):
/// `parent:str at:ts seq:u64`.
pub(crate) fn log_key(parent: &str, at: Timestamp, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 2 + TS_LEN + U64_LEN);
    push_str(&mut out, parent.as_bytes());
    out.extend_from_slice(&ts(at));
    out.extend_from_slice(&u64_key(seq));
    out
}

/// A `notifications_by_incident` key: `incident_id:str created_at:ts notification_id` (raw).
pub(crate) fn parent_time_name_key(parent: &str, at: Timestamp, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 2 + TS_LEN + name.len());
    push_str(&mut out, parent.as_bytes());
    out.extend_from_slice(&ts(at));
    out.extend_from_slice(name.as_bytes());
    out
}

/// A `watch_state` key: `resource:str object_key` (raw, final).
pub(crate) fn parent_name_key(parent: &str, name: &str) -> Vec<u8> {
    let mut out = str_prefix(parent);
    out.extend_from_slice(name.as_bytes());
    out
}

/// A `watch_state_log` key: `resource:str seq:u64` (the blocks of a resource in order).
pub(crate) fn watch_log_key(resource: &str, seq: u64) -> Vec<u8> {
    let mut out = str_prefix(resource);
    out.extend_from_slice(&u64_key(seq));
    out
}

/// The escaped, terminated form of one string: the prefix of every key under that parent.
pub(crate) fn str_prefix(parent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 2);
    push_str(&mut out, parent.as_bytes());
    out
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is empty or all `0xFF`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Key bounds for the entries under `prefix` whose next 12 bytes are a timestamp in
/// `since..=until` (either end open when `None`).
pub(crate) fn time_range(
    prefix: &[u8],
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lower = match since {
        Some(s) => {
            let mut k = prefix.to_vec();
            k.extend_from_slice(&ts(s));
            Bound::Included(k)
        }
        None => Bound::Included(prefix.to_vec()),
    };
    let upper = match until {
        Some(u) => {
            let mut k = prefix.to_vec();
            k.extend_from_slice(&ts(u));
            prefix_end(&k).map_or(Bound::Unbounded, Bound::Excluded)
        }
        None => prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_ts() -> impl Strategy<Value = Timestamp> {
        let min = Timestamp::MIN.as_nanosecond();
        let max = Timestamp::MAX.as_nanosecond();
        prop_oneof![
            // anywhere in jiff's range
            (min..=max).prop_map(|n| Timestamp::from_nanosecond(n).unwrap()),
            // around the epoch, where the sign flips
            (-5_000_000_000i128..5_000_000_000i128)
                .prop_map(|n| Timestamp::from_nanosecond(n).unwrap()),
            Just(Timestamp::MIN),
            Just(Timestamp::MAX),
            Just(Timestamp::UNIX_EPOCH),
        ]
    }

    fn any_text() -> impl Strategy<Value = String> {
        // Short strings over an alphabet rich in the bytes that matter: NUL (the escape),
        // 0x01 (the terminator's second byte), '/', and a non-ASCII char (0xFF-ish bytes).
        proptest::collection::vec(
            prop_oneof![
                Just('\u{0}'),
                Just('\u{1}'),
                Just('/'),
                Just('a'),
                Just('b'),
                Just('ÿ'),
                any::<char>(),
            ],
            0..6,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn any_object_key() -> impl Strategy<Value = ObjectRecordKey> {
        (any_text(), any_text(), any_ts(), any::<u64>())
            .prop_map(|(kind, key, at, id)| ObjectRecordKey { kind, key, at, id })
    }

    proptest! {
        #[test]
        fn ts_round_trips(t in any_ts()) {
            prop_assert_eq!(decode_ts(&ts(t)), Some(t));
        }

        #[test]
        fn ts_order_preserved(a in any_ts(), b in any_ts()) {
            prop_assert_eq!(ts(a).cmp(&ts(b)), a.cmp(&b));
        }

        #[test]
        fn str_round_trips(s in proptest::collection::vec(any::<u8>(), 0..16),
                           tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut b = Vec::new();
            push_str(&mut b, &s);
            b.extend_from_slice(&tail);
            let (back, rest) = take_str(&b).unwrap();
            prop_assert_eq!(back, s);
            prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn str_order_preserved(a in proptest::collection::vec(any::<u8>(), 0..8),
                               b in proptest::collection::vec(any::<u8>(), 0..8)) {
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            push_str(&mut ea, &a);
            push_str(&mut eb, &b);
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn object_key_round_trips(k in any_object_key()) {
            prop_assert_eq!(ObjectRecordKey::decode(&k.encode()), Some(k));
        }

        #[test]
        fn object_key_order_preserved(a in any_object_key(), b in any_object_key()) {
            // the derived Ord compares (kind, key, at, id) in that order
            prop_assert_eq!(a.encode().cmp(&b.encode()), a.cmp(&b));
        }

        #[test]
        fn object_prefix_matches_only_its_object(a in any_object_key(), b in any_object_key()) {
            let prefix = record_object_prefix(&a.kind, &a.key);
            let same = a.kind == b.kind && a.key == b.key;
            prop_assert_eq!(b.encode().starts_with(&prefix), same);
        }

        #[test]
        fn time_range_selects_exactly_the_window(
            k in any_object_key(), since in proptest::option::of(any_ts()),
            until in proptest::option::of(any_ts())) {
            let prefix = record_object_prefix(&k.kind, &k.key);
            let (lo, hi) = time_range(&prefix, since, until);
            let key = k.encode();
            let inside = (lo.as_ref(), hi.as_ref());
            let contained = std::ops::RangeBounds::<Vec<u8>>::contains(&inside, &key);
            let expected = since.is_none_or(|s| k.at >= s) && until.is_none_or(|u| k.at <= u);
            prop_assert_eq!(contained, expected);
        }

        #[test]
        fn block_keys_round_trip_and_order_by_id(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(decode_block_key(&block_key(a)), Some(a));
            prop_assert_eq!(block_key(a).cmp(&block_key(b)), a.cmp(&b));
        }

        #[test]
        fn block_time_keys_round_trip_and_order(a in any_ts(), ia in any::<u64>(),
                                                b in any_ts(), ib in any::<u64>()) {
            prop_assert_eq!(decode_block_time_key(&block_time_key(a, ia)), Some((a, ia)));
            prop_assert_eq!(
                block_time_key(a, ia).cmp(&block_time_key(b, ib)),
                (a, ia).cmp(&(b, ib))
            );
            // the scan start for `since` admits exactly the blocks ending at or after it
            let start = block_time_start(Some(b));
            prop_assert_eq!(block_time_key(a, ia).as_slice() >= start.as_slice(), a >= b);
            prop_assert!(block_time_key(a, ia).as_slice() >= block_time_start(None).as_slice());
        }

        #[test]
        fn record_key_spaces_never_mix(k in any_object_key(), id in any::<u64>(), at in any_ts()) {
            // the three kinds of entries of the records tree are told apart by their tag
            let object = k.encode();
            let block = block_key(id);
            let time = block_time_key(at, id);
            prop_assert_eq!(decode_block_key(&object), None);
            prop_assert_eq!(decode_block_time_key(&object), None);
            prop_assert_eq!(ObjectRecordKey::decode(&block), None);
            prop_assert_eq!(ObjectRecordKey::decode(&time), None);
            prop_assert_eq!(decode_block_key(&time), None);
            prop_assert_eq!(decode_block_time_key(&block), None);
            // every block key sorts within the block range, below the object and time entries
            prop_assert!(block.as_slice() <= block_key(u64::MAX).as_slice());
            prop_assert!(block.as_slice() < object.as_slice());
            prop_assert!(object.as_slice() < time.as_slice());
        }

        #[test]
        fn time_name_key_round_trips(a in any_ts(), name in any_text()) {
            prop_assert_eq!(decode_time_name_key(&time_name_key(a, &name)), Some((a, name)));
        }

        #[test]
        fn object_name_key_yields_name(kind in any_text(), key in any_text(), at in any_ts(),
                                       name in any_text()) {
            let prefix = object_prefix(&kind, &key);
            let k = object_name_key(&kind, &key, at, &name);
            prop_assert!(k.starts_with(&prefix));
            prop_assert_eq!(object_name_key_name(prefix.len(), &k), Some(name));
        }

        #[test]
        fn log_keys_group_by_parent_and_order_by_time(pa in any_text(), pb in any_text(),
                                                      a in any_ts(), b in any_ts(),
                                                      sa in any::<u64>(), sb in any::<u64>()) {
            let (ka, kb) = (log_key(&pa, a, sa), log_key(&pb, b, sb));
            prop_assert_eq!(ka.cmp(&kb), (pa.as_bytes(), a, sa).cmp(&(pb.as_bytes(), b, sb)));
            prop_assert_eq!(kb.starts_with(&str_prefix(&pa)), pa == pb);
        }

        #[test]
        fn watch_log_keys_group_by_resource_and_order_by_seq(ra in any_text(), rb in any_text(),
                                                             sa in any::<u64>(), sb in any::<u64>()) {
            let (ka, kb) = (watch_log_key(&ra, sa), watch_log_key(&rb, sb));
            prop_assert_eq!(ka.cmp(&kb), (ra.as_bytes(), sa).cmp(&(rb.as_bytes(), sb)));
            prop_assert_eq!(kb.starts_with(&str_prefix(&ra)), ra == rb);
            prop_assert_eq!(decode_u64(&ka[str_prefix(&ra).len()..]), Some(sa));
        }
    }

    #[test]
    fn pre_epoch_sorts_before_epoch() {
        let before = Timestamp::from_nanosecond(-1).unwrap();
        assert!(ts(before) < ts(Timestamp::UNIX_EPOCH));
        assert_eq!(decode_ts(&ts(before)), Some(before));
    }

    #[test]
    fn separator_is_escaped() {
        let mut b = Vec::new();
        push_str(&mut b, b"a\0b");
        assert_eq!(b, b"a\0\xFFb\0\x01");
        assert_eq!(take_str(b"a\0\x02"), None, "invalid escape");
        assert_eq!(take_str(b"abc"), None, "unterminated");
    }

    #[test]
    fn prefix_end_skips_ff() {
        assert_eq!(prefix_end(b"a\xFF"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xFF\xFF"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn bad_lengths_rejected() {
        assert_eq!(decode_ts(&[0; 11]), None);
        assert_eq!(decode_ts(&[0; 13]), None);
        assert_eq!(decode_u64(&[0; 7]), None);
        assert_eq!(ObjectRecordKey::decode(b"Pod\0\x01x\0\x01"), None);
    }
}
