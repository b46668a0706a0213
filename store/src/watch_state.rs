//! The watcher's compact per-object state ([`ObjectState`]): a *base* with one entry per object
//! and a per-resource *log* of recent changes, folded into the base now and then.
//!
//! sled 0.34 costs about the same per written entry whatever its size (about 13 µs for
//! sequential keys, 23 µs for scattered ones), and a group commit changes the state of a few
//! hundred objects with scattered keys. So [`Store::put_watch_states`] writes **one** entry per
//! call, whatever the number of changes: a *log block* holding all of them.
//!
//! Layout (keys from `keys.rs`):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `watch_state` (base) | `resource:str object_key` (raw) | the state bytes |
//! | `watch_state_log` | `resource:str seq:u64` | a block: `1 count:u32` then per change `key_len:u32 key`, `0` (removed) or `1 len:u32 state`; stored LZ4-compressed (`2`, see `compress.rs`), an uncompressed block (schema 3) read as it is |
//!
//! `seq` grows with every block of a resource (the highest stored one + 1 after a restart), so
//! the log of a resource is its changes in the order they were made, and a later change of a
//! key wins over an earlier one (also within one block).
//!
//! **Fold.** When appending a block would take the log of a resource past [`LOG_MAX_CHANGES`]
//! changes or [`LOG_MAX_BYTES`] bytes of blocks, the log is first *folded* into the base: its
//! blocks are read in order, the latest change of each key is kept (in a map bounded by the log
//! bound), those are written into the base (state: insert; removal: remove) by one
//! `apply_batch`, then the folded blocks are removed by a second `apply_batch`. The saving is the
//! dedup: an object that changed many times within the window costs one base entry, and the
//! fold writes its keys in key order. A single call with more changes than the bound, or more
//! than [`LOG_MAX_CALL_CHANGES`] (a list's chunk of new objects, which the log would not
//! deduplicate), goes straight to the base (one `apply_batch`) after folding the log, so the log
//! never holds more than the bound and nothing logged shadows what the call wrote. A fold reports its figures (blocks, changes folded, base entries written) at
//! `debug` level.
//!
//! **Reads** ([`Store::for_each_watch_state`]): the latest change per key of the resource's log
//! is loaded into a map (bounded by the log bound, not by the number of objects), then the base
//! is scanned in key order and merged with it: a key changed in the log yields its logged state
//! or, when removed, nothing; the others yield their base state. Each live key is yielded once,
//! in key order, one at a time.
//!
//! **Crash safety.** `put_watch_states` is one sled write (one block, or one batch into the
//! base), so it is atomic. A fold writes the base first and removes the log blocks after; sled
//! recovers a prefix of its writes, so after a crash the store holds the pre-fold state, or the
//! base already updated with the log still in place, or the post-fold state. All three read
//! the same: the log is applied over the base, and applying it over a base that already holds it
//! changes nothing (the fold is idempotent), so the next fold simply redoes it. A reader never
//! sees a half-removed log either: log loads and folds are serialised by a lock.
//!
//! Concurrency: writes, folds and log loads of one `Store` take one lock (the service writes
//! states from one task, so it is uncontended). A restore running while the same resource is
//! being written yields, for each key, a state it had at some point during the call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{MutexGuard, PoisonError};

use herald_core::ObjectState;
use sled::IVec;

use crate::compress;
use crate::keys;
use crate::{Store, StoreError, tree};

