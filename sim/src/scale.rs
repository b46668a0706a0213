//! Scale population: fill the simulator with a large, realistic cluster in seconds.
//!
//! [`crate::Simulator::populate`] creates `nodes` EKS-style worker nodes (kubelet
//! labels and annotations, addresses, capacity/allocatable per node pool, the four
//! kubelet conditions plus the CNI's `NetworkUnavailable`, nodeInfo, images) and `pods`
//! pods in `namespaces` namespaces: DaemonSet pods on every node (`kube-system`),
//! Deployment pods (owned by a ReplicaSet, `deploy-<hash>-<suffix>` names), StatefulSet
//! pods (`sts-0`, `sts-1`, ...) and CronJob-created Job pods (`job-<minutes>-<suffix>`,
//! half of them completed). Pods carry 1–3 containers with resources, env, ports,
//! probes and volume mounts, and the status a kubelet reports (conditions,
//! containerStatuses, IPs, qosClass): 3–6 KB of JSON each, like real pods.
//!
//! Everything is derived from [`ScaleSpec::seed`] (and [`ScaleSpec::now`] for
//! timestamps), so the same spec yields byte-identical objects. Pods are generated on
//! all cores and inserted through the normal store path (one resourceVersion each,
//! watchers see every ADDED); the store keeps only `history_limit` changes, so the
//! population does not pin a history copy of every object.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Simulator;
use crate::error::SimError;
use crate::objects::{
    self, default_tolerations, digest_with, healthy_node_conditions, hex_with, rfc3339,
    service_account_mount, service_account_volume, suffix_with, uuid_with,
};
use crate::resource::Resource;
use crate::store::{CreateOptions, RV_PLACEHOLDER};

/// What to populate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSpec {
    /// Worker nodes.
    pub nodes: usize,
    /// Pods (DaemonSet pods included); needs at least one node when non-zero.
    pub pods: usize,
    /// Namespaces holding pods, `kube-system` included (at least 1).
    pub namespaces: usize,
    /// Seed of every random choice (names, uids, sizes, placement).
    pub seed: u64,
    /// Instant the generated timestamps are relative to (`None`: now). Fix it to get
    /// byte-identical clusters from the same seed.
    pub now: Option<Timestamp>,
}

impl Default for ScaleSpec {
    fn default() -> Self {
        ScaleSpec {
            nodes: 100,
            pods: 2000,
            namespaces: 20,
            seed: 1,
            now: None,
        }
    }
}

/// What [`crate::Simulator::populate`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PopulateReport {
    /// Nodes created.
    pub nodes: usize,
    /// Pods created.
    pub pods: usize,
    /// Namespaces the pods are in.
    pub namespaces: usize,
    /// Pods per owner kind (`ReplicaSet`, `StatefulSet`, `Job`, `DaemonSet`).
    pub pods_by_owner: std::collections::BTreeMap<String, usize>,
    /// Owning workloads (ReplicaSets, StatefulSets, Jobs, DaemonSets).
    pub workloads: usize,
    /// Total JSON size of the nodes, in bytes.
    pub node_bytes: usize,
    /// Total JSON size of the pods, in bytes.
    pub pod_bytes: usize,
    /// Wall-clock time taken.
    #[serde(with = "secs_f64")]
    pub elapsed: Duration,
    /// Store resourceVersion afterwards.
    pub resource_version: u64,
}

mod secs_f64 {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

const REGION: &str = "eu-west-1";
const ZONES: [(&str, &str); 3] = [
    ("eu-west-1a", "euw1-az1"),
    ("eu-west-1b", "euw1-az2"),
    ("eu-west-1c", "euw1-az3"),
];
const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const KUBELET_VERSION: &str = "v1.32.1-eks-5d632ec";
const CILIUM_IMAGE: &str = "quay.io/cilium/cilium:v1.16.1";

/// A managed node group.
struct Pool {
    name: &'static str,
    instance_type: &'static str,
    cpu: &'static str,
    cpu_allocatable: &'static str,
    memory: &'static str,
    memory_allocatable: &'static str,
    ami: &'static str,
    launch_template: &'static str,
}

const POOLS: [Pool; 4] = [
    Pool {
        name: "general",
        instance_type: "m6i.2xlarge",
        cpu: "8",
        cpu_allocatable: "7910m",
        memory: "32386520Ki",
        memory_allocatable: "31369688Ki",
        ami: "ami-0e6c0a3b1f2d4c5e6",
        launch_template: "lt-0a1b2c3d4e5f60718",
    },
    Pool {
        name: "compute",
        instance_type: "c6i.4xlarge",
        cpu: "16",
        cpu_allocatable: "15890m",
        memory: "32254408Ki",
        memory_allocatable: "30935496Ki",
        ami: "ami-0e6c0a3b1f2d4c5e6",
        launch_template: "lt-0b2c3d4e5f6071829",
    },
    Pool {
        name: "memory",
        instance_type: "r6i.2xlarge",
        cpu: "8",
        cpu_allocatable: "7910m",
        memory: "65034936Ki",
        memory_allocatable: "63708088Ki",
        ami: "ami-0e6c0a3b1f2d4c5e6",
        launch_template: "lt-0c3d4e5f607182930",
    },
    Pool {
        name: "system",
        instance_type: "m6i.large",
        cpu: "2",
        cpu_allocatable: "1930m",
        memory: "7910348Ki",
        memory_allocatable: "7220172Ki",
        ami: "ami-0e6c0a3b1f2d4c5e6",
        launch_template: "lt-0d4e5f60718293a4b",
    },
];

const APP_NAMESPACES: [&str; 40] = [
    "shop",
    "payments",
    "checkout",
    "platform",
    "monitoring",
    "logging",
    "ingress-nginx",
    "cert-manager",
    "data",
    "ml-serving",
    "search",
    "identity",
    "notifications",
    "billing",
    "media",
    "analytics",
    "growth",
    "messaging",
    "inventory",
    "fulfillment",
    "risk",
    "ledger",
    "partners",
    "support",
    "marketing",
    "recommendations",
    "catalog",
    "orders",
    "shipping",
    "auth",
    "gateway",
    "reporting",
    "etl",
    "streaming",
    "ci-runners",
    "observability",
    "security",
    "backoffice",
    "mobile-api",
    "web",
];

const BASES: [&str; 48] = [
    "cart",
    "checkout",
    "payment",
    "order",
    "invoice",
    "catalog",
    "search",
    "pricing",
    "inventory",
    "shipping",
    "user",
    "profile",
    "session",
    "auth",
    "token",
    "notification",
    "email",
    "sms",
    "push",
    "media",
    "thumbnail",
    "transcoder",
    "recommendation",
    "ranking",
    "feature-store",
    "ledger",
    "fraud",
    "risk",
    "report",
    "export",
    "import",
    "sync",
    "webhook",
    "gateway",
    "edge",
    "graphql",
    "frontend",
    "admin",
    "audit",
    "billing",
    "subscription",
    "coupon",
    "review",
    "rating",
    "geo",
    "tax",
    "currency",
    "loyalty",
];

const ROLES: [&str; 14] = [
    "api",
    "worker",
    "web",
    "consumer",
    "scheduler",
    "cache",
    "indexer",
    "service",
    "backend",
    "processor",
    "exporter",
    "reconciler",
    "grpc",
    "batch",
];

/// Owner kind of a workload's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ReplicaSet,
    StatefulSet,
    Job,
    DaemonSet,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::Job => "Job",
            Kind::DaemonSet => "DaemonSet",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            _ => "apps/v1",
        }
    }
}

