//! sled persistence and queries for kube-herald: the only crate that touches sled.
//!
//! [`Store`] owns one sled database in `DATA_DIR/sled/` and persists, with their indexes:
//!
//! - **records** (what the watcher observed), in blocks of the records appended together, with a
//!   sparse time index (one entry per block) and an object index (one entry per object and
//!   block, listing that object's records in the block);
//! - **incidents** (upserted on every transition), their **change log**, and indexes by first
//!   seen, by object (subject and affected objects) and by open state;
//! - **watch checkpoints**, one per resource, and the watcher's compact per-object state
//!   ([`ObjectState`](herald_core::ObjectState)), so a restart resumes with it: a base with one
//!   entry per object and a per-resource log with one block per write, folded into the base now
//!   and then (`watch_state.rs`);
//! - **notifications** (the outbox, keyed by idempotency key) with a pending set, and every
//!   **delivery attempt**;
//! - **retention** ([`Store::prune`]) and **stats**.
//!
//! It stores and indexes; it never interprets records or decides anything. A value and its index
//! entries are written atomically: records and their indexes share one tree and are written by one
//! `apply_batch`; other writes that touch several trees are one sled transaction (except the
//! watch-state fold, whose ordered writes read the same after a crash at any point). So a crash
//! never leaves an index entry without its value or the other way round. Keys are built in `keys.rs`
//! (order-preserving, see there), values in `codec.rs` (format byte + JSON), record blocks in
//! `block.rs`; record blocks and watch-state log blocks are stored LZ4-compressed
//! (`compress.rs`).
//!
//! Durability: sled flushes its log every 500 ms and on [`Store::flush`]. The log is recovered as
//! a prefix, so after a crash the store holds everything written before some point: if a
//! checkpoint survived, so did every record written before it.
//!
//! One process at a time: sled takes an exclusive lock on its file, and a second
//! [`Store::open`] (from another process, or from the same one while the first is open) fails
//! with [`StoreError::Locked`]. sled releases that lock from a background thread a moment after
//! the last handle is dropped (spacejam/sled#1234), so opening waits up to
//! [`StoreOptions::lock_wait`] for it before giving up: a reopen right after a close (the demo,
//! a restart in one process) succeeds rather than failing at random.

mod block;
mod codec;
mod compress;
mod error;
mod incidents;
mod keys;
mod object_index;
mod outbox;
mod records;
mod retention;
mod silences;
mod watch_state;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::Timestamp;
use sled::transaction::TransactionError;

pub use error::StoreError;
pub use outbox::Fate;
pub use retention::PruneStats;
pub use watch_state::ClusterIdentity;

/// Names of the sled trees. Index trees hold empty values; everything is in their keys.
mod tree {
    /// Settings of the database itself (schema version).
    pub const META: &str = "meta";
    /// Records and their indexes, told apart by a tag byte (see `keys.rs`): blocks of records
    /// by last id, the time index by (latest observed_at, last id), the object index by
    /// (kind, key, first observed_at, last id of the entry) and its indexed watermark
    /// (`object_index.rs`).
    pub const RECORDS: &str = "records";
    /// Incident id -> incident (latest state).
    pub const INCIDENTS: &str = "incidents";
    /// (first_seen, incident id) -> ().
    pub const INCIDENTS_BY_TIME: &str = "incidents_by_time";
    /// (kind, key, first_seen, incident id) -> ().
    pub const INCIDENTS_BY_OBJECT: &str = "incidents_by_object";
    /// Incident id -> (), for open incidents only.
    pub const INCIDENTS_OPEN: &str = "incidents_open";
    /// (incident id, at, seq) -> incident change.
    pub const INCIDENT_CHANGES: &str = "incident_changes";
    /// Resource -> checkpoint.
    pub const CHECKPOINTS: &str = "checkpoints";
    /// (resource, object key) -> the watcher's compact state of that object: the base, as of
    /// the last fold of the log (see `watch_state.rs`).
    pub const WATCH_STATE: &str = "watch_state";
    /// (resource, seq) -> a block of state changes made since the last fold.
    pub const WATCH_STATE_LOG: &str = "watch_state_log";
    /// Notification id -> notification.
    pub const NOTIFICATIONS: &str = "notifications";
    /// Notification id -> (), while neither delivered nor dead.
    pub const NOTIFICATIONS_PENDING: &str = "notifications_pending";
    /// (incident id, created_at, notification id) -> ().
    pub const NOTIFICATIONS_BY_INCIDENT: &str = "notifications_by_incident";
    /// (notification id, at, seq) -> delivery attempt.
    pub const DELIVERIES: &str = "deliveries";
    /// Notification id -> (), for dead letters (failed for good, until retried).
    pub const NOTIFICATIONS_DEAD: &str = "notifications_dead";
    /// Notification id -> fate, for notifications settled without a send of their own (folded
    /// into a digest, silenced).
    pub const NOTIFICATION_FATES: &str = "notification_fates";
    /// Silence id -> silence.
    pub const SILENCES: &str = "silences";
    /// Subscription name -> who it is for (as configured when its notifications were made).
    pub const SUBSCRIBERS: &str = "subscribers";
}