/// Default bound of a resource's log in changes: when appending would exceed it, the log is
/// folded into the base first. A restore and a fold hold at most this many logged changes in
/// memory. Event states are small (a count), so for them this bound is met first.
pub(crate) const LOG_MAX_CHANGES: usize = 32_768;
/// Default bound of a resource's log in bytes of blocks (keys and states): 16 MiB.
pub(crate) const LOG_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Changes above which one `put_watch_states` call goes straight to the base (after folding the
/// log, so nothing logged shadows it): the chunks of 1,000 states a list sends are new objects
/// the log would not deduplicate, and logging them as blocks of ~400 KB raised the watcher's
/// peak RSS during the initial sync of 200,000 pods from 247 to 290 MB (`herald bench watch`).
/// A group commit of 256 watch lines changes at most about that many states.
pub(crate) const LOG_MAX_CALL_CHANGES: usize = 512;

/// Base entries per `apply_batch` of a fold. The fold's base writes need not be atomic (see
/// the module docs), and sled 0.34 keeps every node version a batch replaces until the batch
/// ends (one epoch guard): one batch of 32,768 scattered writes peaked 200 MB above the
/// start in `examples/write_memory.rs`, against 1,024 per batch.
const FOLD_BATCH: usize = 1024;

/// Format byte of a log block.
const BLOCK_FORMAT: u8 = 1;
/// Format byte of a compressed log block (`compress.rs`; what [`Store::put_watch_states`]
/// writes since schema 4): [`BLOCK_FORMAT`]'s bytes, LZ4-compressed.
const SEALED_FORMAT: u8 = 2;
/// Tag of a removal in a log block.
const REMOVED: u8 = 0;
/// Tag of a state in a log block.
const PRESENT: u8 = 1;

/// Key of the cluster identity in the `meta` tree ([`Store::adopt_cluster`]).
const CLUSTER_UID_KEY: &[u8] = b"cluster_uid";

/// What [`Store::adopt_cluster`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterIdentity {
    /// No identity was recorded (a new data directory, or one from before identities were
    /// kept): this one is now, and the checkpoints are kept.
    Recorded,
    /// The same cluster as before: the checkpoints stand.
    Same,
    /// Another cluster than the one the checkpoints came from (its uid here): they and the
    /// compact state were cleared.
    Changed {
        /// The uid recorded before.
        previous: String,
    },
}

/// How much a resource's log may hold before it is folded into the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogBound {
    /// Most changes (puts and removals, counted per block entry).
    pub changes: usize,
    /// Most bytes of blocks.
    pub bytes: usize,
}

impl Default for LogBound {
    fn default() -> Self {
        Self {
            changes: LOG_MAX_CHANGES,
            bytes: LOG_MAX_BYTES,
        }
    }
}

/// What the log of one resource holds, as far as this process knows (loaded from the log on the
/// first write of the resource).
#[derive(Debug, Clone, Copy, Default)]
struct LogSize {
    /// Changes in the log's blocks.
    changes: usize,
    /// Bytes of the log's blocks.
    bytes: usize,
    /// Sequence number of the next block.
    next_seq: u64,
}

/// The shared, lock-protected part of the watch-state store.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    bound: LogBound,
    /// Per resource; absent until its first write in this process.
    sizes: HashMap<String, LogSize>,
}

/// What one fold did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FoldStats {
    /// Log blocks folded (and removed).
    pub blocks: usize,
    /// Changes those blocks held.
    pub changes: usize,
    /// Base entries written (inserted or removed): one per distinct key.
    pub written: usize,
}

/// The latest change per object key of a log: `None` is a removal.
type Latest = BTreeMap<Vec<u8>, Option<IVec>>;

impl Store {
    /// Applies changes to the watcher's compact state of `resource`: each entry replaces the
    /// stored state of its key, or removes it when `state` is `None` (a later entry of the same
    /// key wins). Atomic: one sled write (a log block, see the module docs), plus, now and then,
    /// a fold of the resource's log into the base before it.
    ///
    /// The watcher sends a resource's state changes before the checkpoint that covers them, so
    /// after a crash the stored state is never older than the stored checkpoint (it may be
    /// newer, which the watcher's diff tolerates: re-applying a change it already has yields
    /// nothing).
    pub fn put_watch_states(
        &self,
        resource: &str,
        states: &[ObjectState],
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        // The block is only built when it is logged: a list's chunks go to the base.
        let block_len = block_len(states);
        let mut guard = self.log_state();
        let bound = guard.bound;
        let mut size = self.log_size(&mut guard, resource)?;
        let over = |size: &LogSize| {
            states.len() > LOG_MAX_CALL_CHANGES
                || size.changes + states.len() > bound.changes
                || size.bytes + block_len > bound.bytes
        };
        if size.bytes > 0 && over(&size) {
            self.fold_locked(resource, &mut size)?;
            guard.sizes.insert(resource.to_string(), size);
        }
        if over(&size) {
            // Too big for the log on its own (or a list's chunk), and the log is empty now
            // (nothing shadows the base): one batch into the base, as a fold would write it.
            let mut batch = sled::Batch::default();
            for s in states {
                let key = keys::parent_name_key(resource, &s.key);
                match &s.state {
                    Some(bytes) => batch.insert(key, bytes.as_slice()),
                    None => batch.remove(key),
                }
            }
            self.inner.watch_state.apply_batch(batch)?;
            tracing::trace!(%resource, changes = states.len(), "watch state stored in the base");
            return Ok(());
        }
        let seq = size.next_seq;
        self.inner.watch_state_log.insert(
            keys::watch_log_key(resource, seq),
            compress::seal(SEALED_FORMAT, &encode_block(states)),
        )?;
        size.changes += states.len();
        size.bytes += block_len;
        size.next_seq = seq + 1;
        guard.sizes.insert(resource.to_string(), size);
        tracing::trace!(%resource, changes = states.len(), seq, "watch state logged");
        Ok(())
    }

