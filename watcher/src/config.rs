//! What to watch and how: [`WatcherConfig`] and its parts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A watched resource (all core/v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `events` (core/v1 Event).
    Events,
    /// `pods`.
    Pods,
    /// `nodes` (cluster-scoped).
    Nodes,
}

impl Resource {
    /// Every resource, in the order their tasks start.
    pub const ALL: [Resource; 3] = [Resource::Events, Resource::Pods, Resource::Nodes];

    /// The plural resource name used in URLs, checkpoints and [`WatcherConfig::resume`].
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Events => "events",
            Resource::Pods => "pods",
            Resource::Nodes => "nodes",
        }
    }

    /// The `kind` of the resource's objects.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Events => "Event",
            Resource::Pods => "Pod",
            Resource::Nodes => "Node",
        }
    }

    /// Whether objects of this resource live in namespaces.
    pub fn namespaced(self) -> bool {
        !matches!(self, Resource::Nodes)
    }

    /// The collection path: `/api/v1/pods`, `/api/v1/namespaces/NS/pods`, `/api/v1/nodes`.
    /// `namespace` is ignored for cluster-scoped resources.
    pub fn path(self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced() => format!("/api/v1/namespaces/{ns}/{}", self.as_str()),
            _ => format!("/api/v1/{}", self.as_str()),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which API the Events are watched through. The API server serves the same Event objects
/// through both; watch one, never both (every occurrence would be recorded twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventsApi {
    /// `/api/v1/events` (core/v1 `Event`: `count`, `firstTimestamp`, `lastTimestamp`, and
    /// `series` for Events written through events.k8s.io).
    #[default]
    CoreV1,
    /// `/apis/events.k8s.io/v1/events` (`regarding`, `note`, `series`, `deprecatedCount`);
    /// converted to the core/v1 shape before transition detection, so counts, series and
    /// resume behave the same.
    EventsV1,
}

impl EventsApi {
    /// The config spelling: `core/v1` or `events.k8s.io/v1`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventsApi::CoreV1 => "core/v1",
            EventsApi::EventsV1 => "events.k8s.io/v1",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "core/v1" | "v1" => Some(EventsApi::CoreV1),
            "events.k8s.io/v1" => Some(EventsApi::EventsV1),
            _ => None,
        }
    }

    /// The collection path of Events through this API.
    pub fn path(self, namespace: Option<&str>) -> String {
        match (self, namespace) {
            (EventsApi::CoreV1, _) => Resource::Events.path(namespace),
            (EventsApi::EventsV1, Some(ns)) => {
                format!("/apis/events.k8s.io/v1/namespaces/{ns}/events")
            }
            (EventsApi::EventsV1, None) => "/apis/events.k8s.io/v1/events".to_string(),
        }
    }
}

/// Which resources are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSet {
    /// Watch core/v1 Events.
    pub events: bool,
    /// Watch Pods.
    pub pods: bool,
    /// Watch Nodes.
    pub nodes: bool,
}

impl Default for ResourceSet {
    /// All three.
    fn default() -> Self {
        Self {
            events: true,
            pods: true,
            nodes: true,
        }
    }
}

impl ResourceSet {
    /// Whether `resource` is enabled.
    pub fn contains(&self, resource: Resource) -> bool {
        match resource {
            Resource::Events => self.events,
            Resource::Pods => self.pods,
            Resource::Nodes => self.nodes,
        }
    }

    /// The enabled resources.
    pub fn iter(&self) -> impl Iterator<Item = Resource> + '_ {
        Resource::ALL.into_iter().filter(|r| self.contains(*r))
    }
}

/// Server-side selectors for one resource (sent as `labelSelector` / `fieldSelector` on both the
/// list and the watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    /// A label selector, e.g. `app=cart,tier!=cache`.
    pub label_selector: Option<String>,
    /// A field selector, e.g. `type=Warning` for events or `spec.nodeName=node-a` for pods.
    pub field_selector: Option<String>,
}

/// What the first list of a resource reports (see the crate documentation for the rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InitialSync {
    /// Record every existing Event (with its full count) and report current problems of pods
    /// (containers waiting with a problem reason) and nodes (conditions in a bad state). Pods
    /// and nodes are otherwise seeded silently (no `Created`, no historical terminations).
    #[default]
    Record,
    /// Seed the state silently: the first list produces no records at all.
    Seed,
}

/// How a resource's state is read when there is nothing to resume from (the first start, or
/// after `410 Expired`). docs/watching.md lists the exact requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListStrategy {
    /// A streaming list when the server supports it (Kubernetes 1.27+ with the `WatchList`
    /// feature; detected from `/version` and from the server's answer), otherwise `cached`.
    #[default]
    Auto,
    /// A watch with `sendInitialEvents=true&resourceVersionMatch=NotOlderThan`: the current
    /// objects arrive as `ADDED` events from the watch cache, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end`, then ordinary watch events on the same connection.
    Streaming,
    /// One LIST with `resourceVersion=0`, served by the watch cache (no `limit`: the cache
    /// ignores it, and a `limit` with any other resourceVersion would go to etcd).
    Cached,
    /// LIST pages of [`WatcherConfig::page_size`] with `continue` tokens, read from etcd: for
    /// servers whose watch cache is disabled. The only mode that loads etcd.
    Paginated,
}