/// The subdirectory of the data directory that holds the sled database.
pub const DB_DIR: &str = "sled";

/// Version of the tree layout and key encoding, kept in the `meta` tree. 5: object index
/// entries written for what is pending, one per object, after the records (`object_index.rs`),
/// with the indexed watermark; 4: record blocks and
/// watch-state log blocks LZ4-compressed (`compress.rs`); 3: watch states in a base and a
/// per-resource log of blocks (`watch_state_log`); 2: records in blocks, with their indexes in
/// the same tree; 1: one tree per record index.
const SCHEMA_VERSION: u8 = 5;
/// The oldest version [`check_schema`] upgrades in place. Nothing is rewritten: a schema-2
/// database only lacks the (empty) watch-state log, and its `watch_state` tree is a valid base;
/// schema 4 reads the uncompressed blocks of 2 and 3 as they are and compresses what it writes;
/// schema 5 reads the per-block object index entries of 2 to 4 as entries of one block each,
/// and a database without an indexed watermark as indexed up to its last block. The version is
/// raised so that an older herald refuses the database instead of misreading the compressed
/// blocks or missing the records not indexed yet.
const SCHEMA_UPGRADABLE: u8 = 2;
const SCHEMA_KEY: &[u8] = b"schema";

/// Default sled page cache size, [`StoreOptions::cache_capacity_bytes`]. sled's default (1 GiB)
/// is too much for a cluster add-on; lookups are mostly recent records and index scans, which a
/// smaller cache serves well. 32 MiB rather than 128 MiB: writing 120,000 records and 136,000
/// watch states peaks 80 MB lower (91 vs 174 MB) for 10-30% slower writes in isolation, and
/// within the noise in `herald bench ingest`; it is what keeps `herald run` under 300 MB at
/// 200,000 pods (docs/PERFORMANCE.md).
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// How to open a [`Store`] ([`Store::open_with`]); [`Store::open`] uses the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Upper bound of sled's page cache in bytes (default [`DEFAULT_CACHE_CAPACITY_BYTES`]).
    pub cache_capacity_bytes: u64,
    /// How long opening waits for a lock held by someone else before returning
    /// [`StoreError::Locked`] (default [`DEFAULT_LOCK_WAIT`]). sled drops its lock from a
    /// background thread shortly after the last handle goes, so a zero wait makes a reopen
    /// right after a close fail now and then; zero suits a caller with a fallback for a held
    /// store (the history CLI asks the running service instead).
    pub lock_wait: Duration,
}

/// Default [`StoreOptions::lock_wait`]: far longer than sled takes to let go of a closed
/// database (milliseconds), short enough for a CLI facing a running service.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(1);

