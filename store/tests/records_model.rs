//! The record queries against a model: records with arbitrary (unordered) observation times,
//! appended in groups of arbitrary sizes, give the same answers as sorting a `Vec`; so does
//! retention. Between groups the object index may be written, or the store closed and opened
//! again, so queries read pending references, written entries and both.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use herald_core::{
    ObjectKind, ObjectRef, PodChange, PodTransition, Record, RecordBody, RecordId, Timestamp,
};
use herald_store::{Store, TimeQuery};
use proptest::prelude::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn record(pod: u8, secs: i64) -> Record {
    Record {
        id: RecordId::UNASSIGNED,
        cluster: "model".into(),
        observed_at: at(secs),
        object: ObjectRef::pod("ns", format!("pod-{pod}")),
        node: None,
        owner: None,
        labels: BTreeMap::new(),
        body: RecordBody::Pod(PodTransition {
            phase: None,
            change: PodChange::Created,
        }),
    }
}

/// What happens after a group is appended.
#[derive(Debug, Clone, Copy)]
enum After {
    Nothing,
    WriteObjectIndex,
    Reopen,
}

/// Groups of (pod, seconds): mostly close together, sometimes far apart (more than a block or
/// an object index entry may span), sometimes out of order; each with what follows it.
fn any_groups() -> impl Strategy<Value = Vec<(Vec<(u8, i64)>, After)>> {
    let time = prop_oneof![4 => 0i64..200, 1 => 0i64..2000];
    let after = prop_oneof![
        6 => Just(After::Nothing),
        1 => Just(After::WriteObjectIndex),
        1 => Just(After::Reopen),
    ];
    proptest::collection::vec(
        (proptest::collection::vec((0u8..4, time), 1..12), after),
        1..10,
    )
}

/// Every query of the model against the store.
fn check(store: &Store, model: &[Record], queries: &[TimeQuery]) -> Result<(), TestCaseError> {
    for r in model {
        let got = store.record(r.id).unwrap();
        prop_assert_eq!(got.as_ref(), Some(r));
    }
    for q in queries {
        let want: Vec<Record> = model.iter().filter(|r| inside(q, r)).cloned().collect();
        prop_assert_eq!(store.records_between(q).unwrap(), oldest(want, q));
        for pod in 0u8..4 {
            let key = format!("ns/pod-{pod}");
            let want: Vec<Record> = model
                .iter()
                .filter(|r| inside(q, r) && r.object.name == format!("pod-{pod}"))
                .cloned()
                .collect();
            prop_assert_eq!(
                store.records_for_object(&ObjectKind::Pod, &key, q).unwrap(),
                oldest(want.clone(), q)
            );
            prop_assert_eq!(
                store
                    .latest_records_for_object(&ObjectKind::Pod, &key, q)
                    .unwrap(),
                newest(want, q)
            );
        }
    }
    prop_assert_eq!(store.stats().unwrap().records, model.len());
    Ok(())
}

fn any_query() -> impl Strategy<Value = TimeQuery> {
    (
        proptest::option::of(0i64..2000),
        proptest::option::of(0i64..2000),
        proptest::option::of(0usize..12),
    )
        .prop_map(|(since, until, limit)| TimeQuery {
            since: since.map(at),
            until: until.map(at),
            limit,
        })
}

fn inside(q: &TimeQuery, r: &Record) -> bool {
    q.since.is_none_or(|s| r.observed_at >= s) && q.until.is_none_or(|u| r.observed_at <= u)
}

fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| (r.observed_at, r.id));
    v
}

fn oldest(v: Vec<Record>, q: &TimeQuery) -> Vec<Record> {
    let mut v = sorted(v);
    if let Some(l) = q.limit {
        v.truncate(l);
    }
    v
}

fn newest(v: Vec<Record>, q: &TimeQuery) -> Vec<Record> {
    let mut v = sorted(v);
    if let Some(l) = q.limit {
        v.drain(..v.len().saturating_sub(l));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn queries_and_prune_match_a_model(groups in any_groups(),
                                       queries in proptest::collection::vec(any_query(), 6),
                                       cutoff in 0i64..2000) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut model: Vec<Record> = Vec::new();
        for (g, after) in &groups {
            let mut rs: Vec<Record> = g.iter().map(|&(p, s)| record(p, s)).collect();
            store.append_records(&mut rs).unwrap();
            model.extend(rs);
            match after {
                After::Nothing => {}
                After::WriteObjectIndex => {
                    store.write_object_index().unwrap();
                }
                After::Reopen => {
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                }
            }
        }
        let ids: Vec<u64> = model.iter().map(|r| r.id.0).collect();
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in append order");
        check(&store, &model, &queries)?;

        let before = model.len();
        model.retain(|r| r.observed_at >= at(cutoff));
        let pruned = store.prune(at(cutoff)).unwrap();
        prop_assert_eq!(pruned.records as usize, before - model.len());
        for id in &ids {
            if !model.iter().any(|r| r.id.0 == *id) {
                prop_assert_eq!(store.record(RecordId(*id)).unwrap(), None);
            }
        }
        check(&store, &model, &queries)?;
        prop_assert_eq!(store.prune(at(cutoff)).unwrap().records, 0);

        // A later append still gets a higher id and is found, also after a reopen.
        let mut late = vec![record(0, 5)];
        store.append_records(&mut late).unwrap();
        prop_assert!(ids.last().is_none_or(|l| late[0].id.0 > *l));
        model.extend(late);
        check(&store, &model, &queries)?;
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        check(&store, &model, &queries)?;
    }
}
