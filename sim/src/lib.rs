//! Cluster simulator: a protocol-faithful fake Kubernetes API server with scenarios.
//!
//! [`Simulator`] is a cheap-to-clone handle to an in-memory cluster (nodes, pods,
//! core/v1 events also served as events.k8s.io/v1). [`Simulator::serve`] exposes it
//! over HTTP the way kube-apiserver does (discovery, LIST with pagination, WATCH with
//! bookmarks and 410s, selectors, CRUD + status subresource, Table output for
//! kubectl, bearer-token auth). Scenarios ([`Scenario`], [`builtin_scenario`]) are
//! timed scripts of cluster changes run through the same code path, so every change
//! reaches watchers. For scale testing, [`Simulator::populate`] fills in a realistic
//! 10,000-node / 200,000-pod cluster ([`scale`]), [`Simulator::churn`] keeps it changing
//! at a steady rate ([`churn`]), and [`Simulator::faults`] makes requests fail the way
//! real apiservers do ([`faults`]). See `sim/README.md` for the API summary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub mod churn;
pub mod discovery;
pub mod error;
pub mod events;
pub mod faults;
mod http;
pub mod kubeconfig;
pub mod list;
pub mod objects;
pub mod patch;
pub mod resource;
pub mod scale;
pub mod scenario;
pub mod selectors;
pub mod stats;
pub mod store;
pub mod table;
mod tls;
pub mod watch;

pub use churn::{ChurnKind, ChurnMix, ChurnReport, ChurnSpec, Churner};
pub use error::SimError;
pub use events::{EventSpec, EventStyle, ObjectRef};
pub use faults::{Fault, FaultId, FaultRule, Faults};
pub use resource::{Resource, View};
pub use scale::{PopulateReport, ScaleSpec};
pub use scenario::{Action, Finding, Scenario, ScenarioReport, Step, builtin_scenario};
pub use stats::{ReadCounts, ReadSource, RequestStats, Verb};

use store::{CreateOptions, Store, Subresource};

/// Simulator configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address (default `127.0.0.1:0`, i.e. an ephemeral port).
    pub bind: SocketAddr,
    /// Bearer token every request must carry.
    pub token: String,
    /// Changes kept per resource for watch resumption / consistent pagination.
    pub history_limit: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Cluster name written into kubeconfigs.
    pub cluster_name: String,
    /// Serve HTTPS with a generated throwaway CA (default). kubectl only sends the
    /// bearer token over TLS; plain HTTP is fine for raw HTTP clients and kube-rs.
    pub tls: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: "herald-sim-token".into(),
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(60),
            cluster_name: "herald-sim".into(),
            tls: true,
        }
    }
}

pub(crate) struct SimInner {
    pub(crate) cfg: SimConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) stats: stats::StatsRecorder,
    pub(crate) faults: Faults,
    /// Event aggregation cache: aggregation key -> (namespace, event name), bounded.
    pub(crate) event_keys: Mutex<events::EventKeys>,
    /// Made-up uids of referenced objects the sim does not store.
    pub(crate) ref_uids: Mutex<HashMap<String, String>>,
    /// Server start time (used as the namespaces' creationTimestamp).
    pub(crate) started: String,
}

/// Handle to the simulated cluster. Clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<SimInner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("cfg", &self.inner.cfg)
            .field("resource_version", &self.resource_version())
            .finish()
    }
}

fn ns_name(obj: &Value) -> (Option<String>, String) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (ns, name)
}

impl Simulator {
    /// Create an empty cluster.
    pub fn new(cfg: SimConfig) -> Simulator {
        let store = Arc::new(Store::new(cfg.history_limit));
        Simulator {
            inner: Arc::new(SimInner {
                cfg,
                store,
                stats: stats::StatsRecorder::default(),
                faults: Faults::default(),
                event_keys: Mutex::default(),
                ref_uids: Mutex::new(HashMap::new()),
                started: objects::now_rfc3339(),
            }),
        }
    }

    /// The uid of namespace `name`: made up on first use and stable for this simulator's life,
    /// so, as in a real cluster, `kube-system`'s uid identifies the cluster (a new simulator
    /// is a new cluster).
    pub fn namespace_uid(&self, name: &str) -> String {
        self.made_up_uid(format!("Namespace//{name}"))
    }

    /// A uid for an object the sim does not store, keyed `KIND/NAMESPACE/NAME`: made up on
    /// first use, the same afterwards.
    fn made_up_uid(&self, key: String) -> String {
        let mut uids = self
            .inner
            .ref_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        uids.entry(key)
            .or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone()
    }

