//! Template errors. Compile errors are collected (every broken override is reported at once),
//! each naming the template, its file when it came from one, and the 1-based line and column.

use std::fmt;
use std::path::PathBuf;

/// One problem in one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateIssue {
    /// Template name, e.g. `text.body`.
    pub template: String,
    /// The file it was read from, for overrides given as files.
    pub path: Option<PathBuf>,
    /// 1-based line in the template, when known.
    pub line: Option<usize>,
    /// 1-based column in the template, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template {}", self.template)?;
        if let Some(path) = &self.path {
            write!(f, " ({})", path.display())?;
        }
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything that can go wrong loading or rendering templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override for a template name that does not exist.
    #[error("unknown template {name:?} (known templates: {})", known.join(", "))]
    UnknownTemplate {
        /// The name given.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// An override file that could not be read.
    #[error("template {name}: cannot read {}: {source}", path.display())]
    Read {
        /// Template name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Templates that do not compile (syntax errors, unknown filters, ...), all of them.
    #[error("{}", issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Compile {
        /// One entry per problem.
        issues: Vec<TemplateIssue>,
    },
    /// A message kind that is not one of `console`, `text`, `markdown`, `html`, `slack`, `sms`,
    /// `email`.
    #[error(
        "unknown message kind {0:?} (expected console, text, markdown, html, slack, sms or email)"
    )]
    UnknownKind(String),
    /// A template failed while rendering (for example it used a variable that does not exist).
    #[error("{0}")]
    Render(TemplateIssue),
}
