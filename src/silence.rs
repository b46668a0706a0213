//! `herald silence add|list|expire`: silences stored in the store and honoured by the running
//! service (which re-reads them every second). While `herald run` holds the store the commands
//! go through its query API, as `herald history` does.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use herald_core::{Silence, Timestamp};

use crate::cli::{Output, parse_duration};
use crate::query::{Source, get_json, open_source};

/// `herald silence`.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// The action.
    #[command(subcommand)]
    pub action: SilenceAction,
}

/// `herald silence` actions.
#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Silence matching notifications for a while: they are recorded as silenced, not sent.
    Add {
        /// A condition `KEY=VALUE` (VALUE may be a glob); repeat for more, all must hold. Keys:
        /// rule, severity, namespace, node, cluster, subject, kind, fingerprint,
        /// subscription, channel, or a label name (`app`, `label.app`).
        #[arg(long = "match", value_name = "KEY=VALUE", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. `2h`, `30m`.
        #[arg(long = "for", value_parser = parse_duration, value_name = "DURATION")]
        duration: Duration,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// List silences (active and future; `--all` adds expired ones).
    List {
        /// Include expired silences.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
    },
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

async fn post_json<T: serde::Serialize>(
    client: &reqwest::Client,
    url: &str,
    body: &T,
) -> anyhow::Result<reqwest::Response> {
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {}", text.trim());
    }
    Ok(resp)
}

/// `herald silence ...`.
pub async fn run(args: SilenceArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    match args.action {
        SilenceAction::Add {
            matchers,
            duration,
            comment,
            output,
        } => {
            let mut parsed = Vec::new();
            let mut problems = Vec::new();
            for m in &matchers {
                match herald_notifiers::silence::parse_matcher(m) {
                    Ok(m) => parsed.push(m),
                    Err(e) => problems.push(e),
                }
            }
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("error: --match {p}");
                }
                return Ok(ExitCode::FAILURE);
            }
            if duration.is_zero() {
                bail!("--for must be longer than 0s");
            }
            let now = Timestamp::now();
            let span = jiff::SignedDuration::try_from(duration).context("--for is too long")?;
            let ends_at = now.checked_add(span).context("--for is too long")?;
            let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
            let silence = Silence {
                id,
                matchers: parsed,
                starts_at: now,
                ends_at,
                comment,
                created_by: user(),
                created_at: now,
            };
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            match open_source(data_dir).await? {
                Source::Local(store) => {
                    store.put_silence(&silence)?;
                    store.flush().await?;
                }
                Source::Remote { api, client } => {
                    post_json(&client, &format!("{api}/api/v1/silences"), &silence).await?;
                }
            }
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&silence)?),
                Output::Table => println!(
                    "silence {} added until {}",
                    silence.id,
                    silence.ends_at.strftime("%Y-%m-%d %H:%M:%S UTC")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::List { all, output } => {
            let mut list: Vec<Silence> = match open_source(data_dir).await? {
                Source::Local(store) => store.silences()?,
                Source::Remote { api, client } => {
                    get_json(&client, &format!("{api}/api/v1/silences")).await?
                }
            };
            let now = Timestamp::now();
            if !all {
                list.retain(|s| s.ends_at > now);
            }
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
                Output::Table => crate::output::print_silences(&list, now),
            }
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::Expire { id } => {
            let expired: Option<Silence> = match open_source(data_dir).await? {
                Source::Local(store) => {
                    let s = store.expire_silence(&id, Timestamp::now())?;
                    store.flush().await?;
                    s
                }
                Source::Remote { api, client } => {
                    let url = format!("{api}/api/v1/silences/expire");
                    let resp = client
                        .post(&url)
                        .json(&serde_json::json!({ "id": id }))
                        .send()
                        .await
                        .with_context(|| format!("cannot reach {url}"))?;
                    if resp.status() == reqwest::StatusCode::NOT_FOUND {
                        None
                    } else if !resp.status().is_success() {
                        bail!("{url} answered {}", resp.status());
                    } else {
                        Some(resp.json().await.context("bad answer")?)
                    }
                }
            };
            match expired {
                Some(s) => {
                    println!("silence {} expired", s.id);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("error: no silence {id:?}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
