//! `herald demo` (the built-in simulator, the `incident` scenario and the real pipeline, over
//! HTTP, in one process) and `herald sim` (the simulator alone, on a port).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio_util::sync::CancellationToken;

use herald_sim::{ChurnSpec, ScaleSpec, SimConfig, Simulator};
use herald_store::Store;

use crate::cli::{DemoArgs, SimArgs};
use crate::config::Config;
use crate::output;
use crate::query::incidents_from_store;
use crate::service::{self, ServiceOptions, Stats};

/// The demo's configuration (see examples/demo.yaml).
const DEMO_CONFIG: &str = include_str!("../examples/demo.yaml");

fn random_token() -> String {
    format!("herald-{}", uuid::Uuid::new_v4().simple())
}

/// Builds the demo config: the embedded YAML plus the simulator's kubeconfig and an optional
/// webhook channel.
fn demo_config(kubeconfig: &Path, webhook: Option<&str>) -> anyhow::Result<Config> {
    let mut text = DEMO_CONFIG.to_string();
    if let Some(url) = webhook {
        let url_json = serde_json::to_string(url)?;
        text = text.replace(
            "channels:\n  console:\n    type: console\n",
            &format!(
                "channels:\n  console:\n    type: console\n  webhook:\n    type: webhook\n    url: {{ value: {url_json} }}\n"
            ),
        );
        text = text.replace("channels: [console]", "channels: [console, webhook]");
    }
    let mut cfg =
        Config::parse(Path::new("examples/demo.yaml"), &text).map_err(|e| anyhow!("{e}"))?;
    cfg.general.kubeconfig = Some(kubeconfig.to_path_buf());
    Ok(cfg)
}

