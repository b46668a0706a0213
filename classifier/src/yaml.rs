//! User rules written in YAML (`classifier.rules:` in the config, or `rules:` files): their
//! shape ([`RuleSpec`]), their validation (every problem of every rule at once, each with the
//! line and column of the offending value: [`RuleIssue`]) and their compilation into signal
//! rules. The matchers: record kind, reason (exact or regex), event type, involved object kind,
//! namespace globs, label globs, message regex, minimum Event count; then a count threshold
//! within a window, `for`, severity, grouping keys and a summary template. See docs/rules.md.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use herald_core::{NodeChange, ObjectKind, PodChange, Record, RecordBody, Severity};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::duration::{parse_duration, signed};
use crate::pods::PodIndex;
use crate::rules::signal::{GroupKey, Match, PLACEHOLDERS, Signal, SignalSpec};

/// One or several strings (`reason: BackOff` or `reason: [BackOff, Failed]`).
///
/// Read by hand rather than as an untagged enum, so that a value of another shape says what
/// was expected ("expected a string or a list of strings") instead of serde's "did not match
/// any variant". Plain scalars (`5`, `true`) are taken as their text, as for string fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// A list.
    Many(Vec<String>),
}

/// What [`OneOrMany`] accepts, for error messages.
const ONE_OR_MANY: &str = "a string or a list of strings";

/// A scalar read as its text (an item of a [`OneOrMany`] list, or the single value).
struct Text(String);

/// Visits a scalar as text; `expecting` names what the caller wanted.
struct TextVisitor(&'static str);

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(v))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
        Ok(Text(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor("a string (an item of a list of strings)"))
    }
}

/// Visits a [`OneOrMany`].
struct OneOrManyVisitor;

impl<'de> serde::de::Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(ONE_OR_MANY)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OneOrMany, E> {
        Ok(OneOrMany::One(v.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut values = Vec::new();
        while let Some(Text(v)) = seq.next_element()? {
            values.push(v);
        }
        Ok(OneOrMany::Many(values))
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor)
    }
}

impl OneOrMany {
    /// The values as a list.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A user rule.
///
/// ```yaml
/// - name: PaymentsBackOff
///   match:
///     kind: event
///     reason: BackOff
///     type: Warning
///     namespaces: ["payments-*"]
///   threshold: { count: 5, window: 10m }
///   severity: critical
///   group_by: [namespace, owner]
///   summary: "{count} back-offs of {subject}"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique rule name (letters, digits, `-`, `_`, `.`), not a built-in rule's name; the first
    /// part of the rule's fingerprints.
    pub name: Spanned<String>,
    /// Whether the rule runs. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Which records are occurrences.
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// Occurrences within a window that open an incident. Default: 1 (the first opens it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdSpec>,
    /// How long after the first occurrence before the incident opens. Default `0s`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub persist: Option<Spanned<String>>,
    /// Resolves after this long without an occurrence. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_after: Option<Spanned<String>>,
    /// `info`, `warning` (default) or `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Spanned<String>>,
    /// Identity of an incident: any of `cluster`, `namespace`, `node`, `pod`, `container`,
    /// `owner`, `object`, `reason`. Default `[owner]` (a pod's workload, else the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Spanned<Vec<Spanned<String>>>>,
    /// Summary template with `{placeholders}` (see docs/rules.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Spanned<String>>,
}

/// `match:` of a user rule. Every given field must hold; at least one must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchSpec {
    /// Record kinds: `event`, `pod`, `node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Spanned<OneOrMany>>,
    /// Reasons, exactly (an Event's reason; a pod record's reason such as `CrashLoopBackOff`,
    /// `OOMKilled`, `Evicted`; a node condition as `DiskPressure=True`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Spanned<OneOrMany>>,
    /// The reason matches this regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_regex: Option<Spanned<String>>,
    /// Event type: `Normal` or `Warning` (only Events have one).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<Spanned<String>>,
    /// Kind of the (involved) object: `Pod`, `Node`, `Job`, `Deployment`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub involved_kind: Option<Spanned<OneOrMany>>,
    /// The object's namespace matches one of these globs (`prod-*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Spanned<OneOrMany>>,
    /// The object's labels (pods and nodes; Events use their pod's): each value is a glob.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// The message matches this regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_regex: Option<Spanned<String>>,
    /// An Event's total `count` is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_count: Option<Spanned<u32>>,
}

