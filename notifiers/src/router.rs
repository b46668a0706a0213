//! Subscription routing: which (subscription, channel) pairs an incident transition goes to.
//! Pure and synchronous; globs are compiled once in [`Router::new`].

use std::collections::BTreeSet;

use globset::GlobSet;
use herald_core::{IncidentChange, Severity, Transition};

use crate::config::{SubscriptionConfig, compile_globs};
use crate::error::NotifyError;

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
}

impl Router {
    /// Compiles the subscriptions. Fails on an invalid glob or a duplicate subscription name
    /// (which would make notification ids collide). Unknown channels are not checked here:
    /// see [`validate`](crate::validate).
    pub fn new(subs: &[SubscriptionConfig]) -> Result<Self, NotifyError> {
        let mut names = BTreeSet::new();
        let mut compiled = Vec::with_capacity(subs.len());
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
            });
        }
        Ok(Self { subs: compiled })
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
