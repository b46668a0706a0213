//! The watcher against a tiny in-test fake API server (axum on 127.0.0.1:0) through a real
//! `kube::Client` built from a kubeconfig (plain http, bearer token): proves the kube-rs request
//! path, the exact list/watch/re-list/resume requests, line-by-line watch decoding with a
//! malformed line and a malformed object, BOOKMARKs, and 410 Expired (in-stream and HTTP).
//!
//! List bodies and ADDED/MODIFIED objects are real captures from `tests/fixtures/` (a grown
//! `count` or a removed item is a derivation, said where it is made). The BOOKMARK and ERROR
//! frames are synthetic (no public capture of them exists; see `tests/fixtures/SOURCES.md`).

#![allow(clippy::unwrap_used)] // a test crate: panicking on a bad fixture is the point

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_core::{NodeChange, PodChange, Record, RecordBody};
use herald_watcher::{
    ClusterClient, InitialSync, ListStrategy, Resource, Selectors, WatchItem, Watcher,
    WatcherConfig, check_connection, client_from,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const TOKEN: &str = "test-token";

fn fixture_text(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path)).unwrap()
}

/// A canned answer.
#[derive(Clone)]
enum Canned {
    /// A JSON body with this status.
    Json(u16, String),
    /// A watch stream: these lines, then the end of the body.
    Lines(Vec<String>),
    /// A watch stream cut short: these lines, then this partial line, then the end of the body.
    Cut(Vec<String>, String),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query.get("watch").map(String::as_str) == Some("true")
    }
}

/// Answers are queued per (path, is-watch); when a queue is empty the request hangs (a watch
/// that stays open and silent).
#[derive(Default)]
struct Fake {
    queues: Mutex<HashMap<(String, bool), VecDeque<Canned>>>,
    seen: Mutex<Vec<Seen>>,
}

impl Fake {
    fn push(&self, path: &str, watch: bool, answer: Canned) {
        self.queues
            .lock()
            .unwrap()
            .entry((path.to_string(), watch))
            .or_default()
            .push_back(answer);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let uri = req.uri().clone();
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    let seen = Seen {
        method: req.method().to_string(),
        path: uri.path().to_string(),
        query,
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let key = (seen.path.clone(), seen.is_watch());
    fake.seen.lock().unwrap().push(seen);
    if key.0 == "/version" {
        return json_response(
            200,
            r#"{"major":"1","minor":"34","gitVersion":"v1.34.0-fake"}"#,
        );
    }
    let answer = fake
        .queues
        .lock()
        .unwrap()
        .get_mut(&key)
        .and_then(VecDeque::pop_front);
    match answer {
        Some(Canned::Json(code, body)) => json_response(code, &body),
        Some(Canned::Lines(lines)) => {
            let mut body = lines.join("\n");
            body.push('\n');
            json_response(200, &body)
        }
        Some(Canned::Cut(lines, partial)) => {
            let mut body = lines.join("\n");
            body.push('\n');
            body.push_str(&partial);
            json_response(200, &body)
        }
        None => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from_stream(futures::stream::pending::<
                Result<axum::body::Bytes, std::io::Error>,
            >()))
            .unwrap(),
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn json_response(code: u16, body: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Starts the fake server and returns it with a client built from a kubeconfig pointing at it.
/// Logs go to the test output (`RUST_LOG=herald_watcher=debug` to see the requests).
async fn start(fake: Arc<Fake>) -> (ClusterClient, tempfile::TempDir) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(handle).with_state(fake);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\nusers:\n- name: fake\n  user:\n    token: {TOKEN}\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    let client = client_from(Some(&path), None).await.unwrap();
    (client, dir)
}

/// Receives items until the server has seen `requests` requests and the channel is quiet.
async fn collect(
    rx: &mut mpsc::Receiver<WatchItem>,
    fake: &Fake,
    requests: usize,
) -> Vec<WatchItem> {
    let mut items = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(i) => items.push(i),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if fake.seen().len() >= requests {
                    break;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; requests: {:#?}; items: {}",
            fake.seen(),
            items.len()
        );
    }
    items
}

fn records(items: &[WatchItem]) -> Vec<&Record> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// `(uid, count, count_delta)` of event records.
fn event_deltas(items: &[WatchItem]) -> Vec<(String, u32, u32)> {
    records(items)
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Event(e) => Some((e.uid.clone(), e.count, e.count_delta)),
            _ => None,
        })
        .collect()
}

fn checkpoints(items: &[WatchItem]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Checkpoint(c) => Some(format!("{}@{}", c.resource, c.resource_version)),
            _ => None,
        })
        .collect()
}

