//! The default templates against realistic incident changes, overrides, errors and escaping.
#![allow(clippy::unwrap_used)] // a test crate: panicking on bad fixtures is the point

use std::collections::BTreeMap;

use herald_core::{
    Incident, IncidentChange, IncidentId, IncidentState, ObjectRef, Severity, Timestamp, Transition,
};
use herald_templates::{Renderer, TemplateError, TemplateSource};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn incident(rule: &str, subject: ObjectRef, severity: Severity, summary: &str) -> Incident {
    let first = ts("2025-06-01T12:00:00Z");
    let fingerprint = format!("{rule}/{}", subject.key());
    Incident {
        id: IncidentId::new(&fingerprint, first),
        fingerprint,
        rule: rule.into(),
        severity,
        state: IncidentState::Open,
        cluster: "prod".into(),
        namespace: subject.namespace.clone(),
        node: None,
        summary: summary.into(),
        subject,
        first_seen: first,
        last_seen: ts("2025-06-01T12:00:40Z"),
        resolved_at: None,
        count: 3,
        objects: vec![],
        records: vec![],
        labels: BTreeMap::new(),
    }
}

fn node_not_ready(t: Transition) -> IncidentChange {
    let mut i = incident(
        "NodeNotReady",
        ObjectRef::node("node-b"),
        Severity::Critical,
        "Node node-b is NotReady (NodeStatusUnknown)",
    );
    i.node = Some("node-b".into());
    i.objects = vec![ObjectRef::node("node-b")];
    let mut at = ts("2025-06-01T12:00:40Z");
    if t == Transition::Resolved {
        at = ts("2025-06-01T12:04:52Z");
        i.state = IncidentState::Resolved;
        i.resolved_at = Some(at);
    }
    IncidentChange {
        transition: t,
        at,
        incident: i,
    }
}

fn oom_killed() -> IncidentChange {
    let mut i = incident(
        "OOMKilled",
        ObjectRef::pod("shop", "cart-7d9f-x2"),
        Severity::Warning,
        "Container cart in pod shop/cart-7d9f-x2 was OOMKilled (exit code 137, restarts 4)",
    );
    i.node = Some("node-a".into());
    i.count = 4;
    i.objects = vec![ObjectRef::pod("shop", "cart-7d9f-x2")];
    i.labels.insert("container".into(), "cart".into());
    IncidentChange {
        transition: Transition::Opened,
        at: i.last_seen,
        incident: i,
    }
}

fn eviction_storm() -> IncidentChange {
    let mut i = incident(
        "EvictionStorm",
        ObjectRef::node("node-c"),
        Severity::Critical,
        "12 pods evicted from node node-c in 2m (memory pressure)",
    );
    i.node = Some("node-c".into());
    i.count = 12;
    i.objects = (1..=12)
        .map(|n| ObjectRef::pod("shop", format!("web-{n}")))
        .collect();
    IncidentChange {
        transition: Transition::Updated,
        at: i.last_seen,
        incident: i,
    }
}

fn renderer() -> Renderer {
    Renderer::new(&BTreeMap::new()).unwrap()
}

fn render(kind: &str, c: &IncidentChange) -> (String, String) {
    let m = renderer().render(kind, c).unwrap();
    (m.title, m.body)
}

#[test]
fn node_not_ready_opened() {
    let c = node_not_ready(Transition::Opened);
    let title = "[CRITICAL] [prod] NodeNotReady: Node node-b is NotReady (NodeStatusUnknown)";
    for kind in ["console", "text", "markdown", "html"] {
        assert_eq!(render(kind, &c).0, title, "{kind}");
    }
    assert_eq!(
        render("console", &c).1,
        "opened node/node-b node=node-b count=3 since=2025-06-01 12:00:00 UTC \
         id=NodeNotReady/node-b@1748779200000"
    );
    assert_eq!(
        render("text", &c).1,
        "Node node-b is NotReady (NodeStatusUnknown)

Cluster:    prod
Rule:       NodeNotReady (critical)
Status:     opened at 2025-06-01 12:00:40 UTC
Subject:    node/node-b
Node:       node-b
First seen: 2025-06-01 12:00:00 UTC
Last seen:  2025-06-01 12:00:40 UTC
Count:      3

Incident: NodeNotReady/node-b@1748779200000"
    );
    let (_, md) = render("markdown", &c);
    assert!(
        md.starts_with(
            "**Node node-b is NotReady (NodeStatusUnknown)**\n\n- **Cluster:** `prod`\n"
        ),
        "{md}"
    );
    assert!(md.contains("- **Node:** `node-b`\n"), "{md}");
    assert!(
        !md.contains("Namespace") && !md.contains("Resolved"),
        "{md}"
    );
    let (_, html) = render("html", &c);
    assert!(
        html.starts_with("<h2>Node node-b is NotReady (NodeStatusUnknown)</h2>\n<table>\n"),
        "{html}"
    );
    assert!(
        html.contains("<tr><th align=\"left\">Node</th><td>node-b</td></tr>"),
        "{html}"
    );
    assert!(
        !html.contains("<ul>"),
        "a lone subject is not listed: {html}"
    );
}

