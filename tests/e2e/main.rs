//! End-to-end tests of the `herald` binary against the cluster simulator and local receivers.
//! One test binary (ripgrep style); each module is one area.

mod bad_input;
mod harness;
mod kubectl;
mod pipeline;
