//! The store's one error type, [`StoreError`].

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (normally the running `herald` service) holds the database's lock.
    #[error("the store at {} is locked by another process (is the service running?)", path.display())]
    Locked {
        /// The data directory passed to [`Store::open`](crate::Store::open).
        path: PathBuf,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// sled failed (I/O, corruption reported by sled, ...).
    #[error("storage error")]
    Sled(#[from] sled::Error),
    /// A value could not be serialized.
    #[error("cannot encode a value for tree {tree}")]
    Encode {
        /// The tree it was meant for.
        tree: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value could not be parsed.
    #[error("cannot decode a value in tree {tree}")]
    Decode {
        /// The tree it came from.
        tree: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value or database uses a format this build does not know (written by a newer
    /// version, or damaged).
    #[error("unsupported format {version} in {what}")]
    UnsupportedFormat {
        /// Which tree or database-wide setting.
        what: &'static str,
        /// The format byte found (0 when the value was empty).
        version: u8,
    },
    /// The database was written by an older herald whose layout this build cannot read.
    #[error(
        "the store at {} has schema version {found}, this herald needs version {expected} \
         (the record layout changed); move that directory away or delete it to start with an \
         empty store",
        path.display()
    )]
    OldSchema {
        /// The sled database directory (`DATA_DIR/sled`).
        path: PathBuf,
        /// The version found.
        found: u8,
        /// The version this build writes.
        expected: u8,
    },
    /// A stored value does not have the layout this build writes (damaged).
    #[error("malformed value in tree {tree}")]
    CorruptValue {
        /// The tree it came from.
        tree: &'static str,
    },
    /// A stored key does not have the layout this build writes.
    #[error("malformed key in tree {tree}")]
    CorruptKey {
        /// The tree it came from.
        tree: &'static str,
    },
}

impl StoreError {
    /// Whether this is [`StoreError::Locked`].
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }
}
