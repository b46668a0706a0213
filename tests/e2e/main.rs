//! End-to-end tests of the `herald` binary.
