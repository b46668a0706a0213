//! The built-in `incident` scenario (~34 s at speed 1.0).
//!
//! Starting cluster: worker nodes `node-a`, `node-b`, `node-c` and 25 pods in
//! `default`, `shop`, `batch`, `kube-system`. Timeline:
//! - 0.5–6.5 s noise: a `web` Deployment rollout (old pods get `Killing` events, exit
//!   0/Completed and 143/Error, are deleted; new pods are scheduled, pulled, started),
//!   a CronJob's Job pod completes (`Completed` on the Job);
//! - 7 s: `shop/cart-6b8f9d7c54-k2x9p` container `cart` is OOMKilled (137), then
//!   `BackOff` (aggregated to count 2), recovering at 17.5 s;
//! - 12 s: `node-b` goes NotReady the node-lifecycle-controller way (conditions
//!   `Unknown`/`NodeStatusUnknown`, unreachable taints, `NodeNotReady` on the node and
//!   its pods); recovers at 30 s (`KubeletReady`, `NodeReady` from the kubelet);
//! - 14–20 s: memory pressure on `node-c` evicts 12 pods (`Evicted`, kubelet message
//!   format from `pkg/kubelet/eviction/helpers.go`, `DisruptionTarget` condition).
//!
//! Strings follow kubernetes/kubernetes: `pkg/controller/nodelifecycle`,
//! `pkg/controller/util/node` (`RecordNodeStatusChange`, `MarkPodsNotReady`),
//! `pkg/kubelet/nodestatus`, `pkg/kubelet/kuberuntime` (`BackOff`),
//! `pkg/kubelet/eviction`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Action, Finding, Scenario, Step};
use crate::events::{EventSpec, EventStyle, ObjectRef};
use crate::objects::{self, ContainerSpec, NodeSpec, Owner, PodSpec};
use crate::resource::Resource;

const NODES: [(&str, &str); 3] = [
    ("node-a", "10.0.1.21"),
    ("node-b", "10.0.1.22"),
    ("node-c", "10.0.1.23"),
];

fn node_ip(node: &str) -> &'static str {
    NODES
        .iter()
        .find(|(n, _)| *n == node)
        .map_or("10.0.1.20", |(_, ip)| ip)
}

/// A pod of the starting cluster plus what later steps need to know about it.
struct SeedPod {
    namespace: &'static str,
    name: String,
    node: &'static str,
    containers: Vec<(&'static str, &'static str)>,
    object: Value,
}

impl SeedPod {
    fn container_status(&self, container: &str) -> Value {
        self.object
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
            })
            .cloned()
            .unwrap_or(Value::Null)
    }
}

struct Workload {
    namespace: &'static str,
    owner_kind: &'static str,
    owner_api: &'static str,
    owner_name: &'static str,
    app: &'static str,
    containers: Vec<(&'static str, &'static str)>,
    memory_limit: Option<&'static str>,
    pods: Vec<(&'static str, &'static str)>,
    priority_class: Option<&'static str>,
    host_network: bool,
}

