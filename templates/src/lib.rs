//! Default tera templates and rendering for kube-herald messages: turns an incident transition
//! into a [`Message`](herald_core::Message) (title + body) for a kind of channel. Sends nothing.
//!
//! - [`renderer`]: [`Renderer`], compiling the defaults and user overrides once at load.
//! - [`context`]: what templates can use (`incident`, `transition`, `at`, helpers).
//! - [`error`]: [`TemplateError`], naming the template, line and column.
//!
//! The default templates live in `templates/templates/*.tera` and are embedded in the binary.

pub mod context;
pub mod error;
pub mod renderer;

pub use context::{MAX_LISTED_OBJECTS, context_value};
pub use error::{TemplateError, TemplateIssue};
pub use renderer::{COMPOSITE_KINDS, KINDS, Overrides, Renderer, TemplateSource};
