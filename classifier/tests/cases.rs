//! Table-driven tests: every `tests/cases/*.yaml` file is one scenario (records and ticks at
//! time offsets) with the incident transitions expected after each step.
//!
//! Case file shape:
//! ```yaml
//! name: what it shows
//! config: { ... }            # optional `classifier:` section overrides
//! steps:
//!   - at: 45s                # offset from the case's start (2025-06-02T10:00:00Z)
//!     record: { ... }        # a herald_core::Record; `cluster`, `observed_at` (= start + at)
//!                            # and `id` (1, 2, ... per record) are filled in when absent
//!     # or: event: events/x.json  # a real Event from tests/fixtures/real, turned into a
//!     #     delta: 1                 # record as the watcher does (count delta, default 1)
//!     # or: tick: true
//!     from: pods/x.json      # optional: the record's pod fields are checked against this
//!                            # real pod object (name, namespace, uid, node, owner, container)
//!     expect: [ { transition: opened, fingerprint: ..., count: ..., objects: [ns/pod] } ]
//!     open: [ fingerprints ] # optional: exactly the open incidents after this step
//! ```
//! A step with no `expect` expects no transitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_classifier::{Classifier, ClassifierConfig, parse_duration};
use herald_core::{IncidentChange, PodChange, Record, RecordBody, Severity, Timestamp, Transition};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    config: ClassifierConfig,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: String,
    #[serde(default)]
    record: Option<serde_json::Value>,
    #[serde(default)]
    tick: bool,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    delta: Option<u32>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    expect: Vec<Expect>,
    #[serde(default)]
    open: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    transition: Transition,
    fingerprint: String,
    rule: Option<String>,
    severity: Option<Severity>,
    count: Option<u64>,
    /// Object keys (`ns/name`), compared as a set.
    objects: Option<Vec<String>>,
    records: Option<Vec<u64>>,
    summary: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    namespace: Option<String>,
    node: Option<String>,
    subject: Option<String>,
    first_seen: Option<String>,
    last_seen: Option<String>,
    resolved_at: Option<String>,
}

fn start() -> Timestamp {
    "2025-06-02T10:00:00Z".parse().expect("start time")
}

