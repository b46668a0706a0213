//! Events through both APIs against the simulator: an Event written the events.k8s.io way
//! (kube-scheduler's FailedScheduling, repeats counted in `series`) is recorded once per
//! occurrence whether herald watches core/v1 or events.k8s.io/v1, and the chosen API is the only
//! one asked.

use std::time::{Duration, Instant};

use herald_core::RecordBody;
use herald_sim::{EventSpec, EventStyle, ObjectRef, SimConfig, Simulator};
use herald_watcher::{EventsApi, WatchItem, Watcher, WatcherConfig};
use tokio::sync::mpsc;

async fn series_deltas(api: EventsApi) -> (Vec<(u32, u32)>, herald_sim::RequestStats) {
    let sim = Simulator::new(SimConfig {
        token: "events-token".into(),
        tls: false,
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let cluster = herald_watcher::client_from(Some(&kubeconfig), None)
        .await
        .unwrap();
    let cfg = WatcherConfig {
        cluster: "events".into(),
        events_api: api,
        ..WatcherConfig::default()
    }
    .with_resources(true, false, false);
    let (tx, mut rx) = mpsc::channel(1024);
    let task = tokio::spawn(Watcher::new(cluster.client, cfg).run(tx));
    loop {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
        {
            Some(WatchItem::Synced { .. }) => break,
            Some(_) => {}
            None => panic!("watcher stopped: {:?}", task.await),
        }
    }
    let spec = EventSpec {
        regarding: ObjectRef::pod("shop", "gpu-job-7f9c"),
        field_path: None,
        type_: "Warning".into(),
        reason: "FailedScheduling".into(),
        message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.".into(),
        component: "default-scheduler".into(),
        style: EventStyle::EventsApi {
            action: "Scheduling".into(),
            instance: "default-scheduler-node-a".into(),
        },
        annotations: None,
        uid_override: Some("7b1e0f3c-0000-4000-8000-000000000001".into()),
    };
    for _ in 0..3 {
        sim.record_event(&spec).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut deltas = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Ok(Some(WatchItem::Record(r))) =
            tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            && let RecordBody::Event(e) = &r.body
        {
            assert_eq!(e.reason, "FailedScheduling");
            assert_eq!(r.object.name, "gpu-job-7f9c");
            deltas.push((e.count, e.count_delta));
        }
    }
    task.abort();
    (deltas, sim.stats())
}

#[tokio::test]
async fn series_events_recorded_once_per_occurrence_through_either_api() {
    for (api, asked, not_asked) in [
        (EventsApi::CoreV1, "events", "events.events.k8s.io"),
        (EventsApi::EventsV1, "events.events.k8s.io", "events"),
    ] {
        let (deltas, stats) = series_deltas(api).await;
        // First sight (count 1), then series.count 2 and 3: one new occurrence each.
        assert_eq!(deltas, vec![(1, 1), (2, 1), (3, 1)], "{api:?}");
        assert!(stats.count("watch", asked) >= 1, "{api:?}: {stats:?}");
        assert_eq!(
            stats.by_resource.get(not_asked),
            None,
            "{api:?} must not touch {not_asked}: {stats:?}"
        );
    }
}
