//! `herald bench watch`: populates the simulator with a scale cluster, then runs, each as its
//! own child process so its memory is its own: (1) `herald run` from an empty data directory
//! until `/readyz` reports every resource synced, (2) `herald run` again on the same data
//! directory (a restart with a stored checkpoint), (3) the baseline, kube-runtime reflectors
//! holding full objects (`herald bench reflector`). For each it reports the seconds until
//! synced, the child's peak RSS (`VmHWM`) and the simulator's request counts: LIST and WATCH by
//! whether a real API server would serve them from the watch cache or from storage (etcd).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use herald_sim::{ReadCounts, RequestStats, ScaleSpec, SimConfig, Simulator};
use serde::Serialize;
use tokio::io::AsyncBufReadExt;

use super::proc::{self, Memory, mb};

/// Target: the watcher's peak RSS, at most this many bytes.
const TARGET_PEAK_RSS: u64 = 300 * 1000 * 1000;
/// Target: the watcher's peak RSS, at most this fraction of the reflector baseline's.
const TARGET_RSS_FRACTION: f64 = 0.2;

/// `herald bench watch`.
#[derive(Debug, Args)]
pub struct WatchBenchArgs {
    /// Nodes of the simulated cluster.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Pods of the simulated cluster (3-6 KB of JSON each).
    #[arg(long, default_value_t = 200_000)]
    pub pods: usize,
    /// Namespaces (default: one per 1000 pods, 2 to 200).
    #[arg(long)]
    pub namespaces: Option<usize>,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `watch.list` of herald's watcher: auto, streaming, cached or paginated.
    #[arg(long, default_value = "auto")]
    pub list: String,
    /// Skip the kube-runtime reflector baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Longest wait for one phase to sync.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    pub timeout: Duration,
    /// Keep the work directory (config, data directory, child logs) here instead of a
    /// temporary one that is removed at the end.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print the figures as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Figures of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// What ran.
    pub name: String,
    /// Seconds from starting the process to every resource synced.
    pub sync_seconds: f64,
    /// Memory of the process once synced (peak over its whole life so far).
    pub memory: Memory,
    /// LIST requests served, by cache vs storage.
    pub list: ReadCounts,
    /// WATCH requests served, by cache vs storage.
    pub watch: ReadCounts,
    /// All requests the simulator served during the phase.
    pub requests: u64,
    /// Objects the process held or tracked once synced, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    cluster: ClusterFigures,
    herald: Phase,
    herald_restart: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    reflector: Option<Phase>,
    targets: Vec<Target>,
    machine: String,
}

#[derive(Debug, Serialize)]
struct ClusterFigures {
    nodes: usize,
    pods: usize,
    namespaces: usize,
    pod_json_bytes: u64,
    populate_seconds: f64,
    resource_version: u64,
}

#[derive(Debug, Serialize)]
struct Target {
    what: String,
    value: String,
    met: bool,
}

