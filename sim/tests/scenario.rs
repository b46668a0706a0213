//! The built-in incident scenario at high speed, and shape comparisons of the sim's
//! objects against real captured objects (tests/fixtures, see SOURCES.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{WatchReader, start};
use herald_sim::{Resource, builtin_scenario};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn without(mut s: BTreeSet<String>, drop: &[&str]) -> BTreeSet<String> {
    for d in drop {
        s.remove(*d);
    }
    s
}

fn find_event<'a>(events: &'a [Value], reason: &str, object: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["reason"] == reason && e["involvedObject"]["name"] == object)
        .unwrap_or_else(|| panic!("no {reason} event for {object}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_scenario_at_speed_50() {
    let (sim, server, c) = start(|_| {}).await;
    let scenario = builtin_scenario("incident").unwrap();
    let d = scenario.duration();
    assert!(
        d >= Duration::from_secs(30) && d <= Duration::from_secs(40),
        "{d:?}"
    );
    sim.seed(&scenario).unwrap();
    assert_eq!(sim.list(Resource::Nodes, None).len(), 3);
    assert_eq!(sim.list(Resource::Pods, None).len(), 25);
    let seeded_rv = sim.resource_version().to_string();

    // Watch node-b and Warning events over HTTP while the scenario runs.
    let node_watch = c
        .get(format!("{}/api/v1/nodes", server.url()))
        .query(&[
            ("watch", "true"),
            ("resourceVersion", seeded_rv.as_str()),
            ("fieldSelector", "metadata.name=node-b"),
        ])
        .send()
        .await
        .unwrap();
    let mut node_watch = WatchReader::new(node_watch);
    let ev_watch = c
        .get(format!("{}/apis/events.k8s.io/v1/events", server.url()))
        .query(&[
            ("watch", "true"),
            ("resourceVersion", seeded_rv.as_str()),
            ("fieldSelector", "type=Warning"),
        ])
        .send()
        .await
        .unwrap();
    let mut ev_watch = WatchReader::new(ev_watch);

    let report = sim.run_steps(&scenario, 50.0).await.unwrap();
    assert!(
        report.elapsed < Duration::from_secs(3),
        "{:?}",
        report.elapsed
    );
    assert_eq!(
        report.oom_killed(),
        vec![(
            "shop".to_string(),
            "cart-6b8f9d7c54-k2x9p".to_string(),
            "cart".to_string()
        )]
    );
    assert_eq!(report.not_ready_nodes(), vec!["node-b"]);
    assert_eq!(report.recovered_nodes(), vec!["node-b"]);
    let evicted = report.evicted_pods();
    assert_eq!(evicted.len(), 12);
    assert!(report.noise().len() >= 3, "{:?}", report.noise());
    assert!(report.events_recorded > 50);

    // OOMKilled pod
    let cart = sim
        .get(Resource::Pods, Some("shop"), "cart-6b8f9d7c54-k2x9p")
        .unwrap();
    let cs = &cart["status"]["containerStatuses"][0];
    assert_eq!(cs["name"], "cart");
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "OOMKilled");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
    assert!(cs["state"]["running"].is_object(), "recovered at the end");
    assert!(cs["state"].get("waiting").is_none());

    // node-b recovered: Ready, no taints
    let node_b = sim.get(Resource::Nodes, None, "node-b").unwrap();
    let ready = node_b["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "KubeletReady");
    assert!(node_b["spec"].get("taints").is_none());

    // the node watch saw it go Unknown and come back
    let mut statuses = Vec::new();
    while let Some(e) = node_watch.next(Duration::from_millis(300)).await {
        let conds = e["object"]["status"]["conditions"]
            .as_array()
            .unwrap()
            .clone();
        let r = conds.iter().find(|c| c["type"] == "Ready").unwrap().clone();
        statuses.push((
            r["status"].as_str().unwrap().to_string(),
            r["reason"].as_str().unwrap().to_string(),
            r["message"].as_str().unwrap().to_string(),
        ));
        if !e["object"]["spec"]["taints"].is_null() {
            let taints: Vec<String> = e["object"]["spec"]["taints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["key"].as_str().unwrap(),
                        t["effect"].as_str().unwrap()
                    )
                })
                .collect();
            assert!(taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()));
        }
    }
    assert!(statuses.contains(&(
        "Unknown".into(),
        "NodeStatusUnknown".into(),
        "Kubelet stopped posting node status.".into()
    )));
    assert_eq!(statuses.last().unwrap().0, "True");

    // Evictions
    for name in &evicted {
        let (ns, pod) = name.split_once('/').unwrap();
        let p = sim.get(Resource::Pods, Some(ns), pod).unwrap();
        assert_eq!(p["spec"]["nodeName"], "node-c");
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["reason"], "Evicted");
        let msg = p["status"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: "
            ),
            "{msg}"
        );
        assert!(msg.contains(", request is 128Mi, has larger consumption of memory. "));
        let dt = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "DisruptionTarget")
            .unwrap();
        assert_eq!(dt["reason"], "TerminationByKubelet");
    }

    // Events (core view)
    let events = sim.list(Resource::Events, None);
    let backoff = find_event(&events, "BackOff", "cart-6b8f9d7c54-k2x9p");
    assert_eq!(backoff["count"], 2, "repeats aggregate into one Event");
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(
        backoff["involvedObject"]["fieldPath"],
        "spec.containers{cart}"
    );
    let uid = cart["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        backoff["message"],
        format!(
            "Back-off restarting failed container cart in pod cart-6b8f9d7c54-k2x9p_shop({uid})"
        )
    );
    assert!(backoff["lastTimestamp"].as_str() >= backoff["firstTimestamp"].as_str());
    let nnr = find_event(&events, "NodeNotReady", "node-b");
    assert_eq!(nnr["type"], "Normal");
    assert_eq!(nnr["source"]["component"], "node-controller");
    assert_eq!(nnr["message"], "Node node-b status is now: NodeNotReady");
    assert_eq!(nnr["metadata"]["namespace"], "default");
    let pod_nnr = find_event(&events, "NodeNotReady", "cart-6b8f9d7c54-w7hzt");
    assert_eq!(pod_nnr["type"], "Warning");
    assert_eq!(pod_nnr["message"], "Node is not ready");
    let node_ready = find_event(&events, "NodeReady", "node-b");
    assert_eq!(node_ready["source"]["component"], "kubelet");
    assert_eq!(node_ready["source"]["host"], "node-b");
    assert_eq!(
        node_ready["message"],
        "Node node-b status is now: NodeReady"
    );
    let evicted_events: Vec<&Value> = events.iter().filter(|e| e["reason"] == "Evicted").collect();
    assert_eq!(evicted_events.len(), 12);
    assert_eq!(
        evicted_events[0]["metadata"]["annotations"]["starved_resource"],
        "memory"
    );
    let job = find_event(&events, "Completed", "report-28934160");
    assert_eq!(job["involvedObject"]["kind"], "Job");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Killing" && e["message"] == "Stopping container nginx")
    );
    let job_pod = sim
        .get(Resource::Pods, Some("batch"), "report-28934160-h4kzt")
        .unwrap();
    assert_eq!(job_pod["status"]["phase"], "Succeeded");
    // rollout: old pods gone, new ones running
    assert!(
        sim.get(Resource::Pods, Some("default"), "web-7d4b9c8f6d-8hzrt")
            .is_err()
    );
    let new = sim
        .get(Resource::Pods, Some("default"), "web-5c9f7b8d4-jx7qd")
        .unwrap();
    assert_eq!(new["status"]["phase"], "Running");
    assert_eq!(new["spec"]["nodeName"], "node-a");

    // The events.k8s.io watch saw the warnings, in the v1 shape.
    let mut warnings = Vec::new();
    while let Some(e) = ev_watch.next(Duration::from_millis(300)).await {
        assert_eq!(e["object"]["apiVersion"], "events.k8s.io/v1");
        warnings.push((
            e["type"].as_str().unwrap().to_string(),
            e["object"]["reason"].as_str().unwrap().to_string(),
            e["object"]["deprecatedCount"].as_i64().unwrap_or(0),
        ));
    }
    assert!(warnings.contains(&("ADDED".into(), "BackOff".into(), 1)));
    assert!(warnings.contains(&("MODIFIED".into(), "BackOff".into(), 2)));
    assert_eq!(warnings.iter().filter(|w| w.1 == "Evicted").count(), 12);
    assert!(warnings.iter().any(|w| w.1 == "NodeNotReady"));
    server.shutdown().await;
}

