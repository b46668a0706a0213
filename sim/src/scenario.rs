//! Scenarios: timed scripts of cluster changes (create / patch / patch-status /
//! delete objects, record events) executed through the same store code path as HTTP
//! writes, so every change reaches watchers. A scenario has `setup` actions (the
//! starting cluster, applied at once) and timed `steps`; running it yields a
//! [`ScenarioReport`] listing what happened (for demo summaries and e2e asserts).
//!
//! Patch values may contain placeholders resolved when the step runs:
//! `{now}` (RFC 3339 time), `{uid}` (the target object's uid) and `{containerID}`.

mod incident;

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::Simulator;
use crate::error::SimError;
use crate::events::EventSpec;
use crate::objects;
use crate::patch;
use crate::resource::Resource;

/// One change to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create an object (namespace from `metadata.namespace`).
    Create {
        /// Resource type.
        resource: Resource,
        /// Object in core/v1 shape.
        object: Value,
    },
    /// Strategic-merge-patch the main resource (lists such as `conditions` and
    /// `containerStatuses` merge by key; `"$patch": "delete"` removes an element).
    Patch {
        /// Resource type.
        resource: Resource,
        /// Namespace (`None` for nodes).
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Patch document.
        patch: Value,
    },
    /// Like [`Action::Patch`] but on the `status` subresource.
    PatchStatus {
        /// Resource type.
        resource: Resource,
        /// Namespace (`None` for nodes).
        namespace: Option<String>,
        /// Name.
        name: String,
        /// Patch document.
        patch: Value,
    },
    /// Delete an object.
    Delete {
        /// Resource type.
        resource: Resource,
        /// Namespace (`None` for nodes).
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// Record an event (aggregated like client-go's recorder).
    Event(Box<EventSpec>),
    /// Note something noteworthy in the report (no cluster change).
    Finding(Finding),
}

/// Something a scenario did that a consumer may want to assert on or summarise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A container was OOM-killed.
    OomKilled {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// A node went NotReady.
    NodeNotReady {
        /// Node name.
        node: String,
    },
    /// A node became Ready again.
    NodeRecovered {
        /// Node name.
        node: String,
    },
    /// A pod was evicted by the kubelet.
    Evicted {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Node it ran on.
        node: String,
    },
    /// Expected, benign activity (rollouts, completed jobs) that must not alert.
    Noise {
        /// Human description.
        description: String,
    },
}

/// A timed action.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Offset from the start of the run (at speed 1.0).
    pub at: Duration,
    /// What to do.
    pub action: Action,
}

/// A named, timed script of cluster changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name (`incident`).
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Starting cluster, applied by [`Simulator::seed`].
    pub setup: Vec<Action>,
    /// Timed steps, applied by [`Simulator::run_steps`] in `at` order.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Duration of the steps at speed 1.0.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|s| s.at).max().unwrap_or_default()
    }
}

/// What a scenario run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Steps executed.
    pub steps_run: usize,
    /// Events recorded (including aggregated repeats).
    pub events_recorded: usize,
    /// Objects created by steps.
    pub objects_created: usize,
    /// Objects deleted by steps.
    pub objects_deleted: usize,
    /// Wall-clock duration of the run.
    pub elapsed: Duration,
    /// Noteworthy things, in order.
    pub findings: Vec<Finding>,
}

