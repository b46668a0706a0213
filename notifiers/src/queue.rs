//! The per-channel delivery queue: what to send next, given the channel's [`Budget`], retry
//! times, a receiver's request to pause (`Retry-After`), urgency and quiet hours. Pure and
//! clock-driven (the caller passes `now`); the binary's outbox worker runs it, sends what it
//! says and persists every attempt.
//!
//! Order: urgent notifications first (never folded), then retries, then the rest oldest first.
//! Nothing is dropped: when the budget refuses, the notifications wait; when it returns and
//! more than one non-urgent notification is waiting, they are folded into one digest
//! ([`Next::Digest`]); notifications held by quiet hours are folded the same way when the
//! hours end.

use std::time::Duration;

use herald_core::{Notification, Timestamp};

use crate::budget::Budget;
use crate::digest::{DigestReason, is_digest};

/// Most notifications folded into one digest; more wait for the next one.
pub const MAX_DIGEST: usize = 10_000;

/// One notification waiting in a channel's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The notification (already in the outbox).
    pub notification: Notification,
    /// Attempts made so far (counted from `since`).
    pub attempts: u32,
    /// Since when it is pending (its creation, or a retry of a dead letter): its maximum age
    /// counts from here.
    pub since: Timestamp,
    /// Not to be sent before this instant (a retry's backoff, the end of quiet hours).
    pub due: Timestamp,
    /// Urgent: sent before anything else and never folded into a digest.
    pub urgent: bool,
    /// Held by quiet hours: folded into a digest with the others held when `due` comes.
    pub held: bool,
    /// Its group (subscription `group_by`), if grouped: the notifications of one group due
    /// together go out as one message.
    pub group: Option<String>,
    /// The group's `group_interval` (least time between two of its messages).
    pub group_interval: Duration,
}

impl Pending {
    /// A new notification, due at once.
    pub fn new(notification: Notification, urgent: bool) -> Self {
        let since = notification.created_at;
        Self {
            notification,
            attempts: 0,
            since,
            due: since,
            urgent,
            held: false,
            group: None,
            group_interval: Duration::ZERO,
        }
    }

    /// Whether it may be folded into a digest (a fresh, non-urgent, non-digest notification).
    fn foldable(&self) -> bool {
        !self.urgent && self.attempts == 0 && !is_digest(&self.notification.id)
    }
}

/// What the worker does next.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one value per decision, moved straight into a send
pub enum Next {
    /// Send this one (the budget has been charged for it).
    Send(Pending),
    /// Fold these (oldest first, at least two) into one digest and send it (the budget has
    /// been charged for the digest).
    Digest {
        /// The folded notifications.
        items: Vec<Pending>,
        /// Why they were folded.
        reason: DigestReason,
    },
    /// Nothing to do for this long (`None`: until something is pushed).
    Wait(Option<Duration>),
}

/// The queue of one channel.
#[derive(Debug)]
pub struct ChannelQueue {
    budget: Budget,
    items: Vec<Pending>,
    paused_until: Option<Timestamp>,
    over_budget: bool,
    /// Group -> (when its last message went out, its group_interval).
    groups: std::collections::HashMap<String, (Timestamp, Duration)>,
    /// Ids of `items`.
    ids: std::collections::HashSet<String>,
}

