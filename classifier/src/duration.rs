//! Durations as written in the configuration (`30s`, `2m`, `1h 30m`, `PT30S`): parsing,
//! printing, and the serde adapter used by every duration field of [`crate::ClassifierConfig`].
//! Also the conversion from [`std::time::Duration`] to the signed durations timestamps use.

use std::time::Duration;

use jiff::SignedDuration;

use crate::ClassifierError;

/// Parses a non-negative duration written like `30s`, `2m`, `90 seconds`, `1h 30m` or ISO 8601
/// `PT30S`. Units larger than hours are not accepted (a "day" is ambiguous around DST).
pub fn parse_duration(input: &str) -> Result<Duration, ClassifierError> {
    let bad = |reason: String| ClassifierError::InvalidDuration {
        input: input.to_string(),
        reason,
    };
    let signed: SignedDuration = input
        .trim()
        .parse()
        .map_err(|e: jiff::Error| bad(e.to_string()))?;
    if signed.is_negative() {
        return Err(bad("durations must not be negative".to_string()));
    }
    Duration::try_from(signed).map_err(|e| bad(e.to_string()))
}

/// Formats a duration the way the configuration writes it, e.g. `30s`, `2m`, `1h 30m`.
pub(crate) fn format_duration(d: Duration) -> String {
    format!("{:#}", signed(d))
}

/// A std duration as a signed duration, saturating at the maximum.
pub(crate) fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// `#[serde(with = "crate::duration::serde_str")]` for [`Duration`] fields.
pub(crate) mod serde_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::duration::serde_opt")]` for `Option<Duration>` fields.
pub(crate) mod serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90 seconds"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("PT30S"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_nonsense_and_negatives() {
        for s in ["", "abc", "-5s", "5", "5 parsecs"] {
            assert!(parse_duration(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for secs in [0, 10, 30, 120, 300, 600, 5400] {
            let d = Duration::from_secs(secs);
            assert_eq!(
                parse_duration(&format_duration(d)),
                Ok(d),
                "{}",
                format_duration(d)
            );
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
