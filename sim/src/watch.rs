//! WATCH streams: newline-delimited JSON `WatchEvent`s flushed one per chunk.
//!
//! Handles the start position (synthetic ADDEDs or history replay, in-stream
//! `410 Expired` ERROR when the requested resourceVersion fell out of the window),
//! selector transitions (an object that stops matching is sent as DELETED with its
//! previous state, one that starts matching as ADDED — like the watch cache),
//! periodic BOOKMARKs, the `k8s.io/initial-events-end` bookmark of streaming lists,
//! `timeoutSeconds`, Table output, and server shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::events;
use crate::resource::{Resource, View};
use crate::selectors::Selector;
use crate::store::{Change, ChangeType, Store, WatchStart};
use crate::table::{self, IncludeObject};

/// Everything a watch stream needs to know about the request.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// Watched resource.
    pub resource: Resource,
    /// API view the request came in on.
    pub view: View,
    /// Namespace filter.
    pub namespace: Option<String>,
    /// Label/field selectors.
    pub selector: Selector,
    /// Start position.
    pub start: WatchStart,
    /// Send periodic BOOKMARKs.
    pub allow_bookmarks: bool,
    /// Bookmark period.
    pub bookmark_interval: Duration,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial events.
    pub initial_events_end: bool,
    /// End the stream after this long.
    pub timeout: Option<Duration>,
    /// Table output (`Some(include)`) instead of objects.
    pub table: Option<IncludeObject>,
}

/// Add `kind`/`apiVersion` (or convert to events.k8s.io) for a stored object.
pub fn typed(resource: Resource, view: View, core: &Value) -> Value {
    match view {
        View::EventsV1 => events::core_to_v1(core),
        View::CoreV1 => {
            let mut m = serde_json::Map::new();
            m.insert("kind".into(), json!(resource.kind()));
            m.insert("apiVersion".into(), json!("v1"));
            if let Value::Object(o) = core {
                for (k, v) in o {
                    m.insert(k.clone(), v.clone());
                }
            }
            Value::Object(m)
        }
    }
}

/// The object of a BOOKMARK event (an empty object of the right kind, as Go serialises it).
pub fn bookmark_object(resource: Resource, view: View, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let mut obj = match (resource, view) {
        (Resource::Pods, _) => json!({"spec": {"containers": null}, "status": {}}),
        (Resource::Nodes, _) => json!({"spec": {}, "status": {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                "containerRuntimeVersion": "", "kubeletVersion": "", "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""}}}),
        (Resource::Events, View::CoreV1) => json!({"involvedObject": {}, "source": {},
            "firstTimestamp": null, "lastTimestamp": null, "eventTime": null,
            "reportingComponent": "", "reportingInstance": ""}),
        (Resource::Events, View::EventsV1) => json!({"eventTime": null, "regarding": {},
            "deprecatedSource": {}, "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null}),
    };
    obj["metadata"] = meta;
    let mut out = typed(resource, View::CoreV1, &obj);
    out["apiVersion"] = json!(view.api_version());
    out
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut s = json!({"type": event_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

struct Filter<'a> {
    p: &'a WatchParams,
}

impl Filter<'_> {
    fn passes(&self, obj: &Value) -> bool {
        let ns_ok = match &self.p.namespace {
            Some(ns) => obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns),
            None => true,
        };
        ns_ok && self.p.selector.matches(obj)
    }

    /// Map a stored change to the (type, core object) the client should see.
    fn apply(&self, c: &Change) -> Option<(&'static str, Value)> {
        let cur = self.passes(&c.object);
        match c.kind {
            ChangeType::Added => cur.then(|| ("ADDED", c.object.clone())),
            ChangeType::Deleted => cur.then(|| ("DELETED", c.object.clone())),
            ChangeType::Modified => {
                let prev = c.prev.as_ref().is_some_and(|p| self.passes(p));
                match (cur, prev) {
                    (true, true) => Some(("MODIFIED", c.object.clone())),
                    (true, false) => Some(("ADDED", c.object.clone())),
                    (false, true) => {
                        let mut old = c.prev.clone().unwrap_or(Value::Null);
                        old["metadata"]["resourceVersion"] = json!(c.rv.to_string());
                        Some(("DELETED", old))
                    }
                    (false, false) => None,
                }
            }
        }
    }
}

/// Start a watch and return the channel its encoded lines arrive on.
/// Registration happens before this returns, so no change can be missed.
pub fn start(
    store: Arc<Store>,
    params: WatchParams,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let registered = store.watch(params.resource, params.start);
    tokio::spawn(async move {
        let mut handle = match registered {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(resource = params.resource.plural(), error = %e, "watch start rejected");
                let _ = tx.send(Ok(line("ERROR", e.status()))).await;
                return;
            }
        };
        let filter = Filter { p: &params };
        let mut columns_sent = false;
        let mut last_rv = match params.start {
            WatchStart::After(rv) => rv,
            WatchStart::State => 0,
        };
        let encode = |t: &str, core: &Value, columns_sent: &mut bool| -> Bytes {
            let obj = typed(params.resource, params.view, core);
            match params.table {
                Some(include) => {
                    let row = table::row(params.resource, core, &obj, include);
                    let rv = core
                        .pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null);
                    let t_obj = table::table(
                        params.resource,
                        vec![row],
                        json!({"resourceVersion": rv}),
                        !*columns_sent,
                    );
                    *columns_sent = true;
                    line(t, t_obj)
                }
                None => line(t, obj),
            }
        };
        for c in &handle.initial {
            if let Some((t, o)) = filter.apply(c) {
                last_rv = last_rv.max(c.rv);
                if tx.send(Ok(encode(t, &o, &mut columns_sent))).await.is_err() {
                    return;
                }
            }
        }
        if params.initial_events_end {
            last_rv = last_rv.max(handle.start_rv);
            let b = bookmark_object(params.resource, params.view, last_rv, true);
            if tx.send(Ok(line("BOOKMARK", b))).await.is_err() {
                return;
            }
        }
        let deadline = params.timeout.map(|t| Instant::now() + t);
        let period = params.bookmark_interval.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = handle.rx.recv() => {
                    let Some(c) = change else { break };
                    if let Some((t, o)) = filter.apply(&c) {
                        last_rv = last_rv.max(c.rv);
                        if tx.send(Ok(encode(t, &o, &mut columns_sent))).await.is_err() {
                            break;
                        }
                    }
                }
                _ = ticker.tick(), if params.allow_bookmarks => {
                    // Read the RV first, then drain: every change <= rv is already queued.
                    let rv = store.current_rv();
                    let mut closed = false;
                    while let Ok(c) = handle.rx.try_recv() {
                        if let Some((t, o)) = filter.apply(&c) {
                            last_rv = last_rv.max(c.rv);
                            if tx.send(Ok(encode(t, &o, &mut columns_sent))).await.is_err() {
                                closed = true;
                                break;
                            }
                        }
                    }
                    if closed {
                        break;
                    }
                    last_rv = last_rv.max(rv);
                    let b = bookmark_object(params.resource, params.view, last_rv, false);
                    if tx.send(Ok(line("BOOKMARK", b))).await.is_err() {
                        break;
                    }
                }
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    tracing::debug!(resource = params.resource.plural(), "watch timeout reached");
                    break;
                }
                _ = tx.closed() => break,
                _ = shutdown.changed() => break,
            }
        }
        tracing::debug!(resource = params.resource.plural(), last_rv, "watch ended");
    });
    rx
}
