//! `herald bench deliver`: the delivery path's figures.
//!
//! 1. **End-to-end latency** (grouping disabled): a scale cluster in the simulator, the real
//!    service in-process (watcher -> store -> classifier -> router -> renderer -> outbox ->
//!    webhook channel), and a local HTTP receiver. Each sample OOM-kills one pod's container in
//!    the simulator and measures the time from that change to the webhook request arriving at
//!    the receiver; p50/p99/max over `--samples` pods, one at a time.
//! 2. **Outbox throughput**: `--messages` notifications written to a fresh store, then the
//!    outbox workers (one per channel, `--channels` webhook channels, no rate limit) deliver
//!    them to the receiver, each attempt persisted and the store flushed before each send and
//!    after each delivery, as in production. Messages per second until the last is recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::Router as HttpRouter;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Args;
use herald_core::{
    Incident, IncidentChange, IncidentId, IncidentState, Message, Notification, ObjectRef,
    Severity, Timestamp, Transition,
};
use herald_notifiers::{Channels, Dispatcher, RetryPolicy, Router};
use herald_sim::{Resource as SimResource, ScaleSpec, SimConfig, Simulator};
use herald_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::Metrics;
use crate::config::Config;
use crate::delivery::{self, WorkerContext};
use crate::service::{self, ServiceOptions, Stats};

/// Target: p99 end-to-end latency on loopback.
const TARGET_P99_MS: f64 = 50.0;

