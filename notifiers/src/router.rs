//! Subscription routing: which (subscription, channel) pairs an incident transition goes to,
//! matching on rules, severity, namespaces, labels, nodes and clusters (globs), and each
//! subscription's delivery [`Policy`] (who it is for, quiet hours, grouping). Pure and
//! synchronous; globs and quiet hours are compiled once in [`Router::new`].

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher, GlobSet};
use herald_core::{IncidentChange, Severity, Transition};

use crate::config::{SubscriptionConfig, compile_globs};
use crate::error::NotifyError;
use crate::grouping::Timing;
use crate::quiet::QuietHours;

/// How a subscription's notifications are delivered.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Who it is for (`who:`, else the subscription's name).
    pub who: String,
    /// Quiet hours, if any.
    pub quiet: Option<QuietHours>,
    /// Grouping and repeat timing.
    pub timing: Timing,
}

/// Where one notification goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The subscription that matched.
    pub subscription: String,
    /// The channel to notify.
    pub channel: String,
}

/// Compiled subscriptions.
#[derive(Debug, Clone, Default)]
pub struct Router {
    subs: Vec<Compiled>,
    policies: BTreeMap<String, Policy>,
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    rules: Option<GlobSet>,
    namespaces: Option<GlobSet>,
    min_severity: Option<Severity>,
    cluster_scoped: bool,
    send_resolved: bool,
    channels: Vec<String>,
    labels: Vec<(String, GlobMatcher)>,
    nodes: Option<GlobSet>,
    clusters: Option<GlobSet>,
}