    /// The configuration this simulator was created with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.cfg
    }

    /// Bind the listener and spawn the HTTP server task.
    pub async fn serve(&self) -> Result<SimServer, SimError> {
        let listener = tokio::net::TcpListener::bind(self.inner.cfg.bind).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = http::AppState {
            sim: self.clone(),
            server_address: addr.to_string(),
            shutdown: shutdown_rx.clone(),
        };
        let app = http::router(state);
        let mut graceful = shutdown_rx;
        let (task, ca_pem) = if self.inner.cfg.tls {
            let material = tls::generate()?;
            let task = tokio::spawn(tls::serve(listener, material.acceptor, app, graceful));
            (task, Some(material.ca_pem))
        } else {
            let task = tokio::spawn(async move {
                let res = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = graceful.wait_for(|v| *v).await;
                    })
                    .await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "simulator server failed");
                }
            });
            (task, None)
        };
        tracing::info!(%addr, tls = ca_pem.is_some(), "simulator API server listening");
        Ok(SimServer {
            addr,
            token: self.inner.cfg.token.clone(),
            cluster_name: self.inner.cfg.cluster_name.clone(),
            ca_pem,
            shutdown_tx,
            task,
        })
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.current_rv()
    }

    /// Create an object (namespace taken from `metadata.namespace`). Unlike HTTP
    /// creates, caller-supplied `uid` / `creationTimestamp` are kept (for seeding).
    pub fn create(&self, resource: Resource, object: Value) -> Result<Value, SimError> {
        let (ns, _) = ns_name(&object);
        self.inner.store.create(
            resource,
            ns.as_deref(),
            object,
            CreateOptions {
                preserve_system_fields: true,
            },
        )
    }

    /// Get one object.
    pub fn get(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.inner.store.get(resource, namespace, name)
    }

    /// All current objects of `resource` (optionally in one namespace), in key order.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        let prefix = namespace
            .filter(|_| resource.namespaced())
            .map(|ns| format!("{ns}/"));
        match self
            .inner
            .store
            .snapshot_range(resource, None, None, prefix.as_deref())
        {
            Ok(s) => s.items.into_iter().map(|(_, v)| v.value()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Number of stored objects of `resource` (cheap: nothing is parsed).
    pub fn count(&self, resource: Resource) -> usize {
        self.inner.store.len(resource)
    }

    /// Changes of `resource` currently kept for watch resumption (at most
    /// [`SimConfig::history_limit`]).
    pub fn history_len(&self, resource: Resource) -> usize {
        self.inner.store.history_len(resource)
    }

    /// Run-time fault injection (also reachable over HTTP at `/sim/faults`).
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Compact the history like an etcd compaction at the current revision (also
    /// `POST /sim/compact`): every watch, exact list or continue token from an older
    /// resourceVersion then gets `410 Expired` (`too old resource version: X (Y)` for
    /// watches), exactly as when the history overflows `history_limit`. Open watches
    /// are not affected. Returns the compacted resourceVersion.
    pub fn compact(&self) -> u64 {
        self.inner.store.compact()
    }

    /// Replace an object (PUT semantics, resourceVersion precondition if set).
    pub fn update(&self, resource: Resource, object: Value) -> Result<Value, SimError> {
        let (ns, name) = ns_name(&object);
        self.inner
            .store
            .update(resource, ns.as_deref(), &name, object, Subresource::Main)
    }

    /// Replace an object's status (PUT `/status`).
    pub fn update_status(&self, resource: Resource, object: Value) -> Result<Value, SimError> {
        let (ns, name) = ns_name(&object);
        self.inner
            .store
            .update(resource, ns.as_deref(), &name, object, Subresource::Status)
    }

    /// Merge-patch an object (status changes are ignored for pods/nodes, like PATCH).
    pub fn patch(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
        merge_patch: &Value,
    ) -> Result<Value, SimError> {
        self.inner
            .store
            .mutate(resource, namespace, name, Subresource::Main, |cur| {
                patch::merge_patch(cur, merge_patch);
                Ok(())
            })
    }

    /// Merge-patch the status subresource.
    pub fn patch_status(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
        merge_patch: &Value,
    ) -> Result<Value, SimError> {
        self.inner
            .store
            .mutate(resource, namespace, name, Subresource::Status, |cur| {
                patch::merge_patch(cur, merge_patch);
                Ok(())
            })
    }

    /// Read-modify-write an object with a closure (main resource or status).
    pub fn modify(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
        status: bool,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, SimError> {
        let sub = if status {
            Subresource::Status
        } else {
            Subresource::Main
        };
        self.inner
            .store
            .mutate(resource, namespace, name, sub, |cur| {
                f(cur);
                Ok(())
            })
    }

    /// Delete an object, returning its last state.
    pub fn delete(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.inner.store.delete(resource, namespace, name)
    }

    /// Record an event like client-go's recorder: a repeat of the same
    /// (source, object, type, reason, message) bumps `count` and `lastTimestamp` on
    /// the existing Event instead of creating a new one.
    pub fn record_event(&self, spec: &EventSpec) -> Result<Value, SimError> {
        let r = &spec.regarding;
        let involved = match r.kind.as_str() {
            "Pod" => self
                .get(Resource::Pods, r.namespace.as_deref(), &r.name)
                .ok(),
            "Node" => self.get(Resource::Nodes, None, &r.name).ok(),
            _ => None,
        };
        let uid = spec
            .uid_override
            .clone()
            .or_else(|| {
                involved
                    .as_ref()
                    .and_then(|o| o.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                // Objects the sim does not store (Jobs, Deployments): a stable made-up uid.
                self.made_up_uid(format!(
                    "{}/{}/{}",
                    r.kind,
                    r.namespace.as_deref().unwrap_or(""),
                    r.name
                ))
            });
        let involved_rv = involved
            .as_ref()
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let key = spec.aggregation_key(&uid);
        let recorder = spec.recorder_key();
        let existing = self
            .inner
            .event_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&recorder, &key);
        if let Some((ns, name)) = existing {
            let now = objects::now_rfc3339();
            let res = self.inner.store.mutate(
                Resource::Events,
                Some(&ns),
                &name,
                Subresource::Main,
                |ev| {
                    if ev.get("eventTime").is_some_and(|t| !t.is_null()) {
                        // An events.k8s.io Event (client-go tools/events): repeats grow
                        // `series` (2 on the first repeat); `count` stays unset.
                        let count = ev
                            .pointer("/series/count")
                            .and_then(Value::as_i64)
                            .unwrap_or(1);
                        ev["series"] = serde_json::json!({
                            "count": count + 1,
                            "lastObservedTime": objects::now_micro(),
                        });
                    } else {
                        let count = ev.get("count").and_then(Value::as_i64).unwrap_or(1);
                        ev["count"] = Value::from(count + 1);
                        ev["lastTimestamp"] = Value::String(now);
                    }
                    Ok(())
                },
            );
            match res {
                Ok(v) => {
                    let count = v
                        .get("count")
                        .or_else(|| v.pointer("/series/count"))
                        .and_then(|c| c.as_i64())
                        .unwrap_or(0);
                    tracing::debug!(reason = %spec.reason, object = %r.name, count, "event aggregated");
                    return Ok(v);
                }
                Err(SimError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let ev = spec.build(&uid, involved_rv.as_deref());
        let created = self.create(Resource::Events, ev)?;
        let (ns, name) = ns_name(&created);
        self.inner
            .event_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(&recorder, key, ns.unwrap_or_default(), name);
        tracing::debug!(reason = %spec.reason, object = %r.name, type_ = %spec.type_, "event recorded");
        Ok(created)
    }

    /// The core/v1 watch lines (`{"type":..,"object":..}` + newline) a watch of `resource`
    /// from resourceVersion `after` would receive now, exactly as the HTTP watch sends them,
    /// without a connection. Fails with [`SimError::Expired`] when `after` is older than the
    /// history kept. For offline benchmarks of watch consumers (`herald bench ingest`).
    pub fn watch_lines(
        &self,
        resource: Resource,
        after: u64,
    ) -> Result<Vec<bytes::Bytes>, SimError> {
        watch::history_lines(&self.inner.store, resource, after)
    }

    /// Snapshot of the request counters.
    pub fn stats(&self) -> RequestStats {
        self.inner.stats.snapshot()
    }

    /// Reset the request counters.
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }

    /// Number of open watches on `resource` (for tests).
    pub fn watcher_count(&self, resource: Resource) -> usize {
        self.inner.store.watcher_count(resource)
    }
}

/// A running HTTP server for a [`Simulator`].
#[derive(Debug)]
pub struct SimServer {
    /// Bound address.
    pub addr: SocketAddr,
    token: String,
    cluster_name: String,
    ca_pem: Option<String>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Base URL, e.g. `https://127.0.0.1:43567` (`http://` when TLS is off).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// PEM of the CA that signed the serving certificate (`None` without TLS).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// kubeconfig YAML for this server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(
            &self.url(),
            &self.token,
            &self.cluster_name,
            self.ca_pem.as_deref(),
        )
    }

    /// Write the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        kubeconfig::write(path, &self.kubeconfig())
    }

    /// Stop accepting connections, end open watches, and wait (up to 5 s) for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        tracing::info!(addr = %self.addr, "simulator API server stopped");
    }
}
