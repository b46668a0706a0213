//! Pure rules over kube-herald records producing incidents: injected time (every call takes
//! `now`), no I/O. The service feeds each stored [`Record`](herald_core::Record) to
//! [`Classifier::apply`], calls [`Classifier::tick`] regularly, and hands the returned
//! [`IncidentChange`](herald_core::IncidentChange)s to the store and the notifiers.
//!
//! Built-in rules (one module each under `rules/`): `NodeNotReady`, `OOMKilled`,
//! `EvictionStorm`, configured by [`ClassifierConfig`] (the `classifier:` config section).
//! See `classifier/README.md` for the behaviour of each rule.

mod book;
mod classifier;
mod config;
mod duration;
mod error;
mod pods;
mod rules;
mod yaml;

pub use classifier::Classifier;
pub use config::{
    ClassifierConfig, EvictionStormConfig, NodeNotReadyConfig, OomKilledConfig, RuleTuning,
};
pub use duration::parse_duration;
pub use error::ClassifierError;
pub use rules::signal::GroupKey;
pub use yaml::{
    MatchSpec, OneOrMany, RuleIssue, RuleSpec, ThresholdSpec, parse_rules, shape_message,
    validate_rules,
};
