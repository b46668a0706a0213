//! End-to-end tests of the `herald` binary against the cluster simulator and local receivers.
//! One test binary (ripgrep style); each module is one area.

// Test code: a failed unwrap is a failed test (the harness is not inside `#[test]` functions,
// so clippy's allow-unwrap-in-tests does not reach it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backtest;
mod bad_input;
mod delivery;
mod events_api;
mod faults;
mod harness;
mod kubectl;
mod notify;
mod notify_email;
mod pipeline;
mod restart;
