//! The service's HTTP API: history, incident and outbox queries for the CLI (which cannot
//! open the store while the service holds it), the few writes the CLI makes while the service
//! runs (`deliveries retry`, `silence add/expire`), `/healthz`, and Prometheus `/metrics`.
//! Binds to 127.0.0.1 unless configured otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::net::TcpListener;

use herald_core::{ObjectKind, ObjectRef, Timestamp};
use herald_store::Store;
use herald_watcher::{Resource, ResourceStats, Verb, WatcherStats};

use crate::delivery::OutboxHandle;
use crate::query::{history_from_store, incidents_from_store};
use crate::service::Stats;

/// Labels of a counter keyed by one `kind` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind: a record kind, a rule name, a channel name.
    pub kind: String,
}

/// Labels of incident transitions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IncidentLabels {
    /// Rule name.
    pub rule: String,
    /// Transition.
    pub transition: String,
}

/// Labels of delivery attempts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// Channel name.
    pub channel: String,
    /// `delivered`, `failed` or `dead`.
    pub outcome: String,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records persisted, by record kind.
    pub records: Family<KindLabel, Counter>,
    /// Incident transitions, by rule and transition.
    pub incidents: Family<IncidentLabels, Counter>,
    /// Delivery attempts, by channel and outcome.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Notifications settled without a send of their own, by channel and outcome
    /// (`digested`, `silenced`).
    pub settled: Family<DeliveryLabels, Counter>,
}

/// The watcher's counters, read at every scrape: `herald_watch_*` families labelled by
/// resource (and verb for requests).
#[derive(Debug)]
struct WatcherCollector(WatcherStats);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    resource: String,
    verb: String,
}