#[test]
fn node_not_ready_resolved() {
    let c = node_not_ready(Transition::Resolved);
    let (title, console) = render("console", &c);
    assert_eq!(
        title,
        "[RESOLVED] [prod] NodeNotReady: Node node-b is NotReady (NodeStatusUnknown)"
    );
    assert_eq!(
        console,
        "resolved node/node-b node=node-b count=3 lasted=4m 52s id=NodeNotReady/node-b@1748779200000"
    );
    let (_, text) = render("text", &c);
    assert!(
        text.contains("Status:     resolved at 2025-06-01 12:04:52 UTC\n"),
        "{text}"
    );
    assert!(
        text.contains("Resolved:   2025-06-01 12:04:52 UTC (after 4m 52s)\nCount:      3\n"),
        "{text}"
    );
    let (_, md) = render("markdown", &c);
    assert!(
        md.contains("- **Resolved:** 2025-06-01 12:04:52 UTC (after 4m 52s)\n"),
        "{md}"
    );
    let (_, html) = render("html", &c);
    assert!(
        html.contains("<td>2025-06-01 12:04:52 UTC (after 4m 52s)</td>"),
        "{html}"
    );
}

#[test]
fn oom_killed_opened() {
    let c = oom_killed();
    let (title, text) = render("text", &c);
    assert_eq!(
        title,
        "[WARNING] [prod] OOMKilled: Container cart in pod shop/cart-7d9f-x2 was OOMKilled (exit code 137, restarts 4)"
    );
    assert_eq!(
        text,
        "Container cart in pod shop/cart-7d9f-x2 was OOMKilled (exit code 137, restarts 4)

Cluster:    prod
Rule:       OOMKilled (warning)
Status:     opened at 2025-06-01 12:00:40 UTC
Subject:    pod/shop/cart-7d9f-x2
Namespace:  shop
Node:       node-a
First seen: 2025-06-01 12:00:00 UTC
Last seen:  2025-06-01 12:00:40 UTC
Count:      4

Incident: OOMKilled/shop/cart-7d9f-x2@1748779200000"
    );
    assert_eq!(
        render("console", &c).1,
        "opened pod/shop/cart-7d9f-x2 ns=shop node=node-a count=4 since=2025-06-01 12:00:00 UTC \
         id=OOMKilled/shop/cart-7d9f-x2@1748779200000"
    );
    let (_, md) = render("markdown", &c);
    assert!(
        md.contains("- **Namespace:** `shop`\n- **Node:** `node-a`\n"),
        "{md}"
    );
}

#[test]
fn eviction_storm_lists_ten_objects_and_n_more() {
    let c = eviction_storm();
    let (title, text) = render("text", &c);
    assert_eq!(
        title,
        "[CRITICAL] [prod] EvictionStorm (updated): 12 pods evicted from node node-c in 2m (memory pressure)"
    );
    let listed: String = (1..=10)
        .map(|n| format!("  - pod/shop/web-{n}\n"))
        .collect();
    assert!(
        text.ends_with(&format!(
            "Count:      12\n\nAffected objects (12):\n{listed}  ... and 2 more\n\nIncident: EvictionStorm/node-c@1748779200000"
        )),
        "{text}"
    );
    assert!(!text.contains("web-11"));
    let (_, md) = render("markdown", &c);
    assert!(
        md.contains("**Affected objects (12):**\n- `pod/shop/web-1`\n"),
        "{md}"
    );
    assert!(md.contains("- `pod/shop/web-10`\n- … and 2 more\n"), "{md}");
    let (_, html) = render("html", &c);
    assert!(
        html.contains("<li>pod/shop/web-10</li>\n<li>… and 2 more</li>\n</ul>"),
        "{html}"
    );
    assert_eq!(
        render("console", &c).1,
        "updated node/node-c node=node-c count=12 since=2025-06-01 12:00:00 UTC objects=12 \
         id=EvictionStorm/node-c@1748779200000"
    );
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let mut c = oom_killed();
    c.incident.summary = "<script>alert('x')</script> & more".into();
    let (title, html) = render("html", &c);
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("<h2>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more</h2>"),
        "{html}"
    );
    // Titles are plain text (email subjects, chat headlines); bodies of text kinds too.
    assert!(title.ends_with("<script>alert('x')</script> & more"));
    assert!(
        render("text", &c)
            .1
            .starts_with("<script>alert('x')</script> & more\n")
    );
    assert!(
        render("markdown", &c)
            .1
            .starts_with("**\\<script\\>alert('x')\\</script\\> & more**")
    );
}

