//! The list/watch loops: one task per resource, each with its own compact state, talking to the
//! API server with raw requests through [`kube::Client`] (the same path for a real cluster and
//! the simulator). docs/watching.md lists every request with its parameters.
//!
//! Per resource:
//! 1. **Sync**, unless [`WatcherConfig::resume`] has a resourceVersion for it, by
//!    [`ListStrategy`]:
//!    - *streaming* (`auto` on 1.27+ servers): `GET ...?watch=true&sendInitialEvents=true&
//!      resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`: the objects arrive as
//!      `ADDED` events, then a BOOKMARK annotated `k8s.io/initial-events-end` gives the
//!      position; the same connection goes on as the watch of step 2;
//!    - *cached*: `GET ...?resourceVersion=0` (the watch cache, no `limit`);
//!    - *paginated*: `GET ...?limit=N[&continue=T]` (etcd), for servers without a watch cache.
//!
//!    List bodies are decoded item by item as they arrive, on a blocking thread; each item is
//!    applied to the state at once. The records, a checkpoint at the list's resourceVersion, and
//!    [`WatchItem::Synced`] follow.
//! 2. **Watch** `GET ...?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=N`
//!    from the last resourceVersion seen (objects and bookmarks). The stream is read line by
//!    line; malformed lines and objects are logged, counted ([`WatcherStats::malformed`]) and
//!    skipped; a line cut by a dropped connection is discarded. When the stream ends, the watch
//!    is re-established from the last resourceVersion.
//! 3. On **410 Expired** (HTTP status or in-stream `ERROR` Status), **re-sync** (a streaming
//!    list, or `resourceVersion=<last>&resourceVersionMatch=NotOlderThan`, so the answer is
//!    never older than what was seen; `resourceVersion=0` if that fails with 410 too) and diff
//!    against the state: unknown objects are new, missing objects are deleted, Event counts give
//!    deltas.
//!
//! Failures wait before the next request: the server's `Retry-After` (429, and 5xx answers that
//! carry one), [`WatcherConfig::denied_retry`] after 401/403 (logged as an error naming the
//! RBAC needed), jittered exponential backoff otherwise. 400 and 404 before the initial sync
//! end the run.
//!
//! # Checkpoints
//!
//! A [`WatchItem::Checkpoint`] always follows the records it covers. One is emitted after the
//! records of every watch event that produced records, after every BOOKMARK, after a list,
//! when a watch stream ends, and at least every [`WatcherConfig::checkpoint_every`] events
//! that produced no record. A consumer that persists records and then checkpoints in order
//! repeats at most the records of one event after a crash.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, AsyncRead, AsyncReadExt};
use herald_core::{Checkpoint, Clock, ObjectState, Record, SystemClock, Timestamp};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{EventsApi, InitialSync, ListStrategy, Resource, WatcherConfig};
use crate::decode::{self, Feed, Frame, ListDecoder, ListMeta, ObjectEvent, Payload};
use crate::error::WatchError;
use crate::request;
use crate::state::event::{EventState, EventsV1State};
use crate::state::node::NodeState;
use crate::state::pod::PodState;
use crate::state::{RecordCtx, Source, StateOptions, Tracker};
use crate::stats::{Verb, WatcherStats};

/// Objects per [`WatchItem::States`] item.
const STATE_CHUNK: usize = 1_000;
/// A list body that sends nothing for this long is abandoned (and retried).
const LIST_IDLE: Duration = Duration::from_secs(60);
/// Read size of list bodies.
const LIST_CHUNK: usize = 64 * 1024;
/// Chunks of a list body queued for the decoding thread.
const LIST_CHUNKS_IN_FLIGHT: usize = 16;

/// Silence on a watch stream beyond `timeoutSeconds` after which it is abandoned.
const IDLE_GRACE: Duration = Duration::from_secs(30);
/// A watch that lasted at least this long resets the backoff.
const HEALTHY_WATCH: Duration = Duration::from_secs(30);

/// What the watcher sends to its consumer, in order.
// Records dominate the stream, so boxing them would only add an allocation per item.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// An observed fact.
    Record(Record),
    /// The watch position of a resource; every record of that resource sent before it is
    /// covered. Persist it after those records.
    Checkpoint(Checkpoint),
    /// Changes to the compact state of a resource's objects (sent before the checkpoint that
    /// covers them, when [`WatcherConfig::persist_state`] is on). Persist them, in order, and
    /// hand the result back to [`Watcher::with_restored_state`] after a restart.
    States {
        /// The resource (`events`, `pods`, `nodes`).
        resource: String,
        /// The changed objects (`state: None` for objects that are gone).
        states: Vec<ObjectState>,
        /// Released when the item is dropped (see [`WatcherConfig::states_in_flight`]).
        permit: StatesPermit,
    },
    /// The resource finished its initial sync (its first list, or its first watch connection
    /// when resuming). Sent once per resource.
    Synced {
        /// The resource (`events`, `pods`, `nodes`).
        resource: String,
    },
}

/// A share of the watcher's budget of queued object states
/// ([`WatcherConfig::states_in_flight`]), held by a [`WatchItem::States`] item and returned
/// when the item is dropped, so persist the states before dropping it. A clone holds nothing;
/// all permits compare equal.
#[derive(Debug, Default)]
pub struct StatesPermit(Option<tokio::sync::OwnedSemaphorePermit>);

impl StatesPermit {
    /// A permit that holds nothing (for items made outside a running watcher).
    pub fn none() -> Self {
        Self(None)
    }

