//! LIST semantics: query options, resourceVersion / resourceVersionMatch handling,
//! `limit`/`continue` pagination over a consistent snapshot, and continue tokens in the
//! apiserver's format (`base64url({"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"})`).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::resource::Resource;
use crate::selectors::Selector;
use crate::stats::ReadSource;
use crate::store::{Store, StoredObject};

/// Parsed list/watch query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`NotOlderThan` / `Exact`).
    pub resource_version_match: Option<String>,
    /// `limit` (0 = unlimited).
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `watch=true|1`.
    pub watch: bool,
    /// `allowWatchBookmarks=true`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
}

pub(crate) fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE")
}

impl ListOptions {
    /// Parse from decoded query parameters.
    pub fn from_query(q: &HashMap<String, String>) -> Result<ListOptions, SimError> {
        let non_empty = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        let limit = match non_empty("limit") {
            Some(l) => Some(
                l.parse::<i64>()
                    .map_err(|_| SimError::BadRequest(format!("invalid value for limit: {l:?}")))?,
            ),
            None => None,
        }
        .filter(|l| *l > 0)
        .map(|l| l as usize);
        let timeout_seconds = match non_empty("timeoutSeconds") {
            Some(t) => Some(t.parse::<u64>().map_err(|_| {
                SimError::BadRequest(format!("invalid value for timeoutSeconds: {t:?}"))
            })?),
            None => None,
        };
        Ok(ListOptions {
            resource_version: q.get("resourceVersion").cloned(),
            resource_version_match: non_empty("resourceVersionMatch"),
            limit,
            continue_token: non_empty("continue"),
            label_selector: non_empty("labelSelector"),
            field_selector: non_empty("fieldSelector"),
            watch: q.get("watch").is_some_and(|v| truthy(v)),
            allow_watch_bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| truthy(v)),
            send_initial_events: q.get("sendInitialEvents").map(|v| truthy(v)),
            timeout_seconds,
        })
    }

    /// `resourceVersion`, treating `""` as unset.
    pub fn rv(&self) -> Option<&str> {
        self.resource_version.as_deref().filter(|s| !s.is_empty())
    }
}