/// `threshold:` of a user rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Occurrences (an Event's count delta counts) within `window` (at least 1).
    pub count: Spanned<u32>,
    /// The window, inclusive (`10m`).
    pub window: Spanned<String>,
}

/// A problem in a user rule, at a line and column of the YAML text (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleIssue {
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// What is wrong, naming the rule.
    pub message: String,
}

impl std::fmt::Display for RuleIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A rules file: `rules:` and a list of [`RuleSpec`]s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

/// Parses and validates the text of a rules file (`rules: [...]`): every problem of every rule
/// is reported, with its position. A shape error (a wrong type, an unknown field) stops the
/// YAML parser, so when the whole file does not parse, each rule of a block-style `rules:` list
/// is parsed on its own and each one's problems are reported; a syntax error, or a shape error
/// outside such a list, is reported alone.
pub fn parse_rules(text: &str) -> Result<Vec<RuleSpec>, Vec<RuleIssue>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: RulesFile = match serde_saphyr::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let whole = yaml_issue(&e);
            return Err(match parse_each_rule(text) {
                Some(issues) if !issues.is_empty() => issues,
                _ => vec![whole],
            });
        }
    };
    let issues = validate_rules(&file.rules);
    if issues.is_empty() {
        Ok(file.rules)
    } else {
        Err(issues)
    }
}

fn yaml_issue(e: &serde_saphyr::Error) -> RuleIssue {
    let loc = e.location();
    RuleIssue {
        line: loc.map_or(0, |l| l.line()),
        column: loc.map_or(0, |l| l.column()),
        message: shape_message(e),
    }
}

/// The problems of each item of a block-style top-level `rules:` list, each item parsed alone
/// (every other line blanked, so positions stay those of the file), then the value checks of
/// the items that parsed. `None` when the file has no such list of at least two items.
fn parse_each_rule(text: &str) -> Option<Vec<RuleIssue>> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let key = lines.iter().position(|l| l.trim_end() == "rules:")?;
    let mut starts = Vec::new();
    let mut end = lines.len();
    let mut item_indent = None;
    for (i, l) in lines.iter().enumerate().skip(key + 1) {
        if !content(l) {
            continue;
        }
        let n = indent(l);
        let dash = l.trim_start().starts_with('-');
        match item_indent {
            None if dash => {
                item_indent = Some(n);
                starts.push(i);
            }
            Some(m) if dash && n == m => starts.push(i),
            Some(m) if n < m || (n == m && !dash) => {
                end = i;
                break;
            }
            None => return None,
            Some(_) => {}
        }
    }
    if starts.len() < 2 {
        return None;
    }
    let mut issues = Vec::new();
    let mut rules = Vec::new();
    for (k, &a) in starts.iter().enumerate() {
        let b = starts.get(k + 1).copied().unwrap_or(end);
        let alone: Vec<&str> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == key || (a..b).contains(&i) {
                    *l
                } else {
                    ""
                }
            })
            .collect();
        match serde_saphyr::from_str::<RulesFile>(&alone.join("\n")) {
            Ok(f) => rules.extend(f.rules),
            Err(e) => issues.push(yaml_issue(&e)),
        }
    }
    issues.extend(validate_rules(&rules));
    issues.sort_by_key(|i| (i.line, i.column));
    Some(issues)
}

/// The message of a YAML syntax or shape error, for a reader who has the position already:
/// its first line, without the trailing "at line L, column C", and with the parser's terse
/// phrases ("expected sequence start") said as what was expected ("expected a list").
pub fn shape_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let mut line = text.lines().next().unwrap_or_default().trim().to_string();
    if let Some(i) = line.rfind(" at line ")
        && line[i + " at line ".len()..]
            .split_once(", column ")
            .is_some_and(|(l, c)| {
                l.chars().all(|ch| ch.is_ascii_digit()) && c.chars().all(|ch| ch.is_ascii_digit())
            })
    {
        line.truncate(i);
    }
    const PLAIN: [(&str, &str); 7] = [
        ("expected sequence start", "expected a list"),
        (
            "expected mapping start",
            "expected a mapping of keys to values",
        ),
        ("expected string scalar", "expected a string"),
        ("invalid boolean", "expected true or false"),
        ("invalid u32", "expected a whole number (0 to 4294967295)"),
        ("invalid u64", "expected a whole number"),
        ("invalid i64", "expected a whole number"),
    ];
    for (terse, plain) in PLAIN {
        if line.starts_with(terse) {
            line = format!("{plain}{}", &line[terse.len()..]);
            break;
        }
    }
    line
}

