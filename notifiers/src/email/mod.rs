//! The email channel: lettre over SMTP with TLS always on (STARTTLS required, or implicit TLS
//! on connect), AUTH PLAIN/LOGIN with the password from a [`Secret`], a connection pool, and a
//! multipart/alternative message (plain text + HTML) to several recipients.
//!
//! The message comes from the `email` template kind: its body is a JSON object
//! `{"text": "...", "html": "..."}` (built by `herald_templates` with serde_json); a body that
//! is not such an object is sent as plain text. The `Message-ID` is derived from the
//! notification id, so a repeated at-least-once delivery carries the same id.
//!
//! Classification of one attempt: an accepted message is delivered (with the SMTP code);
//! transient SMTP replies (4xx), timeouts, connection and TLS errors are retryable; permanent
//! replies (5xx, e.g. an unknown recipient or rejected credentials) are dead. The password
//! never appears in outcomes, logs or `Debug`.
//!
//! ```yaml
//! channels:
//!   oncall-mail:
//!     type: email
//!     host: smtp.example.com
//!     port: 587              # default: 587 for starttls, 465 for tls
//!     tls: starttls          # or `tls` (implicit TLS); plaintext is not offered
//!     ca_file: /etc/herald/smtp-ca.pem   # optional extra trusted CA (private CAs)
//!     username: herald@example.com
//!     password: { env: SMTP_PASSWORD }
//!     auth: [plain, login]   # optional; default both, PLAIN first
//!     from: "kube-herald <herald@example.com>"
//!     to: [oncall@example.com, sre@example.com]
//!     cc: []
//!     timeout: 30s
//!     pool_size: 4
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::channel::{BoxFuture, Channel, ChannelKind, Quota};
use crate::error::NotifyError;
use crate::secret::{Secret, SecretString};

/// How the connection is secured. There is deliberately no plaintext mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connect, then `STARTTLS`, which the server must offer (else the attempt fails).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// An SMTP AUTH mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMechanism {
    /// `AUTH PLAIN`.
    Plain,
    /// `AUTH LOGIN`.
    Login,
}

/// `type: email`: SMTP with STARTTLS or implicit TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name (also the name its certificate must carry). Required.
    pub host: String,
    /// Port. Default 587 (`starttls`) or 465 (`tls`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: EmailTls,
    /// A PEM file of extra CA certificates to trust, besides the system's (for private CAs).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// AUTH user name. Needs `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password, a secret (`{ env: VAR }` or `{ file: /path }`). Needs `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// AUTH mechanisms to try, in order. Default `[plain, login]`.
    #[serde(default)]
    pub auth: Option<Vec<AuthMechanism>>,
    /// Sender, `Name <address>` or `address`. Required.
    pub from: String,
    /// Recipients. Required, at least one.
    pub to: Vec<String>,
    /// Copy recipients. Default none.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Timeout of each SMTP command, e.g. `30s`. Default `30s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Most connections kept open to the server. Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Replaces the default budget (30 per minute), e.g. `[{ count: 10, per: 1m }]`.
    #[serde(default)]
    pub rate_limit: Option<Vec<Quota>>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_pool_size() -> u32 {
    4
}

/// A config with its secrets resolved and addresses parsed.
struct Resolved {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    password: Option<SecretString>,
    tls: TlsParameters,
}

impl EmailConfig {
    /// Every problem with this config, as `(field, message)` pairs, never with a secret.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self.resolve_all() {
            Ok(_) => Vec::new(),
            Err(p) => p,
        }
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
        })
    }

    fn resolve_all(&self) -> Result<Resolved, Vec<(String, String)>> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut bad = |field: &str, msg: String| problems.push((field.to_string(), msg));
        if self.host.trim().is_empty() {
            bad("host", "host must not be empty".into());
        }
        if self.port == Some(0) {
            bad("port", "port must be 1..65535".into());
        }
        let from = match self.from.parse::<Mailbox>() {
            Ok(m) => Some(m),
            Err(e) => {
                bad("from", format!("invalid address {:?}: {e}", self.from));
                None
            }
        };
        let mut parse_list = |field: &str, list: &[String]| {
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match a.parse::<Mailbox>() {
                    Ok(m) => out.push(m),
                    Err(e) => bad(
                        &format!("{field}[{i}]"),
                        format!("invalid address {a:?}: {e}"),
                    ),
                }
            }
            out
        };
        let to = parse_list("to", &self.to);
        let cc = parse_list("cc", &self.cc);
        if self.to.is_empty() {
            problems.push(("to".into(), "at least one recipient is needed".into()));
        }
        let password = match (&self.username, &self.password) {
            (Some(_), Some(p)) => match p.resolve() {
                Ok(p) => Some(p),
                Err(e) => {
                    problems.push(("password".into(), e.to_string()));
                    None
                }
            },
            (None, None) => None,
            (Some(_), None) => {
                problems.push((
                    "password".into(),
                    "username is set but password is not".into(),
                ));
                None
            }
            (None, Some(_)) => {
                problems.push((
                    "username".into(),
                    "password is set but username is not".into(),
                ));
                None
            }
        };
        if matches!(&self.auth, Some(a) if a.is_empty()) {
            problems.push((
                "auth".into(),
                "auth must list at least one mechanism".into(),
            ));
        }
        if self.timeout.is_zero() {
            problems.push(("timeout".into(), "timeout must be > 0".into()));
        }
        if self.pool_size == 0 {
            problems.push(("pool_size".into(), "pool_size must be at least 1".into()));
        }
        for (i, q) in self.rate_limit.iter().flatten().enumerate() {
            if let Some(p) = q.problem() {
                problems.push((format!("rate_limit[{i}]"), p));
            }
        }
        let mut tls = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            match std::fs::read(path) {
                Ok(pem) => match Certificate::from_pem(&pem) {
                    Ok(c) => tls = tls.add_root_certificate(c),
                    Err(e) => problems.push((
                        "ca_file".into(),
                        format!("{} is not a PEM certificate: {e}", path.display()),
                    )),
                },
                Err(e) => problems.push((
                    "ca_file".into(),
                    format!("cannot read {}: {e}", path.display()),
                )),
            }
        }
        let tls = match tls.build_rustls() {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(("tls".into(), format!("cannot set up TLS: {e}")));
                None
            }
        };
        match (from, tls) {
            (Some(from), Some(tls)) if problems.is_empty() => Ok(Resolved {
                from,
                to,
                cc,
                password,
                tls,
            }),
            _ => Err(problems),
        }
    }
}