fn workloads() -> Vec<Workload> {
    let w = |namespace,
             owner_kind,
             owner_api,
             owner_name,
             app,
             containers: Vec<(&'static str, &'static str)>,
             pods: Vec<(&'static str, &'static str)>| Workload {
        namespace,
        owner_kind,
        owner_api,
        owner_name,
        app,
        containers,
        memory_limit: None,
        pods,
        priority_class: None,
        host_network: false,
    };
    let mut cart = w(
        "shop",
        "ReplicaSet",
        "apps/v1",
        "cart-6b8f9d7c54",
        "cart",
        vec![
            ("cart", "registry.example.com/shop/cart:2.14.1"),
            ("envoy", "envoyproxy/envoy:v1.32.3"),
        ],
        vec![("k2x9p", "node-a"), ("w7hzt", "node-b")],
    );
    cart.memory_limit = Some("256Mi");
    let mut coredns = w(
        "kube-system",
        "ReplicaSet",
        "apps/v1",
        "coredns-668d6bf9bc",
        "kube-dns",
        vec![("coredns", "registry.k8s.io/coredns/coredns:v1.11.3")],
        vec![("7kq2v", "node-a"), ("x9d4w", "node-b")],
    );
    coredns.priority_class = Some("system-cluster-critical");
    let mut proxy = w(
        "kube-system",
        "DaemonSet",
        "apps/v1",
        "kube-proxy",
        "kube-proxy",
        vec![("kube-proxy", "registry.k8s.io/kube-proxy:v1.32.1")],
        vec![
            ("6hgbm", "node-a"),
            ("q4xzr", "node-b"),
            ("t8wjn", "node-c"),
        ],
    );
    proxy.priority_class = Some("system-node-critical");
    proxy.host_network = true;
    vec![
        w(
            "default",
            "ReplicaSet",
            "apps/v1",
            "web-7d4b9c8f6d",
            "web",
            vec![
                ("nginx", "nginx:1.27.3"),
                ("log-shipper", "fluent/fluent-bit:3.2.4"),
            ],
            vec![
                ("8hzrt", "node-a"),
                ("tx4kq", "node-b"),
                ("v2mpc", "node-c"),
            ],
        ),
        cart,
        w(
            "shop",
            "ReplicaSet",
            "apps/v1",
            "checkout-59d7c6f8b",
            "checkout",
            vec![("checkout", "registry.example.com/shop/checkout:1.9.0")],
            vec![("4xq2m", "node-a"), ("n8vtl", "node-b")],
        ),
        w(
            "shop",
            "ReplicaSet",
            "apps/v1",
            "catalog-7f6d9b8c45",
            "catalog",
            vec![("catalog", "registry.example.com/shop/catalog:3.2.0")],
            vec![("2hrwz", "node-c"), ("9kqfp", "node-c")],
        ),
        w(
            "shop",
            "ReplicaSet",
            "apps/v1",
            "recommender-5b7c8d9f6",
            "recommender",
            vec![("recommender", "registry.example.com/shop/recommender:0.9.4")],
            vec![("dx4kt", "node-c"), ("m2wqz", "node-c")],
        ),
        w(
            "shop",
            "ReplicaSet",
            "apps/v1",
            "search-6c5d8f7b9",
            "search",
            vec![("search", "registry.example.com/shop/search:5.1.2")],
            vec![("p7kx2", "node-b"), ("zq9mw", "node-c")],
        ),
        w(
            "batch",
            "Job",
            "batch/v1",
            "report-28934160",
            "report",
            vec![("report", "registry.example.com/batch/report:1.4.0")],
            vec![("h4kzt", "node-a")],
        ),
        w(
            "batch",
            "ReplicaSet",
            "apps/v1",
            "etl-worker-8f7d6c5b9",
            "etl-worker",
            vec![("worker", "registry.example.com/batch/etl-worker:2024.11")],
            vec![
                ("5tq2x", "node-c"),
                ("8wzkp", "node-c"),
                ("b7nrv", "node-c"),
                ("f4m9s", "node-c"),
                ("k6pcx", "node-c"),
                ("r2jdl", "node-c"),
            ],
        ),
        coredns,
        proxy,
    ]
}

