//! Fault injection seen by a raw HTTP client: exactly the documented bytes, status
//! codes, `Status` bodies and headers; plus compaction and the `/sim/faults` endpoint.
//! Waits are generous safety nets; "nothing arrives" checks only wait for silence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{WatchReader, pod, rv, start};
use herald_sim::{Fault, FaultRule, Resource, Verb};
use serde_json::{Value, json};

const SAFETY: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq)]
enum Ending {
    /// Clean end of body.
    Eof,
    /// The connection broke mid-body.
    Broken,
    /// Still open at the deadline.
    Open,
}

/// Read a response body until it ends, breaks, or `wait` passes.
async fn read_all(resp: &mut reqwest::Response, wait: Duration) -> (Vec<u8>, Ending) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => return (buf, Ending::Open),
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
            Ok(Ok(None)) => return (buf, Ending::Eof),
            Ok(Err(_)) => return (buf, Ending::Broken),
        }
    }
}

/// Read until the first newline (or the deadline).
async fn first_line(resp: &mut reqwest::Response) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + SAFETY;
    let mut buf = Vec::new();
    while !buf.contains(&b'\n') {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    let end = buf.iter().position(|b| *b == b'\n').expect("a full line") + 1;
    buf.truncate(end);
    buf
}

async fn seed_pods(c: &reqwest::Client, base: &str, names: &[&str]) {
    for n in names {
        let r = c
            .post(format!("{base}/api/v1/namespaces/shop/pods"))
            .json(&pod("shop", n))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

#[tokio::test]
async fn watch_dropped_mid_line_sends_half_a_line_then_breaks() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["a", "b", "c"]).await;
    let watch = format!("{base}/api/v1/pods?watch=1");

    sim.faults().next_watch(Fault::DropMidLine);
    let mut faulted = c.get(&watch).send().await.unwrap();
    assert_eq!(faulted.status(), 200);
    let (got, ending) = read_all(&mut faulted, SAFETY).await;
    assert_eq!(
        ending,
        Ending::Broken,
        "the connection is dropped, not ended"
    );
    // The fault is used up: the same watch now works, and its first line is the one
    // that was cut.
    let mut normal = c.get(&watch).send().await.unwrap();
    let line = first_line(&mut normal).await;
    assert!(serde_json::from_slice::<Value>(&line).is_ok());
    assert_eq!(got, line[..line.len() / 2].to_vec());
    assert!(!got.contains(&b'\n'));

    // After N complete lines.
    sim.faults().inject(
        FaultRule::new(Fault::DropMidLineAfter { lines: 2 })
            .verb(Verb::Watch)
            .resource("pods"),
    );
    let mut faulted = c.get(&watch).send().await.unwrap();
    let (got, ending) = read_all(&mut faulted, SAFETY).await;
    assert_eq!(ending, Ending::Broken);
    let text = String::from_utf8(got).unwrap();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines[..2] {
        assert_eq!(serde_json::from_str::<Value>(l).unwrap()["type"], "ADDED");
    }
    assert!(serde_json::from_str::<Value>(lines[2]).is_err());
    assert!(lines[2].starts_with("{\"type\":\"ADDED\""));

    let stats = sim.stats();
    assert_eq!(stats.faulted, 2);
    assert_eq!(stats.faulted_by_resource["pods"]["watch"], 2);
    assert_eq!(
        stats.count("watch", "pods"),
        3,
        "faulted watches are counted too"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_dropped_mid_body() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["a", "b"]).await;
    let url = format!("{base}/api/v1/pods?resourceVersion=0");
    let full = c.get(&url).send().await.unwrap().bytes().await.unwrap();
    sim.faults().next_list(Fault::DropMidLine);
    let mut resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (got, ending) = read_all(&mut resp, SAFETY).await;
    assert_eq!(ending, Ending::Broken);
    assert_eq!(got, full[..full.len() / 2].to_vec());
    assert_eq!(sim.stats().faulted, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_watch_sends_nothing_until_the_stall_ends() {
    let (sim, server, c) = start(|_| {}).await; // bookmarks every 300 ms
    let base = server.url();
    seed_pods(&c, &base, &["a"]).await;
    let watch = format!("{base}/api/v1/pods?watch=1&allowWatchBookmarks=true");
    sim.faults()
        .next_watch(Fault::stall(Duration::from_secs(3600)));
    let mut resp = c.get(&watch).send().await.unwrap();
    assert_eq!(resp.status(), 200, "headers arrive, the body does not");
    seed_pods(&c, &base, &["b"]).await;
    // Several bookmark periods of silence: no event, no bookmark, connection open.
    let (got, ending) = read_all(&mut resp, Duration::from_millis(1500)).await;
    assert_eq!((got.len(), ending), (0, Ending::Open));
    sim.faults().release_stalls();
    let mut w = WatchReader::new(resp);
    let mut names = Vec::new();
    while names.len() < 2 {
        let ev = w
            .next_non_bookmark(SAFETY)
            .await
            .expect("events after the stall");
        assert_eq!(ev["type"], "ADDED");
        names.push(
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        names,
        ["a", "b"],
        "what queued during the stall is delivered"
    );

    // A stall that simply runs out.
    sim.faults()
        .next_watch(Fault::stall(Duration::from_millis(200)));
    let resp = c.get(&watch).send().await.unwrap();
    let mut w = WatchReader::new(resp);
    assert_eq!(w.next_non_bookmark(SAFETY).await.unwrap()["type"], "ADDED");
    server.shutdown().await;
}

#[tokio::test]
async fn stalled_list_answers_after_the_stall() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["a"]).await;
    sim.faults()
        .next_list(Fault::stall(Duration::from_secs(3600)));
    let req = tokio::spawn(c.get(format!("{base}/api/v1/pods")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!req.is_finished(), "no response during the stall");
    sim.faults().release_stalls();
    let resp = tokio::time::timeout(SAFETY, req)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    server.shutdown().await;
}

fn assert_status(body: &Value, code: u16, reason: &str, message: &str) {
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], code);
    assert_eq!(body["reason"], reason);
    assert_eq!(body["message"], message);
}

