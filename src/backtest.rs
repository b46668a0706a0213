//! `herald backtest --rules FILE --since 7d [-o json]`: replays the stored history through a
//! rule set and prints what would have fired, when, and how many notifications that would
//! have been. It owns the replay loop (records in time order, the classifier ticked every
//! second of record time in between, as the service does) and the report; the rules, their
//! validation and the classification itself are the classifier crate's.
//!
//! Notifications are counted as the service makes them: each transition goes through the
//! subscriptions of `--config` (the notifiers' [`Router`], the service's own routing), one
//! notification per (subscription, channel) route, an `updated` within the subscription's
//! `repeat_interval` of the previous notification on that route left out. Without `--config`
//! there are no subscriptions, and only the transitions are counted.
//!
//! The rule set is the YAML rules of `--rules`, plus the `classifier:` section of `--config`
//! when given (its built-in tuning and its own rules); without `--config` the built-in rules
//! are off unless `--builtins` is given, so the report shows what the file's rules add. The
//! store is read directly; a running service holds it (sled allows one process), which is
//! reported with what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use herald_classifier::{Classifier, ClassifierConfig, RuleTuning};
use herald_core::{IncidentChange, Record, Severity, Timestamp, Transition};
use herald_notifiers::Router;
use herald_store::{Store, StoreError, TimeQuery};

use crate::cli::{Output, parse_duration};
use crate::config::Config;

/// `herald backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// YAML rules file (`rules:` list, the format of `classifier.rule_files`).
    #[arg(long)]
    pub rules: PathBuf,
    /// Replay the history of this long ago until now (or `--until`), e.g. `7d`, `12h`.
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    pub since: Duration,
    /// End of the replayed period, as a duration before now (default: now).
    #[arg(long, value_parser = parse_duration)]
    pub until: Option<Duration>,
    /// Take the `classifier:` section (built-in tuning and rules) of this config file too.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run the built-in rules (with their defaults) next to the file's rules.
    #[arg(long)]
    pub builtins: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// What the replay found.
#[derive(Debug, Serialize)]
pub struct BacktestReport {
    /// Start of the replayed period.
    pub since: Timestamp,
    /// End of the replayed period.
    pub until: Timestamp,
    /// Records replayed.
    pub records: usize,
    /// Subscriptions notifications were counted through (those of `--config`; without it none,
    /// and no notification is counted).
    pub subscriptions: usize,
    /// Transitions (`opened`, `updated`, `resolved`).
    pub transitions: usize,
    /// Notifications the service would have made: one per subscribed channel route of each
    /// transition (see the module documentation).
    pub notifications: usize,
    /// Notifications per channel, by channel name.
    pub channels: Vec<ChannelSummary>,
    /// Per rule: incidents opened, transitions and notifications.
    pub rules: Vec<RuleSummary>,
    /// Every incident that would have opened, in order.
    pub incidents: Vec<FiredIncident>,
}

/// One rule's figures.
#[derive(Debug, Serialize)]
pub struct RuleSummary {
    /// Rule name.
    pub rule: String,
    /// Incidents opened.
    pub incidents: usize,
    /// Transitions (`opened` + `updated` + `resolved`).
    pub transitions: usize,
    /// Notifications, over every channel.
    pub notifications: usize,
}

/// One channel's figures.
#[derive(Debug, Serialize)]
pub struct ChannelSummary {
    /// Channel name.
    pub channel: String,
    /// Notifications it would have been sent.
    pub notifications: usize,
}

/// One incident the rule set would have opened.
#[derive(Debug, Serialize)]
pub struct FiredIncident {
    /// Incident id.
    pub id: String,
    /// Rule.
    pub rule: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Severity (the highest it reached).
    pub severity: Severity,
    /// When it would have opened.
    pub opened_at: Timestamp,
    /// When it would have resolved (`None`: still open at the end).
    pub resolved_at: Option<Timestamp>,
    /// `updated` announcements.
    pub updates: usize,
    /// Supporting observations.
    pub count: u64,
    /// Summary at its last transition.
    pub summary: String,
}

