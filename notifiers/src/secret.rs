//! Secrets in channel configuration: where a secret comes from ([`Secret`]), the resolved value
//! ([`SecretString`]) and header values that may be plain or secret ([`HeaderValueConfig`]).
//!
//! Secrets are never printed: `Debug` redacts them, and deserialization errors never echo the
//! offending text (serde's default messages quote unexpected strings, which could be a token
//! pasted in the wrong place).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::error::NotifyError;

/// Where a secret comes from. In YAML: `{ env: VAR }`, `{ file: /path }` or `{ value: "..." }`.
///
/// Prefer `env` or `file` (a mounted Kubernetes Secret); `value` puts the secret in the config
/// file itself and is discouraged. A plain string is rejected on purpose, so a secret is never
/// written inline by accident.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Read from this environment variable when the channel is built.
    Env(String),
    /// Read from this file (surrounding whitespace and a trailing newline are trimmed).
    File(PathBuf),
    /// Given inline in the config file (discouraged).
    Value(String),
}

impl Secret {
    /// Reads the secret's value. Fails when the variable is unset, the file is unreadable, or the
    /// value is empty. The error names the source, never the value.
    pub fn resolve(&self) -> Result<SecretString, NotifyError> {
        let value = match self {
            Secret::Env(var) => {
                std::env::var(var).map_err(|_| NotifyError::SecretEnvUnset { var: var.clone() })?
            }
            Secret::File(path) => std::fs::read_to_string(path).map_err(|source| {
                NotifyError::SecretFileUnreadable {
                    path: path.clone(),
                    source,
                }
            })?,
            Secret::Value(v) => v.clone(),
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(NotifyError::SecretEmpty {
                origin: self.origin(),
            });
        }
        Ok(SecretString(trimmed.to_string()))
    }

    /// Makes a relative `file:` path relative to `base` (the config file's directory).
    pub fn relative_to(&mut self, base: &std::path::Path) {
        if let Secret::File(p) = self
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// A description of where the secret comes from, safe to print.
    pub fn origin(&self) -> String {
        match self {
            Secret::Env(var) => format!("environment variable {var}"),
            Secret::File(path) => format!("file {}", path.display()),
            Secret::Value(_) => "inline value".to_string(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(var) => f.debug_tuple("Env").field(var).finish(),
            Secret::File(path) => f.debug_tuple("File").field(path).finish(),
            Secret::Value(_) => f.debug_tuple("Value").field(&Redacted).finish(),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(SecretVisitor { allow_plain: false })? {
            HeaderValueConfig::Secret(s) => Ok(s),
            // Unreachable: plain strings are rejected when `allow_plain` is false.
            HeaderValueConfig::Plain(_) => Err(de::Error::custom(EXPECTED_SECRET)),
        }
    }
}

/// A resolved secret value. `Debug` prints `[redacted]`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself. Only pass it to the place that needs it (an HTTP request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A header value in a channel's config: a plain string (`X-Team: sre`) or a [`Secret`]
/// (`Authorization: { env: OPS_TOKEN }`). `Debug` redacts both, since plain values sometimes
/// hold tokens too.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValueConfig {
    /// Given inline.
    Plain(String),
    /// Resolved like any other secret.
    Secret(Secret),
}

impl HeaderValueConfig {
    /// The value, with secrets resolved.
    pub fn resolve(&self) -> Result<SecretString, NotifyError> {
        match self {
            HeaderValueConfig::Plain(v) => Ok(SecretString(v.clone())),
            HeaderValueConfig::Secret(s) => s.resolve(),
        }
    }

    /// Whether the value is a secret (sent with the header marked sensitive).
    pub fn is_secret(&self) -> bool {
        matches!(self, HeaderValueConfig::Secret(_))
    }
}

impl fmt::Debug for HeaderValueConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValueConfig::Plain(_) => f.debug_tuple("Plain").field(&Redacted).finish(),
            HeaderValueConfig::Secret(s) => f.debug_tuple("Secret").field(s).finish(),
        }
    }
}

impl<'de> Deserialize<'de> for HeaderValueConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor { allow_plain: true })
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