/// `herald bench deliver`.
#[derive(Debug, Args)]
pub struct DeliverBenchArgs {
    /// Latency samples (one OOM kill of a distinct pod each).
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Nodes of the simulated cluster.
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Pods of the simulated cluster (at least `--samples`).
    #[arg(long, default_value_t = 1000)]
    pub pods: usize,
    /// Notifications pushed through the outbox for the throughput figure.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// Webhook channels sharing the throughput run (one outbox worker each).
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Print the figures as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    samples: usize,
    missed: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Throughput {
    messages: usize,
    channels: usize,
    seconds: f64,
    messages_per_sec: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    latency: Latency,
    throughput: Vec<Throughput>,
    target_p99_ms: f64,
    target_met: bool,
}

/// A local webhook receiver: every request's arrival instant and body go to a channel.
async fn receiver() -> anyhow::Result<(String, mpsc::UnboundedReceiver<(Instant, Value)>)> {
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, Value)>();
    async fn hook(
        State(tx): State<mpsc::UnboundedSender<(Instant, Value)>>,
        body: Bytes,
    ) -> StatusCode {
        let at = Instant::now();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let _ = tx.send((at, v));
        StatusCode::OK
    }
    let app = HttpRouter::new().route("/hook", post(hook)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/hook"), rx))
}

fn oom_kill(pod: &mut Value) {
    let now = Timestamp::now().to_string();
    let cs = &mut pod["status"]["containerStatuses"][0];
    let restarts = cs["restartCount"].as_u64().unwrap_or(0);
    let started = cs["state"]["running"]["startedAt"].clone();
    cs["restartCount"] = json!(restarts + 1);
    cs["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": started, "finishedAt": now}});
    cs["state"] = json!({"running": {"startedAt": now}});
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs the benchmark.
pub async fn run(args: DeliverBenchArgs) -> anyhow::Result<ExitCode> {
    if args.samples == 0 || args.pods < args.samples {
        bail!("--samples must be at least 1 and --pods at least --samples");
    }
    let work = std::env::temp_dir().join(format!("herald-bench-deliver-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = bench(&args, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

async fn bench(args: &DeliverBenchArgs, work: &Path) -> anyhow::Result<Report> {
    let say = |s: String| {
        if !args.json {
            eprintln!("bench deliver: {s}");
        }
    };
    say(format!(
        "latency: {} nodes / {} pods in the simulator, {} samples",
        args.nodes, args.pods, args.samples
    ));
    let latency = latency(args, &work.join("latency")).await?;
    let mut throughput = Vec::new();
    for channels in [1, args.channels.max(1)] {
        say(format!(
            "throughput: {} messages through the outbox on {channels} channel(s)",
            args.messages
        ));
        throughput.push(
            outbox_throughput(
                args.messages,
                channels,
                &work.join(format!("outbox-{channels}")),
            )
            .await?,
        );
        if args.channels <= 1 {
            break;
        }
    }
    Ok(Report {
        machine: super::watch::machine(),
        target_met: latency.missed == 0 && latency.p99_ms < TARGET_P99_MS,
        latency,
        throughput,
        target_p99_ms: TARGET_P99_MS,
    })
}

async fn latency(args: &DeliverBenchArgs, dir: &Path) -> anyhow::Result<Latency> {
    std::fs::create_dir_all(dir)?;
    let sim = Simulator::new(SimConfig {
        history_limit: 100_000,
        ..SimConfig::default()
    });
    let spec = ScaleSpec {
        nodes: args.nodes.max(1),
        pods: args.pods,
        namespaces: (args.pods / 1000).clamp(2, 200),
        seed: 1,
        now: None,
    };
    let populating = sim.clone();
    tokio::task::spawn_blocking(move || populating.populate(&spec))
        .await
        .context("population task failed")?
        .context("cannot populate the simulator")?;
    let server = sim.serve().await.context("cannot start the simulator")?;
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let (hook, mut rx) = receiver().await?;
    let text = format!(
        "cluster: bench\nlisten: 127.0.0.1:0\nwatch: {{ events: false }}\nchannels:\n  hook:\n    type: webhook\n    url: {{ value: \"{hook}\" }}\nsubscriptions:\n  - name: bench\n    channels: [hook]\n    match: {{ rules: [OOMKilled] }}\n"
    );
    let mut config = Config::parse(&dir.join("herald.yaml"), &text).map_err(|e| anyhow!("{e}"))?;
    config.general.kubeconfig = Some(kubeconfig.clone());
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let opts = ServiceOptions {
        config,
        data_dir: dir.join("data"),
        kubeconfig: Some(kubeconfig),
    };
    let svc = tokio::spawn(service::run_service(opts, shutdown.clone(), stats.clone()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.synced.load(Ordering::Relaxed) < 2 {
        if svc.is_finished() || Instant::now() > deadline {
            shutdown.cancel();
            bail!("the service did not finish its initial sync");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Pods with a running first container, one sample each.
    let pods: Vec<(String, String)> = sim
        .list(SimResource::Pods, None)
        .into_iter()
        .filter(|p| !p["status"]["containerStatuses"][0]["state"]["running"].is_null())
        .filter_map(|p| {
            Some((
                p["metadata"]["namespace"].as_str()?.to_string(),
                p["metadata"]["name"].as_str()?.to_string(),
            ))
        })
        .take(args.samples)
        .collect();
    let mut ms = Vec::with_capacity(pods.len());
    let mut missed = 0;
    for (ns, name) in &pods {
        // Drain anything late from an earlier sample.
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        sim.modify(SimResource::Pods, Some(ns), name, true, oom_kill)
            .map_err(|e| anyhow!("cannot modify {ns}/{name}: {e}"))?;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some((at, body)) = rx.recv().await {
                if body["change"]["incident"]["subject"]["name"] == name.as_str() {
                    return Some(at);
                }
            }
            None
        })
        .await;
        match got {
            Ok(Some(at)) => ms.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            _ => missed += 1,
        }
    }
    shutdown.cancel();
    let _ = svc.await;
    server.shutdown().await;
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(Latency {
        samples: ms.len(),
        missed,
        p50_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
    })
}

fn synthetic(i: usize, channel: &str, at: Timestamp) -> Notification {
    let name = format!("pod-{i}");
    let fingerprint = format!("OOMKilled/bench/{name}");
    let incident = Incident {
        id: IncidentId::new(&fingerprint, at),
        fingerprint,
        rule: "OOMKilled".into(),
        severity: Severity::Warning,
        state: IncidentState::Open,
        cluster: "bench".into(),
        subject: ObjectRef::pod("bench", &name),
        namespace: Some("bench".into()),
        node: Some("node-1".into()),
        summary: format!("Container app of bench/{name} was OOMKilled"),
        first_seen: at,
        last_seen: at,
        resolved_at: None,
        count: 1,
        objects: Vec::new(),
        records: Vec::new(),
        labels: BTreeMap::new(),
    };
    let change = IncidentChange {
        transition: Transition::Opened,
        at,
        incident,
    };
    Notification {
        id: Notification::key_for(&change, "bench", channel),
        incident_id: change.incident.id.clone(),
        transition: Transition::Opened,
        severity: Severity::Warning,
        subscription: "bench".into(),
        channel: channel.to_string(),
        created_at: at,
        message: Message {
            title: "[WARNING] OOMKilled".into(),
            body: change.incident.summary.clone(),
        },
        change,
    }
}

async fn outbox_throughput(
    messages: usize,
    channels: usize,
    dir: &Path,
) -> anyhow::Result<Throughput> {
    std::fs::create_dir_all(dir)?;
    let (hook, mut rx) = receiver().await?;
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let store = Store::open(dir).context("cannot open the bench store")?;
    let now = Timestamp::now();
    let names: Vec<String> = (0..channels).map(|c| format!("hook-{c}")).collect();
    for i in 0..messages {
        store.put_notification(&synthetic(i, &names[i % channels], now))?;
    }
    store.flush().await?;
    let mut yaml = String::from("channels:\n");
    for n in &names {
        yaml.push_str(&format!(
            "  {n}:\n    type: webhook\n    url: {{ value: \"{hook}\" }}\n"
        ));
    }
    #[derive(serde::Deserialize)]
    struct File {
        channels: BTreeMap<String, herald_notifiers::ChannelConfig>,
    }
    let file: File = serde_saphyr::from_str(&yaml).context("bench channel config")?;
    let built = Arc::new(Channels::build(&file.channels).context("bench channels")?);
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let (_handle, tasks) = delivery::start(
        WorkerContext {
            store: store.clone(),
            channels: built,
            dispatcher: Arc::new(Dispatcher::new(RetryPolicy::default())),
            metrics: Arc::new(Metrics::new(herald_watcher::WatcherStats::default())),
            stats: stats.clone(),
        },
        &Router::new(&[]).context("router")?,
        stop.clone(),
    )?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while stats.delivered.load(Ordering::Relaxed) < messages as u64 {
        if Instant::now() > deadline {
            stop.cancel();
            bail!("the outbox did not deliver {messages} messages within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let left = store.pending_notifications()?.len();
    if left != 0 {
        bail!("{left} notifications still pending after the run");
    }
    Ok(Throughput {
        messages,
        channels,
        seconds,
        messages_per_sec: messages as f64 / seconds,
    })
}

fn print_text(r: &Report) {
    println!("machine: {}", r.machine);
    let l = &r.latency;
    println!(
        "end-to-end latency (simulator change -> webhook received, grouping disabled), {} samples{}:",
        l.samples,
        if l.missed > 0 {
            format!(", {} missed", l.missed)
        } else {
            String::new()
        }
    );
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms   (target p99 < {:.0} ms: {})",
        l.p50_ms,
        l.p90_ms,
        l.p99_ms,
        l.max_ms,
        r.target_p99_ms,
        if r.target_met { "met" } else { "NOT met" }
    );
    println!(
        "outbox throughput (persisted attempts, flushed before each send and after each delivery):"
    );
    for t in &r.throughput {
        println!(
            "  {} messages on {} channel(s): {:.2} s, {:.0} messages/s",
            t.messages, t.channels, t.seconds, t.messages_per_sec
        );
    }
}
