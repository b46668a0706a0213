//! `herald backtest --rules FILE --since 7d [-o json]`: replays the stored history through a
//! rule set and prints what would have fired, when, and how many notifications that would
//! have been. It owns the replay loop (records in time order, the classifier ticked every
//! second of record time in between, as the service does) and the report; the rules, their
//! validation and the classification itself are the classifier crate's.
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
    /// Transitions that would have been announced: one notification per subscribed channel
    /// each (`opened`, `updated`, `resolved`).
    pub notifications: usize,
    /// Per rule: incidents opened and notifications.
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
    /// Transitions announced (`opened` + `updated` + `resolved`).
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

/// The classifier configuration of a backtest: the rules file, plus `--config`'s section or
/// (without it) the built-ins switched off unless `builtins`.
pub fn rule_set(args: &BacktestArgs) -> anyhow::Result<ClassifierConfig> {
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
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c.classifier,
            Err(errors) => {
                for issue in &errors.0 {
                    eprintln!("error: {issue}");
                }
                bail!("{}: {} problem(s) found", path.display(), errors.0.len());
            }
        },
        None if args.builtins => ClassifierConfig::default(),
        None => builtins_off(),
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
    Ok(cfg)
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

/// Replays `records` (in time order) through `cfg` from `since` to `until`: each record at its
/// own time, the classifier ticked every second in between and up to `until`.
pub fn replay(
    cfg: ClassifierConfig,
    records: &[Record],
    since: Timestamp,
    until: Timestamp,
) -> BacktestReport {
    let mut classifier = Classifier::new(cfg);
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
    report(&changes, records.len(), since, until)
}

fn report(
    changes: &[IncidentChange],
    records: usize,
    since: Timestamp,
    until: Timestamp,
) -> BacktestReport {
    let mut incidents: Vec<FiredIncident> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut rules: BTreeMap<String, RuleSummary> = BTreeMap::new();
    for ch in changes {
        let i = &ch.incident;
        let rule = rules.entry(i.rule.clone()).or_insert_with(|| RuleSummary {
            rule: i.rule.clone(),
            incidents: 0,
            notifications: 0,
        });
        rule.notifications += 1;
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
        notifications: changes.len(),
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
    let cfg = rule_set(&args)?;
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
    let report = replay(cfg, &records, since, until);
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
        "{} incident(s) would have opened; {} notification(s) (per subscribed channel)",
        r.incidents.len(),
        r.notifications
    );
    if r.rules.is_empty() {
        return;
    }
    println!();
    println!("{:<32} {:>9} {:>13}", "RULE", "INCIDENTS", "NOTIFICATIONS");
    for s in &r.rules {
        println!("{:<32} {:>9} {:>13}", s.rule, s.incidents, s.notifications);
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
        let r = replay(cfg, &records, t0, t0 + s(7200));
        assert_eq!(r.records, 3);
        assert_eq!(r.incidents.len(), 1, "{r:?}");
        let i = &r.incidents[0];
        assert_eq!(i.fingerprint, "Backoffs/payments");
        assert_eq!(i.opened_at, t0 + s(30));
        // Resolved by a tick 5m after the last occurrence, not by the next record.
        assert_eq!(i.resolved_at, Some(t0 + s(330)));
        assert_eq!(i.updates, 0);
        assert_eq!(i.count, 2);
        assert_eq!(r.notifications, 2);
        assert_eq!(r.rules.len(), 1);
        assert_eq!(r.rules[0].incidents, 1);
    }
}
