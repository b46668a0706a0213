//! The crate's error type, [`NotifyError`]. No variant ever carries a secret value: secrets are
//! named by where they come from (an environment variable name, a file path), never by content.

use std::path::PathBuf;

/// Everything that can go wrong while configuring channels and subscriptions.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A secret read from an environment variable that is not set (or not UTF-8).
    #[error("environment variable {var} is not set")]
    SecretEnvUnset {
        /// The variable's name.
        var: String,
    },
    /// A secret file that could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    SecretFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A secret that resolved to an empty (or whitespace-only) string.
    #[error("secret from {origin} is empty")]
    SecretEmpty {
        /// Where it came from (`environment variable X`, `file P`, `inline value`).
        origin: String,
    },
    /// A glob pattern in a subscription that does not compile.
    #[error("subscription {subscription:?}: invalid glob in {field}: {message}")]
    InvalidGlob {
        /// Subscription name.
        subscription: String,
        /// `match.rules` or `match.namespaces`.
        field: &'static str,
        /// The glob compiler's message (it names the pattern, which is not secret).
        message: String,
    },
    /// A subscription setting that cannot be used (quiet hours, grouping, labels).
    #[error("subscription {subscription:?}: {message}")]
    InvalidSubscription {
        /// The subscription's name.
        subscription: String,
        /// What is wrong.
        message: String,
    },
    /// Two subscriptions with the same name.
    #[error("duplicate subscription name {subscription:?}")]
    DuplicateSubscription {
        /// The name.
        subscription: String,
    },
    /// A channel whose configuration is unusable (bad URL, header, timeout, ...).
    #[error("channel {channel:?}: {message}")]
    InvalidChannel {
        /// Channel name.
        channel: String,
        /// What is wrong (never contains a secret value).
        message: String,
    },
}