fn build_pods() -> Vec<SeedPod> {
    let mut out = Vec::new();
    let mut ip_counter = 10u32;
    for w in workloads() {
        let owner = Owner {
            api_version: w.owner_api.into(),
            kind: w.owner_kind.into(),
            name: w.owner_name.into(),
            uid: uuid::Uuid::new_v4().to_string(),
        };
        for (suffix, node) in &w.pods {
            ip_counter += 1;
            let name = format!("{}-{suffix}", w.owner_name);
            let mut labels = json!({"app": w.app});
            match w.owner_kind {
                "ReplicaSet" => {
                    labels["pod-template-hash"] =
                        json!(w.owner_name.rsplit('-').next().unwrap_or(""));
                }
                "Job" => {
                    labels["batch.kubernetes.io/job-name"] = json!(w.owner_name);
                    labels["job-name"] = json!(w.owner_name);
                    labels["batch.kubernetes.io/controller-uid"] = json!(owner.uid);
                    labels["controller-uid"] = json!(owner.uid);
                }
                _ => {
                    labels["controller-revision-hash"] = json!("7d5d8c6b9f");
                    labels["pod-template-generation"] = json!("1");
                }
            }
            let host_ip = node_ip(node);
            let octet = host_ip.rsplit('.').next().unwrap_or("1");
            let pod_ip = if w.host_network {
                host_ip.to_string()
            } else {
                format!("10.244.{octet}.{ip_counter}")
            };
            let spec = PodSpec {
                namespace: w.namespace.into(),
                name: name.clone(),
                generate_name: Some(format!("{}-", w.owner_name)),
                labels,
                owner: owner.clone(),
                node: node.to_string(),
                host_ip: host_ip.into(),
                pod_ip,
                containers: w
                    .containers
                    .iter()
                    .map(|(n, i)| ContainerSpec {
                        name: n.to_string(),
                        image: i.to_string(),
                        memory_limit: w.memory_limit.map(str::to_string),
                    })
                    .collect(),
                age_secs: if w.owner_kind == "Job" {
                    95
                } else {
                    3 * 86400 + 7200
                },
                restart_policy: if w.owner_kind == "Job" {
                    "Never".into()
                } else {
                    "Always".into()
                },
                priority_class: w.priority_class.map(str::to_string),
            };
            let mut object = objects::running_pod(&spec);
            if w.host_network {
                object["spec"]["hostNetwork"] = json!(true);
            }
            out.push(SeedPod {
                namespace: w.namespace,
                name,
                node,
                containers: w.containers.clone(),
                object,
            });
        }
    }
    out
}

/// Collects timed steps.
struct Timeline {
    steps: Vec<Step>,
}

impl Timeline {
    fn at(&mut self, secs: f64, action: Action) {
        self.steps.push(Step {
            at: Duration::from_secs_f64(secs),
            action,
        });
    }

    fn event(&mut self, secs: f64, spec: EventSpec) {
        self.at(secs, Action::Event(Box::new(spec)));
    }

    fn pod_status(&mut self, secs: f64, ns: &str, name: &str, patch: Value) {
        self.at(
            secs,
            Action::PatchStatus {
                resource: Resource::Pods,
                namespace: Some(ns.into()),
                name: name.into(),
                patch,
            },
        );
    }

    fn node_status(&mut self, secs: f64, node: &str, patch: Value) {
        self.at(
            secs,
            Action::PatchStatus {
                resource: Resource::Nodes,
                namespace: None,
                name: node.into(),
                patch,
            },
        );
    }

    fn node_spec(&mut self, secs: f64, node: &str, patch: Value) {
        self.at(
            secs,
            Action::Patch {
                resource: Resource::Nodes,
                namespace: None,
                name: node.into(),
                patch,
            },
        );
    }

    fn finding(&mut self, secs: f64, f: Finding) {
        self.at(secs, Action::Finding(f));
    }
}

fn kubelet(pod: &ObjectRef, node: &str, type_: &str, reason: &str, msg: String) -> EventSpec {
    EventSpec::recorder(pod.clone(), type_, reason, msg, "kubelet", Some(node))
}