fn q(seen: &Seen, key: &str) -> Option<String> {
    seen.query.get(key).cloned()
}

fn watch_line(kind: &str, object: &Value) -> String {
    json!({ "type": kind, "object": object }).to_string()
}

/// Synthetic BOOKMARK frame.
fn bookmark(rv: &str) -> String {
    json!({"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":rv}}}).to_string()
}

/// Synthetic in-stream 410 Expired frame.
fn expired_frame() -> String {
    json!({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 990000 (995000)","reason":"Expired","code":410}}).to_string()
}

/// Synthetic HTTP 410 Status body.
fn expired_body() -> String {
    json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}).to_string()
}

fn item_by_uid<'a>(list: &'a mut Value, uid: &str) -> &'a mut Value {
    list["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|i| i["metadata"]["uid"] == uid)
        .unwrap()
}

const BACKOFF_UID: &str = "2dbed976-4a5d-42f8-8cd7-8778f2382b7a"; // count 111
const PULLING_UID: &str = "091c0f14-75df-47e6-af31-309d8a0b0b86"; // count 5
const FAILEDMOUNT_UID: &str = "bab0a7d9-61a5-43a1-813c-ed2d050aee34"; // count 324

fn events_only(cluster: &str) -> WatcherConfig {
    WatcherConfig {
        cluster: cluster.into(),
        watch_timeout: Duration::from_secs(37),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        list_strategy: ListStrategy::Cached,
        ..WatcherConfig::default()
    }
    .with_resources(true, false, false)
}

