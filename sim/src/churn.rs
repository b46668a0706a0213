//! Churn: a steady, configurable rate of realistic cluster changes.
//!
//! A [`Churner`] performs one change per [`Churner::step`], chosen by the weights of a
//! [`ChurnMix`] (seeded, so a sequence of steps is reproducible):
//!
//! * **container restart** (pod status): `restartCount + 1`, `lastState.terminated`
//!   (`Error` exit 1 or `OOMKilled` exit 137), a new `containerID`; kubelet events
//!   `Pulled` (image already present), `Created`, `Started` and, from the second
//!   restart on, `BackOff`, which the recorder aggregates on repeats;
//! * **readiness flip** (pod status): `Ready`/`ContainersReady` toggle (with
//!   `ContainersNotReady` and the container's `ready`), a `Warning Unhealthy`
//!   readiness-probe event when a pod goes unready;
//! * **pod replacement**: a ReplicaSet / DaemonSet / StatefulSet pod is deleted
//!   (`Killing` events) and its controller creates the replacement (new
//!   `generateName` name and uid, fresh status), with `SuccessfulCreate`, the
//!   scheduler's `Scheduled` and the kubelet's `Pulled`/`Created`/`Started`;
//! * **event**: a standalone Normal/Warning event on a pod (probe failures, image
//!   already present); 40% repeat a recent event, which the recorder turns into a
//!   `count` increment (client-go's aggregation, see [`crate::events`]);
//! * **node heartbeat** (node status): every condition's `lastHeartbeatTime` and
//!   nothing else (kubelets renew Leases; they post node status only every few
//!   minutes, so keep this weight low).
//!
//! [`crate::Simulator::churn`] runs steps at `rate_per_sec` until a stop future
//! resolves, a duration elapses or a step budget is used up. Events created by churn
//! are deleted after [`ChurnSpec::event_ttl`] (the apiserver's `--event-ttl`, 1 h).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Simulator;
use crate::error::SimError;
use crate::events::{EventSpec, EventStyle, ObjectRef};
use crate::objects::{self, container_id_with, suffix_with, uuid_with};
use crate::resource::Resource;
use crate::store::Subresource;

/// Relative weights of the kinds of change (any scale; zero disables a kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChurnMix {
    /// Container restarts.
    pub container_restart: u32,
    /// Readiness flips.
    pub readiness_flip: u32,
    /// Pod deletions with replacement by the controller.
    pub pod_replace: u32,
    /// Standalone events.
    pub event: u32,
    /// Node status heartbeats.
    pub node_heartbeat: u32,
}

impl Default for ChurnMix {
    fn default() -> Self {
        ChurnMix {
            container_restart: 20,
            readiness_flip: 30,
            pod_replace: 10,
            event: 35,
            node_heartbeat: 5,
        }
    }
}

impl ChurnMix {
    fn total(&self) -> u32 {
        self.container_restart
            + self.readiness_flip
            + self.pod_replace
            + self.event
            + self.node_heartbeat
    }
}

/// How to churn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnSpec {
    /// Steps per second (for [`crate::Simulator::churn`]).
    pub rate_per_sec: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Weights of the kinds of change.
    pub mix: ChurnMix,
    /// Stop after this long (`None`: until the stop future resolves).
    pub duration: Option<Duration>,
    /// Stop after this many steps (`None`: no limit).
    pub max_steps: Option<u64>,
    /// Delete events created by churn this long after creation (`None`: keep them).
    pub event_ttl: Option<Duration>,
}

impl Default for ChurnSpec {
    fn default() -> Self {
        ChurnSpec {
            rate_per_sec: 10.0,
            seed: 1,
            mix: ChurnMix::default(),
            duration: None,
            max_steps: None,
            event_ttl: Some(Duration::from_secs(3600)),
        }
    }
}

/// The kind of change a step made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnKind {
    /// A container restarted.
    ContainerRestart,
    /// A pod's readiness flipped.
    ReadinessFlip,
    /// A pod was deleted and replaced.
    PodReplace,
    /// An event was recorded.
    Event,
    /// A node's heartbeat times moved.
    NodeHeartbeat,
    /// Nothing suitable to change (no pods / nodes, a completed pod, a pod deleted
    /// behind the churner's back).
    Skipped,
}