    /// Number of states this permit holds back.
    pub fn states(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl Clone for StatesPermit {
    fn clone(&self) -> Self {
        Self(None)
    }
}

impl PartialEq for StatesPermit {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Watches the configured resources and sends [`WatchItem`]s.
pub struct Watcher {
    client: kube::Client,
    cfg: WatcherConfig,
    stats: WatcherStats,
    clock: Arc<dyn Clock>,
    restored: Restored,
}

/// Trackers filled from persisted state before [`Watcher::run`], one object at a time.
#[derive(Default)]
struct Restored {
    events: Option<EventState>,
    events_v1: Option<EventsV1State>,
    pods: Option<PodState>,
    nodes: Option<NodeState>,
    /// Per resource: states imported, states that could not be read.
    counts: std::collections::HashMap<Resource, (usize, usize)>,
}

impl Restored {
    /// Imports `state` into `slot` (created on first use); whether it could be read.
    fn import<T: Tracker>(slot: &mut Option<T>, res: Resource, state: ObjectState) -> bool {
        let Some(bytes) = state.state else {
            return true;
        };
        let tracker = slot.get_or_insert_with(T::default);
        match tracker.import(state.key, &bytes) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(resource = %res, error = %e, "unreadable stored state skipped");
                false
            }
        }
    }

    /// The restored tracker of a resource (with `opts`), else a new one.
    fn take<T: Tracker>(slot: &mut Option<T>, opts: StateOptions) -> T {
        let mut t = slot.take().unwrap_or_default();
        t.set_options(opts);
        t
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What every resource task shares.
struct Shared {
    client: kube::Client,
    cfg: WatcherConfig,
    stats: WatcherStats,
    clock: Arc<dyn Clock>,
    /// Budget of object states queued and not yet dropped by the consumer.
    states_in_flight: Arc<tokio::sync::Semaphore>,
}

impl Watcher {
    /// A watcher using `client`.
    pub fn new(client: kube::Client, cfg: WatcherConfig) -> Self {
        Self {
            client,
            cfg,
            stats: WatcherStats::default(),
            clock: Arc::new(SystemClock),
            restored: Restored::default(),
        }
    }

    /// Restores one object's compact state persisted from [`WatchItem::States`] (used together
    /// with a resume point in [`WatcherConfig::resume`]) before [`Watcher::run`]: changes that
    /// happened while herald was down are then found by comparing with it, and nothing already
    /// reported is reported again. States are imported as they come, so a caller streaming
    /// them from its store never holds all of them at once. A state that cannot be read is
    /// counted, logged and skipped.
    pub fn restore_state(&mut self, resource: Resource, state: ObjectState) {
        let r = &mut self.restored;
        let ok = match resource {
            Resource::Events => match self.cfg.events_api {
                EventsApi::CoreV1 => Restored::import(&mut r.events, resource, state),
                EventsApi::EventsV1 => Restored::import(&mut r.events_v1, resource, state),
            },
            Resource::Pods => Restored::import(&mut r.pods, resource, state),
            Resource::Nodes => Restored::import(&mut r.nodes, resource, state),
        };
        let c = r.counts.entry(resource).or_default();
        if ok {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }

    /// The same watcher with `states` restored ([`Watcher::restore_state`] for each).
    pub fn with_restored_state(mut self, resource: Resource, states: Vec<ObjectState>) -> Self {
        for s in states {
            self.restore_state(resource, s);
        }
        self
    }

    /// The same watcher reading time (record `observed_at`, the resume floor) from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A handle on the watcher's counters (keeps working after [`Watcher::run`] consumed it).
    pub fn stats(&self) -> WatcherStats {
        self.stats.clone()
    }

    /// Runs one list/watch task per enabled resource until `tx` is closed (then returns
    /// `Ok(())`). Transient failures are retried forever; a permanent failure (HTTP 400, 401,
    /// 403 or 404) before a resource's initial sync ends the run with that error.
    pub async fn run(self, tx: mpsc::Sender<WatchItem>) -> Result<(), WatchError> {
        let started = self.clock.now();
        let lookback = jiff::SignedDuration::try_from(self.cfg.resume_lookback)
            .unwrap_or(jiff::SignedDuration::ZERO);
        let opts = StateOptions {
            report_on_seed: self.cfg.initial_sync == InitialSync::Record,
            resume_floor: Some(started.checked_sub(lookback).unwrap_or(started)),
        };
        let resources: Vec<Resource> = self.cfg.resources.iter().collect();
        let states_in_flight = Arc::new(tokio::sync::Semaphore::new(
            self.cfg.states_in_flight.max(STATE_CHUNK),
        ));
        let shared = Arc::new(Shared {
            states_in_flight,
            client: self.client,
            cfg: self.cfg,
            stats: self.stats,
            clock: self.clock,
        });
        let mut tasks = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        let mut restored = self.restored;
        for res in resources {
            let sh = shared.clone();
            let tx = tx.clone();
            let counts = restored.counts.remove(&res);
            let r = &mut restored;
            let handle = match res {
                Resource::Events => match sh.cfg.events_api {
                    EventsApi::CoreV1 => {
                        let t = Restored::take(&mut r.events, opts);
                        tasks.spawn(run_resource(sh, res, t, counts, tx))
                    }
                    EventsApi::EventsV1 => {
                        let t = Restored::take(&mut r.events_v1, opts);
                        tasks.spawn(run_resource(sh, res, t, counts, tx))
                    }
                },
                Resource::Pods => {
                    let t = Restored::take(&mut r.pods, opts);
                    tasks.spawn(run_resource(sh, res, t, counts, tx))
                }
                Resource::Nodes => {
                    let t = Restored::take(&mut r.nodes, opts);
                    tasks.spawn(run_resource(sh, res, t, counts, tx))
                }
            };
            names.insert(handle.id(), res);
        }
        drop(tx);
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    tasks.abort_all();
                    return Err(e);
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    let resource = names
                        .get(&e.id())
                        .map_or_else(|| "?".to_string(), |r| r.to_string());
                    tasks.abort_all();
                    return Err(WatchError::Task {
                        resource,
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why a resource loop stopped.
enum Stop {
    /// The consumer went away.
    Closed,
    /// An error (the caller decides whether to retry).
    Failed(WatchError),
}

impl From<WatchError> for Stop {
    fn from(e: WatchError) -> Self {
        Stop::Failed(e)
    }
}

/// What applying a list (or one page of it) produced.
#[derive(Default)]
struct ListOutcome {
    /// Items in the list.
    objects: u64,
    /// Items that could not be decoded.
    malformed: u64,
    /// Records sent.
    records: u64,
    /// Whether the consumer went away.
    closed: bool,
    /// The list's metadata (resourceVersion, continue token).
    meta: ListMeta,
}

/// How a watch stream ended without an error.
enum WatchEnd {
    /// The server closed it (timeout) or it went idle; re-watch from the last resourceVersion.
    Closed {
        /// Lines received.
        lines: u64,
    },
    /// `410 Expired`: re-list.
    Expired,
}

async fn run_resource<T: Tracker>(
    sh: Arc<Shared>,
    res: Resource,
    mut state: T,
    restored: Option<(usize, usize)>,
    tx: mpsc::Sender<WatchItem>,
) -> Result<(), WatchError> {
    if let Some((restored, unreadable)) = restored {
        if state.len() > 0 {
            // The state is that of a complete sync as of the stored checkpoint.
            state.set_listed();
        }
        tracing::info!(resource = %res, restored, unreadable, tracked = state.len(), "compact state restored");
    }
    let closed = tx.clone();
    let mut lw = ListWatch::new(sh, res, state, tx);
    tokio::select! {
        r = lw.run() => match r {
            Ok(()) | Err(Stop::Closed) => Ok(()),
            Err(Stop::Failed(e)) => Err(e),
        },
        _ = closed.closed() => Ok(()),
    }
}

/// The list/watch loop of one resource.
struct ListWatch<T> {
    sh: Arc<Shared>,
    res: Resource,
    path: String,
    state: T,
    tx: mpsc::Sender<WatchItem>,
    /// Last resourceVersion seen (list, object or bookmark).
    rv: Option<String>,
    /// Last resourceVersion sent as a checkpoint.
    checkpointed: Option<String>,
    /// Whether `Synced` was sent.
    synced: bool,
    /// Whether the next re-list must use `resourceVersion=0` (a `NotOlderThan` re-list failed).
    relist_from_zero: bool,
    /// Inside a streaming list's initial events: the keys seen so far (only collected when
    /// [`ListWatch::collect_listed`]).
    initial: Option<HashSet<String>>,
    /// Objects among the streaming list's initial events so far.
    initial_objects: u64,
    /// Whether the current list collects the listed keys: only when the state had objects at
    /// its start (with an empty state nothing can be gone, and 200,000 keys are not kept).
    collect_listed: bool,
    /// Whether the last watch completed a streaming list.
    synced_by_stream: bool,
    /// Whether the server takes streaming lists (`None`: not known yet).
    streaming_supported: Option<bool>,
    /// Keys whose compact state changed since the last checkpoint.
    dirty: HashSet<String>,
    /// Whether every tracked object changed since the last checkpoint (after a list); `dirty`
    /// then holds only the objects that are gone.
    all_dirty: bool,
}

impl<T: Tracker> ListWatch<T> {
    fn new(sh: Arc<Shared>, res: Resource, state: T, tx: mpsc::Sender<WatchItem>) -> Self {
        let path = match res {
            Resource::Events => sh.cfg.events_api.path(sh.cfg.namespace.as_deref()),
            _ => res.path(sh.cfg.namespace.as_deref()),
        };
        Self {
            sh,
            res,
            path,
            state,
            tx,
            rv: None,
            checkpointed: None,
            synced: false,
            relist_from_zero: false,
            initial: None,
            initial_objects: 0,
            collect_listed: false,
            synced_by_stream: false,
            streaming_supported: None,
            dirty: HashSet::new(),
            all_dirty: false,
        }
    }

    async fn run(&mut self) -> Result<(), Stop> {
        let resume = self
            .sh
            .cfg
            .resume
            .get(self.res.as_str())
            .filter(|rv| !rv.is_empty())
            .cloned();
        let mut need_list = match resume {
            Some(rv) => {
                tracing::info!(resource = %self.res, resource_version = %rv, "resuming watch from checkpoint without listing");
                self.rv = Some(rv.clone());
                self.checkpointed = Some(rv);
                false
            }
            None => true,
        };
        let mut backoff = Backoff::new(self.sh.cfg.backoff_initial, self.sh.cfg.backoff_max);
        let mut watched_before = false;
        loop {
            let streaming = need_list && self.streaming().await;
            if need_list && !streaming {
                match self.list().await {
                    Ok(()) => {
                        need_list = false;
                        backoff.reset();
                    }
                    Err(Stop::Closed) => return Err(Stop::Closed),
                    Err(Stop::Failed(e)) => {
                        if e.is_expired() {
                            self.sh.stats.add_expired(self.res, 1);
                            self.relist_from_zero = true;
                        }
                        self.failed(e, "list", &mut backoff).await?;
                        continue;
                    }
                }
            }
            if watched_before {
                self.sh.stats.add_watch_restarts(self.res, 1);
            }
            watched_before = true;
            let started = Instant::now();
            let outcome = self.watch(streaming).await;
            if streaming && self.initial.is_none() && self.synced_by_stream {
                // The streaming list completed on this connection.
                need_list = false;
            }
            self.initial = None;
            self.synced_by_stream = false;
            if started.elapsed() >= HEALTHY_WATCH {
                backoff.reset();
            }
            match outcome {
                Ok(WatchEnd::Closed { lines }) => {
                    tracing::debug!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), lines, "watch ended; re-watching");
                    if lines == 0 && started.elapsed() < Duration::from_secs(1) {
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
                Ok(WatchEnd::Expired) => {
                    self.expired(started, &mut backoff).await;
                    need_list = true;
                }
                Err(Stop::Closed) => return Err(Stop::Closed),
                Err(Stop::Failed(e)) if e.is_expired() => {
                    self.expired(started, &mut backoff).await;
                    need_list = true;
                }
                Err(Stop::Failed(e))
                    if streaming
                        && self.sh.cfg.list_strategy == ListStrategy::Auto
                        && matches!(e.code(), Some(400 | 422)) =>
                {
                    // The server knows the parameters but has the feature switched off.
                    tracing::info!(resource = %self.res, error = %e, "streaming list refused; listing from the watch cache instead");
                    self.streaming_supported = Some(false);
                }
                Err(Stop::Failed(e)) => self.failed(e, "watch", &mut backoff).await?,
            }
        }
    }

    /// Whether the next sync is a streaming list: always with [`ListStrategy::Streaming`], never
    /// with `cached` or `paginated`; with `auto`, when the server is 1.27 or newer and has not
    /// refused one.
    async fn streaming(&mut self) -> bool {
        match self.sh.cfg.list_strategy {
            ListStrategy::Streaming => true,
            ListStrategy::Cached | ListStrategy::Paginated => false,
            ListStrategy::Auto => {
                if let Some(known) = self.streaming_supported {
                    return known;
                }
                let supported = match self.sh.client.apiserver_version().await {
                    Ok(info) => {
                        let minor: u32 = info
                            .minor
                            .trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .unwrap_or(0);
                        info.major == "1" && minor >= 27
                    }
                    Err(e) => {
                        tracing::debug!(resource = %self.res, error = %e, "GET /version failed; not trying a streaming list");
                        false
                    }
                };
                tracing::debug!(resource = %self.res, supported, "streaming list support detected");
                self.streaming_supported = Some(supported);
                supported
            }
        }
    }

    /// Counts and logs a failed request, and waits before the next one: the server's
    /// `Retry-After` for 429 (and any answer that carries one), [`WatcherConfig::denied_retry`]
    /// for 401/403, jittered exponential backoff otherwise. A permanent failure (400, 404)
    /// before the initial sync ends the resource's loop.
    async fn failed(
        &mut self,
        e: WatchError,
        what: &'static str,
        backoff: &mut Backoff,
    ) -> Result<(), Stop> {
        let res = self.res;
        self.sh.stats.add_errors(res, 1);
        if e.is_permanent() && !self.synced {
            return Err(Stop::Failed(e));
        }
        let rv = self.rv.clone().unwrap_or_default();
        if e.is_denied() {
            self.sh.stats.add_denied(res, 1);
            let delay = self.sh.cfg.denied_retry;
            tracing::error!(
                resource = %res,
                error = %e,
                retry_in_secs = delay.as_secs(),
                "permission denied: herald needs get, list and watch on {res} (see the RBAC section of docs/configuration.md)"
            );
            tokio::time::sleep(delay).await;
            return Ok(());
        }
        if e.code() == Some(429) {
            self.sh.stats.add_throttled(res, 1);
        }
        let delay = match e.retry_after() {
            // A little jitter so that every resource does not come back at the same instant.
            Some(wait) => wait + Backoff::jitter(wait / 10),
            None => backoff.next(),
        };
        tracing::warn!(resource = %res, resource_version = %rv, error = %e, retry_in_ms = delay.as_millis() as u64, "{what} failed");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// A watch that started at `started` answered 410: count it and, when it expired at once
    /// (a server that keeps expiring fresh resourceVersions), wait before re-listing so the loop
    /// cannot spin on full lists.
    async fn expired(&mut self, started: Instant, backoff: &mut Backoff) {
        self.sh.stats.add_relists(self.res, 1);
        tracing::info!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), "resourceVersion expired (410); re-listing");
        if started.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(backoff.next()).await;
        }
    }

    fn ctx(&self) -> (String, Timestamp) {
        (self.sh.cfg.cluster.clone(), self.sh.clock.now())
    }

    async fn send(&self, item: WatchItem) -> Result<(), Stop> {
        self.tx.send(item).await.map_err(|_| Stop::Closed)
    }

    async fn send_records(&self, records: Vec<Record>) -> Result<(), Stop> {
        let n = records.len() as u64;
        for r in records {
            self.send(WatchItem::Record(r)).await?;
        }
        self.sh.stats.add_records(self.res, n);
        Ok(())
    }

    /// Sends a checkpoint at the last resourceVersion, unless it was already sent.
    async fn checkpoint(&mut self) -> Result<(), Stop> {
        if self.initial.is_some() {
            // Inside a streaming list's initial events there is no consistent position yet.
            return Ok(());
        }
        self.send_states().await?;
        let Some(rv) = self.rv.clone().filter(|rv| rv != "0") else {
            return Ok(());
        };
        if self.checkpointed.as_ref() == Some(&rv) {
            return Ok(());
        }
        self.send(WatchItem::Checkpoint(Checkpoint {
            resource: self.res.as_str().to_string(),
            resource_version: rv.clone(),
        }))
        .await?;
        self.checkpointed = Some(rv);
        self.sh.stats.add_checkpoints(self.res, 1);
        Ok(())
    }

    /// Sends the compact state of every object changed since the last checkpoint (in chunks),
    /// when [`WatcherConfig::persist_state`] is on.
    async fn send_states(&mut self) -> Result<(), Stop> {
        if !self.sh.cfg.persists_states_of(self.res) {
            self.dirty.clear();
            self.all_dirty = false;
            return Ok(());
        }
        if self.dirty.is_empty() && !self.all_dirty {
            return Ok(());
        }
        let mut keys: Vec<String> = self.dirty.drain().collect();
        if std::mem::take(&mut self.all_dirty) {
            keys.extend(self.state.keys());
        }
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(STATE_CHUNK) {
            // Wait until the consumer has persisted (dropped) enough earlier states.
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let permit = self
                .sh
                .states_in_flight
                .clone()
                .acquire_many_owned(n)
                .await
                .map_err(|_| Stop::Closed)?;
            let states = chunk
                .iter()
                .map(|k| ObjectState {
                    key: k.clone(),
                    state: self.state.export(k),
                })
                .collect();
            self.send(WatchItem::States {
                resource: self.res.as_str().to_string(),
                states,
                permit: StatesPermit(Some(permit)),
            })
            .await?;
        }
        Ok(())
    }

    /// After a complete list: forgets the objects not in `listed`, marking them changed, and
    /// marks every listed object changed. `None`: the state was empty when the list started,
    /// so every tracked object was listed and nothing is gone.
    fn remove_unlisted(
        &mut self,
        listed: Option<&HashSet<String>>,
        ctx: &RecordCtx<'_>,
    ) -> Vec<Record> {
        if self.sh.cfg.persists_states_of(self.res) {
            // Every listed object is (re)written at the next checkpoint.
            self.all_dirty = true;
        }
        let Some(listed) = listed else {
            return Vec::new();
        };
        if self.sh.cfg.persists_states_of(self.res) {
            let gone = self
                .state
                .keys()
                .into_iter()
                .filter(|k| !listed.contains(k));
            self.dirty.extend(gone);
        }
        self.state.remove_unlisted(listed, ctx)
    }

    async fn mark_synced(&mut self) -> Result<(), Stop> {
        if !self.synced {
            self.synced = true;
            self.send(WatchItem::Synced {
                resource: self.res.as_str().to_string(),
            })
            .await?;
        }
        Ok(())
    }

    /// `labelSelector` / `fieldSelector` of the resource, when configured.
    fn selector_params(&self) -> Vec<(&'static str, String)> {
        let sel = self.sh.cfg.selectors_for(self.res);
        let mut q = Vec::new();
        if let Some(l) = sel.label_selector.filter(|l| !l.is_empty()) {
            q.push(("labelSelector", l));
        }
        if let Some(f) = sel.field_selector.filter(|f| !f.is_empty()) {
            q.push(("fieldSelector", f));
        }
        q
    }

    /// A `GET` of the collection with `query`, accepting JSON (uncompressed for watches).
    fn get(
        &self,
        query: &[(&'static str, String)],
        watch: bool,
    ) -> Result<http::Request<Vec<u8>>, WatchError> {
        let mut builder = http::Request::get(url_with_query(&self.path, query))
            .header(http::header::ACCEPT, "application/json");
        if watch {
            builder = builder.header(http::header::ACCEPT_ENCODING, "identity");
        }
        builder.body(Vec::new()).map_err(|e| WatchError::Transport {
            method: "GET",
            path: self.path.clone(),
            message: format!("cannot build the request: {e}"),
        })
    }

    /// Lists the resource ([`ListStrategy::Cached`] or [`ListStrategy::Paginated`]) and applies
    /// every item as it is decoded; on a re-list, diffs against the state.
    async fn list(&mut self) -> Result<(), Stop> {
        let relist = self.rv.is_some();
        let paginated = self.sh.cfg.list_strategy == ListStrategy::Paginated;
        let (cluster, now) = self.ctx();
        let mut listed = HashSet::new();
        self.collect_listed = self.state.len() > 0;
        let mut total = ListOutcome::default();
        let mut list_rv: Option<String> = None;
        let mut cont: Option<String> = None;
        let mut pages = 0u32;
        loop {
            let mut query = self.selector_params();
            if paginated {
                // resourceVersion unset: the newest state, read from etcd page by page.
                query.push(("limit", self.sh.cfg.page_size.max(1).to_string()));
                if let Some(c) = &cont {
                    query.push(("continue", c.clone()));
                }
            } else {
                match self.rv.as_deref().filter(|_| !self.relist_from_zero) {
                    Some(rv) if rv != "0" => {
                        query.push(("resourceVersion", rv.to_string()));
                        query.push(("resourceVersionMatch", "NotOlderThan".to_string()));
                    }
                    _ => query.push(("resourceVersion", "0".to_string())),
                }
            }
            let req = self.get(&query, false)?;
            tracing::debug!(resource = %self.res, uri = %req.uri(), relist, page = pages, "listing");
            self.sh.stats.add_request(self.res, Verb::List);
            let reader = request::get_stream(&self.sh.client, &self.path, req).await?;
            let (back, page) = self.apply_list_body(reader, listed, &cluster, now).await?;
            listed = back;
            pages += 1;
            total.objects += page.objects;
            total.malformed += page.malformed;
            total.records += page.records;
            if list_rv.is_none() {
                list_rv = page.meta.resource_version.clone();
            }
            match page.meta.continue_token.filter(|c| !c.is_empty()) {
                Some(c) if paginated => cont = Some(c),
                _ => break,
            }
        }

        let ctx = RecordCtx {
            cluster: &cluster,
            now,
        };
        let gone = self.remove_unlisted(self.collect_listed.then_some(&listed), &ctx);
        let gone_count = gone.len();
        self.state.set_listed();
        self.sh.stats.add_lists(self.res, 1);
        self.relist_from_zero = false;

        let list_rv = match list_rv {
            Some(rv) => rv,
            None => {
                tracing::warn!(resource = %self.res, "list response has no resourceVersion; watching from 0");
                "0".to_string()
            }
        };
        tracing::info!(
            resource = %self.res,
            resource_version = %list_rv,
            strategy = if paginated { "paginated" } else { "cached" },
            pages,
            objects = total.objects,
            tracked = self.state.len(),
            records = total.records + gone_count as u64,
            malformed = total.malformed,
            relist,
            "listed"
        );
        self.send_records(gone).await?;
        self.rv = Some(list_rv);
        self.checkpoint().await?;
        self.mark_synced().await
    }

    /// Reads one list body as it arrives and applies each item on a blocking thread (decoding
    /// and applying a large list is CPU work), which sends the records as they are produced.
    /// Memory stays bounded: a few chunks in flight and the item being decoded; the state and
    /// the set of listed keys are moved to that thread and back.
    async fn apply_list_body(
        &mut self,
        reader: impl AsyncRead + Send + 'static,
        mut listed: HashSet<String>,
        cluster: &str,
        now: Timestamp,
    ) -> Result<(HashSet<String>, ListOutcome), Stop> {
        let (chunks_tx, mut chunks_rx) = mpsc::channel::<Vec<u8>>(LIST_CHUNKS_IN_FLIGHT);
        let res = self.res;
        let tx = self.tx.clone();
        let collect = self.collect_listed;
        let cluster = cluster.to_string();
        let mut state = std::mem::take(&mut self.state);
        let decoder = tokio::task::spawn_blocking(move || {
            let ctx = RecordCtx {
                cluster: &cluster,
                now,
            };
            let mut out = ListOutcome::default();
            let mut dec = ListDecoder::new();
            let mut on_item = |item: Result<serde_json::Value, decode::Malformed>| {
                out.objects += 1;
                let decoded = item.and_then(decode::decode::<T::Object>);
                match decoded {
                    Ok(obj) => {
                        if let (true, Some(key)) = (collect, T::key(&obj)) {
                            listed.insert(key);
                        }
                        for r in state.apply(obj, Source::List, &ctx) {
                            if tx.blocking_send(WatchItem::Record(r)).is_err() {
                                out.closed = true;
                                return false;
                            }
                            out.records += 1;
                        }
                    }
                    Err(m) => {
                        out.malformed += 1;
                        log_malformed(res, &m, None);
                    }
                }
                true
            };
            let mut result = Ok(());
            while let Some(chunk) = chunks_rx.blocking_recv() {
                match dec.feed(&chunk, &mut on_item) {
                    Ok(Feed::More | Feed::Complete) => {}
                    Ok(Feed::Stopped) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            drop(chunks_rx);
            let meta = result.and_then(|()| dec.finish());
            (state, listed, out, meta)
        });

        let mut reader = pin!(reader);
        let mut buf = vec![0u8; LIST_CHUNK];
        let read: Result<(), WatchError> = loop {
            match tokio::time::timeout(LIST_IDLE, reader.read(&mut buf)).await {
                Err(_) => {
                    break Err(WatchError::Transport {
                        method: "GET",
                        path: self.path.clone(),
                        message: format!("list stalled: no data for {}s", LIST_IDLE.as_secs()),
                    });
                }
                Ok(Err(e)) => {
                    break Err(WatchError::Transport {
                        method: "GET",
                        path: self.path.clone(),
                        message: format!("reading the list: {e}"),
                    });
                }
                Ok(Ok(0)) => break Ok(()),
                Ok(Ok(n)) => {
                    if chunks_tx.send(buf[..n].to_vec()).await.is_err() {
                        // The decoder stopped (consumer gone, or a decode error).
                        break Ok(());
                    }
                }
            }
        };
        drop(chunks_tx);
        let (state, listed, out, meta) = decoder.await.map_err(|e| WatchError::Task {
            resource: self.res.to_string(),
            message: e.to_string(),
        })?;
        self.state = state;
        self.sh.stats.add_records(self.res, out.records);
        self.sh.stats.add_malformed(self.res, out.malformed);
        if out.closed {
            return Err(Stop::Closed);
        }
        read?;
        let meta = meta.map_err(|e| WatchError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        Ok((listed, ListOutcome { meta, ..out }))
    }

    /// One watch request, read to its end. With `streaming`, it is a streaming list
    /// (`sendInitialEvents=true`): the objects that arrive before the BOOKMARK annotated
    /// `k8s.io/initial-events-end` are the listed state, and the same connection then goes on
    /// as an ordinary watch.
    async fn watch(&mut self, streaming: bool) -> Result<WatchEnd, Stop> {
        let from = self.rv.clone().unwrap_or_else(|| "0".to_string());
        let timeout_secs = self.sh.cfg.watch_timeout.as_secs().max(1);
        let mut query = vec![
            ("watch", "true".to_string()),
            ("allowWatchBookmarks", "true".to_string()),
            ("timeoutSeconds", timeout_secs.to_string()),
        ];
        if streaming {
            // resourceVersion unset: the newest state, served from the watch cache.
            query.push(("sendInitialEvents", "true".to_string()));
            query.push(("resourceVersionMatch", "NotOlderThan".to_string()));
            self.initial = Some(HashSet::new());
            self.initial_objects = 0;
            self.collect_listed = self.state.len() > 0;
        } else {
            query.push(("resourceVersion", from.clone()));
        }
        query.extend(self.selector_params());
        let req = self.get(&query, true)?;
        tracing::debug!(resource = %self.res, resource_version = %from, streaming, uri = %req.uri(), "watching");
        self.sh.stats.add_request(self.res, Verb::Watch);
        let reader = request::get_stream(&self.sh.client, &self.path, req).await?;
        self.sh.stats.add_watches(self.res, 1);
        if !streaming {
            self.mark_synced().await?;
        }

        let idle = Duration::from_secs(timeout_secs) + IDLE_GRACE;
        let mut reader = pin!(futures::io::BufReader::with_capacity(64 * 1024, reader));
        let mut line = Vec::with_capacity(16 * 1024);
        let mut lines = 0u64;
        let mut quiet_events = 0u32;
        loop {
            line.clear();
            match tokio::time::timeout(idle, reader.read_until(b'\n', &mut line)).await {
                Err(_) => {
                    tracing::warn!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), idle_secs = idle.as_secs(), "watch stream idle; re-watching");
                    self.checkpoint().await?;
                    return Ok(WatchEnd::Closed { lines });
                }
                Ok(Err(e)) => {
                    self.checkpoint().await?;
                    return Err(Stop::Failed(WatchError::Transport {
                        method: "GET",
                        path: self.path.clone(),
                        message: format!("reading the watch stream: {e}"),
                    }));
                }
                Ok(Ok(0)) => {
                    self.checkpoint().await?;
                    return Ok(WatchEnd::Closed { lines });
                }
                Ok(Ok(_)) => {}
            }
            let complete = line.last() == Some(&b'\n');
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            lines += 1;
            let frame = match decode::parse_frame::<T::Object>(text) {
                Ok(f) => f,
                Err(_) if !complete => {
                    // The connection ended in the middle of an event: nothing of it is applied;
                    // the next watch starts from the last complete event's resourceVersion.
                    tracing::warn!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), bytes = text.len(), "watch stream cut in the middle of an event; re-watching");
                    self.checkpoint().await?;
                    return Ok(WatchEnd::Closed { lines });
                }
                Err(e) => {
                    self.sh.stats.add_malformed(self.res, 1);
                    tracing::warn!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), error = %e, "malformed watch line skipped");
                    continue;
                }
            };
            self.sh
                .stats
                .set_last_event(self.res, self.sh.clock.now().as_millisecond());
            match frame {
                Frame::Bookmark {
                    resource_version,
                    initial_events_end,
                } => {
                    self.sh.stats.add_bookmarks(self.res, 1);
                    if let Some(rv) = resource_version {
                        self.rv = Some(rv);
                    }
                    if self.initial.is_some() {
                        if initial_events_end {
                            self.finish_initial().await?;
                        }
                    } else {
                        self.checkpoint().await?;
                    }
                    quiet_events = 0;
                }
                Frame::Error {
                    code,
                    reason,
                    message,
                } => {
                    self.checkpoint().await?;
                    if code == 410 {
                        self.sh.stats.add_expired(self.res, 1);
                        return Ok(WatchEnd::Expired);
                    }
                    return Err(Stop::Failed(WatchError::Api {
                        method: "GET",
                        path: self.path.clone(),
                        code,
                        reason,
                        message,
                        retry_after: None,
                    }));
                }
                Frame::Other(kind) => {
                    tracing::debug!(resource = %self.res, event_type = %kind, "unknown watch event type ignored");
                }
                Frame::Object { kind, object } if self.initial.is_some() => {
                    // Part of a streaming list: the listed state. Its resourceVersions are not
                    // in order; the position is the closing bookmark's.
                    let records = self.apply_initial(kind, object);
                    self.send_records(records).await?;
                }
                Frame::Object { kind, object } => {
                    let rv = object.resource_version();
                    let records = self.apply_event(kind, object, rv.as_deref());
                    if let Some(rv) = rv {
                        self.rv = Some(rv);
                    }
                    quiet_events += 1;
                    if !records.is_empty() || quiet_events >= self.sh.cfg.checkpoint_every.max(1) {
                        self.send_records(records).await?;
                        self.checkpoint().await?;
                        quiet_events = 0;
                    }
                }
            }
        }
    }

    /// An object of a streaming list's initial events: applied as a listed item.
    fn apply_initial(&mut self, kind: ObjectEvent, object: Payload<T::Object>) -> Vec<Record> {
        if kind != ObjectEvent::Added {
            tracing::debug!(resource = %self.res, ?kind, "unexpected event type among initial events; applied as listed");
        }
        let obj = match decode::decode_payload(object) {
            Ok(obj) => obj,
            Err(m) => {
                self.sh.stats.add_malformed(self.res, 1);
                log_malformed(self.res, &m, None);
                return Vec::new();
            }
        };
        self.initial_objects += 1;
        if let (true, Some(key), Some(listed)) =
            (self.collect_listed, T::key(&obj), self.initial.as_mut())
        {
            listed.insert(key);
        }
        let (cluster, now) = self.ctx();
        let ctx = RecordCtx {
            cluster: &cluster,
            now,
        };
        self.state.apply(obj, Source::List, &ctx)
    }

    /// The initial events of a streaming list ended: objects not among them are gone, the
    /// position is checkpointed and the resource is synced.
    async fn finish_initial(&mut self) -> Result<(), Stop> {
        let listed = self.initial.take().unwrap_or_default();
        let (cluster, now) = self.ctx();
        let ctx = RecordCtx {
            cluster: &cluster,
            now,
        };
        let gone = self.remove_unlisted(self.collect_listed.then_some(&listed), &ctx);
        self.state.set_listed();
        self.sh.stats.add_lists(self.res, 1);
        self.relist_from_zero = false;
        tracing::info!(
            resource = %self.res,
            resource_version = self.rv.as_deref().unwrap_or(""),
            strategy = "streaming",
            objects = self.initial_objects,
            tracked = self.state.len(),
            gone = gone.len(),
            "listed"
        );
        self.send_records(gone).await?;
        self.synced_by_stream = true;
        self.checkpoint().await?;
        self.mark_synced().await
    }

    fn apply_event(
        &mut self,
        kind: ObjectEvent,
        object: Payload<T::Object>,
        rv: Option<&str>,
    ) -> Vec<Record> {
        let (cluster, now) = self.ctx();
        let ctx = RecordCtx {
            cluster: &cluster,
            now,
        };
        let dirty = self
            .sh
            .cfg
            .persists_states_of(self.res)
            .then_some(&mut self.dirty);
        apply_watch_object(
            &mut self.state,
            dirty,
            self.res,
            &self.sh.stats,
            kind,
            object,
            rv,
            &ctx,
        )
    }
}

/// Decodes the object of one watch event and applies it to `state`: the step shared by the
/// live watch loop and [`crate::replay::Replay`]. A malformed object is logged, counted and
/// skipped (no records). The key of a decoded object goes into `dirty` when given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_watch_object<T: Tracker>(
    state: &mut T,
    dirty: Option<&mut HashSet<String>>,
    res: Resource,
    stats: &WatcherStats,
    kind: ObjectEvent,
    object: Payload<T::Object>,
    rv: Option<&str>,
    ctx: &RecordCtx<'_>,
) -> Vec<Record> {
    let obj = match decode::decode_payload(object) {
        Ok(obj) => obj,
        Err(m) => {
            stats.add_malformed(res, 1);
            log_malformed(res, &m, rv);
            return Vec::new();
        }
    };
    if let (Some(dirty), Some(key)) = (dirty, T::key(&obj)) {
        dirty.insert(key);
    }
    match kind {
        ObjectEvent::Added => state.apply(obj, Source::Added, ctx),
        ObjectEvent::Modified => state.apply(obj, Source::Modified, ctx),
        ObjectEvent::Deleted => state.delete(&obj, ctx),
    }
}

/// `path?k=v&...`, keys and values percent-encoded (everything but RFC 3986 unreserved).
fn url_with_query(path: &str, query: &[(&'static str, String)]) -> String {
    let mut url = String::from(path);
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        percent_encode(k, &mut url);
        url.push('=');
        percent_encode(v, &mut url);
    }
    url
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn log_malformed(res: Resource, m: &decode::Malformed, rv: Option<&str>) {
    tracing::warn!(
        resource = %res,
        kind = m.identity.kind.as_deref().unwrap_or(res.kind()),
        namespace = m.identity.namespace.as_deref().unwrap_or(""),
        name = m.identity.name.as_deref().unwrap_or("?"),
        resource_version = rv.unwrap_or(""),
        error = %m.error,
        "malformed object skipped"
    );
}

/// Exponential backoff with jitter: each delay is uniform in [d/2, d], d doubling up to a cap.
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(ms.div_ceil(2)..=ms))
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }

    /// A random wait in `[0, max]`.
    fn jitter(max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded() {
        let q = [
            ("labelSelector", "app=cart,tier!=cache".to_string()),
            ("resourceVersion", "0".to_string()),
        ];
        assert_eq!(
            url_with_query("/api/v1/pods", &q),
            "/api/v1/pods?labelSelector=app%3Dcart%2Ctier%21%3Dcache&resourceVersion=0"
        );
        assert_eq!(url_with_query("/api/v1/pods", &[]), "/api/v1/pods");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let d: Vec<_> = (0..6).map(|_| b.next().as_millis()).collect();
        assert!((50..=100).contains(&d[0]), "{d:?}");
        assert!((100..=200).contains(&d[1]), "{d:?}");
        assert!(d[5] <= 800 && d[5] >= 400, "{d:?}");
        b.reset();
        assert!(b.next().as_millis() <= 100);
    }
}