/// Runs the benchmark.
pub async fn run(args: WatchBenchArgs) -> anyhow::Result<ExitCode> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the herald executable")?;
    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("herald-bench-watch-{}", std::process::id())),
            true,
        ),
    };
    if work.join("data").exists() {
        bail!(
            "{} already has a data directory; use an empty work directory",
            work.display()
        );
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = bench(&args, &exe, &work).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

async fn bench(args: &WatchBenchArgs, exe: &Path, work: &Path) -> anyhow::Result<Report> {
    let say = |s: String| {
        if !args.json {
            eprintln!("bench watch: {s}");
        }
    };
    // History long enough that the restart phase resumes within the window.
    let sim = Simulator::new(SimConfig {
        history_limit: 100_000,
        ..SimConfig::default()
    });
    let spec = ScaleSpec {
        nodes: args.nodes,
        pods: args.pods,
        namespaces: args.namespaces.unwrap_or((args.pods / 1000).clamp(2, 200)),
        seed: args.seed,
        now: None,
    };
    say(format!(
        "populating {} nodes and {} pods",
        spec.nodes, spec.pods
    ));
    let populating = sim.clone();
    let pop = tokio::task::spawn_blocking(move || populating.populate(&spec))
        .await
        .context("population task failed")?
        .context("cannot populate the simulator")?;
    let server = sim.serve().await.context("cannot start the simulator")?;
    let kubeconfig = work.join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig)
        .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
    let config = work.join("herald.yaml");
    std::fs::write(&config, herald_config(&args.list)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let data = work.join("data");
    let cluster = ClusterFigures {
        nodes: pop.nodes,
        pods: pop.pods,
        namespaces: pop.namespaces,
        pod_json_bytes: pop.pod_bytes as u64,
        populate_seconds: pop.elapsed.as_secs_f64(),
        resource_version: pop.resource_version,
    };
    say(format!(
        "populated in {:.1}s ({} of pod JSON); herald: initial sync",
        cluster.populate_seconds,
        mb(cluster.pod_json_bytes)
    ));

    let herald = herald_phase(
        "herald: initial sync",
        exe,
        &config,
        &data,
        work,
        &sim,
        args,
    )
    .await?;
    say(format!(
        "herald synced in {:.1}s, peak RSS {}; herald: restart",
        herald.sync_seconds,
        mb(herald.memory.peak_rss_bytes)
    ));
    let restart = herald_phase(
        "herald: restart with checkpoint",
        exe,
        &config,
        &data,
        work,
        &sim,
        args,
    )
    .await?;
    let reflector = if args.no_baseline {
        None
    } else {
        say(format!(
            "restart synced in {:.1}s; baseline: kube-runtime reflector",
            restart.sync_seconds
        ));
        Some(reflector_phase(exe, &kubeconfig, work, &sim, args).await?)
    };
    server.shutdown().await;

    let mut targets = vec![
        Target {
            what: "herald peak RSS <= 300 MB".into(),
            value: mb(herald.memory.peak_rss_bytes),
            met: herald.memory.peak_rss_bytes <= TARGET_PEAK_RSS,
        },
        Target {
            what: "LIST requests served from storage (initial sync and restart) = 0".into(),
            value: (herald.list.storage + restart.list.storage).to_string(),
            met: herald.list.storage + restart.list.storage == 0,
        },
        Target {
            what: "LIST requests after a restart within the history window = 0".into(),
            value: (restart.list.cache + restart.list.storage).to_string(),
            met: restart.list.cache + restart.list.storage == 0,
        },
    ];
    if let Some(r) = &reflector {
        let ratio = herald.memory.peak_rss_bytes as f64 / r.memory.peak_rss_bytes.max(1) as f64;
        targets.insert(
            1,
            Target {
                what: "herald peak RSS <= 1/5 of the reflector's".into(),
                value: format!("{:.3} (1/{:.1})", ratio, 1.0 / ratio.max(1e-9)),
                met: ratio <= TARGET_RSS_FRACTION,
            },
        );
    }
    Ok(Report {
        cluster,
        herald,
        herald_restart: restart,
        reflector,
        targets,
        machine: machine(),
    })
}

/// The config of the measured service: watching only, no channels.
fn herald_config(list: &str) -> anyhow::Result<String> {
    Ok(format!(
        "# Written by `herald bench watch`.\ncluster: bench\nkubeconfig: kubeconfig\nlisten: 127.0.0.1:0\nwatch:\n  list: {}\nchannels: {{}}\nsubscriptions: []\n",
        serde_json::to_string(list)?
    ))
}

/// Runs `herald run` until ready, takes its figures, stops it with SIGTERM.
async fn herald_phase(
    name: &str,
    exe: &Path,
    config: &Path,
    data: &Path,
    work: &Path,
    sim: &Simulator,
    args: &WatchBenchArgs,
) -> anyhow::Result<Phase> {
    let log_path = work.join(format!("{}.log", name.replace([' ', ':'], "_")));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let service_file = data.join("service.json");
    let _ = std::fs::remove_file(&service_file);
    sim.reset_stats();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .arg("--data-dir")
        .arg(data)
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("HERALD_LOG", "warn,herald=info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start herald run")?;
    let pid = child.id().context("herald run has no pid")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut ready_url: Option<String> = None;
    loop {
        if started.elapsed() > args.timeout {
            proc::stop(&mut child, Duration::from_secs(10)).await?;
            bail!(
                "{name}: not synced after {:?}; see {}",
                args.timeout,
                log_path.display()
            );
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name}: herald run exited with {status}; see {}",
                log_path.display()
            );
        }
        if ready_url.is_none()
            && let Ok(text) = std::fs::read_to_string(&service_file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(api) = v.get("api").and_then(|a| a.as_str())
        {
            ready_url = Some(format!("{api}/readyz"));
        }
        if let Some(url) = &ready_url
            && let Ok(resp) = http.get(url).send().await
            && resp.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sync_seconds = started.elapsed().as_secs_f64();
    // Let the persistence of the last states and checkpoints finish before reading the peak.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = proc::memory(Some(pid))?;
    let stats = sim.stats();
    proc::stop(&mut child, Duration::from_secs(60)).await?;
    Ok(phase(name, sync_seconds, memory, &stats, None))
}

fn phase(
    name: &str,
    sync_seconds: f64,
    memory: Memory,
    stats: &RequestStats,
    objects: Option<u64>,
) -> Phase {
    let reads = |verb: &str| stats.reads_by_verb.get(verb).cloned().unwrap_or_default();
    Phase {
        name: name.to_string(),
        sync_seconds,
        memory,
        list: reads("list"),
        watch: reads("watch"),
        requests: stats.total,
        objects,
    }
}

/// What `herald bench reflector` prints once synced.
#[derive(Debug, serde::Deserialize)]
struct ReflectorReady {
    seconds: f64,
    objects: u64,
}

async fn reflector_phase(
    exe: &Path,
    kubeconfig: &Path,
    work: &Path,
    sim: &Simulator,
    args: &WatchBenchArgs,
) -> anyhow::Result<Phase> {
    let name = "kube-runtime reflector (baseline)";
    let log_path = work.join("reflector.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    sim.reset_stats();
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "reflector", "--kubeconfig"])
        .arg(kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start herald bench reflector")?;
    let pid = child.id().context("the reflector has no pid")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(args.timeout, lines.next_line())
        .await
        .map_err(|_| anyhow!("{name}: not synced after {:?}", args.timeout))?
        .context("cannot read the reflector's output")?
        .ok_or_else(|| anyhow!("{name}: exited before syncing; see {}", log_path.display()))?;
    let ready: ReflectorReady = serde_json::from_str(&line)
        .with_context(|| format!("{name}: unexpected output {line:?}"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory = proc::memory(Some(pid))?;
    let stats = sim.stats();
    proc::stop(&mut child, Duration::from_secs(10)).await?;
    Ok(phase(
        name,
        ready.seconds,
        memory,
        &stats,
        Some(ready.objects),
    ))
}

/// One line about the machine: CPUs and memory.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "? GiB".to_string(),
            |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
        );
    format!(
        "{cpus} CPUs, {mem} RAM, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn print_text(r: &Report) {
    println!(
        "cluster: {} nodes, {} pods in {} namespaces, {} of pod JSON (populated in {:.1}s)",
        r.cluster.nodes,
        r.cluster.pods,
        r.cluster.namespaces,
        mb(r.cluster.pod_json_bytes),
        r.cluster.populate_seconds
    );
    println!("machine: {}", r.machine);
    println!();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "phase",
        "sync s",
        "peak RSS",
        "LIST cache",
        "LIST storage",
        "WATCH cache",
        "WATCH storage",
        "requests",
    ]);
    let phases = [
        Some(&r.herald),
        Some(&r.herald_restart),
        r.reflector.as_ref(),
    ];
    for p in phases.into_iter().flatten() {
        table.add_row([
            p.name.clone(),
            format!("{:.1}", p.sync_seconds),
            mb(p.memory.peak_rss_bytes),
            p.list.cache.to_string(),
            p.list.storage.to_string(),
            p.watch.cache.to_string(),
            p.watch.storage.to_string(),
            p.requests.to_string(),
        ]);
    }
    println!("{table}");
    println!();
    for t in &r.targets {
        println!(
            "[{}] {}: {}",
            if t.met { "met" } else { "MISSED" },
            t.what,
            t.value
        );
    }
}