/// Counts of what churn did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChurnReport {
    /// Steps taken (skipped ones included).
    pub steps: u64,
    /// Container restarts.
    pub container_restarts: u64,
    /// Readiness flips (both directions).
    pub readiness_flips: u64,
    /// Pods replaced (one DELETED + one ADDED each).
    pub pods_replaced: u64,
    /// Standalone event steps.
    pub event_steps: u64,
    /// Node heartbeats.
    pub node_heartbeats: u64,
    /// Skipped steps.
    pub skipped: u64,
    /// Events created (new Event objects), by all kinds of step.
    pub events_created: u64,
    /// Event repeats aggregated into an existing Event (`count` + 1).
    pub events_aggregated: u64,
    /// Events deleted after the TTL.
    pub events_expired: u64,
    /// Warning events (created or aggregated).
    pub warnings: u64,
    /// Wall-clock duration of [`crate::Simulator::churn`].
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Marker error: the chosen object cannot take this change (counted as skipped).
fn skip() -> SimError {
    SimError::BadRequest("churn: not applicable".into())
}

fn is_skip(e: &SimError) -> bool {
    matches!(e, SimError::BadRequest(m) if m == "churn: not applicable")
        || matches!(e, SimError::NotFound { .. })
}

/// Performs churn steps against one simulator (see the module docs).
#[derive(Debug)]
pub struct Churner {
    sim: Simulator,
    rng: SmallRng,
    mix: ChurnMix,
    pods: Vec<Arc<str>>,
    nodes: Vec<Arc<str>>,
    recent: VecDeque<EventSpec>,
    created_events: VecDeque<(Instant, String, String)>,
    event_ttl: Option<Duration>,
    report: ChurnReport,
}

fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn kubelet_event(
    ns: &str,
    pod: &str,
    node: &str,
    type_: &str,
    reason: &str,
    message: String,
    container: &str,
) -> EventSpec {
    EventSpec::recorder(
        ObjectRef::pod(ns, pod),
        type_,
        reason,
        message,
        "kubelet",
        Some(node),
    )
    .container(container)
}

impl Churner {
    fn new(sim: &Simulator, spec: &ChurnSpec) -> Churner {
        Churner {
            sim: sim.clone(),
            rng: SmallRng::seed_from_u64(spec.seed),
            mix: spec.mix,
            pods: sim.inner.store.keys(Resource::Pods),
            nodes: sim.inner.store.keys(Resource::Nodes),
            recent: VecDeque::new(),
            created_events: VecDeque::new(),
            event_ttl: spec.event_ttl,
            report: ChurnReport::default(),
        }
    }

    /// What the churner has done so far.
    pub fn report(&self) -> &ChurnReport {
        &self.report
    }

    /// Perform one change. Errors other than "nothing to change" are returned (the
    /// step still counts).
    pub fn step(&mut self) -> Result<ChurnKind, SimError> {
        self.report.steps += 1;
        let total = self.mix.total();
        let kind = if total == 0 {
            ChurnKind::Skipped
        } else {
            let mut x = self.rng.random_range(0..total);
            let m = self.mix;
            let mut kind = ChurnKind::NodeHeartbeat;
            for (w, k) in [
                (m.container_restart, ChurnKind::ContainerRestart),
                (m.readiness_flip, ChurnKind::ReadinessFlip),
                (m.pod_replace, ChurnKind::PodReplace),
                (m.event, ChurnKind::Event),
                (m.node_heartbeat, ChurnKind::NodeHeartbeat),
            ] {
                if x < w {
                    kind = k;
                    break;
                }
                x -= w;
            }
            kind
        };
        let result = match kind {
            ChurnKind::ContainerRestart => self.container_restart(),
            ChurnKind::ReadinessFlip => self.readiness_flip(),
            ChurnKind::PodReplace => self.pod_replace(),
            ChurnKind::Event => self.standalone_event(),
            ChurnKind::NodeHeartbeat => self.node_heartbeat(),
            ChurnKind::Skipped => Err(skip()),
        };
        match result {
            Ok(()) => {
                match kind {
                    ChurnKind::ContainerRestart => self.report.container_restarts += 1,
                    ChurnKind::ReadinessFlip => self.report.readiness_flips += 1,
                    ChurnKind::PodReplace => self.report.pods_replaced += 1,
                    ChurnKind::Event => self.report.event_steps += 1,
                    ChurnKind::NodeHeartbeat => self.report.node_heartbeats += 1,
                    ChurnKind::Skipped => {}
                }
                Ok(kind)
            }
            Err(e) if is_skip(&e) => {
                self.report.skipped += 1;
                Ok(ChurnKind::Skipped)
            }
            Err(e) => Err(e),
        }
    }

