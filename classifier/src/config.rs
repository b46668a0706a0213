//! The `classifier:` section of the user's configuration: which built-in rules run, their
//! timings and severities. Every field has a default, so an absent section (or field) means
//! "the defaults"; unknown fields are rejected so typos surface in `herald validate`.

use std::num::NonZeroU32;
use std::time::Duration;

use std::path::PathBuf;

use herald_core::Severity;
use serde::{Deserialize, Serialize};

use crate::yaml::RuleSpec;

/// The `classifier:` section.
///
/// ```yaml
/// classifier:
///   update_interval: 10s
///   node_not_ready: { enabled: true, grace: 30s, severity: critical }
///   oom_killed: { enabled: true, severity: warning, resolve_after: 10m }
///   eviction_storm: { enabled: true, threshold: 5, window: 2m, quiet: 5m, severity: critical }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// The NodeNotReady rule.
    pub node_not_ready: NodeNotReadyConfig,
    /// The OOMKilled rule.
    pub oom_killed: OomKilledConfig,
    /// The EvictionStorm rule (per node).
    pub eviction_storm: EvictionStormConfig,
    /// The NamespaceEvictionStorm rule: evictions counted per namespace. Fields not given
    /// take the defaults of `eviction_storm` (5 in 2m, quiet 5m, critical).
    pub namespace_eviction_storm: EvictionStormConfig,
    /// The ClusterEvictionStorm rule: evictions counted over the whole cluster. Default
    /// threshold 20 (other fields as `eviction_storm`).
    pub cluster_eviction_storm: EvictionStormConfig,
    /// CrashLoopBackOff (containers waiting in CrashLoopBackOff, kubelet back-off Events),
    /// grouped by workload; escalates to critical by restart count.
    pub crash_loop: RuleTuning,
    /// ImagePullBackOff (ImagePullBackOff / ErrImagePull / InvalidImageName), by workload.
    pub image_pull: RuleTuning,
    /// FailedScheduling that persists (`for`), by workload; cleared when the pod is scheduled.
    pub failed_scheduling: RuleTuning,
    /// FailedMount / FailedAttachVolume that persists, by workload.
    pub failed_mount: RuleTuning,
    /// Repeated probe failures (`Unhealthy` Events), by workload.
    pub probe_failures: RuleTuning,
    /// JobFailed: `BackoffLimitExceeded` / `DeadlineExceeded` on a Job.
    pub job_failed: RuleTuning,
    /// NodePressure: `MemoryPressure` / `DiskPressure` / `PIDPressure` True on a node.
    pub node_pressure: RuleTuning,
    /// NodeRebooted: the node's boot id changed.
    pub node_rebooted: RuleTuning,
    /// Evicted: single evictions, by workload (info).
    pub evicted: RuleTuning,
    /// User rules written in YAML (see docs/rules.md).
    pub rules: Vec<RuleSpec>,
    /// Files of more YAML rules (`rules:` lists), relative to the config file; read and checked
    /// by the binary when the config is loaded.
    pub rule_files: Vec<PathBuf>,
    /// An open incident that changes materially (more pods in a storm, a new reason) is
    /// re-announced as `updated` at most once per this interval; changes in between are folded
    /// into the next announcement. Repeats that only raise the count are never announced.
    /// Default `10s`.
    #[serde(with = "crate::duration::serde_str")]
    pub update_interval: Duration,
}

impl ClassifierConfig {
    /// Every problem of the inline `rules:` (see [`crate::validate_rules`]); positions are
    /// those of the text the section was read from.
    pub fn validate(&self) -> Vec<crate::RuleIssue> {
        crate::validate_rules(&self.rules)
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            node_not_ready: NodeNotReadyConfig::default(),
            oom_killed: OomKilledConfig::default(),
            eviction_storm: EvictionStormConfig::default(),
            namespace_eviction_storm: EvictionStormConfig::default(),
            cluster_eviction_storm: EvictionStormConfig {
                threshold: NonZeroU32::MIN.saturating_add(19),
                ..EvictionStormConfig::default()
            },
            crash_loop: RuleTuning::default(),
            image_pull: RuleTuning::default(),
            failed_scheduling: RuleTuning::default(),
            failed_mount: RuleTuning::default(),
            probe_failures: RuleTuning::default(),
            job_failed: RuleTuning::default(),
            node_pressure: RuleTuning::default(),
            node_rebooted: RuleTuning::default(),
            evicted: RuleTuning::default(),
            rules: Vec::new(),
            rule_files: Vec::new(),
            update_interval: Duration::from_secs(10),
        }
    }
}

/// `classifier.node_not_ready`: a node whose `Ready` condition stays `False` or `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeNotReadyConfig {
    /// Whether the rule runs. Default `true`.
    pub enabled: bool,
    /// How long `Ready` must stay non-`True` before an incident opens; a flap shorter than
    /// this produces nothing. Default `30s`.
    #[serde(with = "crate::duration::serde_str")]
    pub grace: Duration,
    /// Severity of the incident. Default `critical`.
    pub severity: Severity,
}

impl Default for NodeNotReadyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grace: Duration::from_secs(30),
            severity: Severity::Critical,
        }
    }
}

/// `classifier.oom_killed`: a container killed for exceeding its memory limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OomKilledConfig {
    /// Whether the rule runs. Default `true`.
    pub enabled: bool,
    /// Severity of the incident. Default `warning`.
    pub severity: Severity,
    /// The incident resolves once the container has gone this long without another kill.
    /// Default `10m`.
    #[serde(with = "crate::duration::serde_str")]
    pub resolve_after: Duration,
}

impl Default for OomKilledConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Warning,
            resolve_after: Duration::from_secs(600),
        }
    }
}

/// `classifier.eviction_storm`: many pods evicted from one node in a short time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvictionStormConfig {
    /// Whether the rule runs. Default `true`.
    pub enabled: bool,
    /// How many distinct evictions on one node within `window` make a storm (at least 1).
    /// Default `5`.
    pub threshold: NonZeroU32,
    /// The window: evictions whose times differ by at most this much (inclusive) count
    /// together. Default `2m`.
    #[serde(with = "crate::duration::serde_str")]
    pub window: Duration,
    /// The storm resolves once the node has gone this long without a new eviction.
    /// Default `5m`.
    #[serde(with = "crate::duration::serde_str")]
    pub quiet: Duration,
    /// Severity of the incident. Default `critical`.
    pub severity: Severity,
}

impl Default for EvictionStormConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: NonZeroU32::MIN.saturating_add(4),
            window: Duration::from_secs(120),
            quiet: Duration::from_secs(300),
            severity: Severity::Critical,
        }
    }
}

/// Tuning of a built-in signal rule. Every field is optional; an unset field takes that rule's
/// default (listed in classifier/README.md and docs/rules.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleTuning {
    /// Whether the rule runs (default `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Severity at opening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Occurrences within `window` that open an incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<NonZeroU32>,
    /// The counting window (inclusive).
    #[serde(
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// How long the problem must persist (not cleared) before the incident opens.
    #[serde(
        rename = "for",
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub persist: Option<Duration>,
    /// Resolves after this long without an occurrence.
    #[serde(
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolve_after: Option<Duration>,
    /// The severity becomes `critical` once a container has restarted this often (rules that
    /// see restart counts: crash_loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical_after_restarts: Option<u32>,
}
