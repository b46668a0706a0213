//! WATCH streams: newline-delimited JSON `WatchEvent`s flushed one per chunk.
//!
//! Handles the start position (synthetic ADDEDs or history replay, in-stream
//! `410 Expired` ERROR when the requested resourceVersion fell out of the window),
//! selector transitions (an object that stops matching is sent as DELETED with its
//! previous state, one that starts matching as ADDED — like the watch cache),
//! periodic BOOKMARKs, the `k8s.io/initial-events-end` bookmark of streaming lists,
//! `timeoutSeconds`, Table output, and server shutdown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::events;
use crate::faults::StallTicket;
use crate::resource::{Resource, View};
use crate::selectors::Selector;
use crate::store::{Change, ChangeType, Store, StoredObject, WatchStart, key_namespace};
use crate::table::{self, IncludeObject};

/// A fault applied to one watch stream (see [`crate::faults`]).
#[derive(Debug)]
pub enum StreamFault {
    /// Write `after_lines` complete lines, then half of the next one, then abort.
    DropMidLine {
        /// Complete lines before the cut.
        after_lines: u32,
    },
    /// Send nothing for `duration` (or until released), then carry on.
    Stall {
        /// Silence period.
        duration: Duration,
        /// Release subscription taken when the request arrived.
        ticket: StallTicket,
    },
}

/// Everything a watch stream needs to know about the request.
#[derive(Debug)]
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
    /// Injected fault, if any.
    pub fault: Option<StreamFault>,
}

/// One item of a watch (or streamed list) body: bytes, or the error that aborts the
/// connection (hyper drops it without the terminating chunk).
pub type BodyItem = Result<Bytes, std::io::Error>;

/// The error item that makes hyper abort a response mid-body.
pub fn abort_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "herald-sim fault: connection dropped mid-line",
    )
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

/// A watch line for a stored object in the core/v1 view without re-serialising it:
/// `{"type":T,"object":{"kind":K,"apiVersion":"v1",<stored fields>}}`.
fn core_line(event_type: &str, resource: Resource, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 64);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(event_type.as_bytes());
    out.extend_from_slice(b"\",\"object\":{\"kind\":\"");
    out.extend_from_slice(resource.kind().as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"v1\"");
    match json.get(1..) {
        // Stored objects are JSON objects: splice their fields after kind/apiVersion.
        Some(rest) if json.len() > 2 && json.first() == Some(&b'{') => {
            out.push(b',');
            out.extend_from_slice(rest);
        }
        _ => out.push(b'}'),
    }
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// An object to send: still in stored form (fast path) or already parsed.
enum Outgoing {
    Stored(StoredObject),
    Parsed(Value),
}

impl Outgoing {
    fn value(&self) -> Value {
        match self {
            Outgoing::Stored(o) => o.value(),
            Outgoing::Parsed(v) => v.clone(),
        }
    }
}

struct Filter<'a> {
    p: &'a WatchParams,
}

impl Filter<'_> {
    fn passes(&self, key: &str, obj: &StoredObject) -> bool {
        let ns_ok = match &self.p.namespace {
            Some(ns) => key_namespace(key) == Some(ns.as_str()),
            None => true,
        };
        let unselective = self.p.selector.labels.is_empty() && self.p.selector.fields.is_empty();
        ns_ok && (unselective || self.p.selector.matches(&obj.value()))
    }

    /// Map a stored change to the (type, core object) the client should see.
    fn apply(&self, c: &Change) -> Option<(&'static str, Outgoing)> {
        let cur = self.passes(&c.key, &c.object);
        let stored = || Outgoing::Stored(c.object.clone());
        match c.kind {
            ChangeType::Added => cur.then(|| ("ADDED", stored())),
            ChangeType::Deleted => cur.then(|| ("DELETED", stored())),
            ChangeType::Modified => {
                let prev = c.prev.as_ref().is_some_and(|p| self.passes(&c.key, p));
                match (cur, prev) {
                    (true, true) => Some(("MODIFIED", stored())),
                    (true, false) => Some(("ADDED", stored())),
                    (false, true) => {
                        let mut old = c.prev.as_ref().map_or(Value::Null, StoredObject::value);
                        old["metadata"]["resourceVersion"] = json!(c.rv.to_string());
                        Some(("DELETED", Outgoing::Parsed(old)))
                    }
                    (false, false) => None,
                }
            }
        }
    }
}

/// The sending half of a watch body, applying a drop-mid-line fault.
struct Sink {
    tx: mpsc::Sender<BodyItem>,
    lines: u32,
    drop_after: Option<u32>,
}

impl Sink {
    /// Send one complete line; false when the stream must end (client gone, or the
    /// fault fired and the connection is being dropped).
    async fn send(&mut self, line: Bytes) -> bool {
        if self.drop_after.is_some_and(|after| self.lines >= after) {
            let half = line.slice(..line.len() / 2);
            tracing::info!(
                sent = half.len(),
                of = line.len(),
                "fault: dropping watch mid-line"
            );
            if self.tx.send(Ok(half)).await.is_ok() {
                flush_then_abort(&self.tx).await;
            }
            return false;
        }
        self.lines += 1;
        self.tx.send(Ok(line)).await.is_ok()
    }
}