#[test]
fn overrides_replace_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.tera");
    std::fs::write(&file, "{{ incident.rule }} {{ objects.line }}\n").unwrap();
    let overrides = BTreeMap::from([
        ("console.body".to_string(), TemplateSource::File(file)),
        (
            "console.title".to_string(),
            TemplateSource::Inline("{{ transition | upper }}\n  {{ incident.cluster }}".into()),
        ),
    ]);
    let r = Renderer::new(&overrides).unwrap();
    let m = r.render("console", &eviction_storm()).unwrap();
    assert_eq!(m.title, "UPDATED prod");
    assert!(
        m.body
            .starts_with("EvictionStorm pod/shop/web-1, pod/shop/web-2,"),
        "{}",
        m.body
    );
    assert!(m.body.ends_with("pod/shop/web-10 and 2 more"), "{}", m.body);
    // Other kinds keep their defaults.
    assert!(
        r.render("text", &eviction_storm())
            .unwrap()
            .title
            .starts_with("[CRITICAL]")
    );
}

#[test]
fn broken_overrides_report_name_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.tera");
    std::fs::write(&file, "ok\n{% if incident.node %}\nnever closed\n").unwrap();
    let overrides = BTreeMap::from([
        (
            "markdown.body".to_string(),
            TemplateSource::Inline("line one\n  {{ incident.rule | shout }}".into()),
        ),
        ("text.body".to_string(), TemplateSource::File(file.clone())),
        (
            "html.title".to_string(),
            TemplateSource::Inline("{{ incident.rule }".into()),
        ),
    ]);
    let Err(TemplateError::Compile { issues }) = Renderer::new(&overrides) else {
        panic!("expected compile errors");
    };
    assert_eq!(issues.len(), 3, "{issues:#?}");
    let by_name = |n: &str| issues.iter().find(|i| i.template == n).unwrap();
    let md = by_name("markdown.body");
    assert_eq!((md.line, md.column), (Some(2), Some(22)), "{md}");
    assert!(md.message.contains("shout"), "{md}");
    assert_eq!(
        md.to_string(),
        format!(
            "template markdown.body at line 2, column 22: {}",
            md.message
        )
    );
    let text = by_name("text.body");
    assert_eq!(text.path.as_deref(), Some(file.as_path()));
    assert!(text.line.is_some() && text.column.is_some(), "{text}");
    assert!(text.to_string().contains(&file.display().to_string()));
    let html = by_name("html.title");
    assert_eq!(html.line, Some(1), "{html}");
    assert!(html.column.is_some(), "{html}");
    // The error's Display lists every issue.
    let all = TemplateError::Compile {
        issues: issues.clone(),
    }
    .to_string();
    assert_eq!(
        all.lines().filter(|l| l.starts_with("template ")).count(),
        3,
        "{all}"
    );
}

#[test]
fn render_errors_name_the_template_and_position() {
    let overrides = BTreeMap::from([(
        "text.body".to_string(),
        TemplateSource::Inline("fine\n{{ incident.no_such_field }}".into()),
    )]);
    let r = Renderer::new(&overrides).unwrap();
    let Err(TemplateError::Render(issue)) = r.render("text", &oom_killed()) else {
        panic!("expected a render error");
    };
    assert_eq!(issue.template, "text.body");
    assert_eq!(issue.line, Some(2), "{issue}");
    assert!(issue.column.is_some(), "{issue}");
}

#[test]
fn unknown_names_and_kinds_are_rejected() {
    let overrides =
        BTreeMap::from([("pager.body".to_string(), TemplateSource::Inline("x".into()))]);
    let e = Renderer::new(&overrides).unwrap_err().to_string();
    assert!(e.contains("pager.body") && e.contains("text.body"), "{e}");
    let missing = BTreeMap::from([(
        "text.body".to_string(),
        TemplateSource::File("/nonexistent/herald.tera".into()),
    )]);
    let e = Renderer::new(&missing).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/herald.tera") && e.contains("text.body"),
        "{e}"
    );
    assert!(matches!(
        renderer().render("pager", &oom_killed()),
        Err(TemplateError::UnknownKind(_))
    ));
}

#[test]
fn template_sources_deserialize_from_yaml() {
    let m: BTreeMap<String, TemplateSource> = serde_saphyr::from_str(
        "text.body: { file: /etc/herald/text.tera }\nconsole.title: { inline: '{{ incident.rule }}' }",
    )
    .unwrap();
    assert_eq!(
        m["text.body"],
        TemplateSource::File("/etc/herald/text.tera".into())
    );
    assert_eq!(
        m["console.title"],
        TemplateSource::Inline("{{ incident.rule }}".into())
    );
}

