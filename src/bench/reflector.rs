//! `herald bench reflector` (hidden): the baseline of `herald bench watch`. It syncs Pods, Nodes
//! and core/v1 Events with kube-runtime reflectors in their default configuration (the watcher's
//! default `ListWatch` initial list with pages of 500, holding every full object in a
//! `reflector::Store`), prints one JSON line `{"seconds":..,"objects":..}` once every store is
//! ready, and keeps the stores alive until it is stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// `herald bench reflector`.
#[derive(Debug, Args)]
pub struct ReflectorArgs {
    /// Kubeconfig of the cluster to sync.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: PathBuf,
}

/// Runs the reflectors until the process is stopped.
pub async fn run(args: ReflectorArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let client = herald_watcher::client_from(Some(&args.kubeconfig), None)
        .await
        .context("cannot build a client")?
        .client;
    let (pods, pods_w) = reflector::store::<Pod>();
    let (nodes, nodes_w) = reflector::store::<Node>();
    let (events, events_w) = reflector::store::<Event>();
    let cfg = watcher::Config::default();
    let pod_stream = reflector(
        pods_w,
        watcher(Api::<Pod>::all(client.clone()), cfg.clone()),
    )
    .default_backoff()
    .applied_objects();
    let node_stream = reflector(
        nodes_w,
        watcher(Api::<Node>::all(client.clone()), cfg.clone()),
    )
    .default_backoff()
    .applied_objects();
    let event_stream = reflector(events_w, watcher(Api::<Event>::all(client), cfg))
        .default_backoff()
        .applied_objects();
    let drive = async move {
        let p = pod_stream.for_each(|_| futures::future::ready(()));
        let n = node_stream.for_each(|_| futures::future::ready(()));
        let e = event_stream.for_each(|_| futures::future::ready(()));
        futures::join!(p, n, e);
    };
    let ready = async {
        pods.wait_until_ready().await?;
        nodes.wait_until_ready().await?;
        events.wait_until_ready().await?;
        Ok::<_, reflector::store::WriterDropped>(())
    };
    let mut drive = std::pin::pin!(drive);
    tokio::select! {
        r = ready => r.context("a reflector stopped before it was ready")?,
        () = &mut drive => anyhow::bail!("the reflectors stopped before they were ready"),
    }
    let objects = (pods.len() + nodes.len() + events.len()) as u64;
    println!(
        "{}",
        serde_json::json!({ "seconds": started.elapsed().as_secs_f64(), "objects": objects })
    );
    // Keep holding the objects (and following the watch) until stopped.
    drive.await;
    Ok(ExitCode::SUCCESS)
}
