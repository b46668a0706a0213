//! The user's configuration file (`herald.yaml`): its shape, loading and validation.
//!
//! Every section is deserialized in its own pass over the same text, so an error in `channels`
//! does not hide one in `subscriptions`; then semantic checks (unknown channels, bad globs, unset
//! secrets) run over whatever parsed. All problems are reported together, each with file, line
//! and column. The section types of the other crates (classifier rules, channels, subscriptions)
//! are owned by those crates and documented in docs/configuration.md.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use herald_classifier::ClassifierConfig;
use herald_notifiers::{ChannelConfig, DeliveryConfig, SubscriptionConfig};

/// The whole configuration of `herald run`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where the file was read from (relative paths in it are resolved against its directory).
    pub source: PathBuf,
    /// General settings: cluster name, data directory, query API, retention.
    pub general: General,
    /// What to watch.
    pub watch: WatchSection,
    /// Incident rules.
    pub classifier: ClassifierConfig,
    /// Notification channels by name.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Who gets told what, on which channels.
    pub subscriptions: Vec<SubscriptionConfig>,
    /// How the outbox retries (attempts, maximum age, backoff).
    pub delivery: DeliveryConfig,
    /// Template overrides: global, per channel, per subscription (compiled at load).
    pub templates: herald_templates::Overrides,
}

/// Top-level scalar settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Name of the cluster, shown in every message. Default `kubernetes`.
    pub cluster: String,
    /// Store directory, relative to the config file's directory. `--data-dir` (or
    /// `$HERALD_DATA_DIR`) overrides it; without either, `$XDG_DATA_HOME/kube-herald`, else
    /// `~/.local/share/kube-herald`.
    pub data_dir: Option<PathBuf>,
    /// Kubeconfig file, relative to the config file's directory; `--kubeconfig` overrides it.
    /// Without either: `$KUBECONFIG`, `~/.kube/config`, then the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use; default: the current context.
    pub context: Option<String>,
    /// Address of the read-only query API. Default `127.0.0.1:9464` (localhost only).
    pub listen: SocketAddr,
    /// How long records and resolved incidents are kept, e.g. `30d`. Default `30d`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for General {
    fn default() -> Self {
        Self {
            cluster: "kubernetes".to_string(),
            data_dir: None,
            kubeconfig: None,
            context: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The `watch:` section: which resources to watch, where, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSection {
    /// Watch core/v1 Events. Default true.
    pub events: bool,
    /// Watch Pods. Default true.
    pub pods: bool,
    /// Watch Nodes. Default true.
    pub nodes: bool,
    /// Only this namespace (Events and Pods); default: all namespaces.
    pub namespace: Option<String>,
    /// How state is listed at start-up and after `410 Expired`. Default `auto`.
    pub list: ListMode,
    /// Page size of `list: paginated`. Default 500.
    pub page_size: u32,
    /// The API Events are watched through: `core/v1` (default) or `events.k8s.io/v1`.
    pub events_api: EventsApiMode,
    /// Server-side label and field selectors per resource.
    pub selectors: WatchSelectors,
}

impl Default for WatchSection {
    fn default() -> Self {
        Self {
            events: true,
            pods: true,
            nodes: true,
            namespace: None,
            list: ListMode::Auto,
            page_size: 500,
            events_api: EventsApiMode::CoreV1,
            selectors: WatchSelectors::default(),
        }
    }
}

/// `watch.list`: how state is listed (see docs/watching.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListMode {
    /// A streaming list when the server supports it, else `cached`.
    #[default]
    Auto,
    /// Always a streaming list (`sendInitialEvents=true`).
    Streaming,
    /// A LIST with `resourceVersion=0`, from the watch cache.
    Cached,
    /// LIST pages from etcd (for servers without a watch cache).
    Paginated,
}

impl From<ListMode> for herald_watcher::ListStrategy {
    fn from(m: ListMode) -> Self {
        match m {
            ListMode::Auto => Self::Auto,
            ListMode::Streaming => Self::Streaming,
            ListMode::Cached => Self::Cached,
            ListMode::Paginated => Self::Paginated,
        }
    }
}

/// `watch.events_api`: the API Events are watched through (the same objects either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum EventsApiMode {
    /// `/api/v1/events`.
    #[default]
    #[serde(rename = "core/v1")]
    CoreV1,
    /// `/apis/events.k8s.io/v1/events`.
    #[serde(rename = "events.k8s.io/v1")]
    EventsV1,
}

