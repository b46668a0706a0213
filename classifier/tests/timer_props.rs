//! Property test of the indexed timers: the classifier reads only the timers that are due (per
//! rule queues of due instants, incidents indexed by rule and `last_seen`, groups indexed by
//! their active objects), and must produce exactly the transitions of the plain algorithm that
//! sweeps every open incident and all of every rule's state on every call
//! ([`Classifier::reference`]). Random record sequences over a small cluster hit every rule
//! (short grace, persist, window and quiet periods so timers fire often), with late records,
//! duplicate records, clock jumps past every quiet period, time going backwards, ticks, and a
//! restart (restore of the open incidents) in the middle.

mod common;

use common::*;
use herald_classifier::{Classifier, ClassifierConfig};
use herald_core::{
    EventRecord, EventSource, IncidentChange, NodeChange, NodeTransition, ObjectKind, ObjectRef,
    PodChange, PodTransition, Record, RecordBody, RecordId, Timestamp,
};
use proptest::prelude::*;

/// Every built-in rule with short periods, and YAML rules with thresholds, windows, `for`
/// and several group keys.
fn config() -> ClassifierConfig {
    serde_saphyr::from_str(
        r#"
update_interval: 3s
node_not_ready: { grace: 5s }
oom_killed: { resolve_after: 40s }
eviction_storm: { threshold: 2, window: 20s, quiet: 30s }
namespace_eviction_storm: { threshold: 3, window: 20s, quiet: 30s }
cluster_eviction_storm: { threshold: 4, window: 20s, quiet: 30s }
crash_loop: { resolve_after: 45s, critical_after_restarts: 5 }
image_pull: { resolve_after: 35s }
failed_scheduling: { for: 10s, resolve_after: 30s }
failed_mount: { for: 5s, resolve_after: 30s }
probe_failures: { threshold: 2, window: 15s, resolve_after: 25s }
job_failed: { resolve_after: 50s }
node_pressure: { for: 4s }
node_rebooted: { resolve_after: 30s }
evicted: { for: 8s, resolve_after: 30s }
rules:
  - name: Warnings
    match: { kind: event, type: Warning }
    threshold: { count: 3, window: 20s }
    group_by: [namespace]
    resolve_after: 30s
  - name: PodErrors
    match: { kind: pod, reason: [OOMKilled, Error, CrashLoopBackOff] }
    threshold: { count: 2, window: 30s }
    for: 6s
    group_by: [owner, container]
    resolve_after: 40s
  - name: NodeDown
    match: { kind: node, reason_regex: "^Ready=(False|Unknown)$" }
    for: 7s
    group_by: [node, reason]
    resolve_after: 20s
  - name: PerPod
    match: { reason_regex: "^(BackOff|Unhealthy|FailedMount)$" }
    group_by: [pod, reason]
    resolve_after: 15s
"#,
    )
    .expect("config")
}

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const NAMESPACES: [&str; 2] = ["shop", "batch"];

/// Pod `p`: its namespace, name, node and owning ReplicaSet (two Deployments, some
/// pods without a controller).
fn pod(p: u8) -> (&'static str, String, &'static str, Option<ObjectRef>) {
    let ns = NAMESPACES[usize::from(p % 2)];
    let node = NODES[usize::from(p % 3)];
    let owner = (p < 6).then(|| ObjectRef {
        kind: ObjectKind::Other("ReplicaSet".into()),
        namespace: Some(ns.into()),
        name: format!("app{}-7d9f8b6c5d", p % 2),
        uid: None,
    });
    let name = match &owner {
        Some(o) => format!("{}-x{p}", o.name),
        None => format!("solo-{p}"),
    };
    (ns, name, node, owner)
}

/// What a step does.
#[derive(Debug, Clone)]
enum Op {
    /// A record of kind `what` about pod/node `who`, `late_ms` before the current time.
    Record { what: u8, who: u8, late_ms: u64 },
    /// The same record as the previous one again (the watcher may repeat one).
    Repeat,
    /// A tick.
    Tick,
    /// A restart: both classifiers are rebuilt from their open incidents.
    Restart,
}