/// A workload: the controller owning some pods.
#[derive(Debug, Clone)]
struct Workload {
    namespace: String,
    kind: Kind,
    /// Deployment / StatefulSet / CronJob / DaemonSet name (the app).
    app: String,
    /// Owner object name (ReplicaSet `app-hash`, Job `app-minutes`, else `app`).
    owner: String,
    owner_uid: String,
    /// pod-template-hash / controller-revision-hash.
    hash: String,
    seed: u64,
    age_secs: i64,
}

#[derive(Debug, Clone, Copy)]
struct PodPlan {
    workload: u32,
    ordinal: u32,
    node: u32,
    slot: u32,
    /// generateName suffix, unique per owner (collisions are settled while planning, the
    /// way a controller retries after `AlreadyExists`).
    suffix: [u8; 5],
}

/// splitmix64: decorrelates per-object seeds derived from one seed.
fn mix(seed: u64, salt: u64, index: u64) -> u64 {
    let mut z =
        seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, salt: u64, index: u64) -> SmallRng {
    SmallRng::seed_from_u64(mix(seed, salt, index))
}

fn at(now: Timestamp, offset_secs: i64) -> String {
    rfc3339(
        now.checked_add(SignedDuration::from_secs(offset_secs))
            .unwrap_or(now),
    )
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Node `i`'s name and InternalIP (`ip-10-16-0-4.eu-west-1.compute.internal`).
fn node_identity(i: usize) -> (String, String) {
    let zone = i % ZONES.len();
    let idx = i / ZONES.len();
    let ip = format!(
        "10.{}.{}.{}",
        16 + zone * 16 + (idx / 62_500) % 16,
        (idx / 250) % 250,
        idx % 250 + 4
    );
    let name = format!("ip-{}.{REGION}.compute.internal", ip.replace('.', "-"));
    (name, ip)
}

/// Node `i`'s pod CIDR (`100.64.0.0/10`, one /24 per node).
fn pod_cidr_base(i: usize) -> (usize, usize) {
    let n = i % 16_384;
    (64 + n / 256, n % 256)
}

fn pool_of(seed: u64, i: usize) -> &'static Pool {
    // 5% system nodes, then general / compute / memory 60 / 25 / 10.
    match mix(seed, 11, i as u64) % 100 {
        0..=4 => &POOLS[3],
        5..=64 => &POOLS[0],
        65..=89 => &POOLS[1],
        _ => &POOLS[2],
    }
}

/// A Ready EKS worker node, as its kubelet registers and reports it.
fn build_node(seed: u64, now: Timestamp, i: usize, images: &[(String, u64)]) -> Value {
    let mut rng = rng_for(seed, 1, i as u64);
    let (name, ip) = node_identity(i);
    let (zone, zone_id) = ZONES[i % ZONES.len()];
    let pool = pool_of(seed, i);
    let age = rng.random_range(3_600..60 * 86_400);
    let created = at(now, -age);
    let heartbeat = at(now, -rng.random_range(0..300));
    let transition = at(now, -age + 18);
    let instance = format!("i-0{}", &hex_with(&mut rng, 8)[..16]);
    let spot = rng.random_bool(0.2);
    let (a, b) = pod_cidr_base(i);
    let cidr = format!("100.{a}.{b}.0/24");
    let mut conditions = vec![json!({
        "type": "NetworkUnavailable", "status": "False",
        "lastHeartbeatTime": at(now, -age + 25), "lastTransitionTime": at(now, -age + 25),
        "reason": "CiliumIsUp", "message": "Cilium is running on this node"
    })];
    if let Value::Array(kubelet) = healthy_node_conditions(&heartbeat, &transition) {
        conditions.extend(kubelet);
    }
    let machine = hex_with(&mut rng, 16);
    let mut node_images: Vec<Value> = Vec::new();
    for (image, size) in images {
        if node_images.len() >= 24 || !rng.random_bool(0.8) {
            continue;
        }
        let repo = image.split(':').next().unwrap_or(image);
        node_images.push(
            json!({"names": [format!("{repo}@{}", digest_with(&mut rng)), image], "sizeBytes": size}),
        );
    }
    node_images.sort_by_key(|v| std::cmp::Reverse(v["sizeBytes"].as_u64().unwrap_or(0)));
    json!({
        "metadata": {
            "name": name,
            "uid": uuid_with(&mut rng),
            "creationTimestamp": created,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": pool.instance_type,
                "beta.kubernetes.io/os": "linux",
                "eks.amazonaws.com/capacityType": if spot { "SPOT" } else { "ON_DEMAND" },
                "eks.amazonaws.com/nodegroup": pool.name,
                "eks.amazonaws.com/nodegroup-image": pool.ami,
                "eks.amazonaws.com/sourceLaunchTemplateId": pool.launch_template,
                "eks.amazonaws.com/sourceLaunchTemplateVersion": "3",
                "failure-domain.beta.kubernetes.io/region": REGION,
                "failure-domain.beta.kubernetes.io/zone": zone,
                "k8s.io/cloud-provider-aws": "4c9fa5e1b7d2f0e3a6c8b1d4f7e0a3c6",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": pool.instance_type,
                "topology.ebs.csi.aws.com/zone": zone,
                "topology.k8s.aws/zone-id": zone_id,
                "topology.kubernetes.io/region": REGION,
                "topology.kubernetes.io/zone": zone
            },
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": ip,
                "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"{instance}\"}}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            }
        },
        "spec": {
            "podCIDR": cidr,
            "podCIDRs": [cidr],
            "providerID": format!("aws:///{zone}/{instance}")
        },
        "status": {
            "capacity": {"cpu": pool.cpu, "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": pool.memory, "pods": "110"},
            "allocatable": {"cpu": pool.cpu_allocatable, "ephemeral-storage": "95551679124",
                            "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": pool.memory_allocatable,
                            "pods": "110"},
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalDNS", "address": name},
                {"type": "Hostname", "address": name}
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": machine,
                "systemUUID": format!("ec2{}-{}-{}-{}-{}", &machine[..5], &machine[5..9], &machine[9..13], &machine[13..17], &machine[17..29]),
                "bootID": uuid_with(&mut rng),
                "kernelVersion": "6.1.102-111.182.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.5.20240819",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64"
            },
            "images": node_images
        }
    })
}