impl From<EventsApiMode> for herald_watcher::EventsApi {
    fn from(m: EventsApiMode) -> Self {
        match m {
            EventsApiMode::CoreV1 => Self::CoreV1,
            EventsApiMode::EventsV1 => Self::EventsV1,
        }
    }
}

/// `watch.selectors`: per-resource selectors, sent to the API server with every list and
/// watch (the server filters; herald never sees what does not match).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSelectors {
    /// Selectors of Events, e.g. `fields: type=Warning`.
    pub events: SelectorConfig,
    /// Selectors of Pods, e.g. `labels: tier!=batch`.
    pub pods: SelectorConfig,
    /// Selectors of Nodes, e.g. `labels: node-role.kubernetes.io/worker`.
    pub nodes: SelectorConfig,
}

/// Label and field selectors of one resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    /// A label selector (`app=cart,tier!=cache`, `env in (prod,staging)`).
    pub labels: Option<String>,
    /// A field selector (`type=Warning`, `spec.nodeName=node-a`).
    pub fields: Option<String>,
}

impl WatchSection {
    /// The selectors in the watcher's form.
    pub fn watcher_selectors(
        &self,
    ) -> std::collections::BTreeMap<herald_watcher::Resource, herald_watcher::Selectors> {
        use herald_watcher::{Resource, Selectors};
        [
            (Resource::Events, &self.selectors.events),
            (Resource::Pods, &self.selectors.pods),
            (Resource::Nodes, &self.selectors.nodes),
        ]
        .into_iter()
        .filter(|(_, s)| s.labels.is_some() || s.fields.is_some())
        .map(|(r, s)| {
            (
                r,
                Selectors {
                    label_selector: s.labels.clone(),
                    field_selector: s.fields.clone(),
                },
            )
        })
        .collect()
    }
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration file (never empty).
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The keys allowed at the top level; anything else is reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TopLevelKeys {
    cluster: Option<serde::de::IgnoredAny>,
    data_dir: Option<serde::de::IgnoredAny>,
    kubeconfig: Option<serde::de::IgnoredAny>,
    context: Option<serde::de::IgnoredAny>,
    listen: Option<serde::de::IgnoredAny>,
    retention: Option<serde::de::IgnoredAny>,
    watch: Option<serde::de::IgnoredAny>,
    classifier: Option<serde::de::IgnoredAny>,
    channels: Option<serde::de::IgnoredAny>,
    subscriptions: Option<serde::de::IgnoredAny>,
    delivery: Option<serde::de::IgnoredAny>,
    templates: Option<serde::de::IgnoredAny>,
}

/// The scalar top-level keys, parsed on their own (other keys are ignored in this pass).
#[derive(Deserialize, Default)]
#[serde(default)]
struct GeneralPass {
    cluster: Option<String>,
    data_dir: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    listen: Option<SocketAddr>,
    #[serde(with = "humantime_serde")]
    retention: Option<Duration>,
}

/// Declares a struct that deserializes one top-level section and ignores the others, so each
/// section gets its own pass and its own error.
macro_rules! section_pass {
    ($name:ident, $field:ident: $ty:ty) => {
        #[derive(Deserialize)]
        struct $name {
            #[serde(default)]
            $field: Option<$ty>,
        }
    };
}
section_pass!(WatchPass, watch: WatchSection);
section_pass!(ClassifierPass, classifier: ClassifierConfig);
section_pass!(ChannelsPass, channels: BTreeMap<String, ChannelConfig>);
section_pass!(SubscriptionsPass, subscriptions: Vec<SubscriptionConfig>);
section_pass!(DeliveryPass, delivery: DeliveryConfig);
section_pass!(TemplatesPass, templates: herald_templates::Overrides);
section_pass!(ClassifierRulesPass, classifier: ClassifierRulesOnly);
section_pass!(ClassifierRuleFilesPass, classifier: ClassifierRuleFilesOnly);

/// The inline rules of a `classifier:` section that failed to parse as a whole (a bad duration
/// in a tuning, say), read on their own so that their problems are still reported.
#[derive(Deserialize)]
struct ClassifierRulesOnly {
    #[serde(default)]
    rules: Vec<herald_classifier::RuleSpec>,
}

/// The `rule_files` of a `classifier:` section that failed to parse as a whole.
#[derive(Deserialize)]
struct ClassifierRuleFilesOnly {
    #[serde(default)]
    rule_files: Vec<PathBuf>,
}

impl Config {
    /// Reads and validates `path`. Returns every problem found, not just the first.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigIssue {
                file: path.to_path_buf(),
                line: None,
                column: None,
                message: format!("cannot read config: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let mut issues = Vec::new();
        let mut cfg = Config {
            source: path.to_path_buf(),
            ..Config::default()
        };
        // An empty file is a valid (all-defaults) config.
        if text.trim().is_empty() {
            return Ok(cfg);
        }
        let pass = |issues: &mut Vec<ConfigIssue>, r: Result<(), serde_saphyr::Error>| {
            if let Err(e) = r {
                issues.push(yaml_issue(path, &e));
            }
        };
        if let Err(e) = serde_saphyr::from_str::<TopLevelKeys>(text) {
            let syntax = !e.to_string().contains("unknown field");
            issues.push(yaml_issue(path, &e));
            // A syntax error makes every other pass fail the same way: report it once.
            if syntax {
                return Err(ConfigErrors(issues));
            }
        }
        let r = serde_saphyr::from_str::<GeneralPass>(text).map(|g| {
            let d = General::default();
            cfg.general = General {
                cluster: g.cluster.unwrap_or(d.cluster),
                data_dir: g.data_dir,
                kubeconfig: g.kubeconfig,
                context: g.context,
                listen: g.listen.unwrap_or(d.listen),
                retention: g.retention.unwrap_or(d.retention),
            };
        });
        pass(&mut issues, r);
        let r = serde_saphyr::from_str::<WatchPass>(text)
            .map(|p| cfg.watch = p.watch.unwrap_or_default());
        pass(&mut issues, r);
        let r = serde_saphyr::from_str::<ClassifierPass>(text)
            .map(|p| cfg.classifier = p.classifier.unwrap_or_default());
        if r.is_err() {
            // The section's error is reported below; still check its rules and rule files,
            // each on its own, so one bad tuning does not hide the rules' problems.
            if let Ok(p) = serde_saphyr::from_str::<ClassifierRulesPass>(text) {
                cfg.classifier.rules = p.classifier.map(|c| c.rules).unwrap_or_default();
            }
            if let Ok(p) = serde_saphyr::from_str::<ClassifierRuleFilesPass>(text) {
                cfg.classifier.rule_files = p.classifier.map(|c| c.rule_files).unwrap_or_default();
            }
        }
        pass(&mut issues, r);
        let r = serde_saphyr::from_str::<ChannelsPass>(text)
            .map(|p| cfg.channels = p.channels.unwrap_or_default());
        pass(&mut issues, r);
        let r = serde_saphyr::from_str::<SubscriptionsPass>(text)
            .map(|p| cfg.subscriptions = p.subscriptions.unwrap_or_default());
        pass(&mut issues, r);
        let r = serde_saphyr::from_str::<DeliveryPass>(text)
            .map(|p| cfg.delivery = p.delivery.unwrap_or_default());
        pass(&mut issues, r);
        for (field, message) in cfg.delivery.problems() {
            let key = format!("delivery.{field}");
            let at = locate(text, &key);
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line: at.map(|(l, _)| l),
                column: at.map(|(_, c)| c),
                message: format!("{key}: {message}"),
            });
        }