    /// Forgets every watch checkpoint and all compact state (base and log), and the cluster
    /// they belonged to ([`Store::adopt_cluster`]), so the next watcher lists from scratch (for
    /// a data directory reused against another cluster, such as each run of `herald demo` with
    /// its new simulator). Records and incidents are kept.
    pub fn reset_watch_positions(&self) -> Result<(), StoreError> {
        let mut guard = self.log_state();
        self.inner.checkpoints.clear()?;
        self.inner.meta.remove(CLUSTER_UID_KEY)?;
        // The log first: a base entry without its log is still a valid (older) picture.
        guard.sizes.clear();
        self.inner.watch_state_log.clear()?;
        self.inner.watch_state.clear()?;
        tracing::info!("watch checkpoints and compact state cleared");
        Ok(())
    }

    /// Removes every stored compact state of `resource` (base and log), leaving its checkpoint
    /// and every other resource alone: for states the watcher no longer persists (Event states,
    /// rebuilt from Event records since schema 3's data directories stored them). Returns how
    /// many entries were removed; 0, and no write, when there are none.
    pub fn clear_watch_states(&self, resource: &str) -> Result<u64, StoreError> {
        let mut guard = self.log_state();
        let prefix = keys::str_prefix(resource);
        let mut removed = 0u64;
        // The log first: a base entry without its log is still a valid (older) picture.
        for tree in [&self.inner.watch_state_log, &self.inner.watch_state] {
            let mut batch = sled::Batch::default();
            let mut in_batch = 0usize;
            for k in tree.scan_prefix(&prefix).keys() {
                batch.remove(k?);
                in_batch += 1;
                removed += 1;
                if in_batch == FOLD_BATCH {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    in_batch = 0;
                }
            }
            if in_batch > 0 {
                tree.apply_batch(batch)?;
            }
        }
        guard.sizes.remove(resource);
        if removed > 0 {
            tracing::info!(%resource, entries = removed, "stored compact state removed");
        }
        Ok(removed)
    }

    /// Ties the watch checkpoints and compact state to the cluster whose identity is `uid`
    /// (the uid of its `kube-system` namespace). The first call records it; a later call with
    /// another uid means the data directory now faces another cluster, whose
    /// resourceVersions and objects have nothing to do with the stored ones: the checkpoints
    /// and compact state are cleared ([`Store::reset_watch_positions`]) before the new uid is
    /// recorded, so the watcher lists from scratch. Records and incidents are kept.
    pub fn adopt_cluster(&self, uid: &str) -> Result<ClusterIdentity, StoreError> {
        let outcome = match self.cluster_uid()? {
            Some(previous) if previous == uid => return Ok(ClusterIdentity::Same),
            Some(previous) => {
                // Reset first: a crash before the new uid is written resets again next time.
                self.reset_watch_positions()?;
                ClusterIdentity::Changed { previous }
            }
            None => ClusterIdentity::Recorded,
        };
        self.inner.meta.insert(CLUSTER_UID_KEY, uid.as_bytes())?;
        Ok(outcome)
    }

