//! The `classifier:` section of the user's configuration: which built-in rules run, their
//! timings and severities. Every field has a default, so an absent section (or field) means
//! "the defaults"; unknown fields are rejected so typos surface in `herald validate`.

use std::num::NonZeroU32;
use std::time::Duration;

use herald_core::Severity;
use serde::{Deserialize, Serialize};

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
    /// The EvictionStorm rule.
    pub eviction_storm: EvictionStormConfig,
    /// An open incident that changes materially (more pods in a storm, a new reason) is
    /// re-announced as `updated` at most once per this interval; changes in between are folded
    /// into the next announcement. Repeats that only raise the count are never announced.
    /// Default `10s`.
    #[serde(with = "crate::duration::serde_str")]
    pub update_interval: Duration,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            node_not_ready: NodeNotReadyConfig::default(),
            oom_killed: OomKilledConfig::default(),
            eviction_storm: EvictionStormConfig::default(),
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