        // Relative paths in the file are relative to the file, wherever herald runs from.
        let base = path.parent().unwrap_or(Path::new(""));
        issues.extend(load_classifier_rules(path, base, &mut cfg.classifier));
        for p in [&mut cfg.general.data_dir, &mut cfg.general.kubeconfig]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.general.retention.is_zero() {
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line: line_of_key(text, "retention"),
                column: Some(1),
                message: "retention must be longer than zero (e.g. 30d)".to_string(),
            });
        }
        if cfg.watch.page_size == 0 {
            let at = locate(text, "watch.page_size");
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line: at.map(|(l, _)| l),
                column: at.map(|(_, c)| c),
                message: "watch.page_size must be at least 1".to_string(),
            });
        }
        if cfg.general.cluster.trim().is_empty() {
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line: line_of_key(text, "cluster"),
                column: Some(1),
                message: "cluster must not be empty".to_string(),
            });
        }
        let r = serde_saphyr::from_str::<TemplatesPass>(text)
            .map(|p| cfg.templates = p.templates.unwrap_or_default());
        pass(&mut issues, r);
        issues.extend(check_templates(path, text, base, &mut cfg));
        for c in cfg.channels.values_mut() {
            c.relative_to(base);
        }
        for issue in herald_notifiers::validate(&cfg.channels, &cfg.subscriptions) {
            // Channel fields carry no YAML position; find their key in the text instead.
            let (line, column) = match issue.line {
                Some(line) => (Some(line), issue.column),
                None => locate(text, &issue.path).map_or((None, None), |(l, c)| (Some(l), Some(c))),
            };
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line,
                column,
                message: issue.message,
            });
        }

        issues.sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
        issues.dedup();
        if issues.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(issues))
        }
    }
}

