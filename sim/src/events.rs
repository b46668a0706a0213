//! Kubernetes Events: the two API views of one stored core/v1 Event, and an
//! event recorder that behaves like client-go's (`record.EventRecorder` naming and
//! aggregation of repeats into `count`/`lastTimestamp`, or `events.k8s.io` style
//! events as the scheduler emits them).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Most aggregation keys one recorder remembers, as client-go's event cache
/// (`maxLruCacheEntries`): a repeat of an event whose key was forgotten creates a new Event.
pub(crate) const MAX_EVENT_KEYS: usize = 4096;

/// The recorders' aggregation caches: per recorder (component and host, such as one node's
/// kubelet), aggregation key -> (namespace, Event name). Each keeps its [`MAX_EVENT_KEYS`] most
/// recently used keys (the least recently used go first, a quarter at a time, so trimming
/// costs O(1) per insert on average), so a simulator churning for days holds a bounded map, as
/// every real recorder does.
#[derive(Debug, Default)]
pub(crate) struct EventKeys {
    recorders: HashMap<String, RecorderKeys>,
}

/// One recorder's cache.
#[derive(Debug, Default)]
struct RecorderKeys {
    keys: HashMap<String, (String, String, u64)>,
    tick: u64,
}

impl EventKeys {
    /// The Event `recorder` last recorded under `key`, marked as used.
    pub(crate) fn get(&mut self, recorder: &str, key: &str) -> Option<(String, String)> {
        let r = self.recorders.get_mut(recorder)?;
        r.tick += 1;
        let tick = r.tick;
        r.keys.get_mut(key).map(|(ns, name, used)| {
            *used = tick;
            (ns.clone(), name.clone())
        })
    }

    /// Remembers the Event `recorder` recorded under `key`.
    pub(crate) fn insert(&mut self, recorder: &str, key: String, ns: String, name: String) {
        let r = self.recorders.entry(recorder.to_string()).or_default();
        r.tick += 1;
        r.keys.insert(key, (ns, name, r.tick));
        if r.keys.len() > MAX_EVENT_KEYS + MAX_EVENT_KEYS / 4 {
            let mut used: Vec<u64> = r.keys.values().map(|v| v.2).collect();
            used.sort_unstable();
            let cut = used[used.len() - MAX_EVENT_KEYS];
            r.keys.retain(|_, v| v.2 >= cut);
        }
    }

    /// Keys `recorder` remembers.
    #[cfg(test)]
    pub(crate) fn len(&self, recorder: &str) -> usize {
        self.recorders.get(recorder).map_or(0, |r| r.keys.len())
    }
}

/// Convert a stored core/v1 Event into its `events.k8s.io/v1` representation.
pub fn core_to_v1(core: &Value) -> Value {
    let get = |k: &str| core.get(k).cloned().unwrap_or(Value::Null);
    let non_empty = |k: &str| {
        core.get(k)
            .filter(|v| match v {
                Value::String(s) => !s.is_empty(),
                Value::Null => false,
                _ => true,
            })
            .cloned()
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!("Event"));
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("metadata".into(), get("metadata"));
    out.insert("eventTime".into(), get("eventTime"));
    if let Some(v) = non_empty("series") {
        out.insert("series".into(), v);
    }
    if let Some(v) = non_empty("reportingComponent") {
        out.insert("reportingController".into(), v);
    }
    if let Some(v) = non_empty("reportingInstance") {
        out.insert("reportingInstance".into(), v);
    }
    if let Some(v) = non_empty("action") {
        out.insert("action".into(), v);
    }
    if let Some(v) = non_empty("reason") {
        out.insert("reason".into(), v);
    }
    out.insert(
        "regarding".into(),
        core.get("involvedObject").cloned().unwrap_or(json!({})),
    );
    if let Some(v) = non_empty("related") {
        out.insert("related".into(), v);
    }
    if let Some(v) = non_empty("message") {
        out.insert("note".into(), v);
    }
    if let Some(v) = non_empty("type") {
        out.insert("type".into(), v);
    }
    out.insert(
        "deprecatedSource".into(),
        core.get("source").cloned().unwrap_or(json!({})),
    );
    out.insert("deprecatedFirstTimestamp".into(), get("firstTimestamp"));
    out.insert("deprecatedLastTimestamp".into(), get("lastTimestamp"));
    if let Some(c) = core
        .get("count")
        .and_then(Value::as_i64)
        .filter(|c| *c != 0)
    {
        out.insert("deprecatedCount".into(), json!(c));
    }
    Value::Object(out)
}

