//! The service: wires watcher -> store -> classifier -> store -> router -> renderer -> outbox ->
//! channels, plus the query API. Records are persisted before they are classified; incident
//! transitions are persisted before they are routed; notifications are persisted (the outbox)
//! before they are sent, and every delivery attempt is persisted. A watch checkpoint is stored
//! only after the records before it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use herald_classifier::Classifier;
use herald_core::{IncidentChange, Notification, Timestamp, Transition};
use herald_notifiers::{Channels, Dispatcher, Router};

use crate::delivery::{self, OutboxHandle, WorkerContext};
use herald_store::{ClusterIdentity, Store, StoreError};
use herald_templates::Renderer;
use herald_watcher::{Resource, WatchItem, Watcher, WatcherConfig};

use crate::api::{self, IncidentLabels, KindLabel, Metrics};
use crate::cli::{RunArgs, default_data_dir};
use crate::config::Config;
use crate::query;

/// Watch items persisted together at most (group commit of what is queued).
const BATCH_ITEMS: usize = 256;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Parsed configuration.
    pub config: Config,
    /// Store directory.
    pub data_dir: PathBuf,
    /// Kubeconfig override.
    pub kubeconfig: Option<PathBuf>,
}

/// Live counters the demo prints and tests read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records persisted.
    pub records: AtomicU64,
    /// Incidents opened.
    pub opened: AtomicU64,
    /// Incidents updated.
    pub updated: AtomicU64,
    /// Incidents resolved.
    pub resolved: AtomicU64,
    /// Notifications created.
    pub notifications: AtomicU64,
    /// Notifications delivered.
    pub delivered: AtomicU64,
    /// Resources whose initial sync finished.
    pub synced: AtomicU64,
}

