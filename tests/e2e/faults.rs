//! The watcher against the simulator's injected faults: each fault hits the pods watch while
//! pods are being created, and the watcher must come back with every creation reported exactly
//! once (nothing lost, nothing doubled) and nothing reported for the pods that were there
//! before. The watcher is driven as a library here (the same code `herald run` uses) so that
//! its output can be checked item by item.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald_core::{PodChange, RecordBody};
use herald_sim::{Fault, FaultRule, Resource as SimResource, SimConfig, Simulator, Verb};
use herald_watcher::{ListStrategy, WatchItem, Watcher, WatcherConfig, WatcherStats};
use serde_json::json;
use tokio::sync::mpsc;

/// Pods created while the fault is active.
const CREATED: usize = 24;

struct Run {
    sim: Simulator,
    stats: WatcherStats,
    rx: mpsc::Receiver<WatchItem>,
    task: tokio::task::JoinHandle<Result<(), herald_watcher::WatchError>>,
    _server: herald_sim::SimServer,
    _dir: tempfile::TempDir,
}

/// A seeded simulator and a watcher synced against it (watches end every second, so that
/// faults on the next watch request are reached quickly).
async fn synced_watcher() -> Run {
    let sim = Simulator::new(SimConfig {
        token: "fault-token".into(),
        tls: false,
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    sim.seed(&herald_sim::builtin_scenario("incident").unwrap())
        .unwrap();
    let cluster = herald_watcher::client_from(Some(&kubeconfig), None)
        .await
        .unwrap();
    let cfg = WatcherConfig {
        cluster: "faults".into(),
        list_strategy: ListStrategy::Auto,
        watch_timeout: Duration::from_secs(1),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        denied_retry: Duration::from_millis(500),
        ..WatcherConfig::default()
    }
    .with_resources(false, true, false);
    let watcher = Watcher::new(cluster.client, cfg);
    let stats = watcher.stats();
    let (tx, mut rx) = mpsc::channel(4096);
    let task = tokio::spawn(watcher.run(tx));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let item = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap();
        match item {
            Some(WatchItem::Synced { .. }) => break,
            Some(WatchItem::Record(r)) => {
                // The seeded pods are healthy: the initial sync reports nothing about them.
                panic!("unexpected record on the initial sync: {r:?}");
            }
            Some(_) => {}
            None => panic!("watcher stopped: {:?}", task.await),
        }
        assert!(Instant::now() < deadline, "initial sync");
    }
    Run {
        sim,
        stats,
        rx,
        task,
        _server: server,
        _dir: dir,
    }
}

/// Creates [`CREATED`] pods over about a second and a half, calling `during` after the first
/// few, and returns how often each pod's creation was reported (waiting until all were, or
/// until a deadline).
async fn create_pods_and_count(
    run: &mut Run,
    during: impl FnOnce(&Simulator),
) -> BTreeMap<String, u32> {
    let mut during = Some(during);
    for i in 0..CREATED {
        if i == 4
            && let Some(f) = during.take()
        {
            f(&run.sim);
        }
        let pod = json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":format!("fault-{i:02}"),"namespace":"default","labels":{"app":"fault"}},
            "spec":{"nodeName":"node-a","containers":[{"name":"c","image":"busybox:1.36"}]}});
        run.sim.create(SimResource::Pods, pod).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let mut created: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while created.len() < CREATED && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), run.rx.recv()).await {
            Ok(Some(WatchItem::Record(r))) => {
                if let RecordBody::Pod(p) = &r.body
                    && matches!(p.change, PodChange::Created)
                {
                    *created.entry(r.object.name.clone()).or_default() += 1;
                }
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    // Anything doubled would arrive right behind: drain for a moment more.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if let Ok(Some(WatchItem::Record(r))) =
            tokio::time::timeout(Duration::from_millis(100), run.rx.recv()).await
            && let RecordBody::Pod(p) = &r.body
            && matches!(p.change, PodChange::Created)
        {
            *created.entry(r.object.name.clone()).or_default() += 1;
        }
    }
    created
}

fn assert_each_once(created: &BTreeMap<String, u32>) {
    let expected: Vec<String> = (0..CREATED).map(|i| format!("fault-{i:02}")).collect();
    let got: Vec<String> = created.keys().cloned().collect();
    assert_eq!(got, expected, "every creation reported: {created:?}");
    assert!(
        created.values().all(|n| *n == 1),
        "each exactly once: {created:?}"
    );
}

async fn check(during: impl FnOnce(&Simulator)) -> (WatcherStats, herald_sim::RequestStats) {
    let mut run = synced_watcher().await;
    let created = create_pods_and_count(&mut run, during).await;
    assert_each_once(&created);
    let st = run.sim.stats();
    assert!(st.faulted >= 1, "the fault was hit: {st:#?}");
    assert_eq!(st.reads_total.storage, 0, "nothing read from etcd: {st:#?}");
    run.task.abort();
    (run.stats, st)
}

fn on_pods_watch(fault: Fault, times: u32) -> FaultRule {
    FaultRule::new(fault)
        .verb(Verb::Watch)
        .resource("pods")
        .times(times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_dropped_mid_line() {
    let (stats, _) = check(|sim| {
        sim.faults()
            .inject(on_pods_watch(Fault::DropMidLineAfter { lines: 2 }, 2));
    })
    .await;
    assert_eq!(stats.malformed(), 0, "a cut line is not a malformed object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stalled() {
    check(|sim| {
        sim.faults()
            .inject(on_pods_watch(Fault::stall(Duration::from_secs(2)), 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_500_and_503() {
    let (stats, _) = check(|sim| {
        sim.faults()
            .inject(on_pods_watch(Fault::internal_error(), 1));
        sim.faults()
            .inject(on_pods_watch(Fault::service_unavailable(), 1));
    })
    .await;
    assert!(stats.errors() >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_with_retry_after() {
    let started = Instant::now();
    let (stats, _) = check(|sim| {
        sim.faults()
            .inject(on_pods_watch(Fault::too_many_requests(1), 1));
    })
    .await;
    assert_eq!(stats.throttled(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_then_fixed() {
    let (stats, _) = check(|sim| {
        sim.faults().inject(on_pods_watch(Fault::forbidden(), 1));
    })
    .await;
    assert_eq!(stats.denied(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_compacted_while_away_gives_410_and_one_resync() {
    let mut run = synced_watcher().await;
    // Keep the watcher away: its next pods watches fail until the faults are cleared.
    run.sim
        .faults()
        .inject(on_pods_watch(Fault::internal_error(), 10_000));
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.sim.stats().faulted == 0 {
        assert!(Instant::now() < deadline, "the watcher never re-watched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it is away the pods are created and the history is compacted, so the
    // resourceVersion it comes back with is too old.
    let created = create_pods_and_count(&mut run, |sim| {
        sim.compact();
        sim.faults().clear();
    })
    .await;
    assert_each_once(&created);
    assert!(run.stats.expired() >= 1, "{:?}", run.stats);
    assert_eq!(run.stats.relists(), 1, "one re-sync: {:?}", run.stats);
    let st = run.sim.stats();
    assert_eq!(
        st.reads_total.storage, 0,
        "the re-sync used the watch cache: {st:#?}"
    );
    run.task.abort();
}
