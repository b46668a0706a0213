//! Command-line arguments (clap) for every subcommand, the data-directory default, and the
//! `validate` subcommand.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;

/// kube-herald: Kubernetes event notification and record service.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None)]
pub struct Cli {
    /// Store directory used by every command. Default: `$HERALD_DATA_DIR`, else
    /// `$XDG_DATA_HOME/kube-herald`, else `~/.local/share/kube-herald`.
    #[arg(long, global = true, env = "HERALD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug). `HERALD_LOG` takes a full tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The data directory: `--data-dir`, `$HERALD_DATA_DIR`, or the per-user default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// The per-user default data directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("kube-herald");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/kube-herald");
    }
    PathBuf::from("herald-data")
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: watch the cluster, classify, record, notify, serve the query API.
    Run(RunArgs),
    /// Start the built-in cluster simulator with the `incident` scenario and run the real
    /// pipeline against it, printing notifications as they happen.
    Demo(DemoArgs),
    /// Serve the cluster simulator (a fake Kubernetes API server) on a port.
    Sim(SimArgs),
    /// Check a configuration file without running anything.
    Validate(ValidateArgs),
    /// Show what happened to a pod or a node: records, incidents, notifications.
    History(HistoryArgs),
    /// List incidents.
    Incidents(IncidentsArgs),
    /// The outbox: pending notifications and dead letters (`--dead`); `retry ID` sends a dead
    /// letter again.
    Deliveries(crate::deliveries::DeliveriesArgs),
    /// Silence notifications: `add --match KEY=VALUE --for 2h`, `list`, `expire ID`.
    Silence(crate::silence::SilenceArgs),
    /// Replay the stored history through a rule set: what would have fired, when, and how
    /// many notifications (`--rules FILE --since 7d [-o json]`).
    Backtest(crate::backtest::BacktestArgs),
    /// Benchmarks: each prints its figures and targets (see docs/PERFORMANCE.md).
    Bench(crate::bench::BenchArgs),
    /// Channel tools: `test CHANNEL -c CONFIG` sends a sample message through the channel.
    Notify(crate::notify::NotifyArgs),
}

/// `herald run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE", env = "HERALD_CONFIG")]
    pub config: PathBuf,
    /// Kubeconfig file (overrides the config file; default `$KUBECONFIG`, `~/.kube/config`,
    /// then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// `herald demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep running after the scenario ends (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
    /// Scenario speed factor (2.0 runs twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Also post notifications to this generic JSON webhook URL.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
}

/// `herald sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// Bearer token clients must present (default: a random one, written to the kubeconfig).
    #[arg(long, env = "HERALD_SIM_TOKEN")]
    pub token: Option<String>,
    /// Write a kubeconfig for this simulator to FILE.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Run the timed steps of this built-in scenario once clients can connect (e.g.
    /// `incident`). Without it the simulator serves the scenario's starting cluster and waits.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Start with an empty cluster instead of the `incident` scenario's starting cluster
    /// (three nodes and their pods). Not allowed with `--scenario`.
    #[arg(long, conflicts_with = "scenario")]
    pub empty: bool,
    /// Seconds to wait before starting the scenario (time for watchers to connect).
    #[arg(long, default_value_t = 0.0)]
    pub scenario_delay: f64,
    /// Scenario speed factor.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Populate a scale cluster of N EKS-style worker nodes (with `--pods`). It replaces the
    /// `incident` starting cluster unless `--scenario` is given. The kubeconfig is written
    /// once the cluster is complete.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub nodes: usize,
    /// Pods of the scale cluster (DaemonSet, Deployment, StatefulSet and Job pods of about
    /// 3-6 KB each); needs `--nodes`.
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub pods: usize,
    /// Namespaces of the scale cluster (default: one per 1000 pods, 2 to 200).
    #[arg(long, value_name = "K")]
    pub namespaces: Option<usize>,
    /// Seed of the scale cluster and of the churn (same seed, same cluster).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Make R realistic changes per second: container restarts, readiness flips, pods
    /// replaced by their controllers, Normal/Warning events (repeats aggregated), rare node
    /// heartbeats. 0 disables churn.
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    pub churn_per_sec: f64,
    /// Changes kept per resource for watch resumption; older resourceVersions get 410.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub history_limit: usize,
}

/// `herald validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

/// Output format of query commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON, stable for scripts.
    Json,
}

/// `herald history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// What to look up.
    #[command(subcommand)]
    pub target: HistoryTarget,
}

/// The object whose history is shown.
#[derive(Debug, Subcommand)]
pub enum HistoryTarget {
    /// A pod, as NAMESPACE/NAME.
    Pod(HistoryQuery),
    /// A node, by name.
    Node(HistoryQuery),
}

/// Arguments shared by history lookups.
#[derive(Debug, Args)]
pub struct HistoryQuery {
    /// NAMESPACE/NAME for pods, NAME for nodes.
    pub key: String,
    /// Only records newer than this, e.g. `1h`, `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most this many records (newest kept).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `herald incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Only incidents active within this long, e.g. `1h`, `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only open incidents.
    #[arg(long)]
    pub open: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// Parses `90s`, `15m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 15m, 1h, 7d)"))
}

/// `herald validate`: prints every problem, exits non-zero if there is one.
pub fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    match Config::load(&args.config) {
        Ok(cfg) => {
            println!(
                "{}: ok ({} channels, {} subscriptions)",
                cfg.source.display(),
                cfg.channels.len(),
                cfg.subscriptions.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for issue in &errors.0 {
                eprintln!("error: {issue}");
            }
            eprintln!(
                "{}: {} problem(s) found",
                args.config.display(),
                errors.0.len()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