/// Interval between lock attempts within [`StoreOptions::lock_wait`].
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(10);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// The persistent store. Cheap to clone (shared handles); safe to use from many threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    records: sled::Tree,
    /// Object index references not written yet (`object_index.rs`); held while records are
    /// appended, so ids enter it in order.
    pending: Mutex<object_index::Pending>,
    incidents: sled::Tree,
    incidents_by_time: sled::Tree,
    incidents_by_object: sled::Tree,
    incidents_open: sled::Tree,
    incident_changes: sled::Tree,
    checkpoints: sled::Tree,
    /// Schema version and the cluster identity of the checkpoints.
    meta: sled::Tree,
    watch_state: sled::Tree,
    watch_state_log: sled::Tree,
    /// Serialises watch-state writes, folds and log loads; holds the log sizes.
    watch_state_lock: Mutex<watch_state::LogState>,
    notifications: sled::Tree,
    notifications_pending: sled::Tree,
    notifications_by_incident: sled::Tree,
    deliveries: sled::Tree,
    notifications_dead: sled::Tree,
    notification_fates: sled::Tree,
    silences: sled::Tree,
    subscribers: sled::Tree,
}

impl Drop for Inner {
    /// Writes the pending object index entries, so the next start has nothing to read again.
    fn drop(&mut self) {
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = pending.write(&self.records) {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot write the object index at close; it is read again at the next start"
            );
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// A time window and a result limit for queries.
///
/// Both ends are inclusive; `None` leaves that end open. With a `limit`, queries return the
/// first `limit` results in their documented order (chronological unless stated otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeQuery {
    /// Earliest instant (inclusive).
    pub since: Option<Timestamp>,
    /// Latest instant (inclusive).
    pub until: Option<Timestamp>,
    /// Most results to return.
    pub limit: Option<usize>,
}

impl TimeQuery {
    /// No bounds, no limit: everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// The window `since..=until` (either end open when `None`), without a limit.
    pub fn between(since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        Self {
            since,
            until,
            limit: None,
        }
    }

