//! Property tests of the EvictionStorm window and grouping: the outcome does not depend on the
//! arrival order of records within the window, duplicate records of one eviction (pod record
//! plus Event, with or without uid) do not change counts, and the window is inclusive (two
//! evictions exactly `window` apart are in one window; one millisecond more and they are not).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use common::*;
use herald_classifier::{Classifier, ClassifierConfig};
use herald_core::{Record, Timestamp, Transition};
use proptest::prelude::*;

const WINDOW_MS: u64 = 120_000;
const QUIET_MS: u64 = 300_000;

/// The per-node storm alone (the namespace and cluster storms and single evictions off).
fn config(threshold: u32) -> ClassifierConfig {
    let mut cfg = ClassifierConfig::default();
    cfg.eviction_storm.threshold = NonZeroU32::new(threshold).expect("threshold >= 1");
    cfg.eviction_storm.window = Duration::from_millis(WINDOW_MS);
    cfg.eviction_storm.quiet = Duration::from_millis(QUIET_MS);
    cfg.namespace_eviction_storm.enabled = false;
    cfg.cluster_eviction_storm.enabled = false;
    cfg.evicted.enabled = Some(false);
    cfg
}

/// The namespace and cluster storms alone, with the same threshold, window and quiet.
fn scoped_config(threshold: u32) -> ClassifierConfig {
    let mut cfg = config(threshold);
    cfg.eviction_storm.enabled = false;
    cfg.namespace_eviction_storm = cfg.eviction_storm.clone();
    cfg.namespace_eviction_storm.enabled = true;
    cfg.cluster_eviction_storm = cfg.namespace_eviction_storm.clone();
    cfg
}

/// One distinct eviction: which node (0 or 1) and when (ms after t0).
#[derive(Debug, Clone, Copy)]
struct Ev {
    node: u8,
    offset_ms: u64,
}

/// How the same eviction is reported: the pod record, the Event (with or without uid), or both.
#[derive(Debug, Clone, Copy)]
enum Sources {
    Pod,
    Event { uid: bool },
    Both { uid: bool },
}

fn sources() -> impl Strategy<Value = Sources> {
    prop_oneof![
        Just(Sources::Pod),
        any::<bool>().prop_map(|uid| Sources::Event { uid }),
        any::<bool>().prop_map(|uid| Sources::Both { uid }),
    ]
}

/// The records reporting eviction `i`.
fn records(i: usize, ev: Ev, how: Sources) -> Vec<Record> {
    let node = format!("node-{}", ev.node);
    let pod = format!("worker-{i}");
    let uid = format!("9f0c1d2e-0000-4000-8000-{i:012}");
    let t = at_ms(ev.offset_ms);
    let id = (i as u64 + 1) * 10;
    let pod_rec = || pod_evicted(id, t, &node, "batch", &pod, &uid);
    let event = |with_uid: bool| {
        evicted_event(
            id + 1,
            t,
            &node,
            "batch",
            &pod,
            with_uid.then_some(uid.as_str()),
        )
    };
    match how {
        Sources::Pod => vec![pod_rec()],
        Sources::Event { uid } => vec![event(uid)],
        Sources::Both { uid } => vec![pod_rec(), event(uid)],
    }
}

/// What the classifier concluded: per open incident, its count and pods; and how many times
/// each fingerprint was opened.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    open: BTreeMap<String, (u64, BTreeSet<String>)>,
    opened: BTreeMap<String, usize>,
}

/// Feeds `arrivals` in order. `late`: every record arrives after the whole window (now =
/// end of window); otherwise near real time (now = the latest record time so far).
fn run(threshold: u32, arrivals: &[Record], late: bool) -> (Outcome, Classifier) {
    run_with(config(threshold), arrivals, late)
}

fn run_with(cfg: ClassifierConfig, arrivals: &[Record], late: bool) -> (Outcome, Classifier) {
    let mut c = Classifier::new(cfg);
    let mut opened = BTreeMap::new();
    let mut now = Timestamp::MIN;
    for (k, r) in arrivals.iter().enumerate() {
        now = if late {
            at_ms(WINDOW_MS + 1 + k as u64)
        } else {
            now.max(r.observed_at)
        };
        for ch in c.apply(r, now) {
            assert_ne!(
                ch.transition,
                Transition::Resolved,
                "nothing resolves within the window"
            );
            if ch.transition == Transition::Opened {
                *opened.entry(ch.incident.fingerprint.clone()).or_insert(0) += 1;
            }
        }
    }
    let open = c
        .open_incidents()
        .into_iter()
        .map(|i| {
            let pods = i.objects.iter().map(|o| o.key()).collect();
            (i.fingerprint.clone(), (i.count, pods))
        })
        .collect();
    (Outcome { open, opened }, c)
}

fn evictions() -> impl Strategy<Value = Vec<(Ev, Sources)>> {
    prop::collection::vec(
        (
            (0u8..2, 0..=WINDOW_MS).prop_map(|(node, offset_ms)| Ev { node, offset_ms }),
            sources(),
        ),
        1..14,
    )
}

/// The outcome expected when every eviction falls within one window: a storm per node with at
/// least `threshold` distinct evictions, counting each once and listing every pod.
fn expected(threshold: u32, evs: &[(Ev, Sources)]) -> BTreeMap<String, (u64, BTreeSet<String>)> {
    let mut per_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, (ev, _)) in evs.iter().enumerate() {
        per_node
            .entry(format!("EvictionStorm/node-{}", ev.node))
            .or_default()
            .insert(format!("batch/worker-{i}"));
    }
    per_node
        .into_iter()
        .filter(|(_, pods)| pods.len() >= threshold as usize)
        .map(|(fp, pods)| (fp, (pods.len() as u64, pods)))
        .collect()
}

