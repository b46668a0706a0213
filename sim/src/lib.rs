//! Cluster simulator: a protocol-faithful fake Kubernetes API server with scenarios.