    /// The cluster identity recorded by [`Store::adopt_cluster`], if any.
    pub fn cluster_uid(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner
            .meta
            .get(CLUSTER_UID_KEY)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The stored compact state of every object of `resource`, in key order, in one `Vec`.
    /// For many objects prefer [`Store::for_each_watch_state`], which holds one at a time.
    pub fn watch_states(&self, resource: &str) -> Result<Vec<ObjectState>, StoreError> {
        let mut out = Vec::new();
        self.for_each_watch_state(resource, |s| {
            out.push(s);
            Ok::<_, StoreError>(())
        })?;
        Ok(out)
    }

    /// Calls `f` with the stored compact state of every object of `resource`, in key order,
    /// one at a time (a streaming restore: memory stays at one state, the latest changes of the
    /// resource's log, bounded by the log bound, and sled's cache). Stops at the first error,
    /// from the store or from `f`; `E` only needs a conversion from [`StoreError`]
    /// (`anyhow::Error` has one). Returns how many states `f` was given.
    pub fn for_each_watch_state<E, F>(&self, resource: &str, mut f: F) -> Result<u64, E>
    where
        E: From<StoreError>,
        F: FnMut(ObjectState) -> Result<(), E>,
    {
        let latest = {
            let _guard = self.log_state();
            self.load_log(resource).map_err(E::from)?.0
        };
        let prefix = keys::str_prefix(resource);
        let mut logged = latest.into_iter().peekable();
        let mut n = 0u64;
        let mut give = |key: &[u8], state: &[u8]| -> Result<(), E> {
            n += 1;
            f(ObjectState {
                key: String::from_utf8_lossy(key).into_owned(),
                state: Some(state.to_vec()),
            })
        };
        for kv in self.inner.watch_state.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(|e| E::from(StoreError::Sled(e)))?;
            let name = &k[prefix.len()..];
            // Logged keys before this one exist only in the log.
            while let Some((key, _)) = logged.peek()
                && key.as_slice() < name
            {
                if let Some((key, Some(state))) = logged.next() {
                    give(&key, &state)?;
                }
            }
            match logged.peek() {
                Some((key, _)) if key.as_slice() == name => {
                    if let Some((key, Some(state))) = logged.next() {
                        give(&key, &state)?;
                    }
                }
                _ => give(name, &v)?,
            }
        }
        for (key, state) in logged {
            if let Some(state) = state {
                give(&key, &state)?;
            }
        }
        Ok(n)
    }

    /// Sets the log bound (tests use a small one to fold often).
    #[cfg(test)]
    pub(crate) fn set_watch_state_log_bound(&self, bound: LogBound) {
        self.log_state().bound = bound;
    }

    /// Folds the log of `resource` into the base now, whatever its size.
    #[cfg(test)]
    pub(crate) fn fold_watch_states(&self, resource: &str) -> Result<FoldStats, StoreError> {
        let mut guard = self.log_state();
        let mut size = self.log_size(&mut guard, resource)?;
        let stats = self.fold_locked(resource, &mut size)?;
        guard.sizes.insert(resource.to_string(), size);
        Ok(stats)
    }