/// Plan of the whole population: namespaces, workloads and every pod's placement.
struct Plan {
    workloads: Vec<Workload>,
    pods: Vec<PodPlan>,
}

fn namespace_names(n: usize) -> Vec<String> {
    let mut out = vec!["kube-system".to_string()];
    let mut i = 0;
    while out.len() < n.max(1) {
        let name = match APP_NAMESPACES.get(i) {
            Some(ns) => (*ns).to_string(),
            None => format!(
                "team-{}-{}",
                APP_NAMESPACES[i % APP_NAMESPACES.len()],
                i / APP_NAMESPACES.len()
            ),
        };
        out.push(name);
        i += 1;
    }
    out
}

fn pod_template_hash(rng: &mut impl Rng) -> String {
    let len = rng.random_range(9..=10);
    suffix_with(rng, len)
}

fn plan(spec: &ScaleSpec) -> Plan {
    let mut rng = rng_for(spec.seed, 2, 0);
    let namespaces = namespace_names(spec.namespaces);
    let mut workloads: Vec<Workload> = Vec::new();
    let mut pods: Vec<PodPlan> = Vec::new();
    let mut suffixes: HashSet<(u32, [u8; 5])> = HashSet::new();
    let mut suffix_rng = rng_for(spec.seed, 9, 0);
    let mut unique_suffix = move |workload: u32| -> [u8; 5] {
        loop {
            let mut out = [0u8; 5];
            for b in &mut out {
                *b = objects::NAME_ALPHABET
                    [suffix_rng.random_range(0..objects::NAME_ALPHABET.len())];
            }
            if suffixes.insert((workload, out)) {
                return out;
            }
        }
    };
    let nodes = spec.nodes.max(1);
    let mut slots = vec![0u32; nodes];
    let mut budget = spec.pods;
    let mut add_workload = |w: Workload| -> u32 {
        workloads.push(w);
        (workloads.len() - 1) as u32
    };
    let new_uid = |rng: &mut SmallRng| uuid_with(rng);
    // DaemonSets: one pod per node, while they stay under ~15% of the pods.
    let per_node = spec.pods / nodes;
    let ds_count = (per_node / 4).min(3);
    for ds in ["kube-proxy", "cilium", "ebs-csi-node"]
        .iter()
        .take(ds_count)
    {
        let hash = suffix_with(&mut rng, 10);
        let id = add_workload(Workload {
            namespace: "kube-system".into(),
            kind: Kind::DaemonSet,
            app: (*ds).into(),
            owner: (*ds).into(),
            owner_uid: new_uid(&mut rng),
            hash,
            seed: rng.random(),
            age_secs: 90 * 86_400,
        });
        for (n, slot) in slots.iter_mut().enumerate() {
            pods.push(PodPlan {
                workload: id,
                ordinal: n as u32,
                node: n as u32,
                slot: *slot,
                suffix: unique_suffix(id),
            });
            *slot += 1;
        }
        budget -= nodes;
    }
    // Placement of everything else: a seeded stride coprime with the node count, so
    // pods spread evenly over all nodes.
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut stride = 7919 + (spec.seed % 1000) as usize;
    while gcd(stride, nodes) != 1 {
        stride += 1;
    }
    let mut cursor = (spec.seed as usize) % nodes;
    let mut place = |slots: &mut Vec<u32>| {
        cursor = (cursor + stride) % nodes;
        let slot = slots[cursor];
        slots[cursor] += 1;
        (cursor as u32, slot)
    };
    // kube-system Deployments.
    let coredns = (spec.nodes / 500).clamp(2, 20).min(budget);
    let app_namespaces: Vec<&String> = if namespaces.len() > 1 {
        namespaces[1..].iter().collect()
    } else {
        namespaces.iter().collect()
    };
    let mut used: Vec<HashSet<String>> = vec![HashSet::new(); namespaces.len()];
    for (app, replicas) in [("coredns", coredns), ("metrics-server", 1.min(budget))] {
        if replicas == 0 {
            continue;
        }
        let hash = pod_template_hash(&mut rng);
        used[0].insert(app.to_string());
        let id = add_workload(Workload {
            namespace: "kube-system".into(),
            kind: Kind::ReplicaSet,
            app: app.into(),
            owner: format!("{app}-{hash}"),
            owner_uid: new_uid(&mut rng),
            hash,
            seed: rng.random(),
            age_secs: 90 * 86_400,
        });
        for ordinal in 0..replicas {
            let (node, slot) = place(&mut slots);
            pods.push(PodPlan {
                workload: id,
                ordinal: ordinal as u32,
                node,
                slot,
                suffix: unique_suffix(id),
            });
        }
        budget -= replicas;
    }
    // Application workloads until the pod budget is spent.
    while budget > 0 {
        let ns_idx = rng.random_range(0..app_namespaces.len());
        let namespace = app_namespaces[ns_idx].clone();
        let used_idx = namespaces.iter().position(|n| *n == namespace).unwrap_or(0);
        let kind = match rng.random_range(0..100) {
            0..=79 => Kind::ReplicaSet,
            80..=91 => Kind::StatefulSet,
            _ => Kind::Job,
        };
        let replicas = match kind {
            Kind::ReplicaSet => match rng.random_range(0..100) {
                0..=19 => 1,
                20..=44 => 2,
                45..=69 => 3,
                70..=89 => rng.random_range(4..=10),
                90..=97 => rng.random_range(11..=50),
                _ => rng.random_range(51..=200),
            },
            Kind::StatefulSet => rng.random_range(1..=5),
            _ => 1,
        }
        .min(budget);
        let mut app = format!("{}-{}", pick(&mut rng, &BASES), pick(&mut rng, &ROLES));
        if kind == Kind::Job {
            app = format!(
                "{}-{}",
                pick(&mut rng, &BASES),
                pick(
                    &mut rng,
                    &["report", "sync", "backup", "cleanup", "export", "rollup"]
                )
            );
        }
        let mut unique = app.clone();
        let mut n = 2;
        while used[used_idx].contains(&unique) {
            unique = format!("{app}-{n}");
            n += 1;
        }
        used[used_idx].insert(unique.clone());
        let age_secs = rng.random_range(600..30 * 86_400);
        let (owner, hash) = match kind {
            Kind::ReplicaSet => {
                let h = pod_template_hash(&mut rng);
                (format!("{unique}-{h}"), h)
            }
            Kind::StatefulSet => {
                let h = suffix_with(&mut rng, 10);
                (unique.clone(), h)
            }
            _ => {
                // CronJob-created Job: the name carries the scheduled time in minutes.
                let minutes: u64 = 29_000_000 + rng.random_range(0..100_000);
                (format!("{unique}-{minutes}"), String::new())
            }
        };
        let id = add_workload(Workload {
            namespace,
            kind,
            app: unique,
            owner,
            owner_uid: new_uid(&mut rng),
            hash,
            seed: rng.random(),
            age_secs,
        });
        for ordinal in 0..replicas {
            let (node, slot) = place(&mut slots);
            pods.push(PodPlan {
                workload: id,
                ordinal: ordinal as u32,
                node,
                slot,
                suffix: unique_suffix(id),
            });
        }
        budget -= replicas;
    }
    Plan { workloads, pods }
}

