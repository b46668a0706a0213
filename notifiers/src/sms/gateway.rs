//! A generic HTTP SMS gateway with a templated request: `POST <url>` with the configured
//! fields, as JSON or form-encoded, where each field value may contain `{to}` (the recipient)
//! and `{text}` (the SMS text, cut to `max_segments`). Values are substituted, then the body
//! is serialized (serde_json or form encoding), so a text can never break the request. Each
//! channel sends to its one `to`; define one channel per number. Classification is the shared
//! HTTP one (2xx delivered, 408/429/5xx retried with `Retry-After`, other statuses permanent).
//!
//! ```yaml
//! type: sms_gateway
//! url: { env: SMS_GATEWAY_URL }
//! format: json                     # or `form`
//! to: "+15551234567"
//! fields:
//!   recipient: "{to}"
//!   message: "{text}"
//!   sender: kube-herald
//! headers:
//!   Authorization: { env: SMS_GATEWAY_TOKEN }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::{Notification, Timestamp};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::channel::{ChannelKind, Quota};
use crate::chat::{Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl};
use crate::secret::{HeaderValueConfig, Secret};

/// The body encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayFormat {
    /// A JSON object of the fields.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// `type: sms_gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsGatewayConfig {
    /// Where to POST (a secret: gateway URLs often carry a key). Required.
    pub url: Secret,
    /// `json` (default) or `form`.
    #[serde(default)]
    pub format: GatewayFormat,
    /// The recipient, substituted for `{to}`. Required.
    pub to: String,
    /// Body fields; values may use `{to}` and `{text}`. At least one must use `{text}`.
    pub fields: BTreeMap<String, String>,
    /// Extra headers (plain or secret values).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValueConfig>,
    /// Most SMS segments per message. Default 2.
    #[serde(default = "super::default_max_segments")]
    pub max_segments: usize,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "crate::chat::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (10 per hour).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

/// A resolved gateway.
pub struct SmsGateway {
    url: SecretUrl,
    format: GatewayFormat,
    to: String,
    fields: BTreeMap<String, String>,
    headers: HeaderMap,
    max_segments: usize,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("format", &self.format)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for SmsGatewayConfig {
    type Provider = SmsGateway;

    fn resolve(&self) -> Result<Resolved<SmsGateway>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        let url = r.url("url", &self.url);
        if self.to.trim().is_empty() {
            r.problem("to", "to must not be empty");
        }
        if !self.fields.values().any(|v| v.contains("{text}")) {
            r.problem(
                "fields",
                "no field uses {text}, so the message would not be sent",
            );
        }
        if self.max_segments == 0 || self.max_segments > 10 {
            r.problem("max_segments", "max_segments must be 1..10");
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let Ok(h) = HeaderName::from_bytes(name.as_bytes()) else {
                r.problem(&field, format!("invalid header name {name:?}"));
                continue;
            };
            if h == CONTENT_TYPE {
                r.problem(&field, "Content-Type follows `format`");
                continue;
            }
            let v = match value.resolve() {
                Ok(v) => v,
                Err(e) => {
                    r.problem(&field, e.to_string());
                    continue;
                }
            };
            match HeaderValue::from_str(v.expose()) {
                Ok(mut hv) => {
                    if value.is_secret() {
                        hv.set_sensitive(true);
                        r.scrub.push(v);
                    }
                    headers.insert(h, hv);
                }
                Err(_) => r.problem(
                    &field,
                    "header value contains characters not allowed in HTTP headers",
                ),
            }
        }
        r.finish(url.map(|url| SmsGateway {
            url: SecretUrl(url),
            format: self.format,
            to: self.to.clone(),
            fields: self.fields.clone(),
            headers,
            max_segments: self.max_segments,
        }))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn rate_limit(&self) -> Option<&[Quota]> {
        self.rate_limit.as_deref()
    }
}

impl SmsGateway {
    /// The fields with `{to}` and `{text}` substituted (in one pass, so a text containing
    /// `{to}` stays literal).
    pub fn fields_for(&self, text: &str) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|(k, v)| {
                let mut out = String::new();
                let mut rest = v.as_str();
                while let Some(i) = rest.find('{') {
                    out.push_str(&rest[..i]);
                    let tail = &rest[i..];
                    if let Some(t) = tail.strip_prefix("{to}") {
                        out.push_str(&self.to);
                        rest = t;
                    } else if let Some(t) = tail.strip_prefix("{text}") {
                        out.push_str(text);
                        rest = t;
                    } else {
                        out.push('{');
                        rest = &tail[1..];
                    }
                }
                out.push_str(rest);
                (k.clone(), out)
            })
            .collect()
    }
}

impl crate::chat::Provider for SmsGateway {
    fn kind(&self) -> ChannelKind {
        ChannelKind::SmsGateway
    }

    fn template_kind(&self) -> &'static str {
        "sms"
    }

    fn request(&self, n: &Notification, _now: Timestamp) -> Result<Request, String> {
        let text = super::segments::fit(&n.message.body, self.max_segments);
        let fields = self.fields_for(&text);
        let body = match self.format {
            GatewayFormat::Json => Body::Json(Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect::<Map<_, _>>(),
            )),
            GatewayFormat::Form => Body::Form(fields),
        };
        Ok(Request {
            url: self.url.0.clone(),
            headers: self.headers.clone(),
            body,
        })
    }
}