    /// Delete churn-created events older than the TTL; returns how many were deleted.
    pub fn expire_events(&mut self) -> u64 {
        let Some(ttl) = self.event_ttl else {
            return 0;
        };
        let mut n = 0;
        while let Some((t, _, _)) = self.created_events.front() {
            if t.elapsed() < ttl {
                break;
            }
            if let Some((_, ns, name)) = self.created_events.pop_front()
                && self.sim.delete(Resource::Events, Some(&ns), &name).is_ok()
            {
                n += 1;
            }
        }
        self.report.events_expired += n;
        n
    }

    fn record(&mut self, spec: EventSpec) -> Result<(), SimError> {
        let ev = self.sim.record_event(&spec)?;
        if spec.type_ == "Warning" {
            self.report.warnings += 1;
        }
        // A repeat: `count` grew (recorder events) or `series` appeared (events.k8s.io ones).
        let occurrences = ev
            .get("count")
            .and_then(Value::as_i64)
            .or_else(|| ev.pointer("/series/count").and_then(Value::as_i64))
            .unwrap_or(1);
        if occurrences > 1 {
            self.report.events_aggregated += 1;
        } else {
            self.report.events_created += 1;
            if self.event_ttl.is_some() {
                self.created_events.push_back((
                    Instant::now(),
                    str_at(&ev, "/metadata/namespace").to_string(),
                    str_at(&ev, "/metadata/name").to_string(),
                ));
            }
        }
        if self.recent.len() >= 64 {
            self.recent.pop_front();
        }
        self.recent.push_back(spec);
        Ok(())
    }

    fn pick_pod(&mut self) -> Result<(usize, String, String), SimError> {
        if self.pods.is_empty() {
            return Err(skip());
        }
        let idx = self.rng.random_range(0..self.pods.len());
        let (ns, name) = split_key(&self.pods[idx]);
        Ok((idx, ns.unwrap_or("default").to_string(), name.to_string()))
    }

    fn forget_missing(&mut self, idx: usize, e: &SimError) {
        if matches!(e, SimError::NotFound { .. }) {
            self.pods.swap_remove(idx);
        }
    }

