//! `herald backtest` against a history recorded by `herald run` from the simulator's
//! `incident` scenario: a rules file's rules fire on the stored records, the built-in rules
//! replayed through the same config find the incidents the service raised, a held store is
//! reported clearly, and bad rules are reported by `herald validate` and `herald backtest`
//! with file, line and column, all at once.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{herald, start_ready, wait_for};

const RULES: &str = r#"rules:
  - name: NodeControllerNotReady
    match: { kind: event, reason: NodeNotReady, involved_kind: Pod }
    group_by: [node]
    summary: "{count} pods reported NotReady on {node}"
  - name: ManyEvictions
    match: { reason: Evicted }
    threshold: { count: 5, window: 2m }
    group_by: [node]
    resolve_after: 2s
  - name: NeverMatches
    match: { reason: NoSuchReason }
"#;

/// The service's config: two channels, one subscription for everything and one for storms
/// and NotReady nodes without resolutions (what backtest counts notifications through).
fn config(kubeconfig: &std::path::Path) -> String {
    format!(
        "cluster: e2e\nkubeconfig: {}\nlisten: 127.0.0.1:0\nclassifier:\n  node_not_ready: {{ grace: 2s }}\n  eviction_storm: {{ quiet: 4s }}\n  update_interval: 1s\nchannels:\n  ops: {{ type: console }}\n  pager: {{ type: console }}\nsubscriptions:\n  - name: everything\n    channels: [ops]\n  - name: urgent\n    match: {{ rules: [\"*Storm\", NodeNotReady, ManyEvictions] }}\n    channels: [pager]\n    send_resolved: false\n",
        kubeconfig.display()
    )
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "herald failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_replays_the_recorded_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sim = herald_sim::Simulator::new(herald_sim::SimConfig {
        token: "e2e-token".into(),
        ..Default::default()
    });
    let server = sim.serve().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(&cfg, config(&kubeconfig)).unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let rules_arg = rules.to_str().unwrap();

    let (svc, _api) = start_ready(&data, &cfg, dir.path()).await;

    // While the service holds the store, backtest says so and what to do.
    let out = herald(&data, &["backtest", "--rules", rules_arg, "--since", "1h"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("held by a running service") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let scenario = herald_sim::builtin_scenario("incident").unwrap();
    let report = sim.run_scenario(&scenario, 2.0).await.unwrap();
    let not_ready = report.not_ready_nodes();
    let evicted: BTreeSet<String> = report.evicted_pods().into_iter().collect();
    // Until the service resolved the storm and the node and saw every eviction (the history
    // is complete).
    let live = wait_for("incidents resolved", Duration::from_secs(60), || {
        let v = json(&herald(&data, &["incidents", "-o", "json"]));
        let list = v.as_array()?.clone();
        let resolved = |rule: &str| {
            list.iter()
                .any(|i| i["rule"] == rule && i["state"] == "resolved")
        };
        // Every eviction is in the store (a storm lists it) before the service stops.
        let stormed: usize = list
            .iter()
            .filter(|i| i["rule"] == "EvictionStorm")
            .map(|i| i["objects"].as_array().map_or(0, Vec::len))
            .sum();
        (resolved("NodeNotReady") && resolved("EvictionStorm") && stormed >= evicted.len())
            .then_some(list)
    })
    .await;
    assert!(svc.stop().success());

    // The file's rules alone.
    let out = json(&herald(
        &data,
        &[
            "backtest", "--rules", rules_arg, "--since", "1h", "-o", "json",
        ],
    ));
    assert!(out["records"].as_u64().unwrap() > 0, "{out:#}");
    let incidents = out["incidents"].as_array().unwrap();
    let rules_fired: BTreeSet<&str> = incidents
        .iter()
        .map(|i| i["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules_fired,
        BTreeSet::from(["ManyEvictions", "NodeControllerNotReady"]),
        "{out:#}"
    );
    let storm = incidents
        .iter()
        .find(|i| i["rule"] == "ManyEvictions")
        .unwrap();
    assert!(
        storm["count"].as_u64().unwrap() >= evicted.len() as u64,
        "{out:#}"
    );
    assert!(
        storm["resolved_at"].is_string(),
        "resolved by replayed ticks: {out:#}"
    );
    let nn = incidents
        .iter()
        .find(|i| i["rule"] == "NodeControllerNotReady")
        .unwrap();
    assert_eq!(
        nn["fingerprint"],
        format!("NodeControllerNotReady/{}", not_ready[0]),
        "{out:#}"
    );
    // Without a config there are no subscriptions: transitions, but no notifications.
    let per_rule: u64 = out["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["transitions"].as_u64().unwrap())
        .sum();
    assert_eq!(per_rule, out["transitions"].as_u64().unwrap());
    assert!(per_rule >= incidents.len() as u64 * 2 - 1, "{out:#}");
    assert_eq!(out["notifications"], 0, "{out:#}");
    assert_eq!(out["subscriptions"], 0, "{out:#}");
    assert_eq!(out["channels"].as_array().map(Vec::len), Some(0), "{out:#}");

    // With the config: its built-in rules find what the service found, once each.
    let cfg_arg = cfg.to_str().unwrap();
    let out = json(&herald(
        &data,
        &[
            "backtest", "--rules", rules_arg, "--config", cfg_arg, "--since", "1h", "-o", "json",
        ],
    ));
    let replayed: BTreeSet<String> = out["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            !["ManyEvictions", "NodeControllerNotReady"].contains(&i["rule"].as_str().unwrap())
        })
        .map(|i| i["fingerprint"].as_str().unwrap().to_string())
        .collect();
    let served: BTreeSet<String> = live
        .iter()
        .map(|i| i["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(replayed, served, "{out:#}");

    // Notifications per channel, routed by the config's subscriptions as the service does:
    // `ops` gets every transition, `pager` the opened and updated ones of the urgent rules.
    assert_eq!(out["subscriptions"], 2, "{out:#}");
    let transitions = out["transitions"].as_u64().unwrap();
    let urgent =
        |rule: &str| rule.ends_with("Storm") || ["NodeNotReady", "ManyEvictions"].contains(&rule);
    let pager: u64 = out["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| urgent(i["rule"].as_str().unwrap()))
        .map(|i| 1 + i["updates"].as_u64().unwrap())
        .sum();
    assert!(pager > 0, "{out:#}");
    let channels: Vec<(String, u64)> = out["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"].as_str().unwrap().to_string(),
                c["notifications"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        channels,
        [
            ("ops".to_string(), transitions),
            ("pager".to_string(), pager)
        ],
        "{out:#}"
    );
    assert_eq!(out["notifications"].as_u64().unwrap(), transitions + pager);
    let per_rule: u64 = out["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["notifications"].as_u64().unwrap())
        .sum();
    assert_eq!(per_rule, transitions + pager, "{out:#}");
    let table = herald(
        &data,
        &[
            "backtest", "--rules", rules_arg, "--config", cfg_arg, "--since", "1h",
        ],
    );
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("CHANNEL") && table.contains("pager") && table.contains("ops"),
        "{table}"
    );

    // The table names every rule that fired and the totals.
    let out = herald(&data, &["backtest", "--rules", rules_arg, "--since", "1h"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ManyEvictions") && table.contains("NodeControllerNotReady"),
        "{table}"
    );
    assert!(table.contains("incident(s) would have opened"), "{table}");
    assert!(table.contains("no subscriptions"), "{table}");
}

#[test]
fn bad_rules_are_reported_with_file_line_and_column_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("team.rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: A\n    match: { message_regex: \"(\" }\n    severity: loud\n  - name: B\n    match: { kind: podz }\n",
    )
    .unwrap();
    // A file whose value has the wrong shape is reported alone, saying what was expected.
    let shape = dir.path().join("shape.rules.yaml");
    std::fs::write(
        &shape,
        "rules:\n  - name: S\n    match: { kind: event, reason: { BackOff: 1 } }\n",
    )
    .unwrap();
    let cfg = dir.path().join("herald.yaml");
    std::fs::write(
        &cfg,
        "cluster: prod\nclassifier:\n  rule_files: [team.rules.yaml, shape.rules.yaml]\n  rules:\n    - name: C\n      match: { type: Sometimes }\n",
    )
    .unwrap();
    let out = herald(dir.path(), &["validate", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for want in [
        format!("error: {}:6:", cfg.display()),
        format!("error: {}:3:", rules.display()),
        format!("error: {}:4:", rules.display()),
        format!("error: {}:6:", rules.display()),
        format!(
            "error: {}:3:35: classifier: invalid type: map, expected a string or a list of strings",
            shape.display()
        ),
    ] {
        assert!(stderr.contains(&want), "{want} in {stderr}");
    }
    assert!(!stderr.contains("untagged"), "{stderr}");
    assert!(stderr.contains("5 problem(s)"), "{stderr}");

    // backtest checks its rules file the same way before touching the store.
    let out = herald(
        &dir.path().join("no-data"),
        &["backtest", "--rules", rules.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:3:", rules.display()))
            && stderr.contains(&format!("{}:6:", rules.display())),
        "{stderr}"
    );
}
