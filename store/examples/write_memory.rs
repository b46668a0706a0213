//! Peak memory and time of the write path for a given sled cache size, on synthetic records
//! and compact states shaped like the ingest benchmark's (Events of churning pods, ~700-byte
//! records, ~400-byte states, groups of 256). A measurement, not a test: run it in release,
//! one process per setting (peak RSS is the process's):
//!
//! ```sh
//! HERALD_CACHE_MB=32 cargo run -p herald-store --release --example write_memory
//! ```

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::Instant;

use herald_core::{
    EventRecord, EventSource, ObjectRef, ObjectState, Record, RecordBody, RecordId, Timestamp,
};
use herald_store::{Store, StoreOptions, TimeQuery};

fn record(i: u64) -> Record {
    let ns = format!("namespace-{:03}", i % 20);
    let pod = format!(
        "deployment-{:04}-7f9c8b6d5-{:05x}",
        (i * 7) % 1000,
        (i * 31) % 100_000
    );
    let node = format!("node-{:04}", i % 500);
    Record {
        id: RecordId::UNASSIGNED,
        cluster: "bench".into(),
        observed_at: Timestamp::from_second(1_700_000_000 + (i / 100) as i64).unwrap(),
        object: ObjectRef {
            uid: Some(format!("{:08x}-1234-5678-9abc-{:012x}", i, i * 3)),
            ..ObjectRef::pod(ns.clone(), pod.clone())
        },
        node: Some(node.clone()),
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Event(EventRecord {
            uid: format!("{:08x}-aaaa-bbbb-cccc-{:012x}", i, i * 5),
            namespace: ns,
            name: format!("{pod}.{:016x}", i * 977),
            reason: "BackOff".into(),
            event_type: "Warning".into(),
            message: format!("Back-off restarting failed container app in pod {pod}"),
            count: 3,
            count_delta: 1,
            first_timestamp: Some(Timestamp::from_second(1_700_000_000).unwrap()),
            last_timestamp: Some(Timestamp::from_second(1_700_000_100).unwrap()),
            source: EventSource {
                component: Some("kubelet".into()),
                host: Some(node),
            },
            field_path: Some("spec.containers{app}".into()),
        }),
    }
}

/// `(VmHWM, VmRSS)` of this process in bytes.
fn memory() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kb * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let cache_mb: u64 = std::env::var("HERALD_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let n: u64 = std::env::var("HERALD_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120_000);
    let dir = tempfile::tempdir().unwrap();
    let (_, rss_before) = memory();
    let store = Store::open_with(
        dir.path(),
        &StoreOptions {
            cache_capacity_bytes: cache_mb * 1024 * 1024,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let state = vec![7u8; 400];
    let started = Instant::now();
    let mut next = 0u64;
    let mut group = 0u64;
    while next < n {
        let mut records: Vec<Record> = (next..(next + 256).min(n)).map(record).collect();
        next += records.len() as u64;
        store.append_records(&mut records).unwrap();
        let states: Vec<ObjectState> = (0..290u64)
            .map(|j| ObjectState {
                key: format!("uid-{:06}", (group * 7919 + j * 104_729) % 200_000),
                state: Some(state.clone()),
            })
            .collect();
        store.put_watch_states("pods", &states).unwrap();
        group += 1;
    }
    store.flush_sync().unwrap();
    let write_secs = started.elapsed().as_secs_f64();
    let (write_peak, _) = memory();
    // A history read over everything, as `herald backtest` does.
    let started = Instant::now();
    let all = store.records_between(&TimeQuery::all()).unwrap().len();
    let read_secs = started.elapsed().as_secs_f64();
    let (peak, _) = memory();
    eprintln!(
        "cache {cache_mb} MiB: {n} records + {} states written in {write_secs:.2} s \
         ({:.1} µs/record), peak RSS {:.1} MB above the start; read back {all} in \
         {read_secs:.2} s, peak RSS then {:.1} MB above the start",
        group * 290,
        write_secs * 1e6 / n as f64,
        write_peak.saturating_sub(rss_before) as f64 / 1e6,
        peak.saturating_sub(rss_before) as f64 / 1e6
    );
}
