//! Human-readable table output for the query commands.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

use herald_core::{Incident, Timestamp};

use crate::query::HistoryView;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Prints a history view: records, then incidents with their notifications.
pub fn print_history(view: &HistoryView) {
    println!("History of {}", view.object);
    if view.records.is_empty() {
        println!("  no records");
    } else {
        let mut t = table(&["TIME", "KIND", "WHAT"]);
        for r in &view.records {
            t.add_row(vec![
                ts(r.observed_at),
                r.kind_name().to_string(),
                truncate(&r.describe(), 140),
            ]);
        }
        println!("{t}");
    }
    if view.incidents.is_empty() {
        println!("No incidents.");
        return;
    }
    println!("Incidents:");
    let mut t = table(&["OPENED", "RULE", "STATE", "SUMMARY", "NOTIFIED"]);
    for iv in &view.incidents {
        let i = &iv.incident;
        let notified = if iv.notifications.is_empty() {
            "-".to_string()
        } else {
            iv.notifications
                .iter()
                .map(|n| {
                    let status = if n.delivered { "ok" } else { "pending/failed" };
                    format!(
                        "{} {} via {} ({status})",
                        n.transition, n.subscription, n.channel
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        t.add_row(vec![
            ts(i.first_seen),
            i.rule.clone(),
            i.state.as_str().to_string(),
            truncate(&i.summary, 100),
            notified,
        ]);
    }
    println!("{t}");
}

/// Prints a list of incidents.
pub fn print_incidents(list: &[Incident]) {
    if list.is_empty() {
        println!("No incidents.");
        return;
    }
    let mut t = table(&[
        "OPENED", "RULE", "SEVERITY", "STATE", "SUBJECT", "COUNT", "SUMMARY",
    ]);
    for i in list {
        t.add_row(vec![
            ts(i.first_seen),
            i.rule.clone(),
            i.severity.to_string(),
            i.state.as_str().to_string(),
            i.subject.to_string(),
            i.count.to_string(),
            truncate(&i.summary, 90),
        ]);
    }
    println!("{t}");
}
