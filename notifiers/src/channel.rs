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
use std::pin::Pin;
use std::sync::Arc;

use herald_core::{DeliveryOutcome, Notification};

use crate::config::ChannelConfig;
use crate::console::ConsoleChannel;
use crate::error::NotifyError;
use crate::webhook::WebhookChannel;

/// A boxed, sendable future (what [`Channel::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The type of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// One line per notification on stdout.
    Console,
    /// Generic JSON webhook.
    Webhook,
}

impl ChannelKind {
    /// Lowercase name, as written in `type:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Webhook => "webhook",
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