/// Deployment rollout step: a new pod replaces `old` (noise).
fn rollout_replace(t: &mut Timeline, t0: f64, old: &SeedPod, new_name: &str, node: &str, n: u32) {
    let ns = "default";
    let deploy = ObjectRef::other("Deployment", "apps/v1", Some(ns), "web");
    let new_rs = ObjectRef::other("ReplicaSet", "apps/v1", Some(ns), "web-5c9f7b8d4");
    let old_rs = ObjectRef::other("ReplicaSet", "apps/v1", Some(ns), "web-7d4b9c8f6d");
    t.event(
        t0,
        EventSpec::recorder(
            deploy.clone(),
            "Normal",
            "ScalingReplicaSet",
            format!("Scaled up replica set web-5c9f7b8d4 to {n}"),
            "deployment-controller",
            None,
        ),
    );
    let images = [
        ("nginx", "nginx:1.27.4"),
        ("log-shipper", "fluent/fluent-bit:3.2.4"),
    ];
    let containers: Vec<Value> = images
        .iter()
        .map(|(c, i)| json!({"name": c, "image": i, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let pod = json!({
        "metadata": {"name": new_name, "generateName": "web-5c9f7b8d4-", "namespace": ns,
            "labels": {"app": "web", "pod-template-hash": "5c9f7b8d4"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5c9f7b8d4",
                "uid": "{uid}", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": containers},
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    });
    let mut pod = pod;
    pod["metadata"]["ownerReferences"][0]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    t.at(
        t0 + 0.1,
        Action::Create {
            resource: Resource::Pods,
            object: pod,
        },
    );
    t.event(
        t0 + 0.1,
        EventSpec::recorder(
            new_rs,
            "Normal",
            "SuccessfulCreate",
            format!("Created pod: {new_name}"),
            "replicaset-controller",
            None,
        ),
    );
    // Binding by the scheduler.
    t.at(
        t0 + 0.3,
        Action::Patch {
            resource: Resource::Pods,
            namespace: Some(ns.into()),
            name: new_name.into(),
            patch: json!({"spec": {"nodeName": node}}),
        },
    );
    t.pod_status(
        t0 + 0.3,
        ns,
        new_name,
        json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}"}]}}),
    );
    let new_ref = ObjectRef::pod(ns, new_name);
    t.event(
        t0 + 0.3,
        EventSpec {
            regarding: new_ref.clone(),
            field_path: None,
            type_: "Normal".into(),
            reason: "Scheduled".into(),
            message: format!("Successfully assigned {ns}/{new_name} to {node}"),
            component: "default-scheduler".into(),
            style: EventStyle::EventsApi {
                action: "Binding".into(),
                instance: "default-scheduler-control-plane".into(),
            },
            annotations: None,
            uid_override: None,
        },
    );
    t.event(
        t0 + 0.5,
        kubelet(
            &new_ref,
            node,
            "Normal",
            "Pulling",
            "Pulling image \"nginx:1.27.4\"".into(),
        )
        .container("nginx"),
    );
    t.event(
        t0 + 1.2,
        kubelet(
            &new_ref,
            node,
            "Normal",
            "Pulled",
            "Successfully pulled image \"nginx:1.27.4\" in 712ms (712ms including waiting). Image size: 72099410 bytes.".into(),
        )
        .container("nginx"),
    );
    for (c, _) in images {
        t.event(
            t0 + 1.3,
            kubelet(
                &new_ref,
                node,
                "Normal",
                "Created",
                format!("Created container {c}"),
            )
            .container(c),
        );
        t.event(
            t0 + 1.4,
            kubelet(
                &new_ref,
                node,
                "Normal",
                "Started",
                format!("Started container {c}"),
            )
            .container(c),
        );
    }
    t.event(
        t0 + 1.3,
        kubelet(
            &new_ref,
            node,
            "Normal",
            "Pulled",
            "Container image \"fluent/fluent-bit:3.2.4\" already present on machine".into(),
        )
        .container("log-shipper"),
    );
    let statuses: Vec<Value> = images
        .iter()
        .map(|(c, i)| {
            let mut s = objects::running_container_status(
                &ContainerSpec {
                    name: c.to_string(),
                    image: i.to_string(),
                    memory_limit: None,
                },
                "{now}",
            );
            s["containerID"] = json!("{containerID}");
            s
        })
        .collect();
    let host_ip = node_ip(node);
    let octet = host_ip.rsplit('.').next().unwrap_or("1");
    let pod_ip = format!("10.244.{octet}.{}", 200 + n);
    t.pod_status(
        t0 + 1.5,
        ns,
        new_name,
        json!({"status": {
            "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": "{now}", "containerStatuses": statuses,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}"},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}"},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}"},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}"}
            ]}}),
    );
    // Scale down the old ReplicaSet by one: graceful deletion of `old`.
    let td = t0 + 1.8;
    t.event(
        td,
        EventSpec::recorder(
            deploy,
            "Normal",
            "ScalingReplicaSet",
            format!(
                "Scaled down replica set web-7d4b9c8f6d to {} from {}",
                3 - n,
                4 - n
            ),
            "deployment-controller",
            None,
        ),
    );
    t.event(
        td,
        EventSpec::recorder(
            old_rs,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {}", old.name),
            "replicaset-controller",
            None,
        ),
    );
    t.at(
        td + 0.05,
        Action::Patch {
            resource: Resource::Pods,
            namespace: Some(ns.into()),
            name: old.name.clone(),
            patch: json!({"metadata": {"deletionTimestamp": "{now}", "deletionGracePeriodSeconds": 30}}),
        },
    );
    let old_ref = ObjectRef::pod(ns, &old.name);
    for (c, _) in &old.containers {
        t.event(
            td + 0.1,
            kubelet(
                &old_ref,
                old.node,
                "Normal",
                "Killing",
                format!("Stopping container {c}"),
            )
            .container(c),
        );
    }
    let terminated: Vec<Value> = old
        .containers
        .iter()
        .map(|(c, _)| {
            let prev = old.container_status(c);
            let (code, reason) = if *c == "nginx" { (0, "Completed") } else { (143, "Error") };
            json!({"name": c, "ready": false, "started": false,
                "state": {"running": null, "terminated": {"exitCode": code, "reason": reason,
                    "startedAt": prev.pointer("/state/running/startedAt").cloned().unwrap_or(Value::Null),
                    "finishedAt": "{now}", "containerID": prev.get("containerID").cloned().unwrap_or(Value::Null)}}})
        })
        .collect();
    t.pod_status(
        td + 0.9,
        ns,
        &old.name,
        json!({"status": {"phase": "Failed", "containerStatuses": terminated, "conditions": [
            {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodFailed"},
            {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodFailed"},
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}"}
        ]}}),
    );
    t.at(
        td + 1.1,
        Action::Delete {
            resource: Resource::Pods,
            namespace: Some(ns.into()),
            name: old.name.clone(),
        },
    );
    t.finding(
        td + 1.1,
        Finding::Noise {
            description: format!(
                "rollout of deployment default/web replaced {} with {new_name}",
                old.name
            ),
        },
    );
}

