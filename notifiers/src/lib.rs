//! Channels, routing, rate limits and delivery for kube-herald notifications; the only crate
//! that sends anything out of the process (HTTP now, SMTP later).
//!
//! - [`config`]: the `channels:` and `subscriptions:` config sections and [`validate`].
//! - [`secret`]: secrets in config ([`Secret`], [`SecretString`]), never printed.
//! - [`router`]: which (subscription, channel) pairs an incident transition goes to.
//! - [`channel`]: the [`Channel`] trait and the set of built [`Channels`].
//! - [`console`], [`webhook`], [`email`]: one module per channel type; [`chat`]: the HTTP
//!   chat providers (Slack, Teams, Discord, Telegram, DingTalk, WeCom, Feishu, Google Chat,
//!   Mattermost) on one shared anatomy; [`sms`]: Twilio, Aliyun SMS and a generic gateway on
//!   the same anatomy.
//! - [`dispatch`]: delivery with bounded retries ([`Dispatcher`]), one attempt at a time for
//!   the durable outbox ([`Dispatcher::attempt`]), the `delivery:` section ([`DeliveryConfig`]).
//! - [`budget`]: per-channel rate limits (governor on the injected clock).
//! - [`queue`]: the per-channel queue deciding what to send next (urgent first, retries,
//!   digests when over budget or after quiet hours).
//! - [`digest`]: folding many notifications into one digest message.
//! - [`grouping`]: `group_by`, `group_wait`, `group_interval`, `repeat_interval`.
//! - [`quiet`]: quiet hours (weekly windows in a named time zone).
//! - [`silence`]: whether a silence's `KEY=VALUE` matchers hold for a notification.
//!
//! This crate does not render templates (the caller puts the rendered
//! [`Message`](herald_core::Message) in the [`Notification`](herald_core::Notification)) and
//! does not persist anything (the caller stores the returned delivery attempts).

pub mod budget;
pub mod channel;
pub mod chat;
pub mod config;
pub mod console;
pub mod digest;
pub mod dispatch;
pub mod email;
pub mod error;
pub mod grouping;
pub mod queue;
pub mod quiet;
pub mod router;
pub mod secret;
pub mod silence;
pub mod sms;
pub mod webhook;

#[cfg(test)]
mod testutil;

pub use budget::Budget;
pub use channel::{BoxFuture, Channel, ChannelKind, Channels, Quota};
pub use config::{ChannelConfig, ConfigIssue, MatchConfig, SubscriptionConfig, validate};
pub use console::{ConsoleChannel, ConsoleConfig};
pub use dispatch::{DeliveryConfig, Dispatcher, RetryPolicy, Sleeper, Step, TokioSleeper};
pub use email::{EmailChannel, EmailConfig};
pub use error::NotifyError;
pub use queue::{ChannelQueue, Next, Pending};
pub use router::{Route, Router};
pub use secret::{HeaderValueConfig, Secret, SecretString};
pub use webhook::{MessageFormat, WebhookChannel, WebhookConfig};
