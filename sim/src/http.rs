//! The HTTP front end: an axum fallback handler that authenticates the bearer token,
//! routes Kubernetes-style paths (`/api/v1/...`, `/apis/events.k8s.io/v1/...`,
//! discovery, `/sim/stats`, `/sim/faults`, `/sim/compact`), applies injected faults,
//! counts requests, and maps verbs onto the store.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::SimError;
use crate::events;
use crate::faults::{Fault, FaultRequest};
use crate::list::{self, ListOptions, parse_rv};
use crate::patch;
use crate::resource::{Resource, View};
use crate::selectors::Selector;
use crate::stats::{ReadSource, Verb};
use crate::store::{CreateOptions, Subresource, WatchStart};
use crate::table::{self, IncludeObject};
use crate::watch::{self, StreamFault, WatchParams, typed};
use crate::{Simulator, discovery};

/// Shared state of the router.
#[derive(Clone)]
pub(crate) struct AppState {
    pub sim: Simulator,
    pub server_address: String,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Build the router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

fn json_response(code: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &SimError) -> Response {
    let mut resp = json_response(e.code(), &e.status());
    // Like the apiserver's `ErrorNegotiated`: a positive retryAfterSeconds becomes a header.
    if let Some(secs) = e.retry_after_seconds() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}

/// Parsed resource path.
#[derive(Debug, Clone)]
struct Target {
    resource: Resource,
    view: View,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

enum Route {
    Json(Value),
    Stats,
    Faults(Option<u64>),
    Compact,
    Namespaces(Option<String>),
    Resource(Target),
}

fn route(path: &str, server_address: &str) -> Result<Route, SimError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Ok(Route::Json(discovery::version())),
        ["api"] => Ok(Route::Json(discovery::api_versions(server_address))),
        ["api", "v1"] => Ok(Route::Json(discovery::core_v1_resources())),
        ["apis"] => Ok(Route::Json(discovery::api_groups())),
        ["apis", "events.k8s.io"] => Ok(Route::Json(discovery::events_group())),
        ["apis", "events.k8s.io", "v1"] => Ok(Route::Json(discovery::events_v1_resources())),
        ["sim", "stats"] => Ok(Route::Stats),
        ["sim", "faults"] => Ok(Route::Faults(None)),
        ["sim", "faults", id] => id
            .parse()
            .map(|id| Route::Faults(Some(id)))
            .map_err(|_| SimError::NoRoute),
        ["sim", "compact"] => Ok(Route::Compact),
        ["api", "v1", "namespaces"] => Ok(Route::Namespaces(None)),
        ["api", "v1", "namespaces", ns] => Ok(Route::Namespaces(Some(ns.to_string()))),
        ["api", "v1", rest @ ..] => parse_rest(View::CoreV1, rest).map(Route::Resource),
        ["apis", "events.k8s.io", "v1", rest @ ..] => {
            parse_rest(View::EventsV1, rest).map(Route::Resource)
        }
        _ => Err(SimError::NoRoute),
    }
}

