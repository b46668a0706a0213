//! `herald notify test CHANNEL -c CONFIG`: renders a sample incident with the channel's
//! templates (overrides included) and sends it through the real channel, once, printing the
//! outcome. Only the named channel is built, so other channels' secrets need not be set. The
//! exit status is 0 when the receiver accepted the message, 1 otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use herald_core::{
    Incident, IncidentChange, IncidentId, IncidentState, Notification, ObjectRef, Severity,
    Timestamp, Transition,
};
use herald_notifiers::Channels;
use herald_templates::Renderer;

use crate::config::Config;

/// `herald notify`.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: NotifyCommand,
}

/// `herald notify` subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a sample message through one configured channel.
    Test(TestArgs),
}

/// `herald notify test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The channel's name (a key of `channels:`).
    pub channel: String,
    /// Configuration file.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs `herald notify ...`.
pub async fn run(args: NotifyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NotifyCommand::Test(t) => test(t).await,
    }
}

/// The sample incident: a node that went NotReady, opened now.
pub fn sample_change(cluster: &str, now: Timestamp) -> IncidentChange {
    let subject = ObjectRef::node("node-sample-1");
    let fingerprint = format!("HeraldNotifyTest/{}", subject.key());
    IncidentChange {
        transition: Transition::Opened,
        at: now,
        incident: Incident {
            id: IncidentId::new(&fingerprint, now),
            fingerprint,
            rule: "HeraldNotifyTest".into(),
            severity: Severity::Warning,
            state: IncidentState::Open,
            cluster: cluster.to_string(),
            namespace: None,
            node: Some("node-sample-1".into()),
            summary:
                "Test message from herald notify test: node node-sample-1 is NotReady (sample)"
                    .into(),
            subject,
            first_seen: now,
            last_seen: now,
            resolved_at: None,
            count: 1,
            objects: vec![],
            records: vec![],
            labels: Default::default(),
        },
    }
}

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(channel_cfg) = cfg.channels.get(&args.channel) else {
        let known: Vec<&str> = cfg.channels.keys().map(String::as_str).collect();
        anyhow::bail!(
            "no channel {:?} in {} (channels: {})",
            args.channel,
            args.config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let only = BTreeMap::from([(args.channel.clone(), channel_cfg.clone())]);
    let channels = Channels::build(&only).context("cannot build the channel")?;
    let channel = channels
        .get(&args.channel)
        .context("the channel was not built")?;
    let renderer = Renderer::with_overrides(&cfg.templates).context("invalid templates")?;
    let now = Timestamp::now();
    let change = sample_change(&cfg.general.cluster, now);
    let message = renderer
        .render_for(
            "notify-test",
            &args.channel,
            channel.template_kind(),
            &change,
        )
        .context("cannot render the sample message")?;
    let n = Notification {
        id: format!("notify-test/{}/{}", args.channel, now.as_millisecond()),
        incident_id: change.incident.id.clone(),
        transition: change.transition,
        severity: change.incident.severity,
        subscription: "notify-test".into(),
        channel: args.channel.clone(),
        created_at: now,
        change,
        message,
    };
    let outcome = channel.send(&n).await;
    let kind = channel.kind();
    match &outcome {
        herald_core::DeliveryOutcome::Delivered { status } => {
            let status = status.map(|s| format!(" ({s})")).unwrap_or_default();
            println!(
                "{}: delivered{status} via {kind}, id {}",
                args.channel, n.id
            );
            Ok(ExitCode::SUCCESS)
        }
        herald_core::DeliveryOutcome::Failed {
            error,
            retry_after_secs,
        } => {
            let wait = retry_after_secs
                .map(|s| format!(" (the receiver asks to wait {s}s)"))
                .unwrap_or_default();
            println!("{}: failed, retryable{wait}: {error}", args.channel);
            Ok(ExitCode::FAILURE)
        }
        herald_core::DeliveryOutcome::Dead { error } => {
            println!("{}: failed permanently: {error}", args.channel);
            Ok(ExitCode::FAILURE)
        }
    }
}