/// An email channel with its pooled SMTP transport (built once).
pub struct EmailChannel {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    host: String,
    port: u16,
    tls: EmailTls,
    password: Option<SecretString>,
    rate_limit: Option<Vec<Quota>>,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.email.to_string())
            .field("recipients", &(self.to.len() + self.cc.len()))
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// Resolves the password, parses addresses and builds the pooled transport (no
    /// connection is made until the first send).
    pub fn new(name: &str, cfg: &EmailConfig) -> Result<Self, NotifyError> {
        let r = cfg
            .resolve_all()
            .map_err(|problems| NotifyError::InvalidChannel {
                channel: name.to_string(),
                message: problems
                    .into_iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        let port = cfg.port();
        let tls = match cfg.tls {
            EmailTls::Starttls => Tls::Required(r.tls),
            EmailTls::Tls => Tls::Wrapper(r.tls),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(cfg.timeout))
            .pool_config(PoolConfig::new().max_size(cfg.pool_size));
        if let (Some(user), Some(pass)) = (&cfg.username, &r.password) {
            b = b.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
            let mechanisms = cfg
                .auth
                .clone()
                .unwrap_or_else(|| vec![AuthMechanism::Plain, AuthMechanism::Login]);
            b = b.authentication(
                mechanisms
                    .into_iter()
                    .map(|m| match m {
                        AuthMechanism::Plain => Mechanism::Plain,
                        AuthMechanism::Login => Mechanism::Login,
                    })
                    .collect(),
            );
        }
        Ok(Self {
            name: name.to_string(),
            transport: b.build(),
            from: r.from,
            to: r.to,
            cc: r.cc,
            host: cfg.host.clone(),
            port,
            tls: cfg.tls,
            password: r.password,
            rate_limit: cfg.rate_limit.clone(),
        })
    }

    /// The MIME message for `n`.
    pub fn build_message(&self, n: &Notification) -> Result<lettre::Message, String> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(n.message.title.clone())
            .message_id(Some(message_id(&n.id)))
            .date(std::time::SystemTime::now());
        for m in &self.to {
            b = b.to(m.clone());
        }
        for m in &self.cc {
            b = b.cc(m.clone());
        }
        let (text, html) = split_body(&n.message.body);
        let built = match html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(text, html)),
            None => b.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            ),
        };
        built.map_err(|e| format!("cannot build the message: {e}"))
    }

    async fn attempt(&self, n: &Notification) -> DeliveryOutcome {
        let msg = match self.build_message(n) {
            Ok(m) => m,
            Err(error) => return DeliveryOutcome::Dead { error },
        };
        match self.transport.send(msg).await {
            Ok(resp) => DeliveryOutcome::Delivered {
                status: Some(u16::from(resp.code())),
            },
            Err(e) => self.classify(&e),
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> DeliveryOutcome {
        let mut error = format!("smtp {}:{}: {}", self.host, self.port, error_chain(e));
        if let Some(p) = &self.password
            && !p.expose().is_empty()
        {
            error = error.replace(p.expose(), "[redacted]");
        }
        if e.is_permanent() || e.is_client() {
            DeliveryOutcome::Dead { error }
        } else {
            DeliveryOutcome::Failed {
                error,
                retry_after_secs: None,
            }
        }
    }
}

/// `<sha256(id)[..32]@kube-herald>`: stable per notification, safe as a header.
fn message_id(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    format!("<{}@kube-herald>", &hex::encode(digest)[..32])
}

/// The text and HTML parts of an `email` body (`{"text": ..., "html": ...}`), or the whole
/// body as text.
pub fn split_body(body: &str) -> (String, Option<String>) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(body) {
        let text = m.get("text").and_then(|v| v.as_str());
        let html = m.get("html").and_then(|v| v.as_str());
        if text.is_some() || html.is_some() {
            return (
                text.unwrap_or_default().to_string(),
                html.map(str::to_string),
            );
        }
    }
    (body.to_string(), None)
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

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn template_kind(&self) -> &'static str {
        "email"
    }

    fn rate_limits(&self) -> Vec<Quota> {
        self.rate_limit
            .clone()
            .unwrap_or_else(|| self.kind().default_rate_limits())
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let outcome = self.attempt(n).await;
            crate::channel::log_outcome(&self.name, self.kind(), n, &outcome);
            outcome
        })
    }
}

#[cfg(test)]
mod tests;
