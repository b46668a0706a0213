//! In-memory object store: objects per resource, the global resourceVersion counter,
//! a bounded per-resource change history, and watch fan-out.
//!
//! Every write (create/update/delete) takes the store lock, bumps one global, strictly
//! increasing resourceVersion, stamps it on the object, appends a [`Change`] to the
//! resource's history (dropping the oldest beyond `history_limit`) and pushes it to all
//! registered watchers — so programmatic and HTTP mutations share one code path.
//!
//! Objects are kept as compact core/v1 JSON *without* `kind`/`apiVersion`
//! ([`StoredObject`], a cheaply clonable byte buffer): a parsed `serde_json::Value` takes
//! 7–8 times the memory of its JSON text, which matters for a 200,000-pod cluster. A
//! history entry shares the bytes of the object version it records, and snapshots,
//! list pages and watch backlogs clone only reference-counted handles.
//! Keys are `namespace/name` (or `name`), which sorts like the apiserver's etcd keys.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::SimError;
use crate::objects;
use crate::resource::Resource;

/// Type of a stored change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Object created.
    Added,
    /// Object updated.
    Modified,
    /// Object deleted.
    Deleted,
}

impl ChangeType {
    /// Watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One version of a stored object: its compact core/v1 JSON (no `kind`/`apiVersion`)
/// and the resourceVersion stamped into it. Clones share the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    rv: u64,
    json: Bytes,
}

impl StoredObject {
    /// Serialize `object` (which must already carry `metadata.resourceVersion == rv`).
    fn encode(object: &Value, rv: u64) -> StoredObject {
        // Serialising a `Value` cannot fail (string keys only).
        let mut json = serde_json::to_vec(object).unwrap_or_else(|_| b"{}".to_vec());
        // The serializer grows its buffer by doubling; keep only what is used.
        json.shrink_to_fit();
        StoredObject {
            rv,
            json: Bytes::from(json),
        }
    }

    /// resourceVersion of this object version.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Compact JSON of the object in its stored core/v1 shape.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// Parse the object (it was serialised by the store, so this cannot fail in
    /// practice; a corrupt buffer would yield `null`).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// One committed write.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion assigned to this write.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeType,
    /// Storage key of the object (`namespace/name` or `name`).
    pub key: Arc<str>,
    /// Object after the write (for deletes: the last state, stamped with the delete's RV).
    pub object: StoredObject,
    /// Object before the write (`None` for creates).
    pub prev: Option<StoredObject>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic ADDED events for every current object, then live changes.
    State,
    /// Every change with resourceVersion greater than this one.
    After(u64),
}

/// A registered watch: the backlog to send first and the live channel.
#[derive(Debug)]
pub struct WatchHandle {
    /// Events to send before anything from `rx` (synthetic ADDEDs or history replay).
    pub initial: Vec<Arc<Change>>,
    /// Live changes committed after registration.
    pub rx: mpsc::UnboundedReceiver<Arc<Change>>,
    /// Store resourceVersion at registration time.
    pub start_rv: u64,
}

/// A consistent view of one resource at a resourceVersion.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// resourceVersion the snapshot represents.
    pub rv: u64,
    /// `(key, object)` in key order.
    pub items: Vec<(Arc<str>, StoredObject)>,
}

/// Controls which system fields a create may keep from the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Keep caller-supplied `uid`/`creationTimestamp` (scenario seeding); HTTP creates never do.
    pub preserve_system_fields: bool,
}

/// Which part of an object an update may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The main resource: `status` changes are ignored for pods/nodes.
    Main,
    /// The `status` subresource: only `status` changes.
    Status,
}

#[derive(Debug, Default)]
struct ResourceState {
    objects: BTreeMap<Arc<str>, StoredObject>,
    history: VecDeque<Arc<Change>>,
    /// Every change with rv > compacted is in `history`.
    compacted: u64,
    watchers: Vec<mpsc::UnboundedSender<Arc<Change>>>,
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    history_limit: usize,
    resources: [ResourceState; 3],
}

/// The object store shared by the HTTP server and the programmatic API.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

