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
use herald_notifiers::{Budget, ChannelQueue, Channels, Dispatcher, Next, Pending, Router};
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

    /// Queues a new notification with its subscription's policy (see [`pending_for`]).
    pub fn enqueue_new(&self, router: &Router, n: Notification) -> bool {
        self.enqueue(pending_for(router, n, Timestamp::now()))
    }
}

/// The queue entry of a new (or restored) notification `n` at `now`, from its subscription's
/// policy: grouped by `group_by` (due after `group_wait`), held until the end of quiet hours
/// unless its severity is urgent there, urgent (first, never folded) when critical and not
/// grouped.
pub fn pending_for(router: &Router, n: Notification, now: Timestamp) -> Pending {
    let policy = router.policy(&n.subscription);
    let mut urgent = is_urgent(&n);
    let mut group = None;
    let mut group_interval = Duration::ZERO;
    let mut due = n.created_at;
    if let Some(p) = policy
        && let Some(key) = p.timing.group_key(&n.subscription, &n.change)
    {
        group = Some(key);
        group_interval = p.timing.group_interval;
        due = later(n.created_at, p.timing.group_wait);
        urgent = false;
    }
    let mut held = false;
    if let Some(q) = policy.and_then(|p| p.quiet.as_ref()) {
        let through = q.is_urgent(n.severity);
        if let Some(end) = q.quiet_until(now).filter(|_| !through) {
            held = true;
            urgent = false;
            due = due.max(end);
        } else if through {
            urgent = urgent || group.is_none();
        }
    }
    let since = n.created_at;
    Pending {
        notification: n,
        attempts: 0,
        since,
        due,
        urgent,
        held,
        group,
        group_interval,
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
    router: &Router,
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
        let mut p = pending_for(router, n, now);
        p.attempts = count;
        p.since = since;
        if count > 0 {
            p.due = due;
        }
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
            Next::Send(p) => {
                if let Some(g) = &p.group {
                    queue.group_sent(g, Timestamp::now(), p.group_interval);
                }
                send(&ctx, &mut queue, p).await
            }
            Next::Digest { items, reason } => {
                let now = Timestamp::now();
                let group = items
                    .first()
                    .and_then(|p| p.group.clone().map(|g| (g, p.group_interval)));
                let folded: Vec<Notification> = items.into_iter().map(|p| p.notification).collect();
                let Some(d) = digest::build(&name, &folded, now, template_kind, reason) else {
                    continue;
                };
                let ids: Vec<String> = folded.iter().map(|n| n.id.clone()).collect();
                if let Some(p) = group.as_ref() {
                    queue.group_sent(&p.0, now, p.1);
                }
                match ctx.store.put_digest(&d, &ids, now) {
                    Ok(_) => {
                        ctx.metrics
                            .settled
                            .get_or_create(&DeliveryLabels {
                                channel: name.clone(),
                                outcome: "digested".to_string(),
                            })
                            .inc_by(ids.len() as u64);
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
    if step.retry_in.is_none()
        && let Err(e) = ctx.store.flush().await
    {
        tracing::error!(error = %e, "cannot flush the store after a delivery");
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

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{
        Incident, IncidentChange, IncidentId, IncidentState, Message, ObjectRef, Transition,
    };
    use herald_notifiers::SubscriptionConfig;

    fn n(sub: &str, severity: Severity, at: &str) -> Notification {
        let at: Timestamp = at.parse().unwrap();
        let incident = Incident {
            id: IncidentId::new("OOMKilled/shop/cart-1", at),
            fingerprint: "OOMKilled/shop/cart-1".into(),
            rule: "OOMKilled".into(),
            severity,
            state: IncidentState::Open,
            cluster: "prod".into(),
            subject: ObjectRef::pod("shop", "cart-1"),
            namespace: Some("shop".into()),
            node: None,
            summary: "cart-1 OOMKilled".into(),
            first_seen: at,
            last_seen: at,
            resolved_at: None,
            count: 1,
            objects: vec![],
            records: vec![],
            labels: Default::default(),
        };
        let change = IncidentChange {
            transition: Transition::Opened,
            at,
            incident,
        };
        Notification {
            id: Notification::key_for(&change, sub, "hook"),
            incident_id: change.incident.id.clone(),
            transition: Transition::Opened,
            severity,
            subscription: sub.into(),
            channel: "hook".into(),
            created_at: at,
            change,
            message: Message {
                title: "t".into(),
                body: "b".into(),
            },
        }
    }

    #[test]
    fn policies_decide_urgency_holding_and_grouping() {
        let subs: Vec<SubscriptionConfig> = serde_saphyr::from_str(
            r#"
- name: plain
  channels: [hook]
- name: nights
  channels: [hook]
  quiet_hours:
    timezone: UTC
    windows: [{ days: [all], start: "22:00", end: "07:00" }]
- name: grouped
  channels: [hook]
  group_by: [rule, namespace]
  group_wait: 30s
  group_interval: 5m
"#,
        )
        .unwrap();
        let r = Router::new(&subs).unwrap();
        let night = "2025-06-01T23:00:00Z";
        let day = "2025-06-01T12:00:00Z";
        let ts = |s: &str| s.parse::<Timestamp>().unwrap();

        let p = pending_for(&r, n("plain", Severity::Critical, night), ts(night));
        assert!(p.urgent && !p.held && p.group.is_none() && p.due == ts(night));
        let p = pending_for(&r, n("plain", Severity::Warning, night), ts(night));
        assert!(!p.urgent && !p.held);

        // Quiet hours: a warning waits for 07:00 and a digest, a critical goes at once.
        let p = pending_for(&r, n("nights", Severity::Warning, night), ts(night));
        assert!(p.held && !p.urgent);
        assert_eq!(p.due, ts("2025-06-02T07:00:00Z"));
        let p = pending_for(&r, n("nights", Severity::Critical, night), ts(night));
        assert!(!p.held && p.urgent && p.due == ts(night));
        let p = pending_for(&r, n("nights", Severity::Warning, day), ts(day));
        assert!(!p.held && p.due == ts(day));

        // Grouping: due after group_wait, grouped by rule and namespace.
        let p = pending_for(&r, n("grouped", Severity::Critical, day), ts(day));
        assert_eq!(
            p.group.as_deref(),
            Some("grouped|rule=OOMKilled,namespace=shop")
        );
        assert_eq!(p.due, ts("2025-06-01T12:00:30Z"));
        assert_eq!(p.group_interval, Duration::from_secs(300));
        assert!(!p.urgent);
    }
}

#[cfg(test)]
mod worker_tests {
    use super::*;
    use herald_core::{
        Incident, IncidentChange, IncidentId, IncidentState, Message, ObjectRef, Transition,
    };
    use herald_notifiers::{BoxFuture, Channel, ChannelKind, Quota, RetryPolicy};
    use std::sync::Mutex;

    /// A chat-like channel with a tight budget that records what it was asked to send.
    #[derive(Debug, Default)]
    struct Recording {
        sent: Mutex<Vec<(Instant, Notification)>>,
    }
    use std::time::Instant;

    impl Channel for Recording {
        fn name(&self) -> &str {
            "chat"
        }
        fn kind(&self) -> ChannelKind {
            ChannelKind::Slack
        }
        fn template_kind(&self) -> &'static str {
            "markdown"
        }
        fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
            self.sent.lock().unwrap().push((Instant::now(), n.clone()));
            Box::pin(async { DeliveryOutcome::Delivered { status: Some(200) } })
        }
        fn rate_limits(&self) -> Vec<Quota> {
            vec![Quota::new(4, Duration::from_secs(1))]
        }
    }

    fn evicted(i: usize, at: Timestamp) -> Notification {
        let fp = format!("PodEvicted/shop/pod-{i}");
        let change = IncidentChange {
            transition: Transition::Opened,
            at,
            incident: Incident {
                id: IncidentId::new(&fp, at),
                fingerprint: fp,
                rule: "PodEvicted".into(),
                severity: if i.is_multiple_of(50) {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                state: IncidentState::Open,
                cluster: "prod".into(),
                subject: ObjectRef::pod("shop", format!("pod-{i}")),
                namespace: Some("shop".into()),
                node: Some("node-a".into()),
                summary: format!("pod-{i} evicted"),
                first_seen: at,
                last_seen: at,
                resolved_at: None,
                count: 1,
                objects: vec![],
                records: vec![],
                labels: Default::default(),
            },
        };
        Notification {
            id: Notification::key_for(&change, "sre", "chat"),
            incident_id: change.incident.id.clone(),
            transition: Transition::Opened,
            severity: change.incident.severity,
            subscription: "sre".into(),
            channel: "chat".into(),
            created_at: at,
            change,
            message: Message {
                title: "evicted".into(),
                body: "b".into(),
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_over_budget_is_digested_and_every_notification_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let chat = Arc::new(Recording::default());
        let channels = Arc::new(Channels::from_channels([chat.clone() as Arc<dyn Channel>]));
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (outbox, tasks) = start(
            WorkerContext {
                store: store.clone(),
                channels,
                dispatcher: Arc::new(Dispatcher::new(RetryPolicy::default())),
                metrics: Arc::new(Metrics::new(herald_watcher::WatcherStats::default())),
                stats: stats.clone(),
            },
            &Router::new(&[]).unwrap(),
            stop.clone(),
        )
        .unwrap();
        let router = Router::new(&[]).unwrap();
        let now = Timestamp::now();
        let all: Vec<Notification> = (0..200).map(|i| evicted(i, now)).collect();
        for n in &all {
            assert!(store.put_notification(n).unwrap());
            outbox.enqueue_new(&router, n.clone());
        }
        // Everything settled: delivered, or digested into a delivered digest.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if store.pending_notifications().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "still pending");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let sent = chat.sent.lock().unwrap().clone();
        // Within budget: no 1-second window holds more than 4 messages.
        for (i, (t, _)) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|(u, _)| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 4, "{in_window} messages within 1 s");
        }
        // The 4 critical ones went alone, the others alone or in digests; nothing lost.
        let digests: Vec<&Notification> = sent
            .iter()
            .map(|(_, n)| n)
            .filter(|n| digest::is_digest(&n.id))
            .collect();
        assert!(!digests.is_empty());
        let alone = sent.len() - digests.len();
        let mut accounted = 0;
        for n in &all {
            let delivered = store
                .deliveries(&n.id)
                .unwrap()
                .iter()
                .any(|a| a.outcome.is_delivered());
            let fate = store.fate(&n.id).unwrap();
            match (delivered, fate) {
                (true, None) => accounted += 1,
                (false, Some(herald_store::Fate::Digested { digest_id, .. })) => {
                    assert!(digests.iter().any(|d| d.id == digest_id));
                    let d_delivered = store
                        .deliveries(&digest_id)
                        .unwrap()
                        .iter()
                        .any(|a| a.outcome.is_delivered());
                    assert!(d_delivered, "{digest_id} delivered");
                    assert_ne!(n.severity, Severity::Critical, "urgent never folded");
                    accounted += 1;
                }
                other => panic!("{}: {other:?}", n.id),
            }
        }
        assert_eq!(accounted, 200);
        assert!(alone >= 4, "{alone}");
        assert!(
            sent.len() < 30,
            "{} messages for 200 notifications",
            sent.len()
        );
    }
}
