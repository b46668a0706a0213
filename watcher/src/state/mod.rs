//! Compact per-object state and transition detection: plain synchronous functions
//! (`apply(&mut State, &Object, Source) -> changes`, `delete(...)`), with no I/O, so they are
//! tested directly with fixture objects.
//!
//! The state never holds a Kubernetes object, only the few fields transitions are computed from
//! (see [`pod::PodEntry`], [`node::NodeEntry`], [`event::EventState`]). Objects are keyed by uid
//! (by `namespace/name` when an object has no uid).
//!
//! # Objects seen for the first time
//!
//! What an object without state produces depends on where it was seen ([`Source`]) and on
//! whether the state was filled by a complete list ([`FirstSight`]):
//!
//! | source | state listed before | treated as | pods | nodes | events |
//! |---|---|---|---|---|---|
//! | list | no (initial sync) | [`FirstSight::Seed`] | current problems only¹ | bad conditions¹ | full count¹ |
//! | list (re-list) | yes | [`FirstSight::New`] | `Created` + everything | `Created` + bad conditions | full count |
//! | watch ADDED | either | [`FirstSight::New`] | `Created` + everything | `Created` + bad conditions | full count |
//! | watch MODIFIED | no (resumed) | [`FirstSight::Resumed`] | current problems, recent terminations², eviction, deletion | bad conditions | delta 1³ |
//! | watch MODIFIED | yes | [`FirstSight::New`] | as ADDED | as ADDED | full count |
//!
//! ¹ Only with [`StateOptions::report_on_seed`]; otherwise the initial sync is silent.
//! "Current problems" are containers waiting with a problem reason ([`pod::is_problem_waiting`]);
//! "bad conditions" are `Ready` not `True` or a pressure/`NetworkUnavailable` condition `True`
//! (reported as `ConditionChanged` with `from: None`). Historical facts (old terminations, an
//! eviction that already happened, the phase) are not reported on the initial sync: they are in
//! the Events recorded by the same sync, and reporting them would raise incidents for the past.
//!
//! ² Terminations that finished at or after [`StateOptions::resume_floor`].
//!
//! ³ The watch resumed from a checkpoint, so this Event existed before and was recorded up to
//! some count we no longer know; at least one new occurrence happened. Recording 1 may
//! under-count but never records an occurrence twice.

use std::collections::HashSet;

use herald_core::{Record, Timestamp};
use serde::de::DeserializeOwned;

use crate::objects::{KubeObject, ObjectMeta};

pub mod event;
pub mod node;
pub mod pod;

/// Where an object was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In a list response (initial sync, or a re-list after `410 Expired`).
    List,
    /// In a watch `ADDED` event.
    Added,
    /// In a watch `MODIFIED` event.
    Modified,
}

/// How an object without state is treated (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSight {
    /// Initial sync: remember it; report only current problems (when enabled).
    Seed,
    /// A new object: report its creation and everything about it.
    New,
    /// First seen on a watch resumed without a list: it existed before, with an unknown state.
    Resumed,
}

impl FirstSight {
    /// The treatment of an object without state seen from `source`, when the state was (`listed`)
    /// or was not filled by a complete list.
    pub fn of(source: Source, listed: bool) -> Self {
        match (source, listed) {
            (Source::List, false) => FirstSight::Seed,
            (Source::Modified, false) => FirstSight::Resumed,
            _ => FirstSight::New,
        }
    }
}

/// Options shared by the state of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateOptions {
    /// Whether the initial sync ([`FirstSight::Seed`]) reports current problems and records
    /// existing Events.
    pub report_on_seed: bool,
    /// For [`FirstSight::Resumed`] pods: container terminations that finished at or after this
    /// instant are reported; `None` reports none.
    pub resume_floor: Option<Timestamp>,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            report_on_seed: true,
            resume_floor: None,
        }
    }
}