/// Storage key of an object.
pub fn key(resource: Resource, namespace: Option<&str>, name: &str) -> String {
    match (resource.namespaced(), namespace) {
        (true, Some(ns)) => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Namespace part of a storage key (`None` for cluster-scoped keys).
pub fn key_namespace(key: &str) -> Option<&str> {
    key.split_once('/').map(|(ns, _)| ns)
}

/// Stand-in for `metadata.resourceVersion` in objects given to [`Store::create_encoded`].
pub const RV_PLACEHOLDER: &str = "@@herald-sim-resource-version@@";

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("just made it an object")
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just made it an object"),
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

fn strip_type_meta(obj: &mut Value) {
    if let Value::Object(m) = obj {
        m.remove("kind");
        m.remove("apiVersion");
    }
}

/// Object equality ignoring `metadata.resourceVersion`.
fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    meta_mut(&mut a).remove("resourceVersion");
    meta_mut(&mut b).remove("resourceVersion");
    a == b
}

impl Store {
    /// New empty store keeping at most `history_limit` changes per resource.
    pub fn new(history_limit: usize) -> Store {
        Store {
            inner: Mutex::new(Inner {
                rv: 0,
                history_limit: history_limit.max(1),
                resources: Default::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Oldest resourceVersion a watch/exact list of `resource` can start from.
    pub fn compacted_rv(&self, resource: Resource) -> u64 {
        self.lock().resources[resource.index()].compacted
    }

    /// Number of changes of `resource` kept for watch resumption (at most `history_limit`).
    pub fn history_len(&self, resource: Resource) -> usize {
        self.lock().resources[resource.index()].history.len()
    }

    /// Number of stored objects of `resource`.
    pub fn len(&self, resource: Resource) -> usize {
        self.lock().resources[resource.index()].objects.len()
    }

    /// True when no object of `resource` is stored.
    pub fn is_empty(&self, resource: Resource) -> bool {
        self.len(resource) == 0
    }

    /// Whether an object with this key is stored.
    pub fn contains(&self, resource: Resource, namespace: Option<&str>, name: &str) -> bool {
        self.lock().resources[resource.index()]
            .objects
            .contains_key(key(resource, namespace, name).as_str())
    }

    /// Storage keys of all objects of `resource`, in key order (no object is parsed).
    pub fn keys(&self, resource: Resource) -> Vec<Arc<str>> {
        self.lock().resources[resource.index()]
            .objects
            .keys()
            .cloned()
            .collect()
    }

    /// Namespaces that hold at least one pod or event (derived from keys).
    pub fn namespaces_in_use(&self) -> BTreeSet<String> {
        let inner = self.lock();
        let mut out = BTreeSet::new();
        for r in [Resource::Pods, Resource::Events] {
            let mut last: Option<&str> = None;
            for k in inner.resources[r.index()].objects.keys() {
                if let Some(ns) = key_namespace(k)
                    && last != Some(ns)
                {
                    out.insert(ns.to_string());
                    last = Some(ns);
                }
            }
        }
        out
    }

    /// Forget the change history of every resource, as an etcd compaction at the current
    /// revision does: afterwards a watch or an exact/continued list from any older
    /// resourceVersion gets `410 Expired`. Returns the compacted resourceVersion.
    pub fn compact(&self) -> u64 {
        let mut inner = self.lock();
        let rv = inner.rv;
        for st in &mut inner.resources {
            st.history.clear();
            st.compacted = rv;
        }
        tracing::info!(rv, "store compacted");
        rv
    }

    /// Create an object. `namespace` is the request namespace (namespaced resources).
    pub fn create(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        obj: Value,
        opts: CreateOptions,
    ) -> Result<Value, SimError> {
        self.create_stored(resource, namespace, obj, opts)
            .map(|(v, _)| v)
    }

    /// [`Store::create`], also returning the stored form (e.g. for its size).
    pub fn create_stored(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        mut obj: Value,
        opts: CreateOptions,
    ) -> Result<(Value, StoredObject), SimError> {
        strip_type_meta(&mut obj);
        let obj_ns = meta_str(&obj, "namespace").map(str::to_string);
        let ns = if resource.namespaced() {
            match (namespace, obj_ns.as_deref()) {
                (Some(req), Some(o)) if !o.is_empty() && o != req => {
                    return Err(SimError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ));
                }
                (Some(req), _) => Some(req.to_string()),
                (None, Some(o)) if !o.is_empty() => Some(o.to_string()),
                _ => Some("default".to_string()),
            }
        } else {
            None
        };
        let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", objects::random_suffix(5)),
                None => {
                    return Err(SimError::Invalid(format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        resource.kind()
                    )));
                }
            },
        };
        {
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), Value::String(name.clone()));
            match &ns {
                Some(ns) => {
                    meta.insert("namespace".into(), Value::String(ns.clone()));
                }
                None => {
                    meta.remove("namespace");
                }
            }
            meta.remove("resourceVersion");
            meta.remove("selfLink");
            let keep = opts.preserve_system_fields;
            if !keep || !meta.get("uid").is_some_and(Value::is_string) {
                meta.insert(
                    "uid".into(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
            }
            if !keep || !meta.get("creationTimestamp").is_some_and(Value::is_string) {
                meta.insert(
                    "creationTimestamp".into(),
                    Value::String(objects::now_rfc3339()),
                );
            }
            if !keep {
                meta.remove("deletionTimestamp");
                meta.remove("deletionGracePeriodSeconds");
            }
        }
        if resource == Resource::Pods {
            objects::default_pod(&mut obj);
        }
        let k: Arc<str> = Arc::from(key(resource, ns.as_deref(), &name));
        let mut inner = self.lock();
        if inner.resources[resource.index()].objects.contains_key(&k) {
            return Err(SimError::AlreadyExists {
                resource: resource.plural().into(),
                name,
            });
        }
        Ok(inner.commit_stored(resource, ChangeType::Added, k, obj, None))
    }

    /// Create an object that was built, defaulted and serialised elsewhere (the scale
    /// population does that on worker threads): `json` is its compact core/v1 JSON with
    /// [`RV_PLACEHOLDER`] as `metadata.resourceVersion`, at byte offset `rv_at`, and `key`
    /// its storage key. The placeholder is replaced by the new resourceVersion.
    pub fn create_encoded(
        &self,
        resource: Resource,
        key: &str,
        json: &[u8],
        rv_at: usize,
    ) -> Result<StoredObject, SimError> {
        let marker = RV_PLACEHOLDER.as_bytes();
        if json.get(rv_at..rv_at + marker.len()) != Some(marker) {
            return Err(SimError::BadRequest(
                "pre-encoded object without a resourceVersion placeholder".into(),
            ));
        }
        let k: Arc<str> = Arc::from(key);
        let mut inner = self.lock();
        if inner.resources[resource.index()].objects.contains_key(&k) {
            return Err(SimError::AlreadyExists {
                resource: resource.plural().into(),
                name: key.rsplit('/').next().unwrap_or(key).into(),
            });
        }
        inner.rv += 1;
        let rv = inner.rv;
        let digits = rv.to_string();
        let mut out = Vec::with_capacity(json.len() - marker.len() + digits.len());
        out.extend_from_slice(&json[..rv_at]);
        out.extend_from_slice(digits.as_bytes());
        out.extend_from_slice(&json[rv_at + marker.len()..]);
        let stored = StoredObject {
            rv,
            json: Bytes::from(out),
        };
        inner.record(resource, ChangeType::Added, k, stored.clone(), None);
        Ok(stored)
    }

    /// Get one object.
    pub fn get(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.get_stored(resource, namespace, name)
            .map(|o| o.value())
    }

    /// Get one object without parsing it.
    pub fn get_stored(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, SimError> {
        let inner = self.lock();
        inner.resources[resource.index()]
            .objects
            .get(key(resource, namespace, name).as_str())
            .cloned()
            .ok_or_else(|| not_found(resource, name))
    }

    /// Replace an object (PUT). A non-empty `metadata.resourceVersion` must match.
    pub fn update(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
        new: Value,
        sub: Subresource,
    ) -> Result<Value, SimError> {
        self.mutate(resource, namespace, name, sub, |cur| {
            *cur = new;
            Ok(())
        })
    }

    /// Read-modify-write an object under the store lock (used by PATCH and scenarios).
    /// If the mutated object carries a `metadata.resourceVersion` different from the
    /// stored one the write fails with `Conflict`.
    pub fn mutate(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        f: impl FnOnce(&mut Value) -> Result<(), SimError>,
    ) -> Result<Value, SimError> {
        let k = key(resource, namespace, name);
        let mut inner = self.lock();
        let (k, stored) = inner.resources[resource.index()]
            .objects
            .get_key_value(k.as_str())
            .map(|(k, v)| (k.clone(), v.clone()))
            .ok_or_else(|| not_found(resource, name))?;
        let existing = stored.value();
        let mut candidate = existing.clone();
        f(&mut candidate)?;
        strip_type_meta(&mut candidate);
        let cur_rv = meta_str(&existing, "resourceVersion").unwrap_or("");
        if let Some(rv) = meta_str(&candidate, "resourceVersion")
            && !rv.is_empty()
            && rv != cur_rv
        {
            return Err(SimError::Conflict {
                resource: resource.plural().into(),
                name: name.into(),
            });
        }
        if let Some(n) = meta_str(&candidate, "name")
            && n != name
        {
            return Err(SimError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let mut result = match sub {
            Subresource::Status => {
                let mut r = existing.clone();
                match candidate.get("status") {
                    Some(s) => r["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut r {
                            m.remove("status");
                        }
                    }
                }
                r
            }
            Subresource::Main => {
                let mut r = candidate;
                if resource != Resource::Events {
                    match existing.get("status") {
                        Some(s) => r["status"] = s.clone(),
                        None => {
                            if let Value::Object(m) = &mut r {
                                m.remove("status");
                            }
                        }
                    }
                }
                r
            }
        };
        // System fields are owned by the server.
        {
            let meta = meta_mut(&mut result);
            for field in ["uid", "creationTimestamp", "namespace", "name"] {
                match meta_str(&existing, field) {
                    Some(v) => {
                        meta.insert(field.into(), Value::String(v.to_string()));
                    }
                    None => {
                        meta.remove(field);
                    }
                }
            }
        }
        if same_ignoring_rv(&result, &existing) {
            return Ok(existing);
        }
        Ok(inner.commit(resource, ChangeType::Modified, k, result, Some(stored)))
    }

    /// Delete an object, returning its last state.
    pub fn delete(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        let k = key(resource, namespace, name);
        let mut inner = self.lock();
        let (k, stored) = inner.resources[resource.index()]
            .objects
            .get_key_value(k.as_str())
            .map(|(k, v)| (k.clone(), v.clone()))
            .ok_or_else(|| not_found(resource, name))?;
        let last = stored.value();
        Ok(inner.commit(resource, ChangeType::Deleted, k, last, Some(stored)))
    }

    /// Snapshot of `resource` now (`exact == None`) or exactly at resourceVersion `exact`.
    pub fn snapshot(&self, resource: Resource, exact: Option<u64>) -> Result<Snapshot, SimError> {
        self.snapshot_range(resource, exact, None, None)
    }

    /// Like [`Store::snapshot`] but only keys `>= from` that start with `prefix` (both
    /// optional), so a page of a large list does not copy the whole key space.
    pub fn snapshot_range(
        &self,
        resource: Resource,
        exact: Option<u64>,
        from: Option<&str>,
        prefix: Option<&str>,
    ) -> Result<Snapshot, SimError> {
        let inner = self.lock();
        let st = &inner.resources[resource.index()];
        let lower = match (from, prefix) {
            (Some(f), Some(p)) => Some(if f > p { f } else { p }),
            (f, p) => f.or(p),
        };
        let in_range =
            |k: &str| lower.is_none_or(|l| k >= l) && prefix.is_none_or(|p| k.starts_with(p));
        let range = || {
            let lb = match lower {
                Some(l) => Bound::Included(l),
                None => Bound::Unbounded,
            };
            st.objects
                .range::<str, _>((lb, Bound::Unbounded))
                .take_while(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
        };
        let Some(at) = exact else {
            return Ok(Snapshot {
                rv: inner.rv,
                items: range().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
        };
        if at > inner.rv {
            return Err(SimError::TooLargeResourceVersion {
                requested: at,
                current: inner.rv,
            });
        }
        if at < st.compacted {
            return Err(SimError::Expired(
                "The resourceVersion for the provided list is too old.".into(),
            ));
        }
        // Undo, newest first, every change after `at` (only for keys in range).
        let mut overrides: BTreeMap<Arc<str>, Option<StoredObject>> = BTreeMap::new();
        for change in st.history.iter().rev().take_while(|c| c.rv > at) {
            if !in_range(&change.key) {
                continue;
            }
            let before = match change.kind {
                ChangeType::Added => None,
                ChangeType::Modified | ChangeType::Deleted => change.prev.clone(),
            };
            overrides.insert(change.key.clone(), before);
        }
        let mut objects: BTreeMap<Arc<str>, StoredObject> = range()
            .filter(|(k, _)| !overrides.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in overrides {
            if let Some(v) = v {
                objects.insert(k, v);
            }
        }
        Ok(Snapshot {
            rv: at,
            items: objects.into_iter().collect(),
        })
    }

    /// Register a watch on `resource`.
    pub fn watch(&self, resource: Resource, start: WatchStart) -> Result<WatchHandle, SimError> {
        let mut inner = self.lock();
        let rv = inner.rv;
        let st = &mut inner.resources[resource.index()];
        let initial: Vec<Arc<Change>> = match start {
            WatchStart::State => st
                .objects
                .iter()
                .map(|(k, o)| {
                    Arc::new(Change {
                        rv: o.rv,
                        kind: ChangeType::Added,
                        key: k.clone(),
                        object: o.clone(),
                        prev: None,
                    })
                })
                .collect(),
            WatchStart::After(from) => {
                if from < st.compacted {
                    return Err(SimError::Expired(format!(
                        "too old resource version: {from} ({})",
                        st.compacted
                    )));
                }
                st.history.iter().filter(|c| c.rv > from).cloned().collect()
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        st.watchers.push(tx);
        Ok(WatchHandle {
            initial,
            rx,
            start_rv: rv,
        })
    }

    /// Number of live watchers on `resource` (closed ones are pruned on the next write).
    pub fn watcher_count(&self, resource: Resource) -> usize {
        self.lock().resources[resource.index()]
            .watchers
            .iter()
            .filter(|w| !w.is_closed())
            .count()
    }
}

fn not_found(resource: Resource, name: &str) -> SimError {
    SimError::NotFound {
        resource: resource.plural().into(),
        name: name.into(),
    }
}

impl Inner {
    /// Stamp the next resourceVersion on `object`, store it, record the change and fan
    /// it out. Returns the object as stored.
    fn commit(
        &mut self,
        resource: Resource,
        kind: ChangeType,
        key: Arc<str>,
        object: Value,
        prev: Option<StoredObject>,
    ) -> Value {
        self.commit_stored(resource, kind, key, object, prev).0
    }

    /// [`Inner::commit`], also returning the stored form.
    fn commit_stored(
        &mut self,
        resource: Resource,
        kind: ChangeType,
        key: Arc<str>,
        mut object: Value,
        prev: Option<StoredObject>,
    ) -> (Value, StoredObject) {
        self.rv += 1;
        let rv = self.rv;
        set_rv(&mut object, rv);
        let stored = StoredObject::encode(&object, rv);
        self.record(resource, kind, key, stored.clone(), prev);
        (object, stored)
    }

    /// Store (or remove) one new object version, append it to the history (dropping the
    /// oldest beyond the limit) and send it to the watchers.
    fn record(
        &mut self,
        resource: Resource,
        kind: ChangeType,
        key: Arc<str>,
        stored: StoredObject,
        prev: Option<StoredObject>,
    ) {
        let rv = stored.rv;
        let limit = self.history_limit;
        let st = &mut self.resources[resource.index()];
        match kind {
            ChangeType::Deleted => {
                st.objects.remove(&key);
            }
            _ => {
                st.objects.insert(key.clone(), stored.clone());
            }
        }
        let change = Arc::new(Change {
            rv,
            kind,
            key,
            object: stored,
            prev,
        });
        st.history.push_back(change.clone());
        while st.history.len() > limit {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.rv;
            }
        }
        st.watchers.retain(|w| w.send(change.clone()).is_ok());
        tracing::trace!(
            resource = resource.plural(),
            rv,
            kind = kind.as_str(),
            "committed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    }

    fn rv_of(v: &Value) -> u64 {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn resource_version_strictly_increases_across_resources() {
        let s = Store::new(100);
        let a = s
            .create(
                Resource::Pods,
                Some("default"),
                pod("a"),
                CreateOptions::default(),
            )
            .unwrap();
        let n = s
            .create(
                Resource::Nodes,
                None,
                json!({"metadata": {"name": "n"}}),
                CreateOptions::default(),
            )
            .unwrap();
        let a2 = s
            .mutate(
                Resource::Pods,
                Some("default"),
                "a",
                Subresource::Main,
                |o| {
                    o["metadata"]["labels"] = json!({"x": "y"});
                    Ok(())
                },
            )
            .unwrap();
        assert!(rv_of(&a) < rv_of(&n) && rv_of(&n) < rv_of(&a2));
        assert_eq!(s.current_rv(), rv_of(&a2));
        assert!(a["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(
            a["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert!(n["metadata"].get("namespace").is_none());
    }

    #[test]
    fn no_op_update_does_not_bump() {
        let s = Store::new(10);
        let a = s
            .create(
                Resource::Pods,
                Some("default"),
                pod("a"),
                CreateOptions::default(),
            )
            .unwrap();
        let same = s
            .mutate(
                Resource::Pods,
                Some("default"),
                "a",
                Subresource::Main,
                |_| Ok(()),
            )
            .unwrap();
        assert_eq!(rv_of(&a), rv_of(&same));
        assert_eq!(s.current_rv(), rv_of(&a));
    }

    #[test]
    fn stale_update_conflicts() {
        let s = Store::new(10);
        let a = s
            .create(
                Resource::Pods,
                Some("default"),
                pod("a"),
                CreateOptions::default(),
            )
            .unwrap();
        let mut stale = a.clone();
        s.mutate(
            Resource::Pods,
            Some("default"),
            "a",
            Subresource::Main,
            |o| {
                o["metadata"]["labels"] = json!({"v": "1"});
                Ok(())
            },
        )
        .unwrap();
        stale["metadata"]["labels"] = json!({"v": "2"});
        let err = s
            .update(
                Resource::Pods,
                Some("default"),
                "a",
                stale,
                Subresource::Main,
            )
            .unwrap_err();
        assert!(matches!(err, SimError::Conflict { .. }));
    }

    #[test]
    fn status_subresource_only_changes_status() {
        let s = Store::new(10);
        s.create(
            Resource::Pods,
            Some("default"),
            pod("a"),
            CreateOptions::default(),
        )
        .unwrap();
        let out = s
            .mutate(
                Resource::Pods,
                Some("default"),
                "a",
                Subresource::Status,
                |o| {
                    o["status"]["phase"] = json!("Running");
                    o["metadata"]["labels"] = json!({"sneaky": "yes"});
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(out["status"]["phase"], "Running");
        assert!(out["metadata"].get("labels").is_none());
        let out = s
            .mutate(
                Resource::Pods,
                Some("default"),
                "a",
                Subresource::Main,
                |o| {
                    o["status"]["phase"] = json!("Failed");
                    o["metadata"]["labels"] = json!({"ok": "yes"});
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(out["metadata"]["labels"]["ok"], "yes");
    }

    #[test]
    fn history_window_and_expired_watch() {
        let s = Store::new(3);
        for i in 0..6 {
            s.create(
                Resource::Pods,
                Some("default"),
                pod(&format!("p{i}")),
                CreateOptions::default(),
            )
            .unwrap();
        }
        // rvs 1..=6, history keeps 4,5,6 -> compacted = 3
        assert_eq!(s.compacted_rv(Resource::Pods), 3);
        let h = s.watch(Resource::Pods, WatchStart::After(3)).unwrap();
        assert_eq!(
            h.initial.iter().map(|c| c.rv).collect::<Vec<_>>(),
            vec![4, 5, 6]
        );
        let err = s.watch(Resource::Pods, WatchStart::After(2)).unwrap_err();
        assert_eq!(err.to_string(), "too old resource version: 2 (3)");
        assert_eq!(err.code(), 410);
    }

    #[test]
    fn snapshot_reconstructs_past_state() {
        let s = Store::new(100);
        for n in ["a", "b", "c"] {
            s.create(
                Resource::Pods,
                Some("default"),
                pod(n),
                CreateOptions::default(),
            )
            .unwrap();
        }
        let at = s.current_rv();
        s.delete(Resource::Pods, Some("default"), "b").unwrap();
        s.create(
            Resource::Pods,
            Some("default"),
            pod("d"),
            CreateOptions::default(),
        )
        .unwrap();
        s.mutate(
            Resource::Pods,
            Some("default"),
            "a",
            Subresource::Main,
            |o| {
                o["metadata"]["labels"] = json!({"changed": "yes"});
                Ok(())
            },
        )
        .unwrap();
        let snap = s.snapshot(Resource::Pods, Some(at)).unwrap();
        let names: Vec<&str> = snap.items.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, vec!["default/a", "default/b", "default/c"]);
        assert!(snap.items[0].1.value()["metadata"].get("labels").is_none());
        let now = s.snapshot(Resource::Pods, None).unwrap();
        assert_eq!(now.items.len(), 3);
        assert!(s.snapshot(Resource::Pods, Some(999)).is_err());
    }

    #[test]
    fn pre_encoded_objects_get_their_resource_version_spliced_in() {
        let s = Store::new(10);
        s.create(
            Resource::Pods,
            Some("default"),
            pod("a"),
            CreateOptions::default(),
        )
        .unwrap();
        let json = format!(
            r#"{{"metadata":{{"name":"b","namespace":"default","resourceVersion":"{RV_PLACEHOLDER}"}}}}"#
        );
        let at = json.find(RV_PLACEHOLDER).unwrap();
        let mut h = s.watch(Resource::Pods, WatchStart::After(1)).unwrap();
        let stored = s
            .create_encoded(Resource::Pods, "default/b", json.as_bytes(), at)
            .unwrap();
        assert_eq!(stored.rv(), 2);
        assert_eq!(
            stored.json().as_ref(),
            br#"{"metadata":{"name":"b","namespace":"default","resourceVersion":"2"}}"#
        );
        assert_eq!(
            rv_of(&s.get(Resource::Pods, Some("default"), "b").unwrap()),
            2
        );
        assert_eq!(h.rx.try_recv().unwrap().kind, ChangeType::Added);
        let err = s
            .create_encoded(Resource::Pods, "default/b", json.as_bytes(), at)
            .unwrap_err();
        assert!(matches!(err, SimError::AlreadyExists { .. }));
        assert!(
            s.create_encoded(Resource::Pods, "default/c", b"{}", 0)
                .is_err()
        );
        assert!(s.contains(Resource::Pods, Some("default"), "b"));
        assert_eq!(s.len(Resource::Pods), 2);
    }

    #[test]
    fn compaction_forgets_history() {
        let s = Store::new(100);
        for n in ["a", "b", "c"] {
            s.create(
                Resource::Pods,
                Some("default"),
                pod(n),
                CreateOptions::default(),
            )
            .unwrap();
        }
        assert_eq!(s.history_len(Resource::Pods), 3);
        assert_eq!(s.compact(), 3);
        assert_eq!(s.history_len(Resource::Pods), 0);
        let err = s.watch(Resource::Pods, WatchStart::After(2)).unwrap_err();
        assert_eq!(err.to_string(), "too old resource version: 2 (3)");
        assert!(s.watch(Resource::Pods, WatchStart::After(3)).is_ok());
        assert_eq!(s.snapshot(Resource::Pods, Some(2)).unwrap_err().code(), 410);
        assert_eq!(s.snapshot(Resource::Pods, Some(3)).unwrap().items.len(), 3);
        assert_eq!(
            s.namespaces_in_use().into_iter().collect::<Vec<_>>(),
            vec!["default".to_string()]
        );
    }

    #[test]
    fn watch_receives_live_changes() {
        let s = Store::new(10);
        let mut h = s.watch(Resource::Pods, WatchStart::State).unwrap();
        assert!(h.initial.is_empty());
        s.create(
            Resource::Pods,
            Some("default"),
            pod("a"),
            CreateOptions::default(),
        )
        .unwrap();
        let c = h.rx.try_recv().unwrap();
        assert_eq!(c.kind, ChangeType::Added);
        s.delete(Resource::Pods, Some("default"), "a").unwrap();
        let c = h.rx.try_recv().unwrap();
        assert_eq!(c.kind, ChangeType::Deleted);
        assert_eq!(rv_of(&c.object.value()), 2);
    }
}
