//! Scale population: counts, spread, bounded history, determinism, and the shape of the
//! generated nodes and pods against real captured objects (tests/fixtures, SOURCES.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use common::{WatchReader, fixed_now, fixture, keys, keys_without, start};
use herald_sim::{Resource, ScaleSpec, SimConfig, Simulator};
use serde_json::Value;

fn spec(nodes: usize, pods: usize, namespaces: usize, seed: u64) -> ScaleSpec {
    ScaleSpec {
        nodes,
        pods,
        namespaces,
        seed,
        now: Some(fixed_now()),
    }
}

fn owner_kind(p: &Value) -> &str {
    p["metadata"]["ownerReferences"][0]["kind"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn populate_counts_spread_and_bounded_history() {
    let (sim, server, c) = start(|cfg| cfg.history_limit = 100).await;
    let report = sim.populate(&spec(30, 1500, 6, 7)).unwrap();
    assert_eq!(
        (report.nodes, report.pods, report.namespaces),
        (30, 1500, 6)
    );
    assert_eq!(sim.count(Resource::Nodes), 30);
    assert_eq!(sim.count(Resource::Pods), 1500);
    assert_eq!(
        report.resource_version, 1530,
        "one resourceVersion per object"
    );
    for kind in ["ReplicaSet", "StatefulSet", "Job", "DaemonSet"] {
        assert!(
            report.pods_by_owner.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {report:?}"
        );
    }
    assert_eq!(report.pods_by_owner.values().sum::<usize>(), 1500);
    let avg = report.pod_bytes / report.pods;
    assert!((3000..=6000).contains(&avg), "average pod {avg} bytes");

    // Every node runs pods; pods are in the namespaces the report names.
    let pods = sim.list(Resource::Pods, None);
    let mut per_node: HashMap<String, usize> = HashMap::new();
    let mut namespaces = BTreeSet::new();
    for p in &pods {
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap().to_string())
            .or_default() += 1;
        namespaces.insert(p["metadata"]["namespace"].as_str().unwrap().to_string());
    }
    assert_eq!(per_node.len(), 30);
    assert!(namespaces.contains("kube-system"));
    assert_eq!(namespaces.len(), 6);
    let listed: Value = c
        .get(format!("{}/api/v1/namespaces", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: BTreeSet<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        namespaces.is_subset(&listed),
        "{namespaces:?} vs {listed:?}"
    );

    // Names are unique and look like controller-made names.
    let names: HashSet<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names.len(), 1500);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let owner = p["metadata"]["ownerReferences"][0]["name"]
            .as_str()
            .unwrap();
        match owner_kind(p) {
            "ReplicaSet" => {
                assert!(name.starts_with(&format!("{owner}-")), "{name} of {owner}");
                assert_eq!(p["metadata"]["generateName"], format!("{owner}-"));
                let hash = p["metadata"]["labels"]["pod-template-hash"]
                    .as_str()
                    .unwrap();
                assert!(owner.ends_with(&format!("-{hash}")));
            }
            "StatefulSet" => {
                let ordinal = name.rsplit('-').next().unwrap();
                assert!(ordinal.parse::<u32>().is_ok(), "{name}");
                assert_eq!(
                    p["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
                    ordinal
                );
            }
            _ => assert!(name.starts_with(owner), "{name} of {owner}"),
        }
    }

    // The store kept only `history_limit` changes: an old resourceVersion is gone...
    assert!(sim.history_len(Resource::Pods) <= 100);
    assert!(sim.history_len(Resource::Nodes) <= 100);
    let rv = sim.resource_version();
    let old = c
        .get(format!(
            "{}/api/v1/pods?watch=1&resourceVersion=5",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(old);
    let ev = w.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    // ...while the recent window replays exactly.
    let recent = c
        .get(format!(
            "{}/api/v1/pods?watch=1&resourceVersion={}",
            server.url(),
            rv - 10
        ))
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(recent);
    for i in 0..10 {
        let ev = w.next_non_bookmark(Duration::from_secs(10)).await.unwrap();
        assert_eq!(ev["type"], "ADDED");
        assert_eq!(common::rv(&ev["object"]), rv - 9 + i);
    }
    server.shutdown().await;
}

#[test]
fn same_seed_same_cluster() {
    let a = Simulator::new(SimConfig::default());
    let b = Simulator::new(SimConfig::default());
    let other = Simulator::new(SimConfig::default());
    a.populate(&spec(12, 400, 5, 99)).unwrap();
    b.populate(&spec(12, 400, 5, 99)).unwrap();
    other.populate(&spec(12, 400, 5, 100)).unwrap();
    for r in [Resource::Nodes, Resource::Pods] {
        assert_eq!(a.list(r, None), b.list(r, None), "{r:?}");
    }
    let names = |s: &Simulator| -> Vec<String> {
        s.list(Resource::Pods, None)
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_ne!(names(&a), names(&other));
    // Populating without a fixed `now` still gives the same names and uids.
    let c = Simulator::new(SimConfig::default());
    let d = Simulator::new(SimConfig::default());
    let mut s = spec(3, 50, 2, 5);
    s.now = None;
    c.populate(&s).unwrap();
    d.populate(&s).unwrap();
    let ids = |s: &Simulator| -> Vec<(String, String)> {
        s.list(Resource::Pods, None)
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["metadata"]["uid"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&c), ids(&d));
}

#[test]
fn pods_need_nodes() {
    let sim = Simulator::new(SimConfig::default());
    assert!(sim.populate(&spec(0, 10, 2, 1)).is_err());
    let r = sim.populate(&spec(5, 0, 2, 1)).unwrap();
    assert_eq!((r.nodes, r.pods), (5, 0));
}

#[test]
fn nodes_have_the_shape_of_a_real_kubelet_registered_node() {
    let sim = Simulator::new(SimConfig::default());
    sim.populate(&spec(10, 0, 1, 3)).unwrap();
    let real = fixture("troubleshoot-node-ready-1.json");
    let real0 = fixture("troubleshoot-node-ready-0.json");
    for ours in sim.list(Resource::Nodes, None) {
        assert_eq!(keys(&ours), keys(&real));
        assert_eq!(
            keys(&ours["metadata"]),
            keys_without(&real["metadata"], &["selfLink", "managedFields"])
        );
        assert_eq!(keys(&ours["spec"]), keys(&real["spec"]));
        // volumesInUse / volumesAttached only exist on nodes with attached volumes.
        assert_eq!(
            keys(&ours["status"]),
            keys_without(&real["status"], &["volumesInUse", "volumesAttached"])
        );
        assert_eq!(
            keys(&ours["status"]["capacity"]),
            keys(&real["status"]["capacity"])
        );
        assert_eq!(
            keys(&ours["status"]["allocatable"]),
            keys(&real["status"]["allocatable"])
        );
        assert_eq!(
            keys(&ours["status"]["nodeInfo"]),
            keys(&real0["status"]["nodeInfo"])
        );
        assert_eq!(
            ours["status"]["daemonEndpoints"],
            real["status"]["daemonEndpoints"]
        );
        assert_eq!(
            keys(&ours["status"]["addresses"][0]),
            keys(&real["status"]["addresses"][0])
        );
        assert_eq!(
            keys(&ours["status"]["images"][0]),
            keys(&real["status"]["images"][0])
        );
        // The five conditions, with the same keys, types, reasons and messages.
        let conds = |n: &Value| -> Vec<(String, String, String, BTreeSet<String>)> {
            n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap().to_string(),
                        c["status"].as_str().unwrap().to_string(),
                        c["reason"].as_str().unwrap().to_string(),
                        keys(c),
                    )
                })
                .collect()
        };
        assert_eq!(conds(&ours), conds(&real));
        let messages = |n: &Value| -> Vec<String> {
            n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["message"].as_str().unwrap().to_string())
                .collect()
        };
        // The real node's kubelet (v1.19) appended "AppArmor enabled" to Ready.
        let mut real_msgs = messages(&real);
        real_msgs[4] = real_msgs[4].replace(". AppArmor enabled", "");
        assert_eq!(messages(&ours), real_msgs);
        let labels = keys(&ours["metadata"]["labels"]);
        for l in [
            "kubernetes.io/hostname",
            "kubernetes.io/os",
            "kubernetes.io/arch",
            "node.kubernetes.io/instance-type",
            "topology.kubernetes.io/zone",
            "topology.kubernetes.io/region",
        ] {
            assert!(labels.contains(l), "{l}");
        }
        assert_eq!(
            ours["metadata"]["labels"]["kubernetes.io/hostname"],
            ours["metadata"]["name"]
        );
    }
}