fn parse_rest(view: View, rest: &[&str]) -> Result<Target, SimError> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        other => (None, other),
    };
    let (res, tail) = rest.split_first().ok_or(SimError::NoRoute)?;
    let resource = Resource::from_plural(res).ok_or(SimError::NoRoute)?;
    if view == View::EventsV1 && resource != Resource::Events {
        return Err(SimError::NoRoute);
    }
    if resource.namespaced() != namespace.is_some() && !tail.is_empty() {
        return Err(SimError::NoRoute);
    }
    if !resource.namespaced() && namespace.is_some() {
        return Err(SimError::NoRoute);
    }
    let (name, status) = match tail {
        [] => (None, false),
        [name] => (Some(name.to_string()), false),
        [name, "status"] if resource != Resource::Events => (Some(name.to_string()), true),
        _ => return Err(SimError::NoRoute),
    };
    Ok(Target {
        resource,
        view,
        namespace,
        name,
        status,
    })
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if !authorized(req.headers(), &state.sim.inner.cfg.token) {
        state.sim.inner.stats.record_unauthorized();
        tracing::info!(%method, path, "rejected request without valid bearer token");
        return error_response(&SimError::Unauthorized);
    }
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|q: Query<HashMap<String, String>>| q.0)
        .unwrap_or_default();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match to_bytes(req.into_body(), 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return error_response(&SimError::BadRequest(e.to_string())),
    };
    let mut ctx = RequestCtx {
        method,
        query,
        accept,
        content_type,
        body: body.to_vec(),
        fault: None,
    };
    match route(&path, &state.server_address) {
        Ok(Route::Json(v)) if ctx.method == Method::GET => json_response(200, &v),
        Ok(Route::Json(_)) | Ok(Route::Stats) | Ok(Route::Namespaces(_))
            if ctx.method != Method::GET =>
        {
            error_response(&SimError::MethodNotAllowed)
        }
        Ok(Route::Stats) => match serde_json::to_value(state.sim.stats()) {
            Ok(v) => json_response(200, &v),
            Err(e) => error_response(&SimError::Json(e)),
        },
        Ok(Route::Faults(id)) => faults_endpoint(&state.sim, id, &ctx),
        Ok(Route::Compact) if ctx.method == Method::POST => {
            let rv = state.sim.compact();
            json_response(200, &json!({"compacted": rv.to_string()}))
        }
        Ok(Route::Compact) => error_response(&SimError::MethodNotAllowed),
        Ok(Route::Namespaces(name)) => namespaces(&state.sim, name.as_deref(), &ctx),
        Ok(Route::Resource(t)) => {
            if let Some(verb) = request_verb(&ctx, &t) {
                let qualified = t.view.qualified(t.resource);
                if let Some(fault) = state.sim.inner.faults.take(verb, &qualified) {
                    let stats = &state.sim.inner.stats;
                    stats.record_fault(verb, &qualified);
                    let info = crate::faults::RequestInfo {
                        verb,
                        resource: t.resource.plural(),
                        subresource: t.status.then_some("status"),
                        group: t.view.group(),
                        namespace: t.namespace.as_deref(),
                        name: t.name.as_deref(),
                    };
                    if let Some(err) = fault.error_for(&info) {
                        stats.record(verb, &qualified, None);
                        tracing::info!(path, code = err.code(), "answered with injected fault");
                        return error_response(&err);
                    }
                    if let (Verb::List, Fault::Stall { duration }) = (verb, &fault) {
                        let ticket = state.sim.inner.faults.stall_ticket();
                        tracing::info!(
                            path,
                            ms = duration.as_millis() as u64,
                            "fault: stalling list"
                        );
                        let mut shutdown = state.shutdown.clone();
                        tokio::select! {
                            _ = ticket.wait(*duration) => {}
                            _ = shutdown.changed() => {}
                        }
                    } else {
                        ctx.fault = Some(fault);
                    }
                }
            }
            match handle(&state, &t, &ctx) {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(path, code = e.code(), error = %e, "request failed");
                    error_response(&e)
                }
            }
        }
        Ok(Route::Json(_)) => error_response(&SimError::MethodNotAllowed),
        Err(e) => error_response(&e),
    }
}

/// The verb a resource request maps to (what stats and faults match on).
fn request_verb(ctx: &RequestCtx, t: &Target) -> Option<Verb> {
    Some(match (&ctx.method, &t.name) {
        (&Method::GET, None) if ctx.query.get("watch").is_some_and(|v| list::truthy(v)) => {
            Verb::Watch
        }
        (&Method::GET, None) => Verb::List,
        (&Method::GET, Some(_)) => Verb::Get,
        (&Method::POST, None) => Verb::Create,
        (&Method::PUT, Some(_)) => Verb::Update,
        (&Method::PATCH, Some(_)) => Verb::Patch,
        (&Method::DELETE, Some(_)) => Verb::Delete,
        _ => return None,
    })
}