impl ListStrategy {
    /// The config-file name: `auto`, `streaming`, `cached`, `paginated`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListStrategy::Auto => "auto",
            ListStrategy::Streaming => "streaming",
            ListStrategy::Cached => "cached",
            ListStrategy::Paginated => "paginated",
        }
    }
}

/// Configuration of a [`Watcher`](crate::Watcher).
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Name of the cluster, copied into every record.
    pub cluster: String,
    /// Which resources to watch.
    pub resources: ResourceSet,
    /// Restrict namespaced resources (events, pods) to one namespace; `None` for all.
    pub namespace: Option<String>,
    /// Per-resource server-side selectors; a missing entry means none.
    pub selectors: BTreeMap<Resource, Selectors>,
    /// The API Events are watched through.
    pub events_api: EventsApi,
    /// Resume points: resource name (`events`, `pods`, `nodes`) to the resourceVersion of its last
    /// persisted [`Checkpoint`](herald_core::Checkpoint). A resource with a resume point is not
    /// listed; its watch starts from there.
    pub resume: BTreeMap<String, String>,
    /// Server-side watch timeout (`timeoutSeconds`); the watch is re-established when it ends.
    pub watch_timeout: Duration,
    /// What the first list reports.
    pub initial_sync: InitialSync,
    /// How state is listed.
    pub list_strategy: ListStrategy,
    /// Page size of [`ListStrategy::Paginated`].
    pub page_size: u32,
    /// Send the compact per-object state changes ([`WatchItem::States`](crate::WatchItem)) before
    /// each checkpoint, for the consumer to persist and hand back with
    /// [`Watcher::with_restored_state`](crate::Watcher::with_restored_state) after a restart.
    pub persist_state: bool,
    /// Most object states sent in [`WatchItem::States`](crate::WatchItem) items that the
    /// consumer has not dropped yet (each item holds a [`StatesPermit`](crate::StatesPermit)
    /// for its states until it is dropped). After the initial sync of 200,000 pods every state
    /// changed at once; this keeps only a few chunks of them queued instead of all. At least
    /// the chunk size (1,000) is used.
    pub states_in_flight: usize,
    /// Wait between retries after `401 Unauthorized` or `403 Forbidden` (an operator has to fix
    /// the credentials or the RBAC; hammering the server will not help).
    pub denied_retry: Duration,
    /// After a resume, a pod first seen in a MODIFIED watch event reports the container
    /// terminations that finished at most this long before the watcher started (older ones are
    /// assumed to be recorded already).
    pub resume_lookback: Duration,
    /// First retry delay after an error (doubled on each failure, with jitter).
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Emit a checkpoint at least every this many watch events, even when they produce no record
    /// (events with records are always followed by a checkpoint).
    pub checkpoint_every: u32,
}

impl WatcherConfig {
    /// Whether the compact states of `res` are sent as [`WatchItem::States`](crate::WatchItem).
    /// Not for Events with [`InitialSync::Record`]: every Event the watcher counts then has a
    /// record carrying its key and count, so the records are the persisted state and a restart
    /// rebuilds it from them ([`event_state`](crate::state::event::event_state),
    /// [`EVENT_STATE_LOOKBACK`](crate::state::event::EVENT_STATE_LOOKBACK)); writing each
    /// Event's count a second time was most of what persisting watch state cost.
    pub fn persists_states_of(&self, res: Resource) -> bool {
        self.persist_state && !(res == Resource::Events && self.initial_sync == InitialSync::Record)
    }
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            cluster: "default".to_string(),
            resources: ResourceSet::default(),
            namespace: None,
            selectors: BTreeMap::new(),
            events_api: EventsApi::default(),
            resume: BTreeMap::new(),
            watch_timeout: Duration::from_secs(290),
            initial_sync: InitialSync::default(),
            list_strategy: ListStrategy::default(),
            page_size: 500,
            denied_retry: Duration::from_secs(60),
            persist_state: true,
            states_in_flight: 10_000,
            resume_lookback: Duration::from_secs(600),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            checkpoint_every: 100,
        }
    }
}

impl WatcherConfig {
    /// The same configuration with the given resources enabled.
    pub fn with_resources(mut self, events: bool, pods: bool, nodes: bool) -> Self {
        self.resources = ResourceSet {
            events,
            pods,
            nodes,
        };
        self
    }

    /// The selectors of `resource` (none when not configured).
    pub fn selectors_for(&self, resource: Resource) -> Selectors {
        self.selectors.get(&resource).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Resource::Pods.path(None), "/api/v1/pods");
        assert_eq!(
            Resource::Events.path(Some("shop")),
            "/api/v1/namespaces/shop/events"
        );
        assert_eq!(Resource::Nodes.path(Some("shop")), "/api/v1/nodes");
        assert_eq!(EventsApi::CoreV1.path(None), "/api/v1/events");
        assert_eq!(
            EventsApi::EventsV1.path(Some("shop")),
            "/apis/events.k8s.io/v1/namespaces/shop/events"
        );
        for api in [EventsApi::CoreV1, EventsApi::EventsV1] {
            assert_eq!(EventsApi::parse(api.as_str()), Some(api));
        }
        assert_eq!(EventsApi::parse("events/v1"), None);
    }

    #[test]
    fn resource_set() {
        let cfg = WatcherConfig::default().with_resources(true, false, true);
        let v: Vec<_> = cfg.resources.iter().collect();
        assert_eq!(v, vec![Resource::Events, Resource::Nodes]);
    }
}
