//! The `classifier:` configuration section as users write it (YAML via serde-saphyr): defaults,
//! durations, rejection of typos and of impossible values, and the README's documented shape.

use std::num::NonZeroU32;
use std::time::Duration;

use herald_classifier::{ClassifierConfig, ClassifierError, parse_duration};
use herald_core::Severity;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    classifier: ClassifierConfig,
}

fn parse(yaml: &str) -> Result<ClassifierConfig, String> {
    serde_saphyr::from_str::<File>(yaml)
        .map(|f| f.classifier)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults() {
    let d = ClassifierConfig::default();
    assert!(d.node_not_ready.enabled);
    assert_eq!(d.node_not_ready.grace, Duration::from_secs(30));
    assert_eq!(d.node_not_ready.severity, Severity::Critical);
    assert!(d.oom_killed.enabled);
    assert_eq!(d.oom_killed.severity, Severity::Warning);
    assert_eq!(d.oom_killed.resolve_after, Duration::from_secs(600));
    assert!(d.eviction_storm.enabled);
    assert_eq!(d.eviction_storm.threshold.get(), 5);
    assert_eq!(d.eviction_storm.window, Duration::from_secs(120));
    assert_eq!(d.eviction_storm.quiet, Duration::from_secs(300));
    assert_eq!(d.eviction_storm.severity, Severity::Critical);
    assert_eq!(d.update_interval, Duration::from_secs(10));
    assert_eq!(parse("classifier: {}\n"), Ok(d.clone()));
    assert_eq!(parse("classifier:\n  oom_killed: {}\n"), Ok(d));
}

#[test]
fn partial_sections_keep_the_other_defaults() {
    let cfg = parse(
        "classifier:\n  node_not_ready:\n    grace: 2m\n  eviction_storm:\n    threshold: 3\n    quiet: 90s\n  update_interval: 1m 30s\n",
    )
    .expect("valid");
    assert_eq!(cfg.node_not_ready.grace, Duration::from_secs(120));
    assert_eq!(cfg.node_not_ready.severity, Severity::Critical);
    assert_eq!(cfg.eviction_storm.threshold, NonZeroU32::new(3).expect("3"));
    assert_eq!(cfg.eviction_storm.quiet, Duration::from_secs(90));
    assert_eq!(cfg.eviction_storm.window, Duration::from_secs(120));
    assert_eq!(cfg.update_interval, Duration::from_secs(90));
    let off =
        parse("classifier:\n  oom_killed: { enabled: false, severity: info }\n").expect("valid");
    assert!(!off.oom_killed.enabled);
    assert_eq!(off.oom_killed.severity, Severity::Info);
}

#[test]
fn typos_and_bad_values_are_rejected_with_a_reason() {
    let e = parse("classifier:\n  node_not_ready:\n    grace_period: 30s\n").expect_err("typo");
    assert!(e.contains("grace_period"), "{e}");
    let e = parse("classifier:\n  eviction_storm:\n    threshold: 0\n").expect_err("zero");
    assert!(e.contains("nonzero") || e.contains("zero"), "{e}");
    let e = parse("classifier:\n  oom_killed:\n    resolve_after: soon\n").expect_err("duration");
    assert!(e.contains("soon"), "{e}");
    let e = parse("classifier:\n  eviction_storm:\n    window: -2m\n").expect_err("negative");
    assert!(e.contains("negative"), "{e}");
    let e = parse("classifier:\n  oom_killed:\n    severity: page\n").expect_err("severity");
    assert!(e.contains("page"), "{e}");
    assert!(matches!(
        parse_duration("10 fortnights"),
        Err(ClassifierError::InvalidDuration { .. })
    ));
}

#[test]
fn serializes_durations_as_written() {
    let v = serde_json::to_value(ClassifierConfig::default()).expect("serialize");
    assert_eq!(v["node_not_ready"]["grace"], "30s");
    assert_eq!(v["oom_killed"]["resolve_after"], "10m");
    assert_eq!(v["eviction_storm"]["window"], "2m");
    assert_eq!(v["update_interval"], "10s");
    let back: ClassifierConfig = serde_json::from_value(v).expect("round trip");
    assert_eq!(back, ClassifierConfig::default());
}

#[test]
fn readme_documents_the_defaults() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```yaml\nclassifier:")
        .expect("README has the config block")
        + 8;
    let len = readme[start..].find("```").expect("block ends");
    let yaml = &readme[start..start + len];
    assert_eq!(
        parse(yaml),
        Ok(ClassifierConfig::default()),
        "README block:\n{yaml}"
    );
}