/// `herald run`.
pub async fn run_command(
    args: RunArgs,
    data_dir_flag: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config).map_err(|e| anyhow!("{e}"))?;
    let data_dir = data_dir_flag
        .or_else(|| config.general.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let kubeconfig = args
        .kubeconfig
        .or_else(|| config.general.kubeconfig.clone());
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    run_service(
        ServiceOptions {
            config,
            data_dir,
            kubeconfig,
        },
        shutdown,
        Arc::default(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// Runs the service until `shutdown` is cancelled or a fatal error occurs.
pub async fn run_service(
    opts: ServiceOptions,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let cfg = &opts.config;
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create data directory {}", opts.data_dir.display()))?;
    let store = match Store::open(&opts.data_dir) {
        Ok(s) => s,
        Err(StoreError::Locked { .. }) => bail!(
            "the store at {} is in use by another herald process",
            opts.data_dir.display()
        ),
        Err(e) => {
            return Err(e).context(format!("cannot open store at {}", opts.data_dir.display()));
        }
    };

    let cluster =
        herald_watcher::client_from(opts.kubeconfig.as_deref(), cfg.general.context.as_deref())
            .await?;
    let version = herald_watcher::check_connection(&cluster).await?;
    let client = cluster.client.clone();
    tracing::info!(server_version = %version, cluster = %cfg.general.cluster, data_dir = %opts.data_dir.display(), "connected");
    // Checkpoints belong to one cluster: resourceVersions of another mean nothing (or, worse,
    // something else), so a data directory now facing another cluster lists from scratch.
    if let Some(uid) = herald_watcher::cluster_identity(&cluster).await {
        match store
            .adopt_cluster(&uid)
            .context("cannot record the cluster's identity")?
        {
            ClusterIdentity::Same => {}
            ClusterIdentity::Recorded => {
                tracing::info!(cluster_uid = %uid, "cluster identity recorded with the checkpoints");
            }
            ClusterIdentity::Changed { previous } => tracing::warn!(
                cluster_uid = %uid,
                previous_cluster_uid = %previous,
                data_dir = %opts.data_dir.display(),
                "the data directory was used with another cluster (kube-system namespace uid differs): its watch checkpoints and compact state were cleared and every resource is listed again; history is kept"
            ),
        }
    }

    let mut classifier = Classifier::new(cfg.classifier.clone());
    let open = store.open_incidents()?;
    tracing::info!(open_incidents = open.len(), "restoring classifier state");
    classifier.restore(open);
    let router = Router::new(&cfg.subscriptions).context("invalid subscriptions")?;
    let who: BTreeMap<String, String> = cfg
        .subscriptions
        .iter()
        .filter_map(|s| {
            let name = s.name.value.clone();
            router.policy(&name).map(|p| (name, p.who.clone()))
        })
        .collect();
    store
        .put_subscribers(&who)
        .context("cannot record the subscriptions")?;
    let channels = Arc::new(Channels::build(&cfg.channels).context("invalid channels")?);
    let renderer = Renderer::with_overrides(&cfg.templates).context("invalid templates")?;
    // Watcher.
    // Resume points and, with them, the compact state (without a resume point the watcher
    // lists, and the state would only be replaced).
    let mut wcfg = WatcherConfig {
        cluster: cfg.general.cluster.clone(),
        namespace: cfg.watch.namespace.clone(),
        selectors: cfg.watch.watcher_selectors(),
        list_strategy: cfg.watch.list.into(),
        events_api: cfg.watch.events_api.into(),
        page_size: cfg.watch.page_size,
        ..WatcherConfig::default()
    }
    .with_resources(cfg.watch.events, cfg.watch.pods, cfg.watch.nodes);
    let (tx, mut rx) = mpsc::channel::<WatchItem>(4096);
    // (resource, whether its compact state is stored) of every resource that resumes.
    let mut resuming = Vec::new();
    for resource in Resource::ALL {
        let stored = wcfg.persists_states_of(resource);
        if !stored {
            // States an older herald stored and this one rebuilds otherwise (Event states).
            store
                .clear_watch_states(resource.as_str())
                .context("cannot remove stored watch state")?;
        }
        if let Some(cp) = store.checkpoint(resource.as_str())? {
            wcfg.resume
                .insert(resource.as_str().to_string(), cp.resource_version);
            resuming.push((resource, stored));
        }
    }
    let mut watcher = Watcher::new(client, wcfg);
    for (resource, stored) in resuming {
        if stored {
            // Streamed one state at a time: 200,000 pods are never all decoded at once.
            store
                .for_each_watch_state(resource.as_str(), |s| {
                    watcher.restore_state(resource, s);
                    Ok::<_, anyhow::Error>(())
                })
                .context("cannot read the stored watch state")?;
        } else {
            // Event states are their records' (key and count): rebuilt from the Event
            // records of the last EVENT_STATE_LOOKBACK, one block at a time.
            let since = jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::try_from(
                    herald_watcher::EVENT_STATE_LOOKBACK,
                )?)
                .unwrap_or(jiff::Timestamp::MIN);
            let scanned = store
                .for_each_record_since(since, |r| {
                    if let Some(s) = herald_watcher::event_state(&r) {
                        watcher.restore_state(resource, s);
                    }
                    Ok::<_, anyhow::Error>(())
                })
                .context("cannot read the stored Event records")?;
            tracing::info!(%resource, records_scanned = scanned, %since, "Event state rebuilt from the Event records");
        }
    }
    let metrics = Arc::new(Metrics::new(watcher.stats()));

    // Delivery: one worker per channel running its queue (budget, retries, digests);
    // pending notifications from before a restart are queued first.
    let dispatcher = Arc::new(Dispatcher::new(cfg.delivery.retry_policy()));
    let workers_stop = CancellationToken::new();
    let (outbox, workers) = delivery::start(
        WorkerContext {
            store: store.clone(),
            channels: channels.clone(),
            dispatcher,
            metrics: metrics.clone(),
            stats: stats.clone(),
        },
        &router,
        workers_stop.clone(),
    )?;

    // Query API.
    let expected_synced = [cfg.watch.events, cfg.watch.pods, cfg.watch.nodes]
        .iter()
        .filter(|on| **on)
        .count() as u64;
    let (addr, serve) = api::bind(
        cfg.general.listen,
        store.clone(),
        metrics.clone(),
        stats.clone(),
        expected_synced,
        Some(outbox.clone()),
    )
    .await
    .with_context(|| format!("cannot bind the query API on {}", cfg.general.listen))?;
    let service_file = query::write_service_file(&opts.data_dir, &format!("http://{addr}"))?;
    tracing::info!(%addr, "query API listening");
    let api_task = tokio::spawn(serve);
    let retention_task = tokio::spawn(retention_worker(store.clone(), cfg.general.retention));

    let mut watch_task = tokio::spawn(async move { watcher.run(tx).await });

    let mut pipeline = Pipeline {
        store: store.clone(),
        classifier,
        router,
        renderer,
        channels: channels.clone(),
        outbox,
        silences: store.silences().unwrap_or_default(),
        metrics,
        stats,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch_done = false;
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            item = rx.recv() => match item {
                Some(item) => {
                    // Group commit: what is already queued is persisted together.
                    let mut batch = vec![item];
                    while batch.len() < BATCH_ITEMS {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = pipeline.handle_batch(batch) {
                        break Err(e);
                    }
                }
                None => {
                    // The watcher stopped: report why.
                    watch_done = true;
                    break match (&mut watch_task).await {
                        Ok(Ok(())) => Err(anyhow!("the watcher stopped")),
                        Ok(Err(e)) => Err(anyhow::Error::new(e).context("watcher failed")),
                        Err(e) => Err(anyhow!("watcher task failed: {e}")),
                    };
                }
            },
            _ = tick.tick() => {
                match pipeline.store.silences() {
                    Ok(s) => pipeline.silences = s,
                    Err(e) => tracing::error!(error = %e, "cannot read silences"),
                }
                let changes = pipeline.classifier.tick(Timestamp::now());
                if let Err(e) = changes.into_iter().try_for_each(|c| pipeline.on_change(c)) {
                    break Err(e);
                }
            }
        }
    };
    // Shut down: stop watching, let the delivery workers finish what they hold (briefly; what
    // is still pending stays in the outbox for the next start), then close the store. Every
    // task holding a store handle must be finished before the function returns, so that the
    // sled lock is released and the directory can be reopened at once.
    watch_task.abort();
    drop(pipeline);
    workers_stop.cancel();
    let abort: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
    let mut drain = std::pin::pin!(futures::future::join_all(workers));
    if tokio::time::timeout(SHUTDOWN_DRAIN, &mut drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "deliveries still in progress at shutdown; they stay pending and are retried on the next start"
        );
        abort.iter().for_each(|a| a.abort());
        drain.await;
    }
    api_task.abort();
    retention_task.abort();
    let _ = api_task.await;
    let _ = retention_task.await;
    if !watch_done {
        let _ = watch_task.await;
    }
    // The pending object index entries, so the next start has no records to index again.
    let index = store.clone();
    let entries = tokio::task::spawn_blocking(move || index.write_object_index())
        .await
        .context("the object index writer failed")?
        .context("cannot write the object index")?;
    tracing::debug!(entries, "object index written");
    store.flush().await.context("cannot flush the store")?;
    let _ = std::fs::remove_file(&service_file);
    result
}

/// The synchronous part of the service: handles one watch item at a time.
struct Pipeline {
    store: Store,
    classifier: Classifier,
    router: Router,
    renderer: Renderer,
    channels: Arc<Channels>,
    outbox: OutboxHandle,
    /// The stored silences, re-read every tick (so `herald silence add` takes effect within a
    /// second).
    silences: Vec<herald_core::Silence>,
    metrics: Arc<Metrics>,
    stats: Arc<Stats>,
}

impl Pipeline {
    /// Handles watch items that arrived together: every record is persisted first, in one
    /// transaction (a group commit), then each is classified in order; states, checkpoints and
    /// sync notices follow in their order, so a checkpoint is stored after every record it
    /// covers and a resource's states before its checkpoint.
    fn handle_batch(&mut self, items: Vec<WatchItem>) -> anyhow::Result<()> {
        let mut records = Vec::new();
        let mut rest = Vec::new();
        for item in items {
            match item {
                WatchItem::Record(r) => records.push(r),
                other => rest.push(other),
            }
        }
        self.store
            .append_records(&mut records)
            .context("cannot persist a record")?;
        for record in &records {
            self.stats.records.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .records
                .get_or_create(&KindLabel {
                    kind: record.kind_name().to_string(),
                })
                .inc();
            tracing::debug!(id = record.id.0, object = %record.object, what = %record.describe(), "record");
            for change in self.classifier.apply(record, Timestamp::now()) {
                self.on_change(change)?;
            }
        }
        for item in rest {
            match item {
                WatchItem::Record(_) => {}
                WatchItem::States {
                    resource, states, ..
                } => {
                    self.store
                        .put_watch_states(&resource, &states)
                        .context("cannot persist the watch state")?;
                }
                WatchItem::Checkpoint(cp) => {
                    self.store
                        .put_checkpoint(&cp)
                        .context("cannot persist a checkpoint")?;
                }
                WatchItem::Synced { resource } => {
                    tracing::info!(%resource, "initial sync done");
                    self.stats.synced.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Whether the subscription of `route` was told about this incident (on this channel)
    /// less than its `repeat_interval` ago.
    fn repeat_too_soon(
        &self,
        change: &IncidentChange,
        route: &herald_notifiers::Route,
    ) -> anyhow::Result<bool> {
        let Some(policy) = self.router.policy(&route.subscription) else {
            return Ok(false);
        };
        let every = policy.timing.repeat_interval;
        if every.is_zero() {
            return Ok(false);
        }
        let Ok(span) = jiff::SignedDuration::try_from(every) else {
            return Ok(false);
        };
        let last = self
            .store
            .deliveries_for_incident(&change.incident.id)
            .context("cannot read an incident's notifications")?
            .into_iter()
            .filter(|(n, _)| n.subscription == route.subscription && n.channel == route.channel)
            .map(|(n, _)| n.created_at)
            .max();
        Ok(last.is_some_and(|t| t.checked_add(span).is_ok_and(|due| due > change.at)))
    }

    fn on_change(&mut self, change: IncidentChange) -> anyhow::Result<()> {
        self.store
            .put_incident_change(&change)
            .context("cannot persist an incident")?;
        let i = &change.incident;
        tracing::info!(rule = %i.rule, transition = %change.transition, incident = %i.id, summary = %i.summary, "incident");
        self.metrics
            .incidents
            .get_or_create(&IncidentLabels {
                rule: i.rule.clone(),
                transition: change.transition.to_string(),
            })
            .inc();
        let counter = match change.transition {
            Transition::Opened => &self.stats.opened,
            Transition::Updated => &self.stats.updated,
            Transition::Resolved => &self.stats.resolved,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        for route in self.router.route(&change) {
            if change.transition == Transition::Updated && self.repeat_too_soon(&change, &route)? {
                tracing::debug!(incident = %i.id, subscription = %route.subscription, channel = %route.channel, "update within repeat_interval: not announced");
                continue;
            }
            let Some(kind) = self.channels.template_kind(&route.channel) else {
                tracing::warn!(channel = %route.channel, "route to an unknown channel");
                continue;
            };
            let message = self
                .renderer
                .render_for(&route.subscription, &route.channel, kind, &change)
                .context("cannot render a message")?;
            let n = Notification {
                id: Notification::key_for(&change, &route.subscription, &route.channel),
                incident_id: i.id.clone(),
                transition: change.transition,
                severity: i.severity,
                subscription: route.subscription,
                channel: route.channel,
                created_at: Timestamp::now(),
                change: change.clone(),
                message,
            };
            if let Some(silence) =
                herald_notifiers::silence::silenced_by(&self.silences, &n, Timestamp::now())
            {
                if self
                    .store
                    .put_silenced(&n, &silence.id, Timestamp::now())
                    .context("cannot persist a silenced notification")?
                {
                    tracing::info!(notification = %n.id, silence = %silence.id, "notification silenced");
                    self.metrics
                        .settled
                        .get_or_create(&crate::api::DeliveryLabels {
                            channel: n.channel.clone(),
                            outcome: "silenced".to_string(),
                        })
                        .inc();
                }
                continue;
            }
            if self
                .store
                .put_notification(&n)
                .context("cannot persist a notification")?
            {
                self.stats.notifications.fetch_add(1, Ordering::Relaxed);
                self.outbox.enqueue_new(&self.router, n);
            }
        }
        Ok(())
    }
}

/// How long shutdown waits for in-flight deliveries.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// How often [`retention_worker`] prunes the store.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes records and resolved incidents older than `retention`, at start-up and then every
/// [`PRUNE_EVERY`]. Open incidents and their notifications are kept however old.
async fn retention_worker(store: Store, retention: Duration) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Ok(span) = jiff::SignedDuration::try_from(retention) else {
            tracing::warn!(
                ?retention,
                "retention too long to compute a cutoff; nothing pruned"
            );
            return;
        };
        let Ok(cutoff) = Timestamp::now().checked_sub(span) else {
            continue;
        };
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.prune(cutoff)).await {
            Ok(Ok(st)) => tracing::info!(
                %cutoff,
                records = st.records,
                incidents = st.incidents,
                notifications = st.notifications,
                delivery_attempts = st.delivery_attempts,
                "retention: pruned"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, %cutoff, "retention: prune failed"),
            Err(e) => tracing::error!(error = %e, "retention: prune task failed"),
        }
    }
}
