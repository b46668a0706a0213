//! WeCom (企业微信) group robot: `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`
//! with `{"msgtype": "markdown", "markdown": {"content": ...}}` (content ≤ 4096 bytes). No
//! signature: the `key` is the credential. WeCom answers HTTP 200 with
//! `{"errcode": 0, "errmsg": "ok"}`; `45009` (over 20 messages per minute) is retried after a
//! minute, `-1` (system busy) retried, other codes (`93000` invalid webhook, ...) permanent.
//!
//! ```yaml
//! type: wecom
//! url: { env: WECOM_WEBHOOK }   # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
//! ```

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use serde::Deserialize;
use serde_json::json;

use super::dingtalk::classify_errcode;
use super::fit::{Unit, fit};
use super::{Answer, Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl, classify_http};
use crate::channel::{ChannelKind, Quota};
use crate::secret::Secret;

/// Most bytes of Markdown content.
pub const MAX_CONTENT_BYTES: usize = 4096;
/// WeCom's over-the-limit code.
pub const ERR_RATE_LIMITED: i64 = 45_009;

/// `type: wecom`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    /// The robot's webhook URL with its `key` (a secret). Required.
    pub url: Secret,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (20 per minute).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved WeCom robot.
#[derive(Debug)]
pub struct WeCom {
    url: SecretUrl,
}

impl ProviderConfig for WeComConfig {
    type Provider = WeCom;

    fn resolve(&self) -> Result<Resolved<WeCom>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        if let Some(u) = &url
            && !u.query_pairs().any(|(k, _)| k == "key")
        {
            r.problem("url", "the robot URL has no key parameter");
        }
        r.finish(url.map(|url| WeCom {
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

impl super::Provider for WeCom {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WeCom
    }

    fn template_kind(&self) -> &'static str {
        "markdown"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let content = fit(
            &format!("**{}**\n{}", n.message.title, n.message.body),
            MAX_CONTENT_BYTES,
            Unit::Bytes,
        );
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Json(json!({
                "msgtype": "markdown",
                "markdown": { "content": content },
            })),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        if !a.status.is_success() {
            return classify_http(a);
        }
        classify_errcode(a, "WeCom", |code| match code {
            ERR_RATE_LIMITED => Some(Some(60)),
            -1 => Some(None),
            _ => None,
        })
    }
}