/// `start()` plus an offset such as `45s`; `-5m` is before the start.
fn offset(text: &str) -> Timestamp {
    let (before, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let d: Duration = parse_duration(text).unwrap_or_else(|e| panic!("bad offset {text:?}: {e}"));
    if before { start() - d } else { start() + d }
}

fn record(mut value: serde_json::Value, at: Timestamp, id: u64) -> Record {
    let map = value.as_object_mut().expect("record must be a mapping");
    map.entry("cluster").or_insert_with(|| "prod".into());
    map.entry("observed_at")
        .or_insert_with(|| at.to_string().into());
    map.entry("id").or_insert_with(|| id.into());
    serde_json::from_value(value).unwrap_or_else(|e| panic!("bad record: {e}"))
}

fn check(case: &str, step: usize, got: &[IncidentChange], want: &[Expect]) {
    let ctx = format!("{case}, step {step}");
    let summary: Vec<String> = got
        .iter()
        .map(|c| {
            format!(
                "{} {} (count {})",
                c.transition, c.incident.fingerprint, c.incident.count
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{ctx}: got {summary:#?}");
    for (c, w) in got.iter().zip(want) {
        let i = &c.incident;
        assert_eq!(
            c.transition, w.transition,
            "{ctx}: transition; got {summary:?}"
        );
        assert_eq!(i.fingerprint, w.fingerprint, "{ctx}: fingerprint");
        if let Some(rule) = &w.rule {
            assert_eq!(&i.rule, rule, "{ctx}: rule");
        }
        if let Some(s) = w.severity {
            assert_eq!(i.severity, s, "{ctx}: severity");
        }
        if let Some(n) = w.count {
            assert_eq!(i.count, n, "{ctx}: count of {}", i.fingerprint);
        }
        if let Some(objects) = &w.objects {
            let got: BTreeSet<String> = i.objects.iter().map(|o| o.key()).collect();
            let want: BTreeSet<String> = objects.iter().cloned().collect();
            assert_eq!(got, want, "{ctx}: objects");
            assert_eq!(
                i.objects.len(),
                objects.len(),
                "{ctx}: objects listed once each"
            );
        }
        if let Some(records) = &w.records {
            let got: Vec<u64> = i.records.iter().map(|r| r.0).collect();
            assert_eq!(&got, records, "{ctx}: records");
        }
        if let Some(s) = &w.summary {
            assert_eq!(&i.summary, s, "{ctx}: summary");
        }
        if let Some(labels) = &w.labels {
            for (k, v) in labels {
                assert_eq!(
                    i.labels.get(k),
                    Some(v),
                    "{ctx}: label {k} in {:?}",
                    i.labels
                );
            }
        }
        if let Some(ns) = &w.namespace {
            assert_eq!(i.namespace.as_ref(), Some(ns), "{ctx}: namespace");
        }
        if let Some(node) = &w.node {
            assert_eq!(i.node.as_ref(), Some(node), "{ctx}: node");
        }
        if let Some(subject) = &w.subject {
            assert_eq!(&i.subject.to_string(), subject, "{ctx}: subject");
        }
        if let Some(t) = &w.first_seen {
            assert_eq!(i.first_seen, offset(t), "{ctx}: first_seen");
        }
        if let Some(t) = &w.last_seen {
            assert_eq!(i.last_seen, offset(t), "{ctx}: last_seen");
        }
        if let Some(t) = &w.resolved_at {
            assert_eq!(i.resolved_at, Some(offset(t)), "{ctx}: resolved_at");
        }
        assert_eq!(
            i.id,
            herald_core::IncidentId::new(&i.fingerprint, i.id_opened()),
            "{ctx}"
        );
    }
}

trait OpenedAt {
    fn id_opened(&self) -> Timestamp;
}

impl OpenedAt for herald_core::Incident {
    /// The instant encoded in the id (`fingerprint@millis`).
    fn id_opened(&self) -> Timestamp {
        let millis = self.id.0.rsplit_once('@').expect("id has @").1;
        Timestamp::from_millisecond(millis.parse().expect("millis")).expect("valid millis")
    }
}

fn run_case(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read case");
    let case: Case =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = format!(
        "{} ({})",
        case.name,
        path.file_name().unwrap_or_default().display()
    );
    let mut classifier = Classifier::new(case.config);
    let mut next_id = 1;
    let mut previous = None;
    for (n, step) in case.steps.into_iter().enumerate() {
        let now = offset(&step.at);
        assert!(
            previous.is_none_or(|p| p <= now),
            "{name}: steps out of order at {n}"
        );
        previous = Some(now);
        let value = match (step.record, step.event) {
            (Some(v), None) => Some(v),
            (None, Some(file)) => Some(event_record(&file, step.delta.unwrap_or(1))),
            (None, None) => None,
            _ => panic!("{name}: step {n} has both record and event"),
        };
        let got = match (value, step.tick) {
            (Some(value), false) => {
                let r = record(value, now, next_id);
                if let Some(pod) = &step.from {
                    check_against_pod(&name, n, &r, pod);
                }
                next_id += 1;
                classifier.apply(&r, now)
            }
            (None, true) => classifier.tick(now),
            _ => panic!("{name}: step {n} needs exactly one of record / event / tick"),
        };
        check(&name, n, &got, &step.expect);
        if let Some(open) = step.open {
            let got: Vec<&str> = classifier
                .open_incidents()
                .iter()
                .map(|i| i.fingerprint.as_str())
                .collect();
            assert_eq!(got, open, "{name}: open incidents after step {n}");
        }
    }
}

/// One `#[test]` per case file, so each scenario passes or fails on its own.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(&cases_dir().join(concat!(stringify!($name), ".yaml")));
            }
        )*

        /// Every file in tests/cases is listed above (none silently skipped).
        #[test]
        fn every_case_file_is_run() {
            let listed: BTreeSet<String> =
                [$(stringify!($name)),*].iter().map(|n| format!("{n}.yaml")).collect();
            let found: BTreeSet<String> = std::fs::read_dir(cases_dir())
                .expect("tests/cases")
                .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .collect();
            assert_eq!(listed, found);
        }
    };
}

fn fixture(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A record of a real core/v1 Event, as the watcher makes it: the involved object, the
/// reporting host as the node, `delta` new occurrences.
fn event_record(file: &str, delta: u32) -> serde_json::Value {
    let e = fixture(file);
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let io = &e["involvedObject"];
    let host =
        s(&e["source"]["host"]).or_else(|| s(&e["reportingInstance"]).filter(|h| !h.is_empty()));
    let component = s(&e["source"]["component"])
        .or_else(|| s(&e["reportingComponent"]).filter(|c| !c.is_empty()));
    let count = e["count"].as_u64().unwrap_or(1) as u32;
    let mut object = serde_json::json!({
        "kind": match io["kind"].as_str() {
            Some("Pod") => serde_json::json!("Pod"),
            Some("Node") => serde_json::json!("Node"),
            Some(other) => serde_json::json!({ "Other": other }),
            None => panic!("{file}: no involvedObject.kind"),
        },
        "name": io["name"],
    });
    if let Some(ns) = s(&io["namespace"]) {
        object["namespace"] = ns.into();
    }
    if let Some(uid) = s(&io["uid"]) {
        object["uid"] = uid.into();
    }
    let mut body = serde_json::json!({
        "type": "event",
        "uid": e["metadata"]["uid"],
        "namespace": e["metadata"]["namespace"],
        "name": e["metadata"]["name"],
        "reason": e["reason"],
        "event_type": e["type"],
        "message": e["message"],
        "count": count.max(delta),
        "count_delta": delta,
        "source": { "component": component, "host": host },
    });
    if let Some(fp) = s(&io["fieldPath"]) {
        body["field_path"] = fp.into();
    }
    let mut r = serde_json::json!({ "object": object, "body": body });
    if let Some(h) = host.filter(|h| !h.contains("default-scheduler")) {
        r["node"] = h.into();
    }
    r
}

/// The pod fields of `r` agree with the real pod object `file`.
fn check_against_pod(case: &str, step: usize, r: &Record, file: &str) {
    let p = fixture(file);
    let ctx = format!("{case}, step {step}: record vs {file}");
    let m = &p["metadata"];
    assert_eq!(
        r.object.namespace.as_deref(),
        m["namespace"].as_str(),
        "{ctx}: namespace"
    );
    assert_eq!(
        Some(r.object.name.as_str()),
        m["name"].as_str(),
        "{ctx}: name"
    );
    assert_eq!(r.object.uid.as_deref(), m["uid"].as_str(), "{ctx}: uid");
    assert_eq!(
        r.node.as_deref(),
        p["spec"]["nodeName"].as_str(),
        "{ctx}: node"
    );
    if let Some(owner) = &r.owner {
        let refs = m["ownerReferences"].as_array().expect("ownerReferences");
        assert!(
            refs.iter()
                .any(|o| o["name"].as_str() == Some(owner.name.as_str())
                    && o["kind"].as_str() == Some(owner.kind.as_str())),
            "{ctx}: owner"
        );
    }
    for (k, v) in &r.labels {
        assert_eq!(
            m["labels"][k].as_str(),
            Some(v.as_str()),
            "{ctx}: label {k}"
        );
    }
    let RecordBody::Pod(pod) = &r.body else {
        return;
    };
    let statuses = || {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                p["status"]["initContainerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
    };
    match &pod.change {
        PodChange::ContainerWaiting {
            container,
            reason,
            restart_count,
            ..
        } => {
            let cs = statuses()
                .find(|c| c["name"].as_str() == Some(container.as_str()))
                .unwrap_or_else(|| panic!("{ctx}: no container {container}"));
            assert_eq!(
                cs["state"]["waiting"]["reason"].as_str(),
                Some(reason.as_str()),
                "{ctx}"
            );
            assert_eq!(
                cs["restartCount"].as_u64(),
                Some(u64::from(*restart_count)),
                "{ctx}"
            );
        }
        PodChange::ContainerTerminated {
            container,
            reason,
            exit_code,
            ..
        } => {
            let cs = statuses()
                .find(|c| c["name"].as_str() == Some(container.as_str()))
                .unwrap_or_else(|| panic!("{ctx}: no container {container}"));
            let t = if cs["state"]["terminated"].is_object() {
                &cs["state"]["terminated"]
            } else {
                &cs["lastState"]["terminated"]
            };
            assert_eq!(t["reason"].as_str(), reason.as_deref(), "{ctx}");
            assert_eq!(t["exitCode"].as_i64(), Some(i64::from(*exit_code)), "{ctx}");
        }
        PodChange::Evicted { message } => {
            assert_eq!(p["status"]["reason"].as_str(), Some("Evicted"), "{ctx}");
            assert_eq!(
                p["status"]["message"].as_str(),
                Some(message.as_str()),
                "{ctx}"
            );
        }
        _ => {}
    }
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

cases!(
    node_not_ready,
    node_not_ready_flap,
    oom_killed,
    eviction_storm,
    eviction_below_threshold,
    noise_rollout,
    noise_completed_job,
    noise_normal_events,
    node_not_ready_updates,
    node_not_ready_seen_late,
    oom_node_event_first,
    crash_loop,
    image_pull,
    failed_scheduling,
    failed_mount,
    probe_failures,
    job_failed,
    node_pressure,
    node_rebooted,
    evicted,
    inhibition,
    storm_namespace_cluster,
    storm_ends_before_evicted_wait,
    noise_scale_down,
    yaml_rules,
    oom_then_crash_loop,
);
