//! kube-rs list/watch of Events, Pods and Nodes into kube-herald records.
//!
//! This is the only crate that talks to the Kubernetes API server:
//! - [`client_from`] builds a [`ClusterClient`] (a [`kube::Client`] and its server) from a kubeconfig (explicit path, `$KUBECONFIG`,
//!   `~/.kube/config`) or the in-cluster service account; [`check_connection`] asks the server
//!   for its version so start-up fails with one clear line when it is unreachable.
//! - [`Watcher`] runs one list/watch loop per resource (see [`watcher`] for the
//!   exact requests, resume, re-list and checkpoint rules) and sends [`WatchItem`]s.
//! - [`objects`] are the slim views objects are decoded into (only the fields used).
//! - [`state`] holds the compact per-object state and the transition rules as plain
//!   synchronous functions.
//!
//! It never persists anything: it emits checkpoints and the consumer stores them after the
//! records they cover.

pub mod client;
pub mod config;
mod decode;
pub mod error;
pub mod objects;
pub mod replay;
mod request;
pub mod state;
pub mod stats;
pub mod watcher;

pub use client::{ClusterClient, check_connection, client_from, cluster_identity};
pub use config::{
    EventsApi, InitialSync, ListStrategy, Resource, ResourceSet, Selectors, WatcherConfig,
};
pub use error::WatchError;
pub use replay::{Replay, ReplayError};
pub use state::event::{EVENT_STATE_LOOKBACK, event_state};
pub use stats::{ResourceStats, Verb, WatcherStats};
pub use watcher::{StatesPermit, WatchItem, Watcher};