/// Parse a resourceVersion string.
pub fn parse_rv(s: &str) -> Result<u64, SimError> {
    s.parse::<u64>().map_err(|_| {
        SimError::BadRequest(format!(
            "invalid resource version {s:?}: strconv.ParseUint: parsing {s:?}: invalid syntax"
        ))
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

/// Encode a continue token for snapshot `rv` resuming after `last_key`.
pub fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: format!("{last_key}\u{0}"),
    };
    // Serialising a struct of strings/ints cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decode a continue token into `(snapshot rv, start key)`.
pub fn decode_continue(token: &str) -> Result<(u64, String), SimError> {
    let bad = || {
        SimError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into())
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv == 0 {
        return Err(bad());
    }
    Ok((t.rv, t.start))
}

/// One page of a LIST.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// `metadata.resourceVersion` of the list.
    pub rv: u64,
    /// Items (stored core/v1 shape, unparsed).
    pub items: Vec<StoredObject>,
    /// `metadata.continue`, if more items remain.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount` (only without selectors, like the apiserver).
    pub remaining: Option<usize>,
    /// Where the real apiserver would have served this read from.
    pub source: ReadSource,
}

/// Execute a LIST of `resource` in `namespace` (or all namespaces).
pub fn list(
    store: &Store,
    resource: Resource,
    namespace: Option<&str>,
    opts: &ListOptions,
    selector: &Selector,
) -> Result<ListPage, SimError> {
    let current = store.current_rv();
    let mut limit = opts.limit;
    let (snapshot_at, start, source): (Option<u64>, Option<String>, ReadSource) = if let Some(
        token,
    ) =
        &opts.continue_token
    {
        if opts.rv().is_some() {
            return Err(SimError::BadRequest(
                "specifying resource version is not allowed when using continue".into(),
            ));
        }
        let (rv, start) = decode_continue(token)?;
        (Some(rv), Some(start), ReadSource::Storage)
    } else {
        let m = opts.resource_version_match.as_deref();
        match (opts.rv(), m) {
            (None, None) => (None, None, ReadSource::Storage),
            (None, Some(_)) => {
                return Err(SimError::Invalid(
                        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                    ));
            }
            (Some(_), Some(other)) if other != "NotOlderThan" && other != "Exact" => {
                return Err(SimError::Invalid(format!(
                    "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
            (Some("0"), Some("Exact")) => {
                return Err(SimError::Invalid(
                        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
                    ));
            }
            (Some("0"), _) => {
                // Served from the watch cache, which (classically) ignores limit.
                limit = None;
                (None, None, ReadSource::Cache)
            }
            (Some(rv), Some("Exact")) => (Some(parse_rv(rv)?), None, ReadSource::Storage),
            (Some(rv), m) => {
                let n = parse_rv(rv)?;
                if n > current {
                    return Err(SimError::TooLargeResourceVersion {
                        requested: n,
                        current,
                    });
                }
                if m.is_none() && limit.is_some() {
                    // Legacy paginated list at N is an exact read from etcd.
                    (Some(n), None, ReadSource::Storage)
                } else {
                    (None, None, ReadSource::Cache)
                }
            }
        }
    };
    let prefix = namespace
        .filter(|_| resource.namespaced())
        .map(|ns| format!("{ns}/"));
    let snapshot = match store.snapshot_range(
        resource,
        snapshot_at,
        start.as_deref(),
        prefix.as_deref(),
    ) {
        Err(SimError::Expired(_)) if opts.continue_token.is_some() => {
            return Err(SimError::Expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
            ));
        }
        other => other?,
    };
    let unselective = selector.labels.is_empty() && selector.fields.is_empty();
    // Objects are only parsed when a selector needs to look inside them.
    let mut matching = snapshot
        .items
        .into_iter()
        .filter(|(_, v)| unselective || selector.matches(&v.value()));
    let take = limit.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut last_key: Option<std::sync::Arc<str>> = None;
    for (k, v) in matching.by_ref().take(take) {
        items.push(v);
        last_key = Some(k);
    }
    // Count (without selectors) or detect (with them) what is left for later pages.
    let (has_more, remaining) = if unselective {
        let rest = matching.count();
        (rest > 0, Some(rest).filter(|r| *r > 0))
    } else {
        (matching.next().is_some(), None)
    };
    let continue_token = if has_more {
        last_key.map(|k| encode_continue(snapshot.rv, &k))
    } else {
        None
    };
    Ok(ListPage {
        rv: snapshot.rv,
        items,
        continue_token,
        remaining,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CreateOptions, Subresource};
    use serde_json::json;

    fn seeded(n: usize, history: usize) -> Store {
        let s = Store::new(history);
        for i in 0..n {
            s.create(
                Resource::Pods,
                Some(if i % 2 == 0 { "a" } else { "b" }),
                json!({"metadata": {"name": format!("p{i:02}"), "labels": {"i": i.to_string()}}}),
                CreateOptions::default(),
            )
            .unwrap();
        }
        s
    }

    fn q(pairs: &[(&str, &str)]) -> ListOptions {
        ListOptions::from_query(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn names(p: &ListPage) -> Vec<String> {
        p.items
            .iter()
            .map(|i| i.value()["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn continue_token_round_trip_and_format() {
        let t = encode_continue(42, "default/pod-a");
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "{\"v\":\"meta.k8s.io/v1\",\"rv\":42,\"start\":\"default/pod-a\\u0000\"}"
        );
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/pod-a\u{0}".to_string())
        );
        assert!(decode_continue("garbage!").is_err());
    }

    #[test]
    fn paginated_list_is_a_consistent_snapshot() {
        let s = seeded(5, 100);
        let sel = Selector::default();
        let p1 = list(&s, Resource::Pods, None, &q(&[("limit", "2")]), &sel).unwrap();
        assert_eq!(names(&p1), vec!["p00", "p02"]);
        assert_eq!(p1.remaining, Some(3));
        assert_eq!(p1.source, ReadSource::Storage);
        let snap_rv = p1.rv;
        // Mutate between pages: the continuation must not see it.
        s.delete(Resource::Pods, Some("b"), "p01").unwrap();
        s.create(
            Resource::Pods,
            Some("a"),
            json!({"metadata": {"name": "p99"}}),
            CreateOptions::default(),
        )
        .unwrap();
        s.mutate(Resource::Pods, Some("b"), "p03", Subresource::Main, |o| {
            o["metadata"]["labels"]["changed"] = json!("yes");
            Ok(())
        })
        .unwrap();
        let tok = p1.continue_token.clone().unwrap();
        let p2 = list(
            &s,
            Resource::Pods,
            None,
            &q(&[("limit", "2"), ("continue", &tok)]),
            &sel,
        )
        .unwrap();
        assert_eq!(p2.rv, snap_rv);
        assert_eq!(names(&p2), vec!["p04", "p01"]);
        let tok = p2.continue_token.clone().unwrap();
        let p3 = list(
            &s,
            Resource::Pods,
            None,
            &q(&[("limit", "2"), ("continue", &tok)]),
            &sel,
        )
        .unwrap();
        assert_eq!(names(&p3), vec!["p03"]);
        assert!(
            p3.items[0].value()["metadata"]["labels"]
                .get("changed")
                .is_none()
        );
        assert!(p3.continue_token.is_none());
    }

    #[test]
    fn continue_after_compaction_is_expired() {
        let s = seeded(4, 2);
        let sel = Selector::default();
        let p1 = list(&s, Resource::Pods, None, &q(&[("limit", "1")]), &sel).unwrap();
        for i in 0..3 {
            s.create(
                Resource::Pods,
                Some("c"),
                json!({"metadata": {"name": format!("n{i}")}}),
                CreateOptions::default(),
            )
            .unwrap();
        }
        let tok = p1.continue_token.unwrap();
        let err = list(&s, Resource::Pods, None, &q(&[("continue", &tok)]), &sel).unwrap_err();
        assert_eq!(err.code(), 410);
        assert_eq!(err.reason(), "Expired");
    }

    #[test]
    fn resource_version_semantics() {
        let s = seeded(3, 100);
        let sel = Selector::default();
        let cur = s.current_rv();
        let zero = list(
            &s,
            Resource::Pods,
            None,
            &q(&[("resourceVersion", "0"), ("limit", "1")]),
            &sel,
        )
        .unwrap();
        assert_eq!(zero.items.len(), 3, "rv=0 served from cache ignores limit");
        assert_eq!(zero.source, ReadSource::Cache);
        let nt = list(
            &s,
            Resource::Pods,
            None,
            &q(&[
                ("resourceVersion", "1"),
                ("resourceVersionMatch", "NotOlderThan"),
            ]),
            &sel,
        )
        .unwrap();
        assert_eq!(
            (nt.rv, nt.items.len(), nt.source),
            (cur, 3, ReadSource::Cache)
        );
        let ex = list(
            &s,
            Resource::Pods,
            None,
            &q(&[("resourceVersion", "1"), ("resourceVersionMatch", "Exact")]),
            &sel,
        )
        .unwrap();
        assert_eq!(
            (ex.rv, ex.items.len(), ex.source),
            (1, 1, ReadSource::Storage)
        );
        let too_large = list(
            &s,
            Resource::Pods,
            None,
            &q(&[("resourceVersion", "999")]),
            &sel,
        )
        .unwrap_err();
        assert_eq!(too_large.code(), 504);
        assert!(
            list(
                &s,
                Resource::Pods,
                None,
                &q(&[("resourceVersionMatch", "Exact")]),
                &sel
            )
            .is_err()
        );
        let ns = list(&s, Resource::Pods, Some("b"), &q(&[]), &sel).unwrap();
        assert_eq!(names(&ns), vec!["p01"]);
        let sel = Selector::parse(Some("i in (0,2)"), None, Resource::Pods).unwrap();
        let filtered = list(&s, Resource::Pods, None, &q(&[("limit", "1")]), &sel).unwrap();
        assert_eq!(names(&filtered), vec!["p00"]);
        assert!(filtered.remaining.is_none());
        assert!(filtered.continue_token.is_some());
    }
}
