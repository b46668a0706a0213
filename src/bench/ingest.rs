//! `herald bench ingest`: records per second through the watcher's decode -> transition
//! detection -> persistence pipeline, on one CPU, next to plain JSON decoding of the same watch
//! stream.
//!
//! The stream is real simulator output: a scale cluster is populated, its objects are taken as
//! the initial list, then the churner makes `--changes` realistic changes (container restarts,
//! readiness flips, pods replaced by their controllers, Warning/Normal events with repeats
//! aggregated, node heartbeats) and the watch lines a watch from before the churn would receive
//! are collected, byte for byte as the HTTP watch sends them. The pipeline is
//! [`herald_watcher::Replay`] (the live watch loop's line parsing, decoding and transition
//! detection) feeding a fresh store as the service does: every record appended, changed compact
//! states and checkpoints written, the store flushed at the end. The baselines decode the same
//! lines with serde_json into `serde_json::Value` and into k8s-openapi's typed `WatchEvent<T>`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use herald_core::Timestamp;
use herald_sim::{ChurnSpec, Resource as SimResource, ScaleSpec, SimConfig, Simulator};
use herald_store::{Store, StoreOptions};
use herald_watcher::{Replay, Resource, WatchItem};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use serde::Serialize;

use super::proc::{self, mb};

/// Target: the pipeline's events per second, at least this fraction of plain decoding's.
const TARGET_FRACTION: f64 = 0.5;
/// Watch lines persisted together (the service's group commit takes what is queued, up to
/// this many items).
const GROUP_LINES: usize = 256;

/// `herald bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Nodes of the simulated cluster.
    #[arg(long, default_value_t = 500)]
    pub nodes: usize,
    /// Pods of the simulated cluster.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Changes the churner makes (the watch stream has about one line per change, two for a
    /// replaced pod).
    #[arg(long, default_value_t = 50_000)]
    pub changes: u64,
    /// Seed of the cluster and the churn.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rounds of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// sled page cache of the pipeline's store, in MiB (the service's default when absent).
    #[arg(long)]
    pub cache_mb: Option<u64>,
    /// Print the figures as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// The watch lines of one resource and its initial list.
pub(super) struct Stream {
    /// The resource.
    pub(super) res: Resource,
    /// Its objects (JSON) before the churn: the initial list.
    pub(super) seed: Vec<Vec<u8>>,
    /// The resourceVersion of that list.
    pub(super) seed_rv: String,
    /// The watch lines of the churn, as the HTTP watch sends them.
    pub(super) lines: Vec<Bytes>,
}

#[derive(Debug, Serialize)]
struct Rate {
    what: String,
    seconds: f64,
    events_per_sec: f64,
    mb_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    records_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Breakdown {
    decode_and_transitions: f64,
    append_records: f64,
    states_and_checkpoints: f64,
    final_flush: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    cluster_nodes: usize,
    cluster_pods: usize,
    changes: u64,
    watch_events: u64,
    watch_bytes: u64,
    events_by_resource: Vec<(String, u64)>,
    records: u64,
    states_written: u64,
    checkpoints_written: u64,
    /// Of the pipeline's median round: seconds in decode + transitions, appending records,
    /// writing states and checkpoints, and the final flush of the pending object index entries
    /// and sled (the rest is the harness's loop: splitting and dropping the items, and sled's
    /// flusher thread taking the pinned CPU).
    breakdown_seconds: Breakdown,
    store_bytes: u64,
    /// Object index entries written by the final write of what was pending (of the median
    /// round).
    index_entries_at_end: u64,
    /// sled's page cache limit of the pipeline's store.
    cache_capacity_bytes: u64,
    /// Of the pipeline's median round: how far the process's resident set grew above what it was
    /// before the store was opened, at its peak (`VmHWM` reset before the round).
    store_peak_rss_growth_bytes: Option<u64>,
    pinned_cpu: usize,
    rounds: u32,
    decode_value: Rate,
    decode_typed: Rate,
    transitions_only: Rate,
    pipeline: Rate,
    ratio_to_value: f64,
    ratio_to_typed: f64,
    target_met: bool,
    machine: String,
}

/// Runs the benchmark (synchronously, on the calling thread, pinned to one CPU).
pub fn run(args: IngestBenchArgs) -> anyhow::Result<ExitCode> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let say = |s: String| {
        if !args.json {
            eprintln!("bench ingest: {s}");
        }
    };
    say(format!(
        "populating {} nodes, {} pods; {} changes",
        args.nodes, args.pods, args.changes
    ));
    let streams = record_streams(args.nodes, args.pods, args.changes, args.seed)?;
    let machine = super::watch::machine();
    let cpu = proc::pin_to_one_cpu()?;
    let events: u64 = streams.iter().map(|s| s.lines.len() as u64).sum();
    let bytes: u64 = streams
        .iter()
        .flat_map(|s| s.lines.iter())
        .map(|l| l.len() as u64)
        .sum();
    say(format!(
        "{events} watch events ({}); pinned to CPU {cpu}; {} rounds",
        mb(bytes),
        args.rounds
    ));

