//! Twilio SMS: `POST https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded `To`, `From` (or `MessagingServiceSid`) and `Body`, HTTP Basic auth
//! `AccountSid:AuthToken` (or an API key SID and secret). Success is `201 Created`; errors are
//! JSON `{"code", "message", "more_info", "status"}`: 429 (error 20429) is retried after
//! `Retry-After` (Twilio never processed it), 5xx retried, other 4xx (21211 invalid `To`,
//! 20003 authentication) permanent.
//!
//! ```yaml
//! type: twilio
//! account_sid: ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
//! auth_token: { env: TWILIO_AUTH_TOKEN }
//! api_key_sid: SKxxxx          # optional: authenticate with an API key (auth_token is its secret)
//! from: "+15005550006"         # or messaging_service_sid: MGxxxx
//! to: "+15551234567"
//! max_segments: 2              # optional
//! rate_limit: [{ count: 10, per: 1h }]   # optional, the default
//! ```

use std::time::Duration;

use herald_core::{Notification, Timestamp};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::channel::{ChannelKind, Quota};
use crate::chat::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl, base64};
use crate::secret::{Secret, SecretString};

/// `type: twilio`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (`AC…`). Required.
    pub account_sid: String,
    /// The auth token (or the API key's secret). Required.
    pub auth_token: Secret,
    /// An API key SID (`SK…`) to authenticate with instead of the account SID.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// Sender number (E.164). One of `from` and `messaging_service_sid` is required.
    #[serde(default)]
    pub from: Option<String>,
    /// Messaging service SID (`MG…`).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Recipient (E.164). Required.
    pub to: String,
    /// Most SMS segments per message. Default 2.
    #[serde(default = "super::default_max_segments")]
    pub max_segments: usize,
    /// API base. Default `https://api.twilio.com`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "crate::chat::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (10 per hour).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

fn default_api_url() -> String {
    "https://api.twilio.com".to_string()
}

/// An E.164 number: `+` and 8 to 15 digits.
pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// A resolved Twilio sender.
pub struct Twilio {
    url: SecretUrl,
    auth: HeaderValue,
    sender: (&'static str, String),
    to: String,
    max_segments: usize,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("to", &self.to)
            .field("max_segments", &self.max_segments)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for TwilioConfig {
    type Provider = Twilio;

    fn resolve(&self) -> Result<Resolved<Twilio>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let sid_ok = self.account_sid.starts_with("AC")
            && self.account_sid.len() > 2
            && self.account_sid.chars().all(|c| c.is_ascii_alphanumeric());
        if !sid_ok {
            r.problem(
                "account_sid",
                "account_sid must look like AC followed by letters and digits",
            );
        }
        let token = r.secret("auth_token", &self.auth_token);
        let sender = match (&self.from, &self.messaging_service_sid) {
            (Some(f), None) if is_e164(f) => Some(("From", f.clone())),
            (Some(_), None) => {
                r.problem("from", "from must be an E.164 number like +15005550006");
                None
            }
            (None, Some(m)) => Some(("MessagingServiceSid", m.clone())),
            (Some(_), Some(_)) => {
                r.problem("from", "set either from or messaging_service_sid, not both");
                None
            }
            (None, None) => {
                r.problem("from", "one of from or messaging_service_sid is required");
                None
            }
        };
        if !is_e164(&self.to) {
            r.problem("to", "to must be an E.164 number like +15551234567");
        }
        if self.max_segments == 0 || self.max_segments > 10 {
            r.problem("max_segments", "max_segments must be 1..10");
        }
        let base = r.plain_url("api_url", &self.api_url);
        let url = base.map(|mut u| {
            let path = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                u.path().trim_end_matches('/'),
                self.account_sid
            );
            u.set_path(&path);
            u
        });
        let auth = token.and_then(|t| {
            let user = self.api_key_sid.as_deref().unwrap_or(&self.account_sid);
            let basic = base64(format!("{user}:{}", t.expose()).as_bytes());
            r.scrub.push(SecretString::new(basic.clone()));
            match HeaderValue::from_str(&format!("Basic {basic}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    Some(v)
                }
                Err(_) => {
                    r.problem(
                        "auth_token",
                        "the token contains characters not allowed in HTTP headers",
                    );
                    None
                }
            }
        });
        let provider = match (url, auth, sender) {
            (Some(url), Some(auth), Some(sender)) => Some(Twilio {
                url: SecretUrl(url),
                auth,
                sender,
                to: self.to.clone(),
                max_segments: self.max_segments,
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

impl crate::chat::Provider for Twilio {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Twilio
    }

    fn template_kind(&self) -> &'static str {
        "sms"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.auth.clone());
        Ok(Request {
            url: self.url.0.clone(),
            headers,
            body: Body::Form(vec![
                ("To".into(), self.to.clone()),
                (self.sender.0.into(), self.sender.1.clone()),
                (
                    "Body".into(),
                    super::segments::fit(&n.message.body, self.max_segments),
                ),
            ]),
        })
    }
}