/// `GET /sim/faults` (active rules), `POST /sim/faults` (inject one, JSON
/// [`FaultRequest`]), `DELETE /sim/faults` (clear all, release stalls),
/// `DELETE /sim/faults/{id}` (remove one).
fn faults_endpoint(sim: &Simulator, id: Option<u64>, ctx: &RequestCtx) -> Response {
    let faults = &sim.inner.faults;
    match (&ctx.method, id) {
        (&Method::GET, None) => match serde_json::to_value(faults.active()) {
            Ok(v) => json_response(200, &json!({"faults": v})),
            Err(e) => error_response(&SimError::Json(e)),
        },
        (&Method::POST, None) => {
            let parsed = serde_json::from_slice::<FaultRequest>(&ctx.body)
                .map_err(|e| SimError::BadRequest(format!("invalid fault: {e}")))
                .and_then(FaultRequest::into_rule);
            match parsed {
                Ok(rule) => json_response(201, &json!({"id": faults.inject(rule)})),
                Err(e) => error_response(&e),
            }
        }
        (&Method::DELETE, None) => {
            faults.clear();
            json_response(200, &json!({"faults": []}))
        }
        (&Method::DELETE, Some(id)) => {
            if faults.remove(id) {
                json_response(200, &json!({"removed": id}))
            } else {
                error_response(&SimError::NotFound {
                    resource: "faults".into(),
                    name: id.to_string(),
                })
            }
        }
        _ => error_response(&SimError::MethodNotAllowed),
    }
}

struct RequestCtx {
    method: Method,
    query: HashMap<String, String>,
    accept: String,
    content_type: String,
    body: Vec<u8>,
    /// Injected stream fault (drop / stall) for this LIST or WATCH.
    fault: Option<Fault>,
}

impl RequestCtx {
    fn table(&self) -> Option<IncludeObject> {
        table::wants_table(&self.accept)
            .then(|| IncludeObject::parse(self.query.get("includeObject").map(String::as_str)))
    }

    fn json_body(&self) -> Result<Value, SimError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SimError::BadRequest(format!(
                "the object provided is unrecognized or invalid JSON: {e}"
            ))
        })
    }
}

/// Convert a request body in `view` to the stored core shape, checking its kind.
fn body_to_core(t: &Target, body: Value) -> Result<Value, SimError> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != t.resource.kind()
    {
        return Err(SimError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.resource.kind()
        )));
    }
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && av != t.view.api_version()
    {
        return Err(SimError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.view.api_version()
        )));
    }
    Ok(match t.view {
        View::CoreV1 => body,
        View::EventsV1 => events::v1_to_core(&body),
    })
}

fn single(t: &Target, ctx: &RequestCtx, code: u16, core: &Value) -> Response {
    let obj = typed(t.resource, t.view, core);
    match ctx.table() {
        Some(include) => {
            let row = table::row(t.resource, core, &obj, include);
            let rv = core
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            json_response(
                code,
                &table::table(t.resource, vec![row], json!({"resourceVersion": rv}), true),
            )
        }
        None => json_response(code, &obj),
    }
}

