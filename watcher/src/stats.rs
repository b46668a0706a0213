//! Live counters of a [`Watcher`](crate::Watcher), per resource, shared through a cheap,
//! cloneable handle (for metrics and tests). The totals (`records()`, `relists()`, ...) sum over
//! resources; [`WatcherStats::resource`] gives one resource's figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::config::Resource;

/// Which API request a counter is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// A LIST request (one per page).
    List,
    /// A WATCH request (including streaming lists, which are watches).
    Watch,
}

impl Verb {
    /// Lowercase name, as in Kubernetes audit logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::List => "list",
            Verb::Watch => "watch",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    list_requests: AtomicU64,
    watch_requests: AtomicU64,
    malformed: AtomicU64,
    records: AtomicU64,
    checkpoints: AtomicU64,
    bookmarks: AtomicU64,
    lists: AtomicU64,
    relists: AtomicU64,
    expired: AtomicU64,
    watches: AtomicU64,
    watch_restarts: AtomicU64,
    errors: AtomicU64,
    throttled: AtomicU64,
    denied: AtomicU64,
    /// Unix milliseconds of the last watch event (object or bookmark); 0 = none yet.
    last_event_ms: AtomicI64,
}

/// One resource's counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceStats {
    /// LIST requests sent (each page counts).
    pub list_requests: u64,
    /// WATCH requests sent (streaming lists included).
    pub watch_requests: u64,
    /// Objects or watch lines that could not be decoded and were skipped.
    pub malformed: u64,
    /// Records emitted.
    pub records: u64,
    /// Checkpoints emitted.
    pub checkpoints: u64,
    /// BOOKMARK events received.
    pub bookmarks: u64,
    /// Initial syncs and re-syncs that completed (lists or streaming lists).
    pub lists: u64,
    /// Re-syncs caused by `410 Expired`.
    pub relists: u64,
    /// `410 Expired` answers (HTTP or in-stream).
    pub expired: u64,
    /// Watch requests that were answered.
    pub watches: u64,
    /// Watches re-established after the previous one ended (timeout, disconnect, error).
    pub watch_restarts: u64,
    /// Failed requests and watch streams that ended with an error.
    pub errors: u64,
    /// `429 Too Many Requests` answers.
    pub throttled: u64,
    /// `401` and `403` answers.
    pub denied: u64,
    /// Unix milliseconds of the last watch event (object or bookmark), if any.
    pub last_event_ms: Option<i64>,
}

/// Counters of a watcher; clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct WatcherStats(Arc<[Counters; 3]>);

fn index(res: Resource) -> usize {
    match res {
        Resource::Events => 0,
        Resource::Pods => 1,
        Resource::Nodes => 2,
    }
}

macro_rules! counter {
    ($get:ident, $inc:ident, $doc:literal) => {
        #[doc = concat!($doc, " (all resources).")]
        pub fn $get(&self) -> u64 {
            self.0.iter().map(|c| c.$get.load(Ordering::Relaxed)).sum()
        }

        pub(crate) fn $inc(&self, res: Resource, n: u64) {
            self.at(res).$get.fetch_add(n, Ordering::Relaxed);
        }
    };
}

impl WatcherStats {
    fn at(&self, res: Resource) -> &Counters {
        &self.0[index(res)]
    }

    counter!(
        malformed,
        add_malformed,
        "Objects or watch lines skipped as malformed"
    );
    counter!(records, add_records, "Records emitted");
    counter!(checkpoints, add_checkpoints, "Checkpoints emitted");
    counter!(bookmarks, add_bookmarks, "BOOKMARK events received");
    counter!(lists, add_lists, "Initial syncs and re-syncs completed");
    counter!(relists, add_relists, "Re-syncs caused by `410 Expired`");
    counter!(expired, add_expired, "`410 Expired` answers");
    counter!(watches, add_watches, "Watch requests answered");
    counter!(watch_restarts, add_watch_restarts, "Watches re-established");
    counter!(errors, add_errors, "Failed requests and watch streams");
    counter!(throttled, add_throttled, "`429` answers");
    counter!(denied, add_denied, "`401`/`403` answers");

    /// Requests sent with `verb` (all resources).
    pub fn requests(&self, verb: Verb) -> u64 {
        Resource::ALL
            .iter()
            .map(|r| self.requests_for(*r, verb))
            .sum()
    }

    /// Requests sent with `verb` for `res`.
    pub fn requests_for(&self, res: Resource, verb: Verb) -> u64 {
        let c = self.at(res);
        match verb {
            Verb::List => c.list_requests.load(Ordering::Relaxed),
            Verb::Watch => c.watch_requests.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add_request(&self, res: Resource, verb: Verb) {
        let c = self.at(res);
        match verb {
            Verb::List => c.list_requests.fetch_add(1, Ordering::Relaxed),
            Verb::Watch => c.watch_requests.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub(crate) fn set_last_event(&self, res: Resource, unix_ms: i64) {
        self.at(res).last_event_ms.store(unix_ms, Ordering::Relaxed);
    }

    /// One resource's counters.
    pub fn resource(&self, res: Resource) -> ResourceStats {
        let c = self.at(res);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = c.last_event_ms.load(Ordering::Relaxed);
        ResourceStats {
            list_requests: get(&c.list_requests),
            watch_requests: get(&c.watch_requests),
            malformed: get(&c.malformed),
            records: get(&c.records),
            checkpoints: get(&c.checkpoints),
            bookmarks: get(&c.bookmarks),
            lists: get(&c.lists),
            relists: get(&c.relists),
            expired: get(&c.expired),
            watches: get(&c.watches),
            watch_restarts: get(&c.watch_restarts),
            errors: get(&c.errors),
            throttled: get(&c.throttled),
            denied: get(&c.denied),
            last_event_ms: (last != 0).then_some(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_resource_and_totals() {
        let s = WatcherStats::default();
        s.add_records(Resource::Pods, 3);
        s.add_records(Resource::Nodes, 2);
        s.add_request(Resource::Pods, Verb::List);
        s.add_request(Resource::Pods, Verb::Watch);
        s.add_request(Resource::Events, Verb::Watch);
        s.set_last_event(Resource::Pods, 42);
        let clone = s.clone();
        assert_eq!(clone.records(), 5);
        assert_eq!(clone.requests(Verb::Watch), 2);
        assert_eq!(clone.requests_for(Resource::Pods, Verb::List), 1);
        let pods = clone.resource(Resource::Pods);
        assert_eq!((pods.records, pods.last_event_ms), (3, Some(42)));
        assert_eq!(clone.resource(Resource::Events).last_event_ms, None);
    }
}
