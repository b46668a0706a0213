//! The `channels:` and `subscriptions:` sections of the user's config file, and [`validate`],
//! which reports every semantic problem in them at once (the binary handles YAML syntax and
//! type errors, and adds the file name).
//!
//! ```yaml
//! channels:
//!   ops-console:
//!     type: console
//!   ops-webhook:
//!     type: webhook
//!     url: { env: OPS_WEBHOOK_URL }
//!     headers: { X-Team: sre }
//!     timeout: 10s
//! subscriptions:
//!   - name: sre-oncall
//!     match:
//!       rules: ["NodeNotReady", "OOM*"]
//!       min_severity: warning
//!       namespaces: ["shop", "kube-*"]
//!       cluster_scoped: true
//!     channels: [ops-console, ops-webhook]
//!     send_resolved: true
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use globset::{Glob, GlobSet, GlobSetBuilder};
use herald_core::Severity;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::chat::ProviderConfig;
use crate::chat::dingtalk::DingTalkConfig;
use crate::chat::discord::DiscordConfig;
use crate::chat::feishu::FeishuConfig;
use crate::chat::googlechat::GoogleChatConfig;
use crate::chat::mattermost::MattermostConfig;
use crate::chat::slack::SlackConfig;
use crate::chat::teams::TeamsConfig;
use crate::chat::telegram::TelegramConfig;
use crate::chat::wecom::WeComConfig;
use crate::console::ConsoleConfig;
use crate::email::EmailConfig;
use crate::sms::aliyun::AliyunSmsConfig;
use crate::sms::gateway::SmsGatewayConfig;
use crate::sms::twilio::TwilioConfig;
use crate::webhook::WebhookConfig;

/// One entry of `channels:` (the map key is the channel's name). Selected by `type:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelConfig {
    /// `type: console`: one line per notification on stdout.
    Console(ConsoleConfig),
    /// `type: webhook`: POST the notification as JSON to a URL.
    Webhook(WebhookConfig),
    /// `type: email`: SMTP with STARTTLS or implicit TLS.
    Email(EmailConfig),
    /// `type: slack`: Slack incoming webhook.
    Slack(SlackConfig),
    /// `type: teams`: Microsoft Teams Workflows webhook.
    Teams(TeamsConfig),
    /// `type: discord`: Discord webhook.
    Discord(DiscordConfig),
    /// `type: telegram`: Telegram Bot API.
    Telegram(TelegramConfig),
    /// `type: dingtalk`: DingTalk custom robot.
    #[serde(rename = "dingtalk")]
    DingTalk(DingTalkConfig),
    /// `type: wecom`: WeCom group robot.
    #[serde(rename = "wecom")]
    WeCom(WeComConfig),
    /// `type: feishu`: Feishu / Lark custom bot.
    Feishu(FeishuConfig),
    /// `type: googlechat`: Google Chat incoming webhook.
    #[serde(rename = "googlechat")]
    GoogleChat(GoogleChatConfig),
    /// `type: mattermost`: Mattermost incoming webhook.
    Mattermost(MattermostConfig),
    /// `type: twilio`: Twilio SMS.
    Twilio(TwilioConfig),
    /// `type: aliyun_sms`: Aliyun SMS (signed RPC request).
    #[serde(rename = "aliyun_sms")]
    AliyunSms(AliyunSmsConfig),
    /// `type: sms_gateway`: a generic HTTP SMS gateway with a templated request.
    #[serde(rename = "sms_gateway")]
    SmsGateway(SmsGatewayConfig),
}