    let mut value = Vec::new();
    let mut typed = Vec::new();
    let mut pipe = Vec::new();
    let mut trans = Vec::new();
    let mut rounds = Vec::new();
    let options = StoreOptions {
        cache_capacity_bytes: args
            .cache_mb
            .map_or(StoreOptions::default().cache_capacity_bytes, |m| {
                m * 1024 * 1024
            }),
        ..StoreOptions::default()
    };
    for _ in 0..args.rounds {
        value.push(time(|| decode_value(&streams))?);
        typed.push(time(|| decode_typed(&streams))?);
        let now = Timestamp::now();
        let mut replays = seeded(&streams, now)?;
        trans.push(time(|| Ok(transitions_only(&streams, &mut replays, now)))?);
        let (secs, counts) = pipeline(&streams, &options)?;
        pipe.push(secs);
        rounds.push((secs, counts));
    }
    // The breakdown is the median round's, so it adds up to the reported pipeline time (the
    // last round's breakdown next to the median time showed a "gap" that was only noise).
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let counts = rounds
        .into_iter()
        .nth(pipe.len() / 2)
        .map(|(_, c)| c)
        .context("no round ran")?;
    let rate = |what: &str, secs: f64, records: Option<u64>| Rate {
        what: what.to_string(),
        seconds: secs,
        events_per_sec: events as f64 / secs,
        mb_per_sec: bytes as f64 / 1e6 / secs,
        records_per_sec: records.map(|r| r as f64 / secs),
    };
    let decode_value = rate("serde_json::Value", median(value), None);
    let decode_typed = rate("k8s-openapi WatchEvent<T>", median(typed), None);
    let transitions = rate("decode -> transitions (no store)", median(trans), None);
    let pipeline = rate(
        "decode -> transitions -> store",
        median(pipe),
        Some(counts.records),
    );
    let ratio_to_value = pipeline.events_per_sec / decode_value.events_per_sec;
    let ratio_to_typed = pipeline.events_per_sec / decode_typed.events_per_sec;
    let report = Report {
        cluster_nodes: args.nodes,
        cluster_pods: args.pods,
        changes: args.changes,
        watch_events: events,
        watch_bytes: bytes,
        events_by_resource: streams
            .iter()
            .map(|s| (s.res.to_string(), s.lines.len() as u64))
            .collect(),
        records: counts.records,
        states_written: counts.states,
        checkpoints_written: counts.checkpoints,
        breakdown_seconds: Breakdown {
            decode_and_transitions: counts.decode_secs,
            append_records: counts.record_secs,
            states_and_checkpoints: counts.position_secs,
            final_flush: counts.flush_secs,
        },
        store_bytes: counts.store_bytes,
        index_entries_at_end: counts.index_entries,
        cache_capacity_bytes: options.cache_capacity_bytes,
        store_peak_rss_growth_bytes: counts.rss_growth,
        pinned_cpu: cpu,
        rounds: args.rounds,
        target_met: ratio_to_value >= TARGET_FRACTION && ratio_to_typed >= TARGET_FRACTION,
        decode_value,
        decode_typed,
        transitions_only: transitions,
        pipeline,
        ratio_to_value,
        ratio_to_typed,
        machine,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Populates a simulator with `nodes` and `pods`, takes the initial lists, makes `changes`
/// churn changes and collects the watch lines of Pods, Events and Nodes (also the input of
/// `herald bench classify`).
pub(super) fn record_streams(
    nodes: usize,
    pods: usize,
    changes: u64,
    seed: u64,
) -> anyhow::Result<Vec<Stream>> {
    let sim = Simulator::new(SimConfig {
        history_limit: usize::try_from(changes.saturating_mul(3).max(1000)).unwrap_or(usize::MAX),
        ..SimConfig::default()
    });
    sim.populate(&ScaleSpec {
        nodes,
        pods,
        namespaces: (pods / 1000).clamp(2, 200),
        seed,
        now: None,
    })
    .context("cannot populate the simulator")?;
    let rv = sim.resource_version();
    let resources = [
        (Resource::Pods, SimResource::Pods),
        (Resource::Events, SimResource::Events),
        (Resource::Nodes, SimResource::Nodes),
    ];
    let mut seeds = Vec::new();
    for (_, sr) in resources {
        let items = sim
            .list(sr, None)
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()?;
        seeds.push(items);
    }
    let mut churner = sim.churner(&ChurnSpec {
        seed,
        ..ChurnSpec::default()
    });
    for _ in 0..changes {
        churner.step().context("churn step failed")?;
    }
    let mut out = Vec::new();
    for ((res, sr), seed) in resources.into_iter().zip(seeds) {
        out.push(Stream {
            res,
            seed,
            seed_rv: rv.to_string(),
            lines: sim
                .watch_lines(sr, rv)
                .with_context(|| format!("cannot read the {res} watch history"))?,
        });
    }
    Ok(out)
}

fn time(f: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let n = f()?;
    std::hint::black_box(n);
    Ok(started.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn decode_value(streams: &[Stream]) -> anyhow::Result<u64> {
    let mut n = 0u64;
    for s in streams {
        for l in &s.lines {
            let v: serde_json::Value = serde_json::from_slice(l)?;
            n += u64::from(v.is_object());
        }
    }
    Ok(n)
}

fn decode_typed(streams: &[Stream]) -> anyhow::Result<u64> {
    fn each<T: serde::de::DeserializeOwned>(lines: &[Bytes]) -> anyhow::Result<u64> {
        let mut n = 0u64;
        for l in lines {
            let ev: WatchEvent<T> = serde_json::from_slice(l)?;
            n += u64::from(!matches!(ev, WatchEvent::ErrorStatus(_)));
        }
        Ok(n)
    }
    let mut n = 0u64;
    for s in streams {
        n += match s.res {
            Resource::Pods => each::<Pod>(&s.lines)?,
            Resource::Events => each::<Event>(&s.lines)?,
            Resource::Nodes => each::<Node>(&s.lines)?,
        };
    }
    Ok(n)
}

#[derive(Debug, Default)]
struct Counts {
    records: u64,
    states: u64,
    checkpoints: u64,
    store_bytes: u64,
    /// Object index entries written at the end.
    index_entries: u64,
    /// Seconds in decode + transition detection.
    decode_secs: f64,
    /// Seconds appending records.
    record_secs: f64,
    /// Seconds writing states and checkpoints.
    position_secs: f64,
    /// Seconds in the final flush (the pending object index entries, then sled).
    flush_secs: f64,
    /// Peak resident set during the pass minus the resident set before it (`None` where the
    /// peak cannot be reset).
    rss_growth: Option<u64>,
}

/// One timed pass of the pipeline over every stream, into a fresh store.
fn pipeline(streams: &[Stream], options: &StoreOptions) -> anyhow::Result<(f64, Counts)> {
    let dir = std::env::temp_dir().join(format!(
        "herald-bench-ingest-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let result = pipeline_in(streams, &dir, options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One timed pass of decode + transition detection only (what the pipeline does before it
/// persists anything).
fn transitions_only(streams: &[Stream], replays: &mut [Replay], now: Timestamp) -> u64 {
    let mut items = 0u64;
    for (s, r) in streams.iter().zip(replays.iter_mut()) {
        for line in &s.lines {
            items += r.apply_line(line, now).len() as u64;
        }
    }
    items
}

fn seeded(streams: &[Stream], now: Timestamp) -> anyhow::Result<Vec<Replay>> {
    let mut replays = Vec::new();
    for s in streams {
        let mut r = Replay::new(s.res, "bench", true, 100);
        for obj in &s.seed {
            r.seed(obj, now)?;
        }
        r.finish_seed(&s.seed_rv);
        replays.push(r);
    }
    Ok(replays)
}

fn pipeline_in(
    streams: &[Stream],
    dir: &std::path::Path,
    options: &StoreOptions,
) -> anyhow::Result<(f64, Counts)> {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux), so the peak below is
    // this pass's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = proc::memory(None)?.rss_bytes;
    let store = Store::open_with(dir, options).context("cannot open the bench store")?;
    let now = Timestamp::now();
    let mut replays = seeded(streams, now)?;
    let mut c = Counts::default();
    let started = Instant::now();
    for (s, r) in streams.iter().zip(replays.iter_mut()) {
        for group in s.lines.chunks(GROUP_LINES) {
            let t = Instant::now();
            let mut items = Vec::new();
            for line in group {
                items.extend(r.apply_line(line, now));
            }
            c.decode_secs += t.elapsed().as_secs_f64();
            persist_group(&store, items, &mut c)?;
        }
        persist_group(&store, r.flush(), &mut c)?;
    }
    // The object index entries still pending are written within the timed pass, as closing
    // the store would.
    let t = Instant::now();
    c.index_entries = store.write_object_index()? as u64;
    store.flush_sync()?;
    c.flush_secs = t.elapsed().as_secs_f64();
    let secs = started.elapsed().as_secs_f64();
    if reset {
        c.rss_growth = Some(proc::memory(None)?.peak_rss_bytes.saturating_sub(before));
    }
    drop(store);
    std::thread::sleep(Duration::from_millis(50));
    c.store_bytes = proc::dir_size(dir);
    Ok((secs, c))
}

/// Persists the items of a group of lines as the service does with what arrived together:
/// every record in one transaction, then the changed states, then the last checkpoint of each
/// resource.
fn persist_group(store: &Store, items: Vec<WatchItem>, c: &mut Counts) -> anyhow::Result<()> {
    let mut records = Vec::new();
    let mut states: Vec<(String, Vec<herald_core::ObjectState>)> = Vec::new();
    let mut checkpoints: Vec<herald_core::Checkpoint> = Vec::new();
    for item in items {
        match item {
            WatchItem::Record(r) => records.push(r),
            WatchItem::States {
                resource,
                states: s,
                ..
            } => match states.last_mut() {
                Some((res, all)) if *res == resource => all.extend(s),
                _ => states.push((resource, s)),
            },
            WatchItem::Checkpoint(cp) => {
                checkpoints.retain(|k| k.resource != cp.resource);
                checkpoints.push(cp);
            }
            WatchItem::Synced { .. } => {}
        }
    }
    let t = Instant::now();
    store.append_records(&mut records)?;
    c.record_secs += t.elapsed().as_secs_f64();
    c.records += records.len() as u64;
    let t = Instant::now();
    for (resource, s) in &states {
        c.states += s.len() as u64;
        store.put_watch_states(resource, s)?;
    }
    for cp in &checkpoints {
        store.put_checkpoint(cp)?;
        c.checkpoints += 1;
    }
    c.position_secs += t.elapsed().as_secs_f64();
    Ok(())
}

fn print_text(r: &Report) {
    println!(
        "stream: {} watch events ({}) from {} changes to {} nodes / {} pods; {}",
        r.watch_events,
        mb(r.watch_bytes),
        r.changes,
        r.cluster_nodes,
        r.cluster_pods,
        r.events_by_resource
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "machine: {}; pinned to CPU {}; median of {} rounds",
        r.machine, r.pinned_cpu, r.rounds
    );
    println!();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(["", "seconds", "events/s", "MB/s", "records/s"]);
    for rate in [
        &r.decode_value,
        &r.decode_typed,
        &r.transitions_only,
        &r.pipeline,
    ] {
        table.add_row([
            rate.what.clone(),
            format!("{:.3}", rate.seconds),
            format!("{:.0}", rate.events_per_sec),
            format!("{:.1}", rate.mb_per_sec),
            rate.records_per_sec
                .map_or_else(String::new, |x| format!("{x:.0}")),
        ]);
    }
    println!("{table}");
    println!();
    println!(
        "pipeline: {} records, {} states and {} checkpoints written, {} object index entries at the end, store {}",
        r.records,
        r.states_written,
        r.checkpoints_written,
        r.index_entries_at_end,
        mb(r.store_bytes)
    );
    println!(
        "store: sled cache limit {}, peak RSS growth during the pipeline {}",
        mb(r.cache_capacity_bytes),
        r.store_peak_rss_growth_bytes
            .map_or_else(|| "unknown".to_string(), mb)
    );
    println!(
        "pipeline time: {:.3}s decode + transitions, {:.3}s appending records, {:.3}s states + checkpoints, {:.3}s final index write + flush",
        r.breakdown_seconds.decode_and_transitions,
        r.breakdown_seconds.append_records,
        r.breakdown_seconds.states_and_checkpoints,
        r.breakdown_seconds.final_flush
    );
    println!(
        "[{}] pipeline >= 1/2 of plain decoding: {:.2} of serde_json::Value, {:.2} of typed WatchEvent",
        if r.target_met { "met" } else { "MISSED" },
        r.ratio_to_value,
        r.ratio_to_typed
    );
}
