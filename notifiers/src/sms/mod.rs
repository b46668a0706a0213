//! SMS providers on the shared HTTP anatomy of [`crate::chat`]: [`twilio`], [`aliyun`]
//! (signed RPC request) and a generic HTTP gateway ([`gateway`]), plus [`segments`]: keeping a
//! text within a few SMS segments (GSM-7 or UCS-2).
//!
//! Every SMS channel renders the `sms` template kind (one short line) and cuts it to
//! `max_segments` (default 2) segments, ending with `…` when cut.

pub mod aliyun;
pub mod gateway;
pub mod segments;
pub mod twilio;

/// Default number of segments an SMS may use.
pub const DEFAULT_MAX_SEGMENTS: usize = 2;

pub(crate) fn default_max_segments() -> usize {
    DEFAULT_MAX_SEGMENTS
}

#[cfg(test)]
mod tests;
