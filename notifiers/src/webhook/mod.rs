//! The generic JSON webhook channel: `POST <url>` with the whole [`Notification`] as the JSON
//! body (incident change included, plus the rendered message), `Content-Type:
//! application/json`, `Idempotency-Key: <notification id>` and any configured headers. With
//! `body:` the request body is that templated structure instead (placeholders such as
//! `{title}` and `{message}` substituted in its strings, then serialized with serde_json).
//!
//! Classification of one attempt: 2xx is delivered; 408, 429 and 5xx are retryable (with the
//! receiver's `Retry-After`, in seconds or as an HTTP date, when given); other statuses
//! (4xx, and 3xx since redirects are not followed) are permanent. Timeouts and connection
//! errors are retryable. The URL and secret header values never appear in outcomes or logs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::channel::{BoxFuture, Channel, ChannelKind};
use crate::error::NotifyError;
use crate::secret::{HeaderValueConfig, Secret, SecretString};

/// Longest part of a receiver's error response quoted in a delivery outcome.
const MAX_BODY_EXCERPT: usize = 200;

/// `type: webhook`: a generic JSON webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST, an `http` or `https` URL. A secret (`{ env: VAR }`, `{ file: /path }` or
    /// `{ value: "..." }`), since webhook URLs often embed a token. Required.
    pub url: Secret,
    /// Extra request headers. Values are plain strings or secrets (`Authorization: { env: TOKEN
    /// }`). `Content-Type` and `Idempotency-Key` are always set by herald. Default: none.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValueConfig>,
    /// Timeout of one attempt (connect, send, response), e.g. `10s`. Default `10s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Which rendered message goes into the body's `message` field: `text`, `markdown` or
    /// `html`. Default `text`.
    #[serde(default)]
    pub format: MessageFormat,
    /// A templated body instead of the whole notification: any YAML/JSON structure whose
    /// strings may contain placeholders (see [`PLACEHOLDERS`]), e.g.
    /// `body: { text: "{title}", details: "{message}", id: "{id}" }`. Values are substituted
    /// in one pass, then the structure is serialized with serde_json, so no message can break
    /// it. Default: the notification as JSON.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// The placeholders a templated webhook `body` may use.
pub const PLACEHOLDERS: [&str; 11] = [
    "title",
    "message",
    "id",
    "incident_id",
    "rule",
    "severity",
    "transition",
    "subject",
    "cluster",
    "namespace",
    "summary",
];

/// The value of placeholder `name` for `n` (`None` for an unknown name).
fn placeholder(n: &Notification, name: &str) -> Option<String> {
    let i = &n.change.incident;
    Some(match name {
        "title" => n.message.title.clone(),
        "message" => n.message.body.clone(),
        "id" => n.id.clone(),
        "incident_id" => i.id.to_string(),
        "rule" => i.rule.clone(),
        "severity" => i.severity.to_string(),
        "transition" => n.transition.as_str().to_string(),
        "subject" => i.subject.to_string(),
        "cluster" => i.cluster.clone(),
        "namespace" => i.namespace.clone().unwrap_or_default(),
        "summary" => i.summary.clone(),
        _ => return None,
    })
}

