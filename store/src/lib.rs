//! sled persistence and queries for kube-herald.