/// The containers of a workload (identical for all its pods).
struct ContainerTemplate {
    spec: Value,
    name: String,
    image: String,
    image_id: String,
}

fn digest(rng: &mut SmallRng, image: &str) -> String {
    let repo = image.split(':').next().unwrap_or(image);
    format!("{repo}@{}", digest_with(rng))
}

fn http_probe(path: &str, port: Value, initial: u32, period: u32) -> Value {
    json!({"httpGet": {"path": path, "port": port, "scheme": "HTTP"}, "initialDelaySeconds": initial,
           "timeoutSeconds": 1, "periodSeconds": period, "successThreshold": 1, "failureThreshold": 3})
}

/// Containers, volumes and labels of a workload's pods, drawn from its seed.
fn workload_template(w: &Workload, sa_volume: &str) -> (Vec<ContainerTemplate>, Vec<Value>) {
    let mut rng = rng_for(w.seed, 3, 0);
    let sa_mount = service_account_mount(sa_volume);
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    match (w.kind, w.app.as_str()) {
        (Kind::DaemonSet, "kube-proxy") => {
            let image = "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.32.0-minimal-eksbuild.2".to_string();
            volumes.push(json!({"name": "varlog", "hostPath": {"path": "/var/log", "type": ""}}));
            volumes.push(json!({"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}}));
            volumes.push(
                json!({"name": "lib-modules", "hostPath": {"path": "/lib/modules", "type": ""}}),
            );
            volumes.push(json!({"name": "config", "configMap": {"name": "kube-proxy-config", "defaultMode": 420}}));
            containers.push(ContainerTemplate {
                spec: json!({
                    "name": "kube-proxy", "image": image,
                    "command": ["kube-proxy", "--v=2", "--config=/var/lib/kube-proxy-config/config", "--hostname-override=$(NODE_NAME)"],
                    "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "volumeMounts": [
                        {"name": "varlog", "mountPath": "/var/log"},
                        {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                        {"name": "lib-modules", "readOnly": true, "mountPath": "/lib/modules"},
                        {"name": "config", "mountPath": "/var/lib/kube-proxy-config/"},
                        sa_mount
                    ],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent", "securityContext": {"privileged": true}
                }),
                name: "kube-proxy".into(),
                image_id: digest(&mut rng, &image),
                image,
            });
        }
        (Kind::DaemonSet, "cilium") => {
            let image = CILIUM_IMAGE.to_string();
            volumes.push(json!({"name": "cilium-run", "hostPath": {"path": "/var/run/cilium", "type": "DirectoryOrCreate"}}));
            volumes.push(json!({"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}}));
            volumes.push(json!({"name": "cni-path", "hostPath": {"path": "/opt/cni/bin", "type": "DirectoryOrCreate"}}));
            containers.push(ContainerTemplate {
                spec: json!({
                    "name": "cilium-agent", "image": image, "command": ["cilium-agent"], "args": ["--config-dir=/tmp/cilium/config-map"],
                    "env": [
                        {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                        {"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
                        {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1"}}},
                        {"name": "KUBERNETES_SERVICE_HOST", "value": "ABCDEF0123456789.gr7.eu-west-1.eks.amazonaws.com"},
                        {"name": "KUBERNETES_SERVICE_PORT", "value": "443"}
                    ],
                    "ports": [{"name": "peer-service", "hostPort": 4244, "containerPort": 4244, "protocol": "TCP"},
                              {"name": "prometheus", "hostPort": 9962, "containerPort": 9962, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9879, "host": "127.0.0.1", "scheme": "HTTP",
                        "httpHeaders": [{"name": "brief", "value": "true"}]},
                        "initialDelaySeconds": 120, "timeoutSeconds": 5, "periodSeconds": 30, "successThreshold": 1, "failureThreshold": 10},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 9879, "host": "127.0.0.1", "scheme": "HTTP",
                        "httpHeaders": [{"name": "brief", "value": "true"}]},
                        "timeoutSeconds": 5, "periodSeconds": 30, "successThreshold": 1, "failureThreshold": 3},
                    "volumeMounts": [
                        {"name": "cilium-run", "mountPath": "/var/run/cilium"},
                        {"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"},
                        sa_mount
                    ],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "FallbackToLogsOnError",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"capabilities": {"add": ["CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_MODULE", "SYS_ADMIN", "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"], "drop": ["ALL"]},
                                        "seLinuxOptions": {"type": "spc_t", "level": "s0"}}
                }),
                name: "cilium-agent".into(),
                image_id: digest(&mut rng, &image),
                image,
            });
        }
        (Kind::DaemonSet, _) => {
            volumes.push(json!({"name": "kubelet-dir", "hostPath": {"path": "/var/lib/kubelet", "type": "Directory"}}));
            volumes.push(json!({"name": "plugin-dir", "hostPath": {"path": "/var/lib/kubelet/plugins/ebs.csi.aws.com/", "type": "DirectoryOrCreate"}}));
            for (name, image, port) in [
                (
                    "ebs-plugin",
                    "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.34.0",
                    Some(9808),
                ),
                (
                    "node-driver-registrar",
                    "public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.11.1-eks-1-31-3",
                    None,
                ),
                (
                    "liveness-probe",
                    "public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe:v2.13.1-eks-1-31-3",
                    None,
                ),
            ] {
                let mut spec = json!({
                    "name": name, "image": image, "args": ["--csi-address=/csi/csi.sock", "--v=2"],
                    "env": [{"name": "CSI_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}],
                    "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "256Mi"}},
                    "volumeMounts": [{"name": "plugin-dir", "mountPath": "/csi"}, sa_mount.clone()],
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
                });
                if let Some(p) = port {
                    spec["ports"] =
                        json!([{"name": "healthz", "containerPort": p, "protocol": "TCP"}]);
                    spec["livenessProbe"] = http_probe("/healthz", json!("healthz"), 10, 10);
                }
                containers.push(ContainerTemplate {
                    spec,
                    name: name.into(),
                    image_id: digest(&mut rng, image),
                    image: image.into(),
                });
            }
        }
        _ => {
            let version = format!(
                "{}.{}.{}",
                rng.random_range(1..4),
                rng.random_range(0..60),
                rng.random_range(0..20)
            );
            let image = if w.app == "coredns" {
                "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/coredns:v1.11.3-eksbuild.1"
                    .to_string()
            } else if w.app == "metrics-server" {
                "registry.k8s.io/metrics-server/metrics-server:v0.7.2".to_string()
            } else {
                format!("{ECR}/{}/{}:{version}", w.namespace, w.app)
            };
            let cpu = *pick(&mut rng, &["50m", "100m", "250m", "500m", "1"]);
            let mem = *pick(&mut rng, &["128Mi", "256Mi", "512Mi", "1Gi", "2Gi"]);
            let guaranteed = rng.random_bool(0.15);
            let limits = if guaranteed {
                json!({"cpu": cpu, "memory": mem})
            } else {
                json!({"memory": *pick(&mut rng, &["512Mi", "1Gi", "2Gi", "4Gi"])})
            };
            let main = if w.kind == Kind::Job {
                "job".to_string()
            } else if w.namespace == "kube-system" {
                w.app.clone()
            } else {
                w.app.rsplit('-').next().unwrap_or("app").to_string()
            };
            let mut env = vec![
                json!({"name": "APP_ENV", "value": "production"}),
                json!({"name": "LOG_LEVEL", "value": *pick(&mut rng, &["info", "warn", "debug"])}),
                json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
                json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}),
                json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability.svc:4317"}),
                json!({"name": "OTEL_SERVICE_NAME", "value": w.app}),
            ];
            if rng.random_bool(0.6) {
                env.push(json!({"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": format!("{}-db", w.app), "key": "url"}}}));
            }
            if rng.random_bool(0.5) {
                env.push(json!({"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}}));
            }
            let mut spec = json!({
                "name": main, "image": image,
                "env": env,
                "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": limits},
                "volumeMounts": [
                    {"name": "config", "readOnly": true, "mountPath": format!("/etc/{}", w.app)},
                    {"name": "tmp", "mountPath": "/tmp"},
                    sa_mount.clone()
                ],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "readOnlyRootFilesystem": true,
                                    "allowPrivilegeEscalation": false}
            });
            if w.kind == Kind::Job {
                spec["args"] = json!(["run", format!("--task={}", w.app), "--batch-size=500"]);
            } else {
                spec["ports"] = json!([
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                ]);
                spec["livenessProbe"] = http_probe("/healthz", json!("http"), 10, 10);
                spec["readinessProbe"] = http_probe("/ready", json!("http"), 5, 5);
            }
            volumes.push(json!({"name": "config", "configMap": {"name": format!("{}-config", w.app), "defaultMode": 420}}));
            volumes.push(json!({"name": "tmp", "emptyDir": {}}));
            containers.push(ContainerTemplate {
                spec,
                name: main,
                image_id: digest(&mut rng, &image),
                image,
            });
            let sidecars = if w.kind == Kind::Job {
                0
            } else {
                match rng.random_range(0..10) {
                    0..=4 => 0,
                    5..=8 => 1,
                    _ => 2,
                }
            };
            let options = [
                ("envoy", "docker.io/envoyproxy/envoy:v1.31.2", 9901),
                (
                    "fluent-bit",
                    "cr.fluentbit.io/fluent/fluent-bit:3.1.9",
                    2020,
                ),
                (
                    "cloud-sql-proxy",
                    "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.13.0",
                    9801,
                ),
            ];
            let first = rng.random_range(0..options.len());
            for k in 0..sidecars {
                let (name, image, port) = options[(first + k) % options.len()];
                containers.push(ContainerTemplate {
                    spec: json!({
                        "name": name, "image": image,
                        "args": [format!("--admin-port={port}"), "--log-level=info"],
                        "ports": [{"name": "admin", "containerPort": port, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        "readinessProbe": http_probe("/ready", json!(port), 2, 10),
                        "volumeMounts": [sa_mount.clone()],
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent"
                    }),
                    name: name.into(),
                    image_id: digest(&mut rng, image),
                    image: image.into(),
                });
            }
        }
    }
    volumes.push(service_account_volume(sa_volume));
    (containers, volumes)
}

/// Full image reference as the container runtime reports it.
fn runtime_image(image: &str) -> String {
    let first = image.split('/').next().unwrap_or(image);
    if image.contains('/') && (first.contains('.') || first.contains(':')) {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    }
}

/// QoS class the apiserver computes from the containers' requests/limits.
fn qos_class(containers: &[ContainerTemplate]) -> &'static str {
    let res = |c: &ContainerTemplate, kind: &str, r: &str| {
        c.spec
            .pointer(&format!("/resources/{kind}/{r}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.spec
                .pointer(&format!("/resources/{k}"))
                .is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = res(c, "limits", r);
            l.is_some() && res(c, "requests", r).is_none_or(|q| Some(q) == l)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// One pod of workload `w`.
fn build_pod(
    seed: u64,
    now: Timestamp,
    index: usize,
    p: &PodPlan,
    w: &Workload,
    node: &(String, String),
) -> Value {
    let mut rng = rng_for(seed, 4, index as u64);
    let sa_volume = format!("kube-api-access-{}", suffix_with(&mut rng, 5));
    let (mut containers, volumes) = workload_template(w, &sa_volume);
    let qos = qos_class(&containers);
    // Move the specs out (the rest of the template is still needed for the statuses).
    let container_specs: Vec<Value> = containers
        .iter_mut()
        .map(|c| std::mem::take(&mut c.spec))
        .collect();
    let (name, generate_name) = match w.kind {
        Kind::StatefulSet => (format!("{}-{}", w.app, p.ordinal), None),
        Kind::ReplicaSet | Kind::Job | Kind::DaemonSet => {
            let prefix = format!("{}-", w.owner);
            (
                format!("{prefix}{}", String::from_utf8_lossy(&p.suffix)),
                Some(prefix),
            )
        }
    };
    let age = match w.kind {
        Kind::DaemonSet => rng.random_range(3_600..30 * 86_400),
        _ => rng.random_range(60..w.age_secs.max(120)),
    };
    let created = at(now, -age);
    let started_off = -age + rng.random_range(1..4);
    let running_off = started_off + rng.random_range(2..8);
    let ready_off = running_off + rng.random_range(3..20);
    let mut labels = serde_json::Map::new();
    match w.kind {
        Kind::ReplicaSet => {
            labels.insert("app".into(), json!(w.app));
            labels.insert("app.kubernetes.io/name".into(), json!(w.app));
            labels.insert("app.kubernetes.io/part-of".into(), json!(w.namespace));
            labels.insert("pod-template-hash".into(), json!(w.hash));
        }
        Kind::StatefulSet => {
            labels.insert("app".into(), json!(w.app));
            labels.insert("app.kubernetes.io/name".into(), json!(w.app));
            labels.insert(
                "apps.kubernetes.io/pod-index".into(),
                json!(p.ordinal.to_string()),
            );
            labels.insert(
                "controller-revision-hash".into(),
                json!(format!("{}-{}", w.app, w.hash)),
            );
            labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(name));
        }
        Kind::Job => {
            labels.insert(
                "batch.kubernetes.io/controller-uid".into(),
                json!(w.owner_uid),
            );
            labels.insert("batch.kubernetes.io/job-name".into(), json!(w.owner));
            labels.insert("controller-uid".into(), json!(w.owner_uid));
            labels.insert("job-name".into(), json!(w.owner));
        }
        Kind::DaemonSet => {
            labels.insert("controller-revision-hash".into(), json!(w.hash));
            labels.insert("k8s-app".into(), json!(w.app));
            labels.insert("pod-template-generation".into(), json!("1"));
        }
    }
    let mut meta = json!({
        "name": name,
        "namespace": w.namespace,
        "uid": uuid_with(&mut rng),
        "creationTimestamp": created,
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": w.kind.api_version(), "kind": w.kind.as_str(), "name": w.owner,
            "uid": w.owner_uid, "controller": true, "blockOwnerDeletion": true
        }]
    });
    if let Some(g) = generate_name {
        meta["generateName"] = json!(g);
    }
    if matches!(w.kind, Kind::ReplicaSet | Kind::StatefulSet) && rng.random_bool(0.5) {
        meta["annotations"] = json!({
            "kubectl.kubernetes.io/restartedAt": at(now, -w.age_secs),
            "prometheus.io/port": "9090",
            "prometheus.io/scrape": "true"
        });
    }
    let (a, b) = pod_cidr_base(p.node as usize);
    let host_network = matches!(w.kind, Kind::DaemonSet) && w.app != "ebs-csi-node";
    let pod_ip = if host_network {
        node.1.clone()
    } else {
        format!("100.{a}.{b}.{}", p.slot % 250 + 2)
    };
    let job = w.kind == Kind::Job;
    let completed = job && mix(seed, 5, index as u64).is_multiple_of(2);
    let mut spec = json!({
        "volumes": volumes,
        "containers": container_specs,
        "restartPolicy": if job { "Never" } else { "Always" },
        "terminationGracePeriodSeconds": if job { 30 } else { *pick(&mut rng, &[30, 60]) },
        "dnsPolicy": if host_network { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
        "serviceAccountName": if w.kind == Kind::DaemonSet { w.app.as_str() } else { "default" },
        "serviceAccount": if w.kind == Kind::DaemonSet { w.app.as_str() } else { "default" },
        "nodeName": node.0,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": default_tolerations(),
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    match w.kind {
        Kind::DaemonSet => {
            spec["hostNetwork"] = json!(host_network);
            spec["priorityClassName"] = json!("system-node-critical");
            spec["priority"] = json!(2_000_001_000);
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node.0]}]}]}}});
            spec["tolerations"] = json!([
                {"operator": "Exists"},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
            ]);
        }
        Kind::StatefulSet => {
            spec["hostname"] = json!(name);
            spec["subdomain"] = json!(w.app);
            if let Value::Array(v) = &mut spec["volumes"] {
                v.insert(0, json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}}));
            }
        }
        Kind::ReplicaSet if w.namespace == "kube-system" => {
            spec["priorityClassName"] = json!("system-cluster-critical");
            spec["priority"] = json!(2_000_000_000);
        }
        _ => {}
    }
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = runtime_image(&c.image);
            let container_id = objects::container_id_with(&mut rng);
            if completed {
                return json!({
                    "name": c.name,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at(now, running_off),
                        "finishedAt": at(now, running_off + rng.random_range(20..600)), "containerID": container_id}},
                    "lastState": {}, "ready": false, "restartCount": 0, "image": image, "imageID": c.image_id,
                    "containerID": container_id, "started": false
                });
            }
            let restarts: u32 = match rng.random_range(0..100) {
                0..=91 => 0,
                92..=97 => rng.random_range(1..4),
                _ => rng.random_range(4..40),
            };
            let mut last = json!({});
            let mut started_at = at(now, running_off);
            if restarts > 0 {
                let oom = rng.random_bool(0.3);
                let finished = -rng.random_range(60..age.max(120));
                started_at = at(now, finished + 1);
                last = json!({"terminated": {
                    "exitCode": if oom { 137 } else { 1 },
                    "reason": if oom { "OOMKilled" } else { "Error" },
                    "startedAt": at(now, finished - rng.random_range(30..3600)),
                    "finishedAt": at(now, finished),
                    "containerID": objects::container_id_with(&mut rng)
                }});
            }
            json!({
                "name": c.name, "state": {"running": {"startedAt": started_at}}, "lastState": last,
                "ready": true, "restartCount": restarts, "image": image, "imageID": c.image_id,
                "containerID": container_id, "started": true
            })
        })
        .collect();
    let cond = |t: &str, status: &str, off: i64| json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": at(now, off)});
    let (phase, conditions) = if completed {
        let done = ready_off + 60;
        let mut c = vec![
            cond("PodReadyToStartContainers", "False", done),
            cond("Initialized", "True", started_off),
            cond("Ready", "False", done),
            cond("ContainersReady", "False", done),
            cond("PodScheduled", "True", -age),
        ];
        for i in [1, 2, 3] {
            c[i]["reason"] = json!("PodCompleted");
        }
        ("Succeeded", c)
    } else {
        (
            "Running",
            vec![
                cond("PodReadyToStartContainers", "True", running_off),
                cond("Initialized", "True", started_off),
                cond("Ready", "True", ready_off),
                cond("ContainersReady", "True", ready_off),
                cond("PodScheduled", "True", -age),
            ],
        )
    };
    json!({
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": conditions,
            "hostIP": node.1,
            "hostIPs": [{"ip": node.1}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": at(now, started_off),
            "containerStatuses": statuses,
            "qosClass": qos
        }
    })
}