/// What a backtest replays through: the classifier configuration and the subscriptions.
#[derive(Debug)]
pub struct RuleSet {
    /// The rules file, plus `--config`'s `classifier:` section or (without it) the built-ins
    /// switched off unless `--builtins`.
    pub classifier: ClassifierConfig,
    /// The router of `--config`'s subscriptions (none without it).
    pub router: Router,
    /// How many subscriptions `router` has.
    pub subscriptions: usize,
}

/// The [`RuleSet`] of a backtest's arguments.
pub fn rule_set(args: &BacktestArgs) -> anyhow::Result<RuleSet> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("cannot read rules file {}", args.rules.display()))?;
    let rules = match herald_classifier::parse_rules(&text) {
        Ok(r) => r,
        Err(issues) => {
            for i in &issues {
                eprintln!(
                    "error: {}:{}:{}: {}",
                    args.rules.display(),
                    i.line,
                    i.column,
                    i.message
                );
            }
            bail!(
                "{}: {} problem(s) found",
                args.rules.display(),
                issues.len()
            );
        }
    };
    let (mut cfg, router, subscriptions) = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => {
                let router = Router::new(&c.subscriptions)
                    .with_context(|| format!("{}: invalid subscriptions", path.display()))?;
                (c.classifier, router, c.subscriptions.len())
            }
            Err(errors) => {
                for issue in &errors.0 {
                    eprintln!("error: {issue}");
                }
                bail!("{}: {} problem(s) found", path.display(), errors.0.len());
            }
        },
        None if args.builtins => (ClassifierConfig::default(), Router::default(), 0),
        None => (builtins_off(), Router::default(), 0),
    };
    for r in rules {
        if let Some(dup) = cfg.rules.iter().find(|x| x.name.value == r.name.value) {
            bail!(
                "{}: rule {:?} is also defined by the config",
                args.rules.display(),
                dup.name.value
            );
        }
        cfg.rules.push(r);
    }
    cfg.rule_files.clear();
    Ok(RuleSet {
        classifier: cfg,
        router,
        subscriptions,
    })
}

/// A classifier configuration with every built-in rule disabled.
pub fn builtins_off() -> ClassifierConfig {
    let off = RuleTuning {
        enabled: Some(false),
        ..RuleTuning::default()
    };
    let mut c = ClassifierConfig::default();
    c.node_not_ready.enabled = false;
    c.oom_killed.enabled = false;
    c.eviction_storm.enabled = false;
    c.namespace_eviction_storm.enabled = false;
    c.cluster_eviction_storm.enabled = false;
    for t in [
        &mut c.crash_loop,
        &mut c.image_pull,
        &mut c.failed_scheduling,
        &mut c.failed_mount,
        &mut c.probe_failures,
        &mut c.job_failed,
        &mut c.node_pressure,
        &mut c.node_rebooted,
        &mut c.evicted,
    ] {
        *t = off.clone();
    }
    c
}

/// Replays `records` (in time order) through `set` from `since` to `until`: each record at its
/// own time, the classifier ticked every second in between and up to `until`; notifications
/// are counted through the set's router.
pub fn replay(
    set: RuleSet,
    records: &[Record],
    since: Timestamp,
    until: Timestamp,
) -> BacktestReport {
    let mut classifier = Classifier::new(set.classifier);
    let mut changes: Vec<IncidentChange> = Vec::new();
    let second = jiff::SignedDuration::from_secs(1);
    let mut next_tick = since;
    let mut tick_until = |c: &mut Classifier, t: Timestamp, out: &mut Vec<IncidentChange>| {
        while next_tick < t {
            out.extend(c.tick(next_tick));
            next_tick = next_tick.saturating_add(second).unwrap_or(t);
        }
    };
    for r in records {
        let at = r.observed_at.max(since);
        tick_until(&mut classifier, at, &mut changes);
        changes.extend(classifier.apply(r, at));
    }
    tick_until(&mut classifier, until, &mut changes);
    changes.extend(classifier.tick(until));
    let mut report = report(&changes, &set.router, records.len(), since, until);
    report.subscriptions = set.subscriptions;
    report
}