/// Every problem of `rules` (names, regexes, globs, durations, severities, group keys,
/// templates), in order of position.
pub fn validate_rules(rules: &[RuleSpec]) -> Vec<RuleIssue> {
    let mut issues = Vec::new();
    let mut names = BTreeSet::new();
    for r in rules {
        if let Err(mut e) = compile(r) {
            issues.append(&mut e);
        }
        if !names.insert(r.name.value.clone()) {
            issues.push(at(
                &r.name,
                format!(
                    "rule {:?}: a rule of this name is defined twice",
                    r.name.value
                ),
            ));
        }
    }
    issues.sort_by_key(|a| (a.line, a.column));
    issues
}

fn at<T>(s: &Spanned<T>, message: String) -> RuleIssue {
    RuleIssue {
        line: s.referenced.line(),
        column: s.referenced.column(),
        message,
    }
}

/// The compiled matcher of a user rule.
#[derive(Debug)]
struct YamlMatch {
    kinds: Vec<String>,
    reasons: Vec<String>,
    reason_regex: Option<Regex>,
    event_type: Option<String>,
    involved: Vec<String>,
    namespaces: Option<GlobSet>,
    labels: Vec<(String, GlobMatcher)>,
    message_regex: Option<Regex>,
    min_count: u32,
}

const KINDS: [&str; 3] = ["event", "pod", "node"];

/// A regex with a bounded compiled size (user input).
fn regex(s: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
}

