//! Discord webhook: `POST https://discord.com/api/webhooks/<id>/<token>?wait=true` with one
//! embed (`title` ≤ 256, `description` ≤ 4096 characters, a severity colour) and
//! `allowed_mentions: {parse: []}` so no message can ping `@everyone`. Success is 200 (with
//! `wait=true`) or 204. Over the limit Discord answers 429 with
//! `{"message": "...", "retry_after": <float seconds>, "global": bool}` and a `Retry-After`
//! header; the header is preferred, the JSON field (rounded up, capped at a day since some
//! webhooks were seen answering milliseconds) is the fallback. 5xx retryable, other 4xx
//! permanent.
//!
//! ```yaml
//! type: discord
//! url: { env: DISCORD_WEBHOOK_URL }
//! username: kube-herald   # optional
//! ```

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Severity, Timestamp, Transition};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fit::{Unit, fit};
use super::{
    Answer, Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl, classify_http,
    http_error, json_seconds,
};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most characters in an embed title.
pub const MAX_TITLE: usize = 256;
/// Most characters in an embed description.
pub const MAX_DESCRIPTION: usize = 4096;

/// `type: discord`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The webhook URL (a secret: it contains the token). Required.
    pub url: Secret,
    /// Display name instead of the webhook's.
    #[serde(default)]
    pub username: Option<String>,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (5 per 2 seconds).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Discord webhook.
#[derive(Debug)]
pub struct Discord {
    url: SecretUrl,
    username: Option<String>,
}

impl ProviderConfig for DiscordConfig {
    type Provider = Discord;

    fn resolve(&self) -> Result<Resolved<Discord>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url).map(|mut u| {
            if !u.query_pairs().any(|(k, _)| k == "wait") {
                u.query_pairs_mut().append_pair("wait", "true");
            }
            u
        });
        r.finish(url.map(|url| Discord {
            url: SecretUrl(url),
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

fn color(n: &Notification) -> u32 {
    if n.transition == Transition::Resolved {
        return 0x2e_b8_86;
    }
    match n.severity {
        Severity::Critical => 0xd7_3a_49,
        Severity::Warning => 0xe3_a0_08,
        _ => 0x58_65_f2,
    }
}

impl super::Provider for Discord {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Discord
    }

    fn template_kind(&self) -> &'static str {
        "markdown"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let mut body = json!({
            "embeds": [{
                "title": fit(&n.message.title, MAX_TITLE, Unit::Chars),
                "description": fit(&n.message.body, MAX_DESCRIPTION, Unit::Chars),
                "color": color(n),
            }],
            "allowed_mentions": { "parse": [] },
        });
        if let (Some(u), Some(m)) = (&self.username, body.as_object_mut()) {
            m.insert("username".into(), json!(u));
        }
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(body),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            let from_body = serde_json::from_str::<Value>(a.body)
                .ok()
                .and_then(|v| json_seconds(&v["retry_after"]));
            return DeliveryOutcome::Failed {
                error: http_error(a),
                retry_after_secs: a.retry_after.or(from_body),
            };
        }
        classify_http(a)
    }
}
