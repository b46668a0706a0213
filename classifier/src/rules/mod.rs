//! The rule interface and the built-in rules, one module each. A rule turns records into
//! incident lifecycle calls on the [`Book`]: it decides what opens, what supports an open
//! incident, what is material, and when its timers resolve; the book does the bookkeeping and
//! the debounce. Adding a rule = one module implementing [`Rule`] plus one line in
//! [`build`].

use std::collections::BTreeMap;

use herald_core::{Incident, IncidentId, IncidentState, ObjectRef, Record, Severity, Timestamp};

use crate::ClassifierConfig;
use crate::book::Book;

pub(crate) mod builtin;
pub(crate) mod eviction_storm;
pub(crate) mod node_not_ready;
pub(crate) mod oom_killed;
pub(crate) mod signal;

/// One incident rule.
pub(crate) trait Rule: std::fmt::Debug + Send {
    /// The rule name stored in [`Incident::rule`], e.g. `NodeNotReady`.
    fn name(&self) -> &str;

    /// Handles one record that happened at `at` (never after `now`), seen at `now`.
    fn on_record(&mut self, record: &Record, at: Timestamp, now: Timestamp, book: &mut Book);

    /// Fires the timers due at `now` (grace periods, quiet periods) and forgets expired state.
    fn on_time(&mut self, now: Timestamp, book: &mut Book);

    /// Rebuilds the rule's own state for an open incident of this rule restored from the store
    /// (the incident itself is already in the book).
    fn restore(&mut self, _incident: &Incident) {}
}

/// The enabled built-in rules for `cfg`, in evaluation order.
pub(crate) fn build(cfg: &ClassifierConfig) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    if cfg.node_not_ready.enabled {
        rules.push(Box::new(node_not_ready::NodeNotReady::new(
            &cfg.node_not_ready,
        )));
    }
    if cfg.oom_killed.enabled {
        rules.push(Box::new(oom_killed::OomKilled::new(&cfg.oom_killed)));
    }
    use eviction_storm::{EvictionStorm, Scope};
    for (c, scope) in [
        (&cfg.eviction_storm, Scope::Node),
        (&cfg.namespace_eviction_storm, Scope::Namespace),
        (&cfg.cluster_eviction_storm, Scope::Cluster),
    ] {
        if c.enabled {
            rules.push(Box::new(EvictionStorm::new(c, scope)));
        }
    }
    for spec in builtin::specs(cfg) {
        rules.push(Box::new(signal::SignalRule::new(spec)));
    }
    for r in cfg.rules.iter().filter(|r| r.enabled != Some(false)) {
        match crate::yaml::compile(r) {
            Ok(spec) => rules.push(Box::new(signal::SignalRule::new(spec))),
            Err(issues) => {
                // Configs are validated at load; a rule that still fails is left out, loudly.
                for issue in issues {
                    tracing::warn!(rule = %r.name.value, line = issue.line, column = issue.column, problem = %issue.message, "invalid rule skipped");
                }
            }
        }
    }
    rules
}

/// Names of every built-in rule, enabled or not.
pub(crate) const BUILT_IN: [&str; 14] = [
    node_not_ready::RULE,
    oom_killed::RULE,
    eviction_storm::RULE,
    eviction_storm::NAMESPACE_RULE,
    eviction_storm::CLUSTER_RULE,
    builtin::NAMES[0],
    builtin::NAMES[1],
    builtin::NAMES[2],
    builtin::NAMES[3],
    builtin::NAMES[4],
    builtin::NAMES[5],
    builtin::NAMES[6],
    builtin::NAMES[7],
    builtin::NAMES[8],
];

/// A fresh open incident with the identity fields set, opened at `now`; the rule fills in the
/// rest (summary, node, namespace, count, objects, records, labels).
pub(crate) fn new_incident(
    rule: &str,
    fingerprint: String,
    severity: Severity,
    cluster: &str,
    subject: ObjectRef,
    first_seen: Timestamp,
    now: Timestamp,
) -> Incident {
    Incident {
        id: IncidentId::new(&fingerprint, now),
        fingerprint,
        rule: rule.to_string(),
        severity,
        state: IncidentState::Open,
        cluster: cluster.to_string(),
        subject,
        namespace: None,
        node: None,
        summary: String::new(),
        first_seen,
        last_seen: first_seen,
        resolved_at: None,
        count: 0,
        objects: Vec::new(),
        records: Vec::new(),
        labels: BTreeMap::new(),
    }
}

/// The node a record is about: the object itself for a Node, else the record's node.
pub(crate) fn node_of(record: &Record) -> Option<&str> {
    match record.object.kind {
        herald_core::ObjectKind::Node => Some(record.object.name.as_str()),
        _ => record.node.as_deref().filter(|n| !n.is_empty()),
    }
}

/// The first sentence of a Kubernetes message ("The node was low on resource: memory."),
/// for summaries.
pub(crate) fn first_sentence(message: &str) -> &str {
    let message = message.trim();
    match message.find(". ") {
        Some(i) => &message[..=i],
        None => message,
    }
}
