//! History and incident queries. The same functions answer the CLI (opening the store itself)
//! and the service's query API; when a running service holds the store (sled allows one process
//! per database), the CLI asks that service over HTTP instead, using the address the service
//! wrote to `service.json` in the data directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use herald_core::{
    DeliveryAttempt, Incident, IncidentState, Notification, ObjectKind, ObjectRef, Record,
    Timestamp, Transition,
};
use herald_store::{Store, StoreError, StoreOptions, TimeQuery};

use crate::cli::{HistoryArgs, HistoryQuery, HistoryTarget, IncidentsArgs, Output};
use crate::output;

/// Name of the file a running service writes into its data directory.
pub const SERVICE_FILE: &str = "service.json";

/// What a running service advertises in `service.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Base URL of the query API, e.g. `http://127.0.0.1:9464`.
    pub api: String,
    /// Process id of the service.
    pub pid: u32,
}

/// Everything known about one object.
#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryView {
    /// The object.
    pub object: ObjectRef,
    /// Its records, oldest first.
    pub records: Vec<Record>,
    /// Incidents it was part of, with who was told.
    pub incidents: Vec<IncidentView>,
}

/// An incident and the notifications sent for it.
#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentView {
    /// The incident.
    pub incident: Incident,
    /// Notifications for it.
    pub notifications: Vec<NotificationView>,
}

/// One notification and how its delivery went.
#[derive(Debug, Serialize, Deserialize)]
pub struct NotificationView {
    /// Idempotency key.
    pub id: String,
    /// Transition announced.
    pub transition: Transition,
    /// Subscription that routed it.
    pub subscription: String,
    /// Who the subscription is for (its `who:`, else its name).
    #[serde(default)]
    pub who: String,
    /// Channel.
    pub channel: String,
    /// Created at.
    pub created_at: Timestamp,
    /// Whether a delivery attempt succeeded.
    pub delivered: bool,
    /// `delivered`, `pending`, `dead`, `digested` (folded into the digest `settled_by`) or
    /// `silenced` (by the silence `settled_by`).
    #[serde(default)]
    pub status: String,
    /// The digest or silence that settled it, for `digested` and `silenced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_by: Option<String>,
    /// Every attempt.
    pub attempts: Vec<DeliveryAttempt>,
}

impl NotificationView {
    /// The view of `n` with its attempts and its state in `store`.
    pub fn from_store(
        store: &Store,
        n: Notification,
        attempts: Vec<DeliveryAttempt>,
    ) -> Result<Self, StoreError> {
        let mut v = Self::new(n, attempts);
        v.who = store
            .subscriber(&v.subscription)?
            .unwrap_or_else(|| v.subscription.clone());
        if v.delivered {
            v.status = "delivered".into();
        } else if let Some(fate) = store.fate(&v.id)? {
            let (status, by) = match fate {
                herald_store::Fate::Digested { digest_id, .. } => ("digested", digest_id),
                herald_store::Fate::Silenced { silence_id, .. } => ("silenced", silence_id),
            };
            v.status = status.into();
            v.settled_by = Some(by);
        } else if store.is_dead(&v.id)? {
            v.status = "dead".into();
        } else {
            v.status = "pending".into();
        }
        Ok(v)
    }

    fn new(n: Notification, attempts: Vec<DeliveryAttempt>) -> Self {
        Self {
            status: String::new(),
            settled_by: None,
            who: String::new(),
            delivered: attempts.iter().any(|a| a.outcome.is_delivered()),
            id: n.id,
            transition: n.transition,
            subscription: n.subscription,
            channel: n.channel,
            created_at: n.created_at,
            attempts,
        }
    }
}

/// Builds the history of `object` from the store.
pub fn history_from_store(
    store: &Store,
    object: ObjectRef,
    since: Option<Timestamp>,
    limit: usize,
) -> Result<HistoryView, StoreError> {
    let key = object.key();
    let q = TimeQuery {
        since,
        until: None,
        limit: None,
    };
    let mut records = store.records_for_object(&object.kind, &key, &q)?;
    if records.len() > limit {
        records.drain(..records.len() - limit);
    }
    let mut incidents = Vec::new();
    for incident in store.incidents_for_object(&object.kind, &key)? {
        if since.is_some_and(|since| incident.last_seen < since) {
            continue;
        }
        let notifications = store
            .deliveries_for_incident(&incident.id)?
            .into_iter()
            .map(|(n, attempts)| NotificationView::from_store(store, n, attempts))
            .collect::<Result<_, _>>()?;
        incidents.push(IncidentView {
            incident,
            notifications,
        });
    }
    Ok(HistoryView {
        object,
        records,
        incidents,
    })
}