/// The `templates:` section: resolves override files against the config's directory, checks
/// that scoped overrides name existing channels and subscriptions, and compiles everything
/// (every template problem, with the template's file, line and column).
fn check_templates(path: &Path, text: &str, base: &Path, cfg: &mut Config) -> Vec<ConfigIssue> {
    use herald_templates::{Renderer, TemplateError, TemplateSource};
    let mut issues = Vec::new();
    let t = &mut cfg.templates;
    let maps = std::iter::once(&mut t.global)
        .chain(t.channels.values_mut())
        .chain(t.subscriptions.values_mut());
    for map in maps {
        for source in map.values_mut() {
            if let TemplateSource::File(p) = source
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
    }
    let at = locate(text, "templates");
    let issue = |message: String| ConfigIssue {
        file: path.to_path_buf(),
        line: at.map(|(l, _)| l),
        column: at.map(|(_, c)| c),
        message,
    };
    for name in t.channels.keys() {
        if !cfg.channels.contains_key(name) {
            issues.push(issue(format!(
                "templates.channels.{name}: unknown channel {name:?}"
            )));
        }
    }
    for name in t.subscriptions.keys() {
        if !cfg.subscriptions.iter().any(|s| s.name.value == *name) {
            issues.push(issue(format!(
                "templates.subscriptions.{name}: unknown subscription {name:?}"
            )));
        }
    }
    match Renderer::with_overrides(t) {
        Ok(_) => {}
        Err(TemplateError::Compile { issues: found }) => {
            for ti in found {
                issues.push(match &ti.path {
                    // A template file: its own position.
                    Some(file) => ConfigIssue {
                        file: file.clone(),
                        line: ti.line.map(|l| l as u64),
                        column: ti.column.map(|c| c as u64),
                        message: ti.to_string(),
                    },
                    // Inline: the message names the line and column inside the template.
                    None => issue(format!("templates: {ti}")),
                });
            }
        }
        Err(e) => issues.push(issue(format!("templates: {e}"))),
    }
    issues
}

/// The `classifier:` rules: checks the inline `rules:` (positions in the config file), then
/// reads every `rule_files` entry (relative to the config's directory), checks it (positions
/// in that file) and appends its rules. A rule name used twice across the files is an error.
/// Returns every problem found.
pub fn load_classifier_rules(
    config: &Path,
    base: &Path,
    classifier: &mut ClassifierConfig,
) -> Vec<ConfigIssue> {
    let issue = |file: &Path, i: herald_classifier::RuleIssue| ConfigIssue {
        file: file.to_path_buf(),
        line: (i.line > 0).then_some(i.line),
        column: (i.column > 0).then_some(i.column),
        message: format!("classifier: {}", i.message),
    };
    let mut issues: Vec<ConfigIssue> = classifier
        .validate()
        .into_iter()
        .map(|i| issue(config, i))
        .collect();
    let mut names: BTreeMap<String, PathBuf> = classifier
        .rules
        .iter()
        .map(|r| (r.name.value.clone(), config.to_path_buf()))
        .collect();
    for file in &mut classifier.rule_files {
        if file.is_relative() {
            *file = base.join(&*file);
        }
    }
    for file in classifier.rule_files.clone() {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                issues.push(ConfigIssue {
                    file: config.to_path_buf(),
                    line: None,
                    column: None,
                    message: format!("classifier.rule_files: cannot read {}: {e}", file.display()),
                });
                continue;
            }
        };
        match herald_classifier::parse_rules(&text) {
            Ok(rules) => {
                for r in rules {
                    if let Some(first) = names.get(&r.name.value) {
                        issues.push(ConfigIssue {
                            file: file.clone(),
                            line: Some(r.name.referenced.line()),
                            column: Some(r.name.referenced.column()),
                            message: format!(
                                "classifier: rule {:?} is already defined in {}",
                                r.name.value,
                                first.display()
                            ),
                        });
                        continue;
                    }
                    names.insert(r.name.value.clone(), file.clone());
                    classifier.rules.push(r);
                }
            }
            Err(errs) => issues.extend(errs.into_iter().map(|i| issue(&file, i))),
        }
    }
    issues
}

