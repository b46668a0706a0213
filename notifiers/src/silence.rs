//! Silence matching: whether a [`Silence`]'s `KEY=VALUE` conditions hold for a notification.
//! Keys name an incident attribute or a label; values are globs (`shop-*`). Pure; the store
//! keeps the silences and the service checks each new notification against the active ones.

use globset::{Glob, GlobMatcher};
use herald_core::{Notification, Silence, SilenceMatcher, Timestamp};

/// The attribute keys a matcher may use; any other key is a label name (`label.NAME` also
/// works, for labels that share a name with an attribute).
pub const ATTRIBUTE_KEYS: [&str; 10] = [
    "rule",
    "severity",
    "namespace",
    "node",
    "cluster",
    "subject",
    "kind",
    "fingerprint",
    "subscription",
    "channel",
];

/// Parses `KEY=VALUE` (VALUE a glob; `KEY` not empty).
pub fn parse_matcher(s: &str) -> Result<SilenceMatcher, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("{s:?}: expected KEY=VALUE, e.g. namespace=shop"));
    };
    let m = SilenceMatcher {
        key: key.trim().to_string(),
        value: value.trim().to_string(),
    };
    check_matcher(&m)?;
    Ok(m)
}

/// Checks one matcher: a non-empty key and a valid glob.
pub fn check_matcher(m: &SilenceMatcher) -> Result<(), String> {
    if m.key.is_empty() || m.key == "label." {
        return Err(format!("{}={}: the key is empty", m.key, m.value));
    }
    Glob::new(&m.value)
        .map(|_| ())
        .map_err(|e| format!("{}={}: invalid glob: {e}", m.key, m.value))
}

/// The value of `key` for `n`, if it has one.
fn value_of(n: &Notification, key: &str) -> Option<String> {
    let i = &n.change.incident;
    let v = match key {
        "rule" => i.rule.clone(),
        "severity" => i.severity.as_str().to_string(),
        "namespace" => i.namespace.clone()?,
        "node" => i.node.clone()?,
        "cluster" => i.cluster.clone(),
        "subject" => i.subject.key(),
        "kind" => i.subject.kind.as_str().to_string(),
        "fingerprint" => i.fingerprint.clone(),
        "subscription" => n.subscription.clone(),
        "channel" => n.channel.clone(),
        other => {
            let label = other.strip_prefix("label.").unwrap_or(other);
            i.labels.get(label)?.clone()
        }
    };
    Some(v)
}

fn glob(value: &str) -> Option<GlobMatcher> {
    Glob::new(value).ok().map(|g| g.compile_matcher())
}

/// Whether every matcher of `s` holds for `n` (a silence without matchers matches nothing).
pub fn matches(s: &Silence, n: &Notification) -> bool {
    !s.matchers.is_empty()
        && s.matchers.iter().all(|m| {
            let Some(v) = value_of(n, &m.key) else {
                return false;
            };
            glob(&m.value).is_some_and(|g| g.is_match(&v))
        })
}

/// The first silence of `silences` active at `now` that matches `n`.
pub fn silenced_by<'a>(
    silences: &'a [Silence],
    n: &Notification,
    now: Timestamp,
) -> Option<&'a Silence> {
    silences.iter().find(|s| s.is_active(now) && matches(s, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{change, notification};
    use herald_core::{Severity, Transition};

    fn silence(matchers: &[&str]) -> Silence {
        let t: Timestamp = "2025-06-01T11:00:00Z".parse().unwrap();
        Silence {
            id: "s".into(),
            matchers: matchers.iter().map(|m| parse_matcher(m).unwrap()).collect(),
            starts_at: t,
            ends_at: "2025-06-01T13:00:00Z".parse().unwrap(),
            comment: String::new(),
            created_by: String::new(),
            created_at: t,
        }
    }

    #[test]
    fn matcher_table() {
        let mut n = notification("slack");
        n.change = change(
            "OOMKilled",
            Severity::Warning,
            Some("shop"),
            Transition::Opened,
        );
        n.change.incident.labels.insert("app".into(), "cart".into());
        let cases: &[(&[&str], bool)] = &[
            (&["namespace=shop"], true),
            (&["namespace=sh*"], true),
            (&["namespace=billing"], false),
            (&["rule=OOM*", "namespace=shop"], true),
            (&["rule=OOM*", "namespace=billing"], false),
            (&["severity=warning"], true),
            (&["severity=critical"], false),
            (&["app=cart"], true),
            (&["label.app=c?rt"], true),
            (&["app=web"], false),
            (&["missing=x"], false),
            (&["node=node-b", "cluster=prod"], true),
            (&["subject=shop/cart-1", "kind=Pod"], true),
            (&["subscription=sre", "channel=slack"], true),
            (&["channel=email"], false),
            (&[], false),
        ];
        for (m, want) in cases {
            assert_eq!(matches(&silence(m), &n), *want, "{m:?}");
        }
    }

    #[test]
    fn only_active_silences_apply() {
        let n = notification("slack");
        let s = vec![silence(&["rule=NodeNotReady"])];
        let inside: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
        let after: Timestamp = "2025-06-01T13:00:00Z".parse().unwrap();
        assert_eq!(
            silenced_by(&s, &n, inside).map(|s| s.id.as_str()),
            Some("s")
        );
        assert!(silenced_by(&s, &n, after).is_none());
    }

    #[test]
    fn bad_matchers_are_rejected() {
        for bad in ["namespace", "=shop", "rule=[oops"] {
            assert!(parse_matcher(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_matcher(" ns = shop ").unwrap().value, "shop");
    }
}
