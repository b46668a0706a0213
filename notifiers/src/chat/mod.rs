//! Chat (and SMS) providers reached over HTTP: what they share. Each provider module has the
//! same anatomy (Vector sinks style): its config (with `problems()` reporting every issue), a
//! request builder (`Provider::request`, pure, given the instant so signatures are testable
//! with known-answer vectors), and the classification of the provider's answers into
//! [`DeliveryOutcome`]s (`Provider::classify`); tests run each one against a local receiver.
//!
//! - [`HttpChannel`]: one configured provider plus its HTTP client; implements [`Channel`].
//! - [`fit`]: cutting text to a provider's size limit with a note of what was left out.
//! - providers: [`slack`], [`teams`], [`discord`], [`telegram`], [`dingtalk`], [`wecom`],
//!   [`feishu`], [`googlechat`], [`mattermost`].
//!
//! Shared classification ([`classify_http`]): 2xx is delivered; 408, 429 and 5xx are retryable
//! with the `Retry-After` header when given; other statuses are permanent. Timeouts and
//! connection errors are retryable. Providers that answer HTTP 200 with an error code in the
//! body (DingTalk, WeCom, Feishu, Telegram) classify that code themselves. URLs, tokens and
//! signing secrets are scrubbed from every outcome and never appear in `Debug`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::channel::{BoxFuture, Channel, ChannelKind, Quota};
use crate::error::NotifyError;
use crate::secret::{Secret, SecretString};

pub mod dingtalk;
pub mod discord;
pub mod feishu;
pub mod fit;
pub mod googlechat;
pub mod mattermost;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod wecom;

#[cfg(test)]
mod provider_tests;
#[cfg(test)]
pub(crate) mod receiver;

/// Longest part of a provider's error response quoted in a delivery outcome.
const MAX_BODY_EXCERPT: usize = 300;

/// A URL that carries a credential (webhook token, key); `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(pub Url);

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json`, serialized by serde_json (no message can break it).
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(String, String)>),
}

/// One HTTP request to a provider (always a POST).
#[derive(Clone)]
pub struct Request {
    /// Where to.
    pub url: Url,
    /// Extra headers (authorization, ...); `Content-Type` follows the body.
    pub headers: HeaderMap,
    /// The body.
    pub body: Body,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("url", &"[redacted]")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

/// A provider's answer, as classification sees it.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Retry-After` header in seconds, when present and valid.
    pub retry_after: Option<u64>,
    /// The response body (already scrubbed of secrets).
    pub body: &'a str,
}

/// One provider: builds requests and classifies answers. Implementations hold resolved
/// secrets and must not print them in `Debug`.
pub trait Provider: Send + Sync + fmt::Debug + 'static {
    /// The channel kind.
    fn kind(&self) -> ChannelKind;

    /// The template kind its messages are rendered with.
    fn template_kind(&self) -> &'static str;

    /// The request delivering `n` at instant `now` (signatures use it). An error means the
    /// notification cannot be sent at all (it becomes a dead letter).
    fn request(&self, n: &Notification, now: Timestamp) -> Result<Request, String>;

    /// The outcome of an answer. Default: [`classify_http`].
    fn classify(&self, a: &Answer<'_>) -> DeliveryOutcome {
        classify_http(a)
    }
}

/// A provider config: resolves into a [`Provider`] and the secrets to scrub from errors.
pub trait ProviderConfig {
    /// What it resolves into.
    type Provider: Provider;

    /// The provider, or every problem as `(field, message)` (never with a secret).
    fn resolve(&self) -> Result<Resolved<Self::Provider>, Vec<(String, String)>>;

    /// Timeout of one attempt.
    fn timeout(&self) -> Duration;

    /// The configured budget, replacing the kind's default.
    fn rate_limit(&self) -> Option<&[Quota]>;

    /// Every problem with this config, as `(field, message)` pairs.
    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = match self.resolve() {
            Ok(_) => Vec::new(),
            Err(p) => p,
        };
        if self.timeout().is_zero() {
            problems.push(("timeout".into(), "timeout must be > 0".into()));
        }
        for (i, q) in self.rate_limit().into_iter().flatten().enumerate() {
            if let Some(p) = q.problem() {
                problems.push((format!("rate_limit[{i}]"), p));
            }
        }
        problems
    }
}

/// A resolved provider and the secret strings to scrub from any error text.
pub struct Resolved<P> {
    /// The provider.
    pub provider: P,
    /// Secrets (URLs and their parts, tokens, signing keys).
    pub scrub: Vec<SecretString>,
}