    fn container_restart(&mut self) -> Result<(), SimError> {
        let (idx, ns, name) = self.pick_pod()?;
        let pick: u32 = self.rng.random();
        let oom = self.rng.random_bool(0.2);
        let new_id = container_id_with(&mut self.rng);
        let now = objects::now_rfc3339();
        let mut restarted = (String::new(), String::new(), 0);
        let res = self.sim.inner.store.mutate(
            Resource::Pods,
            Some(&ns),
            &name,
            Subresource::Status,
            |pod| {
                if str_at(pod, "/status/phase") != "Running" {
                    return Err(skip());
                }
                let Some(Value::Array(statuses)) = pod.pointer_mut("/status/containerStatuses")
                else {
                    return Err(skip());
                };
                if statuses.is_empty() {
                    return Err(skip());
                }
                let n = statuses.len();
                let cs = &mut statuses[pick as usize % n];
                let started = str_at(cs, "/state/running/startedAt").to_string();
                let old_id = str_at(cs, "/containerID").to_string();
                let count = cs.get("restartCount").and_then(Value::as_u64).unwrap_or(0) + 1;
                cs["lastState"] = json!({"terminated": {
                    "exitCode": if oom { 137 } else { 1 },
                    "reason": if oom { "OOMKilled" } else { "Error" },
                    "startedAt": started, "finishedAt": now, "containerID": old_id
                }});
                cs["state"] = json!({"running": {"startedAt": now}});
                cs["containerID"] = json!(new_id);
                cs["restartCount"] = json!(count);
                restarted = (
                    str_at(cs, "/name").to_string(),
                    str_at(cs, "/image").to_string(),
                    count,
                );
                Ok(())
            },
        );
        let pod = res.inspect_err(|e| self.forget_missing(idx, e))?;
        let node = str_at(&pod, "/spec/nodeName").to_string();
        let (container, image, count) = restarted;
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let image = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| str_at(c, "/name") == container))
            .map_or(image, |c| str_at(c, "/image").to_string());
        if count >= 2 {
            self.record(kubelet_event(
                &ns,
                &name,
                &node,
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {container} in pod {name}_{ns}({uid})"
                ),
                &container,
            ))?;
        }
        self.record(kubelet_event(
            &ns,
            &name,
            &node,
            "Normal",
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
            &container,
        ))?;
        self.record(kubelet_event(
            &ns,
            &name,
            &node,
            "Normal",
            "Created",
            format!("Created container {container}"),
            &container,
        ))?;
        self.record(kubelet_event(
            &ns,
            &name,
            &node,
            "Normal",
            "Started",
            format!("Started container {container}"),
            &container,
        ))?;
        tracing::debug!(namespace = %ns, pod = %name, container = %container, restarts = count, "churn: container restarted");
        Ok(())
    }

    fn readiness_flip(&mut self) -> Result<(), SimError> {
        let (idx, ns, name) = self.pick_pod()?;
        let pick: u32 = self.rng.random();
        let now = objects::now_rfc3339();
        let mut unready: Option<String> = None;
        let res = self.sim.inner.store.mutate(
            Resource::Pods,
            Some(&ns),
            &name,
            Subresource::Status,
            |pod| {
                if str_at(pod, "/status/phase") != "Running" {
                    return Err(skip());
                }
                let was_ready = pod
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == "Ready"))
                    .is_some_and(|c| str_at(c, "/status") == "True");
                let Some(Value::Array(statuses)) = pod.pointer_mut("/status/containerStatuses")
                else {
                    return Err(skip());
                };
                if statuses.is_empty() {
                    return Err(skip());
                }
                let n = statuses.len();
                let target = pick as usize % n;
                for (i, cs) in statuses.iter_mut().enumerate() {
                    cs["ready"] = json!(!was_ready || i != target);
                }
                let container = str_at(&statuses[target], "/name").to_string();
                if let Some(Value::Array(conds)) = pod.pointer_mut("/status/conditions") {
                    for c in conds.iter_mut() {
                        let t = str_at(c, "/type").to_string();
                        if t != "Ready" && t != "ContainersReady" {
                            continue;
                        }
                        let Some(m) = c.as_object_mut() else { continue };
                        m.insert("lastTransitionTime".into(), json!(now));
                        m.insert("lastProbeTime".into(), Value::Null);
                        if was_ready {
                            m.insert("status".into(), json!("False"));
                            m.insert("reason".into(), json!("ContainersNotReady"));
                            m.insert(
                                "message".into(),
                                json!(format!("containers with unready status: [{container}]")),
                            );
                        } else {
                            m.insert("status".into(), json!("True"));
                            m.remove("reason");
                            m.remove("message");
                        }
                    }
                }
                if was_ready {
                    unready = Some(container);
                }
                Ok(())
            },
        );
        let pod = res.inspect_err(|e| self.forget_missing(idx, e))?;
        if let Some(container) = unready {
            let node = str_at(&pod, "/spec/nodeName").to_string();
            let message = match self.rng.random_range(0..3) {
                0 => "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
                1 => format!(
                    "Readiness probe failed: Get \"http://{}:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    str_at(&pod, "/status/podIP")
                ),
                _ => format!(
                    "Readiness probe failed: Get \"http://{}:8080/ready\": dial tcp {}:8080: connect: connection refused",
                    str_at(&pod, "/status/podIP"),
                    str_at(&pod, "/status/podIP")
                ),
            };
            self.record(kubelet_event(
                &ns,
                &name,
                &node,
                "Warning",
                "Unhealthy",
                message,
                &container,
            ))?;
        }
        Ok(())
    }

    fn pod_replace(&mut self) -> Result<(), SimError> {
        let (idx, ns, name) = self.pick_pod()?;
        let old = self
            .sim
            .get(Resource::Pods, Some(&ns), &name)
            .inspect_err(|e| self.forget_missing(idx, e))?;
        let owner_kind = str_at(&old, "/metadata/ownerReferences/0/kind").to_string();
        let owner = str_at(&old, "/metadata/ownerReferences/0/name").to_string();
        let owner_api = str_at(&old, "/metadata/ownerReferences/0/apiVersion").to_string();
        if !matches!(
            owner_kind.as_str(),
            "ReplicaSet" | "DaemonSet" | "StatefulSet"
        ) || str_at(&old, "/status/phase") != "Running"
        {
            return Err(skip());
        }
        let old_node = str_at(&old, "/spec/nodeName").to_string();
        let containers: Vec<(String, String)> = old
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            str_at(c, "/name").to_string(),
                            str_at(c, "/image").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The kubelet stops the containers, then the pod object goes away.
        for (c, _) in &containers {
            self.record(kubelet_event(
                &ns,
                &name,
                &old_node,
                "Normal",
                "Killing",
                format!("Stopping container {c}"),
                c,
            ))?;
        }
        self.sim
            .delete(Resource::Pods, Some(&ns), &name)
            .inspect_err(|e| self.forget_missing(idx, e))?;
        // The controller's replacement.
        let new_name = match owner_kind.as_str() {
            "StatefulSet" => name.clone(),
            _ => format!(
                "{}{}",
                str_at(&old, "/metadata/generateName"),
                suffix_with(&mut self.rng, 5)
            ),
        };
        let node = if owner_kind == "DaemonSet" || self.nodes.is_empty() {
            old_node.clone()
        } else {
            let n = self.rng.random_range(0..self.nodes.len());
            self.nodes[n].to_string()
        };
        let node_obj = self.sim.get(Resource::Nodes, None, &node).ok();
        let host_ip = node_obj
            .as_ref()
            .and_then(|n| n.pointer("/status/addresses"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| str_at(x, "/type") == "InternalIP"))
            .map_or_else(
                || str_at(&old, "/status/hostIP").to_string(),
                |x| str_at(x, "/address").to_string(),
            );
        let host_network = old
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let pod_ip = match node_obj.as_ref().map(|n| str_at(n, "/spec/podCIDR")) {
            Some(cidr) if !host_network && !cidr.is_empty() => {
                let base = cidr.rsplit_once('.').map_or(cidr, |(b, _)| b);
                format!("{base}.{}", self.rng.random_range(2..252))
            }
            _ if host_network => host_ip.clone(),
            _ => str_at(&old, "/status/podIP").to_string(),
        };
        let now = objects::now_rfc3339();
        let sa = format!("kube-api-access-{}", suffix_with(&mut self.rng, 5));
        let old_sa = old
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .map(|v| str_at(v, "/name"))
                    .find(|n| n.starts_with("kube-api-access-"))
            })
            .map(str::to_string);
        let mut pod = old.clone();
        pod["metadata"]["name"] = json!(new_name);
        pod["metadata"]["uid"] = json!(uuid_with(&mut self.rng));
        pod["metadata"]["creationTimestamp"] = json!(now);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if pod["metadata"]["labels"]
            .get("statefulset.kubernetes.io/pod-name")
            .is_some()
        {
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(new_name);
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(old_sa) = &old_sa {
            rename_volume(&mut pod["spec"], old_sa, &sa);
        }
        let statuses: Vec<Value> = old
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s["state"] = json!({"running": {"startedAt": now}});
                        s["lastState"] = json!({});
                        s["ready"] = json!(true);
                        s["started"] = json!(true);
                        s["restartCount"] = json!(0);
                        s["containerID"] = json!(container_id_with(&mut self.rng));
                        s
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        pod["status"] = json!({
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
                           cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": old.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort"))
        });
        let created = self.sim.create(Resource::Pods, pod)?;
        let key: Arc<str> = Arc::from(format!("{ns}/{new_name}"));
        self.pods[idx] = key;
        let (component, message) = match owner_kind.as_str() {
            "StatefulSet" => (
                "statefulset-controller",
                format!("create Pod {new_name} in StatefulSet {owner} successful"),
            ),
            "DaemonSet" => ("daemonset-controller", format!("Created pod: {new_name}")),
            _ => ("replicaset-controller", format!("Created pod: {new_name}")),
        };
        self.record(EventSpec::recorder(
            ObjectRef::other(&owner_kind, &owner_api, Some(&ns), &owner),
            "Normal",
            "SuccessfulCreate",
            message,
            component,
            None,
        ))?;
        self.record(EventSpec {
            regarding: ObjectRef::pod(&ns, &new_name),
            field_path: None,
            type_: "Normal".into(),
            reason: "Scheduled".into(),
            message: format!("Successfully assigned {ns}/{new_name} to {node}"),
            component: "default-scheduler".into(),
            style: EventStyle::EventsApi {
                action: "Binding".into(),
                instance: "default-scheduler-ip-10-0-0-10.eu-west-1.compute.internal".into(),
            },
            annotations: None,
            uid_override: None,
        })?;
        for (c, image) in &containers {
            self.record(kubelet_event(
                &ns,
                &new_name,
                &node,
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
                c,
            ))?;
            self.record(kubelet_event(
                &ns,
                &new_name,
                &node,
                "Normal",
                "Created",
                format!("Created container {c}"),
                c,
            ))?;
            self.record(kubelet_event(
                &ns,
                &new_name,
                &node,
                "Normal",
                "Started",
                format!("Started container {c}"),
                c,
            ))?;
        }
        tracing::debug!(
            namespace = %ns,
            old = %name,
            new = %new_name,
            rv = str_at(&created, "/metadata/resourceVersion"),
            "churn: pod replaced"
        );
        Ok(())
    }

    fn standalone_event(&mut self) -> Result<(), SimError> {
        if !self.recent.is_empty() && self.rng.random_bool(0.4) {
            let i = self.rng.random_range(0..self.recent.len());
            if let Some(spec) = self.recent.get(i).cloned() {
                return self.record(spec);
            }
        }
        let (idx, ns, name) = self.pick_pod()?;
        let pod = self
            .sim
            .get(Resource::Pods, Some(&ns), &name)
            .inspect_err(|e| self.forget_missing(idx, e))?;
        if str_at(&pod, "/status/phase") != "Running" {
            return Err(skip());
        }
        let node = str_at(&pod, "/spec/nodeName").to_string();
        let ip = str_at(&pod, "/status/podIP").to_string();
        let Some(c) = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.first())
        else {
            return Err(skip());
        };
        let container = str_at(c, "/name").to_string();
        let image = str_at(c, "/image").to_string();
        let (type_, reason, message) = match self.rng.random_range(0..4) {
            0 => (
                "Warning",
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500".to_string(),
            ),
            1 => (
                "Warning",
                "Unhealthy",
                format!(
                    "Readiness probe failed: Get \"http://{ip}:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                ),
            ),
            2 => (
                "Normal",
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            _ => (
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
            ),
        };
        self.record(kubelet_event(
            &ns, &name, &node, type_, reason, message, &container,
        ))
    }

    fn node_heartbeat(&mut self) -> Result<(), SimError> {
        if self.nodes.is_empty() {
            return Err(skip());
        }
        let idx = self.rng.random_range(0..self.nodes.len());
        let name = self.nodes[idx].to_string();
        let now = objects::now_rfc3339();
        let res = self.sim.inner.store.mutate(
            Resource::Nodes,
            None,
            &name,
            Subresource::Status,
            |node| {
                let Some(Value::Array(conds)) = node.pointer_mut("/status/conditions") else {
                    return Err(skip());
                };
                for c in conds.iter_mut() {
                    // CNI-owned NetworkUnavailable is not renewed by the kubelet.
                    if str_at(c, "/type") != "NetworkUnavailable" {
                        c["lastHeartbeatTime"] = json!(now);
                    }
                }
                Ok(())
            },
        );
        if let Err(SimError::NotFound { .. }) = &res {
            self.nodes.swap_remove(idx);
        }
        res.map(|_| ())
    }
}

