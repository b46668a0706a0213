//! core/v1 Event state: the last seen `count` of each Event (by uid), so that an Event is
//! recorded when first seen (`count_delta = count`) and again only when its count grows
//! (`count_delta = new - old`). An update without count growth records nothing; a deleted Event
//! (TTL expiry) is forgotten silently.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::objects::{Event, EventSeries, EventV1};
use herald_core::{
    EventRecord, EventSource, ObjectKind, ObjectRef, Record, RecordBody, RecordId, Timestamp,
};

use super::{
    FirstSight, RecordCtx, Source, StateOptions, Tracker, non_empty, non_empty_owned, object_key,
};

/// The state of every Event: uid -> last seen count.
#[derive(Debug, Default)]
pub struct EventState {
    counts: HashMap<String, u32>,
    listed: bool,
    opts: StateOptions,
}

impl EventState {
    /// An empty state.
    pub fn new(opts: StateOptions) -> Self {
        Self {
            counts: HashMap::new(),
            listed: false,
            opts,
        }
    }

    /// Number of Events tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no Event is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The last seen count of the Event with this key (uid, or `namespace/name`).
    pub fn count(&self, key: &str) -> Option<u32> {
        self.counts.get(key).copied()
    }

    /// Whether the state was filled by a complete list.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Marks the state as filled by a complete list: from now on, unknown Events are new.
    pub fn set_listed(&mut self) {
        self.listed = true;
    }
}

/// How far back a restart reads Event records to rebuild the Event state
/// ([`event_state`]): the API server keeps Events for `--event-ttl` (one hour by default), so an
/// Event last counted longer ago than this is gone from the server, and a list cannot bring it
/// back as new. Three hours leave room for a longer TTL and for the time herald was down.
pub const EVENT_STATE_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

/// The compact state an Event record stands for, to rebuild the Event state after a restart
/// (Event states are not persisted separately, see
/// [`WatcherConfig::persists_states_of`](crate::WatcherConfig::persists_states_of)): the
/// Event's state key (its uid, else `namespace/name`) and its count as of the record. `None`
/// for other records and for an Event record without a name. Restoring several records of one
/// Event keeps the largest count.
pub fn event_state(record: &Record) -> Option<herald_core::ObjectState> {
    let RecordBody::Event(e) = &record.body else {
        return None;
    };
    let key = super::state_key(Some(&e.uid), Some(&e.namespace), Some(&e.name))?;
    Some(herald_core::ObjectState {
        key,
        state: super::encode_entry(&e.count),
    })
}

/// The occurrence count of an Event: the larger of `count` and `series.count` (an Event written
/// through events.k8s.io/v1 counts its repeats in `series` and may carry `count` 0 or 1), at
/// least 1.
pub fn event_count(ev: &Event) -> u32 {
    let count = ev.count.unwrap_or(0);
    let series = ev.series.as_ref().and_then(|s| s.count).unwrap_or(0);
    u32::try_from(count.max(series)).unwrap_or(0).max(1)
}