#[tokio::test]
async fn list_watch_bookmark_malformed_and_410_relist() {
    let fake = Arc::new(Fake::default());
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json"); // rv 982712, 17 items
    fake.push("/api/v1/events", false, Canned::Json(200, list.to_string()));

    // Watch 1: BackOff grows 111 -> 113 (derivation), a malformed object (count is a string),
    // a line that is not JSON, the three real ADDED lines of an event watch capture, a bookmark.
    let mut grown = item_by_uid(&mut list.clone(), BACKOFF_UID).clone();
    grown["count"] = json!(113);
    grown["metadata"]["resourceVersion"] = json!("982800");
    let malformed = json!({"kind":"Event","apiVersion":"v1","metadata":{"name":"bad.1","namespace":"default","uid":"u-bad","resourceVersion":"982801"},"involvedObject":{"kind":"Pod","name":"x"},"count":"many"});
    let mut lines = vec![
        watch_line("MODIFIED", &grown),
        watch_line("ADDED", &malformed),
        "{this is not json".to_string(),
    ];
    lines.extend(
        fixture_text("watch-streams/k8s-event-logger-readme-watch-events.jsonl")
            .lines()
            .map(str::to_string),
    );
    lines.push(bookmark("990000"));
    fake.push("/api/v1/events", true, Canned::Lines(lines));
    // Watch 2: in-stream 410.
    fake.push("/api/v1/events", true, Canned::Lines(vec![expired_frame()]));
    // Re-list 1: Pulling grew 5 -> 6 and FailedMount is gone (derivations); rv 995000.
    let mut relist = list.clone();
    relist["metadata"]["resourceVersion"] = json!("995000");
    item_by_uid(&mut relist, PULLING_UID)["count"] = json!(6);
    item_by_uid(&mut relist, BACKOFF_UID)["count"] = json!(113);
    relist["items"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i["metadata"]["uid"] != FAILEDMOUNT_UID);
    fake.push(
        "/api/v1/events",
        false,
        Canned::Json(200, relist.to_string()),
    );
    // Watch 3: HTTP 410; re-list 2 returns the same list; watch 4 hangs.
    fake.push("/api/v1/events", true, Canned::Json(410, expired_body()));
    fake.push(
        "/api/v1/events",
        false,
        Canned::Json(200, relist.to_string()),
    );

    let (client, _dir) = start(fake.clone()).await;
    assert_eq!(check_connection(&client).await.unwrap(), "v1.34.0-fake");
    let watcher = Watcher::new(client.client, events_only("test-cluster"));
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    // /version + list + watch + watch + list + watch + list + watch
    let all = collect(&mut rx, &fake, 8).await;
    // Event states are not sent (with `initial_sync: record` each Event the watcher counts has
    // a record with its key and count, from which a restart rebuilds the state); the records
    // go out before the checkpoint that covers them.
    assert!(
        !all.iter().any(|i| matches!(i, WatchItem::States { .. })),
        "{all:#?}"
    );
    let first_record = all
        .iter()
        .position(|i| matches!(i, WatchItem::Record(_)))
        .unwrap();
    let first_checkpoint = all
        .iter()
        .position(|i| matches!(i, WatchItem::Checkpoint(_)))
        .unwrap();
    assert!(first_record < first_checkpoint);
    let items: Vec<WatchItem> = all
        .into_iter()
        .filter(|i| !matches!(i, WatchItem::States { .. }))
        .collect();

    // Requests, exactly.
    let seen = fake.seen();
    let api: Vec<&Seen> = seen.iter().filter(|s| s.path != "/version").collect();
    assert_eq!(api.len(), 7, "{api:#?}");
    for s in &api {
        assert_eq!(s.method, "GET");
        assert_eq!(s.path, "/api/v1/events");
        assert_eq!(s.authorization.as_deref(), Some("Bearer test-token"));
    }
    let expect_list = |s: &Seen, rv: &str, matching: Option<&str>| {
        assert!(!s.is_watch(), "{s:?}");
        assert_eq!(q(s, "resourceVersion").as_deref(), Some(rv), "{s:?}");
        assert_eq!(q(s, "resourceVersionMatch").as_deref(), matching, "{s:?}");
        assert_eq!(q(s, "limit"), None);
    };
    let expect_watch = |s: &Seen, rv: &str| {
        assert!(s.is_watch(), "{s:?}");
        assert_eq!(q(s, "resourceVersion").as_deref(), Some(rv), "{s:?}");
        assert_eq!(q(s, "allowWatchBookmarks").as_deref(), Some("true"));
        assert_eq!(q(s, "timeoutSeconds").as_deref(), Some("37"));
    };
    expect_list(api[0], "0", None);
    expect_watch(api[1], "982712");
    expect_watch(api[2], "990000");
    expect_list(api[3], "990000", Some("NotOlderThan"));
    expect_watch(api[4], "995000");
    expect_list(api[5], "995000", Some("NotOlderThan"));
    expect_watch(api[6], "995000");

    // Items, in order.
    let deltas = event_deltas(&items);
    assert_eq!(deltas.len(), 17 + 1 + 3 + 1, "{deltas:#?}");
    // Initial sync: every existing Event with its full count.
    assert!(deltas[..17].iter().all(|(_, c, d)| c == d));
    assert!(deltas[..17].contains(&(BACKOFF_UID.to_string(), 111, 111)));
    // Watch: the growth, then the three ADDED events.
    assert_eq!(deltas[17], (BACKOFF_UID.to_string(), 113, 2));
    assert!(deltas[18..21].iter().all(|(_, c, d)| (*c, *d) == (1, 1)));
    // Re-list: only the growth of Pulling, no duplicates.
    assert_eq!(deltas[21], (PULLING_UID.to_string(), 6, 1));
    assert_eq!(
        checkpoints(&items),
        [
            "events@982712",
            "events@982800",
            "events@14188603",
            "events@14188605",
            "events@14188607",
            "events@990000",
            "events@995000"
        ]
    );
    // Order: the 17 records, the list checkpoint, Synced; each later record before its checkpoint.
    assert!(matches!(&items[17], WatchItem::Checkpoint(c) if c.resource_version == "982712"));
    assert_eq!(
        items[18],
        WatchItem::Synced {
            resource: "events".into()
        }
    );
    assert!(matches!(&items[19], WatchItem::Record(_)));
    assert!(matches!(&items[20], WatchItem::Checkpoint(c) if c.resource_version == "982800"));
    assert!(
        matches!(items.last(), Some(WatchItem::Checkpoint(c)) if c.resource_version == "995000")
    );

    // Record contents of a kubelet Event from the watch.
    let added = records(&items)[18];
    assert_eq!(added.cluster, "test-cluster");
    assert_eq!(added.object.name, "test-service-66c8db4d94-fkmsz");
    assert_eq!(
        added.node.as_deref(),
        Some("prod-1-kubeworker02.dc1.ec.loc")
    );

    assert_eq!(stats.malformed(), 2);
    assert_eq!(stats.relists(), 2);
    assert_eq!(stats.bookmarks(), 1);
    assert_eq!(stats.lists(), 3);

    // Closing the channel stops the watcher, even while its watch hangs.
    drop(rx);
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("watcher stops when the channel closes")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn resume_watches_without_listing_and_lists_once_on_410() {
    let fake = Arc::new(Fake::default());
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    // Watch from the checkpoint: an Event we have no state for was modified (count 112), then
    // the watch expires.
    let mut modified = item_by_uid(&mut list.clone(), BACKOFF_UID).clone();
    modified["count"] = json!(112);
    modified["metadata"]["resourceVersion"] = json!("982750");
    fake.push(
        "/api/v1/events",
        true,
        Canned::Lines(vec![watch_line("MODIFIED", &modified), expired_frame()]),
    );
    // The one list: BackOff at 112 (known now: nothing), the others recorded once.
    let mut relist = list.clone();
    item_by_uid(&mut relist, BACKOFF_UID)["count"] = json!(112);
    fake.push(
        "/api/v1/events",
        false,
        Canned::Json(200, relist.to_string()),
    );

    let (client, _dir) = start(fake.clone()).await;
    let mut cfg = events_only("c");
    cfg.resume.insert("events".into(), "982700".into());
    let watcher = Watcher::new(client.client, cfg);
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    let items = collect(&mut rx, &fake, 3).await;

    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].is_watch());
    assert_eq!(q(&seen[0], "resourceVersion").as_deref(), Some("982700"));
    assert!(!seen[1].is_watch());
    assert_eq!(q(&seen[1], "resourceVersion").as_deref(), Some("982750"));
    assert_eq!(
        q(&seen[1], "resourceVersionMatch").as_deref(),
        Some("NotOlderThan")
    );
    assert!(seen[2].is_watch());
    assert_eq!(q(&seen[2], "resourceVersion").as_deref(), Some("982712"));

    // Synced as soon as the resumed watch is connected.
    assert_eq!(
        items[0],
        WatchItem::Synced {
            resource: "events".into()
        }
    );
    let deltas = event_deltas(&items);
    assert_eq!(deltas[0], (BACKOFF_UID.to_string(), 112, 1));
    assert_eq!(deltas.len(), 1 + 16);
    assert!(!deltas[1..].iter().any(|(uid, _, _)| uid == BACKOFF_UID));
    assert_eq!(checkpoints(&items), ["events@982750", "events@982712"]);
    drop(rx);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn pods_and_nodes_with_namespace_and_selectors() {
    let fake = Arc::new(Fake::default());
    let pods_path = "/api/v1/namespaces/kube-system/pods";
    // Pod list: the OOM pod before its restart (derivation: running, no lastState,
    // restartCount 0); the watch then brings the real object (restartCount 1, lastState
    // OOMKilled).
    let oom = fixture("pods/datadog-gke-laststate-oomkilled.json");
    let mut before = oom.clone();
    for c in before["status"]["containerStatuses"]
        .as_array_mut()
        .unwrap()
    {
        if c["name"] == "fluentd-gcp" {
            c["state"] = json!({"running": {"startedAt": "2018-02-13T16:01:13Z"}});
            c["lastState"] = json!({});
            c["restartCount"] = json!(0);
        }
    }
    before["metadata"]["resourceVersion"] = json!("100");
    let mut after = oom.clone();
    after["metadata"]["resourceVersion"] = json!("105");
    // Synthetic malformed item: `status.containerStatuses` (read by the watcher) is not a list.
    let broken = json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":"broken","namespace":"kube-system","uid":"u-broken"},"status":{"containerStatuses":"nope"}});
    let pod_list = json!({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"101"},"items":[broken, before]});
    fake.push(pods_path, false, Canned::Json(200, pod_list.to_string()));
    fake.push(
        pods_path,
        true,
        Canned::Lines(vec![
            watch_line("MODIFIED", &after),
            watch_line("DELETED", &after),
        ]),
    );

    // Node list: Ready; the watch: Ready=Unknown (derivation), then a bookmark.
    let node = fixture("nodes/k9s-minikube-node-ready.json");
    let mut unknown = node.clone();
    for c in unknown["status"]["conditions"].as_array_mut().unwrap() {
        if c["type"] == "Ready" {
            c["status"] = json!("Unknown");
            c["reason"] = json!("NodeStatusUnknown");
        }
    }
    unknown["metadata"]["resourceVersion"] = json!("205");
    let node_list = json!({"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"201"},"items":[node]});
    fake.push(
        "/api/v1/nodes",
        false,
        Canned::Json(200, node_list.to_string()),
    );
    fake.push(
        "/api/v1/nodes",
        true,
        Canned::Lines(vec![watch_line("MODIFIED", &unknown), bookmark("210")]),
    );

    let (client, _dir) = start(fake.clone()).await;
    let mut cfg = WatcherConfig {
        cluster: "c".into(),
        namespace: Some("kube-system".into()),
        initial_sync: InitialSync::Seed,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        list_strategy: ListStrategy::Cached,
        ..WatcherConfig::default()
    }
    .with_resources(false, true, true);
    cfg.selectors.insert(
        Resource::Pods,
        Selectors {
            label_selector: Some("k8s-app=fluentd-gcp".into()),
            field_selector: Some("spec.nodeName=gke-haissam-default-pool-be5066f1-wnvn".into()),
        },
    );
    let watcher = Watcher::new(client.client, cfg);
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    // pods: list, watch, watch (hangs); nodes: list, watch, watch (hangs)
    let items = collect(&mut rx, &fake, 6).await;
    assert_eq!(
        stats.malformed(),
        1,
        "the broken list item is skipped and counted"
    );

    let seen = fake.seen();
    for s in seen.iter().filter(|s| s.path == pods_path) {
        assert_eq!(
            q(s, "labelSelector").as_deref(),
            Some("k8s-app=fluentd-gcp"),
            "{s:?}"
        );
        assert_eq!(
            q(s, "fieldSelector").as_deref(),
            Some("spec.nodeName=gke-haissam-default-pool-be5066f1-wnvn")
        );
    }
    assert_eq!(seen.iter().filter(|s| s.path == "/api/v1/nodes").count(), 3);
    for s in seen.iter().filter(|s| s.path == "/api/v1/nodes") {
        assert_eq!(q(s, "labelSelector"), None);
    }

    let pod_changes: Vec<&PodChange> = records(&items)
        .into_iter()
        .filter_map(|r| match &r.body {
            RecordBody::Pod(p) => Some(&p.change),
            _ => None,
        })
        .collect();
    assert_eq!(pod_changes.len(), 2, "{pod_changes:#?}");
    assert!(matches!(
        pod_changes[0],
        PodChange::ContainerTerminated { container, reason: Some(r), exit_code: 2, restart_count: 1, .. }
            if container == "fluentd-gcp" && r == "OOMKilled"
    ));
    assert_eq!(pod_changes[1], &PodChange::Deleted);
    let oom_record = records(&items)
        .into_iter()
        .find(|r| matches!(r.body, RecordBody::Pod(_)))
        .unwrap();
    assert_eq!(
        oom_record.node.as_deref(),
        Some("gke-haissam-default-pool-be5066f1-wnvn")
    );
    assert_eq!(
        oom_record.owner.as_ref().unwrap().name,
        "fluentd-gcp-v2.0.10"
    );
    assert_eq!(
        oom_record.labels.get("k8s-app").map(String::as_str),
        Some("fluentd-gcp")
    );

    let node_changes: Vec<&NodeChange> = records(&items)
        .into_iter()
        .filter_map(|r| match &r.body {
            RecordBody::Node(n) => Some(&n.change),
            _ => None,
        })
        .collect();
    assert!(matches!(
        node_changes.as_slice(),
        [NodeChange::ConditionChanged { condition, from: Some(f), to, .. }]
            if condition == "Ready" && f == "True" && to == "Unknown"
    ));
    let cps = checkpoints(&items);
    for expected in [
        "pods@101",
        "pods@105",
        "nodes@201",
        "nodes@205",
        "nodes@210",
    ] {
        assert!(cps.contains(&expected.to_string()), "{cps:?}");
    }
    let synced: Vec<&WatchItem> = items
        .iter()
        .filter(|i| matches!(i, WatchItem::Synced { .. }))
        .collect();
    assert_eq!(synced.len(), 2);
    drop(rx);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn forbidden_is_retried_slowly_until_the_rbac_is_fixed() {
    let fake = Arc::new(Fake::default());
    let body = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes is forbidden: User \"system:serviceaccount:herald:herald\" cannot list resource \"nodes\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"kind":"nodes"},"code":403});
    fake.push("/api/v1/nodes", false, Canned::Json(403, body.to_string()));
    fake.push("/api/v1/nodes", false, Canned::Json(403, body.to_string()));
    // A NodeList around a real node (the list envelope is the derivation).
    let list = json!({"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"500"},
        "items":[fixture("nodes/k9s-minikube-node-ready.json")]});
    fake.push("/api/v1/nodes", false, Canned::Json(200, list.to_string()));
    let (client, _dir) = start(fake.clone()).await;
    let cfg = WatcherConfig {
        list_strategy: ListStrategy::Cached,
        denied_retry: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(1),
        ..WatcherConfig::default()
    }
    .with_resources(false, false, true);
    let watcher = Watcher::new(client.client, cfg);
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    let started = std::time::Instant::now();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("synced after the RBAC was fixed")
            .expect("watcher running");
        if matches!(item, WatchItem::Synced { .. }) {
            break;
        }
    }
    // Two refusals, each followed by the slow retry, not by the fast backoff.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.denied(), 2);
    let lists = fake
        .seen()
        .iter()
        .filter(|s| s.path == "/api/v1/nodes" && !s.is_watch())
        .count();
    assert_eq!(lists, 3);
    task.abort();
}

/// Synthetic BOOKMARK that ends a streaming list's initial events (the shape kube-apiserver
/// sends: an object of the resource's kind with only a resourceVersion and the annotation).
fn initial_events_end(rv: &str) -> String {
    json!({"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{
        "resourceVersion":rv,"annotations":{"k8s.io/initial-events-end":"true"}}}})
    .to_string()
}

