//! Offline ingestion of a recorded watch stream, synchronously, line by line: the same frame
//! parsing, object decoding and transition detection as the live watch loop
//! ([`crate::watcher`]), without a connection. It produces the [`WatchItem`]s the live loop
//! would send for those lines (records, then the changed compact states, then a checkpoint),
//! so a consumer persists them exactly as the service does. `herald bench ingest` measures
//! the pipeline with it.

use std::collections::HashSet;

use herald_core::{Checkpoint, ObjectState, Timestamp};

use crate::config::Resource;
use crate::decode::{self, Frame};

use crate::state::event::EventState;
use crate::state::node::NodeState;
use crate::state::pod::PodState;
use crate::state::{RecordCtx, Source, StateOptions, Tracker};
use crate::stats::WatcherStats;
use crate::watcher::{StatesPermit, WatchItem, apply_watch_object};

/// Errors of [`Replay`].
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A seed object is not a JSON object of the resource's kind.
    #[error("seed object of {resource} is unusable: {message}")]
    Seed {
        /// The resource.
        resource: Resource,
        /// What is wrong.
        message: String,
    },
}

/// What one line did.
enum LineFrame {
    /// An object event: its records and resourceVersion.
    Object {
        records: Vec<herald_core::Record>,
        rv: Option<String>,
    },
    /// A bookmark.
    Bookmark { rv: Option<String> },
    /// An error or unknown event type (nothing to apply).
    Ignored,
}

/// What a replay tracks (one of the resource states).
trait ReplayState: Send {
    fn seed(&mut self, object: &[u8], ctx: &RecordCtx<'_>) -> Result<(), String>;
    fn set_listed(&mut self);
    fn apply_line(
        &mut self,
        line: &[u8],
        dirty: Option<&mut HashSet<String>>,
        res: Resource,
        stats: &WatcherStats,
        ctx: &RecordCtx<'_>,
    ) -> Result<LineFrame, String>;
    fn export(&self, key: &str) -> Option<Vec<u8>>;
    fn len(&self) -> usize;
}

impl<T: Tracker> ReplayState for T {
    fn seed(&mut self, object: &[u8], ctx: &RecordCtx<'_>) -> Result<(), String> {
        let obj: T::Object = serde_json::from_slice(object).map_err(|e| e.to_string())?;
        self.apply(obj, Source::List, ctx);
        Ok(())
    }

    fn set_listed(&mut self) {
        Tracker::set_listed(self);
    }

    fn apply_line(
        &mut self,
        line: &[u8],
        dirty: Option<&mut HashSet<String>>,
        res: Resource,
        stats: &WatcherStats,
        ctx: &RecordCtx<'_>,
    ) -> Result<LineFrame, String> {
        Ok(match decode::parse_frame::<T::Object>(line)? {
            Frame::Object { kind, object } => {
                let rv = object.resource_version();
                let records =
                    apply_watch_object(self, dirty, res, stats, kind, object, rv.as_deref(), ctx);
                LineFrame::Object { records, rv }
            }
            Frame::Bookmark {
                resource_version, ..
            } => LineFrame::Bookmark {
                rv: resource_version,
            },
            Frame::Error { .. } | Frame::Other(_) => LineFrame::Ignored,
        })
    }

    fn export(&self, key: &str) -> Option<Vec<u8>> {
        Tracker::export(self, key)
    }

    fn len(&self) -> usize {
        Tracker::len(self)
    }
}

/// A resource's watch state driven by recorded lines instead of a connection.
pub struct Replay {
    res: Resource,
    cluster: String,
    state: Box<dyn ReplayState>,
    stats: WatcherStats,
    persist_state: bool,
    checkpoint_every: u32,
    rv: Option<String>,
    checkpointed: Option<String>,
    dirty: HashSet<String>,
    quiet_events: u32,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("resource", &self.res)
            .field("tracked", &self.state.len())
            .field("resource_version", &self.rv)
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// A replay of `res` for cluster `cluster`, persisting compact state like the service
    /// (`persist_state`), checkpointing after at most `checkpoint_every` events without records
    /// (the service's default is 100). Seeded objects are treated as the service's initial
    /// sync with the default `initial_sync: record`.
    pub fn new(res: Resource, cluster: &str, persist_state: bool, checkpoint_every: u32) -> Self {
        let opts = StateOptions::default();
        let state: Box<dyn ReplayState> = match res {
            Resource::Events => Box::new(EventState::new(opts)),
            Resource::Pods => Box::new(PodState::new(opts)),
            Resource::Nodes => Box::new(NodeState::new(opts)),
        };
        Self {
            res,
            cluster: cluster.to_string(),
            state,
            stats: WatcherStats::default(),
            // As the live watcher with the default `initial_sync: record`: Event states are
            // rebuilt from their records, not persisted (`WatcherConfig::persists_states_of`).
            persist_state: persist_state && res != Resource::Events,
            checkpoint_every: checkpoint_every.max(1),
            rv: None,
            checkpointed: None,
            dirty: HashSet::new(),
            quiet_events: 0,
        }
    }

    /// Applies one object (JSON) as an item of the initial list.
    pub fn seed(&mut self, object: &[u8], now: Timestamp) -> Result<(), ReplayError> {
        let ctx = RecordCtx {
            cluster: &self.cluster,
            now,
        };
        self.state
            .seed(object, &ctx)
            .map_err(|message| ReplayError::Seed {
                resource: self.res,
                message,
            })
    }

    /// Ends the initial list at resourceVersion `rv`: from now on lines are watch events.
    pub fn finish_seed(&mut self, rv: &str) {
        self.state.set_listed();
        self.rv = Some(rv.to_string());
        self.checkpointed = Some(rv.to_string());
    }

