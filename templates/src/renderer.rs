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

/// Compiled templates.
#[derive(Clone)]
pub struct Renderer {
    tera: Tera,
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

    /// Compiles the defaults, then `overrides` (template name -> source). Reports every broken
    /// override at once ([`TemplateError::Compile`]), or the first unknown name or unreadable
    /// file.
    pub fn new(overrides: &BTreeMap<String, TemplateSource>) -> Result<Self, TemplateError> {
        let mut tera = Tera::new();
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
        for (name, source) in overrides {
            if !known.contains(name) {
                return Err(TemplateError::UnknownTemplate {
                    name: name.clone(),
                    known,
                });
            }
            let (text, path) = match source {
                TemplateSource::Inline(text) => (text.clone(), None),
                TemplateSource::File(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
                            name: name.clone(),
                            path: path.clone(),
                            source,
                        })?;
                    (text, Some(path.clone()))
                }
            };
            // On error tera keeps the previous (default) template, so later overrides are
            // still checked against a complete set.
            if let Err(e) = tera.add_raw_template(name, &text) {
                issues.push(issue(name, path, &e));
            }
        }
        if !issues.is_empty() {
            return Err(TemplateError::Compile { issues });
        }
        Ok(Self { tera })
    }

    /// Renders `change` for a channel of `kind` (one of [`KINDS`] or [`COMPOSITE_KINDS`]).
    pub fn render(&self, kind: &str, change: &IncidentChange) -> Result<Message, TemplateError> {
        if kind == "email" {
            let text = self.render("text", change)?;
            let html = self.render("html", change)?;
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
        let render = |name: String| {
            self.tera
                .render(&name, &ctx)
                .map_err(|e| TemplateError::Render(issue(&name, None, &e)))
        };
        let title = render(format!("{kind}.title"))?;
        let body = render(format!("{kind}.body"))?;
        Ok(Message {
            title: title.split_whitespace().collect::<Vec<_>>().join(" "),
            body: body.trim().to_string(),
        })
    }
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
