//! Silences: time-bounded suppressions of notifications that match a set of `KEY=VALUE`
//! conditions (`herald silence add`). The data only; matching lives in
//! `herald_notifiers::silence`, storage in `herald_store`.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One `KEY=VALUE` condition of a silence. `KEY` is one of the incident's attributes (`rule`,
/// `severity`, `namespace`, `node`, `cluster`, `subject`, `fingerprint`, `subscription`,
/// `channel`) or a label name (`label.NAME` or just `NAME`); `VALUE` may be a glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    /// The attribute or label name.
    pub key: String,
    /// The expected value (glob: `*`, `?`, `[...]`).
    pub value: String,
}

/// A silence: notifications matching every matcher between `starts_at` and `ends_at` are not
/// sent; they are recorded as silenced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Unique id (assigned at creation).
    pub id: String,
    /// All must match.
    pub matchers: Vec<SilenceMatcher>,
    /// When it takes effect.
    pub starts_at: Timestamp,
    /// When it ends (set to the expiry instant by `silence expire`).
    pub ends_at: Timestamp,
    /// Why (free text).
    pub comment: String,
    /// Who created it (the user name, when known).
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Silence {
    /// Whether the silence is in effect at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}