/// Convert an `events.k8s.io/v1` Event (as written by a client) into the stored core/v1 shape.
pub fn v1_to_core(v1: &Value) -> Value {
    let get = |k: &str| v1.get(k).cloned();
    let mut out = Map::new();
    out.insert(
        "metadata".into(),
        get("metadata").unwrap_or_else(|| json!({})),
    );
    out.insert(
        "involvedObject".into(),
        get("regarding").unwrap_or_else(|| json!({})),
    );
    for (from, to) in [("reason", "reason"), ("note", "message")] {
        if let Some(v) = get(from) {
            out.insert(to.into(), v);
        }
    }
    out.insert(
        "source".into(),
        get("deprecatedSource").unwrap_or_else(|| json!({})),
    );
    out.insert(
        "firstTimestamp".into(),
        get("deprecatedFirstTimestamp").unwrap_or(Value::Null),
    );
    out.insert(
        "lastTimestamp".into(),
        get("deprecatedLastTimestamp").unwrap_or(Value::Null),
    );
    if let Some(c) = get("deprecatedCount").filter(|c| c.as_i64().unwrap_or(0) != 0) {
        out.insert("count".into(), c);
    }
    if let Some(v) = get("type") {
        out.insert("type".into(), v);
    }
    out.insert("eventTime".into(), get("eventTime").unwrap_or(Value::Null));
    for k in ["series", "action", "related"] {
        if let Some(v) = get(k) {
            out.insert(k.into(), v);
        }
    }
    out.insert(
        "reportingComponent".into(),
        get("reportingController").unwrap_or_else(|| json!("")),
    );
    out.insert(
        "reportingInstance".into(),
        get("reportingInstance").unwrap_or_else(|| json!("")),
    );
    Value::Object(out)
}

/// Reference to the object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Kind (`Pod`, `Node`, `Job`, `Deployment`, ...).
    pub kind: String,
    /// apiVersion (`v1`, `apps/v1`, `batch/v1`).
    pub api_version: String,
    /// Namespace (`None` for cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// Reference to a core/v1 Pod.
    pub fn pod(namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// Reference to a core/v1 Node.
    pub fn node(name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Node".into(),
            api_version: "v1".into(),
            namespace: None,
            name: name.into(),
        }
    }

    /// Reference to any other (not stored) object.
    pub fn other(kind: &str, api_version: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            kind: kind.into(),
            api_version: api_version.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }
}

/// How an event is emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStyle {
    /// client-go `record.EventRecorder` (kubelet, controllers): `source`, timestamps, `count`.
    Recorder {
        /// `source.host` (kubelet node name), if any.
        host: Option<String>,
    },
    /// `events.k8s.io` API (scheduler): `eventTime`, `action`, `reportingInstance`.
    EventsApi {
        /// `action` (e.g. `Binding`).
        action: String,
        /// `reportingInstance` (e.g. `default-scheduler-node-a`).
        instance: String,
    },
}

/// An event to record; `{uid}` in `message` is replaced by the involved object's uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Involved object.
    pub regarding: ObjectRef,
    /// Container field path, e.g. `spec.containers{cart}`.
    pub field_path: Option<String>,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Reason (`BackOff`).
    pub reason: String,
    /// Message.
    pub message: String,
    /// Reporting component (`kubelet`, `node-controller`, `default-scheduler`).
    pub component: String,
    /// Emission style.
    pub style: EventStyle,
    /// Extra `metadata.annotations` (the kubelet annotates Evicted events).
    pub annotations: Option<Value>,
    /// Override for `involvedObject.uid` (the kubelet uses the node name for its node ref).
    pub uid_override: Option<String>,
}

impl EventSpec {
    /// A client-go recorder event.
    pub fn recorder(
        regarding: ObjectRef,
        type_: &str,
        reason: &str,
        message: impl Into<String>,
        component: &str,
        host: Option<&str>,
    ) -> EventSpec {
        EventSpec {
            regarding,
            field_path: None,
            type_: type_.into(),
            reason: reason.into(),
            message: message.into(),
            component: component.into(),
            style: EventStyle::Recorder {
                host: host.map(str::to_string),
            },
            annotations: None,
            uid_override: None,
        }
    }

    /// Set the container field path.
    pub fn container(mut self, container: &str) -> EventSpec {
        self.field_path = Some(format!("spec.containers{{{container}}}"));
        self
    }

    /// The recorder that emits it: its component and host (or instance), such as one node's
    /// kubelet; each has its own aggregation cache.
    pub(crate) fn recorder_key(&self) -> String {
        let host = match &self.style {
            EventStyle::Recorder { host } => host.as_deref().unwrap_or_default(),
            EventStyle::EventsApi { instance, .. } => instance.as_str(),
        };
        format!("{}/{host}", self.component)
    }

    /// Aggregation key (client-go `getEventKey`).
    pub(crate) fn aggregation_key(&self, uid: &str) -> String {
        let host = match &self.style {
            EventStyle::Recorder { host } => host.clone().unwrap_or_default(),
            EventStyle::EventsApi { instance, .. } => instance.clone(),
        };
        [
            self.component.as_str(),
            host.as_str(),
            self.regarding.kind.as_str(),
            self.regarding.namespace.as_deref().unwrap_or(""),
            self.regarding.name.as_str(),
            self.field_path.as_deref().unwrap_or(""),
            uid,
            self.regarding.api_version.as_str(),
            self.type_.as_str(),
            self.reason.as_str(),
            self.message.as_str(),
        ]
        .join("\u{1f}")
    }