proptest! {
    #[test]
    fn storm_set_does_not_depend_on_arrival_order(
        evs in evictions(),
        threshold in 1u32..7,
        seed in any::<u64>(),
        late in any::<bool>(),
    ) {
        let mut all: Vec<Record> = evs
            .iter()
            .enumerate()
            .flat_map(|(i, (ev, how))| records(i, *ev, *how))
            .collect();
        // In time order (stable, so a pod record precedes its Event).
        all.sort_by_key(|r| r.observed_at);
        let (in_order, _) = run(threshold, &all, late);
        // A deterministic shuffle from the seed.
        let mut shuffled = all.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (out_of_order, mut c) = run(threshold, &shuffled, late);

        let want = expected(threshold, &evs);
        prop_assert_eq!(&in_order.open, &want);
        prop_assert_eq!(&out_of_order, &in_order);
        prop_assert!(out_of_order.opened.values().all(|&n| n == 1));

        // Everything resolves once the last eviction is `quiet` in the past.
        let last = evs.iter().map(|(e, _)| e.offset_ms).max().unwrap_or(0);
        let resolved = c.tick(at_ms(last + QUIET_MS).max(at_ms(WINDOW_MS + 100)));
        prop_assert_eq!(resolved.len(), want.len());
        prop_assert!(c.open_incidents().is_empty());
    }

    #[test]
    fn duplicate_records_of_one_eviction_do_not_change_counts(
        evs in evictions(),
        threshold in 1u32..7,
        late in any::<bool>(),
    ) {
        let build = |dups: bool| {
            let mut rs: Vec<Record> = evs
                .iter()
                .enumerate()
                .flat_map(|(i, (ev, how))| {
                    let how = if dups { *how } else { Sources::Pod };
                    let mut rs = records(i, *ev, how);
                    if dups {
                        // The watcher may also report the very same record twice.
                        rs.push(rs[0].clone());
                    }
                    rs
                })
                .collect();
            rs.sort_by_key(|r| r.observed_at);
            rs
        };
        let (once, _) = run(threshold, &build(false), late);
        let (twice, _) = run(threshold, &build(true), late);
        prop_assert_eq!(&once.open, &twice.open);
        prop_assert_eq!(&once.open, &expected(threshold, &evs));
    }

    #[test]
    fn window_is_inclusive_at_the_edge(
        threshold in 2u32..7,
        middle in prop::collection::vec(1..WINDOW_MS, 5),
        extra_ms in 0u64..2,
        reverse in any::<bool>(),
    ) {
        // `threshold` evictions: the first at 0, the last at `window` (+ `extra_ms`), the
        // others in between. Every window holding all of them must hold both ends.
        let last = WINDOW_MS + extra_ms;
        let mut offsets = vec![0, last];
        offsets.extend(middle.iter().take(threshold as usize - 2).copied());
        let mut rs: Vec<Record> = offsets
            .iter()
            .enumerate()
            .flat_map(|(i, &o)| records(i, Ev { node: 0, offset_ms: o }, Sources::Pod))
            .collect();
        if reverse {
            rs.reverse();
        }
        let (out, _) = run(threshold, &rs, true);
        if extra_ms == 0 {
            // Exactly `window` apart: one window, one storm.
            prop_assert_eq!(out.open.len(), 1);
            prop_assert_eq!(out.open.values().next().map(|v| v.0), Some(u64::from(threshold)));
        } else {
            prop_assert!(out.open.is_empty(), "{:?}", out);
        }
    }
}

proptest! {
    /// Grouped per namespace, evictions on both nodes count together: one storm with every
    /// distinct pod, whatever the arrival order and duplicates; the cluster-wide storm, which
    /// would list exactly the same evictions, never opens beside it.
    #[test]
    fn namespace_and_cluster_storms_group_across_nodes(
        evs in evictions(),
        threshold in 1u32..7,
        seed in any::<u64>(),
        late in any::<bool>(),
    ) {
        let mut all: Vec<Record> = evs
            .iter()
            .enumerate()
            .flat_map(|(i, (ev, how))| {
                let mut rs = records(i, *ev, *how);
                rs.push(rs[0].clone());
                rs
            })
            .collect();
        all.sort_by_key(|r| r.observed_at);
        let (in_order, _) = run_with(scoped_config(threshold), &all, late);
        let mut shuffled = all.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (out_of_order, _) = run_with(scoped_config(threshold), &shuffled, late);
        let pods: BTreeSet<String> = (0..evs.len()).map(|i| format!("batch/worker-{i}")).collect();
        let mut want = BTreeMap::new();
        if pods.len() >= threshold as usize {
            let n = pods.len() as u64;
            // The cluster-wide storm would list the very same evictions: it stays silent.
            want.insert("NamespaceEvictionStorm/batch".to_string(), (n, pods));
        }
        prop_assert_eq!(&in_order.open, &want);
        prop_assert_eq!(&out_of_order, &in_order);
    }
}

#[test]
fn evictions_on_different_nodes_never_combine() {
    let rs: Vec<Record> = (0..8)
        .flat_map(|i| {
            records(
                i,
                Ev {
                    node: (i % 2) as u8,
                    offset_ms: i as u64 * 1000,
                },
                Sources::Pod,
            )
        })
        .collect();
    let (out, _) = run(5, &rs, false);
    assert!(out.open.is_empty(), "{out:?}");
    let (out, _) = run(4, &rs, false);
    assert_eq!(out.open.len(), 2, "{out:?}");
}
