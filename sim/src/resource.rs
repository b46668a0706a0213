//! The resource types the simulator serves and the API "views" they are served through.
//!
//! Storage is keyed by [`Resource`] (nodes, pods, core events). A [`View`] is the
//! group/version a request came in on: core events are also visible as
//! `events.k8s.io/v1` events (one store, two views, like the real apiserver).

use serde::{Deserialize, Serialize};

/// A stored resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    /// `v1/nodes` (cluster-scoped).
    Nodes,
    /// `v1/pods` (namespaced).
    Pods,
    /// `v1/events` (namespaced); also served as `events.k8s.io/v1/events`.
    Events,
}

impl Resource {
    /// All stored resources.
    pub const ALL: [Resource; 3] = [Resource::Nodes, Resource::Pods, Resource::Events];

    /// Index into per-resource arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Resource::Nodes => 0,
            Resource::Pods => 1,
            Resource::Events => 2,
        }
    }

    /// Plural resource name (`pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Nodes => "nodes",
            Resource::Pods => "pods",
            Resource::Events => "events",
        }
    }

    /// Kind (`Pod`).
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Nodes => "Node",
            Resource::Pods => "Pod",
            Resource::Events => "Event",
        }
    }

    /// Whether objects of this resource live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Resource::Nodes)
    }

    /// Parse a plural resource name as used in core/v1 URLs.
    pub fn from_plural(s: &str) -> Option<Resource> {
        match s {
            "nodes" => Some(Resource::Nodes),
            "pods" => Some(Resource::Pods),
            "events" => Some(Resource::Events),
            _ => None,
        }
    }
}

/// The API group/version a resource is accessed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum View {
    /// Core group, `v1`.
    CoreV1,
    /// `events.k8s.io/v1` (only for [`Resource::Events`]).
    EventsV1,
}

impl View {
    /// `apiVersion` string of objects in this view.
    pub fn api_version(self) -> &'static str {
        match self {
            View::CoreV1 => "v1",
            View::EventsV1 => "events.k8s.io/v1",
        }
    }

    /// API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            View::CoreV1 => "",
            View::EventsV1 => "events.k8s.io",
        }
    }

    /// Resource name used in statistics and error details (`pods`, `events.events.k8s.io`).
    pub fn qualified(self, r: Resource) -> String {
        match self {
            View::CoreV1 => r.plural().to_string(),
            View::EventsV1 => format!("{}.events.k8s.io", r.plural()),
        }
    }
}
