//! `herald bench classify`: records per second through the classifier with 50 rules (every
//! built-in rule plus generated YAML rules), on one CPU, with a realistic record mix.
//!
//! The records are the watcher's own output for real simulator traffic: a scale cluster is
//! populated and churned (container restarts, readiness flips, pods replaced by their
//! controllers, Normal/Warning Events with repeats, node heartbeats), and its watch lines go
//! through [`herald_watcher::Replay`] (the live decode and transition detection). Failure
//! signals the churn does not make (OOM kills, crash loops, evictions, node conditions) are
//! mixed in at `--failures` per thousand, so the rules also open, update and resolve incidents.
//! The records are interleaved across resources and spaced `--spacing-ms` apart in record
//! time; the classifier is ticked every second of record time, as the service ticks it. Only
//! the classifier is timed (`apply` + `tick`), not building the records.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use herald_classifier::{Classifier, ClassifierConfig};
use herald_core::{
    NodeChange, NodeTransition, ObjectRef, PodChange, PodTransition, Record, RecordBody, RecordId,
    Timestamp, Transition,
};
use herald_watcher::{Replay, WatchItem};
use serde::Serialize;

use super::proc;

/// Target: records per second through 50 rules on one core, with 1,000 or more incidents
/// open. The classifier must never be what limits the pipeline in a storm: the store
/// persists about 4,400 records/s (`herald bench ingest`), so 20,000 records/s is 4.5 times
/// that, and classifying at the pipeline's ceiling takes under a quarter of a core.
const TARGET_RECORDS_PER_SEC: f64 = 20_000.0;
/// The open incidents the target applies at (the timers' cost used to grow with them).
const TARGET_OPEN_INCIDENTS: u64 = 1_000;

/// `herald bench classify`.
#[derive(Debug, Args)]
pub struct ClassifyBenchArgs {
    /// Rules in total: every built-in rule plus generated YAML rules up to this number.
    #[arg(long, default_value_t = 50)]
    pub rules: usize,
    /// Nodes of the simulated cluster.
    #[arg(long, default_value_t = 200)]
    pub nodes: usize,
    /// Pods of the simulated cluster.
    #[arg(long, default_value_t = 5_000)]
    pub pods: usize,
    /// Changes the churner makes (about one watch line each).
    #[arg(long, default_value_t = 50_000)]
    pub changes: u64,
    /// Failure records mixed in, per thousand records.
    #[arg(long, default_value_t = 10)]
    pub failures: u64,
    /// Record time between consecutive records, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub spacing_ms: u64,
    /// Seed of the cluster, the churn and the failures.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rounds; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Print the figures as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    rules: usize,
    builtin_rules: usize,
    yaml_rules: usize,
    records: u64,
    record_mix: BTreeMap<String, u64>,
    record_seconds: f64,
    ticks: u64,
    rounds: u32,
    seconds: f64,
    records_per_sec: f64,
    micros_per_record: f64,
    opened: u64,
    updated: u64,
    resolved: u64,
    open_incidents_end: u64,
    open_incidents_peak: u64,
    pinned_cpu: usize,
    target_records_per_sec: f64,
    target_open_incidents: u64,
    target_met: bool,
    machine: String,
}

