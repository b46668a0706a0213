//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/events.k8s.io`,
//! `/apis/events.k8s.io/v1`. Only the legacy (unaggregated) format is served; clients
//! asking for aggregated discovery fall back to it because the response is plain
//! `application/json`, exactly as against an apiserver without aggregated discovery.

use serde_json::{Value, json};

const WRITE_VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.1",
        "gitCommit": "e9c9be4007d1664e68796af02b8978640d2c1b26",
        "gitTreeState": "clean",
        "buildDate": "2025-01-15T14:31:55Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api` (APIVersions).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// `/api/v1` (APIResourceList).
pub fn core_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
             "verbs": WRITE_VERBS, "shortNames": ["ev"], "storageVersionHash": "r2yiGXH7wu8="},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
             "verbs": ["get", "list"], "shortNames": ["ns"], "storageVersionHash": "Q3oi5N2YM8M="},
            {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
             "verbs": WRITE_VERBS, "shortNames": ["no"], "storageVersionHash": "XwShjMxG9Fs="},
            {"name": "nodes/status", "singularName": "", "namespaced": false, "kind": "Node",
             "verbs": ["get", "patch", "update"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": WRITE_VERBS, "shortNames": ["po"], "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8="},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "patch", "update"]}
        ]
    })
}

fn events_group_version() -> Value {
    json!({"groupVersion": "events.k8s.io/v1", "version": "v1"})
}

/// `/apis/events.k8s.io` (APIGroup).
pub fn events_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "events.k8s.io",
        "versions": [events_group_version()],
        "preferredVersion": events_group_version()
    })
}

/// `/apis` (APIGroupList).
pub fn api_groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{
            "name": "events.k8s.io",
            "versions": [events_group_version()],
            "preferredVersion": events_group_version()
        }]
    })
}

/// `/apis/events.k8s.io/v1` (APIResourceList).
pub fn events_v1_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "events.k8s.io/v1",
        "resources": [
            {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
             "verbs": WRITE_VERBS, "shortNames": ["ev"], "storageVersionHash": "r2yiGXH7wu8="}
        ]
    })
}
