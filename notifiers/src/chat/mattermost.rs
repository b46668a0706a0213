//! Mattermost incoming webhook: `POST https://mattermost.example/hooks/<key>` with
//! `{"text": "#### <title>\n<markdown body>"}` (plus `channel`, `username` when configured).
//! Success is `200 ok`; errors are 4xx/5xx with a JSON or text body (shared classification).
//! A post holds at most 16383 characters.
//!
//! ```yaml
//! type: mattermost
//! url: { env: MATTERMOST_HOOK }
//! channel: town-square     # optional, overrides the hook's channel
//! username: kube-herald    # optional
//! ```

use std::time::Duration;

use herald_core::{Notification, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fit::{Unit, fit};
use super::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most characters in a post.
pub const MAX_POST: usize = 16_383;

/// `type: mattermost`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// The incoming webhook URL (a secret). Required.
    pub url: Secret,
    /// Channel to post to instead of the hook's default.
    #[serde(default)]
    pub channel: Option<String>,
    /// Display name instead of the hook's default.
    #[serde(default)]
    pub username: Option<String>,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (10 per second).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Mattermost hook.
#[derive(Debug)]
pub struct Mattermost {
    url: SecretUrl,
    channel: Option<String>,
    username: Option<String>,
}

impl ProviderConfig for MattermostConfig {
    type Provider = Mattermost;

    fn resolve(&self) -> Result<Resolved<Mattermost>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        r.finish(url.map(|url| Mattermost {
            url: SecretUrl(url),
            channel: self.channel.clone(),
            username: self.username.clone(),
        }))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn rate_limit(&self) -> Option<&[Quota]> {
        self.rate_limit.as_deref()
    }
}

impl super::Provider for Mattermost {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Mattermost
    }

    fn template_kind(&self) -> &'static str {
        "markdown"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let text = fit(
            &format!("#### {}\n{}", n.message.title, n.message.body),
            MAX_POST,
            Unit::Chars,
        );
        let mut body = Map::new();
        body.insert("text".into(), json!(text));
        if let Some(c) = &self.channel {
            body.insert("channel".into(), json!(c));
        }
        if let Some(u) = &self.username {
            body.insert("username".into(), json!(u));
        }
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(Value::Object(body)),
        })
    }
}