#[tokio::test]
async fn streaming_list_then_watch_on_the_same_connection() {
    let fake = Arc::new(Fake::default());
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    let items: Vec<Value> = list["items"].as_array().unwrap().clone();
    let mut lines: Vec<String> = items.iter().map(|i| watch_line("ADDED", i)).collect();
    lines.push(initial_events_end("990000"));
    let mut grown = item_by_uid(&mut list.clone(), BACKOFF_UID).clone();
    grown["count"] = json!(112);
    grown["metadata"]["resourceVersion"] = json!("990001");
    lines.push(watch_line("MODIFIED", &grown));
    fake.push("/api/v1/events", true, Canned::Lines(lines));

    let (client, _dir) = start(fake.clone()).await;
    let cfg = WatcherConfig {
        list_strategy: ListStrategy::Streaming,
        ..events_only("c")
    };
    let watcher = Watcher::new(client.client, cfg);
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    let got = collect(&mut rx, &fake, 2).await;

    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(seen.iter().all(Seen::is_watch), "no LIST at all: {seen:#?}");
    assert_eq!(q(&seen[0], "sendInitialEvents").as_deref(), Some("true"));
    assert_eq!(
        q(&seen[0], "resourceVersionMatch").as_deref(),
        Some("NotOlderThan")
    );
    assert_eq!(q(&seen[0], "allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(q(&seen[0], "resourceVersion"), None);
    // The connection ended after the MODIFIED event: an ordinary watch from there.
    assert_eq!(q(&seen[1], "sendInitialEvents"), None);
    assert_eq!(q(&seen[1], "resourceVersion").as_deref(), Some("990001"));

    // Every listed Event once with its full count, then the growth as a delta of 1.
    let deltas = event_deltas(&got);
    assert_eq!(deltas.len(), items.len() + 1, "{deltas:?}");
    assert_eq!(deltas.last(), Some(&(BACKOFF_UID.to_string(), 112, 1)));
    // No checkpoint inside the initial events: the first is the closing bookmark's.
    assert_eq!(checkpoints(&got), ["events@990000", "events@990001"]);
    let synced_at = got
        .iter()
        .position(|i| matches!(i, WatchItem::Synced { .. }))
        .unwrap();
    let first_checkpoint = got
        .iter()
        .position(|i| matches!(i, WatchItem::Checkpoint(_)))
        .unwrap();
    assert!(first_checkpoint < synced_at);
    assert_eq!((stats.lists(), stats.bookmarks()), (1, 1));
    drop(rx);
    task.abort();
}

#[tokio::test]
async fn auto_falls_back_to_a_cached_list_when_streaming_is_refused() {
    let fake = Arc::new(Fake::default());
    // What a 1.27+ server with the WatchList feature gate off answers.
    let refused = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        "reason":"Invalid","code":422});
    fake.push(
        "/api/v1/events",
        true,
        Canned::Json(422, refused.to_string()),
    );
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    fake.push("/api/v1/events", false, Canned::Json(200, list.to_string()));

    let (client, _dir) = start(fake.clone()).await;
    let cfg = WatcherConfig {
        list_strategy: ListStrategy::Auto,
        ..events_only("c")
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(Watcher::new(client.client, cfg).run(tx));
    let got = collect(&mut rx, &fake, 4).await;

    let seen: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path != "/version")
        .collect();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(seen[0].is_watch());
    assert_eq!(q(&seen[0], "sendInitialEvents").as_deref(), Some("true"));
    assert!(!seen[1].is_watch());
    assert_eq!(q(&seen[1], "resourceVersion").as_deref(), Some("0"));
    assert_eq!(
        q(&seen[1], "limit"),
        None,
        "a limit would bypass the watch cache"
    );
    assert!(seen[2].is_watch());
    assert_eq!(q(&seen[2], "sendInitialEvents"), None);
    assert!(got.iter().any(|i| matches!(i, WatchItem::Synced { .. })));
    assert_eq!(
        event_deltas(&got).len(),
        list["items"].as_array().unwrap().len()
    );
    drop(rx);
    task.abort();
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let fake = Arc::new(Fake::default());
    let throttled = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"Too many requests, please try again later.","reason":"TooManyRequests",
        "details":{"retryAfterSeconds":1},"code":429});
    fake.push(
        "/api/v1/events",
        false,
        Canned::Json(429, throttled.to_string()),
    );
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    fake.push("/api/v1/events", false, Canned::Json(200, list.to_string()));

    let (client, _dir) = start(fake.clone()).await;
    let watcher = Watcher::new(client.client, events_only("c"));
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let started = std::time::Instant::now();
    let task = tokio::spawn(watcher.run(tx));
    let got = collect(&mut rx, &fake, 3).await;
    assert!(got.iter().any(|i| matches!(i, WatchItem::Synced { .. })));
    // The backoff of this config is at most 100 ms; only Retry-After explains a 1 s wait.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((stats.throttled(), stats.errors()), (1, 1));
    let lists = fake.seen().iter().filter(|s| !s.is_watch()).count();
    assert_eq!(lists, 2);
    drop(rx);
    task.abort();
}

