//! Aliyun SMS (dysmsapi `SendSms`, version `2017-05-25`) as a signed RPC request (signature
//! version 1.0): the common parameters (`AccessKeyId`, `Action`, `Format=JSON`,
//! `SignatureMethod=HMAC-SHA1`, `SignatureNonce`, `SignatureVersion=1.0`, `Timestamp` in UTC
//! ISO 8601, `Version`) and the API's (`PhoneNumbers`, `SignName`, `TemplateCode`,
//! `TemplateParam` as a JSON string) are sorted, each name and value percent-encoded per
//! RFC 3986 (space `%20`, `*` `%2A`, `~` kept), joined `k=v&…`; then
//! `StringToSign = "POST&%2F&" + encode(canonical)` and
//! `Signature = base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`. Everything is POSTed
//! form-encoded to the endpoint.
//!
//! Answers: `{"Code": "OK", ...}` is delivered; throttling codes (`isv.BUSINESS_LIMIT_CONTROL`,
//! `Throttling.*`) and `isp.SYSTEM_ERROR` are retried after a minute; other codes
//! (`isv.MOBILE_NUMBER_ILLEGAL`, `SignatureDoesNotMatch`, `InvalidAccessKeyId.NotFound`, ...)
//! are permanent, also when they come with a 4xx status; 5xx is retried.
//!
//! ```yaml
//! type: aliyun_sms
//! access_key_id: LTAI5t...
//! access_key_secret: { env: ALIYUN_ACCESS_KEY_SECRET }
//! sign_name: Herald                # the approved signature name
//! template_code: SMS_123456789     # an approved template with one variable
//! template_param: text             # that variable's name; default `text`
//! phone_numbers: ["13800000000"]
//! endpoint: https://dysmsapi.aliyuncs.com   # optional
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::channel::{ChannelKind, Quota};
use crate::chat::{
    Answer, Body, ProviderConfig, Request, Resolved, Resolver, SecretUrl, base64, excerpt,
};
use crate::secret::{Secret, SecretString};

/// RFC 3986 unreserved characters stay; everything else is encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `type: aliyun_sms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunSmsConfig {
    /// The AccessKey id. Required.
    pub access_key_id: String,
    /// The AccessKey secret. Required.
    pub access_key_secret: Secret,
    /// The approved signature name (`SignName`). Required.
    pub sign_name: String,
    /// The approved template (`TemplateCode`). Required.
    pub template_code: String,
    /// The template variable that receives the text. Default `text`.
    #[serde(default = "default_param")]
    pub template_param: String,
    /// Recipients (sent in one request, comma-separated). Required, 1 to 1000.
    pub phone_numbers: Vec<String>,
    /// Most SMS segments of the text. Default 2.
    #[serde(default = "super::default_max_segments")]
    pub max_segments: usize,
    /// The endpoint. Default `https://dysmsapi.aliyuncs.com`.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Timeout of one attempt. Default `10s`.
    #[serde(default = "crate::chat::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Replaces the default budget (10 per hour).
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

fn default_param() -> String {
    "text".into()
}

fn default_endpoint() -> String {
    "https://dysmsapi.aliyuncs.com".into()
}

/// A resolved Aliyun SMS sender.
pub struct AliyunSms {
    url: SecretUrl,
    access_key_id: String,
    secret: SecretString,
    sign_name: String,
    template_code: String,
    template_param: String,
    phone_numbers: String,
    max_segments: usize,
}

impl std::fmt::Debug for AliyunSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunSms")
            .field("access_key_id", &self.access_key_id)
            .field("template_code", &self.template_code)
            .finish_non_exhaustive()
    }
}

impl ProviderConfig for AliyunSmsConfig {
    type Provider = AliyunSms;