fn handle(state: &AppState, t: &Target, ctx: &RequestCtx) -> Result<Response, SimError> {
    let sim = &state.sim;
    let store = &sim.inner.store;
    let qualified = t.view.qualified(t.resource);
    let ns = t.namespace.as_deref();
    match (&ctx.method, &t.name) {
        (&Method::GET, None) => {
            let opts = ListOptions::from_query(&ctx.query)?;
            let selector = Selector::parse(
                opts.label_selector.as_deref(),
                opts.field_selector.as_deref(),
                t.resource,
            )?;
            if opts.watch {
                start_watch(state, t, ctx, &opts, selector)
            } else {
                if opts.send_initial_events.is_some() {
                    return Err(SimError::Invalid(
                        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list".into(),
                    ));
                }
                let page = list::list(store, t.resource, ns, &opts, &selector)?;
                sim.inner
                    .stats
                    .record(Verb::List, &qualified, Some(page.source));
                Ok(list_response(t, ctx, page))
            }
        }
        (&Method::POST, None) => {
            sim.inner.stats.record(Verb::Create, &qualified, None);
            if t.resource.namespaced() && ns.is_none() {
                return Err(SimError::MethodNotAllowed);
            }
            let obj = body_to_core(t, ctx.json_body()?)?;
            let created = store.create(t.resource, ns, obj, CreateOptions::default())?;
            let created_name = created
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            tracing::debug!(resource = %qualified, name = created_name, "created via http");
            Ok(single(t, ctx, 201, &created))
        }
        (&Method::GET, Some(name)) => {
            sim.inner.stats.record(Verb::Get, &qualified, None);
            let obj = store.get(t.resource, ns, name)?;
            Ok(single(t, ctx, 200, &obj))
        }
        (&Method::PUT, Some(name)) => {
            sim.inner.stats.record(Verb::Update, &qualified, None);
            let obj = body_to_core(t, ctx.json_body()?)?;
            let sub = if t.status {
                Subresource::Status
            } else {
                Subresource::Main
            };
            let updated = store.update(t.resource, ns, name, obj, sub)?;
            Ok(single(t, ctx, 200, &updated))
        }
        (&Method::PATCH, Some(name)) => {
            sim.inner.stats.record(Verb::Patch, &qualified, None);
            let patch_doc = ctx.json_body()?;
            let ct = ctx.content_type.split(';').next().unwrap_or("").trim();
            let kind = match ct {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/json-patch+json" => PatchKind::Json,
                _ => {
                    return Err(SimError::UnsupportedMediaType(
                        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json".into(),
                    ));
                }
            };
            let sub = if t.status {
                Subresource::Status
            } else {
                Subresource::Main
            };
            let (resource, view) = (t.resource, t.view);
            let updated = store.mutate(resource, ns, name, sub, |cur| {
                let mut doc = typed(resource, view, cur);
                match kind {
                    PatchKind::Json => patch::json_patch(&mut doc, &patch_doc)?,
                    PatchKind::Merge => patch::merge_patch(&mut doc, &patch_doc),
                    PatchKind::Strategic => {
                        patch::strategic_merge(&mut doc, &patch_doc, &patch::apiserver_merge_key)
                    }
                }
                *cur = match view {
                    View::CoreV1 => doc,
                    View::EventsV1 => events::v1_to_core(&doc),
                };
                Ok(())
            })?;
            Ok(single(t, ctx, 200, &updated))
        }
        (&Method::DELETE, Some(name)) => {
            sim.inner.stats.record(Verb::Delete, &qualified, None);
            if t.status {
                return Err(SimError::MethodNotAllowed);
            }
            let deleted = store.delete(t.resource, ns, name)?;
            Ok(single(t, ctx, 200, &deleted))
        }
        _ => Err(SimError::MethodNotAllowed),
    }
}

#[derive(Clone, Copy)]
enum PatchKind {
    Merge,
    Strategic,
    Json,
}

