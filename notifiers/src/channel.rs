//! The [`Channel`] abstraction and the set of configured channels ([`Channels`]).
//!
//! Each channel type lives in its own module (config, request building, send, classification of
//! failures, tests), like Vector's sinks; this module only holds what they share. A channel makes
//! exactly one attempt per `send` and says whether a failure is worth retrying
//! ([`DeliveryOutcome::Failed`]) or not ([`DeliveryOutcome::Dead`]); retrying is the
//! [`Dispatcher`](crate::Dispatcher)'s job.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification};

use crate::chat;
use crate::config::ChannelConfig;
use crate::console::ConsoleChannel;
use crate::email::EmailChannel;
use crate::error::NotifyError;
use crate::webhook::WebhookChannel;

/// A boxed, sendable future (what [`Channel::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The type of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// One line per notification on stdout.
    Console,
    /// Generic webhook (JSON notification or a templated body).
    Webhook,
    /// Email over SMTP (STARTTLS or implicit TLS).
    Email,
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams Workflows webhook (Adaptive Card).
    Teams,
    /// Discord webhook.
    Discord,
    /// Telegram Bot API `sendMessage`.
    Telegram,
    /// DingTalk custom robot (signed).
    DingTalk,
    /// WeCom (企业微信) group robot.
    WeCom,
    /// Feishu / Lark custom bot (signed).
    Feishu,
    /// Google Chat incoming webhook.
    GoogleChat,
    /// Mattermost incoming webhook.
    Mattermost,
    /// Twilio SMS.
    Twilio,
    /// Aliyun SMS (dysmsapi `SendSms`, signed RPC request).
    AliyunSms,
    /// A generic HTTP SMS gateway with a templated request.
    SmsGateway,
}