impl ChannelConfig {
    /// Makes relative file paths in this channel (secret `file:`s, the email `ca_file`)
    /// relative to `base`, the config file's directory.
    pub fn relative_to(&mut self, base: &std::path::Path) {
        fn opt(s: &mut Option<crate::secret::Secret>, base: &std::path::Path) {
            if let Some(s) = s {
                s.relative_to(base);
            }
        }
        match self {
            ChannelConfig::Console(_) => {}
            ChannelConfig::Webhook(c) => {
                c.url.relative_to(base);
                for h in c.headers.values_mut() {
                    if let crate::secret::HeaderValueConfig::Secret(s) = h {
                        s.relative_to(base);
                    }
                }
            }
            ChannelConfig::Email(c) => {
                opt(&mut c.password, base);
                if let Some(p) = &mut c.ca_file
                    && p.is_relative()
                {
                    *p = base.join(&*p);
                }
            }
            ChannelConfig::Slack(c) => c.url.relative_to(base),
            ChannelConfig::Teams(c) => c.url.relative_to(base),
            ChannelConfig::Discord(c) => c.url.relative_to(base),
            ChannelConfig::Telegram(c) => c.bot_token.relative_to(base),
            ChannelConfig::DingTalk(c) => {
                c.url.relative_to(base);
                opt(&mut c.secret, base);
            }
            ChannelConfig::WeCom(c) => c.url.relative_to(base),
            ChannelConfig::Feishu(c) => {
                c.url.relative_to(base);
                opt(&mut c.secret, base);
            }
            ChannelConfig::GoogleChat(c) => c.url.relative_to(base),
            ChannelConfig::Mattermost(c) => c.url.relative_to(base),
            ChannelConfig::Twilio(c) => c.auth_token.relative_to(base),
            ChannelConfig::AliyunSms(c) => c.access_key_secret.relative_to(base),
            ChannelConfig::SmsGateway(c) => {
                c.url.relative_to(base);
                for h in c.headers.values_mut() {
                    if let crate::secret::HeaderValueConfig::Secret(s) = h {
                        s.relative_to(base);
                    }
                }
            }
        }
    }

    /// Every problem with this channel's config, as `(field, message)` pairs, never with a
    /// secret value.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            ChannelConfig::Console(_) => Vec::new(),
            ChannelConfig::Webhook(c) => c.problems(),
            ChannelConfig::Email(c) => c.problems(),
            ChannelConfig::Slack(c) => c.problems(),
            ChannelConfig::Teams(c) => c.problems(),
            ChannelConfig::Discord(c) => c.problems(),
            ChannelConfig::Telegram(c) => c.problems(),
            ChannelConfig::DingTalk(c) => c.problems(),
            ChannelConfig::WeCom(c) => c.problems(),
            ChannelConfig::Feishu(c) => c.problems(),
            ChannelConfig::GoogleChat(c) => c.problems(),
            ChannelConfig::Mattermost(c) => c.problems(),
            ChannelConfig::Twilio(c) => c.problems(),
            ChannelConfig::AliyunSms(c) => c.problems(),
            ChannelConfig::SmsGateway(c) => c.problems(),
        }
    }
}

/// One entry of `subscriptions:`: which incident transitions go to which channels.
///
/// Every subscription is evaluated independently: an incident that matches two subscriptions
/// produces one notification per (subscription, channel) pair, each with its own idempotency
/// key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique name; part of every notification's id, so renaming a subscription makes its
    /// pending notifications new ones. Required.
    pub name: Spanned<String>,
    /// Which incidents match. Default: all incidents.
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    /// Names of channels (keys of `channels:`) to notify. Required, at least one.
    pub channels: Vec<Spanned<String>>,
    /// Also notify when a matching incident resolves. Default `true`. Opened and updated
    /// transitions are always sent.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Who it is for (a person, a team, a rota), shown by `herald history`. Default: the
    /// subscription's name.
    #[serde(default)]
    pub who: Option<Spanned<String>>,
    /// Incident attributes whose values form a group (`rule`, `namespace`, `node`, `cluster`,
    /// `severity`, `subject`, or a label name): notifications of one group within
    /// `group_wait` go out as one message. Empty: no grouping. See docs/subscriptions.md.
    #[serde(default)]
    pub group_by: Vec<Spanned<String>>,
    /// How long the first notification of a new group waits for others. Default 0s.
    #[serde(default, with = "humantime_serde")]
    pub group_wait: Option<std::time::Duration>,
    /// Least time between two messages of one group. Default 0s.
    #[serde(default, with = "humantime_serde")]
    pub group_interval: Option<std::time::Duration>,
    /// Least time between two notifications of updates of one incident (opened and resolved
    /// are always sent). Default 0s: every update.
    #[serde(default, with = "humantime_serde")]
    pub repeat_interval: Option<std::time::Duration>,
    /// Weekly quiet hours in a named time zone: only urgent severities get through, the rest
    /// wait for a digest when the hours end.
    #[serde(default)]
    pub quiet_hours: Option<crate::quiet::QuietHoursConfig>,
}

