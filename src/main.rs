//! `herald`: the kube-herald command line. Parses arguments, sets up logging and TLS, and hands
//! each subcommand to its module. This is the only crate that sees every other crate.

mod api;
mod backtest;
mod bench;
mod cli;
mod config;
mod deliveries;
mod delivery;
mod demo;
mod notify;
mod output;
mod query;
mod service;
mod silence;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    // One TLS provider everywhere: aws-lc-rs. Installed before any client is built.
    if rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("error: {}", format_error(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = cli.data_dir();
    match cli.command {
        Command::Run(args) => service::run_command(args, cli.data_dir.clone()).await,
        Command::Demo(args) => demo::run(args, data_dir).await,
        Command::Sim(args) => demo::serve_sim(args).await,
        Command::Validate(args) => cli::validate(&args),
        Command::History(args) => query::history(args, &data_dir).await,
        Command::Incidents(args) => query::incidents(args, &data_dir).await,
        Command::Deliveries(args) => deliveries::run(args, &data_dir).await,
        Command::Silence(args) => silence::run(args, &data_dir).await,
        Command::Backtest(args) => backtest::run(args, &data_dir),
        Command::Bench(args) => bench::run(args).await,
        Command::Notify(args) => notify::run(args).await,
    }
}

fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    // The service logs its progress at info; the other commands print their own output, so
    // their logs stay at warn unless asked for.
    let quiet = !matches!(cli.command, Command::Run(_));
    let default = match cli.verbose {
        // kube-rs logs each failed request at ERROR before returning it; herald reports those
        // errors itself, once, so that log line is left to `-v`.
        0 if quiet => "warn,kube_client::client::builder=off",
        0 => "warn,herald=info,kube_client::client::builder=off",
        1 => "info",
        _ => "debug,hyper=info,h2=info,tower=info,rustls=info",
    };
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Formats an error chain on one line: `outer: inner: root`.
fn format_error(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
