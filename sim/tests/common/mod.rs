//! Shared helpers for the simulator's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use herald_sim::{SimConfig, SimServer, Simulator};
use serde_json::Value;

pub const TOKEN: &str = "test-token";

pub async fn start(f: impl FnOnce(&mut SimConfig)) -> (Simulator, SimServer, reqwest::Client) {
    let mut cfg = SimConfig {
        token: TOKEN.into(),
        bookmark_interval: Duration::from_millis(300),
        tls: false,
        ..SimConfig::default()
    };
    f(&mut cfg);
    let sim = Simulator::new(cfg);
    let server = sim.serve().await.expect("serve");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    (sim, server, client)
}

pub fn pod(ns: &str, name: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    })
}

/// Reads newline-delimited watch events from a streaming response.
pub struct WatchReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
    pub ended: bool,
}

impl WatchReader {
    pub fn new(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200, "watch status");
        WatchReader {
            resp,
            buf: Vec::new(),
            ended: false,
        }
    }

    /// Next event, or None on end of stream / timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// Next non-BOOKMARK event.
    pub async fn next_non_bookmark(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
}

pub fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .unwrap()
}

/// A real captured object from tests/fixtures (see SOURCES.md).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Top-level keys of a JSON object.
pub fn keys(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `keys(v)` minus `drop`.
pub fn keys_without(v: &Value, drop: &[&str]) -> std::collections::BTreeSet<String> {
    let mut k = keys(v);
    for d in drop {
        k.remove(*d);
    }
    k
}

/// Fixed instant for deterministic populations.
pub fn fixed_now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_750_000_000).unwrap()
}