/// Images that end up on nodes (the DaemonSets' plus a sample of application images).
fn node_images(plan: &Plan) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = vec![
        ("602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.32.0-minimal-eksbuild.2".into(), 35_218_432),
        (CILIUM_IMAGE.into(), 199_361_584),
        ("public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.34.0".into(), 31_455_778),
        ("602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/pause:3.5".into(), 298_689),
        ("docker.io/envoyproxy/envoy:v1.31.2".into(), 64_301_240),
        ("cr.fluentbit.io/fluent/fluent-bit:3.1.9".into(), 36_840_117),
    ];
    for (i, w) in plan.workloads.iter().enumerate().take(60) {
        if matches!(w.kind, Kind::ReplicaSet | Kind::StatefulSet) && w.namespace != "kube-system" {
            let size = 40_000_000 + mix(w.seed, 6, i as u64) % 400_000_000;
            out.push((format!("{ECR}/{}/{}:latest", w.namespace, w.app), size));
        }
    }
    out
}

/// A pod serialised on a worker thread, waiting for its resourceVersion.
struct Encoded {
    key: String,
    json: Vec<u8>,
    rv_at: usize,
}

/// Serialise `pod` with the resourceVersion placeholder (so the allocations of building
/// and serialising it stay on the worker thread).
fn encode(mut pod: Value) -> Encoded {
    let key = format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        pod["metadata"]["name"].as_str().unwrap_or("")
    );
    pod["metadata"]["resourceVersion"] = json!(RV_PLACEHOLDER);
    let json = serde_json::to_vec(&pod).unwrap_or_default();
    let marker = RV_PLACEHOLDER.as_bytes();
    // `metadata` serialises first (keys are sorted), so this scan is short.
    let rv_at = (0..json.len().saturating_sub(marker.len() - 1))
        .find(|&i| json[i] == marker[0] && json[i..].starts_with(marker))
        .unwrap_or(usize::MAX);
    Encoded { key, json, rv_at }
}