#[tokio::test]
async fn internal_error_and_service_unavailable() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["a"]).await;
    sim.faults()
        .next(Verb::List, "pods", Fault::internal_error());
    let resp = c.get(format!("{base}/api/v1/pods")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_status(
        &body,
        500,
        "InternalError",
        "Internal error occurred: etcdserver: request timed out",
    );
    assert_eq!(
        body["details"],
        json!({"causes": [{"message": "etcdserver: request timed out"}]})
    );
    assert_eq!(
        c.get(format!("{base}/api/v1/pods"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    sim.faults().next_watch(Fault::ServiceUnavailable {
        message: "etcdserver: no leader".into(),
    });
    let resp = c
        .get(format!("{base}/api/v1/pods?watch=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "refused before the stream starts");
    let body: Value = resp.json().await.unwrap();
    assert_status(&body, 503, "ServiceUnavailable", "etcdserver: no leader");
    assert!(body.get("details").is_none());
    // Writes under a fault have no effect.
    sim.faults()
        .next(Verb::Create, "pods", Fault::internal_error());
    let r = c
        .post(format!("{base}/api/v1/namespaces/shop/pods"))
        .json(&pod("shop", "ghost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(sim.get(Resource::Pods, Some("shop"), "ghost").is_err());
    let s = sim.stats();
    assert_eq!(s.faulted, 3);
    assert_eq!(s.faulted_by_resource["pods"]["list"], 1);
    assert_eq!(s.faulted_by_resource["pods"]["create"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    sim.faults().inject(
        FaultRule::new(Fault::too_many_requests(3))
            .verb(Verb::List)
            .resource("pods")
            .times(2),
    );
    let nodes = c.get(format!("{base}/api/v1/nodes")).send().await.unwrap();
    assert_eq!(nodes.status(), 200, "other resources are not affected");
    for _ in 0..2 {
        let resp = c.get(format!("{base}/api/v1/pods")).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        let body: Value = resp.json().await.unwrap();
        assert_status(
            &body,
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        assert_eq!(body["details"], json!({"retryAfterSeconds": 3}));
    }
    assert_eq!(
        c.get(format!("{base}/api/v1/pods"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forbidden_with_the_rbac_message() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["x"]).await;
    let id = sim.faults().inject(
        FaultRule::new(Fault::forbidden())
            .resource("pods")
            .for_duration(Duration::from_secs(3600)),
    );
    let user = "system:serviceaccount:herald:herald";
    let cases = [
        (
            c.get(format!("{base}/api/v1/pods")),
            format!(
                "pods is forbidden: User \"{user}\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
            ),
            json!({"kind": "pods"}),
        ),
        (
            c.get(format!("{base}/api/v1/pods?watch=true")),
            format!(
                "pods is forbidden: User \"{user}\" cannot watch resource \"pods\" in API group \"\" at the cluster scope"
            ),
            json!({"kind": "pods"}),
        ),
        (
            c.get(format!("{base}/api/v1/namespaces/shop/pods/x")),
            format!(
                "pods \"x\" is forbidden: User \"{user}\" cannot get resource \"pods\" in API group \"\" in the namespace \"shop\""
            ),
            json!({"kind": "pods", "name": "x"}),
        ),
        (
            c.patch(format!("{base}/api/v1/namespaces/shop/pods/x/status"))
                .header("content-type", "application/merge-patch+json")
                .body("{}"),
            format!(
                "pods \"x\" is forbidden: User \"{user}\" cannot patch resource \"pods/status\" in API group \"\" in the namespace \"shop\""
            ),
            json!({"kind": "pods", "name": "x"}),
        ),
    ];
    for (req, message, details) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_status(&body, 403, "Forbidden", &message);
        assert_eq!(body["details"], details);
    }
    assert_eq!(
        c.get(format!("{base}/api/v1/nodes"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(sim.faults().remove(id));
    assert_eq!(
        c.get(format!("{base}/api/v1/pods"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // events.k8s.io: the group is part of the resource and the details.
    sim.faults().inject(
        FaultRule::new(Fault::Forbidden {
            user: "alice".into(),
        })
        .resource("events.events.k8s.io"),
    );
    let resp = c
        .get(format!(
            "{base}/apis/events.k8s.io/v1/namespaces/shop/events"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_status(
        &body,
        403,
        "Forbidden",
        "events.events.k8s.io is forbidden: User \"alice\" cannot list resource \"events\" in API group \"events.k8s.io\" in the namespace \"shop\"",
    );
    assert_eq!(
        body["details"],
        json!({"kind": "events", "group": "events.k8s.io"})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn compaction_expires_older_resource_versions() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    seed_pods(&c, &base, &["a", "b"]).await;
    let old = sim.resource_version();
    let page: Value = c
        .get(format!("{base}/api/v1/pods?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    seed_pods(&c, &base, &["c"]).await;
    let compacted = sim.compact();
    assert_eq!(compacted, sim.resource_version());

    // WATCH from before the compaction: 200, then an in-stream 410 ERROR.
    let resp = c
        .get(format!("{base}/api/v1/pods?watch=1&resourceVersion={old}"))
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let ev = w.next(SAFETY).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_status(
        &ev["object"],
        410,
        "Expired",
        &format!("too old resource version: {old} ({compacted})"),
    );
    // Exact LIST and continue token from before: 410.
    let resp = c
        .get(format!(
            "{base}/api/v1/pods?resourceVersion={old}&resourceVersionMatch=Exact"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "Expired");
    let resp = c
        .get(format!("{base}/api/v1/pods?limit=1&continue={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    // From the compacted revision on, watching works.
    let resp = c
        .get(format!(
            "{base}/api/v1/pods?watch=1&resourceVersion={compacted}"
        ))
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    seed_pods(&c, &base, &["d"]).await;
    let ev = w.next_non_bookmark(SAFETY).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert!(rv(&ev["object"]) > compacted);
    // Same over HTTP.
    let resp: Value = c
        .post(format!("{base}/sim/compact"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["compacted"], sim.resource_version().to_string());
    server.shutdown().await;
}

#[tokio::test]
async fn faults_over_http() {
    let (sim, server, c) = start(|_| {}).await;
    let base = server.url();
    let faults = format!("{base}/sim/faults");
    let resp = c
        .post(&faults)
        .json(&json!({"fault": "too_many_requests", "retry_after_seconds": 2, "verb": "list", "resource": "nodes", "times": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let active: Value = c.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(active["faults"][0]["id"], id);
    assert_eq!(active["faults"][0]["fault"], "too_many_requests");
    assert_eq!(active["faults"][0]["remaining"], 2);
    let resp = c.get(format!("{base}/api/v1/nodes")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let active: Value = c.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(active["faults"][0]["remaining"], 1);
    assert_eq!(active["faults"][0]["hits"], 1);
    let resp = c.delete(format!("{faults}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.delete(format!("{faults}/{id}")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        c.get(format!("{base}/api/v1/nodes"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A stall for a duration, cleared (and released) by DELETE.
    let resp = c
        .post(&faults)
        .json(
            &json!({"fault": "stall", "seconds": 3600, "verb": "watch", "duration_seconds": 3600}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut stalled = c
        .get(format!(
            "{base}/api/v1/nodes?watch=1&allowWatchBookmarks=true"
        ))
        .send()
        .await
        .unwrap();
    let (got, _) = read_all(&mut stalled, Duration::from_millis(700)).await;
    assert!(got.is_empty());
    assert_eq!(c.delete(&faults).send().await.unwrap().status(), 200);
    let mut w = WatchReader::new(stalled);
    assert_eq!(w.next(SAFETY).await.unwrap()["type"], "BOOKMARK");

    // Bad requests.
    for bad in [
        json!({"fault": "nope"}),
        json!({"fault": "drop_mid_line", "verb": "get"}),
        json!({"fault": "internal_error", "times": 0}),
        json!({"fault": "stall"}),
    ] {
        let resp = c.post(&faults).json(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "BadRequest");
    }
    let stats: Value = c
        .get(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["faulted"], 2);
    assert_eq!(stats["faulted_by_resource"]["nodes"]["list"], 1);
    assert_eq!(stats["faulted_by_resource"]["nodes"]["watch"], 1);
    assert_eq!(sim.stats().faulted, 2);
    server.shutdown().await;
}
