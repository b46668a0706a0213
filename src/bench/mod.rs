//! `herald bench ...`: benchmark commands. Each runs the real code paths on generated load,
//! prints its figures (text, or JSON with `--json`) and the targets it is measured against.
//! The latest figures, with the machine they were measured on, are in docs/PERFORMANCE.md.

use std::process::ExitCode;

use clap::{Args, Subcommand};

mod classify;
mod deliver;
mod ingest;
mod proc;
mod reflector;
mod watch;

/// `herald bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Initial sync and restart of the watcher against a simulated cluster, next to a
    /// kube-runtime reflector holding full objects: seconds, peak RSS, LIST/WATCH requests by
    /// cache vs storage.
    Watch(watch::WatchBenchArgs),
    /// Records per second through decode -> transition detection -> persistence on one core,
    /// next to plain JSON decoding of the same watch stream.
    Ingest(ingest::IngestBenchArgs),
    /// End-to-end latency (simulator change -> webhook received) p50/p99 with grouping
    /// disabled, and messages per second through the durable outbox to a local receiver.
    Deliver(deliver::DeliverBenchArgs),
    /// Records per second through the classifier with 50 rules (built-ins + generated YAML
    /// rules) on one core, with a realistic record mix.
    Classify(classify::ClassifyBenchArgs),
    /// (internal) The baseline of `bench watch`: kube-runtime reflectors holding full objects.
    #[command(hide = true)]
    Reflector(reflector::ReflectorArgs),
}

/// Runs a benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Watch(a) => watch::run(a).await,
        BenchCommand::Ingest(a) => ingest::run(a),
        BenchCommand::Classify(a) => classify::run(a),
        BenchCommand::Deliver(a) => deliver::run(a).await,
        BenchCommand::Reflector(a) => reflector::run(a).await,
    }
}