impl SubscriptionConfig {
    /// A subscription to `channels` matching everything (for code and tests; config files are
    /// deserialized).
    pub fn new(name: &str, channels: &[&str]) -> Self {
        Self {
            name: unspanned(name),
            matcher: MatchConfig::default(),
            channels: channels.iter().map(|c| unspanned(*c)).collect(),
            send_resolved: true,
            who: None,
            group_by: Vec::new(),
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            quiet_hours: None,
        }
    }
}

/// The `match:` block of a subscription. All conditions must hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Globs over the incident's rule name (`NodeNotReady`, `OOM*`, `*Storm`). Empty or
    /// missing: every rule.
    pub rules: Vec<Spanned<String>>,
    /// Lowest severity that matches (`info`, `warning`, `critical`). Missing: every severity.
    pub min_severity: Option<Severity>,
    /// Globs over the incident's namespace (`shop`, `kube-*`). Empty or missing: every
    /// namespace. Applies only to incidents that have a namespace; see `cluster_scoped` for the
    /// others.
    pub namespaces: Vec<Spanned<String>>,
    /// Whether incidents without a namespace (node incidents, cluster-wide storms) match.
    /// `namespaces` is not consulted for them. Default `true`: set it to `false` for a team
    /// that only wants incidents in its own namespaces.
    pub cluster_scoped: bool,
    /// Label conditions: each label must be present with a value matching the glob
    /// (`app: cart`, `team: "pay*"`).
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Globs over the incident's node (`node-a`, `ip-10-*`); incidents without a node do not
    /// match when set.
    pub nodes: Vec<Spanned<String>>,
    /// Globs over the incident's cluster name (`prod-*`).
    pub clusters: Vec<Spanned<String>>,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            min_severity: None,
            namespaces: Vec::new(),
            cluster_scoped: true,
            labels: BTreeMap::new(),
            nodes: Vec::new(),
            clusters: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// A [`Spanned`] value with no source position.
pub fn unspanned<T>(value: impl Into<T>) -> Spanned<T> {
    Spanned::new(value.into(), Location::UNKNOWN, Location::UNKNOWN)
}

/// One problem found by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where in the config, e.g. `subscriptions[1].channels[0]` or `channels.ops-webhook.url`.
    pub path: String,
    /// 1-based line in the config file, when known.
    pub line: Option<u64>,
    /// 1-based column in the config file, when known.
    pub column: Option<u64>,
    /// What is wrong, starting with `path` (and the subscription's name), never containing a
    /// secret.
    pub message: String,
}

impl ConfigIssue {
    pub(crate) fn new(path: String, loc: Option<&Location>, what: impl fmt::Display) -> Self {
        let (line, column) = position(loc);
        Self {
            message: format!("{path}: {what}"),
            path,
            line,
            column,
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
            if let Some(col) = self.column {
                write!(f, "{col}:")?;
            }
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

fn position(loc: Option<&Location>) -> (Option<u64>, Option<u64>) {
    match loc {
        Some(l) if l.line() > 0 => (Some(l.line()), Some(l.column()).filter(|c| *c > 0)),
        _ => (None, None),
    }
}

/// Checks channels and subscriptions together and returns every problem (empty when all is
/// well): unknown or repeated channels in a subscription, subscriptions without channels,
/// invalid globs, empty or duplicate subscription names, and channel problems (secrets that
/// cannot be resolved, invalid URLs, headers and timeouts). Issues carry line and column when
/// the YAML position is known.
pub fn validate(
    channels: &BTreeMap<String, ChannelConfig>,
    subs: &[SubscriptionConfig],
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (name, cfg) in channels {
        if name.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "channels".to_string(),
                None,
                "channel names must not be empty",
            ));
        }
        for (field, problem) in cfg.problems() {
            issues.push(ConfigIssue::new(
                format!("channels.{name}.{field}"),
                None,
                problem,
            ));
        }
    }

