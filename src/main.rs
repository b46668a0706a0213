//! `herald`: the kube-herald command line and service wiring.
fn main() {}
