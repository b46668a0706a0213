//! Drives the real `kubectl` against the simulator (skipped when kubectl is absent).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use herald_sim::{EventSpec, ObjectRef, Resource, builtin_scenario};

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(kubeconfig: &std::path::Path, cache: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ kubectl {}\n{text}", args.join(" "));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_against_the_simulator() {
    if !kubectl_available() {
        eprintln!("NOTE: kubectl not found on PATH; skipping real_kubectl_against_the_simulator");
        return;
    }
    // TLS on: client-go only sends the bearer token over https.
    let (sim, server, _) = common::start(|cfg| cfg.tls = true).await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let scenario = builtin_scenario("incident").unwrap();
    sim.seed(&scenario).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    server.write_kubeconfig(&kc).unwrap();
    let (kc2, cache2) = (kc.clone(), cache.clone());
    let dir_path = dir.path().to_path_buf();

    let sim2 = sim.clone();
    tokio::task::spawn_blocking(move || {
        let (ok, out) = kubectl(&kc2, &cache2, &["get", "nodes"]);
        assert!(ok, "kubectl get nodes failed");
        assert!(out.contains("STATUS") && out.contains("ROLES"), "table header");
        for n in ["node-a", "node-b", "node-c"] {
            assert!(out.contains(n), "{n} missing");
        }
        assert!(out.contains("Ready") && out.contains("worker") && out.contains("v1.32.1"));

        let (ok, out) = kubectl(&kc2, &cache2, &["get", "pods", "-A"]);
        assert!(ok, "kubectl get pods -A failed");
        assert!(out.contains("NAMESPACE"), "namespace column");
        assert!(out.contains("cart-6b8f9d7c54-k2x9p") && out.contains("kube-system"));
        assert!(out.contains("2/2") && out.contains("Running"));

        let (ok, out) = kubectl(&kc2, &cache2, &["get", "pods", "-n", "shop", "-o", "wide"]);
        assert!(ok && out.contains("node-a") && out.contains("NODE"));

        let pod_json = dir_path.join("pod.json");
        std::fs::write(
            &pod_json,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kubectl-made","namespace":"default"},
                "spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}"#,
        )
        .unwrap();
        let (ok, out) = kubectl(
            &kc2,
            &cache2,
            &["create", "-f", pod_json.to_str().unwrap(), "--validate=false"],
        );
        assert!(ok, "kubectl create failed");
        assert!(out.contains("pod/kubectl-made created"), "{out}");
        assert!(sim2.get(Resource::Pods, Some("default"), "kubectl-made").is_ok());

        let (ok, out) = kubectl(&kc2, &cache2, &["get", "pod", "kubectl-made", "-o", "json"]);
        assert!(ok && out.contains("\"uid\""));
        let (ok, out) = kubectl(&kc2, &cache2, &["label", "pod", "kubectl-made", "team=sre"]);
        assert!(ok && out.contains("labeled"), "{out}");
        let (ok, out) = kubectl(&kc2, &cache2, &["delete", "pod", "kubectl-made", "--wait=false"]);
        assert!(ok && out.contains("deleted"), "{out}");
        let (ok, out) = kubectl(&kc2, &cache2, &["get", "ns"]);
        assert!(ok && out.contains("shop"), "{out}");
    })
    .await
    .unwrap();

    // kubectl get events -A -w: must print an event recorded after it started watching.
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["get", "events", "-A", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the watch is established on the server side.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sim.watcher_count(Resource::Events) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if sim.watcher_count(Resource::Events) == 0 {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "kubectl never started watching: stats {:?}; stderr {}",
            sim.stats(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    sim.record_event(&EventSpec::recorder(
        ObjectRef::node("node-b"),
        "Normal",
        "NodeNotReady",
        "Node node-b status is now: NodeNotReady",
        "node-controller",
        None,
    ))
    .unwrap();
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                println!("kubectl -w | {line}");
                let hit = line.contains("NodeNotReady") && line.contains("node/node-b");
                seen.push(line);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "kubectl -w never printed the new event; saw {seen:?}"
    );
    let stats = sim.stats();
    assert!(stats.count("watch", "events") >= 1);
    server.shutdown().await;
}
