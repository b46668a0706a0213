//! Cutting a message to a provider's size limit, gracefully: whole lines are kept while they
//! fit, and a last line says how many were left out (`… 12 more lines left out`). Limits are
//! counted the way the provider counts them ([`Unit`]).

/// How a provider measures text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values (Slack, Discord, Mattermost, Google Chat).
    Chars,
    /// UTF-16 code units (Telegram).
    Utf16,
    /// UTF-8 bytes (WeCom, DingTalk, Feishu, Teams).
    Bytes,
}

impl Unit {
    /// The length of `s` in this unit.
    pub fn len(self, s: &str) -> usize {
        match self {
            Unit::Chars => s.chars().count(),
            Unit::Utf16 => s.encode_utf16().count(),
            Unit::Bytes => s.len(),
        }
    }

    fn char_len(self, c: char) -> usize {
        match self {
            Unit::Chars => 1,
            Unit::Utf16 => c.len_utf16(),
            Unit::Bytes => c.len_utf8(),
        }
    }
}

fn note(lines: usize) -> String {
    if lines == 1 {
        "… 1 more line left out".to_string()
    } else {
        format!("… {lines} more lines left out")
    }
}

/// The longest prefix of `s` of at most `max` units, cut at a character boundary.
pub fn prefix(s: &str, max: usize, unit: Unit) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += unit.char_len(c);
        if used > max {
            return &s[..i];
        }
    }
    s
}

/// `text` if it is at most `max` units long; else as many whole lines as fit followed by a
/// note of how many lines were left out. A first line too long on its own is cut (ending in
/// `…`). The result is never longer than `max`.
pub fn fit(text: &str, max: usize, unit: Unit) -> String {
    if unit.len(text) <= max {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let total = lines.len();
    let mut kept = String::new();
    let mut used = 0;
    for (i, line) in lines.iter().enumerate() {
        let sep = usize::from(i > 0);
        let add = sep + unit.len(line);
        let rest_note = unit.len(&note(total - i - 1)) + 1;
        let last = i + 1 == total;
        // Keep this line if it and the note for what follows still fit.
        if used + add + if last { 0 } else { rest_note } <= max {
            if i > 0 {
                kept.push('\n');
            }
            kept.push_str(line);
            used += add;
            continue;
        }
        let left = total - i;
        let n = note(left);
        if i == 0 {
            // Not even the first line fits: cut it and say so.
            let n = note(total - 1);
            let room = max.saturating_sub(unit.len(&n) + 2);
            let head = prefix(line, room, unit);
            let out = if total > 1 {
                format!("{head}…\n{n}")
            } else {
                format!("{}…", prefix(line, max.saturating_sub(1), unit))
            };
            return if unit.len(&out) <= max {
                out
            } else {
                prefix(&out, max, unit).to_string()
            };
        }
        let out = format!("{kept}\n{n}");
        return if unit.len(&out) <= max {
            out
        } else {
            prefix(&out, max, unit).to_string()
        };
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(fit("a\nb", 10, Unit::Chars), "a\nb");
    }

    #[test]
    fn whole_lines_then_a_note() {
        let text = (1..=50)
            .map(|i| format!("line {i:02}"))
            .collect::<Vec<_>>()
            .join("\n");
        let out = fit(&text, 100, Unit::Chars);
        assert!(out.len() <= 100, "{out}");
        assert!(out.starts_with("line 01\nline 02\n"), "{out}");
        let kept = out.lines().filter(|l| l.starts_with("line")).count();
        assert!(
            out.ends_with(&format!("… {} more lines left out", 50 - kept)),
            "{out}"
        );
    }

    #[test]
    fn a_long_first_line_is_cut() {
        let out = fit(&"x".repeat(500), 50, Unit::Chars);
        assert_eq!(out.chars().count(), 50);
        assert!(out.ends_with('…'));
        let out = fit(&format!("{}\nsecond", "y".repeat(500)), 60, Unit::Chars);
        assert!(out.ends_with("… 1 more line left out"), "{out}");
        assert!(out.chars().count() <= 60);
    }

    #[test]
    fn bytes_and_utf16_are_counted_as_such() {
        let text = "告警".repeat(100); // 3 bytes, 1 UTF-16 unit each
        assert!(fit(&text, 90, Unit::Bytes).len() <= 90);
        let emoji = "🔥".repeat(100); // 2 UTF-16 units each
        assert!(Unit::Utf16.len(&fit(&emoji, 51, Unit::Utf16)) <= 51);
    }

    proptest! {
        #[test]
        fn never_longer_than_the_limit(text in "(\\PC{0,30}\n){0,20}", max in 0usize..300) {
            for unit in [Unit::Chars, Unit::Utf16, Unit::Bytes] {
                let out = fit(&text, max, unit);
                prop_assert!(unit.len(&out) <= max, "{unit:?} {max} {out:?}");
                if unit.len(&text) <= max {
                    prop_assert_eq!(&out, &text);
                }
            }
        }
    }
}
