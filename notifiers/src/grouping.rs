//! Subscription timing, Alertmanager style: `group_by` (which incident attributes form a
//! group), `group_wait`, `group_interval`, `repeat_interval`, plus the semantic checks of a
//! subscription's newer fields (grouping, label matchers, quiet hours, `who`) for
//! [`validate`](crate::validate).
//!
//! - Notifications whose incidents share the values of `group_by` form a group. The first of
//!   a group waits `group_wait` for others; then the group goes out as one message (a digest
//!   of the group). Later notifications of the group wait until `group_interval` after the
//!   previous message of the group.
//! - `repeat_interval` limits how often *updates* of one still-open incident are announced to
//!   a subscription: an update within `repeat_interval` of the previous notification of the
//!   same incident is not announced (it is in the incident's change log). Opened and resolved
//!   transitions always are.
//! - Without `group_by` nothing is grouped and `group_wait`/`group_interval` do not apply.

use std::time::Duration;

use globset::Glob;
use herald_core::IncidentChange;

use crate::config::{ConfigIssue, SubscriptionConfig};
use crate::quiet::QuietHours;

/// Attribute names `group_by` understands; any other name is a label.
pub const GROUP_ATTRIBUTES: [&str; 7] = [
    "rule",
    "namespace",
    "node",
    "cluster",
    "severity",
    "subject",
    "kind",
];

/// The compiled timing of one subscription.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// Attributes forming the group key (empty: no grouping).
    pub group_by: Vec<String>,
    /// Wait of a new group's first notification.
    pub group_wait: Duration,
    /// Least time between two messages of one group.
    pub group_interval: Duration,
    /// Least time between two announced updates of one incident.
    pub repeat_interval: Duration,
}

impl Timing {
    /// The timing of `sub`.
    pub fn of(sub: &SubscriptionConfig) -> Self {
        Self {
            group_by: sub.group_by.iter().map(|g| g.value.clone()).collect(),
            group_wait: sub.group_wait.unwrap_or_default(),
            group_interval: sub.group_interval.unwrap_or_default(),
            repeat_interval: sub.repeat_interval.unwrap_or_default(),
        }
    }

    /// The group key of `change` (`None` without `group_by`), e.g.
    /// `team-a|rule=OOMKilled,namespace=shop`.
    pub fn group_key(&self, subscription: &str, change: &IncidentChange) -> Option<String> {
        if self.group_by.is_empty() {
            return None;
        }
        let i = &change.incident;
        let parts: Vec<String> = self
            .group_by
            .iter()
            .map(|k| {
                let v = match k.as_str() {
                    "rule" => i.rule.clone(),
                    "namespace" => i.namespace.clone().unwrap_or_default(),
                    "node" => i.node.clone().unwrap_or_default(),
                    "cluster" => i.cluster.clone(),
                    "severity" => i.severity.as_str().to_string(),
                    "subject" => i.subject.key(),
                    "kind" => i.subject.kind.as_str().to_string(),
                    label => i.labels.get(label).cloned().unwrap_or_default(),
                };
                format!("{k}={v}")
            })
            .collect();
        Some(format!("{subscription}|{}", parts.join(",")))
    }
}

/// Semantic problems of subscription number `i`'s grouping, label matchers, quiet hours and
/// `who`, with positions where known.
pub fn subscription_issues(i: usize, sub: &SubscriptionConfig) -> Vec<ConfigIssue> {
    let name = sub.name.value.as_str();
    let at = |field: &str| format!("subscriptions[{i}] ({name:?}).{field}");
    let mut issues = Vec::new();
    if let Some(who) = sub.who.as_ref().filter(|w| w.value.trim().is_empty()) {
        issues.push(ConfigIssue::new(
            at("who"),
            Some(&who.referenced),
            "who must not be empty (leave it out to use the name)",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (j, g) in sub.group_by.iter().enumerate() {
        if g.value.trim().is_empty() {
            issues.push(ConfigIssue::new(
                at(&format!("group_by[{j}]")),
                Some(&g.referenced),
                "empty group_by key",
            ));
        } else if !seen.insert(g.value.as_str()) {
            issues.push(ConfigIssue::new(
                at(&format!("group_by[{j}]")),
                Some(&g.referenced),
                format!("{:?} is listed twice", g.value),
            ));
        }
    }
    if sub.group_by.is_empty() {
        for (field, v) in [
            ("group_wait", sub.group_wait),
            ("group_interval", sub.group_interval),
        ] {
            if v.is_some_and(|d| !d.is_zero()) {
                issues.push(ConfigIssue::new(
                    at(field),
                    Some(&sub.name.referenced),
                    format!("{field} needs group_by (e.g. group_by: [rule, namespace])"),
                ));
            }
        }
    }
    for (key, g) in &sub.matcher.labels {
        if key.trim().is_empty() {
            issues.push(ConfigIssue::new(
                at("match.labels"),
                Some(&g.referenced),
                "empty label name",
            ));
        }
        if let Err(e) = Glob::new(&g.value) {
            issues.push(ConfigIssue::new(
                at(&format!("match.labels.{key}")),
                Some(&g.referenced),
                format!("invalid glob: {e}"),
            ));
        }
    }
    if let Some(Err(errs)) = sub.quiet_hours.as_ref().map(QuietHours::compile) {
        for (field, loc, message) in errs {
            issues.push(ConfigIssue::new(
                at(&format!("quiet_hours.{field}")),
                loc.as_ref(),
                message,
            ));
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::change;
    use herald_core::{Severity, Transition};

    #[test]
    fn group_keys_follow_group_by() {
        let sub: SubscriptionConfig = serde_saphyr::from_str(
            "{ name: a, channels: [c], group_by: [rule, namespace, app], group_wait: 30s }",
        )
        .unwrap();
        let t = Timing::of(&sub);
        assert_eq!(t.group_wait, Duration::from_secs(30));
        let mut c = change(
            "OOMKilled",
            Severity::Warning,
            Some("shop"),
            Transition::Opened,
        );
        c.incident.labels.insert("app".into(), "cart".into());
        assert_eq!(
            t.group_key("a", &c).as_deref(),
            Some("a|rule=OOMKilled,namespace=shop,app=cart")
        );
        let none = Timing::of(&SubscriptionConfig::new("b", &["c"]));
        assert_eq!(none.group_key("b", &c), None);
    }

    #[test]
    fn every_timing_problem_is_reported_with_its_line() {
        let subs: Vec<SubscriptionConfig> = serde_saphyr::from_str(
            r#"
- name: a
  who: ""
  channels: [c]
  group_wait: 30s
  match:
    labels: { app: "[oops" }
  quiet_hours:
    timezone: Nowhere/Special
    windows: [{ days: [mon], start: "9", end: "17:00" }]
- name: b
  channels: [c]
  group_by: [rule, rule]
"#,
        )
        .unwrap();
        let mut issues = subscription_issues(0, &subs[0]);
        issues.extend(subscription_issues(1, &subs[1]));
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(issues.len(), 6, "{text:#?}");
        let find = |needle: &str| {
            issues
                .iter()
                .find(|i| i.message.contains(needle))
                .unwrap_or_else(|| panic!("{needle} not in {text:#?}"))
        };
        assert_eq!(find("who must not be empty").line, Some(3));
        assert_eq!(find("group_wait needs group_by").line, Some(2));
        assert_eq!(find("match.labels.app").line, Some(7));
        assert_eq!(find("unknown time zone").line, Some(9));
        assert_eq!(find("quiet_hours.windows[0].start").line, Some(10));
        assert_eq!(find("listed twice").line, Some(13));
    }
}