impl Simulator {
    /// Fill the cluster with `spec.nodes` nodes and `spec.pods` pods (see the module
    /// docs of [`crate::scale`]). Deterministic for a given seed and `now`. CPU-bound
    /// (seconds for 200,000 pods in a release build): call it from a blocking context
    /// (e.g. `tokio::task::spawn_blocking`) when a server is running.
    pub fn populate(&self, spec: &ScaleSpec) -> Result<PopulateReport, SimError> {
        if spec.pods > 0 && spec.nodes == 0 {
            return Err(SimError::BadRequest(
                "populating pods needs at least one node".into(),
            ));
        }
        let started = Instant::now();
        let now = spec.now.unwrap_or_else(Timestamp::now);
        let plan = plan(spec);
        let images = node_images(&plan);
        let opts = CreateOptions {
            preserve_system_fields: true,
        };
        let mut report = PopulateReport::default();
        let store = &self.inner.store;
        let identities: Vec<(String, String)> = (0..spec.nodes).map(node_identity).collect();
        for i in 0..spec.nodes {
            let node = build_node(spec.seed, now, i, &images);
            let (_, stored) = store.create_stored(Resource::Nodes, None, node, opts)?;
            report.node_bytes += stored.json().len();
            report.nodes += 1;
        }
        tracing::info!(
            nodes = report.nodes,
            ms = started.elapsed().as_millis() as u64,
            "nodes populated"
        );
        // Pods: generated in chunks on worker threads, inserted in order here.
        const CHUNK: usize = 512;
        let chunks = plan.pods.len().div_ceil(CHUNK);
        let workers = std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
            .clamp(1, 8)
            .min(chunks.max(1));
        let result: Result<(), SimError> = std::thread::scope(|scope| {
            let mut receivers = Vec::with_capacity(workers);
            for worker in 0..workers {
                let (tx, rx) = mpsc::sync_channel::<Vec<Encoded>>(2);
                receivers.push(rx);
                let plan = &plan;
                let identities = &identities;
                scope.spawn(move || {
                    for chunk in (worker..chunks).step_by(workers) {
                        let start = chunk * CHUNK;
                        let end = (start + CHUNK).min(plan.pods.len());
                        let pods: Vec<Encoded> = (start..end)
                            .map(|i| {
                                let p = &plan.pods[i];
                                let w = &plan.workloads[p.workload as usize];
                                encode(build_pod(
                                    spec.seed,
                                    now,
                                    i,
                                    p,
                                    w,
                                    &identities[p.node as usize],
                                ))
                            })
                            .collect();
                        if tx.send(pods).is_err() {
                            return;
                        }
                    }
                });
            }
            for chunk in 0..chunks {
                let Ok(pods) = receivers[chunk % workers].recv() else {
                    return Err(SimError::BadRequest("pod generator stopped".into()));
                };
                for pod in pods {
                    let stored =
                        store.create_encoded(Resource::Pods, &pod.key, &pod.json, pod.rv_at)?;
                    report.pod_bytes += stored.json().len();
                    report.pods += 1;
                }
            }
            Ok(())
        });
        result?;
        for p in &plan.pods {
            let kind = plan.workloads[p.workload as usize].kind.as_str();
            *report.pods_by_owner.entry(kind.into()).or_default() += 1;
        }
        let used: HashSet<u32> = plan.pods.iter().map(|p| p.workload).collect();
        let ns_used: HashSet<&str> = used
            .iter()
            .map(|w| plan.workloads[*w as usize].namespace.as_str())
            .collect();
        report.workloads = used.len();
        report.namespaces = ns_used.len();
        report.elapsed = started.elapsed();
        report.resource_version = self.resource_version();
        tracing::info!(
            nodes = report.nodes,
            pods = report.pods,
            namespaces = report.namespaces,
            workloads = report.workloads,
            pod_mb = report.pod_bytes / 1_000_000,
            ms = report.elapsed.as_millis() as u64,
            rv = report.resource_version,
            "cluster populated"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized_len(v: &Value) -> usize {
        serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)
    }

    fn spec(nodes: usize, pods: usize) -> ScaleSpec {
        ScaleSpec {
            nodes,
            pods,
            namespaces: 8,
            seed: 42,
            now: Some(Timestamp::from_second(1_750_000_000).unwrap()),
        }
    }

    #[test]
    fn plan_spends_the_pod_budget_and_spreads_over_nodes() {
        let p = plan(&spec(50, 3000));
        assert_eq!(p.pods.len(), 3000);
        let mut per_node = [0; 50];
        for pod in &p.pods {
            per_node[pod.node as usize] += 1;
        }
        let (min, max) = (
            per_node.iter().min().copied().unwrap(),
            per_node.iter().max().copied().unwrap(),
        );
        assert!(min > 0 && max - min <= 2, "{min}..{max}");
        let ns: HashSet<_> = p.workloads.iter().map(|w| w.namespace.as_str()).collect();
        assert_eq!(ns.len(), 8, "{ns:?}");
        let kinds: HashSet<_> = p.workloads.iter().map(|w| w.kind).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn names_look_like_controller_names() {
        let p = plan(&spec(10, 600));
        let now = Timestamp::from_second(1_750_000_000).unwrap();
        let ids: Vec<_> = (0..10).map(node_identity).collect();
        for (i, pp) in p.pods.iter().enumerate() {
            let w = &p.workloads[pp.workload as usize];
            let pod = build_pod(42, now, i, pp, w, &ids[pp.node as usize]);
            let name = pod["metadata"]["name"].as_str().unwrap();
            match w.kind {
                Kind::ReplicaSet => {
                    let parts: Vec<&str> = name.rsplitn(3, '-').collect();
                    assert_eq!(parts[0].len(), 5, "{name}");
                    assert!((9..=10).contains(&parts[1].len()), "{name}");
                    assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], parts[1]);
                }
                Kind::StatefulSet => assert!(name.ends_with(&format!("-{}", pp.ordinal))),
                Kind::Job | Kind::DaemonSet => {
                    assert!(name.starts_with(&w.owner) && name.len() == w.owner.len() + 6)
                }
            }
        }
    }

