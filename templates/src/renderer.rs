//! The [`Renderer`]: compiles the default templates plus user overrides once, then renders an
//! [`IncidentChange`] into a [`Message`] for a kind of channel.
//!
//! Each kind (`console`, `text`, `markdown`, `html`, `slack`, `sms`) has two templates,
//! `<kind>.title` and `<kind>.body`; every one can be overridden by name. Titles are squeezed
//! onto one line (they become email subjects and chat headlines). Only `html.body` is
//! HTML-escaped automatically; `slack.body` escapes with the `slack_escape` filter (`&`, `<`,
//! `>` as Slack's mrkdwn requires). Structured (JSON) payloads are never built from templates
//! but serialized by serde.
//!
//! One more kind is composite: `email` renders `text.title` as the subject and a body that is
//! the JSON object `{"text": <text.body>, "html": <html.body>}` (serialized with serde_json, so
//! no message can break it), which the email channel sends as multipart/alternative.

use std::collections::BTreeMap;
use std::path::PathBuf;

use herald_core::{IncidentChange, Message};
use serde::Deserialize;
use tera::{Context, ErrorKind, Kwargs, State, Tera};

use crate::context::context_value;
use crate::error::{TemplateError, TemplateIssue};

/// The message kinds that have their own templates.
pub const KINDS: [&str; 6] = ["console", "text", "markdown", "html", "slack", "sms"];

/// Kinds made of other kinds' templates (`email`: text + HTML), also accepted by
/// [`Renderer::render`].
pub const COMPOSITE_KINDS: [&str; 1] = ["email"];

const TITLE: &str = include_str!("../templates/title.tera");
const DEFAULT_BODIES: [(&str, &str); 6] = [
    ("console", include_str!("../templates/console.tera")),
    ("text", include_str!("../templates/text.tera")),
    ("markdown", include_str!("../templates/markdown.tera")),
    ("html", include_str!("../templates/html.tera")),
    ("slack", include_str!("../templates/slack.tera")),
    ("sms", include_str!("../templates/sms.tera")),
];

/// Where a user's template override comes from. In YAML: `{ file: /path }` or
/// `{ inline: "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSource {
    /// Read from this file at load.
    File(PathBuf),
    /// Given inline.
    Inline(String),
}

/// Template overrides from the config's `templates:` section: global ones by template name,
/// and per channel / per subscription ones (which win, in that order: subscription, channel,
/// global, default).
///
/// ```yaml
/// templates:
///   text.body: { file: templates/text.tera }
///   channels:
///     ops-slack:
///       slack.body: { inline: "*{{ incident.summary | slack_escape }}*" }
///   subscriptions:
///     sre-oncall:
///       sms.body: { inline: "{{ incident.rule }} {{ subject }}" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Overrides {
    /// Per channel name.
    #[serde(default)]
    pub channels: BTreeMap<String, BTreeMap<String, TemplateSource>>,
    /// Per subscription name.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, BTreeMap<String, TemplateSource>>,
    /// Global overrides by template name (`text.body`, ...).
    #[serde(flatten)]
    pub global: BTreeMap<String, TemplateSource>,
}

/// Compiled templates.
#[derive(Clone)]
pub struct Renderer {
    tera: Tera,
    /// Every compiled template name, scoped ones included.
    names: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.tera.get_template_names().collect();
        names.sort_unstable();
        f.debug_struct("Renderer")
            .field("templates", &names)
            .finish()
    }
}

impl Renderer {
    /// Every template name (`console.title`, `console.body`, ..., `html.body`).
    pub fn template_names() -> Vec<String> {
        KINDS
            .iter()
            .flat_map(|k| [format!("{k}.title"), format!("{k}.body")])
            .collect()
    }