impl ChannelQueue {
    /// An empty queue spending `budget`.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            items: Vec::new(),
            paused_until: None,
            over_budget: false,
            groups: std::collections::HashMap::new(),
            ids: std::collections::HashSet::new(),
        }
    }

    /// Adds a notification (new, retried, or restored after a restart). A grouped one is not
    /// due before its group's `group_interval` has passed since the group's last message.
    pub fn push(&mut self, mut p: Pending) {
        if let Some((last, interval)) = p.group.as_ref().and_then(|g| self.groups.get(g)) {
            let interval = jiff::SignedDuration::try_from(*interval).unwrap_or_default();
            if let Ok(next) = last.checked_add(interval) {
                p.due = p.due.max(next);
            }
        }
        self.ids.insert(p.notification.id.clone());
        self.items.push(p);
    }

    /// Records that a message of `group` went out at `at`; its next one waits `interval`.
    pub fn group_sent(&mut self, group: &str, at: Timestamp, interval: Duration) {
        self.groups.insert(group.to_string(), (at, interval));
    }

    /// Notifications waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the notification `id` waits here.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn take(&mut self, i: usize) -> Pending {
        let p = self.items.swap_remove(i);
        self.ids.remove(&p.notification.id);
        p
    }

    /// Sends nothing before `until` (the receiver asked to wait, e.g. 429 with Retry-After).
    pub fn pause_until(&mut self, until: Timestamp) {
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }

    /// Decides what to do at `now`.
    pub fn next(&mut self, now: Timestamp) -> Next {
        if let Some(p) = self.paused_until {
            if p > now {
                return Next::Wait(Some(until(now, p)));
            }
            self.paused_until = None;
        }
        let mut earliest_future: Option<Timestamp> = None;
        let mut urgent: Option<usize> = None;
        let mut retry: Option<usize> = None;
        let mut fresh: Vec<usize> = Vec::new();
        let mut held = false;
        for (i, p) in self.items.iter().enumerate() {
            if p.due > now {
                earliest_future = Some(earliest_future.map_or(p.due, |e: Timestamp| e.min(p.due)));
                continue;
            }
            let older = |j: Option<usize>| {
                j.is_none_or(|j| {
                    let q: &Pending = &self.items[j];
                    (p.due, p.notification.created_at) < (q.due, q.notification.created_at)
                })
            };
            if p.urgent {
                if older(urgent) {
                    urgent = Some(i);
                }
            } else if !p.foldable() {
                if older(retry) {
                    retry = Some(i);
                }
            } else {
                held |= p.held;
                fresh.push(i);
            }
        }
        if urgent.is_none() && retry.is_none() && fresh.is_empty() {
            self.over_budget = false;
            return Next::Wait(earliest_future.map(|t| until(now, t)));
        }
        if let Err(wait) = self.budget.try_take() {
            self.over_budget = true;
            return Next::Wait(Some(wait));
        }
        if let Some(i) = urgent.or(retry) {
            return Next::Send(self.take(i));
        }
        // A group that is due goes out as one message (alone when it is one notification).
        if let Some(group) = fresh
            .iter()
            .filter_map(|i| self.items[*i].group.clone())
            .min()
        {
            let mut members: Vec<usize> = fresh
                .iter()
                .copied()
                .filter(|i| self.items[*i].group.as_deref() == Some(group.as_str()))
                .collect();
            members.sort_unstable_by(|a, b| b.cmp(a));
            let mut items: Vec<Pending> = members.into_iter().map(|i| self.take(i)).collect();
            sort_oldest_first(&mut items);
            if items.len() == 1 {
                return Next::Send(items.remove(0));
            }
            return Next::Digest {
                items,
                reason: DigestReason::Grouped,
            };
        }
        if fresh.len() >= 2 && (self.over_budget || held) {
            let reason = if self.over_budget {
                DigestReason::OverBudget
            } else {
                DigestReason::QuietHours
            };
            fresh.sort_by(|a, b| {
                let (a, b) = (&self.items[*a], &self.items[*b]);
                (a.notification.created_at, &a.notification.id)
                    .cmp(&(b.notification.created_at, &b.notification.id))
            });
            fresh.truncate(MAX_DIGEST);
            let mut take = fresh.clone();
            take.sort_unstable_by(|a, b| b.cmp(a));
            let mut items: Vec<Pending> = take.into_iter().map(|i| self.take(i)).collect();
            sort_oldest_first(&mut items);
            self.over_budget = false;
            return Next::Digest { items, reason };
        }
        // One at a time, oldest first, while the budget lasts.
        let oldest = fresh
            .iter()
            .copied()
            .min_by(|a, b| {
                let (a, b) = (&self.items[*a], &self.items[*b]);
                (a.notification.created_at, &a.notification.id)
                    .cmp(&(b.notification.created_at, &b.notification.id))
            })
            .unwrap_or(0);
        Next::Send(self.take(oldest))
    }
}