    /// The lock over the log sizes. A panic while it was held leaves the sizes possibly stale,
    /// so they are forgotten (and reloaded from the log on the next write).
    fn log_state(&self) -> MutexGuard<'_, LogState> {
        self.inner
            .watch_state_lock
            .lock()
            .unwrap_or_else(|poisoned: PoisonError<_>| {
                let mut guard = poisoned.into_inner();
                guard.sizes.clear();
                guard
            })
    }

    /// What the log of `resource` holds (read from the log the first time).
    fn log_size(&self, guard: &mut LogState, resource: &str) -> Result<LogSize, StoreError> {
        if let Some(size) = guard.sizes.get(resource) {
            return Ok(*size);
        }
        let (_, size, _) = self.load_log(resource)?;
        guard.sizes.insert(resource.to_string(), size);
        Ok(size)
    }

    /// Reads the log of `resource` in order: the latest change per key, its size, and the keys
    /// of its blocks. Call with the lock held.
    fn load_log(&self, resource: &str) -> Result<(Latest, LogSize, Vec<IVec>), StoreError> {
        let prefix = keys::str_prefix(resource);
        let mut latest = Latest::new();
        let mut size = LogSize::default();
        let mut blocks = Vec::new();
        for kv in self.inner.watch_state_log.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let seq =
                k.get(prefix.len()..)
                    .and_then(keys::decode_u64)
                    .ok_or(StoreError::CorruptKey {
                        tree: tree::WATCH_STATE_LOG,
                    })?;
            let raw = open_block(v)?;
            size.changes += decode_block(&raw, |key, state| {
                latest.insert(key.to_vec(), state);
            })?;
            size.bytes += raw.len();
            size.next_seq = size.next_seq.max(seq.saturating_add(1));
            blocks.push(k);
        }
        Ok((latest, size, blocks))
    }

    /// Folds the log of `resource` into the base (see the module docs) and leaves `size`
    /// describing the empty log. Call with the lock held.
    fn fold_locked(&self, resource: &str, size: &mut LogSize) -> Result<FoldStats, StoreError> {
        let (latest, loaded, blocks) = self.load_log(resource)?;
        size.next_seq = size.next_seq.max(loaded.next_seq);
        let stats = FoldStats {
            blocks: blocks.len(),
            changes: loaded.changes,
            written: latest.len(),
        };
        if blocks.is_empty() {
            size.changes = 0;
            size.bytes = 0;
            return Ok(stats);
        }
        let prefix = keys::str_prefix(resource);
        // The base first, in key order and in batches of FOLD_BATCH, then the log blocks in
        // one batch: any prefix of these writes reads the same (see the module docs).
        let mut base = sled::Batch::default();
        let mut in_batch = 0;
        for (key, state) in latest {
            let mut full = Vec::with_capacity(prefix.len() + key.len());
            full.extend_from_slice(&prefix);
            full.extend_from_slice(&key);
            match state {
                Some(state) => base.insert(full, state),
                None => base.remove(full),
            }
            in_batch += 1;
            if in_batch == FOLD_BATCH {
                self.inner
                    .watch_state
                    .apply_batch(std::mem::take(&mut base))?;
                in_batch = 0;
            }
        }
        self.inner.watch_state.apply_batch(base)?;
        let mut log = sled::Batch::default();
        for k in blocks {
            log.remove(k);
        }
        self.inner.watch_state_log.apply_batch(log)?;
        size.changes = 0;
        size.bytes = 0;
        tracing::debug!(
            %resource,
            blocks = stats.blocks,
            changes = stats.changes,
            written = stats.written,
            "watch state log folded into the base"
        );
        Ok(stats)
    }
}

/// Encodes the changes of one call as a log block (see the module docs).
fn encode_block(states: &[ObjectState]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block_len(states));
    out.push(BLOCK_FORMAT);
    push_len(&mut out, states.len());
    for s in states {
        push_len(&mut out, s.key.len());
        out.extend_from_slice(s.key.as_bytes());
        match &s.state {
            Some(v) => {
                out.push(PRESENT);
                push_len(&mut out, v.len());
                out.extend_from_slice(v);
            }
            None => out.push(REMOVED),
        }
    }
    out
}

/// The length of [`encode_block`]'s block of `states`, without building it.
fn block_len(states: &[ObjectState]) -> usize {
    let entries: usize = states
        .iter()
        .map(|s| 4 + s.key.len() + 1 + s.state.as_ref().map_or(0, |v| 4 + v.len()))
        .sum();
    1 + 4 + entries
}

/// Appends a length as a big-endian `u32`. A key or state of 4 GiB or more (never seen: sled
/// keeps a value in memory whole) gets a wrong length, but its block is then far over the byte
/// bound, so `put_watch_states` writes that call into the base and drops the block.
fn push_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

/// The raw block ([`BLOCK_FORMAT`]) of a stored log value: decompressed when it is sealed,
/// the value itself otherwise (an uncompressed block from before schema 4).
fn open_block(stored: IVec) -> Result<IVec, StoreError> {
    compress::open_ivec(SEALED_FORMAT, stored).ok_or(StoreError::CorruptValue {
        tree: tree::WATCH_STATE_LOG,
    })
}