/// The newest of two optional instants.
fn newest(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Applies an Event seen in a list or an ADDED/MODIFIED event. Returns the number of new
/// occurrences to record (`count_delta`), or `None` when there is nothing to record.
pub fn apply(state: &mut EventState, ev: &Event, source: Source) -> Option<u32> {
    let key = object_key(&ev.metadata)?;
    let count = event_count(ev);
    match state.counts.get(&key).copied() {
        Some(old) => {
            if count > old {
                state.counts.insert(key, count);
                Some(count - old)
            } else {
                None
            }
        }
        None => {
            state.counts.insert(key, count);
            match FirstSight::of(source, state.listed) {
                FirstSight::Seed if !state.opts.report_on_seed => None,
                FirstSight::Seed | FirstSight::New => Some(count),
                FirstSight::Resumed => Some(1),
            }
        }
    }
}

/// Applies a DELETED event: the Event is forgotten, nothing is recorded.
pub fn delete(state: &mut EventState, ev: &Event) {
    if let Some(key) = object_key(&ev.metadata) {
        state.counts.remove(&key);
    }
}

/// After a re-list: forgets every Event whose key is not in `listed`.
pub fn remove_unlisted(state: &mut EventState, listed: &HashSet<String>) {
    state.counts.retain(|k, _| listed.contains(k));
}

/// The record of `count_delta` new occurrences of `ev`.
///
/// `object` is the involved object; `node` is `source.host` (or `reportingInstance` for
/// kubelet-reported events.k8s.io Events), else the involved object's name when it is a Node.
pub fn record(cluster: &str, now: Timestamp, ev: &Event, count_delta: u32) -> Record {
    record_from(cluster, now, ev.clone(), count_delta)
}

/// [`record`], taking the Event: its strings move into the record instead of being copied
/// (the watch path, where the decoded Event is dropped right after).
pub fn record_from(cluster: &str, now: Timestamp, ev: Event, count_delta: u32) -> Record {
    let count = event_count(&ev);
    let Event {
        metadata,
        involved_object: io,
        reason,
        message,
        type_,
        first_timestamp,
        last_timestamp,
        source,
        event_time,
        reporting_component,
        reporting_instance,
        series,
        ..
    } = ev;
    let kind = io.kind.as_deref().unwrap_or_default();
    let object = ObjectRef {
        kind: ObjectKind::from_kind(kind),
        namespace: non_empty_owned(io.namespace),
        name: io.name.unwrap_or_default(),
        uid: non_empty_owned(io.uid),
    };
    let (source_component, source_host) = source.map(|s| (s.component, s.host)).unwrap_or_default();
    let component =
        non_empty_owned(source_component).or_else(|| non_empty(reporting_component.as_deref()));
    let host = non_empty_owned(source_host);
    let reporting_instance = non_empty_owned(reporting_instance);
    let node = host
        .clone()
        .or_else(|| {
            (reporting_component.as_deref() == Some("kubelet"))
                .then(|| reporting_instance.clone())
                .flatten()
        })
        .or_else(|| (object.kind == ObjectKind::Node).then(|| object.name.clone()));
    let event_time = event_time.map(|t| t.0);
    let first_timestamp = first_timestamp.map(|t| t.0).or(event_time);
    let last_timestamp = newest(
        last_timestamp.map(|t| t.0),
        series.and_then(|s| s.last_observed_time).map(|t| t.0),
    )
    .or(event_time);
    Record {
        id: RecordId::UNASSIGNED,
        cluster: cluster.to_string(),
        observed_at: now,
        object,
        node,
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Event(EventRecord {
            uid: metadata.uid.unwrap_or_default(),
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
            reason: reason.unwrap_or_default(),
            event_type: type_.unwrap_or_default(),
            message: message.unwrap_or_default(),
            count,
            count_delta,
            first_timestamp,
            last_timestamp,
            source: EventSource {
                component,
                host: host.or(reporting_instance),
            },
            field_path: non_empty_owned(io.field_path),
        }),
    }
}

impl Tracker for EventState {
    type Object = Event;

    fn key(obj: &Event) -> Option<String> {
        object_key(&obj.metadata)
    }

    fn set_listed(&mut self) {
        self.listed = true;
    }

    fn set_options(&mut self, opts: StateOptions) {
        self.opts = opts;
    }

    fn apply(&mut self, obj: Event, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record> {
        apply(self, &obj, source)
            .map(|delta| vec![record_from(ctx.cluster, ctx.now, obj, delta)])
            .unwrap_or_default()
    }

    fn delete(&mut self, obj: &Event, _ctx: &RecordCtx<'_>) -> Vec<Record> {
        delete(self, obj);
        Vec::new()
    }

    fn remove_unlisted(&mut self, listed: &HashSet<String>, _ctx: &RecordCtx<'_>) -> Vec<Record> {
        remove_unlisted(self, listed);
        Vec::new()
    }

    fn len(&self) -> usize {
        self.counts.len()
    }

    fn keys(&self) -> Vec<String> {
        self.counts.keys().cloned().collect()
    }

    fn export(&self, key: &str) -> Option<Vec<u8>> {
        self.counts.get(key).and_then(super::encode_entry)
    }

    fn import(&mut self, key: String, bytes: &[u8]) -> Result<(), String> {
        let entry: u32 = super::decode_entry(bytes)?;
        // Rebuilt from records, an Event may be imported once per record: keep the largest.
        let count = self.counts.entry(key).or_insert(entry);
        *count = (*count).max(entry);
        Ok(())
    }
}

/// An events.k8s.io/v1 Event in the core/v1 shape, field for field as the API server converts
/// between the two (`regarding` -> `involvedObject`, `note` -> `message`, `deprecated*` ->
/// `count`/`source`/`firstTimestamp`/`lastTimestamp`, `reportingController` ->
/// `reportingComponent`, `series` kept). It takes the Event, so its strings move.
pub fn events_v1_to_core(ev: EventV1) -> Event {
    Event {
        kind: ev.kind,
        metadata: ev.metadata,
        involved_object: ev.regarding.unwrap_or_default(),
        reason: ev.reason,
        message: ev.note,
        type_: ev.type_,
        count: ev.deprecated_count,
        first_timestamp: ev.deprecated_first_timestamp,
        last_timestamp: ev.deprecated_last_timestamp,
        source: ev.deprecated_source,
        event_time: ev.event_time,
        reporting_component: ev.reporting_controller,
        reporting_instance: ev.reporting_instance,
        series: ev.series.map(|s| EventSeries {
            count: Some(s.count),
            last_observed_time: Some(s.last_observed_time),
        }),
    }
}

/// The Event state when Events are watched through events.k8s.io/v1: each object is converted
/// with [`events_v1_to_core`] and handled exactly as a core/v1 Event (same keys, same counts,
/// same persisted state, so switching APIs keeps the state).
#[derive(Debug, Default)]
pub struct EventsV1State(EventState);

impl EventsV1State {
    /// An empty state.
    pub fn new(opts: StateOptions) -> Self {
        Self(EventState::new(opts))
    }

    /// The core/v1 state inside.
    pub fn inner(&self) -> &EventState {
        &self.0
    }

    /// Applies an events.k8s.io/v1 Event seen from `source`: the records of its new
    /// occurrences (none when its count did not grow).
    pub fn apply(
        &mut self,
        ev: &EventV1,
        source: Source,
        cluster: &str,
        now: Timestamp,
    ) -> Vec<Record> {
        Tracker::apply(self, ev.clone(), source, &RecordCtx { cluster, now })
    }
}

impl Tracker for EventsV1State {
    type Object = EventV1;

    fn key(obj: &EventV1) -> Option<String> {
        object_key(&obj.metadata)
    }

    fn set_listed(&mut self) {
        self.0.set_listed();
    }

    fn set_options(&mut self, opts: StateOptions) {
        self.0.opts = opts;
    }

    fn apply(&mut self, obj: EventV1, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record> {
        self.0.apply(events_v1_to_core(obj), source, ctx)
    }

    fn delete(&mut self, obj: &EventV1, ctx: &RecordCtx<'_>) -> Vec<Record> {
        Tracker::delete(&mut self.0, &events_v1_to_core(obj.clone()), ctx)
    }

    fn remove_unlisted(&mut self, listed: &HashSet<String>, ctx: &RecordCtx<'_>) -> Vec<Record> {
        self.0.remove_unlisted(listed, ctx)
    }

    fn len(&self) -> usize {
        Tracker::len(&self.0)
    }

    fn keys(&self) -> Vec<String> {
        self.0.keys()
    }

    fn export(&self, key: &str) -> Option<Vec<u8>> {
        self.0.export(key)
    }

    fn import(&mut self, key: String, bytes: &[u8]) -> Result<(), String> {
        self.0.import(key, bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::Tracker;

    fn event(uid: &str, count: u32) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cart.17a", "namespace": "shop", "uid": uid},
            "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "cart"},
            "reason": "BackOff", "type": "Warning", "message": "Back-off", "count": count
        }))
        .unwrap()
    }

    #[test]
    fn the_state_rebuilt_from_records_is_the_state_the_watcher_kept() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut kept = EventState::new(StateOptions::default());
        let mut records = Vec::new();
        // Seen at 2, grown to 5, an Event without uid, and one that never grew.
        for (uid, count) in [("u-1", 2), ("u-1", 5), ("", 3), ("u-2", 1), ("u-2", 1)] {
            let ev = event(uid, count);
            if let Some(delta) = apply(&mut kept, &ev, Source::Added) {
                records.push(record("c", now, &ev, delta));
            }
        }
        assert_eq!(records.len(), 4);
        // Restored in any order, once per record: the largest count of each Event wins.
        let mut rebuilt = EventState::new(StateOptions::default());
        for r in records.iter().rev() {
            let s = event_state(r).unwrap();
            rebuilt.import(s.key, &s.state.unwrap()).unwrap();
        }
        let mut keys = rebuilt.keys();
        keys.sort();
        assert_eq!(keys, ["shop/cart.17a", "u-1", "u-2"]);
        for k in &keys {
            assert_eq!(rebuilt.count(k), kept.count(k), "{k}");
        }
        // The same Event seen again after a restart is not recorded again; growth is a delta.
        assert_eq!(apply(&mut rebuilt, &event("u-1", 5), Source::List), None);
        assert_eq!(apply(&mut rebuilt, &event("u-1", 7), Source::List), Some(2));
        // Other records stand for no Event state.
        let mut pod = records[0].clone();
        pod.body = RecordBody::Node(herald_core::NodeTransition {
            change: herald_core::NodeChange::Created,
        });
        assert_eq!(event_state(&pod), None);
    }
}
