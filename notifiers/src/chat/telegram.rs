//! Telegram Bot API: `POST https://api.telegram.org/bot<token>/sendMessage` with JSON
//! `{"chat_id", "text" (≤ 4096 UTF-16 units), "link_preview_options": {"is_disabled": true}}`
//! in plain text (no `parse_mode`, so no message can break the markup). The answer is
//! `{"ok": true, "result": {...}}`; errors are `{"ok": false, "error_code", "description",
//! "parameters": {"retry_after": N}}`: 429 waits `parameters.retry_after` seconds, 5xx is
//! retryable, other errors (400 chat not found, 401 bad token, 403 bot blocked) permanent.
//!
//! ```yaml
//! type: telegram
//! bot_token: { env: TELEGRAM_BOT_TOKEN }
//! chat_id: "-1001234567890"        # or "@channelname"
//! disable_notification: false      # optional
//! api_url: https://api.telegram.org   # optional (a Bot API server of your own)
//! ```

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fit::{Unit, fit};
use super::{
    Answer, Body, ProviderConfig, Request, Resolved, Resolver, classify_http, http_error,
    json_seconds, title_and_body,
};
use crate::channel::{ChannelKind, Quota};
use crate::secret::{Secret, SecretString};

/// Most UTF-16 units in a message's text.
pub const MAX_TEXT: usize = 4096;

/// `type: telegram`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot token from BotFather (a secret). Required.
    pub bot_token: Secret,
    /// Chat id (a number, as a string) or `@channelusername`. Required.
    pub chat_id: String,
    /// Send silently.
    #[serde(default)]
    pub disable_notification: bool,
    /// The Bot API server. Default `https://api.telegram.org`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "super::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (1 per second and 20 per minute).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_string()
}

/// A resolved Telegram bot and chat.
pub struct Telegram {
    url: Url,
    chat_id: Value,
    disable_notification: bool,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("chat_id", &self.chat_id)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for TelegramConfig {
    type Provider = Telegram;

    fn resolve(&self) -> Result<Resolved<Telegram>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let token = r.secret("bot_token", &self.bot_token);
        let base = r.plain_url("api_url", &self.api_url);
        let chat = self.chat_id.trim();
        let chat_id = if let Ok(id) = chat.parse::<i64>() {
            Some(json!(id))
        } else if chat.starts_with('@') && chat.len() > 1 {
            Some(json!(chat))
        } else {
            r.problem("chat_id", "chat_id must be a number or @channelname");
            None
        };
        let url = match (token, base) {
            (Some(token), Some(base)) => {
                if token.expose().contains('/') {
                    r.problem("bot_token", "a bot token cannot contain '/'");
                    None
                } else {
                    r.scrub
                        .push(SecretString::new(format!("bot{}", token.expose())));
                    let mut u = base;
                    let path = format!(
                        "{}/bot{}/sendMessage",
                        u.path().trim_end_matches('/'),
                        token.expose()
                    );
                    u.set_path(&path);
                    Some(u)
                }
            }
            _ => None,
        };
        let provider = match (url, chat_id) {
            (Some(url), Some(chat_id)) => Some(Telegram {
                url,
                chat_id,
                disable_notification: self.disable_notification,
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

impl super::Provider for Telegram {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    fn template_kind(&self) -> &'static str {
        "text"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        Ok(Request {
            url: self.url.clone(),
            headers: Default::default(),
            body: Body::Json(json!({
                "chat_id": self.chat_id,
                "text": fit(&title_and_body(n), MAX_TEXT, Unit::Utf16),
                "disable_notification": self.disable_notification,
                "link_preview_options": { "is_disabled": true },
            })),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        let v: Value = serde_json::from_str(a.body).unwrap_or(Value::Null);
        if a.status.is_success() && v["ok"] == json!(true) {
            return classify_http(a);
        }
        let code = v["error_code"]
            .as_u64()
            .unwrap_or(u64::from(a.status.as_u16()));
        let error = match v["description"].as_str() {
            Some(d) => format!("Telegram error {code}: {d}"),
            None => http_error(a),
        };
        if code == 429 {
            return DeliveryOutcome::Failed {
                error,
                retry_after_secs: json_seconds(&v["parameters"]["retry_after"]).or(a.retry_after),
            };
        }
        if code >= 500 || a.status.is_server_error() {
            return DeliveryOutcome::Failed {
                error,
                retry_after_secs: a.retry_after,
            };
        }
        DeliveryOutcome::Dead { error }
    }
}