    /// Build a fresh core/v1 Event (stored shape, no kind/apiVersion).
    pub(crate) fn build(&self, uid: &str, involved_rv: Option<&str>) -> Value {
        let now_ns = jiff::Timestamp::now().as_nanosecond();
        let namespace = self
            .regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let mut involved = json!({
            "kind": self.regarding.kind,
            "name": self.regarding.name,
            "uid": uid,
            "apiVersion": self.regarding.api_version,
        });
        if let Some(ns) = &self.regarding.namespace {
            involved["namespace"] = json!(ns);
        }
        if let Some(rv) = involved_rv {
            involved["resourceVersion"] = json!(rv);
        }
        if let Some(fp) = &self.field_path {
            involved["fieldPath"] = json!(fp);
        }
        let mut meta = json!({
            "name": format!("{}.{:x}", self.regarding.name, now_ns),
            "namespace": namespace,
        });
        if let Some(a) = &self.annotations {
            meta["annotations"] = a.clone();
        }
        let message = self.message.replace("{uid}", uid);
        match &self.style {
            EventStyle::Recorder { host } => {
                let now = crate::objects::now_rfc3339();
                let mut source = json!({"component": self.component});
                if let Some(h) = host {
                    source["host"] = json!(h);
                }
                json!({
                    "metadata": meta,
                    "involvedObject": involved,
                    "reason": self.reason,
                    "message": message,
                    "source": source,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "type": self.type_,
                    "eventTime": null,
                    "reportingComponent": "",
                    "reportingInstance": ""
                })
            }
            EventStyle::EventsApi { action, instance } => json!({
                "metadata": meta,
                "involvedObject": involved,
                "reason": self.reason,
                "message": message,
                "source": {},
                "firstTimestamp": null,
                "lastTimestamp": null,
                "type": self.type_,
                "eventTime": crate::objects::now_micro(),
                "action": action,
                "reportingComponent": self.component,
                "reportingInstance": instance
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_keep_the_most_recently_used_per_recorder() {
        let mut k = EventKeys::default();
        k.insert("kubelet/node-a", "hot".into(), "ns".into(), "hot.1".into());
        k.insert("kubelet/node-b", "k0".into(), "ns".into(), "other".into());
        for i in 0..3 * MAX_EVENT_KEYS {
            k.insert(
                "kubelet/node-a",
                format!("k{i}"),
                "ns".into(),
                format!("e{i}"),
            );
            // A key repeated all along stays, however many others come and go.
            assert_eq!(
                k.get("kubelet/node-a", "hot"),
                Some(("ns".into(), "hot.1".into()))
            );
            assert!(k.len("kubelet/node-a") <= MAX_EVENT_KEYS + MAX_EVENT_KEYS / 4);
        }
        assert!(k.len("kubelet/node-a") >= MAX_EVENT_KEYS);
        assert_eq!(
            k.get("kubelet/node-a", "k0"),
            None,
            "long unused: forgotten"
        );
        let last = 3 * MAX_EVENT_KEYS - 1;
        assert_eq!(
            k.get("kubelet/node-a", &format!("k{last}")),
            Some(("ns".into(), format!("e{last}")))
        );
        // Another recorder's cache is its own.
        assert_eq!(k.len("kubelet/node-b"), 1);
        assert_eq!(
            k.get("kubelet/node-b", "k0"),
            Some(("ns".into(), "other".into()))
        );
        assert_eq!(k.get("scheduler/", "k0"), None);
    }

    #[test]
    fn round_trip_between_views() {
        let spec = EventSpec::recorder(
            ObjectRef::pod("shop", "cart-1"),
            "Warning",
            "BackOff",
            "Back-off restarting failed container cart in pod cart-1_shop({uid})",
            "kubelet",
            Some("node-a"),
        )
        .container("cart");
        let core = spec.build("u-1", Some("42"));
        assert_eq!(
            core["message"],
            "Back-off restarting failed container cart in pod cart-1_shop(u-1)"
        );
        assert_eq!(core["involvedObject"]["fieldPath"], "spec.containers{cart}");
        assert_eq!(core["metadata"]["namespace"], "shop");
        let v1 = core_to_v1(&core);
        assert_eq!(v1["regarding"]["name"], "cart-1");
        assert_eq!(v1["note"], core["message"]);
        assert_eq!(v1["deprecatedCount"], 1);
        assert_eq!(v1["deprecatedSource"]["component"], "kubelet");
        assert!(v1.get("reportingController").is_none());
        let back = v1_to_core(&v1);
        let mut core_typed = core.clone();
        core_typed.as_object_mut().unwrap().remove("kind");
        assert_eq!(back, core_typed);
    }

    #[test]
    fn node_events_land_in_default_namespace() {
        let spec = EventSpec::recorder(
            ObjectRef::node("node-b"),
            "Normal",
            "NodeNotReady",
            "Node node-b status is now: NodeNotReady",
            "node-controller",
            None,
        );
        let core = spec.build("uid", None);
        assert_eq!(core["metadata"]["namespace"], "default");
        assert!(core["involvedObject"].get("namespace").is_none());
        assert!(
            core["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("node-b.")
        );
        assert_eq!(core["source"], json!({"component": "node-controller"}));
    }
}