fn rename_volume(spec: &mut Value, from: &str, to: &str) {
    if let Some(Value::Array(vs)) = spec.get_mut("volumes") {
        for v in vs.iter_mut().filter(|v| str_at(v, "/name") == from) {
            v["name"] = json!(to);
        }
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut() {
                if let Some(Value::Array(ms)) = c.get_mut("volumeMounts") {
                    for m in ms.iter_mut().filter(|m| str_at(m, "/name") == from) {
                        m["name"] = json!(to);
                    }
                }
            }
        }
    }
}

impl Simulator {
    /// A churner over the objects stored now (pods and nodes created later, other
    /// than its own replacements, are not picked).
    pub fn churner(&self, spec: &ChurnSpec) -> Churner {
        Churner::new(self, spec)
    }

    /// Churn at `spec.rate_per_sec` until `stop` resolves, `spec.duration` elapses or
    /// `spec.max_steps` steps were taken. Step errors are logged and counted as skipped
    /// rather than ending the run.
    pub async fn churn(
        &self,
        spec: &ChurnSpec,
        stop: impl Future<Output = ()>,
    ) -> Result<ChurnReport, SimError> {
        if !(spec.rate_per_sec.is_finite() && spec.rate_per_sec > 0.0) {
            return Err(SimError::BadRequest(format!(
                "churn rate must be a positive number, got {}",
                spec.rate_per_sec
            )));
        }
        let mut churner = self.churner(spec);
        let start = tokio::time::Instant::now();
        let period = Duration::from_secs_f64((1.0 / spec.rate_per_sec).clamp(0.001, 0.1));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // At most half a second of backlog is caught up after a stall.
        let max_burst = ((spec.rate_per_sec * 0.5).ceil() as u64).max(1);
        let limit = spec.max_steps.unwrap_or(u64::MAX);
        let mut done: u64 = 0;
        tracing::info!(
            rate = spec.rate_per_sec,
            seed = spec.seed,
            pods = churner.pods.len(),
            nodes = churner.nodes.len(),
            "churn started"
        );
        tokio::pin!(stop);
        'run: loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                _ = ticker.tick() => {}
            }
            let elapsed = start.elapsed();
            if spec.duration.is_some_and(|d| elapsed >= d) {
                break;
            }
            let due = ((elapsed.as_secs_f64() * spec.rate_per_sec) as u64).min(limit);
            if due > done + max_burst {
                done = due - max_burst;
            }
            while done < due {
                if let Err(e) = churner.step() {
                    tracing::warn!(error = %e, "churn step failed");
                    churner.report.skipped += 1;
                }
                done += 1;
                if done >= limit {
                    break 'run;
                }
            }
            churner.expire_events();
        }
        churner.expire_events();
        let mut report = churner.report.clone();
        report.elapsed = start.elapsed();
        tracing::info!(
            steps = report.steps,
            restarts = report.container_restarts,
            readiness_flips = report.readiness_flips,
            replaced = report.pods_replaced,
            events_created = report.events_created,
            events_aggregated = report.events_aggregated,
            heartbeats = report.node_heartbeats,
            skipped = report.skipped,
            "churn stopped"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_volume_renames_mounts_too() {
        let mut spec = json!({
            "volumes": [{"name": "kube-api-access-aaaaa"}, {"name": "tmp"}],
            "containers": [{"volumeMounts": [{"name": "kube-api-access-aaaaa"}, {"name": "tmp"}]}]
        });
        rename_volume(&mut spec, "kube-api-access-aaaaa", "kube-api-access-bbbbb");
        assert_eq!(spec["volumes"][0]["name"], "kube-api-access-bbbbb");
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-bbbbb"
        );
        assert_eq!(spec["volumes"][1]["name"], "tmp");
    }

    #[test]
    fn empty_cluster_only_skips() {
        let sim = Simulator::new(crate::SimConfig::default());
        let mut c = sim.churner(&ChurnSpec::default());
        for _ in 0..50 {
            assert_eq!(c.step().unwrap(), ChurnKind::Skipped);
        }
        assert_eq!(c.report().skipped, 50);
    }
}
