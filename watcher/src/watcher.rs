//! The list/watch loops: one task per resource, each with its own compact state, talking to the
//! API server with raw requests through [`kube::Client`] (the same path for a real cluster and
//! the simulator).
//!
//! Per resource:
//! 1. **List** `GET /api/v1/{resource}?resourceVersion=0` (served from the watch cache), unless
//!    [`WatcherConfig::resume`] has a resourceVersion for it. Items are decoded one at a time
//!    and applied to the state; the records, a checkpoint at the list's resourceVersion, and
//!    [`WatchItem::Synced`] follow.
//! 2. **Watch** `GET /api/v1/{resource}?watch=true&timeoutSeconds=N&allowWatchBookmarks=true&resourceVersion=RV`
//!    from the last resourceVersion seen (objects and bookmarks). The stream is read line by
//!    line; malformed lines and objects are logged, counted ([`WatcherStats::malformed`]) and
//!    skipped. When the stream ends, the watch is re-established from the last resourceVersion
//!    (with jittered exponential backoff after errors or empty streams).
//! 3. On **410 Expired** (HTTP status or in-stream `ERROR` Status), **re-list**
//!    (`resourceVersion=<last>&resourceVersionMatch=NotOlderThan`, so the answer is never older
//!    than what was seen; `resourceVersion=0` if that fails with 410 too) and diff against the
//!    state: unknown objects are new, missing objects are deleted, Event counts give deltas.
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

use futures::{AsyncBufReadExt, AsyncReadExt};
use herald_core::{Checkpoint, Clock, Record, SystemClock, Timestamp};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{InitialSync, Resource, WatcherConfig};
use crate::decode::{self, Frame, ObjectEvent};
use crate::error::WatchError;
use crate::state::event::EventState;
use crate::state::node::NodeState;
use crate::state::pod::PodState;
use crate::state::{RecordCtx, Source, StateOptions, Tracker};
use crate::stats::WatcherStats;

/// Longest time a list request may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(300);
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
    /// The resource finished its initial sync (its first list, or its first watch connection
    /// when resuming). Sent once per resource.
    Synced {
        /// The resource (`events`, `pods`, `nodes`).
        resource: String,
    },
}

/// Watches the configured resources and sends [`WatchItem`]s.
pub struct Watcher {
    client: kube::Client,
    cfg: WatcherConfig,
    stats: WatcherStats,
    clock: Arc<dyn Clock>,
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
}

