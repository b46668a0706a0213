//! Live counters of a [`Watcher`](crate::Watcher), shared through a cheap, cloneable handle
//! (for metrics and tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Counters {
    malformed: AtomicU64,
    records: AtomicU64,
    checkpoints: AtomicU64,
    bookmarks: AtomicU64,
    lists: AtomicU64,
    relists: AtomicU64,
    watches: AtomicU64,
    errors: AtomicU64,
}

/// Counters of a watcher; clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct WatcherStats(Arc<Counters>);

macro_rules! counter {
    ($get:ident, $inc:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $get(&self) -> u64 {
            self.0.$get.load(Ordering::Relaxed)
        }

        pub(crate) fn $inc(&self, n: u64) {
            self.0.$get.fetch_add(n, Ordering::Relaxed);
        }
    };
}

impl WatcherStats {
    counter!(
        malformed,
        add_malformed,
        "Objects or watch lines that could not be decoded and were skipped."
    );
    counter!(records, add_records, "Records emitted.");
    counter!(checkpoints, add_checkpoints, "Checkpoints emitted.");
    counter!(bookmarks, add_bookmarks, "BOOKMARK events received.");
    counter!(
        lists,
        add_lists,
        "List requests that succeeded (initial lists and re-lists)."
    );
    counter!(
        relists,
        add_relists,
        "Re-lists caused by `410 Expired` (HTTP or in-stream)."
    );
    counter!(watches, add_watches, "Watch requests that were answered.");
    counter!(
        errors,
        add_errors,
        "Failed requests and watch streams that ended with an error."
    );
}
