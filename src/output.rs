//! Human-readable table output for the query commands.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

use herald_core::{Incident, Timestamp};

use crate::query::{HistoryView, NotificationView};

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
                    let status = match (&n.settled_by, n.status.as_str()) {
                        (_, "") if n.delivered => "delivered".to_string(),
                        (_, "") => "pending".to_string(),
                        (Some(by), s) => format!("{s}: {by}"),
                        (None, s) => s.to_string(),
                    };
                    let when = n
                        .attempts
                        .iter()
                        .rev()
                        .find(|a| a.outcome.is_delivered())
                        .or(n.attempts.last())
                        .map(|a| ts(a.at))
                        .unwrap_or_else(|| ts(n.created_at));
                    let who = if n.who.is_empty() || n.who == n.subscription {
                        n.subscription.clone()
                    } else {
                        format!("{} ({})", n.who, n.subscription)
                    };
                    format!(
                        "{} to {who} via {} at {when} ({status})",
                        n.transition, n.channel
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

/// Prints outbox entries (pending notifications, dead letters).
pub fn print_deliveries(list: &[NotificationView]) {
    if list.is_empty() {
        println!("Nothing pending, no dead letters.");
        return;
    }
    let mut t = table(&[
        "CREATED",
        "STATUS",
        "CHANNEL",
        "SUBSCRIPTION",
        "ATTEMPTS",
        "LAST ERROR",
        "ID",
    ]);
    for n in list {
        let last_error = n
            .attempts
            .iter()
            .rev()
            .find_map(|a| match &a.outcome {
                herald_core::DeliveryOutcome::Failed { error, .. }
                | herald_core::DeliveryOutcome::Dead { error } => Some(error.clone()),
                herald_core::DeliveryOutcome::Delivered { .. } => None,
            })
            .unwrap_or_else(|| "-".into());
        t.add_row(vec![
            ts(n.created_at),
            n.status.clone(),
            n.channel.clone(),
            n.subscription.clone(),
            n.attempts.len().to_string(),
            truncate(&last_error, 60),
            n.id.clone(),
        ]);
    }
    println!("{t}");
}

/// Prints silences.
pub fn print_silences(list: &[herald_core::Silence], now: Timestamp) {
    if list.is_empty() {
        println!("No silences.");
        return;
    }
    let mut t = table(&["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"]);
    for s in list {
        let state = if s.is_active(now) {
            "active"
        } else if s.starts_at > now {
            "pending"
        } else {
            "expired"
        };
        let matchers = s
            .matchers
            .iter()
            .map(|m| format!("{}={}", m.key, m.value))
            .collect::<Vec<_>>()
            .join(" ");
        t.add_row(vec![
            s.id.clone(),
            state.to_string(),
            matchers,
            ts(s.starts_at),
            ts(s.ends_at),
            s.created_by.clone(),
            truncate(&s.comment, 60),
        ]);
    }
    println!("{t}");
}
