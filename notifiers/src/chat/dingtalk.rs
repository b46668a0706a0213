//! DingTalk custom robot: `POST https://oapi.dingtalk.com/robot/send?access_token=…` with
//! `{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {...}}`. With a signing
//! secret, `&timestamp=<ms>&sign=<s>` is added, where
//! `s = urlencode(base64(HMAC-SHA256(key = secret, msg = "<timestamp>\n<secret>")))` (encoded
//! once). DingTalk answers HTTP 200 with `{"errcode": 0, "errmsg": "ok"}`; a non-zero
//! `errcode` is an error: `130101` (more than 20 per minute; the robot is throttled for 10
//! minutes) and `-1` (system busy) are retried, the rest (`310000` keyword/IP/signature
//! checks, bad token, ...) are permanent. The Markdown text is kept within 18,000 bytes.
//!
//! ```yaml
//! type: dingtalk
//! url: { env: DINGTALK_WEBHOOK }      # https://oapi.dingtalk.com/robot/send?access_token=...
//! secret: { env: DINGTALK_SECRET }    # optional: the robot's "加签" secret (SEC...)
//! at_mobiles: ["13800000000"]         # optional
//! at_all: false                       # optional
//! ```

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fit::{Unit, fit};
use super::{
    Answer, Body, ProviderConfig, Request, Resolved, Resolver, base64, classify_http, hmac_sha256,
};
use crate::channel::{ChannelKind, Quota};
use crate::secret::{Secret, SecretString};

/// Most bytes of Markdown text herald sends.
pub const MAX_TEXT_BYTES: usize = 18_000;
/// DingTalk's throttling code (more than 20 messages per minute).
pub const ERR_THROTTLED: i64 = 130_101;
/// How long DingTalk throttles a robot that sent too fast.
pub const THROTTLE_SECS: u64 = 600;

/// `type: dingtalk`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkConfig {
    /// The robot's webhook URL with its `access_token` (a secret). Required.
    pub url: Secret,
    /// The robot's signing secret, when "加签" (sign) is enabled.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Mobile numbers to @-mention.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    /// @-mention everyone.
    #[serde(default)]
    pub at_all: bool,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (20 per minute).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved DingTalk robot.
pub struct DingTalk {
    url: Url,
    secret: Option<SecretString>,
    at_mobiles: Vec<String>,
    at_all: bool,
}

impl std::fmt::Debug for DingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalk")
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for DingTalkConfig {
    type Provider = DingTalk;

    fn resolve(&self) -> Result<Resolved<DingTalk>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        if let Some(u) = &url
            && !u.query_pairs().any(|(k, _)| k == "access_token")
        {
            r.problem("url", "the robot URL has no access_token parameter");
        }
        let secret = match &self.secret {
            Some(s) => r.secret("secret", s).map(Some),
            None => Some(None),
        };
        let provider = match (url, secret) {
            (Some(url), Some(secret)) => Some(DingTalk {
                url,
                secret,
                at_mobiles: self.at_mobiles.clone(),
                at_all: self.at_all,
            }),
            _ => None,
        };
        r.finish(provider)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn rate_limit(&self) -> Option<&[Quota]> {
        self.rate_limit.as_deref()
    }
}

/// DingTalk's signature of `timestamp_ms` (base64, not yet URL-encoded).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let msg = format!("{timestamp_ms}\n{secret}");
    base64(&hmac_sha256(secret.as_bytes(), msg.as_bytes()))
}

impl DingTalk {
    /// The request URL at `now` (signed when a secret is configured).
    pub fn url_at(&self, now: Timestamp) -> Url {
        let mut url = self.url.clone();
        if let Some(secret) = &self.secret {
            let ts = now.as_millisecond();
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &sign(secret.expose(), ts));
        }
        url
    }
}

impl super::Provider for DingTalk {
    fn kind(&self) -> ChannelKind {
        ChannelKind::DingTalk
    }

    fn template_kind(&self) -> &'static str {
        "markdown"
    }

    fn request(&self, n: &Notification, now: Timestamp) -> Result<Request, String> {
        let text = fit(
            &format!("#### {}\n\n{}", n.message.title, n.message.body),
            MAX_TEXT_BYTES,
            Unit::Bytes,
        );
        Ok(Request {
            url: self.url_at(now),
            headers: Default::default(),
            body: Body::Json(json!({
                "msgtype": "markdown",
                "markdown": { "title": n.message.title, "text": text },
                "at": { "atMobiles": self.at_mobiles, "isAtAll": self.at_all },
            })),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        if !a.status.is_success() {
            return classify_http(a);
        }
        classify_errcode(a, "DingTalk", |code| match code {
            ERR_THROTTLED => Some(Some(THROTTLE_SECS)),
            -1 => Some(None),
            _ => None,
        })
    }
}

/// Classifies `{"errcode": N, "errmsg": "..."}` answers (DingTalk, WeCom). `retryable(code)`
/// is `Some(wait)` for codes worth retrying. A 2xx answer that is not such JSON is retried
/// (it is not the provider's documented answer, so it may not have been delivered).
pub(crate) fn classify_errcode(
    a: &Answer<'_>,
    provider: &str,
    retryable: impl Fn(i64) -> Option<Option<u64>>,
) -> DeliveryOutcome {
    let v: Value = serde_json::from_str(a.body).unwrap_or(Value::Null);
    let Some(code) = v["errcode"].as_i64() else {
        return DeliveryOutcome::Failed {
            error: format!(
                "{provider}: unexpected answer (HTTP {}): {}",
                a.status,
                super::excerpt(a.body)
            ),
            retry_after_secs: None,
        };
    };
    if code == 0 {
        return DeliveryOutcome::Delivered {
            status: Some(a.status.as_u16()),
        };
    }
    let error = format!(
        "{provider} errcode {code}: {}",
        v["errmsg"].as_str().unwrap_or_default()
    );
    match retryable(code) {
        Some(wait) => DeliveryOutcome::Failed {
            error,
            retry_after_secs: wait.or(a.retry_after),
        },
        None => DeliveryOutcome::Dead { error },
    }
}
