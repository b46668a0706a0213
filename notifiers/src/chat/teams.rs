//! Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is
//! received"; the Office 365 connectors are retired): `POST <workflow URL>` with a message
//! carrying one Adaptive Card (version 1.4): a bold title `TextBlock` and a wrapped body
//! `TextBlock` (Teams renders a Markdown subset in it). Success is `202 Accepted` (or 200);
//! 429 with `Retry-After` and 5xx are retryable, other 4xx permanent. The whole card is kept
//! under about 28 KB, so the body is cut to 24,000 bytes.
//!
//! ```yaml
//! type: teams
//! url: { env: TEAMS_WORKFLOW_URL }
//! ```

use std::time::Duration;

use herald_core::{Notification, Severity, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::fit::{Unit, fit};
use super::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most bytes of body text in one card.
pub const MAX_BODY_BYTES: usize = 24_000;

/// `type: teams`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The workflow's HTTP trigger URL (a secret: its `sig` is the credential). Required.
    pub url: Secret,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (4 per second).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Teams workflow.
#[derive(Debug)]
pub struct Teams {
    url: SecretUrl,
}

impl ProviderConfig for TeamsConfig {
    type Provider = Teams;

    fn resolve(&self) -> Result<Resolved<Teams>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        r.finish(url.map(|url| Teams {
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

/// The Adaptive Card colour of a severity.
fn color(n: &Notification) -> &'static str {
    if n.transition == herald_core::Transition::Resolved {
        return "Good";
    }
    match n.severity {
        Severity::Critical => "Attention",
        Severity::Warning => "Warning",
        _ => "Default",
    }
}

impl super::Provider for Teams {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Teams
    }

    fn template_kind(&self) -> &'static str {
        "markdown"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let body = fit(&n.message.body, MAX_BODY_BYTES, Unit::Bytes);
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            { "type": "TextBlock", "text": n.message.title, "weight": "Bolder",
                              "size": "Medium", "wrap": true, "color": color(n) },
                            { "type": "TextBlock", "text": body, "wrap": true },
                        ],
                    },
                }],
            })),
        })
    }
}