/// Collects problems and secrets while a config resolves.
#[derive(Default)]
pub struct Resolver {
    /// Problems found so far.
    pub problems: Vec<(String, String)>,
    /// Secrets to scrub.
    pub scrub: Vec<SecretString>,
}

impl Resolver {
    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push((field.to_string(), message.into()));
    }

    /// Resolves a secret; `None` (and a problem) when it cannot be.
    pub fn secret(&mut self, field: &str, s: &Secret) -> Option<SecretString> {
        match s.resolve() {
            Ok(v) => {
                self.scrub.push(v.clone());
                Some(v)
            }
            Err(e) => {
                self.problem(field, e.to_string());
                None
            }
        }
    }

    /// Resolves a secret URL, which must be http(s) with a host; its host, path and query
    /// are scrubbed too (tokens often live there).
    pub fn url(&mut self, field: &str, s: &Secret) -> Option<Url> {
        let raw = self.secret(field, s)?;
        match Url::parse(raw.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                let parts = [u.host_str(), Some(u.path()), u.query()];
                for part in parts.into_iter().flatten().filter(|p| p.len() > 1) {
                    self.scrub.push(SecretString::new(part));
                }
                // A receiver may echo just the token: query values and long path segments
                // (tokens, keys, signatures) are scrubbed on their own too.
                for (_, v) in u.query_pairs() {
                    if v.len() >= 6 {
                        self.scrub.push(SecretString::new(v.into_owned()));
                    }
                }
                for seg in u.path_segments().into_iter().flatten() {
                    if seg.len() >= 16 {
                        self.scrub.push(SecretString::new(seg));
                    }
                }
                Some(u)
            }
            Ok(_) => {
                self.problem(
                    field,
                    format!(
                        "the URL from {} is not an http(s) URL with a host",
                        s.origin()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(
                    field,
                    format!("the URL from {} is invalid: {e}", s.origin()),
                );
                None
            }
        }
    }

    /// A plain (non-secret) URL.
    pub fn plain_url(&mut self, field: &str, raw: &str) -> Option<Url> {
        match Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Some(u),
            _ => {
                self.problem(field, format!("{raw:?} is not an http(s) URL with a host"));
                None
            }
        }
    }

    /// `Ok(Resolved)` when no problem was found.
    pub fn finish<P>(mut self, provider: Option<P>) -> Result<Resolved<P>, Vec<(String, String)>> {
        self.scrub
            .sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        match provider {
            Some(provider) if self.problems.is_empty() => Ok(Resolved {
                provider,
                scrub: self.scrub,
            }),
            _ => {
                if self.problems.is_empty() {
                    self.problems
                        .push(("type".into(), "the channel cannot be built".into()));
                }
                Err(self.problems)
            }
        }
    }
}

/// A configured HTTP provider with its client (built once).
pub struct HttpChannel<P: Provider> {
    name: String,
    client: reqwest::Client,
    provider: P,
    scrub: Vec<SecretString>,
    timeout: Duration,
    rate_limit: Option<Vec<Quota>>,
}

impl<P: Provider> fmt::Debug for HttpChannel<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpChannel")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<P: Provider> HttpChannel<P> {
    /// Resolves `cfg` and builds the HTTP client (rustls with aws-lc-rs; redirects are not
    /// followed).
    pub fn new<C: ProviderConfig<Provider = P>>(name: &str, cfg: &C) -> Result<Self, NotifyError> {
        let invalid = |problems: Vec<(String, String)>| NotifyError::InvalidChannel {
            channel: name.to_string(),
            message: problems
                .into_iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let resolved = cfg.resolve().map_err(invalid)?;
        let timeout = cfg.timeout();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kube-herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                invalid(vec![(
                    "client".into(),
                    format!("cannot build the HTTP client: {}", e.without_url()),
                )])
            })?;
        Ok(Self {
            name: name.to_string(),
            client,
            provider: resolved.provider,
            scrub: resolved.scrub,
            timeout,
            rate_limit: cfg.rate_limit().map(<[Quota]>::to_vec),
        })
    }

    /// The provider (for tests).
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// One attempt at instant `now`.
    pub async fn attempt_at(&self, n: &Notification, now: Timestamp) -> DeliveryOutcome {
        let req = match self.provider.request(n, now) {
            Ok(r) => r,
            Err(e) => {
                return DeliveryOutcome::Dead {
                    error: self.scrubbed(&e),
                };
            }
        };
        let mut builder = self.client.post(req.url).headers(req.headers);
        if let Ok(v) = HeaderValue::from_str(&n.id) {
            builder = builder.header("idempotency-key", v);
        }
        builder = match &req.body {
            Body::Json(v) => builder
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(v.to_string()),
            Body::Form(pairs) => builder
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form_encode(pairs)),
        };
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return self.classify_error(e),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::webhook::parse_retry_after(v, now));
        let body = match response.text().await {
            Ok(b) => self.scrubbed(&b),
            Err(_) => String::new(),
        };
        self.provider.classify(&Answer {
            status,
            retry_after,
            body: &body,
        })
    }

    fn classify_error(&self, e: reqwest::Error) -> DeliveryOutcome {
        let is_builder = e.is_builder();
        let what = if e.is_timeout() {
            format!("timed out after {:?}", self.timeout)
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        };
        let error = self.scrubbed(&format!("{what}: {}", error_chain(&e.without_url())));
        if is_builder {
            DeliveryOutcome::Dead { error }
        } else {
            DeliveryOutcome::Failed {
                error,
                retry_after_secs: None,
            }
        }
    }

    fn scrubbed(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.scrub {
            if !s.expose().is_empty() {
                out = out.replace(s.expose(), "[redacted]");
            }
        }
        out
    }
}

