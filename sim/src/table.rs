//! Server-side printing: `meta.k8s.io/v1 Table` responses for nodes, pods and events,
//! with the same columns and cell logic as the apiserver's internal printers (wide
//! output, priority-1 columns included), as requested by kubectl via
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use serde_json::{Value, json};

use crate::resource::Resource;

/// What to embed as each row's `object` (`includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parse the `includeObject` parameter.
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        let first = first.replace(' ', "");
        first.contains("as=Table")
            && first.contains("g=meta.k8s.io")
            && first.contains("v=v1")
            && !first.contains("v=v1beta1")
    })
}

fn col(name: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

/// Column definitions for `resource`.
pub fn columns(resource: Resource) -> Value {
    let name_desc = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    let age_desc = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    match resource {
        Resource::Pods => json!([
            col("Name", "name", 0, name_desc),
            col(
                "Ready",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic."
            ),
            col(
                "Status",
                "",
                0,
                "The aggregate status of the containers in this pod."
            ),
            col(
                "Restarts",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."
            ),
            col("Age", "", 0, age_desc),
            col(
                "IP",
                "",
                1,
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
            ),
            col(
                "Node",
                "",
                1,
                "NodeName indicates in which node this pod is scheduled."
            ),
            col(
                "Nominated Node",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node."
            ),
            col(
                "Readiness Gates",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness."
            ),
        ]),
        Resource::Nodes => json!([
            col("Name", "name", 0, name_desc),
            col("Status", "", 0, "The status of the node"),
            col("Roles", "", 0, "The roles of the node"),
            col("Age", "", 0, age_desc),
            col("Version", "", 0, "Kubelet Version reported by the node."),
            col(
                "Internal-IP",
                "",
                1,
                "List of addresses reachable to the node."
            ),
            col(
                "External-IP",
                "",
                1,
                "List of addresses reachable to the node."
            ),
            col(
                "OS-Image",
                "",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
            ),
            col(
                "Kernel-Version",
                "",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
            ),
            col(
                "Container-Runtime",
                "",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."
            ),
        ]),
        Resource::Events => json!([
            col(
                "Last Seen",
                "",
                0,
                "The time at which the most recent occurrence of this event was recorded."
            ),
            col(
                "Type",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future."
            ),
            col(
                "Reason",
                "",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."
            ),
            col("Object", "", 0, "The object that this event is about."),
            col(
                "Subobject",
                "",
                1,
                "The field of the object that this event is about."
            ),
            col(
                "Source",
                "",
                1,
                "The component reporting this event. Should be a short machine understandable string."
            ),
            col(
                "Message",
                "",
                0,
                "A human-readable description of the status of this operation."
            ),
            col(
                "First Seen",
                "",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
            ),
            col(
                "Count",
                "",
                1,
                "The number of times this event has occurred."
            ),
            col("Name", "name", 1, name_desc),
        ]),
    }
}

/// `duration.HumanDuration` from apimachinery.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: `<unknown>` for missing timestamps.
pub(crate) fn since(ts: Option<&Value>) -> String {
    let Some(s) = ts.and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.into()
    }
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    let mut has_running = false;
    for c in statuses.iter().rev() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(fin) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && last_restart.as_deref().is_none_or(|l| fin > l)
        {
            last_restart = Some(fin.to_string());
        }
        if let Some(w) = c.pointer("/state/waiting/reason").and_then(Value::as_str)
            && !w.is_empty()
        {
            reason = w.into();
        } else if let Some(t) = c.pointer("/state/terminated") {
            let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
            reason = if !r.is_empty() {
                r.into()
            } else {
                match t.get("signal").and_then(Value::as_i64) {
                    Some(sig) if sig != 0 => format!("Signal:{sig}"),
                    _ => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                }
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let pod_ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            });
        reason = if pod_ready { "Running" } else { "NotReady" }.into();
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_str = match last_restart {
        Some(l) if restarts > 0 => {
            format!("{restarts} ({} ago)", since(Some(&Value::String(l))))
        }
        _ => restarts.to_string(),
    };
    vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        json!(since(pod.pointer("/metadata/creationTimestamp"))),
        json!(or_none(s(pod, "/status/podIP"))),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!("<none>"),
    ]
}

fn node_cells(node: &Value) -> Vec<Value> {
    let conditions = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status: Vec<String> = conditions
        .iter()
        .filter(|c| s(c, "/type") == "Ready")
        .map(|c| {
            if s(c, "/status") == "True" {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .take(1)
        .collect();
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        Some(r.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| {
        node.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| s(x, "/type") == t))
            .map(|x| s(x, "/address").to_string())
            .unwrap_or_default()
    };
    vec![
        json!(s(node, "/metadata/name")),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        json!(since(node.pointer("/metadata/creationTimestamp"))),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(or_none(&addr("InternalIP"))),
        json!(or_none(&addr("ExternalIP"))),
        json!(or_none(s(node, "/status/nodeInfo/osImage"))),
        json!(or_none(s(node, "/status/nodeInfo/kernelVersion"))),
        json!(or_none(s(node, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn event_cells(ev: &Value) -> Vec<Value> {
    let first = match ev.get("firstTimestamp").filter(|v| !v.is_null()) {
        Some(t) => since(Some(t)),
        None => since(ev.get("eventTime")),
    };
    let mut last = match ev.get("lastTimestamp").filter(|v| !v.is_null()) {
        Some(t) => since(Some(t)),
        None => first.clone(),
    };
    let mut count = ev.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = ev.get("series").filter(|v| v.is_object()) {
        last = since(series.get("lastObservedTime"));
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let name = s(ev, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(s(ev, "/source/component"), s(ev, "/reportingComponent"));
    let instance = first_non_empty(s(ev, "/source/host"), s(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(ev, "/type")),
        json!(s(ev, "/reason")),
        json!(target),
        json!(s(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(ev, "/metadata/name")),
    ]
}

/// Cells of one row for a stored (core/v1 shaped) object.
pub fn cells(resource: Resource, obj: &Value) -> Vec<Value> {
    match resource {
        Resource::Pods => pod_cells(obj),
        Resource::Nodes => node_cells(obj),
        Resource::Events => event_cells(obj),
    }
}

/// One table row. `typed` is the object as served in the request's view (with kind/apiVersion).
pub fn row(resource: Resource, core: &Value, typed: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(resource, core)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": typed.get("metadata").cloned().unwrap_or(json!({}))
            });
        }
        IncludeObject::Object => r["object"] = typed.clone(),
    }
    r
}

/// A Table object with the given rows and list metadata.
pub fn table(resource: Resource, rows: Vec<Value>, metadata: Value, with_columns: bool) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { columns(resource) } else { json!([]) },
        "rows": rows
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn accept_detection() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json, */*"));
    }

    #[test]
    fn pod_status_column() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"finishedAt": "2020-01-01T00:00:00Z", "reason": "OOMKilled"}}}
            ]}
        });
        let c = pod_cells(&pod);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert!(c[3].as_str().unwrap().starts_with("2 ("));
        let evicted = json!({"metadata": {"name": "e"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(pod_cells(&evicted)[2], "Evicted");
    }
}