    let mut seen_names: BTreeMap<&str, &Location> = BTreeMap::new();
    for (i, sub) in subs.iter().enumerate() {
        let name = sub.name.value.as_str();
        let at = |field: &str| format!("subscriptions[{i}] ({name:?}).{field}");
        if name.trim().is_empty() {
            issues.push(ConfigIssue::new(
                format!("subscriptions[{i}].name"),
                Some(&sub.name.referenced),
                "subscription names must not be empty",
            ));
        } else if let Some(first) = seen_names.get(name) {
            let first_at = match position(Some(first)) {
                (Some(line), _) => format!(" (first defined on line {line})"),
                _ => String::new(),
            };
            issues.push(ConfigIssue::new(
                at("name"),
                Some(&sub.name.referenced),
                format!("duplicate subscription name {name:?}{first_at}"),
            ));
        } else {
            seen_names.insert(name, &sub.name.referenced);
        }

        if sub.channels.is_empty() {
            issues.push(ConfigIssue::new(
                at("channels"),
                Some(&sub.name.referenced),
                "a subscription needs at least one channel",
            ));
        }
        let mut seen_channels = BTreeSet::new();
        for (j, ch) in sub.channels.iter().enumerate() {
            let path = at(&format!("channels[{j}]"));
            if !channels.contains_key(&ch.value) {
                let known = if channels.is_empty() {
                    "no channels are defined".to_string()
                } else {
                    let names: Vec<&str> = channels.keys().map(String::as_str).collect();
                    format!("defined channels: {}", names.join(", "))
                };
                issues.push(ConfigIssue::new(
                    path,
                    Some(&ch.referenced),
                    format!("unknown channel {:?} ({known})", ch.value),
                ));
            } else if !seen_channels.insert(ch.value.as_str()) {
                issues.push(ConfigIssue::new(
                    path,
                    Some(&ch.referenced),
                    format!("channel {:?} is listed twice", ch.value),
                ));
            }
        }

        issues.extend(crate::grouping::subscription_issues(i, sub));
        for (field, globs) in [
            ("rules", &sub.matcher.rules),
            ("namespaces", &sub.matcher.namespaces),
            ("nodes", &sub.matcher.nodes),
            ("clusters", &sub.matcher.clusters),
        ] {
            for (j, g) in globs.iter().enumerate() {
                if let Err(e) = Glob::new(&g.value) {
                    issues.push(ConfigIssue::new(
                        at(&format!("match.{field}[{j}]")),
                        Some(&g.referenced),
                        format!("invalid glob: {e}"),
                    ));
                }
            }
        }
    }
    issues
}