#[tokio::test]
async fn generated_objects_have_the_shape_of_real_ones() {
    let (sim, server, _) = start(|_| {}).await;
    let scenario = builtin_scenario("incident").unwrap();
    sim.run_scenario(&scenario, 200.0).await.unwrap();
    let events = sim.list(Resource::Events, None);

    // Evicted pod (kubelet): same top-level and status field set as the real one.
    let real = fixture("nri-minikube-evicted-memory.json");
    let ours = sim
        .get(Resource::Pods, Some("batch"), "etl-worker-8f7d6c5b9-5tq2x")
        .unwrap();
    assert_eq!(keys(&ours), keys(&real));
    let real_status = keys(&real["status"]);
    assert!(
        real_status.is_subset(&keys(&ours["status"])),
        "{real_status:?}"
    );
    assert_eq!(real["status"]["reason"], ours["status"]["reason"]);
    assert!(
        ours["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with(real["status"]["message"].as_str().unwrap())
    );
    let meta_real = without(keys(&real["metadata"]), &["selfLink", "annotations"]);
    assert!(
        meta_real.is_subset(&keys(&ours["metadata"])),
        "{meta_real:?}"
    );
    assert_eq!(
        keys(&real["metadata"]["ownerReferences"][0]),
        keys(&ours["metadata"]["ownerReferences"][0])
    );

    // OOMKilled container status.
    let real = fixture("datadog-gke-laststate-oomkilled.json");
    let real_cs = &real["status"]["containerStatuses"][0];
    let cart = sim
        .get(Resource::Pods, Some("shop"), "cart-6b8f9d7c54-k2x9p")
        .unwrap();
    let ours_cs = &cart["status"]["containerStatuses"][0];
    assert!(keys(real_cs).is_subset(&keys(ours_cs)));
    assert_eq!(
        keys(&real_cs["lastState"]["terminated"]),
        keys(&ours_cs["lastState"]["terminated"])
    );
    let real_job = fixture("troubleshoot-minikube-job-oomkilled-state-terminated.json");
    assert_eq!(
        keys(&real_job["status"]["containerStatuses"][0]),
        keys(ours_cs)
    );
    let evicted = sim
        .get(Resource::Pods, Some("batch"), "etl-worker-8f7d6c5b9-5tq2x")
        .unwrap();
    let cond = |p: &Value, t: &str| {
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
            .clone()
    };
    // Ready=False reason=PodFailed on a failed pod; plain Ready=True on the recovered one.
    assert_eq!(
        keys(&real_job["status"]["conditions"][1]),
        keys(&cond(&evicted, "Ready"))
    );
    assert_eq!(
        keys(&real_job["status"]["conditions"][0]),
        keys(&cond(&cart, "Ready"))
    );

    // Pod-level NodeNotReady event from the node controller.
    let real = fixture("kube-logging-kind-nodenotready-pod.json");
    let ours = find_event(&events, "NodeNotReady", "cart-6b8f9d7c54-w7hzt");
    assert_eq!(keys(ours), keys(&real));
    assert_eq!(
        without(keys(&real["metadata"]), &["managedFields"]),
        keys(&ours["metadata"])
    );
    assert_eq!(keys(&real["involvedObject"]), keys(&ours["involvedObject"]));
    assert_eq!(real["source"], ours["source"]);
    assert_eq!(
        (&real["reason"], &real["message"], &real["type"]),
        (&ours["reason"], &ours["message"], &ours["type"])
    );

    // Kubelet container events (BackOff / Killing).
    for (file, reason, object) in [
        (
            "troubleshoot-minikube-backoff-restarting-container.json",
            "BackOff",
            "cart-6b8f9d7c54-k2x9p",
        ),
        (
            "troubleshoot-minikube-killing-stop-container.json",
            "Killing",
            "web-7d4b9c8f6d-8hzrt",
        ),
    ] {
        let real = fixture(file);
        let ours = find_event(&events, reason, object);
        assert_eq!(
            without(keys(&real), &["kind", "apiVersion"]),
            keys(ours),
            "{file}"
        );
        assert_eq!(
            keys(&real["involvedObject"]),
            keys(&ours["involvedObject"]),
            "{file}"
        );
        assert_eq!(keys(&real["source"]), keys(&ours["source"]), "{file}");
    }

    // Scheduler events created through events.k8s.io, seen in the core view.
    let real = fixture("troubleshoot-minikube-scheduled-via-events-api.json");
    let ours = find_event(&events, "Scheduled", "web-5c9f7b8d4-jx7qd");
    assert_eq!(without(keys(&real), &["kind", "apiVersion"]), keys(ours));
    assert_eq!(ours["action"], "Binding");
    assert!(ours["firstTimestamp"].is_null() && ours["source"] == serde_json::json!({}));

    // Node.
    let real = fixture("troubleshoot-node-ready-0.json");
    let ours = sim.get(Resource::Nodes, None, "node-a").unwrap();
    assert_eq!(without(keys(&real), &["kind", "apiVersion"]), keys(&ours));
    assert_eq!(keys(&real["status"]), keys(&ours["status"]));
    assert_eq!(
        keys(&real["status"]["nodeInfo"]),
        keys(&ours["status"]["nodeInfo"])
    );
    assert_eq!(
        keys(&real["status"]["conditions"][0]),
        keys(&ours["status"]["conditions"][0])
    );
    let real_reasons: Vec<&Value> = real["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["reason"])
        .collect();
    let our_reasons: Vec<&Value> = ours["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["reason"])
        .collect();
    assert_eq!(real_reasons, our_reasons);
    server.shutdown().await;
}