fn yaml_issue(path: &Path, e: &serde_saphyr::Error) -> ConfigIssue {
    let loc = e.location();
    ConfigIssue {
        file: path.to_path_buf(),
        line: loc.map(|l| l.line()),
        column: loc.map(|l| l.column()),
        // Plain words ("expected a list"), without the position the issue already carries.
        message: herald_classifier::shape_message(e),
    }
}

/// Line and column (1-based) of the key at dotted `path` (`channels.hook.url`) in block-style
/// YAML: each segment is looked up among the keys indented deeper than its parent's, after
/// it. Segments with an index (`subscriptions[1]`) are not followed; the deepest key found
/// before one is returned.
fn locate(text: &str, path: &str) -> Option<(u64, u64)> {
    let mut found: Option<(u64, u64)> = None;
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    'segments: for segment in path.split('.') {
        if segment.contains('[') {
            break;
        }
        for (i, line) in text.lines().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                // Left the parent's block without finding the key.
                break 'segments;
            }
            let key = trimmed
                .split_once(':')
                .map(|(k, _)| k.trim().trim_matches(['"', '\'']));
            if key == Some(segment) {
                found = Some((i as u64 + 1, indent as u64 + 1));
                start = i + 1;
                parent_indent = Some(indent);
                continue 'segments;
            }
        }
        break;
    }
    found
}

