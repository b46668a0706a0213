//! Decoding of API responses, leniently: a watch stream line by line, and a list response item
//! by item. Each object is decoded into a [`serde_json::Value`] first, then into its typed
//! k8s-openapi form; an object that does not decode (wrong types, no name) is reported as
//! [`Malformed`] with whatever identity is readable, so the caller can log it, count it and go
//! on.
//!
//! List items are handed to a callback one at a time while the body is parsed
//! ([`for_each_list_item`]), never collected into a typed list; only the raw body is held. A
//! later change can feed the same visitor from the response stream instead of a buffer.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// `ADDED`, `MODIFIED` or `DELETED`, with the raw object.
    Object {
        /// The event type.
        kind: ObjectEvent,
        /// The object, undecoded.
        object: Value,
    },
    /// `BOOKMARK`: only a resourceVersion.
    Bookmark {
        /// `object.metadata.resourceVersion`.
        resource_version: Option<String>,
    },
    /// `ERROR` (or a bare `Status` line): the watch failed.
    Error {
        /// Status `code` (410 for Expired).
        code: u16,
        /// Status `reason`.
        reason: String,
        /// Status `message`.
        message: String,
    },
    /// Any other type, ignored.
    Other(String),
}

/// The type of a watch event carrying an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectEvent {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

/// What is readable of an object that could not be decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `kind`, when readable.
    pub kind: Option<String>,
    /// `metadata.namespace`, when readable.
    pub namespace: Option<String>,
    /// `metadata.name`, when readable.
    pub name: Option<String>,
}

impl Identity {
    /// Reads what it can from a raw object.
    pub fn of(v: &Value) -> Self {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        Self {
            kind: text(v.get("kind")),
            namespace: text(v.pointer("/metadata/namespace")),
            name: text(v.pointer("/metadata/name")),
        }
    }
}

/// An object that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// What is readable of it.
    pub identity: Identity,
    /// Why it failed.
    pub error: String,
}

/// Parses one watch stream line. `Err` carries the JSON error of a line that is not a watch
/// event at all.
pub(crate) fn parse_frame(line: &[u8]) -> Result<Frame, String> {
    let mut v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if v.get("kind").and_then(Value::as_str) == Some("Status") && v.get("type").is_none() {
        return Ok(status_frame(&v));
    }
    let Some(kind) = v.get("type").and_then(Value::as_str).map(str::to_string) else {
        return Err("not a watch event (no \"type\")".to_string());
    };
    let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    Ok(match kind.as_str() {
        "ADDED" => Frame::Object {
            kind: ObjectEvent::Added,
            object,
        },
        "MODIFIED" => Frame::Object {
            kind: ObjectEvent::Modified,
            object,
        },
        "DELETED" => Frame::Object {
            kind: ObjectEvent::Deleted,
            object,
        },
        "BOOKMARK" => Frame::Bookmark {
            resource_version: resource_version(&object),
        },
        "ERROR" => status_frame(&object),
        _ => Frame::Other(kind),
    })
}

fn status_frame(status: &Value) -> Frame {
    let text = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Frame::Error {
        code: status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(0),
        reason: text("reason"),
        message: text("message"),
    }
}

/// `metadata.resourceVersion` of a raw object.
pub(crate) fn resource_version(v: &Value) -> Option<String> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Decodes a raw object into `T`. The object must also have a non-empty `metadata.name`.
pub(crate) fn decode<T: DeserializeOwned>(v: Value) -> Result<T, Malformed> {
    let identity = Identity::of(&v);
    if identity.name.as_deref().is_none_or(str::is_empty) {
        return Err(Malformed {
            identity,
            error: "metadata.name is missing".to_string(),
        });
    }
    serde_json::from_value(v).map_err(|e| Malformed {
        identity,
        error: e.to_string(),
    })
}

/// Parses a list response (`{"metadata":{"resourceVersion":..},"items":[..]}`), calling `f` with
/// each item as it is parsed; `f` returns `false` to stop (the parse then fails). Returns the
/// list's resourceVersion.
pub(crate) fn for_each_list_item<F: FnMut(Value) -> bool>(
    body: &[u8],
    f: F,
) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let rv = (&mut de).deserialize_map(ListVisitor { f })?;
    de.end()?;
    Ok(rv)
}

struct ListVisitor<F> {
    f: F,
}

impl<'de, F: FnMut(Value) -> bool> Visitor<'de> for ListVisitor<F> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes list object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rv = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    let meta: Value = map.next_value()?;
                    rv = resource_version(&serde_json::json!({ "metadata": meta }));
                }
                "items" => map.next_value_seed(ItemsSeed { f: &mut self.f })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(rv)
    }
}

struct ItemsSeed<'a, F> {
    f: &'a mut F,
}

impl<'de, F: FnMut(Value) -> bool> DeserializeSeed<'de> for ItemsSeed<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(Value) -> bool> Visitor<'de> for ItemsSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            if !(self.f)(item) {
                return Err(serde::de::Error::custom("stopped by the consumer"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn frames() {
        let f = parse_frame(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Frame::Bookmark {
                resource_version: Some("12".into())
            }
        );
        let f = parse_frame(br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#).unwrap();
        assert_eq!(
            f,
            Frame::Error {
                code: 410,
                reason: "Expired".into(),
                message: "too old".into()
            }
        );
        assert!(parse_frame(b"{not json").is_err());
        assert!(parse_frame(b"{\"object\":{}}").is_err());
    }

    #[test]
    fn malformed_object_keeps_identity() {
        let v = serde_json::json!({"kind":"Pod","metadata":{"name":"p","namespace":"ns"},"status":{"phase":7}});
        let err = decode::<Pod>(v).unwrap_err();
        assert_eq!(err.identity.name.as_deref(), Some("p"));
        assert_eq!(err.identity.namespace.as_deref(), Some("ns"));
        let v = serde_json::json!({"kind":"Pod","metadata":{}});
        assert!(decode::<Pod>(v).is_err());
    }

    #[test]
    fn list_items_one_by_one() {
        let body =
            br#"{"kind":"PodList","items":[{"a":1},{"b":2}],"metadata":{"resourceVersion":"7"}}"#;
        let mut seen = Vec::new();
        let rv = for_each_list_item(body, |v| {
            seen.push(v);
            true
        })
        .unwrap();
        assert_eq!(rv.as_deref(), Some("7"));
        assert_eq!(seen.len(), 2);
        let rv = for_each_list_item(br#"{"items":null,"metadata":{}}"#, |_| true).unwrap();
        assert_eq!(rv, None);
        assert!(for_each_list_item(b"[1]", |_| true).is_err());
    }
}