#[test]
fn every_template_has_a_default() {
    let names = Renderer::template_names();
    assert_eq!(names.len(), 12);
    for n in &names {
        assert!(Renderer::default_source(n).is_some(), "{n}");
    }
}

#[test]
fn slack_mrkdwn_escapes_control_characters() {
    let mut c = oom_killed();
    c.incident.summary = "a <b> & *c* <!channel>".into();
    let (_, body) = render("slack", &c);
    assert!(
        body.starts_with("*a &lt;b&gt; &amp; *c* &lt;!channel&gt;*"),
        "{body}"
    );
    assert!(!body.contains("<!channel>"));
    assert!(body.contains("• *Rule:* `OOMKilled`"), "{body}");
}

#[test]
fn sms_is_one_short_line() {
    let (_, opened) = render("sms", &node_not_ready(Transition::Opened));
    assert_eq!(
        opened,
        "CRITICAL [prod] NodeNotReady: Node node-b is NotReady (NodeStatusUnknown) at 2025-06-01 12:00:40 UTC"
    );
    let (_, resolved) = render("sms", &node_not_ready(Transition::Resolved));
    assert!(
        resolved.starts_with("RESOLVED after 4m 52s [prod]"),
        "{resolved}"
    );
    assert!(!resolved.contains('\n'));
}

#[test]
fn email_is_text_and_html_in_a_json_body_no_message_can_break() {
    let mut c = oom_killed();
    c.incident.summary = "quote \" backslash \\ brace } <script>alert(1)</script>".into();
    let m = renderer().render("email", &c).unwrap();
    let (text_title, text) = render("text", &c);
    let (_, html) = render("html", &c);
    assert_eq!(m.title, text_title);
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(v["text"], text);
    assert_eq!(v["html"], html);
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"));
}

#[test]
fn per_channel_and_per_subscription_overrides_win_in_order() {
    let o: herald_templates::Overrides = serde_saphyr::from_str(
        r#"
text.title: { inline: "global {{ incident.rule }}" }
channels:
  ops-slack:
    text.title: { inline: "channel {{ incident.rule }}" }
    html.body: { inline: "<p>{{ incident.summary }}</p>" }
subscriptions:
  sre:
    text.title: { inline: "subscription {{ incident.rule }}" }
"#,
    )
    .unwrap();
    let r = Renderer::with_overrides(&o).unwrap();
    let c = oom_killed();
    assert_eq!(
        r.render_for("sre", "ops-slack", "text", &c).unwrap().title,
        "subscription OOMKilled"
    );
    assert_eq!(
        r.render_for("other", "ops-slack", "text", &c)
            .unwrap()
            .title,
        "channel OOMKilled"
    );
    assert_eq!(
        r.render_for("other", "other", "text", &c).unwrap().title,
        "global OOMKilled"
    );
    assert_eq!(r.render("text", &c).unwrap().title, "global OOMKilled");
    // Scoped html.body is escaped too.
    let mut evil = oom_killed();
    evil.incident.summary = "<script>x</script>".into();
    let html = r
        .render_for("other", "ops-slack", "html", &evil)
        .unwrap()
        .body;
    assert_eq!(html, "<p>&lt;script&gt;x&lt;/script&gt;</p>");
    // The composite email kind uses the same scopes.
    let email = r.render_for("other", "ops-slack", "email", &evil).unwrap();
    let v: serde_json::Value = serde_json::from_str(&email.body).unwrap();
    assert_eq!(v["html"], html);
}

#[test]
fn every_scoped_problem_is_reported_at_once_with_position() {
    let o: herald_templates::Overrides = serde_saphyr::from_str(
        r#"
text.body: { inline: "ok {{ incident.rule }}" }
channels:
  ops-slack:
    slack.body: { inline: "line one\n{{ incident.rule | nosuchfilter }}" }
    nonsense.body: { inline: "x" }
subscriptions:
  sre:
    sms.body: { inline: "{% if %}" }
    text.title: { file: /nonexistent/herald/title.tera }
"#,
    )
    .unwrap();
    let Err(TemplateError::Compile { issues }) = Renderer::with_overrides(&o) else {
        panic!("expected compile errors");
    };
    assert_eq!(issues.len(), 4, "{issues:#?}");
    let find = |t: &str| {
        issues
            .iter()
            .find(|i| i.template == t)
            .unwrap_or_else(|| panic!("{t}: {issues:#?}"))
    };
    let f = find("channel ops-slack: slack.body");
    assert_eq!(f.line, Some(2), "{f:?}");
    assert!(f.column.is_some());
    assert!(
        find("channel ops-slack: nonsense.body")
            .message
            .contains("unknown template")
    );
    let s = find("subscription sre: sms.body");
    assert_eq!(s.line, Some(1));
    let t = find("subscription sre: text.title");
    assert_eq!(
        t.path.as_deref(),
        Some(std::path::Path::new("/nonexistent/herald/title.tera"))
    );
}
