//! Quiet hours: weekly time windows in a named time zone during which a subscription lets
//! only urgent severities through; everything else is held and folded into one digest when
//! the window ends. Windows may cross midnight (`22:00`-`07:00` belongs to the day it starts
//! on); daylight-saving changes are handled by jiff (a start or end in a gap moves forward).
//!
//! ```yaml
//! quiet_hours:
//!   timezone: Europe/Berlin
//!   urgent: [critical]          # default: [critical]
//!   windows:
//!     - { days: [mon-fri], start: "22:00", end: "07:00" }
//!     - { days: [sat, sun], start: "00:00", end: "24:00" }
//! ```

use herald_core::{Severity, Timestamp};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// The `quiet_hours:` block of a subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    /// IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`). Required.
    pub timezone: Spanned<String>,
    /// The windows. Required, at least one.
    pub windows: Vec<WindowConfig>,
    /// Severities that still get through at once. Default `[critical]`.
    #[serde(default = "default_urgent")]
    pub urgent: Vec<Severity>,
}

fn default_urgent() -> Vec<Severity> {
    vec![Severity::Critical]
}

/// One weekly window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Days it starts on: `mon`..`sun`, ranges such as `mon-fri`, or `all`. Required.
    pub days: Vec<Spanned<String>>,
    /// Local start time `HH:MM`.
    pub start: Spanned<String>,
    /// Local end time `HH:MM` (`24:00` for midnight at the end of the day); an end before
    /// the start ends on the next day.
    pub end: Spanned<String>,
}

/// A problem in a `quiet_hours:` block: the field (relative to the block), its position, and
/// what is wrong.
pub type QuietIssue = (String, Option<Location>, String);

#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Bit 0 = Monday .. bit 6 = Sunday.
    days: u8,
    start: u32,
    /// Minutes after the start day's midnight (may exceed 24h for windows past midnight).
    end: u32,
}

/// Compiled quiet hours.
#[derive(Debug, Clone)]
pub struct QuietHours {
    tz: TimeZone,
    windows: Vec<Window>,
    urgent: Vec<Severity>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.starts_with(d))
        .and_then(|i| u32::try_from(i).ok())
}

fn parse_days(s: &str) -> Result<u8, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "all" || t == "*" {
        return Ok(0x7f);
    }
    if let Some((a, b)) = t.split_once('-') {
        let (Some(a), Some(b)) = (day_index(a), day_index(b)) else {
            return Err(format!("invalid day range {s:?} (e.g. mon-fri)"));
        };
        let mut mask = 0u8;
        let mut d = a;
        loop {
            mask |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
        return Ok(mask);
    }
    match day_index(&t) {
        Some(d) if DAYS.contains(&t.as_str()) || t.len() > 3 => Ok(1 << d),
        _ => Err(format!(
            "invalid day {s:?} (mon, tue, ..., sun, a range such as mon-fri, or all)"
        )),
    }
}

fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid time {s:?} (HH:MM, 00:00 to 24:00)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl QuietHours {
    /// Compiles `cfg`, or returns every problem in it.
    pub fn compile(cfg: &QuietHoursConfig) -> Result<Self, Vec<QuietIssue>> {
        let mut issues = Vec::new();
        let tz = match TimeZone::get(cfg.timezone.value.trim()) {
            Ok(tz) => Some(tz),
            Err(e) => {
                issues.push((
                    "timezone".to_string(),
                    Some(cfg.timezone.referenced),
                    format!("unknown time zone {:?}: {e}", cfg.timezone.value),
                ));
                None
            }
        };
        if cfg.windows.is_empty() {
            issues.push((
                "windows".to_string(),
                Some(cfg.timezone.referenced),
                "quiet hours need at least one window".to_string(),
            ));
        }
        let mut windows = Vec::new();
        for (i, w) in cfg.windows.iter().enumerate() {
            let mut days = 0u8;
            if w.days.is_empty() {
                issues.push((
                    format!("windows[{i}].days"),
                    Some(w.start.referenced),
                    "a window needs at least one day".to_string(),
                ));
            }
            for (j, d) in w.days.iter().enumerate() {
                match parse_days(&d.value) {
                    Ok(m) => days |= m,
                    Err(e) => {
                        issues.push((format!("windows[{i}].days[{j}]"), Some(d.referenced), e))
                    }
                }
            }
            let start = parse_hhmm(&w.start.value)
                .map_err(|e| {
                    issues.push((format!("windows[{i}].start"), Some(w.start.referenced), e))
                })
                .ok();
            let end = parse_hhmm(&w.end.value)
                .map_err(|e| issues.push((format!("windows[{i}].end"), Some(w.end.referenced), e)))
                .ok();
            if let (Some(start), Some(end)) = (start, end) {
                if start == end {
                    issues.push((
                        format!("windows[{i}].end"),
                        Some(w.end.referenced),
                        "a window must not be empty (start equals end)".to_string(),
                    ));
                }
                let end = if end <= start { end + 24 * 60 } else { end };
                windows.push(Window { days, start, end });
            }
        }
        if cfg.urgent.is_empty() {
            // Allowed: nothing gets through; documented.
        }
        match tz {
            Some(tz) if issues.is_empty() => Ok(Self {
                tz,
                windows,
                urgent: cfg.urgent.clone(),
            }),
            _ => Err(issues),
        }
    }

    /// Whether `s` gets through quiet hours.
    pub fn is_urgent(&self, s: Severity) -> bool {
        self.urgent.contains(&s)
    }

    /// When the quiet period containing `now` ends (consecutive or overlapping windows
    /// merged), or `None` when `now` is not in quiet hours.
    pub fn quiet_until(&self, now: Timestamp) -> Option<Timestamp> {
        let mut end = self.window_end(now)?;
        // Windows that touch or overlap extend the quiet period (a week at most).
        for _ in 0..14 {
            match self.window_end(end) {
                Some(e) if e > end => end = e,
                _ => break,
            }
        }
        Some(end)
    }

    /// The end of a window containing `t`, the latest one if several.
    fn window_end(&self, t: Timestamp) -> Option<Timestamp> {
        let local = t.to_zoned(self.tz.clone());
        let today = local.date();
        let mut best: Option<Timestamp> = None;
        for back in 0..2 {
            let Ok(day) = today.checked_sub(jiff::Span::new().days(back)) else {
                continue;
            };
            let weekday = u32::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0);
            for w in &self.windows {
                if w.days & (1 << weekday) == 0 {
                    continue;
                }
                let (Some(s), Some(e)) = (self.at(day, w.start), self.at(day, w.end)) else {
                    continue;
                };
                if s <= t && t < e {
                    best = Some(best.map_or(e, |b| b.max(e)));
                }
            }
        }
        best
    }

    /// The instant `minutes` after midnight starting `day` in the zone (past 24h: the next
    /// days). A local time in a DST gap moves forward.
    fn at(&self, day: Date, minutes: u32) -> Option<Timestamp> {
        let extra_days = i64::from(minutes / (24 * 60));
        let m = minutes % (24 * 60);
        let d = day.checked_add(jiff::Span::new().days(extra_days)).ok()?;
        let time = Time::new(i8::try_from(m / 60).ok()?, i8::try_from(m % 60).ok()?, 0, 0).ok()?;
        d.to_datetime(time)
            .to_zoned(self.tz.clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(yaml: &str) -> QuietHours {
        let cfg: QuietHoursConfig = serde_saphyr::from_str(yaml).unwrap();
        QuietHours::compile(&cfg).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekday_nights_in_berlin() {
        let q = quiet(
            "timezone: Europe/Berlin\nwindows:\n  - { days: [mon-fri], start: '22:00', end: '07:00' }\n",
        );
        // (instant, quiet until) — Berlin is UTC+1 in January, UTC+2 in July.
        let cases: &[(&str, Option<&str>)] = &[
            // Wednesday 2025-01-15 21:30 local: not yet.
            ("2025-01-15T20:30:00Z", None),
            // 22:30 local: until Thursday 07:00 local = 06:00Z.
            ("2025-01-15T21:30:00Z", Some("2025-01-16T06:00:00Z")),
            // Thursday 06:59 local (started Wednesday).
            ("2025-01-16T05:59:00Z", Some("2025-01-16T06:00:00Z")),
            ("2025-01-16T06:00:00Z", None),
            // Friday 23:00 local: a window starting Friday ends Saturday 07:00.
            ("2025-01-17T22:00:00Z", Some("2025-01-18T06:00:00Z")),
            // Saturday 23:00 local: no window starts on Saturday.
            ("2025-01-18T22:00:00Z", None),
            // Summer: 22:30 CEST = 20:30Z, until 07:00 CEST = 05:00Z.
            ("2025-07-16T20:30:00Z", Some("2025-07-17T05:00:00Z")),
        ];
        for (at, want) in cases {
            assert_eq!(q.quiet_until(ts(at)), want.map(ts), "{at}");
        }
        assert!(q.is_urgent(Severity::Critical));
        assert!(!q.is_urgent(Severity::Warning));
    }

    #[test]
    fn adjacent_windows_merge_and_whole_days_work() {
        let q = quiet(
            "timezone: UTC\nurgent: [warning, critical]\nwindows:\n  - { days: [fri], start: '18:00', end: '24:00' }\n  - { days: [sat, sun], start: '00:00', end: '24:00' }\n",
        );
        // Friday 2025-01-17 19:00 -> Monday 00:00.
        assert_eq!(
            q.quiet_until(ts("2025-01-17T19:00:00Z")),
            Some(ts("2025-01-20T00:00:00Z"))
        );
        assert_eq!(q.quiet_until(ts("2025-01-20T00:00:00Z")), None);
        assert!(q.is_urgent(Severity::Warning));
    }

    #[test]
    fn dst_change_night() {
        // New York, 2025-03-09: 02:00 local does not exist; the window 01:00-03:00 still
        // ends at 03:00 EDT = 07:00Z.
        let q = quiet(
            "timezone: America/New_York\nwindows:\n  - { days: [sun], start: '01:00', end: '03:00' }\n",
        );
        assert_eq!(
            q.quiet_until(ts("2025-03-09T06:30:00Z")),
            Some(ts("2025-03-09T07:00:00Z"))
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg: QuietHoursConfig = serde_saphyr::from_str(
            "timezone: Mars/Olympus\nwindows:\n  - { days: [mon, funday, fri-xyz], start: '25:00', end: '07:61' }\n  - { days: [], start: '10:00', end: '10:00' }\n",
        )
        .unwrap();
        let issues = QuietHours::compile(&cfg).unwrap_err();
        let fields: Vec<&str> = issues.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(
            fields,
            [
                "timezone",
                "windows[0].days[1]",
                "windows[0].days[2]",
                "windows[0].start",
                "windows[0].end",
                "windows[1].days",
                "windows[1].end"
            ],
            "{issues:?}"
        );
        assert_eq!(issues[0].1.map(|l| l.line()), Some(1));
        assert_eq!(issues[1].1.map(|l| l.line()), Some(3));
    }
}