impl ScenarioReport {
    /// `(namespace, pod, container)` of every OOM kill.
    pub fn oom_killed(&self) -> Vec<(String, String, String)> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::OomKilled {
                    namespace,
                    pod,
                    container,
                } => Some((namespace.clone(), pod.clone(), container.clone())),
                _ => None,
            })
            .collect()
    }

    /// Nodes that went NotReady.
    pub fn not_ready_nodes(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::NodeNotReady { node } => Some(node.clone()),
                _ => None,
            })
            .collect()
    }

    /// Nodes that recovered.
    pub fn recovered_nodes(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::NodeRecovered { node } => Some(node.clone()),
                _ => None,
            })
            .collect()
    }

    /// `namespace/name` of every evicted pod.
    pub fn evicted_pods(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::Evicted { namespace, pod, .. } => Some(format!("{namespace}/{pod}")),
                _ => None,
            })
            .collect()
    }

    /// `herald` subcommands worth running after the scenario (without the binary name): the
    /// history of the OOM-killed pods, the nodes that went NotReady and one evicted pod.
    pub fn hints(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (ns, pod, _) in self.oom_killed() {
            out.push(format!("history pod {ns}/{pod}"));
        }
        for node in self.not_ready_nodes() {
            out.push(format!("history node {node}"));
        }
        if let Some(pod) = self.evicted_pods().first() {
            out.push(format!("history pod {pod}"));
        }
        out.dedup();
        out
    }

    /// Descriptions of the benign noise the scenario generated.
    pub fn noise(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter_map(|f| match f {
                Finding::Noise { description } => Some(description.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A built-in scenario by name (`incident`).
pub fn builtin_scenario(name: &str) -> Option<Scenario> {
    match name {
        "incident" => Some(incident::incident()),
        _ => None,
    }
}

/// Merge keys used by scenario patches: the apiserver's plus `containerStatuses` by name.
fn scenario_merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containerStatuses" | "initContainerStatuses" => Some("name"),
        other => patch::apiserver_merge_key(other),
    }
}

/// Replace placeholders in every string of `v`.
fn resolve(v: &Value, uid: &str, now: &str) -> Value {
    match v {
        Value::String(s) if s.contains('{') => Value::String(
            s.replace("{now}", now)
                .replace("{uid}", uid)
                .replace("{containerID}", &objects::container_id()),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, uid, now)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), resolve(x, uid, now)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[derive(Default)]
struct Tally {
    events: usize,
    created: usize,
    deleted: usize,
    findings: Vec<Finding>,
}

impl Simulator {
    fn apply_action(&self, action: &Action, tally: &mut Tally) -> Result<(), SimError> {
        match action {
            Action::Create { resource, object } => {
                let now = objects::now_rfc3339();
                self.create(*resource, resolve(object, "", &now))?;
                tally.created += 1;
            }
            Action::Patch {
                resource,
                namespace,
                name,
                patch: p,
            }
            | Action::PatchStatus {
                resource,
                namespace,
                name,
                patch: p,
            } => {
                let status = matches!(action, Action::PatchStatus { .. });
                let ns = namespace.as_deref();
                let current = self.get(*resource, ns, name)?;
                let uid = current
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let doc = resolve(p, &uid, &objects::now_rfc3339());
                let sub = if status {
                    crate::store::Subresource::Status
                } else {
                    crate::store::Subresource::Main
                };
                let is_pod = *resource == Resource::Pods;
                self.inner.store.mutate(*resource, ns, name, sub, |cur| {
                    patch::strategic_merge(cur, &doc, &scenario_merge_key);
                    if is_pod {
                        normalize_pod_conditions(cur);
                    }
                    Ok(())
                })?;
            }
            Action::Delete {
                resource,
                namespace,
                name,
            } => {
                self.delete(*resource, namespace.as_deref(), name)?;
                tally.deleted += 1;
            }
            Action::Event(spec) => {
                self.record_event(spec)?;
                tally.events += 1;
            }
            Action::Finding(f) => tally.findings.push(f.clone()),
        }
        Ok(())
    }

    /// Apply a scenario's `setup` actions (the starting cluster) immediately.
    pub fn seed(&self, scenario: &Scenario) -> Result<(), SimError> {
        let mut tally = Tally::default();
        for (i, a) in scenario.setup.iter().enumerate() {
            self.apply_action(a, &mut tally)
                .map_err(|e| e.in_step(i, format!("setup of {}", scenario.name)))?;
        }
        tracing::info!(scenario = %scenario.name, actions = scenario.setup.len(), rv = self.resource_version(), "scenario seeded");
        Ok(())
    }

    /// Run a scenario's timed steps; `speed` > 1.0 compresses time (50.0 = 50x faster).
    pub async fn run_steps(
        &self,
        scenario: &Scenario,
        speed: f64,
    ) -> Result<ScenarioReport, SimError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(SimError::BadRequest(format!(
                "scenario speed must be a positive number, got {speed}"
            )));
        }
        let mut steps: Vec<&Step> = scenario.steps.iter().collect();
        steps.sort_by_key(|s| s.at);
        let start = tokio::time::Instant::now();
        let mut tally = Tally::default();
        for (i, step) in steps.iter().enumerate() {
            let due = start + step.at.div_f64(speed);
            tokio::time::sleep_until(due).await;
            self.apply_action(&step.action, &mut tally)
                .map_err(|e| e.in_step(i, describe(&step.action)))?;
            tracing::trace!(scenario = %scenario.name, step = i, at_ms = step.at.as_millis() as u64, "step applied");
        }
        let report = ScenarioReport {
            scenario: scenario.name.clone(),
            steps_run: steps.len(),
            events_recorded: tally.events,
            objects_created: tally.created,
            objects_deleted: tally.deleted,
            elapsed: start.elapsed(),
            findings: tally.findings,
        };
        tracing::info!(scenario = %scenario.name, steps = report.steps_run, events = report.events_recorded, elapsed_ms = report.elapsed.as_millis() as u64, "scenario finished");
        Ok(report)
    }

    /// [`Simulator::seed`] then [`Simulator::run_steps`].
    pub async fn run_scenario(
        &self,
        scenario: &Scenario,
        speed: f64,
    ) -> Result<ScenarioReport, SimError> {
        self.seed(scenario)?;
        self.run_steps(scenario, speed).await
    }
}

/// Pod conditions always serialise `lastProbeTime` (as `null`); a merge patch cannot
/// express "set to null", so restore the key after patching.
fn normalize_pod_conditions(pod: &mut Value) {
    if let Some(Value::Array(conds)) = pod.pointer_mut("/status/conditions") {
        for c in conds.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("lastProbeTime").or_insert(Value::Null);
        }
    }
}

fn describe(a: &Action) -> String {
    match a {
        Action::Create { resource, object } => format!(
            "create {} {}",
            resource.plural(),
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        Action::Patch { resource, name, .. } => format!("patch {} {name}", resource.plural()),
        Action::PatchStatus { resource, name, .. } => {
            format!("patch {}/status {name}", resource.plural())
        }
        Action::Delete { resource, name, .. } => format!("delete {} {name}", resource.plural()),
        Action::Event(e) => format!("event {} on {}", e.reason, e.regarding.name),
        Action::Finding(_) => "finding".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_resolve() {
        let v = resolve(&json!({"a": "{now}", "b": ["x({uid})"], "c": 1}), "U", "T");
        assert_eq!(v, json!({"a": "T", "b": ["x(U)"], "c": 1}));
    }

    #[test]
    fn incident_is_well_formed() {
        let s = builtin_scenario("incident").unwrap();
        let d = s.duration().as_secs_f64();
        assert!((30.0..=40.0).contains(&d), "duration {d}");
        assert!(builtin_scenario("nope").is_none());
    }
}