impl ChannelKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChannelKind; 15] = [
        ChannelKind::Console,
        ChannelKind::Webhook,
        ChannelKind::Email,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::Discord,
        ChannelKind::Telegram,
        ChannelKind::DingTalk,
        ChannelKind::WeCom,
        ChannelKind::Feishu,
        ChannelKind::GoogleChat,
        ChannelKind::Mattermost,
        ChannelKind::Twilio,
        ChannelKind::AliyunSms,
        ChannelKind::SmsGateway,
    ];

    /// Lowercase name, as written in `type:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Discord => "discord",
            ChannelKind::Telegram => "telegram",
            ChannelKind::DingTalk => "dingtalk",
            ChannelKind::WeCom => "wecom",
            ChannelKind::Feishu => "feishu",
            ChannelKind::GoogleChat => "googlechat",
            ChannelKind::Mattermost => "mattermost",
            ChannelKind::Twilio => "twilio",
            ChannelKind::AliyunSms => "aliyun_sms",
            ChannelKind::SmsGateway => "sms_gateway",
        }
    }

    /// The documented default budget of one channel of this kind: every quota must hold (at
    /// most `count` messages in any window of `per`). Empty means no provider limit (console,
    /// generic webhook). Sources are in `docs/channels.md`; a channel's config can replace them
    /// (`rate_limit:`), see [`Channel::rate_limits`].
    ///
    /// | kind | default | provider's documented limit |
    /// |---|---|---|
    /// | slack | 1 / 1s | "1 per second, short bursts allowed", per webhook |
    /// | teams | 4 / 1s | 4 requests per second per webhook (connector limits) |
    /// | discord | 5 / 2s | webhook bucket of 5 per 2 seconds |
    /// | telegram | 1 / 1s and 20 / 1min | ~1 per second per chat, 20 per minute per group |
    /// | dingtalk | 20 / 1min | 20 per minute per robot (then throttled for 10 minutes) |
    /// | wecom | 20 / 1min | 20 per minute per robot |
    /// | feishu | 5 / 1s and 100 / 1min | 5 per second and 100 per minute per bot |
    /// | googlechat | 1 / 1s | 1 write per second per space |
    /// | mattermost | 10 / 1s | server default rate limit 10 per second |
    /// | email | 30 / 1min | none (a polite default for shared SMTP relays) |
    /// | twilio, aliyun_sms, sms_gateway | 10 / 1h | none (SMS costs money and wakes people) |
    pub fn default_rate_limits(self) -> Vec<Quota> {
        let q = Quota::new;
        match self {
            ChannelKind::Console | ChannelKind::Webhook => vec![],
            ChannelKind::Email => vec![q(30, MINUTE)],
            ChannelKind::Slack => vec![q(1, SECOND)],
            ChannelKind::Teams => vec![q(4, SECOND)],
            ChannelKind::Discord => vec![q(5, 2 * SECOND)],
            ChannelKind::Telegram => vec![q(1, SECOND), q(20, MINUTE)],
            ChannelKind::DingTalk | ChannelKind::WeCom => vec![q(20, MINUTE)],
            ChannelKind::Feishu => vec![q(5, SECOND), q(100, MINUTE)],
            ChannelKind::GoogleChat => vec![q(1, SECOND)],
            ChannelKind::Mattermost => vec![q(10, SECOND)],
            ChannelKind::Twilio | ChannelKind::AliyunSms | ChannelKind::SmsGateway => {
                vec![q(10, HOUR)]
            }
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One rate limit: at most `count` messages in any window of length `per` (a token bucket of
/// `count` tokens refilled one every `per / count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Messages allowed per window (at least 1).
    pub count: u32,
    /// The window, e.g. `1h` in YAML.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl Quota {
    /// `count` messages per `per`.
    pub const fn new(count: u32, per: Duration) -> Self {
        Self { count, per }
    }

    /// The same limit as a governor quota (burst `count`, one cell every `per / count`); `None`
    /// when `count` is 0 or `per` is zero.
    pub fn to_governor(self) -> Option<governor::Quota> {
        let burst = NonZeroU32::new(self.count)?;
        let period = self.per.checked_div(self.count)?;
        governor::Quota::with_period(period).map(|q| q.allow_burst(burst))
    }

    /// A problem with this quota, if any (for config validation).
    pub fn problem(self) -> Option<String> {
        if self.count == 0 {
            Some("rate_limit count must be at least 1".to_string())
        } else if self.per.is_zero() {
            Some("rate_limit per must be > 0".to_string())
        } else {
            None
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured destination.
pub trait Channel: Send + Sync + fmt::Debug {
    /// The channel's name from the config.
    fn name(&self) -> &str;

    /// Its type.
    fn kind(&self) -> ChannelKind;

    /// The template kind its messages are rendered with (`console`, `text`, `markdown`,
    /// `html`), as understood by `herald_templates::Renderer::render`.
    fn template_kind(&self) -> &'static str;

    /// Makes one delivery attempt. Never panics and never returns a secret in the outcome.
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome>;

    /// This channel's budget: its config's `rate_limit:` when given, else
    /// [`ChannelKind::default_rate_limits`]. Every quota must hold.
    fn rate_limits(&self) -> Vec<Quota> {
        self.kind().default_rate_limits()
    }
}

/// Logs one attempt's outcome with the channel's name and kind (never a secret: outcomes are
/// scrubbed by the channels).
pub(crate) fn log_outcome(
    channel: &str,
    kind: ChannelKind,
    n: &Notification,
    outcome: &DeliveryOutcome,
) {
    match outcome {
        DeliveryOutcome::Delivered { status } => {
            tracing::debug!(channel, kind = %kind, notification = %n.id, status = ?status, "delivered");
        }
        DeliveryOutcome::Failed {
            error,
            retry_after_secs,
        } => {
            tracing::warn!(channel, kind = %kind, notification = %n.id, %error, retry_after_secs = ?retry_after_secs, "delivery attempt failed");
        }
        DeliveryOutcome::Dead { error } => {
            tracing::warn!(channel, kind = %kind, notification = %n.id, %error, "delivery failed permanently");
        }
    }
}

/// Every configured channel, by name. Built once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    by_name: BTreeMap<String, Arc<dyn Channel>>,
}

impl Channels {
    /// Builds every channel of the config (resolving secrets and creating HTTP clients). Fails
    /// on the first unusable channel; [`validate`](crate::validate) reports all problems first.
    pub fn build(cfg: &BTreeMap<String, ChannelConfig>) -> Result<Self, NotifyError> {
        let mut by_name: BTreeMap<String, Arc<dyn Channel>> = BTreeMap::new();
        for (name, c) in cfg {
            let channel: Arc<dyn Channel> = match c {
                ChannelConfig::Console(c) => Arc::new(ConsoleChannel::new(name, c)),
                ChannelConfig::Webhook(c) => Arc::new(WebhookChannel::new(name, c)?),
                ChannelConfig::Email(c) => Arc::new(EmailChannel::new(name, c)?),
                ChannelConfig::Slack(c) => chat::build(name, c)?,
                ChannelConfig::Teams(c) => chat::build(name, c)?,
                ChannelConfig::Discord(c) => chat::build(name, c)?,
                ChannelConfig::Telegram(c) => chat::build(name, c)?,
                ChannelConfig::DingTalk(c) => chat::build(name, c)?,
                ChannelConfig::WeCom(c) => chat::build(name, c)?,
                ChannelConfig::Feishu(c) => chat::build(name, c)?,
                ChannelConfig::GoogleChat(c) => chat::build(name, c)?,
                ChannelConfig::Mattermost(c) => chat::build(name, c)?,
                ChannelConfig::Twilio(c) => chat::build(name, c)?,
                ChannelConfig::AliyunSms(c) => chat::build(name, c)?,
                ChannelConfig::SmsGateway(c) => chat::build(name, c)?,
            };
            by_name.insert(name.clone(), channel);
        }
        Ok(Self { by_name })
    }

    /// A set made of the given channels (for tests and custom wiring). A later channel with the
    /// same name replaces an earlier one.
    pub fn from_channels(channels: impl IntoIterator<Item = Arc<dyn Channel>>) -> Self {
        let by_name = channels
            .into_iter()
            .map(|c| (c.name().to_string(), c))
            .collect();
        Self { by_name }
    }

    /// One attempt to deliver `n` on the channel it names (`n.channel`). An unknown channel
    /// gives [`DeliveryOutcome::Dead`].
    pub async fn send(&self, n: &Notification) -> DeliveryOutcome {
        match self.by_name.get(&n.channel) {
            Some(c) => c.send(n).await,
            None => DeliveryOutcome::Dead {
                error: format!("unknown channel {:?}", n.channel),
            },
        }
    }

    /// The channel called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(name)
    }

    /// The type of the channel called `name`.
    pub fn kind_of(&self, channel: &str) -> Option<ChannelKind> {
        self.by_name.get(channel).map(|c| c.kind())
    }

    /// The template kind to render messages for the channel called `name` with.
    pub fn template_kind(&self, channel: &str) -> Option<&'static str> {
        self.by_name.get(channel).map(|c| c.template_kind())
    }

    /// Channel names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_unique_name_and_sane_defaults() {
        let mut names = std::collections::BTreeSet::new();
        for k in ChannelKind::ALL {
            assert!(names.insert(k.as_str()), "{k}");
            for q in k.default_rate_limits() {
                assert_eq!(q.problem(), None, "{k}");
                assert!(q.to_governor().is_some(), "{k}");
            }
        }
        assert_eq!(
            ChannelKind::Feishu.default_rate_limits(),
            vec![
                Quota::new(5, Duration::from_secs(1)),
                Quota::new(100, Duration::from_secs(60))
            ]
        );
        assert_eq!(
            ChannelKind::DingTalk.default_rate_limits(),
            vec![Quota::new(20, Duration::from_secs(60))]
        );
        assert!(ChannelKind::Console.default_rate_limits().is_empty());
    }

    #[test]
    fn governor_quota_matches_the_window() {
        let q = Quota::new(20, Duration::from_secs(60))
            .to_governor()
            .unwrap();
        assert_eq!(q.burst_size().get(), 20);
        assert_eq!(q.replenish_interval(), Duration::from_secs(3));
        assert!(
            Quota::new(0, Duration::from_secs(1))
                .to_governor()
                .is_none()
        );
        assert!(Quota::new(1, Duration::ZERO).problem().is_some());
    }
}
