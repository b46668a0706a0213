//! The built-in signal rules: what each matches and clears, its grouping, defaults and summary,
//! as [`SignalSpec`]s for the [`signal`](super::signal) engine. Tuned by the
//! [`RuleTuning`] sections of the configuration.

use herald_core::{EventRecord, NodeChange, ObjectKind, PodChange, Record, RecordBody, Severity};
use jiff::SignedDuration;

use super::signal::{FnMatch, GroupKey, Signal, SignalSpec};
use crate::ClassifierConfig;
use crate::config::RuleTuning;
use crate::duration::signed;
use crate::pods::PodIndex;

/// Names of the built-in signal rules.
pub(crate) const NAMES: [&str; 9] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "FailedScheduling",
    "FailedMount",
    "Unhealthy",
    "JobFailed",
    "NodePressure",
    "NodeRebooted",
    "Evicted",
];

/// A rule's defaults, before tuning.
struct Defaults {
    name: &'static str,
    severity: Severity,
    threshold: u64,
    window: SignedDuration,
    persist: SignedDuration,
    quiet: Option<SignedDuration>,
    critical_after_restarts: Option<u32>,
    group_by: &'static [GroupKey],
    summary: &'static str,
    matcher: fn(&Record, &PodIndex) -> Option<Signal>,
    clear: Option<fn(&Record, &PodIndex) -> Option<Signal>>,
    inhibit: bool,
    skip_deleting: bool,
    distinct_objects: bool,
    absorbed_by: &'static [&'static str],
}

const MIN: i64 = 60;
const RULE_STORM: &str = super::eviction_storm::RULE;
const RULE_NS_STORM: &str = super::eviction_storm::NAMESPACE_RULE;
const RULE_CLUSTER_STORM: &str = super::eviction_storm::CLUSTER_RULE;

fn spec(d: Defaults, t: &RuleTuning) -> Option<SignalSpec> {
    if t.enabled == Some(false) {
        return None;
    }
    let critical = t.critical_after_restarts.or(d.critical_after_restarts);
    Some(SignalSpec {
        name: d.name.to_string(),
        severity: t.severity.unwrap_or(d.severity),
        escalation: critical
            .map(|r| vec![(r, Severity::Critical)])
            .unwrap_or_default(),
        matcher: Box::new(FnMatch(d.matcher)),
        clear: d
            .clear
            .map(|c| Box::new(FnMatch(c)) as Box<dyn super::signal::Match>),
        threshold: t.threshold.map_or(d.threshold, |n| u64::from(n.get())),
        window: t.window.map_or(d.window, signed),
        persist: t.persist.map_or(d.persist, signed),
        quiet: t.resolve_after.map(signed).or(d.quiet),
        group_by: d.group_by.to_vec(),
        summary: d.summary.to_string(),
        inhibit: d.inhibit,
        skip_deleting: d.skip_deleting,
        distinct_objects: d.distinct_objects,
        absorbed_by: d.absorbed_by,
    })
}