/// `herald demo`.
pub async fn run(args: DemoArgs, data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    let started = Instant::now();
    let sim = Simulator::new(SimConfig {
        token: random_token(),
        ..SimConfig::default()
    });
    let server = sim.serve().await.context("cannot start the simulator")?;
    let demo_dir = data_dir.join("demo");
    std::fs::create_dir_all(&demo_dir)
        .with_context(|| format!("cannot create {}", demo_dir.display()))?;
    let kubeconfig = demo_dir.join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig)
        .context("cannot write the simulator's kubeconfig")?;
    println!(
        "herald demo: simulator at {} (kubeconfig {})",
        server.url(),
        kubeconfig.display()
    );
    println!("herald demo: store at {}", data_dir.display());

    // Every run starts a new simulator: a cluster of its own, whose resourceVersions and uids
    // have nothing to do with the previous run's. Keep the history, forget where the last
    // run's watches were.
    Store::open(&data_dir)
        .and_then(|s| s.reset_watch_positions())
        .with_context(|| format!("cannot prepare the store at {}", data_dir.display()))?;
    let config = demo_config(&kubeconfig, args.webhook.as_deref())?;
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    service::spawn_signal_handler(shutdown.clone());
    let opts = ServiceOptions {
        config,
        data_dir: data_dir.clone(),
        kubeconfig: Some(kubeconfig),
    };
    let mut svc = tokio::spawn(service::run_service(opts, shutdown.clone(), stats.clone()));

    // Wait for the watcher's initial sync of events, pods and nodes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.synced.load(Ordering::Relaxed) < 3 {
        if svc.is_finished() || Instant::now() > deadline {
            shutdown.cancel();
            return match (&mut svc).await {
                Ok(Err(e)) => Err(e.context("the pipeline failed to start")),
                _ => Err(anyhow!(
                    "the watcher did not finish its initial sync within 30 s"
                )),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "herald demo: pipeline synced; running scenario `incident` at speed {}",
        args.speed
    );
    let scenario =
        herald_sim::builtin_scenario("incident").ok_or_else(|| anyhow!("no incident scenario"))?;
    let report = tokio::select! {
        r = sim.run_scenario(&scenario, args.speed) => r.context("scenario failed")?,
        _ = shutdown.cancelled() => bail!("interrupted"),
    };

    // Let timers run out (grace periods, quiet periods) so incidents resolve.
    let settle_until = Instant::now() + Duration::from_secs(20);
    loop {
        let open = stats.opened.load(Ordering::Relaxed)
            - stats
                .resolved
                .load(Ordering::Relaxed)
                .min(stats.opened.load(Ordering::Relaxed));
        let pending = stats.notifications.load(Ordering::Relaxed)
            - stats
                .delivered
                .load(Ordering::Relaxed)
                .min(stats.notifications.load(Ordering::Relaxed));
        if (open == 0 && pending == 0) || Instant::now() > settle_until || shutdown.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    if args.follow {
        println!("herald demo: scenario finished; following (Ctrl-C to stop)");
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    svc.await
        .map_err(|e| anyhow!("pipeline task failed: {e}"))??;
    server.shutdown().await;

    println!();
    println!(
        "herald demo: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  records stored: {}   incidents opened: {}   updated: {}   resolved: {}   notifications: {} ({} delivered)",
        stats.records.load(Ordering::Relaxed),
        stats.opened.load(Ordering::Relaxed),
        stats.updated.load(Ordering::Relaxed),
        stats.resolved.load(Ordering::Relaxed),
        stats.notifications.load(Ordering::Relaxed),
        stats.delivered.load(Ordering::Relaxed),
    );
    let store = Store::open(&data_dir).context("cannot reopen the store")?;
    let since = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(
            started.elapsed().as_secs() as i64 + 5,
        ))
        .ok();
    output::print_incidents(&incidents_from_store(&store, since, false)?);
    drop(store);
    println!("Try:");
    for hint in report.hints() {
        println!("  herald --data-dir {} {hint}", data_dir.display());
    }
    println!(
        "  herald --data-dir {} incidents --since 1h",
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `herald sim`.
pub async fn serve_sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let scale = args.nodes > 0 || args.pods > 0;
    if args.pods > 0 && args.nodes == 0 {
        bail!("--pods needs --nodes (pods are scheduled onto the populated nodes)");
    }
    if !(args.churn_per_sec.is_finite() && args.churn_per_sec >= 0.0) {
        bail!(
            "--churn-per-sec must be a non-negative number, got {}",
            args.churn_per_sec
        );
    }
    let token = args.token.unwrap_or_else(random_token);
    let sim = Simulator::new(SimConfig {
        bind: args.listen,
        token,
        history_limit: args.history_limit,
        ..SimConfig::default()
    });
    let server = sim
        .serve()
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("herald sim: listening on {}", server.url());
    let shutdown = CancellationToken::new();
    service::spawn_signal_handler(shutdown.clone());
    let name = args.scenario.as_deref().unwrap_or("incident");
    let scenario = herald_sim::builtin_scenario(name)
        .ok_or_else(|| anyhow!("unknown scenario {name:?} (built-in: incident)"))?;
    if !args.empty && (!scale || args.scenario.is_some()) {
        sim.seed(&scenario).context("cannot seed the simulator")?;
        println!("herald sim: seeded the starting cluster of scenario {name}");
    }
    if scale {
        let spec = ScaleSpec {
            nodes: args.nodes,
            pods: args.pods,
            namespaces: args.namespaces.unwrap_or((args.pods / 1000).clamp(2, 200)),
            seed: args.seed,
            now: None,
        };
        let populating = sim.clone();
        let report = tokio::task::spawn_blocking(move || populating.populate(&spec))
            .await
            .context("population task failed")?
            .context("cannot populate the simulator")?;
        println!(
            "herald sim: populated {} nodes and {} pods in {} namespaces ({} MB of pod JSON) in {:.2}s, resourceVersion {}",
            report.nodes,
            report.pods,
            report.namespaces,
            report.pod_bytes / 1_000_000,
            report.elapsed.as_secs_f64(),
            report.resource_version
        );
    }
    if let Some(path) = &args.kubeconfig_out {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("herald sim: kubeconfig written to {}", path.display());
    }
    let churn = (args.churn_per_sec > 0.0).then(|| {
        let spec = ChurnSpec {
            rate_per_sec: args.churn_per_sec,
            seed: args.seed,
            ..ChurnSpec::default()
        };
        let sim = sim.clone();
        let stop = shutdown.clone();
        println!(
            "herald sim: churning at {} changes per second",
            args.churn_per_sec
        );
        tokio::spawn(async move { sim.churn(&spec, stop.cancelled_owned()).await })
    });
    if args.scenario.is_some() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(args.scenario_delay.max(0.0))) => {}
            _ = shutdown.cancelled() => {}
        }
        if !shutdown.is_cancelled() {
            println!("herald sim: running scenario {name}");
            let report = tokio::select! {
                r = sim.run_steps(&scenario, args.speed) => r.context("scenario failed")?,
                _ = shutdown.cancelled() => bail!("interrupted"),
            };
            println!(
                "herald sim: scenario {name} finished: {}",
                serde_json::to_string(&report)?
            );
        }
    }
    shutdown.cancelled().await;
    if let Some(task) = churn {
        let report = task
            .await
            .context("churn task failed")?
            .context("churn failed")?;
        println!("herald sim: churn: {}", serde_json::to_string(&report)?);
    }
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