/// `template` with every `{name}` placeholder replaced (one pass; unknown names and lone
/// braces stay as they are).
fn substitute(template: &str, n: &Notification) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match tail
            .find('}')
            .and_then(|end| Some((end, placeholder(n, &tail[1..end])?)))
        {
            Some((end, value)) => {
                out.push_str(&value);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The templated body for `n`: every string (keys stay literal) substituted.
pub fn render_body(template: &serde_json::Value, n: &Notification) -> serde_json::Value {
    use serde_json::Value;
    match template {
        Value::String(s) => Value::String(substitute(s, n)),
        Value::Array(a) => Value::Array(a.iter().map(|v| render_body(v, n)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_body(v, n)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Placeholders used in `template` that do not exist.
fn unknown_placeholders(template: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match template {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find('{') {
                let tail = &rest[start + 1..];
                match tail.find('}') {
                    Some(end) => {
                        let name = &tail[..end];
                        let plausible = !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if plausible && !PLACEHOLDERS.contains(&name) {
                            out.push(name.to_string());
                        }
                        rest = &tail[end + 1..];
                    }
                    None => break,
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| unknown_placeholders(v, out)),
        Value::Object(m) => m.values().for_each(|v| unknown_placeholders(v, out)),
        _ => {}
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The template kind of a webhook's `message`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    /// Plain text.
    #[default]
    Text,
    /// Markdown (chat tools).
    Markdown,
    /// HTML.
    Html,
}

impl MessageFormat {
    /// The template kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageFormat::Text => "text",
            MessageFormat::Markdown => "markdown",
            MessageFormat::Html => "html",
        }
    }
}

/// A webhook config with its secrets resolved and checked; what [`WebhookChannel`] is built
/// from. Validation uses it too, so both report the same problems.
struct Resolved {
    url: Url,
    headers: HeaderMap,
    /// Secret strings to scrub from any error text (URL, its host, secret header values).
    scrub: Vec<SecretString>,
}

impl WebhookConfig {
    /// Every problem with this config, as `(field, message)` pairs; messages never contain a
    /// secret value.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self.resolve_all() {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    fn resolve_all(&self) -> Result<Resolved, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut scrub = Vec::new();
        let mut url = None;
        match self.url.resolve() {
            Ok(raw) => {
                match Url::parse(raw.expose()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                        // Webhook URLs often carry their token in the path or query.
                        let parts = [u.host_str(), Some(u.path()), u.query()];
                        for part in parts.into_iter().flatten().filter(|p| p.len() > 1) {
                            scrub.push(SecretString::new(part));
                        }
                        // A receiver may echo just the token: query values and long path
                        // segments are scrubbed on their own too.
                        for (_, v) in u.query_pairs().filter(|(_, v)| v.len() >= 6) {
                            scrub.push(SecretString::new(v.into_owned()));
                        }
                        for seg in u.path_segments().into_iter().flatten() {
                            if seg.len() >= 16 {
                                scrub.push(SecretString::new(seg));
                            }
                        }
                        url = Some(u);
                    }
                    Ok(_) => problems.push((
                        "url".to_string(),
                        format!(
                            "the URL from {} is not an http(s) URL with a host",
                            self.url.origin()
                        ),
                    )),
                    Err(e) => problems.push((
                        "url".to_string(),
                        format!("the URL from {} is invalid: {e}", self.url.origin()),
                    )),
                }
                scrub.push(raw);
            }
            Err(e) => problems.push(("url".to_string(), e.to_string())),
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            let header_name = match HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => h,
                Err(_) => {
                    problems.push((field, format!("invalid header name {name:?}")));
                    continue;
                }
            };
            if header_name == CONTENT_TYPE || header_name.as_str() == "idempotency-key" {
                problems.push((field, format!("header {name} is set by herald")));
                continue;
            }
            let raw = match value.resolve() {
                Ok(v) => v,
                Err(e) => {
                    problems.push((field, e.to_string()));
                    continue;
                }
            };
            match HeaderValue::from_str(raw.expose()) {
                Ok(mut v) => {
                    if value.is_secret() {
                        v.set_sensitive(true);
                        scrub.push(raw);
                    }
                    headers.insert(header_name, v);
                }
                Err(_) => problems.push((
                    field,
                    "header value contains characters not allowed in HTTP headers".to_string(),
                )),
            }
        }
        if self.timeout.is_zero() {
            problems.push(("timeout".to_string(), "timeout must be > 0".to_string()));
        }
        if let Some(body) = &self.body {
            let mut unknown = Vec::new();
            unknown_placeholders(body, &mut unknown);
            for name in unknown {
                problems.push((
                    "body".to_string(),
                    format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        PLACEHOLDERS.join(", ")
                    ),
                ));
            }
        }
        // Longest first, so the whole URL is redacted before its parts.
        scrub.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        match url {
            Some(url) if problems.is_empty() => Ok(Resolved {
                url,
                headers,
                scrub,
            }),
            _ => Err(problems),
        }
    }
}

/// A webhook channel with its HTTP client (built once).
pub struct WebhookChannel {
    name: String,
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    format: MessageFormat,
    timeout: Duration,
    body: Option<serde_json::Value>,
    scrub: Vec<SecretString>,
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("url", &"[redacted]")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// Resolves the config's secrets and builds the HTTP client (rustls; the process-wide
    /// crypto provider if one is installed, else aws-lc-rs; redirects are not followed).
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<Self, NotifyError> {
        let invalid = |message: String| NotifyError::InvalidChannel {
            channel: name.to_string(),
            message,
        };
        let resolved = cfg.resolve_all().map_err(|problems| {
            invalid(
                problems
                    .into_iter()
                    .map(|(field, msg)| format!("{field}: {msg}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kube-herald/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Self {
            name: name.to_string(),
            client,
            url: resolved.url,
            headers: resolved.headers,
            format: cfg.format,
            timeout: cfg.timeout,
            body: cfg.body.clone(),
            scrub: resolved.scrub,
        })
    }

    async fn attempt(&self, n: &Notification) -> DeliveryOutcome {
        let idempotency_key = match HeaderValue::from_str(&n.id) {
            Ok(v) => v,
            Err(_) => {
                return DeliveryOutcome::Dead {
                    error: "notification id is not a valid header value".to_string(),
                };
            }
        };
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", idempotency_key);
        let request = match &self.body {
            Some(template) => request.body(render_body(template, n).to_string()),
            None => request.json(n),
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.classify_error(e),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        if status.is_success() {
            return DeliveryOutcome::Delivered {
                status: Some(status.as_u16()),
            };
        }
        let excerpt = match response.text().await {
            Ok(body) => self.scrubbed(&excerpt(&body)),
            Err(_) => String::new(),
        };
        classify_status(status, retry_after, &excerpt)
    }

    fn classify_error(&self, e: reqwest::Error) -> DeliveryOutcome {
        let retryable = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
        let what = if e.is_timeout() {
            format!("timed out after {:?}", self.timeout)
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        };
        let error = self.scrubbed(&format!("{what}: {}", error_chain(&e.without_url())));
        if retryable {
            DeliveryOutcome::Failed {
                error,
                retry_after_secs: None,
            }
        } else {
            DeliveryOutcome::Dead { error }
        }
    }

    /// `text` with every secret (URL, host, secret header values) replaced by `[redacted]`.
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

/// The outcome for a non-2xx response.
fn classify_status(status: StatusCode, retry_after: Option<u64>, excerpt: &str) -> DeliveryOutcome {
    let mut error = format!("HTTP {status}");
    if !excerpt.is_empty() {
        error.push_str(": ");
        error.push_str(excerpt);
    }
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    if retryable {
        DeliveryOutcome::Failed {
            error,
            retry_after_secs: retry_after,
        }
    } else {
        if status.is_redirection() {
            error.push_str(" (redirects are not followed)");
        }
        DeliveryOutcome::Dead { error }
    }
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (seconds from `now`, at least
/// 0).
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let secs = when.duration_since(now).as_secs();
    Some(secs.max(0).unsigned_abs())
}

/// The first [`MAX_BODY_EXCERPT`] characters of a response body, on one line.
fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(MAX_BODY_EXCERPT).collect();
    if one_line.chars().count() > MAX_BODY_EXCERPT {
        out.push_str("...");
    }
    out
}

/// An error and its sources, joined with `: `.
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

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn template_kind(&self) -> &'static str {
        self.format.as_str()
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let outcome = self.attempt(n).await;
            match &outcome {
                DeliveryOutcome::Delivered { status } => {
                    tracing::debug!(channel = %self.name, notification = %n.id, status = ?status, "webhook delivered");
                }
                DeliveryOutcome::Failed {
                    error,
                    retry_after_secs,
                } => {
                    tracing::warn!(channel = %self.name, notification = %n.id, %error, retry_after_secs = ?retry_after_secs, "webhook attempt failed");
                }
                DeliveryOutcome::Dead { error } => {
                    tracing::warn!(channel = %self.name, notification = %n.id, %error, "webhook delivery failed permanently");
                }
            }
            outcome
        })
    }
}

#[cfg(test)]
mod receiver_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> WebhookConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn config_defaults() {
        let c = cfg("url: { value: 'http://127.0.0.1:9/hook' }");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.format, MessageFormat::Text);
        assert!(c.headers.is_empty());
        assert!(c.problems().is_empty());
        let c = cfg(
            "url: { value: 'http://x/' }\ntimeout: 250ms\nformat: markdown\nheaders: { X-Team: sre }",
        );
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.format, MessageFormat::Markdown);
        assert!(
            serde_saphyr::from_str::<WebhookConfig>("url: { value: 'http://x/' }\nbogus: 1")
                .is_err()
        );
    }

    #[test]
    fn problems_are_all_reported_without_secrets() {
        let c = cfg(
            "url: { value: 'ftp://s3cr3t.example/x' }\nheaders:\n  'Bad Header': x\n  content-type: text/plain\n  Authorization: { env: HERALD_TEST_UNSET_TOKEN }\n  X-Ok: \"a\\nb\"\ntimeout: 0s",
        );
        let problems = c.problems();
        let text = format!("{problems:?}");
        assert_eq!(problems.len(), 6, "{text}");
        assert!(
            text.contains("header content-type is set by herald"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("HERALD_TEST_UNSET_TOKEN"));
        let err = WebhookChannel::new("w", &c).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn debug_of_channel_hides_url_and_header_values() {
        let c = cfg(
            "url: { value: 'https://hooks.example/T0KEN' }\nheaders: { Authorization: { value: 'Bearer abc123' } }",
        );
        let ch = WebhookChannel::new("w", &c).unwrap();
        let dbg = format!("{ch:?} {c:?}");
        assert!(!dbg.contains("T0KEN") && !dbg.contains("abc123"), "{dbg}");
        assert_eq!(
            ch.scrubbed("POST https://hooks.example/T0KEN failed"),
            "POST [redacted] failed"
        );
    }

    #[test]
    fn status_classification() {
        let dead = |s: u16| {
            matches!(
                classify_status(StatusCode::from_u16(s).unwrap(), None, ""),
                DeliveryOutcome::Dead { .. }
            )
        };
        for s in [400, 401, 403, 404, 410, 422, 301, 302] {
            assert!(dead(s), "{s} should be permanent");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(!dead(s), "{s} should be retryable");
        }
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, Some(3), "slow down"),
            DeliveryOutcome::Failed {
                error: "HTTP 429 Too Many Requests: slow down".into(),
                retry_after_secs: Some(3)
            }
        );
    }

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("120", now), Some(120));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(60)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn excerpt_is_short_and_one_line() {
        assert_eq!(excerpt("a\n b"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).len(), MAX_BODY_EXCERPT + 3);
    }
}