/// The enabled built-in signal rules of `cfg`.
pub(crate) fn specs(cfg: &ClassifierConfig) -> Vec<SignalSpec> {
    let secs = SignedDuration::from_secs;
    let owner: &[GroupKey] = &[GroupKey::Owner];
    let all = [
        (
            Defaults {
                name: NAMES[0],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: SignedDuration::ZERO,
                quiet: Some(secs(15 * MIN)),
                critical_after_restarts: Some(10),
                group_by: owner,
                summary: "{subject} is in CrashLoopBackOff: {pods} pod(s), container {container} restarted {restarts} times",
                matcher: crash_loop,
                clear: Some(pod_deleted),
                inhibit: true,
                skip_deleting: true,
                distinct_objects: false,
                absorbed_by: &[super::oom_killed::RULE],
            },
            &cfg.crash_loop,
        ),
        (
            Defaults {
                name: NAMES[1],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: SignedDuration::ZERO,
                quiet: Some(secs(15 * MIN)),
                critical_after_restarts: None,
                group_by: owner,
                summary: "{subject} cannot pull its image ({reason}): {message}",
                matcher: image_pull,
                clear: Some(container_started),
                inhibit: true,
                skip_deleting: true,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.image_pull,
        ),
        (
            Defaults {
                name: NAMES[2],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: secs(2 * MIN),
                quiet: Some(secs(15 * MIN)),
                critical_after_restarts: None,
                group_by: owner,
                summary: "{subject} cannot be scheduled: {message}",
                matcher: failed_scheduling,
                clear: Some(scheduled),
                inhibit: false,
                skip_deleting: true,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.failed_scheduling,
        ),
        (
            Defaults {
                name: NAMES[3],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: secs(MIN),
                quiet: Some(secs(15 * MIN)),
                critical_after_restarts: None,
                group_by: owner,
                summary: "{subject} cannot mount a volume ({reason}): {message}",
                matcher: failed_mount,
                clear: Some(container_started),
                inhibit: true,
                skip_deleting: true,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.failed_mount,
        ),
        (
            Defaults {
                name: NAMES[4],
                severity: Severity::Warning,
                threshold: 3,
                window: secs(5 * MIN),
                persist: SignedDuration::ZERO,
                quiet: Some(secs(10 * MIN)),
                critical_after_restarts: None,
                group_by: owner,
                summary: "{subject} keeps failing its probes ({count} failures): {message}",
                matcher: unhealthy,
                clear: Some(pod_deleted),
                inhibit: true,
                skip_deleting: true,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.probe_failures,
        ),
        (
            Defaults {
                name: NAMES[5],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: SignedDuration::ZERO,
                quiet: Some(secs(60 * MIN)),
                critical_after_restarts: None,
                group_by: &[GroupKey::Object],
                summary: "{subject} failed ({reason}): {message}",
                matcher: job_failed,
                clear: None,
                inhibit: false,
                skip_deleting: false,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.job_failed,
        ),
        (
            Defaults {
                name: NAMES[6],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: secs(30),
                quiet: None,
                critical_after_restarts: None,
                group_by: &[GroupKey::Node, GroupKey::Reason],
                summary: "Node {node} has {reason}: {message}",
                matcher: node_pressure,
                clear: Some(node_pressure_over),
                inhibit: false,
                skip_deleting: false,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.node_pressure,
        ),
        (
            Defaults {
                name: NAMES[7],
                severity: Severity::Warning,
                threshold: 1,
                window: secs(10 * MIN),
                persist: SignedDuration::ZERO,
                quiet: Some(secs(10 * MIN)),
                critical_after_restarts: None,
                group_by: &[GroupKey::Node],
                summary: "Node {node} rebooted",
                matcher: node_rebooted,
                clear: None,
                inhibit: false,
                skip_deleting: false,
                distinct_objects: false,
                absorbed_by: &[],
            },
            &cfg.node_rebooted,
        ),
        (
            Defaults {
                name: NAMES[8],
                severity: Severity::Info,
                threshold: 1,
                window: secs(10 * MIN),
                persist: secs(2 * MIN),
                quiet: Some(secs(10 * MIN)),
                critical_after_restarts: None,
                group_by: owner,
                summary: "{subject}: {count} pod(s) evicted ({message})",
                matcher: evicted,
                clear: None,
                inhibit: true,
                skip_deleting: false,
                distinct_objects: true,
                absorbed_by: &[RULE_STORM, RULE_NS_STORM, RULE_CLUSTER_STORM],
            },
            &cfg.evicted,
        ),
    ];
    all.into_iter().filter_map(|(d, t)| spec(d, t)).collect()
}

fn pod_event(record: &Record) -> Option<&EventRecord> {
    match &record.body {
        RecordBody::Event(e) if record.object.kind == ObjectKind::Pod => Some(e),
        _ => None,
    }
}

fn warning(e: &EventRecord) -> bool {
    e.event_type == "Warning"
}

/// The container named by an Event's field path, `spec.containers{cart}`.
fn field_container(e: &EventRecord) -> Option<String> {
    let path = e.field_path.as_deref()?;
    let start = path.find('{')? + 1;
    let end = path[start..].find('}')? + start;
    Some(path[start..end].to_string()).filter(|c| !c.is_empty())
}

fn event_signal(e: &EventRecord) -> Signal {
    Signal {
        reason: e.reason.clone(),
        container: field_container(e),
        restarts: None,
        weight: u64::from(e.count_delta.max(1)),
        message: e.message.clone(),
    }
}

fn waiting(record: &Record, reasons: &[&str]) -> Option<Signal> {
    let RecordBody::Pod(p) = &record.body else {
        return None;
    };
    match &p.change {
        PodChange::ContainerWaiting {
            container,
            reason,
            message,
            restart_count,
            ..
        } if reasons.contains(&reason.as_str()) => Some(Signal {
            reason: reason.clone(),
            container: Some(container.clone()),
            restarts: Some(*restart_count),
            weight: 1,
            message: message.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

fn crash_loop(record: &Record, _: &PodIndex) -> Option<Signal> {
    if let Some(s) = waiting(record, &["CrashLoopBackOff"]) {
        return Some(s);
    }
    let e = pod_event(record)?;
    (warning(e) && e.reason == "BackOff" && e.message.starts_with("Back-off restarting")).then(
        || Signal {
            reason: "CrashLoopBackOff".to_string(),
            ..event_signal(e)
        },
    )
}

fn image_pull(record: &Record, _: &PodIndex) -> Option<Signal> {
    if let Some(s) = waiting(
        record,
        &["ImagePullBackOff", "ErrImagePull", "InvalidImageName"],
    ) {
        return Some(s);
    }
    let e = pod_event(record)?;
    let pull_failed = (e.reason == "Failed"
        && (e.message.contains("ErrImagePull")
            || e.message.contains("ImagePullBackOff")
            || e.message.starts_with("Failed to pull image")))
        || (e.reason == "BackOff" && e.message.starts_with("Back-off pulling image"))
        || e.reason == "InspectFailed";
    (warning(e) && pull_failed).then(|| {
        let reason = if e.reason == "BackOff" || e.message.contains("ImagePullBackOff") {
            "ImagePullBackOff"
        } else {
            "ErrImagePull"
        };
        Signal {
            reason: reason.to_string(),
            ..event_signal(e)
        }
    })
}

/// A pod was deleted: whatever it had is over.
fn pod_deleted(record: &Record, _: &PodIndex) -> Option<Signal> {
    match &record.body {
        RecordBody::Pod(p) if matches!(p.change, PodChange::Deleted) => Some(Signal::default()),
        _ => None,
    }
}

/// A container started (or the pod runs, or is gone): pulls and mounts worked.
fn container_started(record: &Record, pods: &PodIndex) -> Option<Signal> {
    if let Some(e) = pod_event(record)
        && e.reason == "Started"
        && !warning(e)
    {
        return Some(Signal::default());
    }
    running(record).or_else(|| pod_deleted(record, pods))
}

fn running(record: &Record) -> Option<Signal> {
    match &record.body {
        RecordBody::Pod(p) => match &p.change {
            PodChange::PhaseChanged { to, .. } if to == "Running" || to == "Succeeded" => {
                Some(Signal::default())
            }
            _ => None,
        },
        _ => None,
    }
}

fn failed_scheduling(record: &Record, _: &PodIndex) -> Option<Signal> {
    let e = pod_event(record)?;
    (warning(e) && e.reason == "FailedScheduling").then(|| event_signal(e))
}

/// The pod was scheduled (or runs, or is gone).
fn scheduled(record: &Record, pods: &PodIndex) -> Option<Signal> {
    if let Some(e) = pod_event(record)
        && e.reason == "Scheduled"
    {
        return Some(Signal::default());
    }
    running(record).or_else(|| pod_deleted(record, pods))
}

fn failed_mount(record: &Record, _: &PodIndex) -> Option<Signal> {
    let e = pod_event(record)?;
    (warning(e) && (e.reason == "FailedMount" || e.reason == "FailedAttachVolume"))
        .then(|| event_signal(e))
}

fn unhealthy(record: &Record, _: &PodIndex) -> Option<Signal> {
    let e = pod_event(record)?;
    (warning(e) && e.reason == "Unhealthy").then(|| event_signal(e))
}

fn job_failed(record: &Record, _: &PodIndex) -> Option<Signal> {
    let RecordBody::Event(e) = &record.body else {
        return None;
    };
    (warning(e)
        && record.object.kind.as_str() == "Job"
        && (e.reason == "BackoffLimitExceeded" || e.reason == "DeadlineExceeded"))
        .then(|| event_signal(e))
}

const PRESSURES: [&str; 3] = ["MemoryPressure", "DiskPressure", "PIDPressure"];

fn node_condition(record: &Record) -> Option<(&str, &str, Option<&str>)> {
    match &record.body {
        RecordBody::Node(n) => match &n.change {
            NodeChange::ConditionChanged {
                condition,
                to,
                message,
                ..
            } if PRESSURES.contains(&condition.as_str()) => {
                Some((condition.as_str(), to.as_str(), message.as_deref()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn node_pressure(record: &Record, _: &PodIndex) -> Option<Signal> {
    let (condition, to, message) = node_condition(record)?;
    (to == "True").then(|| Signal {
        reason: condition.to_string(),
        weight: 1,
        message: message.unwrap_or_default().to_string(),
        ..Signal::default()
    })
}

fn node_pressure_over(record: &Record, _: &PodIndex) -> Option<Signal> {
    if let RecordBody::Node(n) = &record.body
        && matches!(n.change, NodeChange::Deleted)
    {
        return Some(Signal::default());
    }
    let (condition, to, _) = node_condition(record)?;
    (to != "True").then(|| Signal {
        reason: condition.to_string(),
        ..Signal::default()
    })
}

fn node_rebooted(record: &Record, _: &PodIndex) -> Option<Signal> {
    match &record.body {
        RecordBody::Node(n) => match &n.change {
            NodeChange::Rebooted { boot_id } => Some(Signal {
                reason: "Rebooted".to_string(),
                weight: 1,
                message: format!("boot id {boot_id}"),
                ..Signal::default()
            }),
            _ => None,
        },
        // The kubelet's own `Rebooted` Event on the node: evidence of the same reboot.
        RecordBody::Event(e)
            if record.object.kind == ObjectKind::Node && e.reason == "Rebooted" =>
        {
            Some(Signal {
                reason: "Rebooted".to_string(),
                weight: 0,
                message: e.message.clone(),
                ..Signal::default()
            })
        }
        _ => None,
    }
}

fn evicted(record: &Record, _: &PodIndex) -> Option<Signal> {
    if record.object.kind != ObjectKind::Pod {
        return None;
    }
    match &record.body {
        RecordBody::Pod(p) => match &p.change {
            PodChange::Evicted { message } => Some(Signal {
                reason: "Evicted".to_string(),
                weight: 1,
                message: message.clone(),
                ..Signal::default()
            }),
            _ => None,
        },
        RecordBody::Event(e) if warning(e) && e.reason == "Evicted" => Some(Signal {
            weight: 1,
            ..event_signal(e)
        }),
        _ => None,
    }
}