/// A step whose records are of the kinds `what` draws, about pods (or nodes) `0..who`.
fn op_of(what: impl Strategy<Value = u8>, who: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (what, 0u8..who, prop_oneof![3 => Just(0u64), 1 => 0u64..30_000])
            .prop_map(|(what, who, late_ms)| Op::Record { what, who, late_ms }),
        1 => Just(Op::Repeat),
        3 => Just(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

/// How far the clock moves before a step: mostly a little, sometimes past every quiet period,
/// rarely backwards.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        10 => 0i64..3_000,
        3 => 3_000i64..20_000,
        1 => 60_000i64..120_000,
        1 => -5_000i64..0,
    ]
}

fn event(
    id: u64,
    t: Timestamp,
    object: ObjectRef,
    node: Option<&str>,
    reason: &str,
    kind: &str,
    message: &str,
) -> Record {
    let ns = object.namespace.clone().unwrap_or_default();
    Record {
        id: RecordId(id),
        cluster: "prod".into(),
        observed_at: t,
        node: node.map(str::to_string),
        owner: None,
        labels: Default::default(),
        body: RecordBody::Event(EventRecord {
            uid: format!("ev-{}-{reason}", object.name),
            namespace: ns,
            name: format!("{}.18a1b2c3d4e5f6a7", object.name),
            reason: reason.into(),
            event_type: kind.into(),
            message: message.into(),
            count: 2,
            count_delta: 1,
            first_timestamp: Some(t),
            last_timestamp: Some(t),
            source: EventSource {
                component: Some("kubelet".into()),
                host: node.map(str::to_string),
            },
            field_path: Some("spec.containers{app}".into()),
        }),
        object,
    }
}

fn pod_record(id: u64, t: Timestamp, p: u8, phase: &str, change: PodChange) -> Record {
    let (ns, name, node, owner) = pod(p);
    Record {
        id: RecordId(id),
        cluster: "prod".into(),
        observed_at: t,
        object: ObjectRef::pod(ns, &name).with_uid(format!("uid-{p}")),
        node: Some(node.into()),
        owner,
        labels: [("pod-template-hash".to_string(), "7d9f8b6c5d".to_string())]
            .into_iter()
            .collect(),
        body: RecordBody::Pod(PodTransition {
            phase: Some(phase.into()),
            change,
        }),
    }
}

fn node_record(id: u64, t: Timestamp, n: u8, change: NodeChange) -> Record {
    let node = NODES[usize::from(n % 3)];
    Record {
        id: RecordId(id),
        cluster: "prod".into(),
        observed_at: t,
        object: ObjectRef::node(node),
        node: Some(node.into()),
        owner: None,
        labels: Default::default(),
        body: RecordBody::Node(NodeTransition { change }),
    }
}

fn condition(condition: &str, to: &str, since: Timestamp) -> NodeChange {
    NodeChange::ConditionChanged {
        condition: condition.into(),
        from: None,
        to: to.into(),
        reason: Some("KubeletNotReady".into()),
        message: Some("container runtime network not ready".into()),
        since: Some(since),
    }
}

