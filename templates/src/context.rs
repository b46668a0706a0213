//! The template context: what a template can refer to.
//!
//! | variable | content |
//! |---|---|
//! | `incident` | every field of the incident (`id`, `rule`, `severity`, `state`, `cluster`, `subject`, `namespace`, `node`, `summary`, `first_seen`, `last_seen`, `resolved_at`, `count`, `objects`, `records`, `labels`); optional fields are always present (`none` when unset, empty lists/maps) so `{% if incident.namespace %}` works |
//! | `transition` | `opened`, `updated` or `resolved` |
//! | `at` | when the transition happened, RFC 3339 |
//! | `subject` | the subject as `kind/namespace/name`, e.g. `node/node-b` |
//! | `objects.total` | number of affected objects |
//! | `objects.shown` | the first [`MAX_LISTED_OBJECTS`] of them, as `kind/namespace/name` |
//! | `objects.more` | how many are not shown |
//! | `objects.line` | `a, b, c and 2 more` |
//! | `objects.show` | whether a list is worth showing (more than one object, or one that is not the subject) |
//! | `human.at`, `human.first_seen`, `human.last_seen`, `human.resolved_at` | times as `2025-06-01 12:00:03 UTC` (`resolved_at` is `none` while open) |
//! | `human.duration` | how long the incident lasted (resolved) or has lasted so far, e.g. `4m 12s` |
//!
//! Filters besides tera's built-ins: `md_escape` (escapes Markdown punctuation).

use herald_core::{IncidentChange, Timestamp};
use serde_json::{Map, Value, json};

/// How many affected objects are listed before "and N more".
pub const MAX_LISTED_OBJECTS: usize = 10;

/// The template context of `change`, as JSON (also handy to show users what they can use).
pub fn context_value(change: &IncidentChange) -> Value {
    let i = &change.incident;
    let mut incident = match serde_json::to_value(i) {
        Ok(Value::Object(m)) => m,
        // Incident serializes to a map; this is not reachable with the core types.
        _ => Map::new(),
    };
    for (key, empty) in [
        ("namespace", Value::Null),
        ("node", Value::Null),
        ("resolved_at", Value::Null),
        ("objects", json!([])),
        ("records", json!([])),
        ("labels", json!({})),
    ] {
        incident.entry(key).or_insert(empty);
    }

    let names: Vec<String> = i.objects.iter().map(ToString::to_string).collect();
    let shown: Vec<&String> = names.iter().take(MAX_LISTED_OBJECTS).collect();
    let more = names.len().saturating_sub(MAX_LISTED_OBJECTS);
    let mut line = shown
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        line.push_str(&format!(" and {more} more"));
    }

    let end = match change.incident.resolved_at {
        Some(t) => t,
        None => change.at,
    };
    json!({
        "incident": incident,
        "transition": change.transition.as_str(),
        "at": change.at.to_string(),
        "subject": i.subject.to_string(),
        "objects": {
            "total": names.len(),
            "shown": shown,
            "more": more,
            "line": line,
            "show": names.len() > 1 || (names.len() == 1 && names[0] != i.subject.to_string()),
        },
        "human": {
            "at": human_time(change.at),
            "first_seen": human_time(i.first_seen),
            "last_seen": human_time(i.last_seen),
            "resolved_at": i.resolved_at.map(human_time),
            "duration": human_duration(end.as_second() - i.first_seen.as_second()),
        },
    })
}

/// `2025-06-01 12:00:03 UTC`.
pub fn human_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The two largest units of a number of seconds: `45s`, `4m 12s`, `1h 3m`, `2d 4h`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (name, size) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() {
            parts.push(format!("{n}{name}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // Drop a trailing zero unit ("4m 0s" -> "4m").
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (secs, want) in [
            (0, "0s"),
            (-5, "0s"),
            (45, "45s"),
            (60, "1m"),
            (252, "4m 12s"),
            (3_780, "1h 3m"),
            (7_200, "2h"),
            (187_200, "2d 4h"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}
