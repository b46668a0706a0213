//! Value encoding: every value the store writes goes through [`encode`] and every value it reads
//! through [`decode`].
//!
//! A value is one format byte followed by the payload. Format [`FORMAT_JSON`] (1) is
//! `serde_json`: the domain types already derive serde, JSON is self-describing (so a record
//! written before `core` added an optional field still decodes) and readable when debugging a
//! database. It costs some space; a compact format (e.g. a schema'd binary encoding) can be added
//! later as format 2 without rewriting old values, since readers dispatch on the first byte.
//! Index entries carry everything in their keys and store an empty value.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// Format byte of JSON-encoded values.
pub(crate) const FORMAT_JSON: u8 = 1;

/// Encodes `value` for `tree`.
pub(crate) fn encode<T: Serialize>(tree: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    encode_into(tree, value, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value` for `tree` to `out` (many values into one buffer, without
/// an allocation each). On error `out` may hold part of it.
pub(crate) fn encode_into<T: Serialize>(
    tree: &'static str,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    out.push(FORMAT_JSON);
    serde_json::to_writer(&mut *out, value).map_err(|source| StoreError::Encode { tree, source })
}

/// Decodes a value of `tree` written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_JSON, payload)) => {
            serde_json::from_slice(payload).map_err(|source| StoreError::Decode { tree, source })
        }
        Some((&version, _)) => Err(StoreError::UnsupportedFormat {
            what: tree,
            version,
        }),
        None => Err(StoreError::UnsupportedFormat {
            what: tree,
            version: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_formats() {
        let bytes = encode("t", &vec![1u32, 2]).unwrap();
        assert_eq!(bytes[0], FORMAT_JSON);
        assert_eq!(decode::<Vec<u32>>("t", &bytes).unwrap(), vec![1, 2]);
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(matches!(
            decode::<Vec<u32>>("t", &future),
            Err(StoreError::UnsupportedFormat { version: 2, .. })
        ));
        assert!(decode::<Vec<u32>>("t", &[]).is_err());
    }
}