fn list_response(t: &Target, ctx: &RequestCtx, page: list::ListPage) -> Response {
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let drop_mid = matches!(
        ctx.fault,
        Some(Fault::DropMidLine | Fault::DropMidLineAfter { .. })
    );
    if let Some(include) = ctx.table() {
        let rows: Vec<Value> = page
            .items
            .iter()
            .map(|o| {
                let core = o.value();
                table::row(
                    t.resource,
                    &core,
                    &typed(t.resource, t.view, &core),
                    include,
                )
            })
            .collect();
        let body = table::table(t.resource, rows, meta, true).to_string();
        return streamed_response(vec![Bytes::from(body)], drop_mid);
    }
    let list_kind = format!("{}List", t.resource.kind());
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(list_kind),
        json!(t.view.api_version()),
        meta
    );
    let items: Vec<Bytes> = match t.view {
        // List items carry no kind/apiVersion, like the real apiserver's typed lists:
        // exactly the stored shape, so the stored bytes are sent as they are.
        View::CoreV1 => page.items.iter().map(|o| o.json().clone()).collect(),
        View::EventsV1 => page
            .items
            .iter()
            .map(|o| {
                let mut v = typed(t.resource, t.view, &o.value());
                if let Value::Object(m) = &mut v {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                Bytes::from(v.to_string())
            })
            .collect(),
    };
    let mut pieces = Vec::with_capacity(items.len() * 2 + 2);
    pieces.push(Bytes::from(head));
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            pieces.push(Bytes::from_static(b","));
        }
        pieces.push(item);
    }
    pieces.push(Bytes::from_static(b"]}"));
    streamed_response(pieces, drop_mid)
}