impl Collector for WatcherCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(Resource, ResourceStats)> = Resource::ALL
            .iter()
            .map(|r| (*r, self.0.resource(*r)))
            .collect();
        {
            let mut family = encoder.encode_descriptor(
                "watch_api_requests",
                "List and watch requests sent to the API server, by resource and verb",
                None,
                MetricType::Counter,
            )?;
            for (res, st) in &stats {
                for (verb, n) in [
                    (Verb::List, st.list_requests),
                    (Verb::Watch, st.watch_requests),
                ] {
                    let labels = RequestLabels {
                        resource: res.to_string(),
                        verb: verb.as_str().to_string(),
                    };
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        type Field = fn(&ResourceStats) -> u64;
        let counters: [(&str, &str, Field); 9] = [
            ("watch_relists", "Re-syncs after 410 Expired", |s| s.relists),
            (
                "watch_restarts",
                "Watches re-established after the previous one ended",
                |s| s.watch_restarts,
            ),
            (
                "watch_expired",
                "410 Expired answers (HTTP or in-stream)",
                |s| s.expired,
            ),
            ("watch_bookmarks", "BOOKMARK events received", |s| {
                s.bookmarks
            }),
            ("watch_records", "Records emitted by the watcher", |s| {
                s.records
            }),
            (
                "watch_malformed",
                "Malformed objects and watch lines skipped",
                |s| s.malformed,
            ),
            ("watch_errors", "Failed requests and watch streams", |s| {
                s.errors
            }),
            ("watch_throttled", "429 Too Many Requests answers", |s| {
                s.throttled
            }),
            ("watch_denied", "401 and 403 answers", |s| s.denied),
        ];
        for (name, help, field) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (res, st) in &stats {
                let labels = ResourceLabel {
                    resource: res.to_string(),
                };
                ConstCounter::new(field(st)).encode(family.encode_family(&labels)?)?;
            }
        }
        let now_ms = Timestamp::now().as_millisecond();
        let mut family = encoder.encode_descriptor(
            "watch_last_event_age_seconds",
            "Seconds since the last watch event (object or bookmark) of each resource",
            None,
            MetricType::Gauge,
        )?;
        for (res, st) in &stats {
            if let Some(ms) = st.last_event_ms {
                let labels = ResourceLabel {
                    resource: res.to_string(),
                };
                let age = (now_ms - ms).max(0) as f64 / 1000.0;
                ConstGauge::new(age).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Creates and registers every metric, the watcher's (read from `watcher`) included.
    pub fn new(watcher: WatcherStats) -> Self {
        let mut registry = Registry::with_prefix("herald");
        registry.register_collector(Box::new(WatcherCollector(watcher)));
        let records = Family::<KindLabel, Counter>::default();
        let incidents = Family::<IncidentLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("records", "Records persisted, by kind", records.clone());
        registry.register(
            "incident_transitions",
            "Incident transitions",
            incidents.clone(),
        );
        registry.register("delivery_attempts", "Delivery attempts", deliveries.clone());
        let settled = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "notifications_settled",
            "Notifications folded into a digest or silenced, by channel",
            settled.clone(),
        );
        Self {
            registry,
            records,
            incidents,
            deliveries,
            settled,
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Clone)]
struct AppState {
    store: Store,
    metrics: Arc<Metrics>,
    stats: Arc<Stats>,
    /// How many resources must finish their initial sync before `/readyz` says ready.
    expected_synced: u64,
    /// The running outbox, for `deliveries retry` (absent: retries only stored).
    outbox: Option<OutboxHandle>,
}

#[derive(Debug, Deserialize)]
struct HistoryParams {
    since: Option<Timestamp>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct IncidentParams {
    since: Option<Timestamp>,
    #[serde(default)]
    open: bool,
}

/// An error answer: status plus a one-line message.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<herald_store::StoreError> for ApiError {
    fn from(e: herald_store::StoreError) -> Self {
        tracing::error!(error = %e, "store query failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

async fn history(
    State(st): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
    Query(p): Query<HistoryParams>,
) -> Result<Response, ApiError> {
    let kind = match kind.as_str() {
        "pod" => ObjectKind::Pod,
        "node" => ObjectKind::Node,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown kind {other:?}"),
            ));
        }
    };
    let object = ObjectRef::parse_key(kind, &key)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let view = history_from_store(&st.store, object, p.since, p.limit.unwrap_or(1000))?;
    Ok(Json(view).into_response())
}

async fn incidents(
    State(st): State<AppState>,
    Query(p): Query<IncidentParams>,
) -> Result<Response, ApiError> {
    Ok(Json(incidents_from_store(&st.store, p.since, p.open)?).into_response())
}

#[derive(Debug, Deserialize)]
struct DeliveriesParams {
    state: Option<crate::deliveries::Which>,
}

#[derive(Debug, Deserialize)]
struct IdBody {
    id: String,
}

async fn deliveries(
    State(st): State<AppState>,
    Query(p): Query<DeliveriesParams>,
) -> Result<Response, ApiError> {
    let which = p.state.unwrap_or(crate::deliveries::Which::All);
    Ok(Json(crate::deliveries::list_from_store(&st.store, which)?).into_response())
}

/// Puts a dead letter back into the outbox and hands it to its channel's worker.
async fn retry_delivery(
    State(st): State<AppState>,
    Json(body): Json<IdBody>,
) -> Result<Response, ApiError> {
    let (answer, n) = crate::deliveries::retry_in_store(&st.store, &body.id, Timestamp::now())?;
    if let (Some(n), Some(outbox)) = (n, &st.outbox) {
        let now = Timestamp::now();
        let urgent = crate::delivery::is_urgent(&n);
        let mut p = herald_notifiers::Pending::new(n, urgent);
        p.since = now;
        p.due = now;
        outbox.enqueue(p);
    }
    Ok(Json(answer).into_response())
}

async fn silences(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(st.store.silences()?).into_response())
}

async fn add_silence(
    State(st): State<AppState>,
    Json(s): Json<herald_core::Silence>,
) -> Result<Response, ApiError> {
    st.store.put_silence(&s)?;
    Ok(Json(s).into_response())
}

async fn expire_silence(
    State(st): State<AppState>,
    Json(body): Json<IdBody>,
) -> Result<Response, ApiError> {
    match st.store.expire_silence(&body.id, Timestamp::now())? {
        Some(s) => Ok(Json(s).into_response()),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no silence {:?}", body.id),
        )),
    }
}

async fn readyz(State(st): State<AppState>) -> Response {
    let synced = st.stats.synced.load(Ordering::Relaxed);
    if synced >= st.expected_synced {
        (StatusCode::OK, "ready").into_response()
    } else {
        let msg = format!("initial sync: {synced} of {} resources", st.expected_synced);
        (StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    match st.metrics.encode() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Builds the API router.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/history/{kind}/{*key}", get(history))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/deliveries", get(deliveries))
        .route("/api/v1/deliveries/retry", post(retry_delivery))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route("/api/v1/silences/expire", post(expire_silence))
        .with_state(state)
}

/// Binds the API on `addr`; returns the bound address and the serving future.
pub async fn bind(
    addr: SocketAddr,
    store: Store,
    metrics: Arc<Metrics>,
    stats: Arc<Stats>,
    expected_synced: u64,
    outbox: Option<OutboxHandle>,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(AppState {
        store,
        metrics,
        stats,
        expected_synced,
        outbox,
    });
    Ok((local, async move { axum::serve(listener, app).await }))
}
