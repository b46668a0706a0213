//! Builders for realistic Node / Pod JSON (the shapes kubelets and controllers produce)
//! plus small helpers: timestamps, generated-name suffixes, container IDs, and the
//! apiserver's pod defaulting.

use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};

/// RFC 3339 timestamp with seconds precision and `Z`, as in `metadata.creationTimestamp`.
pub fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, formatted like [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(Timestamp::now())
}

/// Now, formatted like a `MicroTime` (`eventTime`): microseconds and `Z`.
pub fn now_micro() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// `secs` seconds ago, formatted like [`rfc3339`].
pub fn ago(secs: i64) -> String {
    let ts = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    rfc3339(ts)
}

/// The apiserver's generateName alphabet (`k8s.io/apimachinery/pkg/util/rand`: no
/// vowels, no confusable characters).
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Random suffix from the apiserver's generateName alphabet (no vowels, no confusables).
pub fn random_suffix(n: usize) -> String {
    suffix_with(&mut rand::rng(), n)
}

/// Like [`random_suffix`] but drawn from `rng` (deterministic generators).
pub fn suffix_with(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// `n` random bytes from `rng` as lowercase hex.
pub fn hex_with(rng: &mut impl Rng, n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(n * 2);
    for _ in 0..n {
        let b: u8 = rng.random();
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// A version-4 UUID drawn from `rng`.
pub fn uuid_with(rng: &mut impl Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// Random 64-hex-digit container ID with the containerd scheme.
pub fn container_id() -> String {
    container_id_with(&mut rand::rng())
}

/// Like [`container_id`] but drawn from `rng`.
pub fn container_id_with(rng: &mut impl Rng) -> String {
    format!("containerd://{}", hex_with(rng, 32))
}

/// Random `sha256:` image digest.
pub fn digest() -> String {
    digest_with(&mut rand::rng())
}

/// Like [`digest`] but drawn from `rng`.
pub fn digest_with(rng: &mut impl Rng) -> String {
    format!("sha256:{}", hex_with(rng, 32))
}

/// Fill in the fields the apiserver defaults on pod create (only those missing).
pub fn default_pod(pod: &mut Value) {
    let Some(obj) = pod.as_object_mut() else {
        return;
    };
    let spec = obj.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        for (k, v) in [
            ("restartPolicy", json!("Always")),
            ("terminationGracePeriodSeconds", json!(30)),
            ("dnsPolicy", json!("ClusterFirst")),
            ("serviceAccountName", json!("default")),
            ("serviceAccount", json!("default")),
            ("securityContext", json!({})),
            ("schedulerName", json!("default-scheduler")),
            ("enableServiceLinks", json!(true)),
            ("priority", json!(0)),
            ("preemptionPolicy", json!("PreemptLowerPriority")),
            (
                "tolerations",
                json!([
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ]),
            ),
        ] {
            spec.entry(k).or_insert(v);
        }
        if let Some(Value::Array(containers)) = spec.get_mut("containers") {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                let latest = c
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                c.entry("resources").or_insert_with(|| json!({}));
                c.entry("terminationMessagePath")
                    .or_insert_with(|| json!("/dev/termination-log"));
                c.entry("terminationMessagePolicy")
                    .or_insert_with(|| json!("File"));
                c.entry("imagePullPolicy")
                    .or_insert_with(|| json!(if latest { "Always" } else { "IfNotPresent" }));
            }
        }
    }
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if let Some(status) = status.as_object_mut() {
        status.entry("phase").or_insert_with(|| json!("Pending"));
        status
            .entry("qosClass")
            .or_insert_with(|| json!("BestEffort"));
    }
}

/// Inputs for [`node`].
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node name (also the hostname).
    pub name: String,
    /// InternalIP address.
    pub ip: String,
    /// Age of the node in seconds (for creationTimestamp / condition times).
    pub age_secs: i64,
    /// Optional role label (`worker`, `control-plane`).
    pub role: Option<String>,
}

/// The `pod.spec.tolerations` the DefaultTolerationSeconds admission plugin adds.
pub fn default_tolerations() -> Value {
    json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    ])
}

/// The projected service-account token volume the ServiceAccount admission plugin adds
/// (`kube-api-access-xxxxx`).
pub fn service_account_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ], "defaultMode": 420}})
}

/// The mount of [`service_account_volume`] in every container.
pub fn service_account_mount(name: &str) -> Value {
    json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
}

