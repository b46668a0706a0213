//! The durable outbox worker: one task per channel runs a [`ChannelQueue`] (budget, retries,
//! pauses, digests), sends what it says through the [`Dispatcher`] one attempt at a time, and
//! persists every attempt before deciding on the next. Notifications are already in the store
//! (the pipeline puts them there before queueing them); the worker flushes the store before
//! each send and after each settled attempt, so a kill -9 neither loses a pending notification
//! nor forgets one that was delivered. Pending notifications are restored at start-up with
//! their attempt counts and retry times.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Severity, SystemClock, Timestamp};
use herald_notifiers::digest;
use herald_notifiers::{Budget, ChannelQueue, Channels, Dispatcher, Next, Pending};
use herald_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{DeliveryLabels, Metrics};
use crate::service::Stats;

/// Where the pipeline and the query API hand notifications to the channel workers.
#[derive(Debug, Clone, Default)]
pub struct OutboxHandle {
    queues: Arc<BTreeMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl OutboxHandle {
    /// Queues `p` on its channel's worker; `false` when the channel has no worker.
    pub fn enqueue(&self, p: Pending) -> bool {
        match self.queues.get(&p.notification.channel) {
            Some(q) => q.send(p).is_ok(),
            None => {
                tracing::warn!(channel = %p.notification.channel, notification = %p.notification.id, "no worker for this channel; the notification stays pending");
                false
            }
        }
    }

    /// Queues a new notification (urgent when critical).
    pub fn enqueue_new(&self, n: Notification) -> bool {
        let urgent = is_urgent(&n);
        self.enqueue(Pending::new(n, urgent))
    }
}

/// Whether a notification goes before everything else and is never folded into a digest.
pub fn is_urgent(n: &Notification) -> bool {
    n.severity >= Severity::Critical && !digest::is_digest(&n.id)
}

/// Everything a channel worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    /// The store.
    pub store: Store,
    /// Built channels.
    pub channels: Arc<Channels>,
    /// Attempts and retry decisions.
    pub dispatcher: Arc<Dispatcher>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// Starts one worker per channel of `ctx.channels` and queues every pending notification of
/// the store (oldest first) on them. Returns the handle and the worker tasks, which end when
/// `shutdown` is cancelled (after the attempt in progress).
pub fn start(
    ctx: WorkerContext,
    shutdown: CancellationToken,
) -> Result<(OutboxHandle, Vec<JoinHandle<()>>), StoreError> {
    let mut queues = BTreeMap::new();
    let mut tasks = Vec::new();
    for name in ctx.channels.names() {
        let (tx, rx) = mpsc::unbounded_channel();
        queues.insert(name.to_string(), tx);
        let quotas = ctx
            .channels
            .get(name)
            .map(|c| c.rate_limits())
            .unwrap_or_default();
        let template_kind = ctx.channels.template_kind(name).unwrap_or("text");
        let queue = ChannelQueue::new(Budget::new(&quotas, Arc::new(SystemClock)));
        tasks.push(tokio::spawn(worker(
            name.to_string(),
            template_kind,
            rx,
            queue,
            ctx.clone(),
            shutdown.clone(),
        )));
    }
    let handle = OutboxHandle {
        queues: Arc::new(queues),
    };
    let policy = ctx.dispatcher.policy().clone();
    let now = Timestamp::now();
    let mut restored = 0usize;
    for n in ctx.store.pending_notifications()? {
        let since = ctx.store.pending_since(&n.id)?.unwrap_or(n.created_at);
        let attempts: Vec<_> = ctx
            .store
            .deliveries(&n.id)?
            .into_iter()
            .filter(|a| a.at >= since)
            .collect();
        let count = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        let due = match attempts.last().map(|a| (&a.outcome, a.at)) {
            Some((
                DeliveryOutcome::Failed {
                    retry_after_secs, ..
                },
                at,
            )) => {
                let wait = policy.delay(count, *retry_after_secs);
                jiff::SignedDuration::try_from(wait)
                    .ok()
                    .and_then(|w| at.checked_add(w).ok())
                    .unwrap_or(now)
            }
            _ => now,
        };
        let urgent = is_urgent(&n);
        let p = Pending {
            notification: n,
            attempts: count,
            since,
            due,
            urgent,
            held: false,
        };
        if handle.enqueue(p) {
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(
            pending = restored,
            "pending notifications restored into the outbox"
        );
    }
    Ok((handle, tasks))
}

async fn worker(
    name: String,
    template_kind: &'static str,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    mut queue: ChannelQueue,
    ctx: WorkerContext,
    shutdown: CancellationToken,
) {
    loop {
        while let Ok(p) = rx.try_recv() {
            if !queue.contains(&p.notification.id) {
                queue.push(p);
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        match queue.next(Timestamp::now()) {
            Next::Send(p) => send(&ctx, &mut queue, p).await,
            Next::Digest { items, reason } => {
                let now = Timestamp::now();
                let folded: Vec<Notification> = items.into_iter().map(|p| p.notification).collect();
                let Some(d) = digest::build(&name, &folded, now, template_kind, reason) else {
                    continue;
                };
                let ids: Vec<String> = folded.iter().map(|n| n.id.clone()).collect();
                match ctx.store.put_digest(&d, &ids, now) {
                    Ok(_) => {
                        tracing::info!(channel = %name, digest = %d.id, folded = ids.len(), ?reason, "notifications folded into a digest");
                        send(&ctx, &mut queue, Pending::new(d, false)).await;
                    }
                    Err(e) => {
                        // Nothing was settled: they stay pending and are queued again.
                        tracing::error!(channel = %name, error = %e, "cannot persist a digest; retrying in 1s");
                        for n in folded {
                            let mut p = Pending::new(n, false);
                            p.due = later(now, Duration::from_secs(1));
                            queue.push(p);
                        }
                    }
                }
            }
            Next::Wait(wait) => {
                let sleep = async {
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    p = rx.recv() => match p {
                        Some(p) => {
                            if !queue.contains(&p.notification.id) {
                                queue.push(p);
                            }
                        }
                        None => break,
                    },
                    _ = sleep => {}
                }
            }
        }
    }
    tracing::debug!(channel = %name, left = queue.len(), "outbox worker stopped");
}

/// One attempt for `p`, persisted; a retryable failure goes back into the queue.
async fn send(ctx: &WorkerContext, queue: &mut ChannelQueue, mut p: Pending) {
    // The notification must be on disk before anyone can see it.
    if let Err(e) = ctx.store.flush().await {
        tracing::error!(error = %e, "cannot flush the store before a send");
    }
    let n = &p.notification;
    let step = ctx
        .dispatcher
        .attempt(&ctx.channels, n, p.attempts.saturating_add(1), p.since)
        .await;
    let a = &step.attempt;
    let outcome = match &a.outcome {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Failed { .. } => "failed",
        DeliveryOutcome::Dead { .. } => "dead",
    };
    ctx.metrics
        .deliveries
        .get_or_create(&DeliveryLabels {
            channel: a.channel.clone(),
            outcome: outcome.to_string(),
        })
        .inc();
    if a.outcome.is_delivered() {
        ctx.stats.delivered.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(e) = ctx.store.record_delivery(a) {
        tracing::error!(error = %e, notification = %n.id, "cannot persist a delivery attempt");
    }
    if step.retry_in.is_none() {
        if let Err(e) = ctx.store.flush().await {
            tracing::error!(error = %e, "cannot flush the store after a delivery");
        }
    }
    if let Some(wait) = step.retry_in {
        let now = Timestamp::now();
        p.attempts = p.attempts.saturating_add(1);
        p.due = later(now, wait);
        if step.receiver_asked {
            queue.pause_until(p.due);
        }
        queue.push(p);
    }
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now)
}
