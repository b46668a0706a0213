//! YAML rules: every problem of every rule reported at once, each at the line and column of
//! the offending value; good rules parse; shape errors carry their position too.

use herald_classifier::{ClassifierConfig, RuleIssue, parse_rules};

const BAD: &str = r#"rules:
  - name: Good
    match: { kind: event, reason: BackOff }
  - name: "bad name!"
    match:
      kind: [event, deployment]
      reason_regex: "([unclosed"
      type: Warn
      namespaces: ["prod-[", "ok-*"]
      labels: { app: "{a,b" }
      message_regex: "*oops"
    threshold: { count: 0, window: 5 minutes ago }
    for: soon
    resolve_after: -5m
    severity: page
    group_by: [namespace, planet, namespace]
    summary: "{count} in {galaxy}"
  - name: Good
    match: {}
  - name: CrashLoopBackOff
    match: { reason: X }
"#;

fn at(issues: &[RuleIssue], line: u64) -> Vec<&RuleIssue> {
    issues.iter().filter(|i| i.line == line).collect()
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let issues = parse_rules(BAD).expect_err("bad rules");
    let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
    let expect = [
        (4, "a name is letters, digits"),
        (6, "unknown record kind \"deployment\""),
        (7, "invalid reason_regex"),
        (8, "type must be Normal or Warning"),
        (9, "invalid namespace glob \"prod-[\""),
        (10, "invalid glob for label \"app\""),
        (11, "invalid message_regex"),
        (12, "threshold.count must be at least 1"),
        (12, "threshold.window"),
        (13, "for:"),
        (14, "resolve_after:"),
        (15, "severity must be info, warning or critical"),
        (16, "unknown group_by key \"planet\""),
        (16, "group_by names \"namespace\" twice"),
        (17, "unknown summary placeholder {galaxy}"),
        (18, "defined twice"),
        (18, "match: must name at least one condition"),
        (20, "built-in rule's name"),
    ];
    for (line, needle) in expect {
        assert!(
            at(&issues, line).iter().any(|i| i.message.contains(needle)),
            "no issue containing {needle:?} on line {line}; got {text:#?}"
        );
        assert!(at(&issues, line).iter().all(|i| i.column > 0), "{text:#?}");
    }
    assert_eq!(issues.len(), expect.len(), "{text:#?}");
    // Columns point at the value: `kind:` on line 6 is at column 13.
    assert_eq!(at(&issues, 6)[0].column, 13, "{text:#?}");
}

#[test]
fn shape_errors_have_a_position() {
    let issues = parse_rules("rules:\n  - name: X\n    match: { kind: pod }\n    sevrity: info\n")
        .expect_err("unknown field");
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].line, 4, "{issues:?}");
    assert!(issues[0].message.contains("sevrity"), "{issues:?}");
}

#[test]
fn good_rules_parse_and_the_config_section_validates_them() {
    let rules = parse_rules(
        "rules:\n  - name: A\n    match: { kind: event, reason: [BackOff, Failed], namespaces: prod-* }\n    threshold: { count: 3, window: 10m }\n    for: 1m\n    group_by: [namespace, reason]\n    summary: \"{count}x {reason} in {namespace}\"\n",
    )
    .expect("valid");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].name.value, "A");
    let cfg: ClassifierConfig = serde_saphyr::from_str(
        "rules:\n  - name: B\n    match: { type: Warning }\n    severity: loud\n",
    )
    .expect("shape is fine");
    let issues = cfg.validate();
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].line, issues[0].column), (4, 15), "{issues:?}");
    assert!(parse_rules("").expect("empty file").is_empty());
}

/// The one issue of a rules file that does not have the expected shape.
fn shape_issue(text: &str) -> RuleIssue {
    let issues = parse_rules(text).expect_err("shape error");
    assert_eq!(issues.len(), 1, "{issues:?}");
    issues.into_iter().next().expect("one issue")
}

#[test]
fn shape_errors_say_what_was_expected() {
    // A string-or-list field given a mapping: not serde's "did not match any variant".
    let i = shape_issue("rules:\n  - name: X\n    match: { kind: event, reason: { a: 1 } }\n");
    assert_eq!((i.line, i.column), (3, 35), "{i}");
    assert!(
        i.message.contains("expected a string or a list of strings"),
        "{i}"
    );
    assert!(!i.message.contains("variant"), "{i}");
    // The message does not repeat the position the issue carries.
    assert!(!i.message.contains("line"), "{i}");

    // A list item that is not a string points at the item.
    let i = shape_issue("rules:\n  - name: X\n    match:\n      namespaces: [ok, { x: 1 }]\n");
    assert_eq!((i.line, i.column), (4, 24), "{i}");
    assert!(i.message.contains("expected a string"), "{i}");

    // The parser's own terse phrases are said as what was expected.
    for (text, line, want) in [
        (
            "rules:\n  - name: X\n    match: { kind: pod }\n    group_by: owner\n",
            4,
            "expected a list",
        ),
        (
            "rules:\n  - name: X\n    match: { kind: pod }\n    threshold: 5\n",
            4,
            "expected a mapping",
        ),
        (
            "rules:\n  - name: X\n    match: { min_count: lots }\n",
            3,
            "expected a whole number",
        ),
        (
            "rules:\n  - name: X\n    match: { kind: pod }\n    enabled: maybe\n",
            4,
            "expected true or false",
        ),
        (
            "rules:\n  - name: [X]\n    match: { kind: pod }\n",
            2,
            "expected a string",
        ),
    ] {
        let i = shape_issue(text);
        assert_eq!(i.line, line, "{i}");
        assert!(i.column > 0, "{i}");
        assert!(i.message.contains(want), "{want:?} in {i}");
    }
}

#[test]
fn scalars_are_text_in_string_or_list_fields() {
    let rules =
        parse_rules("rules:\n  - name: X\n    match: { reason: [5, true], involved_kind: Job }\n")
            .expect("valid");
    assert_eq!(
        rules[0].matcher.reason.as_ref().map(|r| r.value.values()),
        Some(vec!["5".to_string(), "true".to_string()])
    );
}

#[test]
fn a_shape_error_in_one_rule_does_not_hide_the_other_rules_problems() {
    let text = "\
# three rules, three problems
rules:
  - name: a
    match:
      reason: {x: 1}
    severity: warning
  - name: b
    match:
      reason: Evicted
    severity: bogus

  - name: c
    match:
      namespace: {y: 2}
";
    let issues = parse_rules(text).expect_err("bad rules");
    let lines: Vec<u64> = issues.iter().map(|i| i.line).collect();
    assert_eq!(issues.len(), 3, "{issues:#?}");
    assert_eq!(lines[0], 5);
    assert!(
        issues[0]
            .message
            .contains("expected a string or a list of strings")
    );
    assert_eq!(at(&issues, 14).len(), 1, "{issues:#?}");
    assert!(
        issues.iter().any(|i| i.message.contains("bogus")),
        "{issues:#?}"
    );
    // A syntax error in one rule: the other, good rule adds nothing.
    let broken = "rules:\n  - name: a\n    match: {kind: pod\n  - name: b\n    match: { kind: pod }\n    severity: info\n";
    let issues = parse_rules(broken).expect_err("broken");
    assert_eq!(issues.len(), 1, "{issues:#?}");
}