#[test]
fn pods_have_the_shape_of_real_pods() {
    let sim = Simulator::new(SimConfig::default());
    sim.populate(&spec(10, 800, 4, 11)).unwrap();
    let pods = sim.list(Resource::Pods, None);
    let real = fixture("sbctl-kurl-crashloop-laststate-error.json");
    let real_probe = fixture("nri-minikube-static-pod-laststate-error.json");
    let real_running = fixture("troubleshoot-minikube-job-oomkilled-state-terminated.json");
    let real_oom = fixture("datadog-gke-laststate-oomkilled.json");
    // Fields a container spec may have (core/v1 Container).
    let container_fields: BTreeSet<&str> = [
        "name",
        "image",
        "command",
        "args",
        "workingDir",
        "ports",
        "envFrom",
        "env",
        "resources",
        "volumeMounts",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "imagePullPolicy",
        "securityContext",
    ]
    .into_iter()
    .collect();
    let mut mount_fields = keys(&real_probe["spec"]["containers"][0]["volumeMounts"][0]);
    mount_fields.insert("mountPropagation".into());
    let mut seen_restart = false;
    let mut seen_sidecars = false;
    for ours in &pods {
        assert_eq!(keys(ours), keys_without(&real, &["kind", "apiVersion"]));
        let meta = keys_without(&real["metadata"], &["managedFields", "annotations"]);
        let ours_meta = keys(&ours["metadata"]);
        if owner_kind(ours) == "StatefulSet" {
            assert!(
                keys_without(
                    &real["metadata"],
                    &["managedFields", "annotations", "generateName"]
                )
                .is_subset(&ours_meta)
            );
        } else {
            assert!(meta.is_subset(&ours_meta), "{meta:?} vs {ours_meta:?}");
        }
        assert_eq!(
            keys(&ours["metadata"]["ownerReferences"][0]),
            keys(&real["metadata"]["ownerReferences"][0])
        );
        let spec_keys = keys_without(&real["spec"], &["initContainers"]);
        assert!(spec_keys.is_subset(&keys(&ours["spec"])), "{spec_keys:?}");
        let containers = ours["spec"]["containers"].as_array().unwrap();
        assert!((1..=3).contains(&containers.len()));
        seen_sidecars |= containers.len() > 1;
        for c in containers {
            for k in keys(c) {
                assert!(
                    container_fields.contains(k.as_str()),
                    "unexpected container field {k}"
                );
            }
            assert!(c["resources"].get("requests").is_some());
            if let Some(p) = c.get("ports").and_then(|p| p.get(0)) {
                let port_fields = keys(&serde_json::json!(
                    {"name": 1, "containerPort": 1, "protocol": 1, "hostPort": 1}
                ));
                assert!(keys(p).is_subset(&port_fields));
                assert!(keys(&real["spec"]["containers"][0]["ports"][0]).is_subset(&keys(p)));
            }
            if let Some(probe) = c.get("livenessProbe") {
                assert_eq!(
                    keys(probe),
                    keys(&real_probe["spec"]["containers"][0]["livenessProbe"])
                );
                let mut http_get =
                    keys(&real_probe["spec"]["containers"][0]["livenessProbe"]["httpGet"]);
                http_get.insert("httpHeaders".into()); // cilium-agent's probes send one
                assert!(keys(&probe["httpGet"]).is_subset(&http_get), "{probe}");
            }
            for m in c["volumeMounts"].as_array().unwrap() {
                assert!(keys(m).is_subset(&mount_fields), "{m}");
            }
        }
        let status = keys_without(&real["status"], &["initContainerStatuses"]);
        assert!(status.is_subset(&keys(&ours["status"])), "{status:?}");
        for c in ours["status"]["conditions"].as_array().unwrap() {
            let want = if c.get("reason").is_some() {
                keys(&real_running["status"]["conditions"][1])
            } else {
                keys(&real_running["status"]["conditions"][0])
            };
            assert_eq!(keys(c), want, "{c}");
        }
        let statuses = ours["status"]["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), containers.len());
        for cs in statuses {
            assert_eq!(
                keys(cs),
                keys(&real_running["status"]["containerStatuses"][0])
            );
            if let Some(t) = cs["lastState"].get("terminated") {
                seen_restart = true;
                assert_eq!(
                    keys(t),
                    keys(&real_oom["status"]["containerStatuses"][0]["lastState"]["terminated"])
                );
            }
        }
        let qos = ours["status"]["qosClass"].as_str().unwrap();
        assert!(["Guaranteed", "Burstable", "BestEffort"].contains(&qos));
        assert_eq!(ours["status"]["hostIP"], ours["status"]["hostIPs"][0]["ip"]);
        assert_eq!(ours["status"]["podIP"], ours["status"]["podIPs"][0]["ip"]);
        let phase = ours["status"]["phase"].as_str().unwrap();
        assert!(phase == "Running" || (phase == "Succeeded" && owner_kind(ours) == "Job"));
    }
    assert!(seen_restart, "some containers have restarted");
    assert!(seen_sidecars, "some pods have sidecars");
}

#[tokio::test]
async fn populated_cluster_pages_and_streams_over_http() {
    let (sim, server, c) = start(|_| {}).await;
    sim.populate(&spec(20, 1200, 5, 21)).unwrap();
    let url = format!("{}/api/v1/pods", server.url());
    // Paginated LIST: consistent pages, remainingItemCount, all items once.
    let mut seen = HashSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = c.get(&url).query(&[("limit", "500")]);
        if let Some(t) = &token {
            req = req.query(&[("continue", t.as_str())]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            assert!(item.get("kind").is_none());
            let name = item["metadata"]["name"].as_str().unwrap();
            assert!(seen.insert(format!("{}/{name}", item["metadata"]["namespace"])));
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) => {
                assert_eq!(
                    page["metadata"]["remainingItemCount"].as_u64().unwrap() as usize,
                    1200 - seen.len()
                );
                token = Some(t.to_string());
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (1200, 3));
    // One unpaginated list from the cache, in one namespace.
    let all: Value = c
        .get(format!(
            "{}/api/v1/namespaces/kube-system/pods?resourceVersion=0",
            server.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kube_system = sim
        .list(Resource::Pods, Some("kube-system"))
        .into_iter()
        .collect::<Vec<_>>();
    assert_eq!(all["items"].as_array().unwrap(), &kube_system);
    // A watch from "now" streams every object as ADDED, then the initial-events-end bookmark.
    let resp = c
        .get(&url)
        .query(&[
            ("watch", "1"),
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", ""),
        ])
        .send()
        .await
        .unwrap();
    let mut w = WatchReader::new(resp);
    let mut added = 0;
    loop {
        let ev = w.next(Duration::from_secs(30)).await.expect("event");
        if ev["type"] == "BOOKMARK" {
            if ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true" {
                break;
            }
            continue;
        }
        assert_eq!(ev["type"], "ADDED");
        assert_eq!(ev["object"]["kind"], "Pod");
        assert_eq!(ev["object"]["apiVersion"], "v1");
        added += 1;
    }
    assert_eq!(added, 1200);
    server.shutdown().await;
}