/// The routes of `change` the service would make a notification for: every route of the
/// router, except that an `updated` within the subscription's `repeat_interval` of the
/// previous notification of the incident on that route is left out. `last` holds the time of
/// the latest notification per (incident id, subscription, channel).
fn notified_routes(
    router: &Router,
    change: &IncidentChange,
    last: &mut BTreeMap<(String, String, String), Timestamp>,
) -> Vec<herald_notifiers::Route> {
    let mut out = Vec::new();
    for route in router.route(change) {
        let key = (
            change.incident.id.0.clone(),
            route.subscription.clone(),
            route.channel.clone(),
        );
        if change.transition == Transition::Updated {
            let every = router
                .policy(&route.subscription)
                .map(|p| p.timing.repeat_interval)
                .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                .filter(|d| !d.is_zero());
            let too_soon = every.is_some_and(|span| {
                last.get(&key)
                    .is_some_and(|t| t.checked_add(span).is_ok_and(|due| due > change.at))
            });
            if too_soon {
                continue;
            }
        }
        last.insert(key, change.at);
        out.push(route);
    }
    out
}

fn report(
    changes: &[IncidentChange],
    router: &Router,
    records: usize,
    since: Timestamp,
    until: Timestamp,
) -> BacktestReport {
    let mut incidents: Vec<FiredIncident> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut rules: BTreeMap<String, RuleSummary> = BTreeMap::new();
    let mut channels: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = BTreeMap::new();
    let mut notifications = 0;
    for ch in changes {
        let i = &ch.incident;
        let rule = rules.entry(i.rule.clone()).or_insert_with(|| RuleSummary {
            rule: i.rule.clone(),
            incidents: 0,
            transitions: 0,
            notifications: 0,
        });
        rule.transitions += 1;
        for route in notified_routes(router, ch, &mut last) {
            rule.notifications += 1;
            notifications += 1;
            *channels.entry(route.channel).or_insert(0) += 1;
        }
        match ch.transition {
            Transition::Opened => {
                rule.incidents += 1;
                index.insert(i.id.0.clone(), incidents.len());
                incidents.push(FiredIncident {
                    id: i.id.0.clone(),
                    rule: i.rule.clone(),
                    fingerprint: i.fingerprint.clone(),
                    severity: i.severity,
                    opened_at: ch.at,
                    resolved_at: None,
                    updates: 0,
                    count: i.count,
                    summary: i.summary.clone(),
                });
            }
            Transition::Updated | Transition::Resolved => {
                if let Some(f) = index.get(&i.id.0).and_then(|&n| incidents.get_mut(n)) {
                    f.severity = f.severity.max(i.severity);
                    f.count = i.count;
                    f.summary.clone_from(&i.summary);
                    if ch.transition == Transition::Updated {
                        f.updates += 1;
                    } else {
                        f.resolved_at = Some(ch.at);
                    }
                }
            }
        }
    }
    BacktestReport {
        since,
        until,
        records,
        subscriptions: 0,
        transitions: changes.len(),
        notifications,
        channels: channels
            .into_iter()
            .map(|(channel, notifications)| ChannelSummary {
                channel,
                notifications,
            })
            .collect(),
        rules: rules.into_values().collect(),
        incidents,
    }
}