/// Calls `f` with each change of a block, in order (the key, and the state as a slice of the
/// block or `None` for a removal); returns how many there were.
fn decode_block(block: &IVec, mut f: impl FnMut(&[u8], Option<IVec>)) -> Result<usize, StoreError> {
    let corrupt = || StoreError::CorruptValue {
        tree: tree::WATCH_STATE_LOG,
    };
    let bytes: &[u8] = block;
    let (&format, _) = bytes.split_first().ok_or(StoreError::UnsupportedFormat {
        what: tree::WATCH_STATE_LOG,
        version: 0,
    })?;
    if format != BLOCK_FORMAT {
        return Err(StoreError::UnsupportedFormat {
            what: tree::WATCH_STATE_LOG,
            version: format,
        });
    }
    let mut at: usize = 1;
    let mut take = |len: usize| -> Result<usize, StoreError> {
        let start = at;
        at = at
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(corrupt)?;
        Ok(start)
    };
    let read_len = |start: usize| -> usize {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[start..start + 4]);
        u32::from_be_bytes(b) as usize
    };
    let count = read_len(take(4)?);
    for _ in 0..count {
        let key_len = read_len(take(4)?);
        let key_at = take(key_len)?;
        let tag = bytes[take(1)?];
        let state = match tag {
            PRESENT => {
                let len = read_len(take(4)?);
                Some(block.subslice(take(len)?, len))
            }
            REMOVED => None,
            _ => return Err(corrupt()),
        };
        f(&bytes[key_at..key_at + key_len], state);
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn st(key: &str, v: Option<&str>) -> ObjectState {
        ObjectState {
            key: key.into(),
            state: v.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn log_blocks(store: &Store) -> usize {
        store.inner.watch_state_log.len()
    }

    fn base_entries(store: &Store) -> usize {
        store.inner.watch_state.len()
    }

    fn small(store: &Store, changes: usize) {
        store.set_watch_state_log_bound(LogBound {
            changes,
            bytes: LOG_MAX_BYTES,
        });
    }

    #[test]
    fn blocks_round_trip_and_reject_damage() {
        let states = vec![st("a", Some("1")), st("", None), st("b\0c", Some(""))];
        let block = IVec::from(encode_block(&states));
        assert_eq!(block.len(), block_len(&states));
        let mut back = Vec::new();
        let n = decode_block(&block, |k, v| {
            back.push((k.to_vec(), v.map(|v| v.to_vec())))
        })
        .unwrap();
        assert_eq!(n, 3);
        let expected: Vec<_> = states
            .iter()
            .map(|s| (s.key.as_bytes().to_vec(), s.state.clone()))
            .collect();
        assert_eq!(back, expected);
        for cut in 1..block.len() {
            let short = IVec::from(&block[..cut]);
            assert!(decode_block(&short, |_, _| {}).is_err(), "cut at {cut}");
        }
        let mut long = block.to_vec();
        long.push(0);
        assert!(matches!(
            decode_block(&IVec::from(long), |_, _| {}),
            Err(StoreError::CorruptValue { .. })
        ));
        let mut future = block.to_vec();
        future[0] = 9;
        assert!(matches!(
            decode_block(&IVec::from(future), |_, _| {}),
            Err(StoreError::UnsupportedFormat { version: 9, .. })
        ));
    }

    #[test]
    fn one_block_per_call_and_a_fold_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = reopen(dir.path());
        small(&store, 4);
        store
            .put_watch_states("pods", &[st("a", Some("A1")), st("b", Some("B1"))])
            .unwrap();
        store
            .put_watch_states("pods", &[st("a", Some("A2")), st("c", Some("C1"))])
            .unwrap();
        assert_eq!((log_blocks(&store), base_entries(&store)), (2, 0));
        // 4 + 2 > 4: the log is folded first, deduplicated (a once), then this block is logged.
        store
            .put_watch_states("pods", &[st("b", None), st("d", Some("D1"))])
            .unwrap();
        assert_eq!((log_blocks(&store), base_entries(&store)), (1, 3));
        let expected = vec![
            st("a", Some("A2")),
            st("c", Some("C1")),
            st("d", Some("D1")),
        ];
        assert_eq!(store.watch_states("pods").unwrap(), expected);
        let stats = store.fold_watch_states("pods").unwrap();
        assert_eq!(
            stats,
            FoldStats {
                blocks: 1,
                changes: 2,
                written: 2
            }
        );
        assert_eq!((log_blocks(&store), base_entries(&store)), (0, 3));
        assert_eq!(store.watch_states("pods").unwrap(), expected);
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.watch_states("pods").unwrap(), expected);
    }

    #[test]
    fn a_call_larger_than_the_bound_goes_to_the_base_after_a_fold() {
        let dir = tempfile::tempdir().unwrap();
        let store = reopen(dir.path());
        small(&store, 3);
        store
            .put_watch_states("pods", &[st("a", Some("A1"))])
            .unwrap();
        let big = [
            st("a", Some("A2")),
            st("b", Some("B1")),
            st("c", Some("C1")),
            st("b", None),
        ];
        store.put_watch_states("pods", &big).unwrap();
        assert_eq!((log_blocks(&store), base_entries(&store)), (0, 2));
        assert_eq!(
            store.watch_states("pods").unwrap(),
            vec![st("a", Some("A2")), st("c", Some("C1"))]
        );
        // The byte bound counts too.
        store.set_watch_state_log_bound(LogBound {
            changes: 100,
            bytes: 64,
        });
        store
            .put_watch_states("pods", &[st("a", Some("A3"))])
            .unwrap();
        assert_eq!(log_blocks(&store), 1);
        let long = "x".repeat(100);
        store
            .put_watch_states("pods", &[st("d", Some(&long))])
            .unwrap();
        assert_eq!((log_blocks(&store), base_entries(&store)), (0, 3));
        assert_eq!(
            store.watch_states("pods").unwrap(),
            vec![
                st("a", Some("A3")),
                st("c", Some("C1")),
                st("d", Some(&long))
            ]
        );
    }

    #[test]
    fn a_list_sized_call_goes_to_the_base_after_a_fold() {
        let dir = tempfile::tempdir().unwrap();
        let store = reopen(dir.path());
        store
            .put_watch_states("pods", &[st("k0", Some("logged")), st("zz", Some("Z"))])
            .unwrap();
        assert_eq!((log_blocks(&store), base_entries(&store)), (1, 0));
        let chunk: Vec<ObjectState> = (0..=LOG_MAX_CALL_CHANGES)
            .map(|i| st(&format!("k{i}"), Some("listed")))
            .collect();
        store.put_watch_states("pods", &chunk).unwrap();
        assert_eq!(
            (log_blocks(&store), base_entries(&store)),
            (0, LOG_MAX_CALL_CHANGES + 2),
            "the log was folded, the chunk written to the base"
        );
        let all = store.watch_states("pods").unwrap();
        assert_eq!(all.len(), LOG_MAX_CALL_CHANGES + 2);
        assert!(
            all.contains(&st("k0", Some("listed"))),
            "not shadowed by the log"
        );
        assert!(all.contains(&st("zz", Some("Z"))));
        // A group commit's worth is logged again.
        store
            .put_watch_states("pods", &[st("k1", Some("changed"))])
            .unwrap();
        assert_eq!(log_blocks(&store), 1);
    }

    #[test]
    fn a_crash_between_the_two_writes_of_a_fold_reads_the_same() {
        // The state after the base batch and before the log removal: base updated, log intact.
        let dir = tempfile::tempdir().unwrap();
        let store = reopen(dir.path());
        store
            .put_watch_states("pods", &[st("a", Some("A1")), st("b", Some("B1"))])
            .unwrap();
        store
            .put_watch_states("pods", &[st("a", None), st("c", Some("C1"))])
            .unwrap();
        let before = store.watch_states("pods").unwrap();
        let (latest, _, _) = store.load_log("pods").unwrap();
        for (key, state) in latest {
            let full = keys::parent_name_key("pods", &String::from_utf8(key).unwrap());
            match state {
                Some(v) => store.inner.watch_state.insert(full, v).unwrap(),
                None => store.inner.watch_state.remove(full).unwrap(),
            };
        }
        assert_eq!(store.watch_states("pods").unwrap(), before);
        drop(store);
        let store = reopen(dir.path());
        assert_eq!(store.watch_states("pods").unwrap(), before);
        store.put_watch_states("pods", &[st("b", None)]).unwrap();
        store.fold_watch_states("pods").unwrap();
        assert_eq!(
            store.watch_states("pods").unwrap(),
            vec![st("c", Some("C1"))]
        );
        assert_eq!(log_blocks(&store), 0);
    }

    #[test]
    fn sequence_numbers_continue_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = reopen(dir.path());
            store
                .put_watch_states("pods", &[st("a", Some("1"))])
                .unwrap();
            store
                .put_watch_states("pods", &[st("a", Some("2"))])
                .unwrap();
        }
        let store = reopen(dir.path());
        store
            .put_watch_states("pods", &[st("a", Some("3"))])
            .unwrap();
        assert_eq!(log_blocks(&store), 3);
        assert_eq!(
            store.watch_states("pods").unwrap(),
            vec![st("a", Some("3"))]
        );
    }

    /// One step of the property test.
    #[derive(Debug, Clone)]
    enum Step {
        /// `put_watch_states(resource, changes)`: (key index, value or removal).
        Put(bool, Vec<(u8, Option<u8>)>),
        /// A new log bound (in changes) from now on.
        Bound(usize),
        /// An explicit fold of one resource.
        Fold(bool),
        /// Close and reopen the store (the bound back to the test's).
        Reopen,
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (
                any::<bool>(),
                proptest::collection::vec((0u8..12, proptest::option::of(any::<u8>())), 0..7)
            )
                .prop_map(|(r, c)| Step::Put(r, c)),
            1 => (1usize..20).prop_map(Step::Bound),
            1 => any::<bool>().prop_map(Step::Fold),
            1 => Just(Step::Reopen),
        ]
    }

    fn resource(pods: bool) -> &'static str {
        // A resource name that is a prefix of the other one.
        if pods { "pods" } else { "pod" }
    }

    fn key(i: u8) -> String {
        // Keys sharing prefixes, so the merge order is exercised.
        [
            "", "a", "a/b", "a\0", "ab", "b", "ns/x", "ns/x-1", "ns/y", "z", "zz", "\u{e9}",
        ][usize::from(i) % 12]
            .to_string()
    }

    /// Opens the store in `dir` (a reopen right after a close waits for sled's lock itself).
    fn reopen(dir: &Path) -> Store {
        Store::open(dir).unwrap()
    }

    fn open(dir: &Path, bound: usize) -> Store {
        let store = reopen(dir);
        small(&store, bound);
        store
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn states_match_a_model(first_bound in 1usize..20,
                                steps in proptest::collection::vec(any_step(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut bound = first_bound;
            let mut store = open(dir.path(), bound);
            let mut model: [BTreeMap<String, Vec<u8>>; 2] = Default::default();
            for step in steps {
                let written = match &step {
                    // An empty call writes nothing (and folds nothing).
                    Step::Put(pods, changes) if !changes.is_empty() => Some(*pods),
                    _ => None,
                };
                match step {
                    Step::Put(pods, changes) => {
                        let states: Vec<ObjectState> = changes
                            .iter()
                            .map(|&(k, v)| ObjectState { key: key(k), state: v.map(|v| vec![v; 3]) })
                            .collect();
                        store.put_watch_states(resource(pods), &states).unwrap();
                        let m = &mut model[usize::from(pods)];
                        for s in states {
                            match s.state {
                                Some(v) => { m.insert(s.key, v); }
                                None => { m.remove(&s.key); }
                            }
                        }
                    }
                    Step::Bound(b) => {
                        bound = b;
                        small(&store, bound);
                    }
                    Step::Fold(pods) => {
                        store.fold_watch_states(resource(pods)).unwrap();
                        prop_assert_eq!(
                            store.inner.watch_state_log.scan_prefix(keys::str_prefix(resource(pods))).count(),
                            0
                        );
                    }
                    Step::Reopen => {
                        drop(store);
                        store = open(dir.path(), bound);
                    }
                }
                for pods in [false, true] {
                    let expected: Vec<ObjectState> = model[usize::from(pods)]
                        .iter()
                        .map(|(k, v)| ObjectState { key: k.clone(), state: Some(v.clone()) })
                        .collect();
                    let mut seen = Vec::new();
                    let n = store
                        .for_each_watch_state(resource(pods), |s| {
                            seen.push(s);
                            Ok::<_, StoreError>(())
                        })
                        .unwrap();
                    prop_assert_eq!(n, expected.len() as u64);
                    prop_assert_eq!(seen, expected);
                }
                // After a write the log holds no more than the bound (a bigger call goes to the
                // base); a lowered bound takes effect at the next write of each resource.
                if let Some(pods) = written {
                    let (_, size, _) = store.load_log(resource(pods)).unwrap();
                    prop_assert!(size.changes <= bound,
                                 "{} changes logged, bound {}", size.changes, bound);
                }
            }
        }
    }
}
