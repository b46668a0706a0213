//! Slack incoming webhook: `POST https://hooks.slack.com/services/T…/B…/…` with
//! `{"text": <title>, "blocks": [header, section(mrkdwn body)]}`; `text` is the notification
//! fallback. Success is `200 ok`; over the limit Slack answers 429 with `Retry-After`
//! (seconds); other 4xx (`invalid_payload`, `no_text`, 404 `channel_not_found`, 410
//! `channel_is_archived`, 403 `action_prohibited`) are permanent. Limits: a section's text is
//! at most 3000 characters, a header's 150.
//!
//! ```yaml
//! type: slack
//! url: { env: SLACK_WEBHOOK_URL }
//! timeout: 10s                 # optional
//! rate_limit: [{ count: 1, per: 1s }]   # optional, the default
//! ```

use std::time::Duration;

use herald_core::{Notification, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::fit::{Unit, fit};
use super::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most characters in a section block's text.
pub const MAX_SECTION: usize = 3000;
/// Most characters in a header block's text.
pub const MAX_HEADER: usize = 150;

/// `type: slack`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (a secret: it is the credential). Required.
    pub url: Secret,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (1 per second).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Slack webhook.
#[derive(Debug)]
pub struct Slack {
    url: SecretUrl,
}

impl ProviderConfig for SlackConfig {
    type Provider = Slack;

    fn resolve(&self) -> Result<Resolved<Slack>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        r.finish(url.map(|url| Slack {
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

impl super::Provider for Slack {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Slack
    }

    fn template_kind(&self) -> &'static str {
        "slack"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let title = fit(&n.message.title, MAX_HEADER, Unit::Chars);
        let body = fit(&n.message.body, MAX_SECTION, Unit::Chars);
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(json!({
                "text": n.message.title,
                "blocks": [
                    { "type": "header", "text": { "type": "plain_text", "text": title, "emoji": true } },
                    { "type": "section", "text": { "type": "mrkdwn", "text": body } },
                ],
            })),
        })
    }
}
