//! Shared test harness: running the `herald` binary, a local webhook receiver that records
//! what it gets, config files in temporary directories, polling with deadlines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// Path of the built `herald` binary.
pub fn herald_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald"))
}

/// Runs `herald ARGS` to completion.
pub fn herald(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(herald_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run herald")
}

/// A `herald` child process that is killed when dropped; its output goes to files.
pub struct Service {
    /// The child.
    pub child: Child,
    /// Where stderr goes.
    pub stderr_path: PathBuf,
}

impl Service {
    /// Starts `herald --data-dir D ARGS` in the background.
    pub fn start(data_dir: &Path, args: &[&str], log_dir: &Path) -> Service {
        let stdout_path = log_dir.join("stdout.log");
        let stderr_path = log_dir.join("stderr.log");
        let child = Command::new(herald_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HERALD_LOG", "info,herald=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn herald");
        Service { child, stderr_path }
    }

    /// The stderr written so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("herald did not stop on SIGTERM; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request received by the webhook receiver.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request headers.
    pub headers: HeaderMap,
    /// Parsed JSON body.
    pub body: serde_json::Value,
}

/// A local HTTP receiver for the generic JSON webhook channel.
#[derive(Clone, Default)]
pub struct Receiver {
    /// Everything received, in order.
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts the receiver on 127.0.0.1:0; returns it and its URL.
    pub async fn start() -> (Receiver, String) {
        let rx = Receiver::default();
        async fn hook(State(rx): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "webhook content type"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&body).expect("webhook body is JSON");
            rx.got.lock().unwrap().push(Received { headers, body });
            StatusCode::OK
        }
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, format!("http://{addr}/hook"))
    }

    /// A snapshot of the bodies received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `herald run --config CFG` on `data` and waits until its query API says every
/// resource is synced; returns the service and the API's base URL.
pub async fn start_ready(data: &Path, cfg: &Path, logs: &Path) -> (Service, String) {
    let _ = std::fs::remove_file(data.join("service.json"));
    let svc = Service::start(data, &["run", "--config", cfg.to_str().unwrap()], logs);
    let api = wait_for("service.json", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(data.join("service.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some(v["api"].as_str()?.to_string())
    })
    .await;
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ok = client.get(format!("{api}/readyz")).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            return (svc, api);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready:\n{}",
            svc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
