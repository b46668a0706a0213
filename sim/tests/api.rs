//! HTTP-level tests of the fake apiserver (plain reqwest over http://127.0.0.1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{WatchReader, pod, rv, start};
use herald_sim::Resource;
use serde_json::{Value, json};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn requests_without_token_get_401_status() {
    let (sim, server, _) = start(|_| {}).await;
    let plain = reqwest::Client::new();
    for path in ["/api/v1/pods", "/version", "/api"] {
        let resp = plain
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["code"], 401);
    }
    let wrong = plain
        .get(format!("{}/api/v1/pods", server.url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(sim.stats().unauthorized, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn discovery_documents() {
    let (_sim, server, c) = start(|_| {}).await;
    let get = |p: &str| c.get(format!("{}{p}", server.url())).send();
    let v: Value = get("/api/v1").await.unwrap().json().await.unwrap();
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in ["nodes", "nodes/status", "pods", "pods/status", "events"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let g: Value = get("/apis").await.unwrap().json().await.unwrap();
    assert_eq!(g["groups"][0]["name"], "events.k8s.io");
    let ev: Value = get("/apis/events.k8s.io/v1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ev["groupVersion"], "events.k8s.io/v1");
    let ver: Value = get("/version").await.unwrap().json().await.unwrap();
    assert_eq!(ver["major"], "1");
    let openapi = get("/openapi/v2").await.unwrap();
    assert_eq!(openapi.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn crud_errors_and_status_subresource() {
    let (sim, server, c) = start(|_| {}).await;
    let base = format!("{}/api/v1/namespaces/default/pods", server.url());
    let created = c
        .post(&base)
        .json(&pod("default", "p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["kind"], "Pod");
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert_eq!(created["status"]["phase"], "Pending");

    // AlreadyExists
    let dup = c
        .post(&base)
        .json(&pod("default", "p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let dup: Value = dup.json().await.unwrap();
    assert_eq!(dup["reason"], "AlreadyExists");

    // NotFound
    let nf = c.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(nf.status(), 404);
    let nf: Value = nf.json().await.unwrap();
    assert_eq!(nf["message"], "pods \"nope\" not found");
    assert_eq!(nf["details"]["kind"], "pods");

    // status subresource: only status changes
    let mut st = created.clone();
    st["status"]["phase"] = json!("Running");
    st["metadata"]["labels"]["ignored"] = json!("yes");
    let upd: Value = c
        .put(format!("{base}/p1/status"))
        .json(&st)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upd["status"]["phase"], "Running");
    assert!(upd["metadata"]["labels"].get("ignored").is_none());
    assert!(rv(&upd) > rv(&created));
    // main resource PUT ignores status
    let mut main = upd.clone();
    main["status"]["phase"] = json!("Failed");
    main["metadata"]["labels"]["kept"] = json!("yes");
    let upd2: Value = c
        .put(format!("{base}/p1"))
        .json(&main)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upd2["status"]["phase"], "Running");
    assert_eq!(upd2["metadata"]["labels"]["kept"], "yes");

    // Conflict on stale update (resourceVersion from `created`)
    let mut stale = created.clone();
    stale["metadata"]["labels"]["x"] = json!("y");
    let conflict = c
        .put(format!("{base}/p1"))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["reason"], "Conflict");
    assert_eq!(
        conflict["message"],
        "Operation cannot be fulfilled on pods \"p1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // merge patch + strategic merge patch on status
    let patched: Value = c
        .patch(format!("{base}/p1"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"metadata":{"labels":{"patched":"1","app":null}}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["metadata"]["labels"]["patched"], "1");
    assert!(patched["metadata"]["labels"].get("app").is_none());
    let sp = c
        .patch(format!("{base}/p1/status"))
        .header("content-type", "application/strategic-merge-patch+json")
        .body(r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sp.status(), 200);
    let sp: Value = sp.json().await.unwrap();
    assert_eq!(sp["status"]["conditions"][0]["type"], "Ready");
    let bad_ct = c
        .patch(format!("{base}/p1"))
        .header("content-type", "application/apply-patch+yaml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_ct.status(), 415);

    // BadRequest
    let bad = c.post(&base).body("{not json").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["reason"], "BadRequest");

    // MethodNotAllowed
    let mna = c.put(&base).json(&json!({})).send().await.unwrap();
    assert_eq!(mna.status(), 405);
    assert_eq!(
        mna.json::<Value>().await.unwrap()["reason"],
        "MethodNotAllowed"
    );

    // DELETE returns the object, then it is gone
    let del = c.delete(format!("{base}/p1")).send().await.unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(del.json::<Value>().await.unwrap()["metadata"]["name"], "p1");
    assert!(sim.get(Resource::Pods, Some("default"), "p1").is_err());

    let s = sim.stats();
    assert_eq!(s.count("create", "pods"), 3);
    assert_eq!(s.count("update", "pods"), 3);
    assert_eq!(s.count("patch", "pods"), 3);
    assert_eq!(s.count("delete", "pods"), 1);
    assert_eq!(s.count("get", "pods"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn list_with_limit_and_continue_is_a_consistent_snapshot() {
    let (sim, server, c) = start(|_| {}).await;
    for i in 0..5 {
        sim.create(
            Resource::Pods,
            pod(if i < 3 { "a" } else { "b" }, &format!("p{i}")),
        )
        .unwrap();
    }
    let url = format!("{}/api/v1/pods", server.url());
    let p1: Value = c
        .get(&url)
        .query(&[("limit", "2")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p1["kind"], "PodList");
    assert_eq!(p1["apiVersion"], "v1");
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert!(
        p1["items"][0].get("kind").is_none(),
        "list items carry no kind"
    );
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let snapshot_rv = p1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // changes after the first page are invisible to the continuation
    sim.delete(Resource::Pods, Some("b"), "p3").unwrap();
    sim.create(Resource::Pods, pod("b", "p9")).unwrap();
    let mut names: Vec<String> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    loop {
        let page: Value = c
            .get(&url)
            .query(&[("limit", "2"), ("continue", token.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["metadata"]["resourceVersion"], snapshot_rv.as_str());
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(names, vec!["p0", "p1", "p2", "p3", "p4"]);
    // namespaced list and selectors
    let ns: Value = c
        .get(format!("{}/api/v1/namespaces/b/pods", server.url()))
        .query(&[
            ("labelSelector", "app=demo"),
            ("fieldSelector", "metadata.name!=p4"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ns["items"].as_array().unwrap().len(), 1);
    assert_eq!(ns["items"][0]["metadata"]["name"], "p9");
    let bad_field = c
        .get(&url)
        .query(&[("fieldSelector", "spec.bogus=1")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_field.status(), 400);
    // stats: two paginated storage reads + continue, one namespaced storage read
    let s = sim.stats();
    assert_eq!(s.reads["pods"].storage, 4);
    assert_eq!(s.reads["pods"].cache, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn continue_token_older_than_history_is_410() {
    let (sim, server, c) = start(|cfg| cfg.history_limit = 3).await;
    for i in 0..4 {
        sim.create(Resource::Pods, pod("a", &format!("p{i}")))
            .unwrap();
    }
    let url = format!("{}/api/v1/pods", server.url());
    let p1: Value = c
        .get(&url)
        .query(&[("limit", "1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for i in 0..4 {
        sim.create(Resource::Pods, pod("b", &format!("q{i}")))
            .unwrap();
    }
    let resp = c
        .get(&url)
        .query(&[("continue", p1["metadata"]["continue"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "Expired");
    server.shutdown().await;
}

#[tokio::test]
async fn watch_from_resource_version_gets_subsequent_events() {
    let (sim, server, c) = start(|_| {}).await;
    sim.create(Resource::Pods, pod("a", "before")).unwrap();
    let list: Value = c
        .get(format!("{}/api/v1/pods", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true"), ("resourceVersion", list_rv.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let mut w = WatchReader::new(resp);
    sim.create(Resource::Pods, pod("a", "after")).unwrap();
    sim.patch_status(
        Resource::Pods,
        Some("a"),
        "after",
        &json!({"status": {"phase": "Running"}}),
    )
    .unwrap();
    sim.delete(Resource::Pods, Some("a"), "after").unwrap();
    let e1 = w.next(SEC).await.unwrap();
    assert_eq!(e1["type"], "ADDED");
    assert_eq!(e1["object"]["kind"], "Pod");
    assert_eq!(e1["object"]["apiVersion"], "v1");
    assert_eq!(e1["object"]["metadata"]["name"], "after");
    let e2 = w.next(SEC).await.unwrap();
    assert_eq!(e2["type"], "MODIFIED");
    assert_eq!(e2["object"]["status"]["phase"], "Running");
    let e3 = w.next(SEC).await.unwrap();
    assert_eq!(e3["type"], "DELETED");
    assert!(rv(&e1["object"]) < rv(&e2["object"]) && rv(&e2["object"]) < rv(&e3["object"]));
    assert!(rv(&e1["object"]) > list_rv.parse::<u64>().unwrap());

    // A watch from an older RV replays history after it.
    let resp = c
        .get(format!("{}/api/v1/namespaces/a/pods", server.url()))
        .query(&[("watch", "1"), ("resourceVersion", list_rv.as_str())])
        .send()
        .await
        .unwrap();
    let mut replay = WatchReader::new(resp);
    let types: Vec<String> = [
        replay.next(SEC).await.unwrap(),
        replay.next(SEC).await.unwrap(),
        replay.next(SEC).await.unwrap(),
    ]
    .iter()
    .map(|e| e["type"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(types, vec!["ADDED", "MODIFIED", "DELETED"]);

    // watch without RV starts with synthetic ADDED for current objects
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true")])
        .send()
        .await
        .unwrap();
    let mut fresh = WatchReader::new(resp);
    let first = fresh.next(SEC).await.unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["metadata"]["name"], "before");
    assert_eq!(sim.stats().count("watch", "pods"), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn watch_with_selector_sends_deleted_when_object_stops_matching() {
    let (sim, server, c) = start(|_| {}).await;
    sim.create(Resource::Pods, pod("a", "p")).unwrap();
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true"), ("fieldSelector", "status.phase=Pending")])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    assert_eq!(w.next(SEC).await.unwrap()["type"], "ADDED");
    sim.patch_status(
        Resource::Pods,
        Some("a"),
        "p",
        &json!({"status": {"phase": "Running"}}),
    )
    .unwrap();
    let gone = w.next(SEC).await.unwrap();
    assert_eq!(gone["type"], "DELETED");
    assert_eq!(gone["object"]["status"]["phase"], "Pending");
    assert_eq!(rv(&gone["object"]), sim.resource_version());
    server.shutdown().await;
}

#[tokio::test]
async fn too_old_resource_version_gets_410_error_in_stream() {
    let (sim, server, c) = start(|cfg| cfg.history_limit = 2).await;
    for i in 0..5 {
        sim.create(Resource::Pods, pod("a", &format!("p{i}")))
            .unwrap();
    }
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true"), ("resourceVersion", "1")])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let err = w.next(SEC).await.unwrap();
    assert_eq!(err["type"], "ERROR");
    assert_eq!(
        err["object"],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "too old resource version: 1 (3)", "reason": "Expired", "code": 410})
    );
    assert!(w.next(SEC).await.is_none(), "stream ends after the error");
    assert!(w.ended);
    server.shutdown().await;
}

#[tokio::test]
async fn bookmarks_are_sent_periodically() {
    let (sim, server, c) = start(|cfg| cfg.bookmark_interval = Duration::from_millis(200)).await;
    sim.create(Resource::Pods, pod("a", "p")).unwrap();
    let cur = sim.resource_version().to_string();
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[
            ("watch", "true"),
            ("resourceVersion", cur.as_str()),
            ("allowWatchBookmarks", "true"),
        ])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let b = w.next(SEC).await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["kind"], "Pod");
    assert_eq!(b["object"]["metadata"]["resourceVersion"], cur.as_str());
    sim.create(Resource::Pods, pod("a", "q")).unwrap();
    let added = w.next(SEC).await.unwrap();
    assert_eq!(added["type"], "ADDED");
    let b2 = w.next(SEC).await.unwrap();
    assert_eq!(b2["type"], "BOOKMARK");
    assert_eq!(rv(&b2["object"]), rv(&added["object"]));

    // no bookmarks unless asked
    let cur = sim.resource_version().to_string();
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true"), ("resourceVersion", cur.as_str())])
        .send()
        .await
        .unwrap();
    let mut quiet = WatchReader::new(resp);
    assert!(quiet.next(Duration::from_millis(600)).await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream_cleanly() {
    let (sim, server, c) = start(|_| {}).await;
    let cur = sim.resource_version().to_string();
    let started = std::time::Instant::now();
    let resp = c
        .get(format!("{}/api/v1/nodes", server.url()))
        .query(&[
            ("watch", "true"),
            ("resourceVersion", cur.as_str()),
            ("timeoutSeconds", "1"),
        ])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    assert!(w.next(Duration::from_secs(5)).await.is_none());
    assert!(w.ended, "stream ended rather than timing out on our side");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_list_with_send_initial_events() {
    let (sim, server, c) = start(|_| {}).await;
    sim.create(Resource::Pods, pod("a", "p1")).unwrap();
    sim.create(Resource::Pods, pod("a", "p2")).unwrap();
    let url = format!("{}/api/v1/pods", server.url());
    let invalid = c
        .get(&url)
        .query(&[("watch", "true"), ("sendInitialEvents", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let resp = c
        .get(&url)
        .query(&[
            ("watch", "true"),
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
        ])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    assert_eq!(w.next(SEC).await.unwrap()["type"], "ADDED");
    assert_eq!(w.next(SEC).await.unwrap()["type"], "ADDED");
    let end = w.next(SEC).await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv(&end["object"]), sim.resource_version());
    sim.delete(Resource::Pods, Some("a"), "p1").unwrap();
    assert_eq!(w.next_non_bookmark(SEC).await.unwrap()["type"], "DELETED");
    let s = sim.stats();
    assert_eq!(s.reads["pods"].cache, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn events_are_visible_through_both_apis() {
    let (sim, server, c) = start(|_| {}).await;
    // create through events.k8s.io/v1
    let v1 = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "x.1", "namespace": "default"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
        "action": "Sync", "reason": "Synced", "type": "Normal", "note": "hello",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "x", "apiVersion": "v1"}
    });
    let created = c
        .post(format!(
            "{}/apis/events.k8s.io/v1/namespaces/default/events",
            server.url()
        ))
        .json(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // create through core/v1
    let core = json!({"metadata": {"name": "y.2"}, "involvedObject": {"kind": "Node", "name": "n"},
        "reason": "Boom", "message": "core msg", "type": "Warning", "count": 3,
        "source": {"component": "kubelet", "host": "n"}});
    let r = c
        .post(format!("{}/api/v1/namespaces/default/events", server.url()))
        .json(&core)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let core_list: Value = c
        .get(format!("{}/api/v1/events", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(core_list["kind"], "EventList");
    let x = &core_list["items"][0];
    assert_eq!(x["message"], "hello");
    assert_eq!(x["involvedObject"]["name"], "x");
    assert_eq!(x["reportingComponent"], "example.com/ctl");
    let v1_list: Value = c
        .get(format!("{}/apis/events.k8s.io/v1/events", server.url()))
        .query(&[("fieldSelector", "regarding.kind=Node")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1_list["apiVersion"], "events.k8s.io/v1");
    let y = &v1_list["items"][0];
    assert_eq!(v1_list["items"].as_array().unwrap().len(), 1);
    assert_eq!(y["note"], "core msg");
    assert_eq!(y["deprecatedCount"], 3);
    assert_eq!(y["deprecatedSource"]["component"], "kubelet");
    assert_eq!(y["regarding"]["name"], "n");
    assert_eq!(sim.list(Resource::Events, None).len(), 2);
    assert_eq!(sim.stats().count("list", "events.events.k8s.io"), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn table_output_and_stats_endpoint() {
    let (sim, server, c) = start(|_| {}).await;
    sim.create(Resource::Pods, pod("a", "p1")).unwrap();
    let t: Value = c
        .get(format!("{}/api/v1/pods", server.url()))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        )
        .query(&[("resourceVersion", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "p1");
    assert_eq!(t["rows"][0]["cells"][2], "Pending");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "a");
    let stats: Value = c
        .get(format!("{}/sim/stats", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_resource"]["pods"]["list"], 1);
    assert_eq!(stats["reads"]["pods"]["cache"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let (_sim, server, c) = start(|_| {}).await;
    let resp = c
        .get(format!("{}/api/v1/pods", server.url()))
        .query(&[("watch", "true")])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let t = std::time::Instant::now();
    server.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(w.next(SEC).await.is_none());
}