#[tokio::test]
async fn a_watch_cut_mid_line_resumes_after_the_last_complete_event() {
    let fake = Arc::new(Fake::default());
    let list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    fake.push("/api/v1/events", false, Canned::Json(200, list.to_string()));
    let mut grown = item_by_uid(&mut list.clone(), BACKOFF_UID).clone();
    grown["count"] = json!(112);
    grown["metadata"]["resourceVersion"] = json!("990001");
    let complete = watch_line("MODIFIED", &grown);
    grown["count"] = json!(113);
    grown["metadata"]["resourceVersion"] = json!("990002");
    let next = watch_line("MODIFIED", &grown);
    // A complete event, then half of the next one and the end of the body (no newline).
    fake.push(
        "/api/v1/events",
        true,
        Canned::Cut(vec![complete], next[..next.len() / 2].to_string()),
    );
    let (client, _dir) = start(fake.clone()).await;
    let watcher = Watcher::new(client.client, events_only("c"));
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(watcher.run(tx));
    let got = collect(&mut rx, &fake, 3).await;
    let seen = fake.seen();
    assert_eq!(
        q(&seen[2], "resourceVersion").as_deref(),
        Some("990001"),
        "{seen:#?}"
    );
    let deltas = event_deltas(&got);
    assert_eq!(deltas.last(), Some(&(BACKOFF_UID.to_string(), 112, 1)));
    assert_eq!(stats.malformed(), 0, "a cut line is not a malformed object");
    drop(rx);
    task.abort();
}

