//! kube-rs list/watch of Events, Pods and Nodes into kube-herald records.
