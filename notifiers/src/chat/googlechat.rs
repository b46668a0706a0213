//! Google Chat incoming webhook: `POST https://chat.googleapis.com/v1/spaces/<space>/messages
//! ?key=…&token=…` with `{"text": "*<title>*\n<body>"}`. Success is 200 with the created
//! message; 429 (quota: about one write per second per space) and 5xx are retryable, other 4xx
//! permanent (shared classification). Text is kept within 4096 characters.
//!
//! ```yaml
//! type: googlechat
//! url: { env: GOOGLE_CHAT_WEBHOOK }
//! ```

use std::time::Duration;

use herald_core::{Notification, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::fit::{Unit, fit};
use super::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most characters of text herald sends in one message.
pub const MAX_TEXT: usize = 4096;

/// `type: googlechat`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleChatConfig {
    /// The webhook URL (a secret: it carries key and token). Required.
    pub url: Secret,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (1 per second).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Google Chat webhook.
#[derive(Debug)]
pub struct GoogleChat {
    url: SecretUrl,
}

impl ProviderConfig for GoogleChatConfig {
    type Provider = GoogleChat;

    fn resolve(&self) -> Result<Resolved<GoogleChat>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        r.finish(url.map(|url| GoogleChat {
            url: SecretUrl(url),
        }))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn rate_limit(&self) -> Option<&[Quota]> {
        self.rate_limit.as_deref()
    }
}

impl super::Provider for GoogleChat {
    fn kind(&self) -> ChannelKind {
        ChannelKind::GoogleChat
    }

    fn template_kind(&self) -> &'static str {
        "text"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let text = fit(
            &format!("*{}*\n{}", n.message.title, n.message.body),
            MAX_TEXT,
            Unit::Chars,
        );
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(json!({ "text": text })),
        })
    }
}