fn line_of_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .position(|l| l.starts_with(&format!("{key}:")))
        .map(|i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_keys() {
        let text = "cluster: x\nchannels:\n  log:\n    type: console\n  hook:\n    type: webhook\n    # the URL\n    url: { env: HOOK }\nsubscriptions: []\n";
        assert_eq!(locate(text, "channels.hook.url"), Some((8, 5)));
        assert_eq!(locate(text, "channels.hook"), Some((5, 3)));
        // `url` of `log` does not exist: the deepest key found is returned.
        assert_eq!(locate(text, "channels.log.url"), Some((3, 3)));
        assert_eq!(locate(text, "subscriptions[0].channels"), None);
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "cluster: x\nretention: 0s\nwatch:\n  pods: maybe\nchannels:\n  hook:\n    type: webhook\n    url: { env: HERALD_TEST_SURELY_UNSET_VAR }\nsubscriptions:\n  - name: a\n    channels: [pager]\n";
        let errors = Config::parse(Path::new("h.yaml"), text).unwrap_err();
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].starts_with("h.yaml:2:1: retention"), "{lines:#?}");
        assert!(lines[1].starts_with("h.yaml:4:"), "{lines:#?}");
        assert!(
            lines[2].starts_with("h.yaml:8:5: channels.hook.url"),
            "{lines:#?}"
        );
        assert!(
            lines[3].starts_with("h.yaml:11:") && lines[3].contains("pager"),
            "{lines:#?}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let text = "kubeconfig: kc/config\ndata_dir: /abs/data\n";
        let cfg = Config::parse(Path::new("/etc/herald/herald.yaml"), text).unwrap();
        assert_eq!(
            cfg.general.kubeconfig,
            Some(PathBuf::from("/etc/herald/kc/config"))
        );
        assert_eq!(cfg.general.data_dir, Some(PathBuf::from("/abs/data")));
    }

    #[test]
    fn empty_file_means_defaults() {
        let cfg = Config::parse(Path::new("h.yaml"), "\n# nothing\n").unwrap();
        assert_eq!(cfg.general.cluster, "kubernetes");
        assert_eq!(cfg.general.listen, SocketAddr::from(([127, 0, 0, 1], 9464)));
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/herald.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The example reads its webhook URL from the environment; give it one.
        let text = text.replace(
            "{ env: HERALD_ONCALL_WEBHOOK_URL }",
            "{ value: \"https://hooks.example.invalid/x\" }",
        );
        let cfg = Config::parse(&path, &text).unwrap();
        assert_eq!(cfg.general.cluster, "prod-eu-1");
        assert_eq!(cfg.channels.len(), 2);
        assert_eq!(cfg.subscriptions.len(), 2);
    }
    #[test]
    fn classifier_rules_inline_and_in_files_report_every_problem_with_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("team.rules.yaml"),
            "rules:\n  - name: Fine\n    match: { reason: BackOff }\n  - name: Bad\n    match: { message_regex: \"(\" }\n    severity: loud\n",
        )
        .expect("write rules");
        std::fs::write(
            dir.path().join("dup.rules.yaml"),
            "rules:\n  - name: Dup\n    match: { reason: BackOff }\n",
        )
        .expect("write rules");
        let config = dir.path().join("herald.yaml");
        let text = "classifier:\n  rule_files: [team.rules.yaml, dup.rules.yaml, missing.yaml]\n  rules:\n    - name: Dup\n      match: { kind: pod }\n    - name: Inline\n      match: { kind: podz }\n";
        let errors = Config::parse(&config, text).expect_err("bad rules");
        let got: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        let rules_file = dir.path().join("team.rules.yaml");
        let want = [
            format!("{}:7:", config.display()),
            format!("{}:5:", rules_file.display()),
            format!("{}:6:", rules_file.display()),
            format!("{}:2:", dir.path().join("dup.rules.yaml").display()),
            "missing.yaml".to_string(),
        ];
        for w in &want {
            assert!(
                got.iter().any(|g| g.contains(w.as_str())),
                "{w} not in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        assert!(
            got.iter().any(|g| g.contains("already defined")),
            "{got:#?}"
        );

        // A good config with a rules file: the file's rules are appended.
        std::fs::write(
            dir.path().join("ok.rules.yaml"),
            "rules:\n  - name: FromFile\n    match: { reason: BackOff }\n",
        )
        .expect("write rules");
        let cfg =
            Config::parse(&config, "classifier:\n  rule_files: [ok.rules.yaml]\n").expect("valid");
        let names: Vec<&str> = cfg
            .classifier
            .rules
            .iter()
            .map(|r| r.name.value.as_str())
            .collect();
        assert_eq!(names, ["FromFile"]);
        assert_eq!(
            cfg.classifier.rule_files,
            [dir.path().join("ok.rules.yaml")]
        );
    }

    #[test]
    fn a_bad_tuning_does_not_hide_the_rules_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("team.rules.yaml"),
            "rules:\n  - name: Bad\n    match: { kind: evnt }\n",
        )
        .expect("write rules");
        let config = dir.path().join("herald.yaml");
        let text = "classifier:\n  node_not_ready: { grace: 10q }\n  rule_files: [team.rules.yaml]\n  rules:\n    - name: Inline\n      match: { kind: podz }\n";
        let errors = Config::parse(&config, text).expect_err("bad config");
        let got: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        let want = [
            format!("{}:2:", config.display()),
            format!("{}:6:", config.display()),
            format!("{}:3:", dir.path().join("team.rules.yaml").display()),
        ];
        for w in &want {
            assert!(
                got.iter().any(|g| g.contains(w.as_str())),
                "{w} not in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }
}