fn sort_oldest_first(items: &mut [Pending]) {
    items.sort_by(|a, b| {
        (a.notification.created_at, &a.notification.id)
            .cmp(&(b.notification.created_at, &b.notification.id))
    });
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    Duration::try_from(d)
        .unwrap_or_default()
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelKind, Quota};
    use crate::testutil::notification;
    use herald_core::{Clock, ManualClock, Severity};
    use std::sync::Arc;

    fn start() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn item(i: usize, at: Timestamp, urgent: bool) -> Pending {
        let mut n = notification("ch");
        n.id = format!("n-{i:05}");
        n.created_at = at;
        n.severity = if urgent {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Pending::new(n, urgent)
    }

    /// What a simulated worker did: sends (time, folded ids or the one id).
    #[derive(Default)]
    struct Log {
        sends: Vec<(Timestamp, Vec<String>, bool)>,
    }

    /// Drives a queue with `arrivals` (time, urgent), sending instantly; returns the log.
    fn simulate(quotas: &[Quota], arrivals: &[(Timestamp, bool)]) -> Log {
        let clock = ManualClock::new(start());
        let mut q = ChannelQueue::new(Budget::new(quotas, Arc::new(clock.clone())));
        let mut log = Log::default();
        let mut next_arrival = 0;
        loop {
            let now = clock.now();
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now {
                let (at, urgent) = arrivals[next_arrival];
                q.push(item(next_arrival, at, urgent));
                next_arrival += 1;
            }
            match q.next(now) {
                Next::Send(p) => log.sends.push((now, vec![p.notification.id], p.urgent)),
                Next::Digest { items, .. } => {
                    assert!(items.len() >= 2);
                    assert!(items.iter().all(|p| !p.urgent));
                    log.sends.push((
                        now,
                        items.into_iter().map(|p| p.notification.id).collect(),
                        false,
                    ));
                }
                Next::Wait(wait) => {
                    // The worker sleeps `wait` (or until an arrival when idle); what arrives
                    // meanwhile is pushed when it wakes, which changes nothing the queue
                    // could have done earlier: it was waiting for budget or a due time.
                    let to_arrival = arrivals.get(next_arrival).map(|a| a.0.duration_since(now));
                    let step = match (wait, to_arrival) {
                        (Some(w), _) => w,
                        (None, Some(a)) => Duration::try_from(a).unwrap_or_default(),
                        (None, None) => break,
                    };
                    clock.advance(step.max(Duration::from_millis(1)));
                }
            }
        }
        log
    }

    /// The most sends in any window `[t, t + per)`.
    fn max_in_window(sends: &[(Timestamp, Vec<String>, bool)], per: Duration) -> usize {
        let times: Vec<Timestamp> = sends.iter().map(|s| s.0).collect();
        let span = jiff::SignedDuration::try_from(per).unwrap();
        let mut best = 0;
        let mut j = 0;
        for i in 0..times.len() {
            while j < times.len() && times[j] < times[i].checked_add(span).unwrap() {
                j += 1;
            }
            best = best.max(j - i);
        }
        best
    }

    /// 10,000 evictions in one minute (one every 6 ms), every 500th urgent.
    fn storm() -> Vec<(Timestamp, bool)> {
        (0..10_000)
            .map(|i| {
                let at = start()
                    .checked_add(jiff::SignedDuration::from_millis(6 * i as i64))
                    .unwrap();
                (at, i % 500 == 0)
            })
            .collect()
    }

    #[test]
    fn an_eviction_storm_stays_within_every_channels_budget_and_loses_nothing() {
        let arrivals = storm();
        for kind in ChannelKind::ALL {
            let quotas = kind.default_rate_limits();
            if quotas.is_empty() {
                continue;
            }
            let log = simulate(&quotas, &arrivals);
            for q in &quotas {
                let max = max_in_window(&log.sends, q.per);
                assert!(
                    max <= q.count as usize,
                    "{kind}: {max} messages within {:?}, budget {}",
                    q.per,
                    q.count
                );
            }
            // Every notification went out exactly once, alone or in a digest.
            let mut ids: Vec<&String> = log.sends.iter().flat_map(|s| &s.1).collect();
            ids.sort();
            let before = ids.len();
            ids.dedup();
            assert_eq!(before, ids.len(), "{kind}: a notification sent twice");
            assert_eq!(ids.len(), 10_000, "{kind}: notifications lost");
            // Urgent ones are never folded, and go before any digest waiting with them.
            let urgent_alone = log.sends.iter().filter(|s| s.2 && s.1.len() == 1).count();
            assert_eq!(urgent_alone, 20, "{kind}");
            // Far fewer messages than notifications.
            assert!(
                log.sends.len() < 500,
                "{kind}: {} messages",
                log.sends.len()
            );
        }
    }

    #[test]
    fn unlimited_channels_send_one_by_one() {
        let arrivals: Vec<_> = storm().into_iter().take(100).collect();
        let log = simulate(&[], &arrivals);
        assert_eq!(log.sends.len(), 100);
        assert!(log.sends.iter().all(|s| s.1.len() == 1));
    }

    #[test]
    fn under_budget_nothing_is_digested_and_urgent_goes_first() {
        let clock = ManualClock::new(start());
        let quotas = [Quota::new(10, Duration::from_secs(1))];
        let mut q = ChannelQueue::new(Budget::new(&quotas, Arc::new(clock.clone())));
        q.push(item(1, start(), false));
        q.push(item(2, start(), false));
        q.push(item(3, start(), true));
        let ids: Vec<String> = (0..3)
            .map(|_| match q.next(start()) {
                Next::Send(p) => p.notification.id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["n-00003", "n-00001", "n-00002"]);
        assert_eq!(q.next(start()), Next::Wait(None));
    }

    #[test]
    fn retries_wait_for_their_time_and_pauses_hold_everything() {
        let clock = ManualClock::new(start());
        let mut q = ChannelQueue::new(Budget::unlimited(Arc::new(clock.clone())));
        let mut p = item(1, start(), false);
        p.attempts = 1;
        p.due = start()
            .checked_add(jiff::SignedDuration::from_secs(4))
            .unwrap();
        q.push(p);
        assert_eq!(q.next(start()), Next::Wait(Some(Duration::from_secs(4))));
        q.push(item(2, start(), false));
        q.pause_until(
            start()
                .checked_add(jiff::SignedDuration::from_secs(2))
                .unwrap(),
        );
        assert_eq!(q.next(start()), Next::Wait(Some(Duration::from_secs(2))));
        let later = start()
            .checked_add(jiff::SignedDuration::from_secs(5))
            .unwrap();
        // The retry goes before the fresh one; a retried notification is never folded.
        assert!(matches!(q.next(later), Next::Send(p) if p.notification.id == "n-00001"));
        assert!(matches!(q.next(later), Next::Send(p) if p.notification.id == "n-00002"));
    }

    #[test]
    fn held_notifications_fold_into_a_quiet_hours_digest() {
        let clock = ManualClock::new(start());
        let mut q = ChannelQueue::new(Budget::unlimited(Arc::new(clock.clone())));
        let end = start()
            .checked_add(jiff::SignedDuration::from_secs(3600))
            .unwrap();
        for i in 0..3 {
            let mut p = item(i, start(), false);
            p.held = true;
            p.due = end;
            q.push(p);
        }
        assert_eq!(q.next(start()), Next::Wait(Some(Duration::from_secs(3600))));
        match q.next(end) {
            Next::Digest { items, reason } => {
                assert_eq!(items.len(), 3);
                assert_eq!(reason, DigestReason::QuietHours);
            }
            other => panic!("{other:?}"),
        }
        assert!(q.is_empty());
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;
    use crate::testutil::notification;
    use herald_core::ManualClock;
    use std::sync::Arc;

    fn at(secs: i64) -> Timestamp {
        "2025-06-01T12:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    }

    fn grouped(i: usize, created: i64, group: &str, wait: i64) -> Pending {
        let mut n = notification("ch");
        n.id = format!("g-{i}");
        n.created_at = at(created);
        let mut p = Pending::new(n, false);
        p.due = at(created + wait);
        p.group = Some(group.to_string());
        p
    }

    #[test]
    fn groups_wait_then_go_out_as_one_message_and_respect_group_interval() {
        let clock = ManualClock::new(at(0));
        let mut q = ChannelQueue::new(Budget::unlimited(Arc::new(clock)));
        // group_wait 30s: two of group A within 10s, one of B.
        q.push(grouped(1, 0, "A", 30));
        q.push(grouped(2, 5, "A", 30));
        q.push(grouped(3, 9, "B", 30));
        assert_eq!(q.next(at(10)), Next::Wait(Some(Duration::from_secs(20))));
        match q.next(at(35)) {
            Next::Digest { items, reason } => {
                assert_eq!(reason, DigestReason::Grouped);
                let ids: Vec<&str> = items.iter().map(|p| p.notification.id.as_str()).collect();
                assert_eq!(ids, ["g-1", "g-2"]);
            }
            other => panic!("{other:?}"),
        }
        q.group_sent("A", at(35), Duration::from_secs(300));
        // B is due at 39s and alone: sent as itself.
        assert!(matches!(q.next(at(40)), Next::Send(p) if p.notification.id == "g-3"));
        // A new A notification waits for group_interval after the last A message.
        q.push(grouped(4, 50, "A", 30));
        assert_eq!(q.next(at(80)), Next::Wait(Some(Duration::from_secs(255))));
        assert!(matches!(q.next(at(335)), Next::Send(p) if p.notification.id == "g-4"));
    }
}