/// The four kubelet conditions of a healthy node, with the kubelet's reasons/messages.
pub fn healthy_node_conditions(heartbeat: &str, transition: &str) -> Value {
    json!([
        {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
         "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
        {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
         "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure"},
        {"type": "PIDPressure", "status": "False", "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
         "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available"},
        {"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat, "lastTransitionTime": transition,
         "reason": "KubeletReady", "message": "kubelet is posting ready status"}
    ])
}

/// A Ready worker node as a kubelet registers and updates it.
pub fn node(spec: &NodeSpec) -> Value {
    let created = ago(spec.age_secs);
    let heartbeat = ago(7);
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m5.xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": "eu-west-1a"
    });
    if let Some(role) = &spec.role {
        labels[format!("node-role.kubernetes.io/{role}")] = json!("");
    }
    let octet = spec.ip.rsplit('.').next().unwrap_or("1");
    json!({
        "metadata": {
            "name": spec.name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": created,
            "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            }
        },
        "spec": {
            "podCIDR": format!("10.244.{octet}.0/24"),
            "podCIDRs": [format!("10.244.{octet}.0/24")],
            "providerID": format!("aws:///eu-west-1a/i-0{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
        },
        "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "101430960Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "16101256Ki", "pods": "110"},
            "allocatable": {"cpu": "3920m", "ephemeral-storage": "93478772582", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": "15189896Ki", "pods": "110"},
            "conditions": healthy_node_conditions(&heartbeat, &created),
            "addresses": [
                {"type": "InternalIP", "address": spec.ip},
                {"type": "Hostname", "address": spec.name}
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uuid::Uuid::new_v4().simple().to_string(),
                "systemUUID": uuid::Uuid::new_v4().to_string(),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "6.1.112-124.190.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20241121",
                "containerRuntimeVersion": "containerd://1.7.23",
                "kubeletVersion": "v1.32.1",
                "kubeProxyVersion": "v1.32.1",
                "operatingSystem": "linux",
                "architecture": "amd64"
            },
            "images": [
                {"names": ["registry.k8s.io/kube-proxy@sha256:0244651801747edf2368222f93a7d17cba6e668a890db72532d6b67a7e06dca5", "registry.k8s.io/kube-proxy:v1.32.1"], "sizeBytes": 30908485}
            ]
        }
    })
}

/// Owner of a pod (ReplicaSet, Job, DaemonSet).
#[derive(Debug, Clone)]
pub struct Owner {
    /// `apiVersion` of the owner (`apps/v1`, `batch/v1`).
    pub api_version: String,
    /// Kind (`ReplicaSet`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// A container of a [`PodSpec`].
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Memory limit (e.g. `256Mi`), if any.
    pub memory_limit: Option<String>,
}

/// Inputs for [`running_pod`].
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// generateName prefix (e.g. `cart-6b8f9d7c54-`).
    pub generate_name: Option<String>,
    /// Labels.
    pub labels: Value,
    /// Controlling owner.
    pub owner: Owner,
    /// Node the pod runs on.
    pub node: String,
    /// Node InternalIP.
    pub host_ip: String,
    /// Pod IP.
    pub pod_ip: String,
    /// Containers.
    pub containers: Vec<ContainerSpec>,
    /// Age in seconds.
    pub age_secs: i64,
    /// `Never` / `OnFailure` for Job pods.
    pub restart_policy: String,
    /// priorityClassName, if any.
    pub priority_class: Option<String>,
}

/// A Running pod with all containers ready, as the kubelet reports it.
pub fn running_pod(p: &PodSpec) -> Value {
    let created = ago(p.age_secs);
    let started = ago(p.age_secs - 2);
    let ready_at = ago(p.age_secs - 6);
    let sa_token = format!("kube-api-access-{}", random_suffix(5));
    let containers: Vec<Value> = p
        .containers
        .iter()
        .map(|c| {
            let mut resources = json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
            if let Some(limit) = &c.memory_limit {
                resources["limits"] = json!({"memory": limit});
            }
            json!({
                "name": c.name,
                "image": c.image,
                "resources": resources,
                "volumeMounts": [{"name": sa_token, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            })
        })
        .collect();
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .map(|c| running_container_status(c, &started))
        .collect();
    // Requests are always set and limits (if any) differ from them.
    let qos = "Burstable";
    let mut spec = json!({
        "volumes": [{"name": sa_token, "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ], "defaultMode": 420}}],
        "containers": containers,
        "restartPolicy": p.restart_policy,
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "nodeName": p.node,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    if let Some(pc) = &p.priority_class {
        spec["priorityClassName"] = json!(pc);
        spec["priority"] = json!(2000001000);
    }
    let mut meta = json!({
        "name": p.name,
        "namespace": p.namespace,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": created,
        "labels": p.labels,
        "ownerReferences": [{
            "apiVersion": p.owner.api_version,
            "kind": p.owner.kind,
            "name": p.owner.name,
            "uid": p.owner.uid,
            "controller": true,
            "blockOwnerDeletion": true
        }]
    });
    if let Some(g) = &p.generate_name {
        meta["generateName"] = json!(g);
    }
    json!({
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": created},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": ready_at},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": ready_at},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": created}
            ],
            "hostIP": p.host_ip,
            "hostIPs": [{"ip": p.host_ip}],
            "podIP": p.pod_ip,
            "podIPs": [{"ip": p.pod_ip}],
            "startTime": created,
            "containerStatuses": statuses,
            "qosClass": qos
        }
    })
}

/// containerStatus of a running, ready container.
pub fn running_container_status(c: &ContainerSpec, started_at: &str) -> Value {
    let image = if c.image.contains('/') {
        c.image.clone()
    } else {
        format!("docker.io/library/{}", c.image)
    };
    let repo = image.split(':').next().unwrap_or(&image).to_string();
    json!({
        "name": c.name,
        "state": {"running": {"startedAt": started_at}},
        "lastState": {},
        "ready": true,
        "restartCount": 0,
        "image": image,
        "imageID": format!("{repo}@{}", digest()),
        "containerID": container_id(),
        "started": true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_expected_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z'));
        let m = now_micro();
        assert_eq!(m.len(), 27, "{m}");
        assert!(ago(60) < now_rfc3339());
    }

    #[test]
    fn defaulting_fills_only_missing() {
        let mut p = json!({"metadata": {"name": "x"}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}});
        default_pod(&mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["status"]["phase"], "Pending");
    }
}
