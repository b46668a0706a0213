//! References to Kubernetes objects: enough to name an object in records, incidents and history
//! lookups, never the object itself.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::CoreError;

/// The kind of a referenced object. Pods and Nodes are watched directly; anything else appears
/// as the involved object of an Event (Deployment, Job, PersistentVolumeClaim, ...).
///
/// Serialized as its Kubernetes `kind` string (`"Pod"`, `"ReplicaSet"`). Deserialized from that,
/// or from `{"Other": "ReplicaSet"}`, the form stored records and incidents of earlier versions
/// hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// core/v1 Pod.
    Pod,
    /// core/v1 Node.
    Node,
    /// Any other kind, by its `kind` string.
    Other(String),
}

impl ObjectKind {
    /// The Kubernetes `kind` string.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectKind::Pod => "Pod",
            ObjectKind::Node => "Node",
            ObjectKind::Other(k) => k,
        }
    }

    /// Maps a Kubernetes `kind` string to an [`ObjectKind`].
    pub fn from_kind(kind: &str) -> Self {
        match kind {
            "Pod" => ObjectKind::Pod,
            "Node" => ObjectKind::Node,
            other => ObjectKind::Other(other.to_string()),
        }
    }
}

impl Serialize for ObjectKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ObjectKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl<'de> serde::de::Visitor<'de> for KindVisitor {
            type Value = ObjectKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes kind such as \"Pod\" or \"Deployment\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ObjectKind, E> {
                Ok(ObjectKind::from_kind(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ObjectKind, A::Error> {
                let Some(variant) = map.next_key::<String>()? else {
                    return Err(serde::de::Error::invalid_length(0, &self));
                };
                if variant != "Other" {
                    return Err(serde::de::Error::unknown_variant(&variant, &["Other"]));
                }
                let kind: String = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(2, &self));
                }
                Ok(ObjectKind::from_kind(&kind))
            }
        }
        d.deserialize_any(KindVisitor)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one Kubernetes object: kind, namespace (none for cluster-scoped objects), name
/// and, when known, uid (which tells apart two objects that had the same name at different times).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: ObjectKind,
    /// The namespace, or `None` for cluster-scoped objects such as Nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The object's uid, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    /// A reference to a Pod.
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: ObjectKind::Pod,
            namespace: Some(namespace.into()),
            name: name.into(),
            uid: None,
        }
    }

    /// A reference to a Node.
    pub fn node(name: impl Into<String>) -> Self {
        Self {
            kind: ObjectKind::Node,
            namespace: None,
            name: name.into(),
            uid: None,
        }
    }

    /// The same reference with a uid.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// `NAMESPACE/NAME` for namespaced objects, `NAME` otherwise. This is the key used for
    /// history lookups (`herald history pod NS/NAME`); it ignores the uid on purpose, so the
    /// history of a name spans the objects that carried it.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Parses `NAMESPACE/NAME` (or `NAME` for cluster-scoped kinds) into a reference of `kind`.
    pub fn parse_key(kind: ObjectKind, key: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::InvalidObjectKey(key.to_string());
        let (namespace, name) = match key.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, key.to_string()),
        };
        if name.is_empty() || name.contains('/') || namespace.as_deref().is_some_and(str::is_empty)
        {
            return Err(bad());
        }
        Ok(Self {
            kind,
            namespace,
            name,
            uid: None,
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.kind.as_str().to_ascii_lowercase(),
            self.key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_plain_strings_and_the_old_form_still_reads() {
        let kinds = [
            ObjectKind::Pod,
            ObjectKind::Node,
            ObjectKind::Other("ReplicaSet".into()),
        ];
        for k in &kinds {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(&serde_json::from_str::<ObjectKind>(&json).unwrap(), k);
        }
        // What records and incidents stored before hold.
        let old: ObjectKind = serde_json::from_str(r#"{"Other":"ReplicaSet"}"#).unwrap();
        assert_eq!(old, kinds[2]);
        let r: ObjectRef =
            serde_json::from_str(r#"{"kind":{"Other":"Job"},"namespace":"b","name":"n"}"#).unwrap();
        assert_eq!(r.kind, ObjectKind::Other("Job".into()));
        for bad in [
            r#"{"Deployment":"x"}"#,
            "{}",
            "7",
            r#"{"Other":"Job","x":1}"#,
        ] {
            assert!(serde_json::from_str::<ObjectKind>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let p = ObjectRef::pod("shop", "cart-1");
        assert_eq!(p.key(), "shop/cart-1");
        assert_eq!(
            ObjectRef::parse_key(ObjectKind::Pod, "shop/cart-1"),
            Ok(p.clone())
        );
        assert_eq!(p.to_string(), "pod/shop/cart-1");
        let n = ObjectRef::node("node-a");
        assert_eq!(ObjectRef::parse_key(ObjectKind::Node, "node-a"), Ok(n));
    }

    #[test]
    fn bad_keys_rejected() {
        for k in ["", "/x", "ns/", "a/b/c"] {
            assert!(ObjectRef::parse_key(ObjectKind::Pod, k).is_err(), "{k}");
        }
    }
}