/// Record kind `what` about `who` at `t`.
fn record(id: u64, t: Timestamp, what: u8, who: u8) -> Record {
    let (ns, name, node, _) = pod(who);
    let pod_ref = || ObjectRef::pod(ns, &name);
    let restarts = u32::from(who) + u32::try_from(id % 7).unwrap_or(0);
    match what {
        0 | 1 => oom_killed(
            id,
            t,
            node,
            ns,
            &name,
            if what == 0 { "app" } else { "sidecar" },
        ),
        2 => pod_record(
            id,
            t,
            who,
            "Running",
            PodChange::ContainerWaiting {
                container: "app".into(),
                init: false,
                reason: "CrashLoopBackOff".into(),
                message: Some("back-off 20s restarting failed container".into()),
                restart_count: restarts,
            },
        ),
        3 => pod_record(
            id,
            t,
            who,
            "Pending",
            PodChange::ContainerWaiting {
                container: "app".into(),
                init: false,
                reason: "ImagePullBackOff".into(),
                message: Some("Back-off pulling image \"registry.example.com/app:v2\"".into()),
                restart_count: 0,
            },
        ),
        4 => pod_record(
            id,
            t,
            who,
            "Running",
            PodChange::PhaseChanged {
                from: Some("Pending".into()),
                to: "Running".into(),
                reason: None,
                message: None,
            },
        ),
        5 => pod_evicted(id, t, node, ns, &name, &format!("uid-{who}")),
        6 => evicted_event(id, t, node, ns, &name, Some(&format!("uid-{who}"))),
        7 => pod_record(id, t, who, "Running", PodChange::Deleted),
        8 => pod_record(id, t, who, "Running", PodChange::DeletionRequested),
        9 => pod_record(id, t, who, "Pending", PodChange::Created),
        10 => event(
            id,
            t,
            pod_ref(),
            Some(node),
            "BackOff",
            "Warning",
            "Back-off restarting failed container app in pod",
        ),
        11 => event(
            id,
            t,
            pod_ref(),
            None,
            "FailedScheduling",
            "Warning",
            "0/3 nodes are available: 3 Insufficient memory.",
        ),
        12 => event(
            id,
            t,
            pod_ref(),
            None,
            "Scheduled",
            "Normal",
            "Successfully assigned pod",
        ),
        13 => event(
            id,
            t,
            pod_ref(),
            Some(node),
            "FailedMount",
            "Warning",
            "MountVolume.SetUp failed for volume \"data\"",
        ),
        14 => event(
            id,
            t,
            pod_ref(),
            Some(node),
            "Unhealthy",
            "Warning",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
        ),
        15 => event(
            id,
            t,
            pod_ref(),
            Some(node),
            "Started",
            "Normal",
            "Started container app",
        ),
        16 => event(
            id,
            t,
            ObjectRef::node(node),
            Some(node),
            "OOMKilling",
            "Warning",
            "Out of memory: Killed process 4242 (java)",
        ),
        17 => event(
            id,
            t,
            ObjectRef {
                kind: ObjectKind::Other("Job".into()),
                namespace: Some(ns.into()),
                name: format!("report-{}", who % 2),
                uid: None,
            },
            None,
            "BackoffLimitExceeded",
            "Warning",
            "Job has reached the specified backoff limit",
        ),
        18 => node_ready(id, t, NODES[usize::from(who % 3)], Some("True"), "False"),
        19 => node_ready(id, t, NODES[usize::from(who % 3)], Some("False"), "True"),
        20 => node_record(id, t, who, condition("MemoryPressure", "True", t)),
        21 => node_record(id, t, who, condition("MemoryPressure", "False", t)),
        22 => node_record(
            id,
            t,
            who,
            NodeChange::Rebooted {
                boot_id: format!("boot-{id}"),
            },
        ),
        _ => event(
            id,
            t,
            pod_ref(),
            Some(node),
            "NodeNotReady",
            "Warning",
            "Node is not ready",
        ),
    }
}

/// The classifier under test and the reference, fed the same calls.
struct Pair {
    fast: Classifier,
    reference: Classifier,
}

impl Pair {
    fn new() -> Self {
        Self {
            fast: Classifier::new(config()),
            reference: Classifier::reference(config()),
        }
    }

    fn restart(&mut self) {
        let open = |c: &Classifier| c.open_incidents().into_iter().cloned().collect::<Vec<_>>();
        let (fast, reference) = (open(&self.fast), open(&self.reference));
        self.fast = Classifier::new(config());
        self.fast.restore(fast);
        self.reference = Classifier::reference(config());
        self.reference.restore(reference);
    }
}