    fn resolve(&self) -> Result<Resolved<AliyunSms>, Vec<(String, String)>> {
        let mut r = Resolver::default();
        for (field, v) in [
            ("access_key_id", &self.access_key_id),
            ("sign_name", &self.sign_name),
            ("template_code", &self.template_code),
            ("template_param", &self.template_param),
        ] {
            if v.trim().is_empty() {
                r.problem(field, format!("{field} must not be empty"));
            }
        }
        if self.phone_numbers.is_empty() || self.phone_numbers.len() > 1000 {
            r.problem("phone_numbers", "phone_numbers needs 1 to 1000 numbers");
        }
        for (i, p) in self.phone_numbers.iter().enumerate() {
            let digits = p.strip_prefix('+').unwrap_or(p);
            if digits.len() < 5 || !digits.chars().all(|c| c.is_ascii_digit()) {
                r.problem(
                    &format!("phone_numbers[{i}]"),
                    format!("{p:?} is not a phone number"),
                );
            }
        }
        if self.max_segments == 0 || self.max_segments > 10 {
            r.problem("max_segments", "max_segments must be 1..10");
        }
        let secret = r.secret("access_key_secret", &self.access_key_secret);
        let url = r.plain_url("endpoint", &self.endpoint);
        let provider = match (url, secret) {
            (Some(url), Some(secret)) => Some(AliyunSms {
                url: SecretUrl(url),
                access_key_id: self.access_key_id.clone(),
                secret,
                sign_name: self.sign_name.clone(),
                template_code: self.template_code.clone(),
                template_param: self.template_param.clone(),
                phone_numbers: self.phone_numbers.join(","),
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

/// RFC 3986 percent-encoding as Aliyun's signature needs it.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The signature of `params` (every parameter except `Signature`) for `method`.
pub fn signature(params: &BTreeMap<String, String>, secret: &str, method: &str) -> String {
    use hmac::{Mac, SimpleHmac};
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}&{}&{}", encode("/"), encode(&canonical));
    match SimpleHmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mut mac) => {
            mac.update(to_sign.as_bytes());
            base64(&mac.finalize().into_bytes())
        }
        // SimpleHmac takes keys of any length.
        Err(_) => String::new(),
    }
}

impl AliyunSms {
    /// The signed parameters for `text` at `now`; the nonce is derived from the notification
    /// id and the instant (unique per attempt, reproducible in tests).
    pub fn params(&self, id: &str, text: &str, now: Timestamp) -> BTreeMap<String, String> {
        let nonce = hex::encode(sha2::Sha256::digest(
            format!("{id}@{}", now.as_millisecond()).as_bytes(),
        ));
        let mut p: BTreeMap<String, String> = [
            ("AccessKeyId", self.access_key_id.clone()),
            ("Action", "SendSms".into()),
            ("Format", "JSON".into()),
            ("PhoneNumbers", self.phone_numbers.clone()),
            ("SignName", self.sign_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", nonce[..32].to_string()),
            ("SignatureVersion", "1.0".into()),
            ("TemplateCode", self.template_code.clone()),
            (
                "TemplateParam",
                json!({ self.template_param.clone(): text }).to_string(),
            ),
            ("Timestamp", now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", "2017-05-25".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let sig = signature(&p, self.secret.expose(), "POST");
        p.insert("Signature".into(), sig);
        p
    }
}

impl crate::chat::Provider for AliyunSms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::AliyunSms
    }

    fn template_kind(&self) -> &'static str {
        "sms"
    }

    fn request(&self, n: &Notification, now: Timestamp) -> Result<Request, String> {
        let text = super::segments::fit(&n.message.body, self.max_segments);
        Ok(Request {
            url: self.url.0.clone(),
            headers: Default::default(),
            body: Body::Form(self.params(&n.id, &text, now).into_iter().collect()),
        })
    }

    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        let v: Value = serde_json::from_str(a.body).unwrap_or(Value::Null);
        let code = v["Code"].as_str();
        if a.status.is_success() && code == Some("OK") {
            return DeliveryOutcome::Delivered {
                status: Some(a.status.as_u16()),
            };
        }
        let error = match code {
            Some(c) => format!(
                "Aliyun SMS {c}: {}",
                v["Message"].as_str().unwrap_or_default()
            ),
            None => format!("Aliyun SMS: HTTP {}: {}", a.status, excerpt(a.body)),
        };
        let throttled = code.is_some_and(|c| {
            c == "isv.BUSINESS_LIMIT_CONTROL"
                || c.starts_with("Throttling")
                || c == "isp.SYSTEM_ERROR"
        });
        if throttled || a.status.is_server_error() || (code.is_none() && a.status.is_success()) {
            DeliveryOutcome::Failed {
                error,
                retry_after_secs: a.retry_after.or(throttled.then_some(60)),
            }
        } else {
            DeliveryOutcome::Dead { error }
        }
    }
}