const EXPECTED_SECRET: &str = "expected a secret: { env: VAR }, { file: /path } or { value: \"...\" } (plain strings are not accepted here)";

/// Parses `{ env | file | value: ... }` (and, for headers, a plain string) without ever quoting
/// the input in an error.
struct SecretVisitor {
    allow_plain: bool,
}

impl SecretVisitor {
    fn not_expected<E: de::Error>(&self) -> E {
        if self.allow_plain {
            E::custom("expected a string, { env: VAR }, { file: /path } or { value: \"...\" }")
        } else {
            E::custom(EXPECTED_SECRET)
        }
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = HeaderValueConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{ env: VAR }, { file: /path } or { value: \"...\" }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if self.allow_plain {
            Ok(HeaderValueConfig::Plain(v.to_string()))
        } else {
            Err(self.not_expected())
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(self.not_expected())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        // YAML `X-Retries: 3` is a number; accept it as a plain header value.
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(self.not_expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.not_expected())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.not_expected())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.not_expected())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Option<Secret> = None;
        while let Some(key) = map.next_key::<String>()? {
            let secret = match key.as_str() {
                "env" => Secret::Env(map.next_value::<String>()?),
                "file" => Secret::File(map.next_value::<PathBuf>()?),
                "value" => Secret::Value(
                    map.next_value::<PlainString>()
                        .map_err(|_| de::Error::custom("`value` must be a string"))?
                        .0,
                ),
                other => {
                    return Err(de::Error::unknown_field(other, &["env", "file", "value"]));
                }
            };
            if found.is_some() {
                return Err(de::Error::custom(
                    "a secret takes exactly one of `env`, `file` or `value`",
                ));
            }
            found = Some(secret);
        }
        found
            .map(HeaderValueConfig::Secret)
            .ok_or_else(|| de::Error::custom("a secret needs one of `env`, `file` or `value`"))
    }
}

/// A string deserialized without echoing it on error.
struct PlainString(String);

impl<'de> Deserialize<'de> for PlainString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(SecretVisitor { allow_plain: true })? {
            HeaderValueConfig::Plain(s) => Ok(PlainString(s)),
            HeaderValueConfig::Secret(_) => Err(de::Error::custom("expected a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_values() {
        let s = Secret::Value("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let r = s.resolve().unwrap();
        assert_eq!(format!("{r:?}"), "[redacted]");
        assert_eq!(r.expose(), "hunter2");
        let h = HeaderValueConfig::Plain("Bearer tok".into());
        assert!(!format!("{h:?}").contains("tok"));
    }

    #[test]
    fn parses_all_forms_and_never_echoes() {
        let s: Secret = serde_saphyr::from_str("env: FOO").unwrap();
        assert_eq!(s, Secret::Env("FOO".into()));
        let s: Secret = serde_saphyr::from_str("file: /run/x").unwrap();
        assert_eq!(s, Secret::File("/run/x".into()));
        let s: Secret = serde_saphyr::from_str("value: abc").unwrap();
        assert_eq!(s, Secret::Value("abc".into()));
        let h: HeaderValueConfig = serde_saphyr::from_str("sre").unwrap();
        assert_eq!(h, HeaderValueConfig::Plain("sre".into()));

        let err = serde_saphyr::from_str::<Secret>("https://hooks.example/T0KEN").unwrap_err();
        assert!(!err.to_string().contains("T0KEN"), "{err}");
        let err = serde_saphyr::from_str::<Secret>("{ env: A, value: s3cr3t }").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(serde_saphyr::from_str::<Secret>("{ vault: x }").is_err());
        assert!(serde_saphyr::from_str::<Secret>("{}").is_err());
    }

    #[test]
    fn resolve_errors_name_the_source_not_the_value() {
        let e = Secret::Env("HERALD_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("HERALD_TEST_SURELY_UNSET_VAR"));
        let e = Secret::File("/nonexistent/herald/secret".into())
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/herald/secret"));
        assert!(Secret::Value("  ".into()).resolve().is_err());

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "s3cr3t\n").unwrap();
        assert_eq!(Secret::File(p).resolve().unwrap().expose(), "s3cr3t");
    }
}
