//! Feishu / Lark custom bot: `POST https://open.feishu.cn/open-apis/bot/v2/hook/<token>` (Lark:
//! `open.larksuite.com`) with `{"msg_type": "text", "content": {"text": ...}}`. With a signing
//! secret the body also carries `"timestamp": "<seconds>"` and
//! `"sign": base64(HMAC-SHA256(key = "<timestamp>\n<secret>", msg = ""))` (note: the key is
//! the string, the message is empty; unlike DingTalk). Feishu answers HTTP 200 with
//! `{"code": 0, "msg": "success"}`; `11232` (rate limited: 5 per second, 100 per minute) is
//! retried, the rest (`19021` bad or expired signature, `19022` IP not allowed, `19024`
//! keyword missing, `9499` bad request) are permanent. The body is at most 20 KB; the text is
//! kept within 16,000 bytes.
//!
//! ```yaml
//! type: feishu
//! url: { env: FEISHU_WEBHOOK }
//! secret: { env: FEISHU_SECRET }   # optional, when signature verification is on
//! ```

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fit::{Unit, fit};
use super::{
    Answer, Body, ProviderConfig, Request, Resolved, Resolver, base64, classify_http, hmac_sha256,
    title_and_body,
};
use crate::channel::{ChannelKind, Quota};
use crate::secret::{Secret, SecretString};

/// Most bytes of text herald sends.
pub const MAX_TEXT_BYTES: usize = 16_000;
/// Feishu's rate-limited code.
pub const ERR_RATE_LIMITED: i64 = 11_232;

/// `type: feishu`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    /// The bot's webhook URL (a secret). Required.
    pub url: Secret,
    /// The signing secret, when signature verification is enabled.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (5 per second and 100 per minute).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved Feishu bot.
pub struct Feishu {
    url: Url,
    secret: Option<SecretString>,
}

impl std::fmt::Debug for Feishu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feishu")
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for FeishuConfig {
    type Provider = Feishu;

    fn resolve(&self) -> Result<Resolved<Feishu>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        let secret = match &self.secret {
            Some(s) => r.secret("secret", s).map(Some),
            None => Some(None),
        };
        let provider = match (url, secret) {
            (Some(url), Some(secret)) => Some(Feishu { url, secret }),
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

/// Feishu's signature for `timestamp_secs`.
pub fn sign(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    base64(&hmac_sha256(key.as_bytes(), b""))
}

impl super::Provider for Feishu {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Feishu
    }

    fn template_kind(&self) -> &'static str {
        "text"
    }

    fn request(&self, n: &Notification, now: Timestamp) -> Result<Request, String> {
        let mut body = Map::new();
        if let Some(secret) = &self.secret {
            let ts = now.as_second();
            body.insert("timestamp".into(), json!(ts.to_string()));
            body.insert("sign".into(), json!(sign(secret.expose(), ts)));
        }
        body.insert("msg_type".into(), json!("text"));
        body.insert(
            "content".into(),
            json!({ "text": fit(&title_and_body(n), MAX_TEXT_BYTES, Unit::Bytes) }),
        );
        Ok(Request {
            url: self.url.clone(),
            headers: Default::default(),
            body: Body::Json(Value::Object(body)),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        if !a.status.is_success() {
            return classify_http(a);
        }
        let v: Value = serde_json::from_str(a.body).unwrap_or(Value::Null);
        // Older bots answer {"StatusCode": 0, "StatusMessage": "success"}.
        let code = v["code"].as_i64().or_else(|| v["StatusCode"].as_i64());
        let Some(code) = code else {
            return DeliveryOutcome::Failed {
                error: format!(
                    "Feishu: unexpected answer (HTTP {}): {}",
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
        let msg = v["msg"]
            .as_str()
            .or_else(|| v["StatusMessage"].as_str())
            .unwrap_or_default();
        let error = format!("Feishu code {code}: {msg}");
        if code == ERR_RATE_LIMITED {
            DeliveryOutcome::Failed {
                error,
                retry_after_secs: Some(a.retry_after.unwrap_or(1)),
            }
        } else {
            DeliveryOutcome::Dead { error }
        }
    }
}