impl<P: Provider> Channel for HttpChannel<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        self.provider.kind()
    }

    fn template_kind(&self) -> &'static str {
        self.provider.template_kind()
    }

    fn rate_limits(&self) -> Vec<Quota> {
        self.rate_limit
            .clone()
            .unwrap_or_else(|| self.kind().default_rate_limits())
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let outcome = self.attempt_at(n, Timestamp::now()).await;
            crate::channel::log_outcome(&self.name, self.kind(), n, &outcome);
            outcome
        })
    }
}

/// Builds the channel of `cfg` as a trait object.
pub fn build<C>(name: &str, cfg: &C) -> Result<Arc<dyn Channel>, NotifyError>
where
    C: ProviderConfig,
{
    Ok(Arc::new(HttpChannel::new(name, cfg)?))
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The shared HTTP classification (see the module docs).
pub fn classify_http(a: &Answer<'_>) -> DeliveryOutcome {
    if a.status.is_success() {
        return DeliveryOutcome::Delivered {
            status: Some(a.status.as_u16()),
        };
    }
    let error = http_error(a);
    let retryable = a.status == StatusCode::REQUEST_TIMEOUT
        || a.status == StatusCode::TOO_MANY_REQUESTS
        || a.status.is_server_error();
    if retryable {
        DeliveryOutcome::Failed {
            error,
            retry_after_secs: a.retry_after,
        }
    } else {
        DeliveryOutcome::Dead { error }
    }
}

/// `HTTP 404 Not Found: <excerpt of the body>`.
pub fn http_error(a: &Answer<'_>) -> String {
    let ex = excerpt(a.body);
    if ex.is_empty() {
        format!("HTTP {}", a.status)
    } else {
        format!("HTTP {}: {ex}", a.status)
    }
}

/// The first 300 characters of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(MAX_BODY_EXCERPT).collect();
    if one_line.chars().count() > MAX_BODY_EXCERPT {
        out.push_str("...");
    }
    out
}

/// A `retry_after` given in a JSON body as seconds (integer or float), rounded up, capped at
/// one day (a value in milliseconds by mistake would otherwise park the message for weeks).
pub fn json_seconds(v: &serde_json::Value) -> Option<u64> {
    let secs = v.as_f64()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some((secs.ceil() as u64).min(86_400))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// `title` and `body` joined by a blank line (providers with a single text field).
pub fn title_and_body(n: &Notification) -> String {
    if n.message.body.is_empty() {
        n.message.title.clone()
    } else {
        format!("{}\n\n{}", n.message.title, n.message.body)
    }
}

pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// HMAC-SHA256 of `msg` with `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::{Mac, SimpleHmac};
    // SimpleHmac accepts keys of any length, so this cannot fail.
    match SimpleHmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Standard base64 (with padding).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_seconds_rounds_up_and_caps() {
        assert_eq!(json_seconds(&serde_json::json!(1.2)), Some(2));
        assert_eq!(json_seconds(&serde_json::json!(3)), Some(3));
        assert_eq!(json_seconds(&serde_json::json!(9_000_000)), Some(86_400));
        assert_eq!(json_seconds(&serde_json::json!(-1)), None);
        assert_eq!(json_seconds(&serde_json::json!("5")), None);
    }

    #[test]
    fn hmac_known_answer() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"The quick brown fox jumps over the lazy dog",hashlib.sha256).hexdigest())'
        assert_eq!(
            hex::encode(hmac_sha256(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
