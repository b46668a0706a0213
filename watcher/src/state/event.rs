//! core/v1 Event state: the last seen `count` of each Event (by uid), so that an Event is
//! recorded when first seen (`count_delta = count`) and again only when its count grows
//! (`count_delta = new - old`). An update without count growth records nothing; a deleted Event
//! (TTL expiry) is forgotten silently.

use std::collections::{BTreeMap, HashMap, HashSet};

use herald_core::{
    EventRecord, EventSource, ObjectKind, ObjectRef, Record, RecordBody, RecordId, Timestamp,
};
use k8s_openapi::api::core::v1::Event;

use super::{FirstSight, RecordCtx, Source, StateOptions, Tracker, non_empty, object_key};

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

/// The occurrence count of an Event: `count`, else `series.count`, at least 1.
pub fn event_count(ev: &Event) -> u32 {
    ev.count
        .or_else(|| ev.series.as_ref().and_then(|s| s.count))
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(1)
        .max(1)
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
    let io = &ev.involved_object;
    let kind = io.kind.as_deref().unwrap_or_default();
    let object = ObjectRef {
        kind: ObjectKind::from_kind(kind),
        namespace: non_empty(io.namespace.as_deref()),
        name: io.name.clone().unwrap_or_default(),
        uid: non_empty(io.uid.as_deref()),
    };
    let component = non_empty(ev.source.as_ref().and_then(|s| s.component.as_deref()))
        .or_else(|| non_empty(ev.reporting_component.as_deref()));
    let host = non_empty(ev.source.as_ref().and_then(|s| s.host.as_deref()));
    let node = host
        .clone()
        .or_else(|| {
            (ev.reporting_component.as_deref() == Some("kubelet"))
                .then(|| non_empty(ev.reporting_instance.as_deref()))
                .flatten()
        })
        .or_else(|| (object.kind == ObjectKind::Node).then(|| object.name.clone()));
    let event_time = ev.event_time.as_ref().map(|t| t.0);
    let first_timestamp = ev.first_timestamp.as_ref().map(|t| t.0).or(event_time);
    let last_timestamp = ev
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            ev.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0)
        })
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
            uid: ev.metadata.uid.clone().unwrap_or_default(),
            namespace: ev.metadata.namespace.clone().unwrap_or_default(),
            name: ev.metadata.name.clone().unwrap_or_default(),
            reason: ev.reason.clone().unwrap_or_default(),
            event_type: ev.type_.clone().unwrap_or_default(),
            message: ev.message.clone().unwrap_or_default(),
            count: event_count(ev),
            count_delta,
            first_timestamp,
            last_timestamp,
            source: EventSource {
                component,
                host: host.or_else(|| non_empty(ev.reporting_instance.as_deref())),
            },
            field_path: non_empty(io.field_path.as_deref()),
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

    fn apply(&mut self, obj: &Event, source: Source, ctx: &RecordCtx<'_>) -> Vec<Record> {
        apply(self, obj, source)
            .map(|delta| vec![record(ctx.cluster, ctx.now, obj, delta)])
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
        self.counts.insert(key, entry);
        Ok(())
    }
}