/// Compiles globs; `Ok(None)` when there are none (match everything). The error is the index
/// of the first bad pattern and the glob compiler's message.
pub(crate) fn compile_globs(
    patterns: &[Spanned<String>],
) -> Result<Option<GlobSet>, (usize, String)> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        b.add(Glob::new(&p.value).map_err(|e| (i, e.to_string()))?);
    }
    b.build().map(Some).map_err(|e| (0, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        channels: BTreeMap<String, ChannelConfig>,
        #[serde(default)]
        subscriptions: Vec<SubscriptionConfig>,
    }

    fn parse(yaml: &str) -> File {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn parses_the_documented_example_with_defaults() {
        let f = parse(
            r#"
channels:
  ops-console:
    type: console
  ops-webhook:
    type: webhook
    url: { env: OPS_WEBHOOK_URL }
    headers: { X-Team: sre }
    timeout: 10s
subscriptions:
  - name: sre-oncall
    match:
      rules: ["NodeNotReady", "OOM*"]
      min_severity: warning
      namespaces: ["shop", "kube-*"]
    channels: [ops-console, ops-webhook]
  - name: everything
    channels: [ops-console]
    send_resolved: false
"#,
        );
        assert!(matches!(
            f.channels["ops-console"],
            ChannelConfig::Console(_)
        ));
        assert!(matches!(
            f.channels["ops-webhook"],
            ChannelConfig::Webhook(_)
        ));
        let s = &f.subscriptions[0];
        assert_eq!(s.name.value, "sre-oncall");
        assert_eq!(s.name.referenced.line(), 11);
        assert_eq!(s.matcher.min_severity, Some(Severity::Warning));
        assert!(s.matcher.cluster_scoped);
        assert!(s.send_resolved);
        assert_eq!(s.channels[1].value, "ops-webhook");
        assert_eq!(
            (
                s.channels[1].referenced.line(),
                s.channels[1].referenced.column()
            ),
            (16, 29)
        );
        let e = &f.subscriptions[1];
        assert_eq!(e.matcher, MatchConfig::default());
        assert!(!e.send_resolved);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for yaml in [
            "channels: { c: { type: console, colour: red } }",
            "channels: { c: { type: webhook, url: { env: X }, method: PUT } }",
            "channels: { c: { type: carrier-pigeon } }",
            "subscriptions: [ { name: a, channels: [c], matchers: {} } ]",
            "subscriptions: [ { name: a, channels: [c], match: { rule: [x] } } ]",
            "subscriptions: [ { name: a, channels: [c], match: { min_severity: loud } } ]",
        ] {
            assert!(serde_saphyr::from_str::<File>(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn validate_reports_every_issue_at_once() {
        let f = parse(
            r#"
channels:
  console:
    type: console
  hook:
    type: webhook
    url: { env: HERALD_TEST_DEFINITELY_UNSET }
    headers:
      Authorization: { file: /nonexistent/herald-token }
subscriptions:
  - name: a
    match:
      rules: ["Node[NotReady"]
    channels: [console, pager, console]
  - name: a
    channels: []
  - name: b
    match:
      namespaces: ["ok", "{unclosed"]
    channels: [hook]
"#,
        );
        let issues = validate(&f.channels, &f.subscriptions);
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        let all = text.join("\n");
        assert_eq!(issues.len(), 8, "{all}");
        let find = |needle: &str| {
            issues
                .iter()
                .find(|i| i.message.contains(needle))
                .unwrap_or_else(|| panic!("no issue containing {needle:?} in\n{all}"))
        };
        let unknown = find("unknown channel \"pager\"");
        assert_eq!(unknown.path, "subscriptions[0] (\"a\").channels[1]");
        assert_eq!((unknown.line, unknown.column), (Some(14), Some(25)));
        assert!(unknown.message.contains("defined channels: console, hook"));
        assert_eq!(find("listed twice").line, Some(14));
        let dup = find("duplicate subscription name");
        assert_eq!(dup.line, Some(15));
        assert!(
            dup.message.contains("first defined on line 11"),
            "{}",
            dup.message
        );
        assert_eq!(find("at least one channel").line, Some(15));
        assert_eq!(find("match.rules[0]").line, Some(13));
        assert_eq!(find("match.namespaces[1]").line, Some(19));
        let env = find("HERALD_TEST_DEFINITELY_UNSET");
        assert_eq!(env.path, "channels.hook.url");
        assert_eq!(env.line, None);
        assert_eq!(
            find("/nonexistent/herald-token").path,
            "channels.hook.headers.Authorization"
        );
    }

    #[test]
    fn valid_config_has_no_issues() {
        let f = parse(
            "channels: { c: { type: console } }\nsubscriptions: [ { name: a, channels: [c] }, { name: b, channels: [c] } ]",
        );
        assert_eq!(validate(&f.channels, &f.subscriptions), vec![]);
    }

    #[test]
    fn relative_files_resolve_against_the_config_directory() {
        let mut f = parse(
            "channels:\n  m: { type: email, host: h, from: a@b.c, to: [d@e.f], ca_file: ca.pem, username: u, password: { file: pw } }\n  d: { type: dingtalk, url: { file: /abs/url }, secret: { file: s/secret } }\n",
        );
        for c in f.channels.values_mut() {
            c.relative_to(std::path::Path::new("/etc/herald"));
        }
        let ChannelConfig::Email(m) = &f.channels["m"] else {
            panic!("email");
        };
        assert_eq!(
            m.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/herald/ca.pem"))
        );
        assert_eq!(
            m.password,
            Some(crate::Secret::File("/etc/herald/pw".into()))
        );
        let ChannelConfig::DingTalk(d) = &f.channels["d"] else {
            panic!("dingtalk");
        };
        assert_eq!(d.url, crate::Secret::File("/abs/url".into()));
        assert_eq!(
            d.secret,
            Some(crate::Secret::File("/etc/herald/s/secret".into()))
        );
    }

    #[test]
    fn issue_display_has_position() {
        let i = ConfigIssue::new("x".into(), None, "bad");
        assert_eq!(i.to_string(), "x: bad");
        let i = ConfigIssue {
            line: Some(3),
            column: Some(7),
            ..i
        };
        assert_eq!(i.to_string(), "3:7: x: bad");
    }
}