    /// Objects tracked.
    pub fn tracked(&self) -> usize {
        self.state.len()
    }

    /// The counters (malformed lines and objects, records).
    pub fn stats(&self) -> &WatcherStats {
        &self.stats
    }

    /// Applies one watch line (`{"type":..,"object":..}`) observed at `now`, returning what
    /// the live loop sends for it, in order: records, changed states, checkpoint. A malformed
    /// line or object is counted in [`Replay::stats`] and yields nothing.
    pub fn apply_line(&mut self, line: &[u8], now: Timestamp) -> Vec<WatchItem> {
        let text = line.trim_ascii();
        if text.is_empty() {
            return Vec::new();
        }
        let ctx = RecordCtx {
            cluster: &self.cluster,
            now,
        };
        let dirty = self.persist_state.then_some(&mut self.dirty);
        let frame = match self
            .state
            .apply_line(text, dirty, self.res, &self.stats, &ctx)
        {
            Ok(f) => f,
            Err(e) => {
                self.stats.add_malformed(self.res, 1);
                tracing::warn!(resource = %self.res, error = %e, "malformed watch line skipped");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        match frame {
            LineFrame::Object { records, rv } => {
                if let Some(rv) = rv {
                    self.rv = Some(rv);
                }
                self.quiet_events += 1;
                if !records.is_empty() || self.quiet_events >= self.checkpoint_every {
                    self.stats.add_records(self.res, records.len() as u64);
                    out.extend(records.into_iter().map(WatchItem::Record));
                    self.checkpoint(&mut out);
                    self.quiet_events = 0;
                }
            }
            LineFrame::Bookmark { rv } => {
                if let Some(rv) = rv {
                    self.rv = Some(rv);
                }
                self.checkpoint(&mut out);
                self.quiet_events = 0;
            }
            LineFrame::Ignored => {}
        }
        out
    }

    /// The changed states and a checkpoint at the last resourceVersion, as the live loop sends
    /// them when a stream ends.
    pub fn flush(&mut self) -> Vec<WatchItem> {
        let mut out = Vec::new();
        self.checkpoint(&mut out);
        out
    }

    fn checkpoint(&mut self, out: &mut Vec<WatchItem>) {
        if !self.dirty.is_empty() {
            let mut keys: Vec<String> = self.dirty.drain().collect();
            keys.sort_unstable();
            let states = keys
                .into_iter()
                .map(|k| {
                    let state = self.state.export(&k);
                    ObjectState { key: k, state }
                })
                .collect();
            out.push(WatchItem::States {
                resource: self.res.as_str().to_string(),
                states,
                permit: StatesPermit::none(),
            });
        }
        let Some(rv) = self.rv.clone() else { return };
        if self.checkpointed.as_ref() == Some(&rv) {
            return;
        }
        out.push(WatchItem::Checkpoint(Checkpoint {
            resource: self.res.as_str().to_string(),
            resource_version: rv.clone(),
        }));
        self.checkpointed = Some(rv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rv: u64, restarts: u32, reason: Option<&str>) -> String {
        let last = match reason {
            Some(r) => format!(
                r#","lastState":{{"terminated":{{"exitCode":137,"reason":"{r}","startedAt":"2026-12-01T10:00:00Z","finishedAt":"2026-12-01T10:05:00Z"}}}}"#
            ),
            None => String::new(),
        };
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web-1","namespace":"shop","uid":"u-1","resourceVersion":"{rv}"}},"spec":{{"nodeName":"node-a","containers":[{{"name":"app","image":"app:1"}}]}},"status":{{"phase":"Running","containerStatuses":[{{"name":"app","image":"app:1","imageID":"","ready":true,"restartCount":{restarts},"state":{{"running":{{"startedAt":"2026-12-01T10:05:01Z"}}}}{last}}}]}}}}"#
        )
    }

    #[test]
    fn replays_a_watch_like_the_live_loop() {
        let now = Timestamp::from_second(1_796_000_000).expect("valid");
        let mut r = Replay::new(Resource::Pods, "c", true, 100);
        r.seed(pod(10, 0, None).as_bytes(), now).expect("seed");
        r.finish_seed("10");
        assert_eq!(r.tracked(), 1);
        // An unchanged pod: no record, no checkpoint (fewer than 100 quiet events).
        let quiet = format!(r#"{{"type":"MODIFIED","object":{}}}"#, pod(11, 0, None));
        assert!(r.apply_line(quiet.as_bytes(), now).is_empty());
        // An OOM kill: its record(s), then the state, then the checkpoint.
        let oom = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            pod(12, 1, Some("OOMKilled"))
        );
        let items = r.apply_line(oom.as_bytes(), now);
        let records = items
            .iter()
            .filter(|i| matches!(i, WatchItem::Record(_)))
            .count();
        assert!(records >= 1, "{items:?}");
        assert!(matches!(items[items.len() - 2], WatchItem::States { .. }));
        assert_eq!(
            items.last(),
            Some(&WatchItem::Checkpoint(Checkpoint {
                resource: "pods".into(),
                resource_version: "12".into()
            }))
        );
        // A malformed line is counted and skipped.
        assert!(r.apply_line(b"{not json", now).is_empty());
        assert_eq!(r.stats().resource(Resource::Pods).malformed, 1);
        // A bookmark moves the position.
        let bm = r#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"20"}}}"#;
        assert_eq!(
            r.apply_line(bm.as_bytes(), now),
            vec![WatchItem::Checkpoint(Checkpoint {
                resource: "pods".into(),
                resource_version: "20".into()
            })]
        );
    }
}