/// Runs the benchmark on the calling thread, pinned to one CPU.
pub fn run(args: ClassifyBenchArgs) -> anyhow::Result<ExitCode> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let say = |s: String| {
        if !args.json {
            eprintln!("bench classify: {s}");
        }
    };
    let (cfg, builtin, yaml) = rule_set(args.rules)?;
    say(format!(
        "{} rules ({builtin} built-in, {yaml} YAML); populating {} nodes, {} pods; {} changes",
        builtin + yaml,
        args.nodes,
        args.pods,
        args.changes
    ));
    let records = records(&args)?;
    let mix = mix(&records);
    let machine = super::watch::machine();
    let cpu = proc::pin_to_one_cpu()?;
    say(format!(
        "{} records; pinned to CPU {cpu}; {} rounds",
        records.len(),
        args.rounds
    ));
    let mut times = Vec::new();
    let mut last = Counts::default();
    for _ in 0..args.rounds {
        let (secs, counts) = classify(cfg.clone(), &records);
        times.push(secs);
        last = counts;
    }
    times.sort_by(f64::total_cmp);
    let seconds = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let n = records.len() as u64;
    let span = records.last().zip(records.first()).map_or(0.0, |(l, f)| {
        l.observed_at.duration_since(f.observed_at).as_secs_f64()
    });
    let rate = n as f64 / seconds;
    let report = Report {
        rules: builtin + yaml,
        builtin_rules: builtin,
        yaml_rules: yaml,
        records: n,
        record_mix: mix,
        record_seconds: span,
        ticks: last.ticks,
        rounds: args.rounds,
        seconds,
        records_per_sec: rate,
        micros_per_record: seconds * 1e6 / n.max(1) as f64,
        opened: last.opened,
        updated: last.updated,
        resolved: last.resolved,
        open_incidents_end: last.open_end,
        open_incidents_peak: last.open_peak,
        pinned_cpu: cpu,
        target_records_per_sec: TARGET_RECORDS_PER_SEC,
        target_open_incidents: TARGET_OPEN_INCIDENTS,
        target_met: rate >= TARGET_RECORDS_PER_SEC && last.open_peak >= TARGET_OPEN_INCIDENTS,
        machine,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every built-in rule (defaults) plus generated YAML rules up to `total`. Returns the
/// configuration and the counts of built-in and YAML rules.
fn rule_set(total: usize) -> anyhow::Result<(ClassifierConfig, usize, usize)> {
    const BUILT_IN: usize = 14;
    let yaml = total.saturating_sub(BUILT_IN);
    let mut text = String::from("rules:\n");
    for i in 0..yaml {
        text.push_str(&generated_rule(i));
    }
    let rules = herald_classifier::parse_rules(&text).map_err(|issues| {
        anyhow::anyhow!(
            "generated rules do not validate: {}",
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let cfg = ClassifierConfig {
        rules,
        ..ClassifierConfig::default()
    };
    Ok((cfg, BUILT_IN, yaml))
}

/// The `i`-th generated rule: the kinds of rules operators write (exact and regex reasons,
/// namespace and label globs, message regexes, thresholds in windows, several group keys),
/// some matching often, some rarely, some never.
fn generated_rule(i: usize) -> String {
    let ns = i % 10;
    match i % 6 {
        0 => format!(
            "  - name: WarnInNs{i}\n    match: {{ kind: event, type: Warning, namespaces: [\"ns-{ns}*\", \"team-{ns}-*\"] }}\n    threshold: {{ count: 20, window: 5m }}\n    group_by: [namespace]\n"
        ),
        1 => format!(
            "  - name: BackOrFail{i}\n    match: {{ reason_regex: \"^(Back[Oo]ff|Failed.*)$\", message_regex: \"(?i)(restarting|pull)\" }}\n    threshold: {{ count: 3, window: 10m }}\n    group_by: [owner]\n"
        ),
        2 => format!(
            "  - name: AppErrors{i}\n    match: {{ kind: pod, reason: [Error, OOMKilled, ContainerCannotRun], labels: {{ app: \"*{ns}*\" }} }}\n    threshold: {{ count: 2, window: 10m }}\n    group_by: [owner, container]\n    severity: critical\n"
        ),
        3 => format!(
            "  - name: NodeCond{i}\n    match: {{ kind: node, reason_regex: \"^(Ready=(False|Unknown)|.*Pressure=True)$\" }}\n    for: 1m\n    group_by: [node, reason]\n"
        ),
        4 => format!(
            "  - name: NoisyNormal{i}\n    match: {{ kind: event, type: Normal, reason: [Killing, Pulled, Created], min_count: 5 }}\n    threshold: {{ count: 50, window: 2m }}\n    group_by: [namespace, reason]\n    severity: info\n"
        ),
        _ => format!(
            "  - name: Never{i}\n    match: {{ reason: NoSuchReason{i}, namespaces: [\"nowhere-*\"] }}\n"
        ),
    }
}

/// The watcher's records for churned simulator traffic, with failures mixed in, interleaved
/// across resources and given record times `spacing_ms` apart.
fn records(args: &ClassifyBenchArgs) -> anyhow::Result<Vec<Record>> {
    let now = Timestamp::now();
    let mut streams: Vec<Vec<Record>> = Vec::new();
    for s in super::ingest::record_streams(args.nodes, args.pods, args.changes, args.seed)? {
        let mut replay = Replay::new(s.res, "bench", false, 100);
        for obj in &s.seed {
            replay.seed(obj, now)?;
        }
        replay.finish_seed(&s.seed_rv);
        let mut out = Vec::new();
        for line in &s.lines {
            for item in replay.apply_line(line, now) {
                if let WatchItem::Record(r) = item {
                    out.push(r);
                }
            }
        }
        streams.push(out);
    }
    // Interleave: the k-th of n records of a stream sits at k/n of the run.
    let mut keyed: Vec<(f64, usize, Record)> = Vec::new();
    for (s, stream) in streams.into_iter().enumerate() {
        let n = stream.len().max(1) as f64;
        for (k, r) in stream.into_iter().enumerate() {
            keyed.push((k as f64 / n, s, r));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut rng = XorShift(args.seed.max(1));
    let mut out = Vec::with_capacity(keyed.len() + keyed.len() / 50);
    let start: Timestamp = now;
    let step = jiff::SignedDuration::from_millis(i64::try_from(args.spacing_ms).unwrap_or(5));
    let mut t = start;
    let mut push = |mut r: Record, out: &mut Vec<Record>| {
        r.id = RecordId(out.len() as u64 + 1);
        r.observed_at = t;
        t = t.saturating_add(step).unwrap_or(t);
        out.push(r);
    };
    let mut pods: Vec<Record> = Vec::new();
    for (_, _, r) in keyed {
        if matches!(r.body, RecordBody::Pod(_)) && pods.len() < 4096 {
            pods.push(r.clone());
        }
        push(r, &mut out);
        if rng.next() % 1000 < args.failures
            && let Some(f) = failure(&mut rng, &pods)
        {
            push(f, &mut out);
        }
    }
    Ok(out)
}

/// A failure record about a pod seen in the stream (or its node).
fn failure(rng: &mut XorShift, pods: &[Record]) -> Option<Record> {
    let base = pods.get(usize::try_from(rng.next()).unwrap_or(0) % pods.len().max(1))?;
    let mut r = base.clone();
    let container = "app".to_string();
    let change = match rng.next() % 5 {
        0 => PodChange::ContainerTerminated {
            container,
            init: false,
            reason: Some("OOMKilled".into()),
            exit_code: 137,
            signal: None,
            message: None,
            restart_count: 1 + u32::try_from(rng.next() % 20).unwrap_or(0),
            finished_at: None,
        },
        1 => PodChange::ContainerWaiting {
            container,
            init: false,
            reason: "CrashLoopBackOff".into(),
            message: Some("back-off 40s restarting failed container".into()),
            restart_count: 1 + u32::try_from(rng.next() % 20).unwrap_or(0),
        },
        2 => PodChange::Evicted {
            message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91212Ki.".into(),
        },
        3 => PodChange::ContainerWaiting {
            container,
            init: false,
            reason: "ImagePullBackOff".into(),
            message: Some("Back-off pulling image \"registry.example.com/app:v2\"".into()),
            restart_count: 0,
        },
        _ => {
            let node = r.node.clone()?;
            r.object = ObjectRef::node(node);
            r.owner = None;
            r.body = RecordBody::Node(NodeTransition {
                change: NodeChange::ConditionChanged {
                    condition: if rng.next().is_multiple_of(2) { "Ready" } else { "MemoryPressure" }
                        .into(),
                    from: Some("True".into()),
                    to: "False".into(),
                    reason: Some("KubeletNotReady".into()),
                    message: Some("container runtime is down".into()),
                    since: None,
                },
            });
            return Some(r);
        }
    };
    r.body = RecordBody::Pod(PodTransition {
        phase: Some("Running".into()),
        change,
    });
    Some(r)
}

/// The kinds of records, for the report.
fn mix(records: &[Record]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in records {
        let key = match &r.body {
            RecordBody::Event(e) => format!("event {}", e.event_type),
            RecordBody::Pod(p) => format!(
                "pod {}",
                match p.change {
                    PodChange::Created => "created",
                    PodChange::ContainerTerminated { .. } => "container_terminated",
                    PodChange::ContainerWaiting { .. } => "container_waiting",
                    PodChange::PhaseChanged { .. } => "phase_changed",
                    PodChange::Evicted { .. } => "evicted",
                    PodChange::DeletionRequested => "deletion_requested",
                    PodChange::Deleted => "deleted",
                }
            ),
            RecordBody::Node(_) => "node".to_string(),
        };
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ticks: u64,
    opened: u64,
    updated: u64,
    resolved: u64,
    /// Open incidents after the last record.
    open_end: u64,
    /// The most open incidents at a tick.
    open_peak: u64,
}

/// Runs the records through a fresh classifier, ticking every second of record time; returns
/// the seconds spent and the transitions.
fn classify(cfg: ClassifierConfig, records: &[Record]) -> (f64, Counts) {
    let mut c = Counts::default();
    let mut classifier = Classifier::new(cfg);
    let second = jiff::SignedDuration::from_secs(1);
    let started = Instant::now();
    let mut next_tick = records.first().map(|r| r.observed_at);
    let count = |changes: Vec<herald_core::IncidentChange>, c: &mut Counts| {
        for ch in changes {
            match ch.transition {
                Transition::Opened => c.opened += 1,
                Transition::Updated => c.updated += 1,
                Transition::Resolved => c.resolved += 1,
            }
        }
    };
    for r in records {
        while let Some(t) = next_tick.filter(|t| *t <= r.observed_at) {
            count(classifier.tick(t), &mut c);
            c.ticks += 1;
            c.open_peak = c.open_peak.max(classifier.open_count() as u64);
            next_tick = t.saturating_add(second).ok();
        }
        count(classifier.apply(r, r.observed_at), &mut c);
    }
    let secs = started.elapsed().as_secs_f64();
    c.open_end = classifier.open_count() as u64;
    c.open_peak = c.open_peak.max(c.open_end);
    std::hint::black_box(&classifier);
    (secs, c)
}

/// A small deterministic generator (xorshift64).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn print_text(r: &Report) {
    println!(
        "classify: {} records ({:.0} s of record time, {} ticks) through {} rules ({} built-in, {} YAML)",
        r.records, r.record_seconds, r.ticks, r.rules, r.builtin_rules, r.yaml_rules
    );
    let mix: Vec<String> = r
        .record_mix
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("  record mix: {}", mix.join(", "));
    println!(
        "  {:.3} s (median of {}), {:.0} records/s, {:.2} µs/record on CPU {}",
        r.seconds, r.rounds, r.records_per_sec, r.micros_per_record, r.pinned_cpu
    );
    println!(
        "  transitions: {} opened, {} updated, {} resolved",
        r.opened, r.updated, r.resolved
    );
    println!(
        "  open incidents: {} at the end, {} at the peak",
        r.open_incidents_end, r.open_incidents_peak
    );
    println!(
        "[{}] >= {:.0} records/s through {} rules on one core with >= {} open incidents",
        if r.target_met { "ok" } else { "MISSED" },
        r.target_records_per_sec,
        r.rules,
        r.target_open_incidents
    );
    println!("  machine: {}", r.machine);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rules_validate_and_total_fifty() {
        let (cfg, builtin, yaml) = rule_set(50).expect("rules");
        assert_eq!(builtin + yaml, 50);
        assert_eq!(cfg.rules.len(), yaml);
    }
}