/// The next `States` item within `ms` milliseconds (other items are skipped; a checkpoint
/// before it is a failure).
async fn next_states(rx: &mut mpsc::Receiver<WatchItem>, ms: u64) -> Option<WatchItem> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item @ WatchItem::States { .. })) => return Some(item),
            Ok(Some(WatchItem::Checkpoint(_))) => panic!("checkpoint before its states"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The compact states of a large list go out in chunks, and no more than
/// `states_in_flight` of them wait in the channel: the next chunk is only sent once the
/// consumer dropped (persisted) an earlier one, so 200,000 changed pod states never sit in
/// memory at once.
#[tokio::test]
async fn queued_states_are_bounded_until_the_consumer_drops_them() {
    let fake = Arc::new(Fake::default());
    let mut list = fixture("lists/troubleshoot-minikube-events-initcrash.json");
    // Derivation: 2,500 Events, copies of the first one with their own name and uid.
    let first = list["items"][0].clone();
    let items: Vec<Value> = (0..2500)
        .map(|i| {
            let mut e = first.clone();
            e["metadata"]["name"] = json!(format!("copy.{i}"));
            e["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
            e
        })
        .collect();
    list["items"] = json!(items);
    fake.push("/api/v1/events", false, Canned::Json(200, list.to_string()));

    let (client, _dir) = start(fake.clone()).await;
    // `initial_sync: seed`: the list records nothing, so Event states are persisted as states
    // (with `record` they are rebuilt from the records instead).
    let cfg = WatcherConfig {
        states_in_flight: 1000,
        initial_sync: InitialSync::Seed,
        ..events_only("c")
    };
    let watcher = Watcher::new(client.client, cfg);
    let (tx, mut rx) = mpsc::channel(10_000);
    let task = tokio::spawn(watcher.run(tx));

    let mut sizes = Vec::new();
    for _ in 0..3 {
        let held = next_states(&mut rx, 3000).await.expect("a chunk of states");
        let WatchItem::States { states, permit, .. } = &held else {
            unreachable!()
        };
        assert_eq!(permit.states(), states.len());
        sizes.push(states.len());
        if sizes.len() < 3 {
            // While it is held, the budget (1,000) is used up: nothing more comes.
            assert!(next_states(&mut rx, 700).await.is_none(), "{sizes:?}");
        }
        drop(held);
    }
    assert_eq!(sizes, [1000, 1000, 500]);
    // Then the checkpoint that covers them.
    let checkpoint = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(WatchItem::Checkpoint(c)) = rx.recv().await {
                return c;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(checkpoint.resource, "events");
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