fn job_completes(t: &mut Timeline, at: f64, pod: &SeedPod) {
    let ns = pod.namespace;
    let prev = pod.container_status("report");
    t.pod_status(
        at,
        ns,
        &pod.name,
        json!({"status": {"phase": "Succeeded",
            "containerStatuses": [{"name": "report", "ready": false, "started": false,
                "state": {"running": null, "terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": prev.pointer("/state/running/startedAt").cloned().unwrap_or(Value::Null),
                    "finishedAt": "{now}", "containerID": prev.get("containerID").cloned().unwrap_or(Value::Null)}}}],
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}"},
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodCompleted"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodCompleted"}
            ]}}),
    );
    let job = ObjectRef::other("Job", "batch/v1", Some(ns), "report-28934160");
    t.event(
        at + 0.2,
        EventSpec::recorder(
            job,
            "Normal",
            "Completed",
            "Job completed",
            "job-controller",
            None,
        ),
    );
    t.event(
        at + 0.3,
        EventSpec::recorder(
            ObjectRef::other("CronJob", "batch/v1", Some(ns), "report"),
            "Normal",
            "SawCompletedJob",
            "Saw completed job: report-28934160, condition: Complete",
            "cronjob-controller",
            None,
        ),
    );
    t.finding(
        at + 0.3,
        Finding::Noise {
            description: format!("job batch/report-28934160 completed (pod {})", pod.name),
        },
    );
}