/// Incidents active since `since` (all when `None`), optionally only open ones, oldest first.
pub fn incidents_from_store(
    store: &Store,
    since: Option<Timestamp>,
    open_only: bool,
) -> Result<Vec<Incident>, StoreError> {
    let mut list = if open_only {
        store.open_incidents()?
    } else {
        store.incidents(&TimeQuery {
            since,
            until: None,
            limit: None,
        })?
    };
    if let (true, Some(since)) = (open_only, since) {
        list.retain(|i| i.last_seen >= since);
    }
    list.retain(|i| !open_only || i.state == IncidentState::Open);
    list.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(list)
}

/// Where query commands get their answers.
pub(crate) enum Source {
    Local(Store),
    Remote {
        api: String,
        client: reqwest::Client,
    },
}

pub(crate) async fn open_source(data_dir: &Path) -> anyhow::Result<Source> {
    if !data_dir.exists() {
        bail!(
            "no history at {} (run `herald run` or `herald demo` first, or pass --data-dir)",
            data_dir.display()
        );
    }
    // No lock wait: a held store means a running service, which answers instead; waiting
    // for sled's lock would only delay every query made while the service runs.
    let options = StoreOptions {
        lock_wait: Duration::ZERO,
        ..StoreOptions::default()
    };
    match Store::open_with(data_dir, &options) {
        Ok(store) => Ok(Source::Local(store)),
        Err(StoreError::Locked { .. }) => {
            let file = data_dir.join(SERVICE_FILE);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "the store at {} is held by another process and {} is unreadable",
                    data_dir.display(),
                    file.display()
                )
            })?;
            let info: ServiceInfo = serde_json::from_str(&text)
                .with_context(|| format!("cannot parse {}", file.display()))?;
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("cannot build HTTP client")?;
            tracing::debug!(api = %info.api, pid = info.pid, "store held by a running service; querying its API");
            Ok(Source::Remote {
                api: info.api,
                client,
            })
        }
        Err(e) => Err(e).with_context(|| format!("cannot open store at {}", data_dir.display())),
    }
}

pub(crate) async fn get_json<T: for<'de> Deserialize<'de>>(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {}", body.trim());
    }
    resp.json::<T>()
        .await
        .with_context(|| format!("bad answer from {url}"))
}

fn since_ts(since: Option<Duration>) -> anyhow::Result<Option<Timestamp>> {
    since
        .map(|d| {
            let span = jiff::SignedDuration::try_from(d).context("duration too large")?;
            Timestamp::now()
                .checked_sub(span)
                .context("--since goes before the epoch")
        })
        .transpose()
}

/// `herald history pod|node ...`.
pub async fn history(args: HistoryArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let (kind, q): (ObjectKind, HistoryQuery) = match args.target {
        HistoryTarget::Pod(q) => (ObjectKind::Pod, q),
        HistoryTarget::Node(q) => (ObjectKind::Node, q),
    };
    let object = ObjectRef::parse_key(kind.clone(), &q.key)?;
    if kind == ObjectKind::Pod && object.namespace.is_none() {
        bail!("pods are named NAMESPACE/NAME, got {:?}", q.key);
    }
    if kind == ObjectKind::Node && object.namespace.is_some() {
        bail!("nodes are named NAME without a namespace, got {:?}", q.key);
    }
    let since = since_ts(q.since)?;
    let view = match open_source(data_dir).await? {
        Source::Local(store) => history_from_store(&store, object, since, q.limit)?,
        Source::Remote { api, client } => {
            let mut url = format!(
                "{api}/api/v1/history/{}/{}?limit={}",
                kind.as_str().to_ascii_lowercase(),
                q.key,
                q.limit
            );
            if let Some(s) = since {
                url.push_str(&format!("&since={s}"));
            }
            get_json(&client, &url).await?
        }
    };
    match q.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Output::Table => output::print_history(&view),
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald incidents`.
pub async fn incidents(args: IncidentsArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let since = since_ts(args.since)?;
    let list: Vec<Incident> = match open_source(data_dir).await? {
        Source::Local(store) => incidents_from_store(&store, since, args.open)?,
        Source::Remote { api, client } => {
            let mut url = format!("{api}/api/v1/incidents?open={}", args.open);
            if let Some(s) = since {
                url.push_str(&format!("&since={s}"));
            }
            get_json(&client, &url).await?
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&list)?),
        Output::Table => output::print_incidents(&list),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `service.json` so CLI commands can find the running service.
pub fn write_service_file(data_dir: &Path, api: &str) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(SERVICE_FILE);
    let info = ServiceInfo {
        api: api.to_string(),
        pid: std::process::id(),
    };
    let tmp = data_dir.join(format!("{SERVICE_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