/// Runs `steps` through both classifiers, checking after every step that they agree; returns
/// the transitions.
fn run(steps: &[(i64, Op)]) -> Result<Vec<IncidentChange>, TestCaseError> {
    let mut pair = Pair::new();
    let mut now = at(0);
    let mut id = 0u64;
    let mut last: Option<Record> = None;
    let mut transitions = Vec::new();
    for (k, (gap_ms, op)) in steps.iter().enumerate() {
        now = if *gap_ms >= 0 {
            now + std::time::Duration::from_millis(gap_ms.unsigned_abs())
        } else {
            now - std::time::Duration::from_millis(gap_ms.unsigned_abs())
        };
        let (fast, reference): (Vec<IncidentChange>, Vec<IncidentChange>) = match op {
            Op::Record { what, who, late_ms } => {
                id += 1;
                let t = now - std::time::Duration::from_millis(*late_ms);
                let r = record(id, t, *what, *who);
                last = Some(r.clone());
                (pair.fast.apply(&r, now), pair.reference.apply(&r, now))
            }
            Op::Repeat => match &last {
                Some(r) => (pair.fast.apply(r, now), pair.reference.apply(r, now)),
                None => (Vec::new(), Vec::new()),
            },
            Op::Tick => (pair.fast.tick(now), pair.reference.tick(now)),
            Op::Restart => {
                pair.restart();
                (Vec::new(), Vec::new())
            }
        };
        prop_assert_eq!(&fast, &reference, "step {} ({:?}) at {}", k, op, now);
        transitions.extend(fast);
        prop_assert_eq!(pair.fast.open_incidents(), pair.reference.open_incidents());
        prop_assert_eq!(pair.fast.open_count(), pair.fast.open_incidents().len());
    }
    // Long after: everything with a quiet period resolves the same way.
    let end = now + std::time::Duration::from_secs(3600);
    prop_assert_eq!(pair.fast.tick(end), pair.reference.tick(end));
    prop_assert_eq!(pair.fast.open_incidents(), pair.reference.open_incidents());
    Ok(transitions)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn indexed_timers_match_sweeping_everything_on_every_call(
        steps in prop::collection::vec((gap(), op_of(0u8..24, 8)), 1..160),
    ) {
        run(&steps)?;
    }

    /// Evictions, OOM kills and node OOM Events only: storms open, resolve and see the same
    /// pods evicted again after their quiet period, node Events wait to be folded.
    #[test]
    fn indexed_timers_match_for_storms_and_kills(
        steps in prop::collection::vec(
            (
                prop_oneof![8 => 0i64..9_000, 1 => 40_000i64..90_000],
                op_of(prop::sample::select(vec![0u8, 5, 5, 5, 6, 16, 18, 19]), 30),
            ),
            1..200,
        ),
    ) {
        run(&steps)?;
    }
}

/// The generator is worth something only if the sequences open, update and resolve
/// incidents of many rules: a fixed long sequence must produce plenty of transitions.
#[test]
fn sequences_exercise_the_rules() {
    let mut s = 7u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let steps: Vec<(i64, Op)> = (0..3000)
        .map(|_| {
            let gap = match next() % 20 {
                0 => 70_000,
                1..=3 => 8_000,
                _ => i64::try_from(next() % 2_000).unwrap_or(0),
            };
            let op = match next() % 16 {
                0 => Op::Tick,
                1 => Op::Repeat,
                _ => Op::Record {
                    what: u8::try_from(next() % 24).unwrap_or(0),
                    who: u8::try_from(next() % 8).unwrap_or(0),
                    late_ms: if next() % 4 == 0 { next() % 30_000 } else { 0 },
                },
            };
            (gap, op)
        })
        .collect();
    let transitions = run(&steps).expect("same transitions").len();
    assert!(transitions > 200, "only {transitions} transitions");
}

/// An edge the random sequences rarely reach: a storm's evictions older than the horizon are
/// kept while it is open and forgotten when it resolves, even when no eviction passes the
/// horizon at that moment; the same pods evicted again then make a new storm.
#[test]
fn a_resolved_storm_forgets_its_old_evictions() {
    let evict = |gap_ms: i64, who: u8| {
        (
            gap_ms,
            Op::Record {
                what: 5,
                who,
                late_ms: 0,
            },
        )
    };
    // Pods 0, 3, 6 and 9 run on node-a.
    let steps = [
        evict(0, 0),
        evict(10_000, 3),   // 10 s: the storm opens
        evict(25_000, 6),   // 35 s: joins
        evict(25_000, 9),   // 60 s: joins
        (26_000, Op::Tick), // 86 s: every eviction but the last is past the horizon
        (4_000, Op::Tick),  // 90 s: quiet: the storm resolves
        evict(10_000, 0),   // 100 s: a new eviction of pod 0
        evict(5_000, 3),    // 105 s: and of pod 3: a new storm
    ];
    let changes = run(&steps).expect("same transitions");
    let storms: Vec<_> = changes
        .iter()
        .filter(|c| c.incident.fingerprint == "EvictionStorm/node-a")
        .map(|c| (c.transition, c.incident.count))
        .collect();
    use herald_core::Transition::*;
    assert_eq!(
        storms,
        [
            (Opened, 2),
            (Updated, 3),
            (Updated, 4),
            (Resolved, 4),
            (Opened, 2)
        ],
        "{changes:#?}"
    );
}