fn oom_kill(t: &mut Timeline, at: f64, pod: &SeedPod) {
    let (ns, name, node) = (pod.namespace, pod.name.as_str(), pod.node);
    let prev = pod.container_status("cart");
    let pod_ref = ObjectRef::pod(ns, name);
    let backoff_msg =
        format!("back-off 10s restarting failed container=cart pod={name}_{ns}({{uid}})");
    t.pod_status(
        at,
        ns,
        name,
        json!({"status": {
            "containerStatuses": [{"name": "cart", "ready": false, "started": false, "restartCount": 1,
                "state": {"running": null, "waiting": {"reason": "CrashLoopBackOff", "message": backoff_msg}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "startedAt": prev.pointer("/state/running/startedAt").cloned().unwrap_or(Value::Null),
                    "finishedAt": "{now}", "containerID": prev.get("containerID").cloned().unwrap_or(Value::Null)}}}],
            "conditions": [
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}",
                 "reason": "ContainersNotReady", "message": "containers with unready status: [cart]"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}",
                 "reason": "ContainersNotReady", "message": "containers with unready status: [cart]"}
            ]}}),
    );
    t.finding(
        at,
        Finding::OomKilled {
            namespace: ns.into(),
            pod: name.into(),
            container: "cart".into(),
        },
    );
    let backoff = kubelet(
        &pod_ref,
        node,
        "Warning",
        "BackOff",
        format!("Back-off restarting failed container cart in pod {name}_{ns}({{uid}})"),
    )
    .container("cart");
    t.event(at + 0.3, backoff.clone());
    t.event(at + 2.5, backoff);
    // The kubelet restarts it once the back-off expires.
    let r = at + 10.5;
    t.event(
        r,
        kubelet(
            &pod_ref,
            node,
            "Normal",
            "Pulled",
            "Container image \"registry.example.com/shop/cart:2.14.1\" already present on machine"
                .into(),
        )
        .container("cart"),
    );
    t.event(
        r,
        kubelet(
            &pod_ref,
            node,
            "Normal",
            "Created",
            "Created container cart".into(),
        )
        .container("cart"),
    );
    t.event(
        r + 0.1,
        kubelet(
            &pod_ref,
            node,
            "Normal",
            "Started",
            "Started container cart".into(),
        )
        .container("cart"),
    );
    t.pod_status(
        r + 0.2,
        ns,
        name,
        json!({"status": {
            "containerStatuses": [{"name": "cart", "ready": true, "started": true, "containerID": "{containerID}",
                "state": {"waiting": null, "running": {"startedAt": "{now}"}}}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": null, "message": null},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": null, "message": null}
            ]}}),
    );
}

const PRESSURES: [(&str, &str, &str); 3] = [
    (
        "MemoryPressure",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
];

fn node_not_ready(
    t: &mut Timeline,
    at: f64,
    recover_at: f64,
    node: &str,
    pods: &[(String, String)],
) {
    // nodelifecycle.tryUpdateNodeHealth: every kubelet condition becomes Unknown,
    // lastHeartbeatTime kept, lastTransitionTime = now.
    let unknown: Vec<Value> = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        .iter()
        .map(|c| {
            json!({"type": c, "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.", "lastTransitionTime": "{now}"})
        })
        .collect();
    t.node_status(at, node, json!({"status": {"conditions": unknown}}));
    t.node_spec(
        at + 0.1,
        node,
        json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "{now}"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "{now}"}
        ]}}),
    );
    // controllerutil.RecordNodeStatusChange(node, "NodeNotReady")
    t.event(
        at + 0.1,
        EventSpec::recorder(
            ObjectRef::node(node),
            "Normal",
            "NodeNotReady",
            format!("Node {node} status is now: NodeNotReady"),
            "node-controller",
            None,
        ),
    );
    t.finding(at, Finding::NodeNotReady { node: node.into() });
    // controllerutil.MarkPodsNotReady: Ready=False + a Warning per pod.
    for (i, (ns, name)) in pods.iter().enumerate() {
        let ts = at + 0.2 + 0.1 * i as f64;
        t.pod_status(
            ts,
            ns,
            name,
            json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "{now}"}]}}),
        );
        t.event(
            ts,
            EventSpec::recorder(
                ObjectRef::pod(ns, name),
                "Warning",
                "NodeNotReady",
                "Node is not ready",
                "node-controller",
                None,
            ),
        );
    }
    // Recovery: the kubelet posts status again (pkg/kubelet/nodestatus setters).
    let healthy: Vec<Value> = PRESSURES
        .iter()
        .map(|(c, r, m)| json!({"type": c, "status": "False", "reason": r, "message": m,
            "lastHeartbeatTime": "{now}", "lastTransitionTime": "{now}"}))
        .chain(std::iter::once(json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": "{now}", "lastTransitionTime": "{now}"})))
        .collect();
    t.node_status(recover_at, node, json!({"status": {"conditions": healthy}}));
    t.event(
        recover_at,
        EventSpec {
            // The kubelet's node reference uses the node name as uid.
            uid_override: Some(node.into()),
            ..EventSpec::recorder(
                ObjectRef::node(node),
                "Normal",
                "NodeReady",
                format!("Node {node} status is now: NodeReady"),
                "kubelet",
                Some(node),
            )
        },
    );
    t.node_spec(recover_at + 0.2, node, json!({"spec": {"taints": null}}));
    t.finding(recover_at, Finding::NodeRecovered { node: node.into() });
    for (i, (ns, name)) in pods.iter().enumerate() {
        t.pod_status(
            recover_at + 1.0 + 0.1 * i as f64,
            ns,
            name,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "{now}"}]}}),
        );
    }
}