impl Router {
    /// Compiles the subscriptions. Fails on an invalid glob or a duplicate subscription name
    /// (which would make notification ids collide). Unknown channels are not checked here:
    /// see [`validate`](crate::validate).
    pub fn new(subs: &[SubscriptionConfig]) -> Result<Self, NotifyError> {
        let mut names = BTreeSet::new();
        let mut compiled = Vec::with_capacity(subs.len());
        let mut policies = BTreeMap::new();
        for s in subs {
            let name = s.name.value.clone();
            if !names.insert(name.clone()) {
                return Err(NotifyError::DuplicateSubscription { subscription: name });
            }
            let glob = |field: &'static str, pats| {
                compile_globs(pats).map_err(|(_, message)| NotifyError::InvalidGlob {
                    subscription: name.clone(),
                    field,
                    message,
                })
            };
            let rules = glob("match.rules", &s.matcher.rules)?;
            let namespaces = glob("match.namespaces", &s.matcher.namespaces)?;
            let nodes = glob("match.nodes", &s.matcher.nodes)?;
            let clusters = glob("match.clusters", &s.matcher.clusters)?;
            let mut labels = Vec::new();
            for (k, v) in &s.matcher.labels {
                let g = Glob::new(&v.value).map_err(|e| NotifyError::InvalidGlob {
                    subscription: name.clone(),
                    field: "match.labels",
                    message: e.to_string(),
                })?;
                labels.push((k.clone(), g.compile_matcher()));
            }
            let quiet = match &s.quiet_hours {
                Some(q) => Some(QuietHours::compile(q).map_err(|errs| {
                    NotifyError::InvalidSubscription {
                        subscription: name.clone(),
                        message: errs
                            .iter()
                            .map(|(f, _, m)| format!("quiet_hours.{f}: {m}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    }
                })?),
                None => None,
            };
            policies.insert(
                name.clone(),
                Policy {
                    who: s
                        .who
                        .as_ref()
                        .map(|w| w.value.clone())
                        .unwrap_or_else(|| name.clone()),
                    quiet,
                    timing: Timing::of(s),
                },
            );
            let mut channels: Vec<String> = Vec::new();
            for c in &s.channels {
                if !channels.contains(&c.value) {
                    channels.push(c.value.clone());
                }
            }
            compiled.push(Compiled {
                name,
                rules,
                namespaces,
                min_severity: s.matcher.min_severity,
                cluster_scoped: s.matcher.cluster_scoped,
                send_resolved: s.send_resolved,
                channels,
                labels,
                nodes,
                clusters,
            });
        }
        Ok(Self {
            subs: compiled,
            policies,
        })
    }

    /// The delivery policy of the subscription called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// The routes of `change`, in subscription order then channel order. Resolved transitions
    /// go only to subscriptions with `send_resolved`.
    pub fn route(&self, change: &IncidentChange) -> Vec<Route> {
        let mut routes = Vec::new();
        for s in &self.subs {
            if s.matches(change) {
                tracing::trace!(subscription = %s.name, incident = %change.incident.id, "subscription matched");
                routes.extend(s.channels.iter().map(|c| Route {
                    subscription: s.name.clone(),
                    channel: c.clone(),
                }));
            }
        }
        routes
    }
}

impl Compiled {
    fn matches(&self, change: &IncidentChange) -> bool {
        let i = &change.incident;
        if change.transition == Transition::Resolved && !self.send_resolved {
            return false;
        }
        if self.min_severity.is_some_and(|min| i.severity < min) {
            return false;
        }
        if self.rules.as_ref().is_some_and(|g| !g.is_match(&i.rule)) {
            return false;
        }
        if self
            .clusters
            .as_ref()
            .is_some_and(|g| !g.is_match(&i.cluster))
        {
            return false;
        }
        if let Some(g) = &self.nodes
            && !i.node.as_ref().is_some_and(|n| g.is_match(n))
        {
            return false;
        }
        for (k, g) in &self.labels {
            if !i.labels.get(k).is_some_and(|v| g.is_match(v)) {
                return false;
            }
        }
        match &i.namespace {
            Some(ns) => self.namespaces.as_ref().is_none_or(|g| g.is_match(ns)),
            None => self.cluster_scoped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::change;

    fn router(yaml: &str) -> Router {
        let subs: Vec<SubscriptionConfig> = serde_saphyr::from_str(yaml).unwrap();
        Router::new(&subs).unwrap()
    }

    fn routed(r: &Router, c: &IncidentChange) -> Vec<String> {
        r.route(c)
            .into_iter()
            .map(|r| format!("{}->{}", r.subscription, r.channel))
            .collect()
    }

    #[test]
    fn routing_table() {
        let r = router(
            r#"
- name: sre
  match: { rules: ["NodeNotReady", "OOM*"], min_severity: warning, namespaces: ["shop", "kube-*"] }
  channels: [console, hook, console]
- name: shop-only
  match: { namespaces: ["shop"], cluster_scoped: false }
  channels: [shop]
  send_resolved: false
- name: critical
  match: { min_severity: critical }
  channels: [pager]
"#,
        );
        use Severity::*;
        use Transition::*;
        type Case<'a> = (
            &'a str,
            Severity,
            Option<&'a str>,
            Transition,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            // rule globs, namespaces, cluster-scoped default
            (
                "NodeNotReady",
                Critical,
                None,
                Opened,
                &["sre->console", "sre->hook", "critical->pager"],
            ),
            (
                "OOMKilled",
                Warning,
                Some("shop"),
                Opened,
                &["sre->console", "sre->hook", "shop-only->shop"],
            ),
            (
                "OOMKilled",
                Warning,
                Some("kube-system"),
                Updated,
                &["sre->console", "sre->hook"],
            ),
            ("OOMKilled", Warning, Some("billing"), Opened, &[]),
            (
                "EvictionStorm",
                Warning,
                Some("shop"),
                Opened,
                &["shop-only->shop"],
            ),
            // severity below minimum
            (
                "OOMKilled",
                Info,
                Some("shop"),
                Opened,
                &["shop-only->shop"],
            ),
            ("OOMKilled", Info, Some("kube-public"), Opened, &[]),
            // resolved only where send_resolved (default true)
            (
                "OOMKilled",
                Warning,
                Some("shop"),
                Resolved,
                &["sre->console", "sre->hook"],
            ),
            (
                "NodeNotReady",
                Critical,
                None,
                Resolved,
                &["sre->console", "sre->hook", "critical->pager"],
            ),
            // globs are case-sensitive and anchored
            (
                "oomkilled",
                Critical,
                Some("shop"),
                Opened,
                &["shop-only->shop", "critical->pager"],
            ),
            (
                "XOOMKilled",
                Warning,
                Some("shop"),
                Opened,
                &["shop-only->shop"],
            ),
        ];
        for (rule, sev, ns, tr, want) in cases {
            let c = change(rule, *sev, *ns, *tr);
            assert_eq!(routed(&r, &c), *want, "{rule} {sev} {ns:?} {tr}");
        }
    }

    #[test]
    fn empty_match_matches_everything_and_cluster_scoped_false_drops_nodes() {
        let r = router(
            "- { name: all, channels: [c] }\n- { name: ns, channels: [d], match: { cluster_scoped: false } }",
        );
        let node = change("NodeNotReady", Severity::Info, None, Transition::Opened);
        assert_eq!(routed(&r, &node), ["all->c"]);
        let pod = change("Anything", Severity::Info, Some("x"), Transition::Resolved);
        assert_eq!(routed(&r, &pod), ["all->c", "ns->d"]);
    }

    #[test]
    fn new_rejects_bad_globs_and_duplicate_names() {
        let subs: Vec<SubscriptionConfig> =
            serde_saphyr::from_str("- { name: a, channels: [c], match: { rules: ['[oops'] } }")
                .unwrap();
        let e = Router::new(&subs).unwrap_err().to_string();
        assert!(e.contains("match.rules") && e.contains("\"a\""), "{e}");
        let subs = [
            SubscriptionConfig::new("a", &["c"]),
            SubscriptionConfig::new("a", &["d"]),
        ];
        assert!(Router::new(&subs).is_err());
        assert!(
            Router::new(&[])
                .unwrap()
                .route(&change("X", Severity::Critical, None, Transition::Opened))
                .is_empty()
        );
    }
}

#[cfg(test)]
mod match_tests {
    use super::*;
    use crate::testutil::change;

    #[test]
    fn labels_nodes_and_clusters_table() {
        let subs: Vec<SubscriptionConfig> = serde_saphyr::from_str(
            r#"
- name: cart-team
  who: "Cart team (cart-oncall@example.com)"
  match: { labels: { app: "cart*" } }
  channels: [c]
- name: node-b-owner
  match: { nodes: ["node-b"] }
  channels: [c]
- name: staging
  match: { clusters: ["staging-*"] }
  channels: [c]
"#,
        )
        .unwrap();
        let r = Router::new(&subs).unwrap();
        let mut c = change(
            "OOMKilled",
            Severity::Warning,
            Some("shop"),
            Transition::Opened,
        );
        let names = |r: &Router, c: &IncidentChange| {
            r.route(c)
                .into_iter()
                .map(|r| r.subscription)
                .collect::<Vec<_>>()
        };
        // cluster "prod", node-b, no labels
        assert_eq!(names(&r, &c), ["node-b-owner"]);
        c.incident.labels.insert("app".into(), "cart-api".into());
        c.incident.node = Some("node-a".into());
        c.incident.cluster = "staging-eu".into();
        assert_eq!(names(&r, &c), ["cart-team", "staging"]);
        c.incident.node = None;
        c.incident.labels.insert("app".into(), "web".into());
        assert_eq!(names(&r, &c), ["staging"]);
        assert_eq!(
            r.policy("cart-team").map(|p| p.who.as_str()),
            Some("Cart team (cart-oncall@example.com)")
        );
        assert_eq!(r.policy("staging").map(|p| p.who.as_str()), Some("staging"));
        assert!(r.policy("nope").is_none());
    }
}
