//! The notifier path as the binary uses it: YAML sections -> validate -> Router -> Channels ->
//! Dispatcher, with a real webhook receiver.
#![allow(clippy::unwrap_used)] // a test crate

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::routing::post;
use herald_core::{
    Incident, IncidentChange, IncidentId, IncidentState, Message, Notification, ObjectRef,
    Severity, Timestamp, Transition,
};
use herald_notifiers::{
    ChannelConfig, ChannelKind, Channels, Dispatcher, RetryPolicy, Router, SubscriptionConfig,
    validate,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Sections {
    channels: BTreeMap<String, ChannelConfig>,
    subscriptions: Vec<SubscriptionConfig>,
}

fn oom(ns: &str) -> IncidentChange {
    let at: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
    let subject = ObjectRef::pod(ns, "cart-1");
    IncidentChange {
        transition: Transition::Opened,
        at,
        incident: Incident {
            id: IncidentId::new("OOMKilled/shop/cart-1", at),
            fingerprint: "OOMKilled/shop/cart-1".into(),
            rule: "OOMKilled".into(),
            severity: Severity::Warning,
            state: IncidentState::Open,
            cluster: "prod".into(),
            namespace: Some(ns.into()),
            node: None,
            summary: "cart-1 OOMKilled".into(),
            subject,
            first_seen: at,
            last_seen: at,
            resolved_at: None,
            count: 1,
            objects: vec![],
            records: vec![],
            labels: BTreeMap::new(),
        },
    }
}

#[tokio::test]
async fn yaml_to_delivery() {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, format!("http://{addr}/hook\n")).unwrap();
    let yaml = format!(
        r#"
channels:
  ops-console:
    type: console
  ops-webhook:
    type: webhook
    url: {{ file: {} }}
    headers: {{ X-Team: sre }}
    timeout: 5s
subscriptions:
  - name: sre-oncall
    match:
      rules: ["NodeNotReady", "OOM*"]
      min_severity: warning
      namespaces: ["shop", "kube-*"]
    channels: [ops-console, ops-webhook]
"#,
        url_file.display()
    );
    let cfg: Sections = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(validate(&cfg.channels, &cfg.subscriptions), vec![]);
    let router = Router::new(&cfg.subscriptions).unwrap();
    let channels = Channels::build(&cfg.channels).unwrap();
    assert_eq!(channels.kind_of("ops-webhook"), Some(ChannelKind::Webhook));
    assert_eq!(channels.template_kind("ops-console"), Some("console"));
    assert_eq!(channels.template_kind("ops-webhook"), Some("text"));
    assert_eq!(channels.kind_of("nope"), None);

    assert!(router.route(&oom("billing")).is_empty());
    let change = oom("shop");
    let routes = router.route(&change);
    assert_eq!(routes.len(), 2);
    let dispatcher = Dispatcher::new(RetryPolicy::default());
    for route in routes {
        let i = &change.incident;
        let n = Notification {
            id: Notification::key_for(&change, &route.subscription, &route.channel),
            incident_id: i.id.clone(),
            transition: change.transition,
            severity: i.severity,
            subscription: route.subscription,
            channel: route.channel,
            created_at: change.at,
            change: change.clone(),
            message: Message {
                title: "t".into(),
                body: "b".into(),
            },
        };
        let attempts = dispatcher.deliver(&channels, &n).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert!(attempts[0].outcome.is_delivered(), "{attempts:?}");
    }
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["change"]["incident"]["rule"], "OOMKilled");
    assert_eq!(bodies[0]["subscription"], "sre-oncall");
}