/// The state key of an object: its uid, or `namespace/name` (`name` for cluster-scoped objects)
/// when it has none. `None` when the object has no name (it is then malformed).
pub fn object_key(meta: &ObjectMeta) -> Option<String> {
    state_key(
        meta.uid.as_deref(),
        meta.namespace.as_deref(),
        meta.name.as_deref(),
    )
}

/// [`object_key`] from its parts (empty strings count as absent), for keys rebuilt from
/// records rather than objects.
pub(crate) fn state_key(
    uid: Option<&str>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Option<String> {
    let name = name.filter(|n| !n.is_empty())?;
    if let Some(uid) = uid.filter(|u| !u.is_empty()) {
        return Some(uid.to_string());
    }
    Some(match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    })
}

/// A non-empty string, owned.
pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// [`non_empty`] of an owned string (moved, not copied).
pub(crate) fn non_empty_owned(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// What records are stamped with.
#[derive(Debug, Clone)]
pub(crate) struct RecordCtx<'a> {
    /// Cluster name.
    pub cluster: &'a str,
    /// Observation time.
    pub now: Timestamp,
}

/// The state of one resource as the generic list/watch loop drives it.
pub(crate) trait Tracker: Default + Send + 'static {
    /// The typed object.
    type Object: KubeObject;

    /// The object's state key; `None` when it is unusable (no name).
    fn key(obj: &Self::Object) -> Option<String>;
    /// Marks the state as filled by a complete list.
    fn set_listed(&mut self);
    /// Replaces the options (a state restored before the watcher ran gets the run's options).
    fn set_options(&mut self, opts: StateOptions);
    /// Applies an object seen in a list or an ADDED/MODIFIED event. It takes the object, so
    /// a record can move the object's strings instead of copying them (an Event record holds
    /// most of its Event's).
    fn apply(&mut self, obj: Self::Object, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record>;
    /// Applies a DELETED event.
    fn delete(&mut self, obj: &Self::Object, ctx: &RecordCtx<'_>) -> Vec<Record>;
    /// After a re-list: forgets (and reports as deleted, where that means something) every
    /// object whose key is not in `listed`.
    fn remove_unlisted(&mut self, listed: &HashSet<String>, ctx: &RecordCtx<'_>) -> Vec<Record>;
    /// Number of objects tracked.
    fn len(&self) -> usize;
    /// Keys of every tracked object.
    fn keys(&self) -> Vec<String>;
    /// The compact state of `key`, encoded for persistence; `None` when it is not tracked.
    fn export(&self, key: &str) -> Option<Vec<u8>>;
    /// Restores the state of `key` from bytes written by [`Tracker::export`].
    fn import(&mut self, key: String, bytes: &[u8]) -> Result<(), String>;
}

/// Encodes one entry for [`Tracker::export`].
pub(crate) fn encode_entry<E: serde::Serialize>(entry: &E) -> Option<Vec<u8>> {
    serde_json::to_vec(entry).ok()
}

/// Decodes one entry for [`Tracker::import`].
pub(crate) fn decode_entry<E: DeserializeOwned>(bytes: &[u8]) -> Result<E, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_table() {
        assert_eq!(FirstSight::of(Source::List, false), FirstSight::Seed);
        assert_eq!(FirstSight::of(Source::List, true), FirstSight::New);
        assert_eq!(FirstSight::of(Source::Added, false), FirstSight::New);
        assert_eq!(FirstSight::of(Source::Modified, false), FirstSight::Resumed);
        assert_eq!(FirstSight::of(Source::Modified, true), FirstSight::New);
    }

    #[test]
    fn keys() {
        let mut m = ObjectMeta {
            name: Some("a".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        assert_eq!(object_key(&m).as_deref(), Some("ns/a"));
        m.uid = Some("u-1".into());
        assert_eq!(object_key(&m).as_deref(), Some("u-1"));
        m.name = None;
        assert_eq!(object_key(&m), None);
    }
}