/// Wait until hyper has taken everything queued on `tx` (so it writes and flushes it
/// while the body is pending), then queue the error that aborts the connection.
pub(crate) async fn flush_then_abort(tx: &mpsc::Sender<BodyItem>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tx.capacity() < tx.max_capacity() && Instant::now() < deadline && !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = tx.send(Err(abort_error())).await;
}

/// Start a watch and return the channel its encoded lines arrive on.
/// Registration happens before this returns, so no change can be missed.
pub fn start(
    store: Arc<Store>,
    mut params: WatchParams,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> mpsc::Receiver<BodyItem> {
    let (tx, rx) = mpsc::channel::<BodyItem>(256);
    let registered = store.watch(params.resource, params.start);
    let fault = params.fault.take();
    tokio::spawn(async move {
        let mut sink = Sink {
            tx,
            lines: 0,
            drop_after: None,
        };
        match fault {
            Some(StreamFault::DropMidLine { after_lines }) => sink.drop_after = Some(after_lines),
            Some(StreamFault::Stall { duration, ticket }) => {
                tracing::info!(
                    resource = params.resource.plural(),
                    ms = duration.as_millis() as u64,
                    "fault: stalling watch"
                );
                // Changes keep queueing on the registered handle meanwhile.
                tokio::select! {
                    _ = ticket.wait(duration) => {}
                    _ = sink.tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
                tracing::debug!(resource = params.resource.plural(), "watch stall over");
            }
            None => {}
        }
        let mut handle = match registered {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(resource = params.resource.plural(), error = %e, "watch start rejected");
                sink.send(line("ERROR", e.status())).await;
                return;
            }
        };
        let filter = Filter { p: &params };
        let mut columns_sent = false;
        let mut last_rv = match params.start {
            WatchStart::After(rv) => rv,
            WatchStart::State => 0,
        };
        let encode = |t: &str, out: Outgoing, columns_sent: &mut bool| -> Bytes {
            match (params.table, params.view, out) {
                (None, View::CoreV1, Outgoing::Stored(o)) => {
                    core_line(t, params.resource, o.json())
                }
                (None, _, out) => line(t, typed(params.resource, params.view, &out.value())),
                (Some(include), _, out) => {
                    let core = out.value();
                    let obj = typed(params.resource, params.view, &core);
                    let row = table::row(params.resource, &core, &obj, include);
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
            }
        };
        for c in &handle.initial {
            if let Some((t, o)) = filter.apply(c) {
                last_rv = last_rv.max(c.rv);
                if !sink.send(encode(t, o, &mut columns_sent)).await {
                    return;
                }
            }
        }
        if params.initial_events_end {
            last_rv = last_rv.max(handle.start_rv);
            let b = bookmark_object(params.resource, params.view, last_rv, true);
            if !sink.send(line("BOOKMARK", b)).await {
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
                        if !sink.send(encode(t, o, &mut columns_sent)).await {
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
                            if !sink.send(encode(t, o, &mut columns_sent)).await {
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
                    if !sink.send(line("BOOKMARK", b)).await {
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
                _ = sink.tx.closed() => break,
                _ = shutdown.changed() => break,
            }
        }
        tracing::debug!(resource = params.resource.plural(), last_rv, "watch ended");
    });
    rx
}

/// The core/v1 watch lines a watch of `resource` from `after` would receive now, without a
/// connection: the history after that resourceVersion, each line exactly as the HTTP watch
/// sends it (for offline benchmarks of watch consumers).
pub fn history_lines(
    store: &Store,
    resource: Resource,
    after: u64,
) -> Result<Vec<Bytes>, crate::SimError> {
    let handle = store.watch(resource, WatchStart::After(after))?;
    Ok(handle
        .initial
        .iter()
        .map(|c| {
            let t = match c.kind {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            };
            core_line(t, resource, c.object.json())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_line_splices_kind_and_api_version() {
        let stored = br#"{"metadata":{"name":"a","resourceVersion":"7"},"spec":{}}"#;
        let l = core_line("ADDED", Resource::Pods, stored);
        assert!(l.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["kind"], "Pod");
        assert_eq!(v["object"]["apiVersion"], "v1");
        assert_eq!(v["object"]["metadata"]["name"], "a");
        let typed_obj = typed(
            Resource::Pods,
            View::CoreV1,
            &serde_json::from_slice(stored).unwrap(),
        );
        assert_eq!(v["object"], typed_obj);
        let empty: Value =
            serde_json::from_slice(&core_line("DELETED", Resource::Nodes, b"{}")).unwrap();
        assert_eq!(empty["object"], json!({"kind": "Node", "apiVersion": "v1"}));
    }
}
