//! A local HTTP receiver for the provider tests: listens on 127.0.0.1:0, records every request
//! (method, path, query, headers, raw body) and answers from a script of [`Reply`]s (then
//! `200` with a default body): any status, headers (`Retry-After`), body (an error code in a
//! 200), or a delay (a slow receiver).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router as AxumRouter;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Seen {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Query parameters, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        reqwest::Url::parse(&format!("http://x/?{}", self.query))
            .map(|u| u.query_pairs().map(|(k, v)| (k.into(), v.into())).collect())
            .unwrap_or_default()
    }

    /// One decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as decoded form pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        let q = String::from_utf8_lossy(&self.body).to_string();
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .map(|u| u.query_pairs().map(|(k, v)| (k.into(), v.into())).collect())
            .unwrap_or_default()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: String,
    /// Wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// `status` with `body`.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Answers after `d`.
    pub fn slow(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Clone)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    default: Reply,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: ReceiverState,
}

impl Receiver {
    /// Starts a receiver answering `script` in order, then `default`.
    pub async fn start(script: Vec<Reply>, default: Reply) -> Self {
        let state = ReceiverState {
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
            default,
        };
        let app = AxumRouter::new()
            .route("/", any(handle))
            .route("/{*path}", any(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<ReceiverState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    s.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.to_vec(),
    });
    let reply = s
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| s.default.clone());
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}