    #[test]
    fn pods_are_realistically_sized() {
        let p = plan(&spec(20, 1000));
        let now = Timestamp::from_second(1_750_000_000).unwrap();
        let ids: Vec<_> = (0..20).map(node_identity).collect();
        let sizes: Vec<usize> = p
            .pods
            .iter()
            .enumerate()
            .map(|(i, pp)| {
                let w = &p.workloads[pp.workload as usize];
                serialized_len(&build_pod(42, now, i, pp, w, &ids[pp.node as usize]))
            })
            .collect();
        let avg = sizes.iter().sum::<usize>() / sizes.len();
        assert!((3000..=6000).contains(&avg), "average pod {avg} bytes");
        assert!(
            sizes.iter().all(|s| (2000..=9000).contains(s)),
            "{:?}",
            sizes.iter().max()
        );
        let node = serialized_len(&build_node(42, now, 3, &node_images(&p)));
        assert!((3000..=15000).contains(&node), "node {node} bytes");
    }

    #[test]
    fn qos_follows_requests_and_limits() {
        let c = |res: Value| ContainerTemplate {
            spec: json!({"resources": res}),
            name: String::new(),
            image: String::new(),
            image_id: String::new(),
        };
        assert_eq!(qos_class(&[c(json!({}))]), "BestEffort");
        assert_eq!(
            qos_class(&[c(
                json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )]),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&[c(
                json!({"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}})
            )]),
            "Burstable"
        );
    }

    #[test]
    fn runtime_image_names() {
        assert_eq!(
            runtime_image("busybox:1.36"),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            runtime_image("envoyproxy/envoy:v1"),
            "docker.io/envoyproxy/envoy:v1"
        );
        assert_eq!(
            runtime_image("quay.io/cilium/cilium:v1"),
            "quay.io/cilium/cilium:v1"
        );
    }
}
