//! kubectl against `herald sim`: the simulator must be indistinguishable from a real API server
//! for `get nodes`, `get pods -A`, `get events -A -w` and `create -f`. Skipped, with a note, when
//! kubectl is not installed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Service, wait_for};

fn kubectl_present() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_against_herald_sim() {
    if !kubectl_present() {
        eprintln!("NOTE: kubectl not installed; skipping kubectl_against_herald_sim");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let _sim = Service::start(
        &dir.path().join("data"),
        &[
            "sim",
            "--listen",
            &listen,
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ],
        dir.path(),
    );
    wait_for("kubeconfig", Duration::from_secs(30), || {
        kubeconfig.exists().then_some(())
    })
    .await;
    let kc = kubeconfig.to_str().unwrap().to_string();
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };

    let nodes = kubectl(&["get", "nodes"]);
    assert!(
        nodes.contains("NAME") && nodes.contains("node-a"),
        "{nodes}"
    );
    assert!(nodes.contains("Ready"), "status column: {nodes}");
    let pods = kubectl(&["get", "pods", "-A"]);
    assert!(
        pods.contains("NAMESPACE") && pods.contains("kube-system"),
        "{pods}"
    );

    // Watch events, then create a pod and an event and see the event arrive.
    let mut watch = Command::new("kubectl")
        .args(["--kubeconfig", &kc, "get", "events", "-A", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let pod = dir.path().join("pod.json");
    std::fs::write(
        &pod,
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kubectl-made","namespace":"default"},
            "spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
    )
    .unwrap();
    let created = kubectl(&["create", "-f", pod.to_str().unwrap(), "--validate=false"]);
    assert!(created.contains("pod/kubectl-made created"), "{created}");
    let got = kubectl(&["get", "pod", "kubectl-made", "-n", "default", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(v["metadata"]["resourceVersion"].as_str().is_some());

    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"kubectl-made.1","namespace":"default"},
            "involvedObject":{"kind":"Pod","namespace":"default","name":"kubectl-made"},
            "reason":"HeraldWasHere","message":"made by the kubectl test","type":"Normal",
            "count":1,"source":{"component":"e2e"}}"#,
    )
    .unwrap();
    kubectl(&["create", "-f", event.to_str().unwrap(), "--validate=false"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("HeraldWasHere") => break,
            Ok(line) => seen.push(line),
            Err(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watch never showed the event: {seen:#?}"
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
}
