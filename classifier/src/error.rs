//! The classifier's error type: the few things that can be wrong in its configuration.
//! Classification itself never fails: a record no rule understands is simply ignored.

/// Errors of the classifier crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifierError {
    /// A duration in the configuration that is not a non-negative length of time such as
    /// `30s`, `2m`, `1h 30m` or `PT30S`.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text as written.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
}