/// Compiles one user rule into a signal rule, or every problem with it.
pub(crate) fn compile(r: &RuleSpec) -> Result<SignalSpec, Vec<RuleIssue>> {
    let mut issues = Vec::new();
    let name = r.name.value.as_str();
    let mut bad = |s: RuleIssue| issues.push(s);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bad(at(
            &r.name,
            format!("rule {name:?}: a name is letters, digits, '-', '_' and '.'"),
        ));
    }
    if crate::rules::BUILT_IN.contains(&name) {
        bad(at(
            &r.name,
            format!(
                "rule {name:?}: that is a built-in rule's name (tune it under classifier.{name} instead)"
            ),
        ));
    }
    let m = &r.matcher;
    let ctx = |what: &str| format!("rule {name:?}: {what}");
    let mut kinds = Vec::new();
    if let Some(k) = &m.kind {
        for v in k.value.values() {
            if KINDS.contains(&v.as_str()) {
                kinds.push(v);
            } else {
                bad(at(
                    k,
                    ctx(&format!("unknown record kind {v:?} (event, pod or node)")),
                ));
            }
        }
    }
    let reasons = m
        .reason
        .as_ref()
        .map(|r| r.value.values())
        .unwrap_or_default();
    let reason_regex = m.reason_regex.as_ref().and_then(|s| match regex(&s.value) {
        Ok(re) => Some(re),
        Err(e) => {
            bad(at(s, ctx(&format!("invalid reason_regex: {e}"))));
            None
        }
    });
    let message_regex = m
        .message_regex
        .as_ref()
        .and_then(|s| match regex(&s.value) {
            Ok(re) => Some(re),
            Err(e) => {
                bad(at(s, ctx(&format!("invalid message_regex: {e}"))));
                None
            }
        });
    let event_type = m.event_type.as_ref().and_then(|t| {
        if t.value == "Normal" || t.value == "Warning" {
            Some(t.value.clone())
        } else {
            bad(at(
                t,
                ctx(&format!(
                    "type must be Normal or Warning, not {:?}",
                    t.value
                )),
            ));
            None
        }
    });
    let namespaces = m.namespaces.as_ref().and_then(|n| {
        let mut b = GlobSetBuilder::new();
        let mut ok = true;
        for g in n.value.values() {
            match Glob::new(&g) {
                Ok(g) => {
                    b.add(g);
                }
                Err(e) => {
                    ok = false;
                    bad(at(
                        n,
                        ctx(&format!("invalid namespace glob {g:?}: {}", e.kind())),
                    ));
                }
            }
        }
        b.build().ok().filter(|_| ok)
    });
    let mut labels = Vec::new();
    for (k, v) in &m.labels {
        match Glob::new(&v.value) {
            Ok(g) => labels.push((k.clone(), g.compile_matcher())),
            Err(e) => bad(at(
                v,
                ctx(&format!("invalid glob for label {k:?}: {}", e.kind())),
            )),
        }
    }
    let min_count = m.min_count.as_ref().map_or(0, |c| c.value);
    let empty = m.kind.is_none()
        && m.reason.is_none()
        && m.reason_regex.is_none()
        && m.event_type.is_none()
        && m.involved_kind.is_none()
        && m.namespaces.is_none()
        && m.labels.is_empty()
        && m.message_regex.is_none()
        && m.min_count.is_none();
    if empty {
        bad(at(&r.name, ctx("match: must name at least one condition")));
    }
    let mut duration = |s: &Option<Spanned<String>>, field: &str, default: Duration| match s {
        None => default,
        Some(s) => match parse_duration(&s.value) {
            Ok(d) => d,
            Err(e) => {
                issues.push(at(s, ctx(&format!("{field}: {e}"))));
                default
            }
        },
    };
    let persist = duration(&r.persist, "for", Duration::ZERO);
    let quiet = duration(&r.resolve_after, "resolve_after", Duration::from_secs(600));
    let (threshold, window) = match &r.threshold {
        None => (1, Duration::from_secs(600)),
        Some(t) => {
            let window = duration(&Some(t.window.clone()), "threshold.window", Duration::ZERO);
            if t.count.value == 0 {
                issues.push(at(&t.count, ctx("threshold.count must be at least 1")));
            }
            (u64::from(t.count.value.max(1)), window)
        }
    };
    let severity = match &r.severity {
        None => Severity::Warning,
        Some(s) => s.value.parse().unwrap_or_else(|_| {
            issues.push(at(
                s,
                ctx(&format!(
                    "severity must be info, warning or critical, not {:?}",
                    s.value
                )),
            ));
            Severity::Warning
        }),
    };
    let mut group_by = Vec::new();
    match &r.group_by {
        None => group_by.push(GroupKey::Owner),
        Some(list) => {
            if list.value.is_empty() {
                issues.push(at(list, ctx("group_by must name at least one key")));
            }
            for k in &list.value {
                match GroupKey::ALL.iter().find(|(n, _)| *n == k.value) {
                    Some((_, key)) if group_by.contains(key) => {
                        issues.push(at(k, ctx(&format!("group_by names {:?} twice", k.value))));
                    }
                    Some((_, key)) => group_by.push(*key),
                    None => issues.push(at(
                        k,
                        ctx(&format!(
                            "unknown group_by key {:?} (one of {})",
                            k.value,
                            GroupKey::ALL.map(|(n, _)| n).join(", ")
                        )),
                    )),
                }
            }
        }
    }
    let summary = match &r.summary {
        None => "{rule}: {reason} on {subject} ({count}x): {message}".to_string(),
        Some(s) => {
            for p in placeholders(&s.value) {
                if !PLACEHOLDERS.contains(&p.as_str()) {
                    issues.push(at(
                        s,
                        ctx(&format!(
                            "unknown summary placeholder {{{p}}} (one of {})",
                            PLACEHOLDERS.join(", ")
                        )),
                    ));
                }
            }
            s.value.clone()
        }
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    let involved = m
        .involved_kind
        .as_ref()
        .map(|k| k.value.values())
        .unwrap_or_default();
    Ok(SignalSpec {
        name: name.to_string(),
        severity,
        escalation: Vec::new(),
        matcher: Box::new(YamlMatch {
            kinds,
            reasons,
            reason_regex,
            event_type,
            involved,
            namespaces,
            labels,
            message_regex,
            min_count,
        }),
        clear: None,
        threshold,
        window: signed(window),
        persist: signed(persist),
        quiet: Some(signed(quiet)),
        group_by,
        summary,
        inhibit: false,
        skip_deleting: false,
        distinct_objects: false,
        absorbed_by: &[],
    })
}

/// The `{names}` in a template.
fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// What a record says, for matching: reason, message, container, restarts, weight,
/// Event count.
struct Facts<'a> {
    reason: Cow<'a, str>,
    message: &'a str,
    container: Option<&'a str>,
    restarts: Option<u32>,
    weight: u64,
    count: u32,
    event_type: Option<&'a str>,
}