    /// The same window with at most `limit` results.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether the limit allows one more result after `n`.
    fn wants_more(&self, n: usize) -> bool {
        self.limit.is_none_or(|l| n < l)
    }
}

/// Entry counts per tree and the database's size on disk, from [`Store::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Stored records.
    pub records: usize,
    /// Stored incidents (open and resolved).
    pub incidents: usize,
    /// Open incidents.
    pub open_incidents: usize,
    /// Incident changes in the change log.
    pub incident_changes: usize,
    /// Watch checkpoints.
    pub checkpoints: usize,
    /// Notifications (delivered, dead and pending).
    pub notifications: usize,
    /// Notifications neither delivered nor dead.
    pub pending_notifications: usize,
    /// Delivery attempts.
    pub delivery_attempts: usize,
    /// Entries of every tree, by tree name, indexes included.
    pub trees: BTreeMap<String, usize>,
    /// Bytes sled uses on disk.
    pub size_on_disk: u64,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`; the database lives in `dir/sled/`.
    ///
    /// Returns [`StoreError::Locked`] if another `Store` holds it (another process such as the
    /// running service, or this process while an earlier `Store` on `dir` is still alive) for
    /// longer than [`DEFAULT_LOCK_WAIT`], so a CLI can fall back to asking the service.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// Like [`Store::open`], with `options` (such as the page cache size).
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = sled::Config::new()
            .path(dir.join(DB_DIR))
            .cache_capacity(options.cache_capacity_bytes);
        let deadline = Instant::now() + options.lock_wait;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) => {
                    if Instant::now() >= deadline {
                        tracing::debug!(path = %dir.display(), error = %e, "store is locked");
                        return Err(StoreError::Locked {
                            path: dir.to_path_buf(),
                        });
                    }
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                Err(e) => return Err(StoreError::Sled(e)),
            }
        };
        check_schema(&db, dir)?;
        let open = |name: &str| db.open_tree(name);
        let records = open(tree::RECORDS)?;
        let pending = object_index::recover(&records)?;
        let inner = Inner {
            path: dir.to_path_buf(),
            records,
            pending: Mutex::new(pending),
            incidents: open(tree::INCIDENTS)?,
            incidents_by_time: open(tree::INCIDENTS_BY_TIME)?,
            incidents_by_object: open(tree::INCIDENTS_BY_OBJECT)?,
            incidents_open: open(tree::INCIDENTS_OPEN)?,
            incident_changes: open(tree::INCIDENT_CHANGES)?,
            checkpoints: open(tree::CHECKPOINTS)?,
            meta: open(tree::META)?,
            watch_state: open(tree::WATCH_STATE)?,
            watch_state_log: open(tree::WATCH_STATE_LOG)?,
            watch_state_lock: Mutex::default(),
            notifications: open(tree::NOTIFICATIONS)?,
            notifications_pending: open(tree::NOTIFICATIONS_PENDING)?,
            notifications_by_incident: open(tree::NOTIFICATIONS_BY_INCIDENT)?,
            deliveries: open(tree::DELIVERIES)?,
            notifications_dead: open(tree::NOTIFICATIONS_DEAD)?,
            notification_fates: open(tree::NOTIFICATION_FATES)?,
            silences: open(tree::SILENCES)?,
            subscribers: open(tree::SUBSCRIBERS)?,
            db,
        };
        tracing::info!(
            path = %dir.display(),
            recovered = inner.db.was_recovered(),
            cache_capacity_bytes = options.cache_capacity_bytes,
            "store opened"
        );
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The data directory this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Entry counts of every tree and the size on disk. Counting walks every tree (sled keeps
    /// no counts), so this is O(entries): for diagnostics, not for a hot path.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let i = &self.inner;
        let mut trees = BTreeMap::new();
        for (name, t) in [
            (tree::RECORDS, &i.records),
            (tree::INCIDENTS, &i.incidents),
            (tree::INCIDENTS_BY_TIME, &i.incidents_by_time),
            (tree::INCIDENTS_BY_OBJECT, &i.incidents_by_object),
            (tree::INCIDENTS_OPEN, &i.incidents_open),
            (tree::INCIDENT_CHANGES, &i.incident_changes),
            (tree::CHECKPOINTS, &i.checkpoints),
            (tree::WATCH_STATE, &i.watch_state),
            (tree::WATCH_STATE_LOG, &i.watch_state_log),
            (tree::NOTIFICATIONS, &i.notifications),
            (tree::NOTIFICATIONS_PENDING, &i.notifications_pending),
            (
                tree::NOTIFICATIONS_BY_INCIDENT,
                &i.notifications_by_incident,
            ),
            (tree::DELIVERIES, &i.deliveries),
            (tree::NOTIFICATIONS_DEAD, &i.notifications_dead),
            (tree::NOTIFICATION_FATES, &i.notification_fates),
            (tree::SILENCES, &i.silences),
            (tree::SUBSCRIBERS, &i.subscribers),
        ] {
            trees.insert(name.to_string(), t.len());
        }
        let n = |name: &str| trees.get(name).copied().unwrap_or(0);
        Ok(StoreStats {
            records: self.count_records(),
            incidents: n(tree::INCIDENTS),
            open_incidents: n(tree::INCIDENTS_OPEN),
            incident_changes: n(tree::INCIDENT_CHANGES),
            checkpoints: n(tree::CHECKPOINTS),
            notifications: n(tree::NOTIFICATIONS),
            pending_notifications: n(tree::NOTIFICATIONS_PENDING),
            delivery_attempts: n(tree::DELIVERIES),
            size_on_disk: i.db.size_on_disk()?,
            trees,
        })
    }

    /// Writes everything buffered so far to disk (call before exiting; sled otherwise flushes
    /// every 500 ms).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let bytes = self.inner.db.flush_async().await?;
        tracing::debug!(bytes, "store flushed");
        Ok(())
    }
}

/// Whether `e` is sled's "could not acquire lock" error (its `try_lock_exclusive` failing with
/// `WouldBlock`, wrapped by sled into an `Other` I/O error with that message).
fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

/// Records the schema version in a new database; upgrades a database of schema
/// [`SCHEMA_UPGRADABLE`] or later in place (see there; opening creates the watch-state log tree
/// when it is missing); refuses any other version
/// (an older one with [`StoreError::OldSchema`], which names the fix; a newer one with
/// [`StoreError::UnsupportedFormat`]).
fn check_schema(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree(tree::META)?;
    let mut expected: Option<[u8; 1]> = None;
    loop {
        let current = expected.as_ref().map(|v| &v[..]);
        match meta.compare_and_swap(SCHEMA_KEY, current, Some(&[SCHEMA_VERSION][..]))? {
            Ok(()) => {
                if let Some([old]) = expected {
                    // `open_with` opens (creates) the log tree next.
                    tracing::info!(
                        path = %dir.display(),
                        from = old,
                        to = SCHEMA_VERSION,
                        "store schema upgraded in place"
                    );
                }
                return Ok(());
            }
            Err(cas) => match cas.current.as_deref() {
                Some([SCHEMA_VERSION]) => return Ok(()),
                Some(&[old]) if (SCHEMA_UPGRADABLE..SCHEMA_VERSION).contains(&old) => {
                    expected = Some([old]);
                }
                Some(&[old]) if old < SCHEMA_VERSION => {
                    return Err(StoreError::OldSchema {
                        path: dir.join(DB_DIR),
                        found: old,
                        expected: SCHEMA_VERSION,
                    });
                }
                other => {
                    return Err(StoreError::UnsupportedFormat {
                        what: "database schema",
                        version: other.and_then(|v| v.first().copied()).unwrap_or(0),
                    });
                }
            },
        }
    }
}

/// Maps a failed sled transaction to the store's error.
fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Turns a store error raised inside a transaction closure into an abort.
fn abort(e: StoreError) -> sled::transaction::ConflictableTransactionError<StoreError> {
    sled::transaction::ConflictableTransactionError::Abort(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_errors_cross_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        fn error<T: std::error::Error + Send + Sync + 'static>() {}
        shareable::<Store>();
        error::<StoreError>();
    }

    /// Creates a database at `dir` whose schema version is `version`.
    fn write_schema(dir: &Path, version: u8) {
        let db = sled::Config::new().path(dir.join(DB_DIR)).open().unwrap();
        db.open_tree(tree::META)
            .unwrap()
            .insert(SCHEMA_KEY, &[version][..])
            .unwrap();
    }

    #[test]
    fn schema_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_schema(dir.path(), 9);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::UnsupportedFormat { version: 9, .. })
        ));
    }

    #[test]
    fn an_older_schema_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        write_schema(dir.path(), 1);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            StoreError::OldSchema {
                found: 1,
                expected: SCHEMA_VERSION,
                ..
            }
        ));
        let text = err.to_string();
        assert!(text.contains("schema version 1"), "{text}");
        assert!(
            text.contains(&dir.path().join(DB_DIR).display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("move that directory away or delete it"),
            "{text}"
        );
    }

    #[test]
    fn a_schema_2_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A schema-2 database: its watch states are all in the `watch_state` tree.
            let db = sled::Config::new()
                .path(dir.path().join(DB_DIR))
                .open()
                .unwrap();
            db.open_tree(tree::META)
                .unwrap()
                .insert(SCHEMA_KEY, &[2][..])
                .unwrap();
            let base = db.open_tree(tree::WATCH_STATE).unwrap();
            base.insert(keys::parent_name_key("pods", "ns/a"), &b"A"[..])
                .unwrap();
            base.insert(keys::parent_name_key("pods", "ns/b"), &b"B"[..])
                .unwrap();
            db.flush().unwrap();
        }
        let states = |store: &Store| {
            store
                .watch_states("pods")
                .unwrap()
                .into_iter()
                .map(|s| (s.key, s.state.unwrap()))
                .collect::<Vec<_>>()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(
                store
                    .inner
                    .db
                    .open_tree(tree::META)
                    .unwrap()
                    .get(SCHEMA_KEY)
                    .unwrap(),
                Some(sled::IVec::from(&[SCHEMA_VERSION][..]))
            );
            assert_eq!(SCHEMA_VERSION, 5);
            assert_eq!(
                states(&store),
                vec![
                    ("ns/a".to_string(), b"A".to_vec()),
                    ("ns/b".to_string(), b"B".to_vec())
                ]
            );
            store
                .put_watch_states(
                    "pods",
                    &[herald_core::ObjectState {
                        key: "ns/a".into(),
                        state: None,
                    }],
                )
                .unwrap();
            assert_eq!(store.stats().unwrap().trees[tree::WATCH_STATE_LOG], 1);
        }
        // Opened again as schema 4, with the logged removal.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(states(&store), vec![("ns/b".to_string(), b"B".to_vec())]);
    }

    /// A schema-3 database (record blocks and watch-state log blocks uncompressed) is upgraded
    /// in place: nothing is rewritten, everything reads the same, new blocks are compressed.
    #[test]
    fn a_schema_3_database_is_upgraded_in_place() {
        use herald_core::{ObjectRef, ObjectState, PodChange, PodTransition, Record, RecordBody};
        let dir = tempfile::tempdir().unwrap();
        let record = |name: &str| Record {
            id: herald_core::RecordId::UNASSIGNED,
            cluster: "c".into(),
            observed_at: herald_core::Timestamp::from_second(1_700_000_000).unwrap(),
            object: ObjectRef::pod("ns", name),
            node: None,
            owner: None,
            labels: Default::default(),
            body: RecordBody::Pod(PodTransition {
                phase: None,
                change: PodChange::Created,
            }),
        };
        let state = |key: &str, v: &[u8]| ObjectState {
            key: key.into(),
            state: Some(v.to_vec()),
        };
        let mut old = vec![record("a")];
        {
            let store = Store::open(dir.path()).unwrap();
            store.append_records(&mut old).unwrap();
            store
                .put_watch_states("pods", &[state("ns/a", b"A")])
                .unwrap();
            // Make it what schema 3 wrote: uncompressed blocks, version 3.
            assert_eq!(records::tests::unseal_blocks(&store), 1);
            let log = &store.inner.watch_state_log;
            let logged: Vec<_> = log.iter().map(Result::unwrap).collect();
            assert_eq!(logged.len(), 1);
            for (k, v) in logged {
                let raw = compress::open(2, &v).unwrap().into_owned();
                assert_eq!(raw[0], 1, "a schema-3 log block");
                log.insert(k, raw).unwrap();
            }
            // Its object index written with the block, and no watermark.
            store.write_object_index().unwrap();
            store
                .inner
                .records
                .remove(object_index::WATERMARK_KEY)
                .unwrap();
            store.inner.meta.insert(SCHEMA_KEY, &[3u8][..]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.inner.meta.get(SCHEMA_KEY).unwrap(),
            Some(sled::IVec::from(&[SCHEMA_VERSION][..]))
        );
        assert_eq!(store.record(old[0].id).unwrap().as_ref(), Some(&old[0]));
        let mut new = vec![record("b")];
        store.append_records(&mut new).unwrap();
        store
            .put_watch_states("pods", &[state("ns/b", b"B")])
            .unwrap();
        let all = store.records_between(&TimeQuery::all()).unwrap();
        assert_eq!(all, [old.clone(), new.clone()].concat());
        for (key, want) in [("ns/a", &old), ("ns/b", &new)] {
            let got = store
                .records_for_object(&herald_core::ObjectKind::Pod, key, &TimeQuery::all())
                .unwrap();
            assert_eq!(&got, want, "{key}: indexed before the upgrade, and after");
        }
        let states: Vec<_> = store
            .watch_states("pods")
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.state.unwrap()))
            .collect();
        assert_eq!(
            states,
            vec![
                ("ns/a".to_string(), b"A".to_vec()),
                ("ns/b".to_string(), b"B".to_vec())
            ]
        );
    }

    #[test]
    fn the_cache_size_is_an_option() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            cache_capacity_bytes: 8 * 1024 * 1024,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), &options).unwrap();
        assert_eq!(store.stats().unwrap().records, 0);
        assert_eq!(
            StoreOptions::default().cache_capacity_bytes,
            DEFAULT_CACHE_CAPACITY_BYTES
        );
    }
}
