//! `herald deliveries`: the outbox's pending notifications and dead letters, and `herald
//! deliveries retry ID`, which puts a dead letter back into the outbox. Like `herald history`,
//! it opens the store itself or, while `herald run` holds it, asks the running service over
//! its query API (which also hands the retried notification to its channel worker at once).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use herald_core::Timestamp;
use herald_store::{Store, StoreError};

use crate::cli::Output;
use crate::query::{NotificationView, Source, get_json, open_source};

/// `herald deliveries`.
#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<DeliveriesAction>,
    /// Only dead letters (failed for good).
    #[arg(long, conflicts_with = "pending")]
    pub dead: bool,
    /// Only pending notifications (not yet delivered, still retried).
    #[arg(long)]
    pub pending: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `herald deliveries` actions.
#[derive(Debug, Subcommand)]
pub enum DeliveriesAction {
    /// Put a dead letter back into the outbox: it is retried from its first attempt, and its
    /// maximum age counts from now.
    Retry {
        /// The notification's id (its idempotency key), as listed by `herald deliveries --dead`.
        id: String,
    },
}

/// Which notifications to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// Pending and dead.
    All,
    /// Pending only.
    Pending,
    /// Dead letters only.
    Dead,
}

/// The answer of a retry.
#[derive(Debug, Serialize, Deserialize)]
pub struct RetryAnswer {
    /// The notification's id.
    pub id: String,
    /// Whether it was a dead letter and is now pending again.
    pub requeued: bool,
    /// What happened, for people.
    pub message: String,
}

/// Pending notifications and/or dead letters, oldest first, with their attempts.
pub fn list_from_store(store: &Store, which: Which) -> Result<Vec<NotificationView>, StoreError> {
    let mut out = Vec::new();
    if which != Which::Dead {
        for n in store.pending_notifications()? {
            let attempts = store.deliveries(&n.id)?;
            out.push(NotificationView::from_store(store, n, attempts)?);
        }
    }
    if which != Which::Pending {
        for (n, attempts) in store.dead_notifications()? {
            out.push(NotificationView::from_store(store, n, attempts)?);
        }
    }
    out.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(out)
}

/// Moves the dead letter `id` back to pending in `store` (as of `now`).
pub fn retry_in_store(
    store: &Store,
    id: &str,
    now: Timestamp,
) -> Result<(RetryAnswer, Option<herald_core::Notification>), StoreError> {
    match store.retry_notification(id, now)? {
        Some(n) => Ok((
            RetryAnswer {
                id: id.to_string(),
                requeued: true,
                message: format!("{id}: queued for delivery again"),
            },
            Some(n),
        )),
        None => {
            let why = if store.notification(id)?.is_none() {
                "no such notification"
            } else if store.is_pending(id)? {
                "still pending (it is being retried)"
            } else {
                "not a dead letter (delivered, digested or silenced)"
            };
            Ok((
                RetryAnswer {
                    id: id.to_string(),
                    requeued: false,
                    message: format!("{id}: {why}"),
                },
                None,
            ))
        }
    }
}

/// `herald deliveries ...`.
pub async fn run(args: DeliveriesArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let source = open_source(data_dir).await?;
    if let Some(DeliveriesAction::Retry { id }) = args.action {
        let answer = match source {
            Source::Local(store) => {
                let (answer, _) = retry_in_store(&store, &id, Timestamp::now())?;
                store.flush().await.context("cannot flush the store")?;
                answer
            }
            Source::Remote { api, client } => {
                let url = format!("{api}/api/v1/deliveries/retry");
                let resp = client
                    .post(&url)
                    .json(&serde_json::json!({ "id": id }))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                let status = resp.status();
                if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    bail!("{url} answered {status}: {}", body.trim());
                }
                resp.json::<RetryAnswer>()
                    .await
                    .with_context(|| format!("bad answer from {url}"))?
            }
        };
        match args.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
            Output::Table => println!("{}", answer.message),
        }
        return Ok(if answer.requeued {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let which = if args.dead {
        Which::Dead
    } else if args.pending {
        Which::Pending
    } else {
        Which::All
    };
    let list = match source {
        Source::Local(store) => list_from_store(&store, which)?,
        Source::Remote { api, client } => {
            let w = serde_json::to_value(which)?;
            let w = w.as_str().unwrap_or("all");
            get_json(&client, &format!("{api}/api/v1/deliveries?state={w}")).await?
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        Output::Table => crate::output::print_deliveries(&list),
    }
    Ok(ExitCode::SUCCESS)
}