/// A `200` JSON response whose body is `pieces` concatenated, written in chunks of about
/// 64 KiB (a 200,000-pod list is never copied into one buffer). With `drop_mid` only the
/// first half of the body is written and then the connection is aborted.
fn streamed_response(pieces: Vec<Bytes>, drop_mid: bool) -> Response {
    const CHUNK: usize = 64 * 1024;
    let total: usize = pieces.iter().map(Bytes::len).sum();
    let mut budget = if drop_mid { total / 2 } else { usize::MAX };
    let mut pieces = pieces.into_iter();
    let chunks = std::iter::from_fn(move || {
        let mut buf = BytesMut::new();
        while buf.len() < CHUNK && budget > 0 {
            let Some(mut piece) = pieces.next() else {
                break;
            };
            if piece.len() > budget {
                piece = piece.slice(..budget);
            }
            budget -= piece.len();
            if buf.is_empty() && piece.len() >= CHUNK {
                return Some(piece);
            }
            buf.extend_from_slice(&piece);
        }
        (!buf.is_empty()).then(|| buf.freeze())
    });
    let stream = futures::stream::iter(chunks.map(Ok::<Bytes, std::io::Error>));
    let body = if drop_mid {
        tracing::info!(
            sent = total / 2,
            of = total,
            "fault: dropping list mid-body"
        );
        // Pending for a moment after the last bytes so hyper flushes them, then abort.
        let abort = futures::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Err::<Bytes, std::io::Error>(watch::abort_error())
        });
        Body::from_stream(stream.chain(abort))
    } else {
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn start_watch(
    state: &AppState,
    t: &Target,
    ctx: &RequestCtx,
    opts: &ListOptions,
    selector: Selector,
) -> Result<Response, SimError> {
    let sim = &state.sim;
    let streaming = opts.send_initial_events == Some(true);
    let start = if streaming {
        if opts.resource_version_match.as_deref() != Some("NotOlderThan") {
            return Err(SimError::Invalid(
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".into(),
            ));
        }
        if !opts.allow_watch_bookmarks {
            return Err(SimError::Invalid(
                "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true".into(),
            ));
        }
        if let Some(rv) = opts.rv().filter(|rv| *rv != "0") {
            let n = parse_rv(rv)?;
            let current = sim.inner.store.current_rv();
            if n > current {
                return Err(SimError::TooLargeResourceVersion {
                    requested: n,
                    current,
                });
            }
        }
        WatchStart::State
    } else {
        if opts.resource_version_match.is_some() {
            return Err(SimError::Invalid(
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided".into(),
            ));
        }
        match opts.rv() {
            None | Some("0") => WatchStart::State,
            Some(rv) => WatchStart::After(parse_rv(rv)?),
        }
    };
    sim.inner.stats.record(
        Verb::Watch,
        &t.view.qualified(t.resource),
        Some(ReadSource::Cache),
    );
    let params = WatchParams {
        resource: t.resource,
        view: t.view,
        namespace: t.namespace.clone(),
        selector,
        start,
        allow_bookmarks: opts.allow_watch_bookmarks,
        bookmark_interval: sim.inner.cfg.bookmark_interval,
        initial_events_end: streaming,
        timeout: opts.timeout_seconds.map(std::time::Duration::from_secs),
        table: ctx.table(),
        fault: match &ctx.fault {
            Some(Fault::DropMidLine) => Some(StreamFault::DropMidLine { after_lines: 0 }),
            Some(Fault::DropMidLineAfter { lines }) => Some(StreamFault::DropMidLine {
                after_lines: *lines,
            }),
            Some(Fault::Stall { duration }) => Some(StreamFault::Stall {
                duration: *duration,
                ticket: sim.inner.faults.stall_ticket(),
            }),
            _ => None,
        },
    };
    tracing::debug!(resource = t.resource.plural(), start = ?start, namespace = ?t.namespace, "watch started");
    let rx = watch::start(sim.inner.store.clone(), params, state.shutdown.clone());
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// Read-only Namespace objects derived from the namespaces in use.
fn namespaces(sim: &Simulator, name: Option<&str>, ctx: &RequestCtx) -> Response {
    let mut names = sim.inner.store.namespaces_in_use();
    for n in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        names.insert(n.to_string());
    }
    let created = sim.inner.started.clone();
    let ns_obj = |n: &str| {
        json!({
            "metadata": {"name": n, "uid": sim.namespace_uid(n), "creationTimestamp": created, "labels": {"kubernetes.io/metadata.name": n}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        })
    };
    let rv = sim.resource_version().to_string();
    if let Some(n) = name {
        if !names.contains(n) {
            return error_response(&SimError::NotFound {
                resource: "namespaces".into(),
                name: n.into(),
            });
        }
        let mut o = ns_obj(n);
        o["kind"] = json!("Namespace");
        o["apiVersion"] = json!("v1");
        return json_response(200, &o);
    }
    if ctx.table().is_some() {
        let rows: Vec<Value> = names
            .iter()
            .map(|n| {
                json!({"cells": [n, "Active", table::since(Some(&json!(created)))],
                       "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": n}}})
            })
            .collect();
        return json_response(
            200,
            &json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
                    {"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0},
                    {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}],
                "rows": rows}),
        );
    }
    let items: Vec<Value> = names.iter().map(|n| ns_obj(n)).collect();
    json_response(
        200,
        &json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |p: &str| match route(p, "x") {
            Ok(Route::Resource(t)) => Some((t.resource, t.view, t.namespace, t.name, t.status)),
            _ => None,
        };
        assert_eq!(
            r("/api/v1/pods"),
            Some((Resource::Pods, View::CoreV1, None, None, false))
        );
        assert_eq!(
            r("/api/v1/namespaces/shop/pods/cart/status"),
            Some((
                Resource::Pods,
                View::CoreV1,
                Some("shop".into()),
                Some("cart".into()),
                true
            ))
        );
        assert_eq!(
            r("/api/v1/nodes/node-a"),
            Some((
                Resource::Nodes,
                View::CoreV1,
                None,
                Some("node-a".into()),
                false
            ))
        );
        assert_eq!(
            r("/apis/events.k8s.io/v1/namespaces/default/events"),
            Some((
                Resource::Events,
                View::EventsV1,
                Some("default".into()),
                None,
                false
            ))
        );
        assert!(r("/api/v1/pods/x").is_none());
        assert!(r("/api/v1/namespaces/x/nodes").is_none());
        assert!(r("/apis/events.k8s.io/v1/pods").is_none());
        assert!(r("/api/v1/namespaces/x/events/e/status").is_none());
        assert!(route("/openapi/v2", "x").is_err());
    }
}
