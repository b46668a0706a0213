//! Request accounting: how many requests the fake apiserver served, by verb and
//! resource, and whether each read would have been served from the apiserver's watch
//! cache or had to go to etcd ("storage").

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// API verb of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// LIST a collection.
    List,
    /// WATCH a collection.
    Watch,
    /// GET one object.
    Get,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Verb {
    /// Lowercase verb name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Get => "get",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Parse a lowercase verb name (`watch`).
    pub fn parse(s: &str) -> Option<Verb> {
        [
            Verb::List,
            Verb::Watch,
            Verb::Get,
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// Where the real apiserver would have served a read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadSource {
    /// The watch cache (`resourceVersion=0`, `NotOlderThan`, watches, streaming lists).
    Cache,
    /// etcd (`resourceVersion` unset, `Exact`, paginated with non-zero RV, `continue`).
    Storage,
}

/// Cache vs storage read counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    /// Reads served from the watch cache.
    pub cache: u64,
    /// Reads served from storage (etcd).
    pub storage: u64,
}

/// Snapshot of the request counters (also served as JSON at `GET /sim/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    /// All API requests counted (discovery and `/sim/*` are not counted).
    pub total: u64,
    /// Requests rejected with 401.
    pub unauthorized: u64,
    /// Count per verb.
    pub by_verb: BTreeMap<String, u64>,
    /// Count per resource (`pods`, `events.events.k8s.io`) then per verb.
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    /// LIST and initial-WATCH classification per resource.
    pub reads: BTreeMap<String, ReadCounts>,
    /// Sum of `reads` over all resources.
    pub reads_total: ReadCounts,
    /// `reads` summed over resources, per verb (`list`, `watch`).
    pub reads_by_verb: BTreeMap<String, ReadCounts>,
    /// Requests answered by an injected fault (see [`crate::faults`]); they are also in
    /// `total`, `by_verb` and `by_resource`. Faults that still serve the read (a watch
    /// dropped mid-line, a stall) also count in `reads`.
    pub faulted: u64,
    /// Faulted requests per resource, then per verb.
    pub faulted_by_resource: BTreeMap<String, BTreeMap<String, u64>>,
}

impl RequestStats {
    /// Requests for `verb` on `resource` (e.g. `("list", "pods")`).
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.by_resource
            .get(resource)
            .and_then(|m| m.get(verb))
            .copied()
            .unwrap_or(0)
    }
}

/// Thread-safe counter set behind [`RequestStats`].
#[derive(Debug, Default)]
pub struct StatsRecorder {
    inner: Mutex<RequestStats>,
}

impl StatsRecorder {
    /// Count one request; `source` is set for LIST / WATCH.
    pub fn record(&self, verb: Verb, resource: &str, source: Option<ReadSource>) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.total += 1;
        *s.by_verb.entry(verb.as_str().into()).or_default() += 1;
        *s.by_resource
            .entry(resource.into())
            .or_default()
            .entry(verb.as_str().into())
            .or_default() += 1;
        if let Some(src) = source {
            let r = s.reads.entry(resource.into()).or_default();
            match src {
                ReadSource::Cache => r.cache += 1,
                ReadSource::Storage => r.storage += 1,
            }
            match src {
                ReadSource::Cache => s.reads_total.cache += 1,
                ReadSource::Storage => s.reads_total.storage += 1,
            }
            let v = s.reads_by_verb.entry(verb.as_str().into()).or_default();
            match src {
                ReadSource::Cache => v.cache += 1,
                ReadSource::Storage => v.storage += 1,
            }
        }
        tracing::debug!(verb = verb.as_str(), resource, source = ?source, "request");
    }

    /// Mark one already counted (or about to be counted) request as faulted.
    pub fn record_fault(&self, verb: Verb, resource: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.faulted += 1;
        *s.faulted_by_resource
            .entry(resource.into())
            .or_default()
            .entry(verb.as_str().into())
            .or_default() += 1;
        tracing::debug!(verb = verb.as_str(), resource, "faulted request");
    }

    /// Count one rejected (401) request.
    pub fn record_unauthorized(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.unauthorized += 1;
    }

    /// Copy of the current counters.
    pub fn snapshot(&self) -> RequestStats {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reset all counters to zero.
    pub fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = RequestStats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_verb_resource_and_source() {
        let r = StatsRecorder::default();
        r.record(Verb::List, "pods", Some(ReadSource::Storage));
        r.record(Verb::List, "pods", Some(ReadSource::Cache));
        r.record(Verb::Watch, "pods", Some(ReadSource::Cache));
        r.record(Verb::Create, "events", None);
        r.record(Verb::Watch, "pods", None);
        r.record_fault(Verb::Watch, "pods");
        let s = r.snapshot();
        assert_eq!(s.faulted, 1);
        assert_eq!(s.faulted_by_resource["pods"]["watch"], 1);
        assert_eq!(s.count("watch", "pods"), 2);
        assert_eq!(s.total, 5);
        assert_eq!(s.count("list", "pods"), 2);
        assert_eq!(s.by_verb["watch"], 2);
        assert_eq!(
            s.reads["pods"],
            ReadCounts {
                cache: 2,
                storage: 1
            }
        );
        assert_eq!(s.reads_total.cache, 2);
        assert_eq!(
            s.reads_by_verb["list"],
            ReadCounts {
                cache: 1,
                storage: 1
            }
        );
        assert_eq!(s.reads_by_verb["watch"].cache, 1);
        r.reset();
        assert_eq!(r.snapshot().total, 0);
    }
}
