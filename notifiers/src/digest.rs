//! Digests: many notifications of one channel folded into one message ("37 more incidents
//! since 10:02: ..."), sent when the channel's budget returns or quiet hours end. The digest
//! is a [`Notification`] of its own (stored in the outbox before it is sent, with its own
//! idempotency key); the folded notifications are recorded as digested into it.

use herald_core::{Message, Notification, Severity, Timestamp};

/// Lines listed in a digest; the rest are counted ("... and 12 more").
pub const DIGEST_LINES: usize = 20;

/// Prefix of every digest's id.
pub const DIGEST_PREFIX: &str = "digest/";

/// Why a digest was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestReason {
    /// The channel was over its budget.
    OverBudget,
    /// The subscription's quiet hours held them.
    QuietHours,
    /// They are one group of the subscription's `group_by`.
    Grouped,
}

/// Whether `id` is a digest's id.
pub fn is_digest(id: &str) -> bool {
    id.starts_with(DIGEST_PREFIX)
}

/// Builds the digest of `folded` (non-empty, oldest first) for `channel` at `now`, rendered
/// for `template_kind` (`html` is escaped; other kinds get plain lines). Returns `None` when
/// `folded` is empty.
///
/// Its id is `digest/CHANNEL/MILLIS/FIRST-ID`: unique, since the first folded notification is
/// settled by this digest and can never start another one. Its incident, transition and
/// change are the first folded notification's; its severity the highest folded.
pub fn build(
    channel: &str,
    folded: &[Notification],
    now: Timestamp,
    template_kind: &str,
    reason: DigestReason,
) -> Option<Notification> {
    let first = folded.first()?;
    let since = folded
        .iter()
        .map(|n| n.created_at)
        .min()
        .unwrap_or(first.created_at);
    let severity = folded
        .iter()
        .map(|n| n.severity)
        .max()
        .unwrap_or(Severity::Info);
    let why = match reason {
        DigestReason::OverBudget => "held back by the channel's rate limit",
        DigestReason::QuietHours => "held during quiet hours",
        DigestReason::Grouped => "grouped",
    };
    let count = folded.len();
    let noun = if count == 1 { "incident" } else { "incidents" };
    let title = match reason {
        DigestReason::Grouped => format!(
            "{count} {noun}: {} and others since {} UTC",
            first.change.incident.rule,
            since.strftime("%H:%M")
        ),
        _ => format!("{count} more {noun} since {} UTC", since.strftime("%H:%M")),
    };
    let html = template_kind == "html";
    let mut lines = Vec::with_capacity(DIGEST_LINES + 2);
    for n in folded.iter().take(DIGEST_LINES) {
        let line = format!(
            "[{}] {} {}: {}",
            n.severity.as_str().to_ascii_uppercase(),
            n.transition,
            n.change.incident.rule,
            n.change.incident.summary
        );
        lines.push(if html { escape_html(&line) } else { line });
    }
    if count > DIGEST_LINES {
        lines.push(format!("... and {} more", count - DIGEST_LINES));
    }
    let body = if html {
        format!(
            "<p>{}: {why}.</p><ul>{}</ul>",
            escape_html(&title),
            lines
                .iter()
                .map(|l| format!("<li>{l}</li>"))
                .collect::<String>()
        )
    } else {
        format!("{title} ({why}):\n{}", lines.join("\n"))
    };
    Some(Notification {
        id: format!(
            "{DIGEST_PREFIX}{channel}/{}/{}",
            now.as_millisecond(),
            first.id
        ),
        incident_id: first.incident_id.clone(),
        transition: first.transition,
        severity,
        subscription: first.subscription.clone(),
        channel: channel.to_string(),
        created_at: now,
        change: first.change.clone(),
        message: Message { title, body },
    })
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::notification;

    fn many(n: usize) -> Vec<Notification> {
        (0..n)
            .map(|i| {
                let mut x = notification("slack");
                x.id = format!("{}-{i}", x.id);
                x.change.incident.summary = format!("pod-{i} <evicted> & gone");
                x
            })
            .collect()
    }

    #[test]
    fn digest_counts_lists_and_truncates() {
        let now: Timestamp = "2025-06-01T12:30:00Z".parse().unwrap();
        let d = build(
            "slack",
            &many(37),
            now,
            "markdown",
            DigestReason::OverBudget,
        )
        .unwrap();
        assert_eq!(d.message.title, "37 more incidents since 12:00 UTC");
        assert!(d.message.body.contains("pod-19 <evicted> & gone"));
        assert!(!d.message.body.contains("pod-20 "));
        assert!(
            d.message.body.ends_with("... and 17 more"),
            "{}",
            d.message.body
        );
        assert!(is_digest(&d.id));
        assert!(d.id.starts_with("digest/slack/"));
        assert_eq!(d.channel, "slack");
        assert!(build("slack", &[], now, "text", DigestReason::OverBudget).is_none());
    }

    #[test]
    fn html_digests_are_escaped() {
        let now: Timestamp = "2025-06-01T12:30:00Z".parse().unwrap();
        let d = build("mail", &many(2), now, "html", DigestReason::QuietHours).unwrap();
        assert!(d.message.body.contains("&lt;evicted&gt; &amp; gone"));
        assert!(!d.message.body.contains("<evicted>"));
        assert!(d.message.body.contains("quiet hours"));
    }
}