fn facts(record: &Record) -> Facts<'_> {
    let mut f = Facts {
        reason: Cow::Borrowed(""),
        message: "",
        container: None,
        restarts: None,
        weight: 1,
        count: 1,
        event_type: None,
    };
    match &record.body {
        RecordBody::Event(e) => {
            f.reason = Cow::Borrowed(&e.reason);
            f.message = &e.message;
            f.weight = u64::from(e.count_delta.max(1));
            f.count = e.count;
            f.event_type = Some(&e.event_type);
            f.container = e.field_path.as_deref().and_then(|p| {
                let s = p.find('{')? + 1;
                let end = p[s..].find('}')? + s;
                Some(&p[s..end])
            });
        }
        RecordBody::Pod(p) => match &p.change {
            PodChange::Created => f.reason = Cow::Borrowed("Created"),
            PodChange::ContainerTerminated {
                container,
                reason,
                message,
                restart_count,
                ..
            } => {
                f.reason = Cow::Borrowed(reason.as_deref().unwrap_or("Terminated"));
                f.message = message.as_deref().unwrap_or_default();
                f.container = Some(container);
                f.restarts = Some(*restart_count);
            }
            PodChange::ContainerWaiting {
                container,
                reason,
                message,
                restart_count,
                ..
            } => {
                f.reason = Cow::Borrowed(reason);
                f.message = message.as_deref().unwrap_or_default();
                f.container = Some(container);
                f.restarts = Some(*restart_count);
            }
            PodChange::PhaseChanged {
                to,
                reason,
                message,
                ..
            } => {
                f.reason = Cow::Borrowed(reason.as_deref().unwrap_or(to));
                f.message = message.as_deref().unwrap_or_default();
            }
            PodChange::Evicted { message } => {
                f.reason = Cow::Borrowed("Evicted");
                f.message = message;
            }
            PodChange::DeletionRequested => f.reason = Cow::Borrowed("DeletionRequested"),
            PodChange::Deleted => f.reason = Cow::Borrowed("Deleted"),
        },
        RecordBody::Node(n) => match &n.change {
            NodeChange::Created => f.reason = Cow::Borrowed("Created"),
            NodeChange::ConditionChanged {
                condition,
                to,
                message,
                ..
            } => {
                f.reason = Cow::Owned(format!("{condition}={to}"));
                f.message = message.as_deref().unwrap_or_default();
            }
            NodeChange::Rebooted { .. } => f.reason = Cow::Borrowed("Rebooted"),
            NodeChange::Deleted => f.reason = Cow::Borrowed("Deleted"),
        },
    }
    f
}

impl Match for YamlMatch {
    fn signal(&self, record: &Record, pods: &PodIndex) -> Option<Signal> {
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k == record.kind_name()) {
            return None;
        }
        let f = facts(record);
        if !self.reasons.is_empty() && !self.reasons.iter().any(|r| *r == f.reason) {
            return None;
        }
        if let Some(t) = &self.event_type
            && f.event_type != Some(t.as_str())
        {
            return None;
        }
        if !self.involved.is_empty()
            && !self
                .involved
                .iter()
                .any(|k| k == record.object.kind.as_str())
        {
            return None;
        }
        if let Some(ns) = &self.namespaces
            && !record
                .object
                .namespace
                .as_deref()
                .is_some_and(|n| ns.is_match(n))
        {
            return None;
        }
        if f.count < self.min_count {
            return None;
        }
        if let Some(re) = &self.reason_regex
            && !re.is_match(&f.reason)
        {
            return None;
        }
        if !self.labels.is_empty() {
            let own = &record.labels;
            let labels = if own.is_empty() && record.object.kind == ObjectKind::Pod {
                pods.get(&record.object.key())
                    .map(|p| &p.labels)
                    .unwrap_or(own)
            } else {
                own
            };
            if !self
                .labels
                .iter()
                .all(|(k, g)| labels.get(k).is_some_and(|v| g.is_match(v)))
            {
                return None;
            }
        }
        if let Some(re) = &self.message_regex
            && !re.is_match(f.message)
        {
            return None;
        }
        Some(Signal {
            reason: f.reason.into_owned(),
            container: f.container.map(str::to_string),
            restarts: f.restarts,
            weight: f.weight,
            message: f.message.to_string(),
        })
    }
}