fn eviction_storm(t: &mut Timeline, at: f64, node: &str, victims: &[&SeedPod]) {
    t.node_status(
        at,
        node,
        json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "True",
            "reason": "KubeletHasInsufficientMemory", "message": "kubelet has insufficient memory available",
            "lastHeartbeatTime": "{now}", "lastTransitionTime": "{now}"}]}}),
    );
    t.event(
        at,
        EventSpec {
            uid_override: Some(node.into()),
            ..EventSpec::recorder(
                ObjectRef::node(node),
                "Normal",
                "NodeHasInsufficientMemory",
                format!("Node {node} status is now: NodeHasInsufficientMemory"),
                "kubelet",
                Some(node),
            )
        },
    );
    t.node_spec(
        at + 0.2,
        node,
        json!({"spec": {"taints": [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule", "timeAdded": "{now}"}]}}),
    );
    let mut end = at;
    for (i, p) in victims.iter().enumerate() {
        let ts = at + 0.5 + 0.4 * i as f64;
        end = ts;
        let container = p.containers.first().map_or("app", |(c, _)| c);
        let usage_ki = 524_288 + 16_384 * (i as u64 % 5);
        let available_ki = 91_212 + 1_024 * (i as u64 % 3);
        // nodeLowMessageFmt + thresholdMetMessageFmt + containerMessageFmt
        let msg = format!(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: {available_ki}Ki. Container {container} was using {usage_ki}Ki, request is 128Mi, has larger consumption of memory. "
        );
        let pod_ref = ObjectRef::pod(p.namespace, &p.name);
        let mut ev = kubelet(&pod_ref, node, "Warning", "Evicted", msg.clone());
        ev.annotations = Some(json!({
            "offending_containers": container,
            "offending_containers_usage": format!("{usage_ki}Ki"),
            "starved_resource": "memory"
        }));
        t.event(ts, ev);
        for (c, _) in &p.containers {
            t.event(
                ts + 0.05,
                kubelet(
                    &pod_ref,
                    node,
                    "Normal",
                    "Killing",
                    format!("Stopping container {c}"),
                )
                .container(c),
            );
        }
        let statuses: Vec<Value> = p
            .containers
            .iter()
            .map(|(c, _)| {
                let prev = p.container_status(c);
                json!({"name": c, "ready": false, "started": false,
                    "state": {"running": null, "terminated": {"exitCode": 137, "reason": "Error",
                        "startedAt": prev.pointer("/state/running/startedAt").cloned().unwrap_or(Value::Null),
                        "finishedAt": "{now}", "containerID": prev.get("containerID").cloned().unwrap_or(Value::Null)}}})
            })
            .collect();
        t.pod_status(
            ts + 0.1,
            p.namespace,
            &p.name,
            json!({"status": {"phase": "Failed", "reason": "Evicted", "message": msg,
                "containerStatuses": statuses,
                "conditions": [
                    {"type": "DisruptionTarget", "status": "True", "lastProbeTime": null, "lastTransitionTime": "{now}",
                     "reason": "TerminationByKubelet", "message": msg},
                    {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}"},
                    {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodFailed"},
                    {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": "{now}", "reason": "PodFailed"}
                ]}}),
        );
        t.finding(
            ts,
            Finding::Evicted {
                namespace: p.namespace.into(),
                pod: p.name.clone(),
                node: node.into(),
            },
        );
    }
    let clear = end + 2.5;
    t.node_status(
        clear,
        node,
        json!({"status": {"conditions": [{"type": "MemoryPressure", "status": "False",
            "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available",
            "lastHeartbeatTime": "{now}", "lastTransitionTime": "{now}"}]}}),
    );
    t.event(
        clear,
        EventSpec {
            uid_override: Some(node.into()),
            ..EventSpec::recorder(
                ObjectRef::node(node),
                "Normal",
                "NodeHasSufficientMemory",
                format!("Node {node} status is now: NodeHasSufficientMemory"),
                "kubelet",
                Some(node),
            )
        },
    );
    t.node_spec(clear + 0.2, node, json!({"spec": {"taints": null}}));
}

/// Build the `incident` scenario.
pub(super) fn incident() -> Scenario {
    let mut setup: Vec<Action> = NODES
        .iter()
        .map(|(name, ip)| Action::Create {
            resource: Resource::Nodes,
            object: objects::node(&NodeSpec {
                name: name.to_string(),
                ip: ip.to_string(),
                age_secs: 41 * 86400 + 3 * 3600,
                role: Some("worker".into()),
            }),
        })
        .collect();
    let pods = build_pods();
    setup.extend(pods.iter().map(|p| Action::Create {
        resource: Resource::Pods,
        object: p.object.clone(),
    }));
    let find = |name: &str| pods.iter().find(|p| p.name == name);
    let mut t = Timeline { steps: Vec::new() };

    // 1. Noise: rollout of default/web and a completing Job.
    if let Some(old) = find("web-7d4b9c8f6d-8hzrt") {
        rollout_replace(&mut t, 0.5, old, "web-5c9f7b8d4-jx7qd", "node-a", 1);
    }
    if let Some(old) = find("web-7d4b9c8f6d-tx4kq") {
        rollout_replace(&mut t, 3.5, old, "web-5c9f7b8d4-mk2vn", "node-b", 2);
    }
    if let Some(job_pod) = find("report-28934160-h4kzt") {
        job_completes(&mut t, 4.5, job_pod);
    }
    // 2. OOMKill of shop/cart.
    if let Some(cart) = find("cart-6b8f9d7c54-k2x9p") {
        oom_kill(&mut t, 7.0, cart);
    }
    // 3. node-b NotReady for 18 s (pods on it at that time, after the rollout).
    let mut on_b: Vec<(String, String)> = pods
        .iter()
        .filter(|p| p.node == "node-b" && p.name != "web-7d4b9c8f6d-tx4kq")
        .map(|p| (p.namespace.to_string(), p.name.clone()))
        .collect();
    on_b.push(("default".into(), "web-5c9f7b8d4-mk2vn".into()));
    node_not_ready(&mut t, 12.0, 30.0, "node-b", &on_b);
    // 4. Eviction storm on node-c: everything but the node-critical kube-proxy.
    let victims: Vec<&SeedPod> = pods
        .iter()
        .filter(|p| p.node == "node-c" && p.namespace != "kube-system")
        .collect();
    eviction_storm(&mut t, 14.0, "node-c", &victims);
    // Tail noise: the rollout's final scale-down message.
    t.event(
        34.0,
        EventSpec::recorder(
            ObjectRef::other("Deployment", "apps/v1", Some("default"), "web"),
            "Normal",
            "ScalingReplicaSet",
            "Scaled up replica set web-5c9f7b8d4 to 3 from 2",
            "deployment-controller",
            None,
        ),
    );
    t.steps.sort_by_key(|s| s.at);
    Scenario {
        name: "incident".into(),
        description: "rollout + job noise, an OOMKilled container, node-b NotReady for 18s, and 12 evictions on node-c".into(),
        setup,
        steps: t.steps,
    }
}