    /// The default source of the template called `name`.
    pub fn default_source(name: &str) -> Option<&'static str> {
        let (kind, part) = name.split_once('.')?;
        let body = DEFAULT_BODIES.iter().find(|(k, _)| *k == kind)?.1;
        match part {
            "title" => Some(TITLE),
            "body" => Some(body),
            _ => None,
        }
    }

    /// Compiles the defaults, then `overrides` (template name -> source). Reports every
    /// problem at once ([`TemplateError::Compile`]): templates that do not compile, unknown
    /// names, unreadable files.
    pub fn new(overrides: &BTreeMap<String, TemplateSource>) -> Result<Self, TemplateError> {
        Self::with_overrides(&Overrides {
            global: overrides.clone(),
            ..Overrides::default()
        })
    }

    /// Compiles the defaults and every override: global ones, then per channel and per
    /// subscription (see [`Overrides`]). Reports every problem at once
    /// ([`TemplateError::Compile`]); each issue names the template (`text.body`,
    /// `channel ops-slack: slack.body`, ...), its file, line and column.
    pub fn with_overrides(overrides: &Overrides) -> Result<Self, TemplateError> {
        let mut tera = Tera::new();
        // By suffix, so `html.body` is escaped in every scope (`channel:x/html.body`).
        tera.autoescape_on(["html.body"]);
        tera.register_filter("md_escape", md_escape);
        tera.register_filter("slack_escape", slack_escape);

        let defaults: Vec<(String, &str)> = Self::template_names()
            .into_iter()
            .filter_map(|n| Self::default_source(&n).map(|s| (n, s)))
            .collect();
        tera.add_raw_templates(defaults.iter().map(|(n, s)| (n.as_str(), *s)))
            .map_err(|e| TemplateError::Compile {
                issues: vec![issue("defaults", None, &e)],
            })?;

        let known = Self::template_names();
        let mut issues = Vec::new();
        let scopes = std::iter::once((String::new(), "", &overrides.global))
            .chain(
                overrides
                    .channels
                    .iter()
                    .map(|(c, m)| (scoped("channel", c, ""), "channel ", m)),
            )
            .chain(
                overrides
                    .subscriptions
                    .iter()
                    .map(|(s, m)| (scoped("subscription", s, ""), "subscription ", m)),
            );
        for (prefix, what, map) in scopes {
            let label = |name: &str| {
                if prefix.is_empty() {
                    name.to_string()
                } else {
                    let owner = prefix
                        .trim_end_matches('/')
                        .split_once(':')
                        .map_or("", |(_, o)| o);
                    format!("{what}{owner}: {name}")
                }
            };
            for (name, source) in map {
                if !known.contains(name) {
                    issues.push(TemplateIssue {
                        template: label(name),
                        path: None,
                        line: None,
                        column: None,
                        message: format!(
                            "unknown template (known templates: {})",
                            known.join(", ")
                        ),
                    });
                    continue;
                }
                let (text, path) = match source {
                    TemplateSource::Inline(text) => (text.clone(), None),
                    TemplateSource::File(path) => match std::fs::read_to_string(path) {
                        Ok(text) => (text, Some(path.clone())),
                        Err(e) => {
                            issues.push(TemplateIssue {
                                template: label(name),
                                path: Some(path.clone()),
                                line: None,
                                column: None,
                                message: format!("cannot read the file: {e}"),
                            });
                            continue;
                        }
                    },
                };
                let full = format!("{prefix}{name}");
                // On error tera keeps the previous template, so later overrides are still
                // checked against a complete set.
                if let Err(e) = tera.add_raw_template(&full, &text) {
                    issues.push(issue(&label(name), path, &e));
                }
            }
        }
        if !issues.is_empty() {
            return Err(TemplateError::Compile { issues });
        }
        let names = tera.get_template_names().map(str::to_string).collect();
        Ok(Self { tera, names })
    }

    /// Renders `change` for `channel` of `kind` on behalf of `subscription`: each template
    /// comes from the subscription's overrides, else the channel's, else the global ones or
    /// the defaults.
    pub fn render_for(
        &self,
        subscription: &str,
        channel: &str,
        kind: &str,
        change: &IncidentChange,
    ) -> Result<Message, TemplateError> {
        let scopes = [
            scoped("subscription", subscription, ""),
            scoped("channel", channel, ""),
        ];
        self.render_scoped(&scopes, kind, change)
    }

    /// Renders `change` for a channel of `kind` (one of [`KINDS`] or [`COMPOSITE_KINDS`])
    /// with the global templates.
    pub fn render(&self, kind: &str, change: &IncidentChange) -> Result<Message, TemplateError> {
        self.render_scoped(&[], kind, change)
    }

    fn render_scoped(
        &self,
        scopes: &[String],
        kind: &str,
        change: &IncidentChange,
    ) -> Result<Message, TemplateError> {
        if kind == "email" {
            let text = self.render_scoped(scopes, "text", change)?;
            let html = self.render_scoped(scopes, "html", change)?;
            let body = serde_json::json!({ "text": text.body, "html": html.body });
            return Ok(Message {
                title: text.title,
                body: body.to_string(),
            });
        }
        if !KINDS.contains(&kind) {
            return Err(TemplateError::UnknownKind(kind.to_string()));
        }
        let ctx = Context::from_serialize(&context_value(change))
            .map_err(|e| TemplateError::Render(issue("context", None, &e)))?;
        let render = |part: &str| {
            let base = format!("{kind}.{part}");
            let name = scopes
                .iter()
                .map(|s| format!("{s}{base}"))
                .find(|n| self.names.contains(n))
                .unwrap_or(base);
            self.tera
                .render(&name, &ctx)
                .map_err(|e| TemplateError::Render(issue(&name, None, &e)))
        };
        let title = render("title")?;
        let body = render("body")?;
        Ok(Message {
            title: title.split_whitespace().collect::<Vec<_>>().join(" "),
            body: body.trim().to_string(),
        })
    }
}

/// The tera name prefix of a scope: `channel:NAME/`.
fn scoped(scope: &str, owner: &str, name: &str) -> String {
    format!("{scope}:{owner}/{name}")
}

/// Escapes Markdown punctuation so names and messages render literally.
fn md_escape(val: &str, _: Kwargs, _: &State) -> String {
    let mut out = String::with_capacity(val.len());
    for c in val.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes what Slack's mrkdwn treats as control characters (`&`, `<`, `>`).
fn slack_escape(val: &str, _: Kwargs, _: &State) -> String {
    val.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A [`TemplateIssue`] from a tera error, with line and column when tera gives them.
fn issue(template: &str, path: Option<PathBuf>, e: &tera::Error) -> TemplateIssue {
    let (line, column, message) = match e.kind() {
        ErrorKind::SyntaxError(r) | ErrorKind::RenderingError(r) => (
            Some(r.span().start_line),
            Some(r.span().start_col + 1),
            r.message().to_string(),
        ),
        // Validation errors (unknown filter, test, function) come as a rendered report:
        // "error: MESSAGE\n --> NAME:LINE:COLUMN\n...".
        ErrorKind::Msg(report) => {
            parse_report(report).unwrap_or_else(|| (None, None, report.to_string()))
        }
        _ => (None, None, e.to_string()),
    };
    TemplateIssue {
        template: template.to_string(),
        path,
        line,
        column,
        message,
    }
}

fn parse_report(report: &str) -> Option<(Option<usize>, Option<usize>, String)> {
    let mut lines = report.lines();
    let message = lines.next()?.strip_prefix("error: ")?.to_string();
    let locus = lines.next()?.trim().strip_prefix("--> ")?;
    let mut parts = locus.rsplitn(3, ':');
    let column = parts.next()?.parse().ok();
    let line = parts.next()?.parse().ok();
    Some((line, column, message))
}