/// Opens the store for reading the history, explaining what to do when a service holds it.
fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    if !data_dir.exists() {
        bail!(
            "no history at {} (run `herald run` or `herald demo` first, or pass --data-dir)",
            data_dir.display()
        );
    }
    match Store::open(data_dir) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { .. }) => {
            let who = std::fs::read_to_string(data_dir.join(crate::query::SERVICE_FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<crate::query::ServiceInfo>(&t).ok())
                .map(|i| format!(" (herald pid {}, API {})", i.pid, i.api))
                .unwrap_or_default();
            bail!(
                "the store at {} is held by a running service{who}; backtest replays the whole \
                 history from the store itself: stop the service, or copy the data directory \
                 (`cp -r`) and pass the copy with --data-dir",
                data_dir.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot open store at {}", data_dir.display())),
    }
}

/// `herald backtest`.
pub fn run(args: BacktestArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let set = rule_set(&args)?;
    let now = Timestamp::now();
    let before = |d: Duration| -> anyhow::Result<Timestamp> {
        let span = jiff::SignedDuration::try_from(d).context("duration too large")?;
        now.checked_sub(span)
            .context("duration goes before the epoch")
    };
    let since = before(args.since)?;
    let until = args.until.map(before).transpose()?.unwrap_or(now);
    if until < since {
        bail!("--until is before --since");
    }
    let store = open_store(data_dir)?;
    let records = store
        .records_between(&TimeQuery {
            since: Some(since),
            until: Some(until),
            limit: None,
        })
        .context("cannot read the stored records")?;
    drop(store);
    let report = replay(set, &records, since, until);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print_table(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(r: &BacktestReport) {
    println!(
        "replayed {} records from {} to {}",
        r.records,
        r.since.strftime("%Y-%m-%d %H:%M:%S"),
        r.until.strftime("%Y-%m-%d %H:%M:%S")
    );
    println!(
        "{} incident(s) would have opened; {} transition(s); {} notification(s) (one per subscribed channel)",
        r.incidents.len(),
        r.transitions,
        r.notifications
    );
    if r.subscriptions == 0 {
        println!(
            "no subscriptions: pass --config with the service's config to count notifications per channel"
        );
    }
    if !r.channels.is_empty() {
        println!();
        println!("{:<32} {:>13}", "CHANNEL", "NOTIFICATIONS");
        for c in &r.channels {
            println!("{:<32} {:>13}", c.channel, c.notifications);
        }
    }
    if r.rules.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<32} {:>9} {:>11} {:>13}",
        "RULE", "INCIDENTS", "TRANSITIONS", "NOTIFICATIONS"
    );
    for s in &r.rules {
        println!(
            "{:<32} {:>9} {:>11} {:>13}",
            s.rule, s.incidents, s.transitions, s.notifications
        );
    }
    println!();
    println!(
        "{:<19}  {:<19}  {:<8}  {:>5}  {:>7}  FINGERPRINT / SUMMARY",
        "OPENED", "RESOLVED", "SEVERITY", "COUNT", "UPDATES"
    );
    for i in &r.incidents {
        let resolved = i
            .resolved_at
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "(open)".to_string());
        println!(
            "{:<19}  {:<19}  {:<8}  {:>5}  {:>7}  {}",
            i.opened_at.strftime("%Y-%m-%d %H:%M:%S"),
            resolved,
            i.severity,
            i.count,
            i.updates,
            i.fingerprint
        );
        println!("{:<80}  {}", "", i.summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{EventRecord, EventSource, ObjectRef, RecordBody, RecordId};

    fn backoff(id: u64, at: Timestamp, pod: &str) -> Record {
        Record {
            id: RecordId(id),
            cluster: "prod".into(),
            observed_at: at,
            object: ObjectRef::pod("payments", pod),
            node: Some("node-a".into()),
            owner: None,
            labels: Default::default(),
            body: RecordBody::Event(EventRecord {
                uid: format!("uid-{id}"),
                namespace: "payments".into(),
                name: format!("{pod}.1"),
                reason: "BackOff".into(),
                event_type: "Warning".into(),
                message: "Back-off restarting failed container api".into(),
                count: 1,
                count_delta: 1,
                first_timestamp: None,
                last_timestamp: None,
                source: EventSource::default(),
                field_path: None,
            }),
        }
    }

    #[test]
    fn replay_reports_what_fires_when_and_resolves_by_ticks() {
        let rules = herald_classifier::parse_rules(
            "rules:\n  - name: Backoffs\n    match: { reason: BackOff }\n    threshold: { count: 2, window: 1m }\n    group_by: [namespace]\n    resolve_after: 5m\n",
        )
        .expect("rules");
        let mut cfg = builtins_off();
        cfg.rules = rules;
        let t0: Timestamp = "2025-06-02T10:00:00Z".parse().expect("t0");
        let s = jiff::SignedDuration::from_secs;
        let records = vec![
            backoff(1, t0 + s(10), "api-1"),
            backoff(2, t0 + s(30), "api-2"),
            backoff(3, t0 + s(3600), "api-1"),
        ];
        let set = RuleSet {
            classifier: cfg,
            router: Router::default(),
            subscriptions: 0,
        };
        let r = replay(set, &records, t0, t0 + s(7200));
        assert_eq!(r.records, 3);
        assert_eq!(r.incidents.len(), 1, "{r:?}");
        let i = &r.incidents[0];
        assert_eq!(i.fingerprint, "Backoffs/payments");
        assert_eq!(i.opened_at, t0 + s(30));
        // Resolved by a tick 5m after the last occurrence, not by the next record.
        assert_eq!(i.resolved_at, Some(t0 + s(330)));
        assert_eq!(i.updates, 0);
        assert_eq!(i.count, 2);
        assert_eq!(r.transitions, 2);
        // No subscriptions: nothing would have been sent.
        assert_eq!(r.notifications, 0);
        assert!(r.channels.is_empty());
        assert_eq!(r.rules.len(), 1);
        assert_eq!(r.rules[0].incidents, 1);
        assert_eq!(r.rules[0].transitions, 2);
    }

    #[test]
    fn notifications_are_counted_per_subscribed_channel_as_the_router_routes_them() {
        let rules = herald_classifier::parse_rules(
            "rules:\n  - name: Backoffs\n    match: { reason: BackOff }\n    group_by: [pod]\n    resolve_after: 5m\n",
        )
        .expect("rules");
        let mut cfg = builtins_off();
        cfg.rules = rules;
        let subs: Vec<herald_notifiers::SubscriptionConfig> = serde_saphyr::from_str(
            r#"
- name: everything
  channels: [ops-mail, ops-chat]
- name: backoffs
  match: { labels: { reason: BackOff } }
  channels: [ops-chat]
  send_resolved: false
- name: critical
  match: { min_severity: critical }
  channels: [pager]
"#,
        )
        .expect("subscriptions");
        let set = RuleSet {
            classifier: cfg,
            router: Router::new(&subs).expect("router"),
            subscriptions: subs.len(),
        };
        let t0: Timestamp = "2025-06-02T10:00:00Z".parse().expect("t0");
        let s = jiff::SignedDuration::from_secs;
        let records = vec![
            backoff(1, t0 + s(10), "api-1"),
            backoff(2, t0 + s(20), "api-2"),
        ];
        let r = replay(set, &records, t0, t0 + s(3600));
        // Two incidents (one per pod), each opened and resolved: 4 transitions.
        assert_eq!(r.incidents.len(), 2, "{r:?}");
        assert_eq!(r.transitions, 4);
        // everything: 4 x 2 channels; backoffs: 2 opened (no resolved); critical: none.
        let per_channel: Vec<(&str, usize)> = r
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.notifications))
            .collect();
        assert_eq!(per_channel, [("ops-chat", 6), ("ops-mail", 4)]);
        assert_eq!(r.notifications, 10);
        assert_eq!(r.rules[0].notifications, 10);
        assert_eq!(r.subscriptions, 3);
    }

    #[test]
    fn updates_within_repeat_interval_are_not_counted() {
        use herald_core::{Incident, IncidentId, IncidentState, ObjectRef};
        let subs: Vec<herald_notifiers::SubscriptionConfig> =
            serde_saphyr::from_str("- name: ops\n  channels: [chat]\n  repeat_interval: 1h\n")
                .expect("subscriptions");
        let router = Router::new(&subs).expect("router");
        let t0: Timestamp = "2025-06-02T10:00:00Z".parse().expect("t0");
        let s = jiff::SignedDuration::from_secs;
        let incident = Incident {
            id: IncidentId("X/a@1".into()),
            fingerprint: "X/a".into(),
            rule: "X".into(),
            severity: Severity::Warning,
            state: IncidentState::Open,
            cluster: "prod".into(),
            subject: ObjectRef::pod("shop", "a"),
            namespace: Some("shop".into()),
            node: None,
            summary: String::new(),
            first_seen: t0,
            last_seen: t0,
            resolved_at: None,
            count: 1,
            objects: Vec::new(),
            records: Vec::new(),
            labels: Default::default(),
        };
        let change = |transition, secs| IncidentChange {
            transition,
            at: t0 + s(secs),
            incident: incident.clone(),
        };
        let changes = [
            change(Transition::Opened, 0),
            change(Transition::Updated, 600), // 10 min after the opened: left out
            change(Transition::Updated, 3600), // 1 h after: sent
            change(Transition::Updated, 4000), // left out
            change(Transition::Resolved, 4100), // resolved is always sent
        ];
        let r = report(&changes, &router, 0, t0, t0 + s(5000));
        assert_eq!(r.transitions, 5);
        assert_eq!(r.notifications, 3);
        assert_eq!(r.incidents[0].updates, 3);
    }
}