impl Watcher {
    /// A watcher using `client`.
    pub fn new(client: kube::Client, cfg: WatcherConfig) -> Self {
        Self {
            client,
            cfg,
            stats: WatcherStats::default(),
            clock: Arc::new(SystemClock),
        }
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
        let shared = Arc::new(Shared {
            client: self.client,
            cfg: self.cfg,
            stats: self.stats,
            clock: self.clock,
        });
        let mut tasks = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        for res in resources {
            let sh = shared.clone();
            let tx = tx.clone();
            let handle = match res {
                Resource::Events => tasks.spawn(run_resource(sh, res, EventState::new(opts), tx)),
                Resource::Pods => tasks.spawn(run_resource(sh, res, PodState::new(opts), tx)),
                Resource::Nodes => tasks.spawn(run_resource(sh, res, NodeState::new(opts), tx)),
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

/// What applying a list produced.
#[derive(Default)]
struct ListOutcome {
    /// Keys of the listed objects.
    listed: HashSet<String>,
    /// Items in the list.
    objects: u64,
    /// Items that could not be decoded.
    malformed: u64,
    /// Records sent.
    records: u64,
    /// Whether the consumer went away.
    closed: bool,
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
    state: T,
    tx: mpsc::Sender<WatchItem>,
) -> Result<(), WatchError> {
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
}

impl<T: Tracker> ListWatch<T> {
    fn new(sh: Arc<Shared>, res: Resource, state: T, tx: mpsc::Sender<WatchItem>) -> Self {
        let path = res.path(sh.cfg.namespace.as_deref());
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
        loop {
            if need_list {
                match self.list().await {
                    Ok(()) => {
                        need_list = false;
                        backoff.reset();
                    }
                    Err(Stop::Closed) => return Err(Stop::Closed),
                    Err(Stop::Failed(e)) => {
                        self.sh.stats.add_errors(1);
                        if e.is_permanent() && !self.synced {
                            return Err(Stop::Failed(e));
                        }
                        if e.is_expired() {
                            self.relist_from_zero = true;
                        }
                        let delay = backoff.next();
                        tracing::warn!(resource = %self.res, error = %e, retry_in_ms = delay.as_millis() as u64, "list failed");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                }
            }
            let started = Instant::now();
            let outcome = self.watch().await;
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
                Err(Stop::Failed(e)) => {
                    self.sh.stats.add_errors(1);
                    if e.is_permanent() && !self.synced {
                        return Err(Stop::Failed(e));
                    }
                    let delay = backoff.next();
                    tracing::warn!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), error = %e, retry_in_ms = delay.as_millis() as u64, "watch failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// A watch that started at `started` answered 410: count it and, when it expired at once
    /// (a server that keeps expiring fresh resourceVersions), wait before re-listing so the loop
    /// cannot spin on full lists.
    async fn expired(&mut self, started: Instant, backoff: &mut Backoff) {
        self.sh.stats.add_relists(1);
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
        self.sh.stats.add_records(n);
        Ok(())
    }

    /// Sends a checkpoint at the last resourceVersion, unless it was already sent.
    async fn checkpoint(&mut self) -> Result<(), Stop> {
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
        self.sh.stats.add_checkpoints(1);
        Ok(())
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

    /// Lists the resource and applies every item; on a re-list, diffs against the state.
    async fn list(&mut self) -> Result<(), Stop> {
        let relist = self.rv.is_some();
        let mut query = self.selector_params();
        match self.rv.as_deref().filter(|_| !self.relist_from_zero) {
            Some(rv) if rv != "0" => {
                query.push(("resourceVersion", rv.to_string()));
                query.push(("resourceVersionMatch", "NotOlderThan".to_string()));
            }
            _ => query.push(("resourceVersion", "0".to_string())),
        }
        let req = self.get(&query, false)?;
        tracing::debug!(resource = %self.res, uri = %req.uri(), relist, "listing");

        let client = self.sh.client.clone();
        let path = self.path.clone();
        let body = tokio::time::timeout(LIST_TIMEOUT, async move {
            let reader = client
                .request_stream(req)
                .await
                .map_err(|e| WatchError::from_kube("GET", &path, e))?;
            let mut reader = pin!(reader);
            let mut body = Vec::new();
            reader
                .read_to_end(&mut body)
                .await
                .map_err(|e| WatchError::Transport {
                    method: "GET",
                    path: path.clone(),
                    message: format!("reading the list: {e}"),
                })?;
            Ok::<_, WatchError>(body)
        })
        .await
        .map_err(|_| WatchError::Transport {
            method: "GET",
            path: self.path.clone(),
            message: format!("list timed out after {}s", LIST_TIMEOUT.as_secs()),
        })??;

        // Decoding and applying a large list is CPU work: it runs on a blocking thread, which
        // sends the records as they are produced (bounded by the channel), with the state moved
        // in and back.
        let (cluster, now) = self.ctx();
        let res = self.res;
        let tx = self.tx.clone();
        let mut state = std::mem::take(&mut self.state);
        let joined = tokio::task::spawn_blocking(move || {
            let ctx = RecordCtx {
                cluster: &cluster,
                now,
            };
            let mut out = ListOutcome::default();
            let parsed = decode::for_each_list_item(&body, |item| {
                out.objects += 1;
                match decode::decode::<T::Object>(item) {
                    Ok(obj) => {
                        if let Some(key) = T::key(&obj) {
                            out.listed.insert(key);
                        }
                        for r in state.apply(&obj, Source::List, &ctx) {
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
            });
            drop(body);
            (state, out, parsed)
        })
        .await;
        let (state, out, parsed) = joined.map_err(|e| WatchError::Task {
            resource: self.res.to_string(),
            message: e.to_string(),
        })?;
        self.state = state;
        self.sh.stats.add_records(out.records);
        self.sh.stats.add_malformed(out.malformed);
        if out.closed {
            return Err(Stop::Closed);
        }
        let list_rv = parsed.map_err(|e| WatchError::Decode {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let ctx = RecordCtx {
            cluster: &self.sh.cfg.cluster,
            now,
        };
        let gone = self.state.remove_unlisted(&out.listed, &ctx);
        let gone_count = gone.len();
        self.state.set_listed();
        self.sh.stats.add_lists(1);
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
            objects = out.objects,
            tracked = self.state.len(),
            records = out.records + gone_count as u64,
            malformed = out.malformed,
            relist,
            "listed"
        );
        self.send_records(gone).await?;
        self.rv = Some(list_rv);
        self.checkpoint().await?;
        self.mark_synced().await
    }

    /// One watch request, read to its end.
    async fn watch(&mut self) -> Result<WatchEnd, Stop> {
        let from = self.rv.clone().unwrap_or_else(|| "0".to_string());
        let timeout_secs = self.sh.cfg.watch_timeout.as_secs().max(1);
        let mut query = vec![
            ("watch", "true".to_string()),
            ("resourceVersion", from.clone()),
            ("allowWatchBookmarks", "true".to_string()),
            ("timeoutSeconds", timeout_secs.to_string()),
        ];
        query.extend(self.selector_params());
        let req = self.get(&query, true)?;
        tracing::debug!(resource = %self.res, resource_version = %from, uri = %req.uri(), "watching");

        let reader = self
            .sh
            .client
            .request_stream(req)
            .await
            .map_err(|e| WatchError::from_kube("GET", &self.path, e))?;
        self.sh.stats.add_watches(1);
        self.mark_synced().await?;

        let idle = Duration::from_secs(timeout_secs) + IDLE_GRACE;
        let mut reader = pin!(reader);
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
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            lines += 1;
            let frame = match decode::parse_frame(text) {
                Ok(f) => f,
                Err(e) => {
                    self.sh.stats.add_malformed(1);
                    tracing::warn!(resource = %self.res, resource_version = self.rv.as_deref().unwrap_or(""), error = %e, "malformed watch line skipped");
                    continue;
                }
            };
            match frame {
                Frame::Bookmark { resource_version } => {
                    self.sh.stats.add_bookmarks(1);
                    if let Some(rv) = resource_version {
                        self.rv = Some(rv);
                    }
                    self.checkpoint().await?;
                    quiet_events = 0;
                }
                Frame::Error {
                    code,
                    reason,
                    message,
                } => {
                    self.checkpoint().await?;
                    if code == 410 {
                        return Ok(WatchEnd::Expired);
                    }
                    return Err(Stop::Failed(WatchError::Api {
                        method: "GET",
                        path: self.path.clone(),
                        code,
                        reason,
                        message,
                    }));
                }
                Frame::Other(kind) => {
                    tracing::debug!(resource = %self.res, event_type = %kind, "unknown watch event type ignored");
                }
                Frame::Object { kind, object } => {
                    let rv = decode::resource_version(&object);
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

    fn apply_event(
        &mut self,
        kind: ObjectEvent,
        object: serde_json::Value,
        rv: Option<&str>,
    ) -> Vec<Record> {
        let obj = match decode::decode::<T::Object>(object) {
            Ok(obj) => obj,
            Err(m) => {
                self.sh.stats.add_malformed(1);
                log_malformed(self.res, &m, rv);
                return Vec::new();
            }
        };
        let (cluster, now) = self.ctx();
        let ctx = RecordCtx {
            cluster: &cluster,
            now,
        };
        match kind {
            ObjectEvent::Added => self.state.apply(&obj, Source::Added, &ctx),
            ObjectEvent::Modified => self.state.apply(&obj, Source::Modified, &ctx),
            ObjectEvent::Deleted => self.state.delete(&obj, &ctx),
        }
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
