//! Per-channel budgets: every [`Quota`] of a channel (its config's `rate_limit:` or its kind's
//! documented default, see [`ChannelKind::default_rate_limits`](crate::ChannelKind)) as a
//! governor rate limiter on the injected [`Clock`], so tests drive budgets with a
//! [`ManualClock`](herald_core::ManualClock) and production with the wall clock.
//!
//! A budget never drops anything: [`Budget::try_take`] either grants one message or says how
//! long to wait; what waits is folded into a digest by the [`queue`](crate::queue).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use governor::RateLimiter;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use herald_core::Clock;

use crate::channel::Quota;

/// A governor clock reading the injected herald [`Clock`]; instants are the time since the
/// Unix epoch (0 before it).
#[derive(Clone)]
pub struct BudgetClock(Arc<dyn Clock>);

impl BudgetClock {
    /// Reads `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self(clock)
    }
}

impl fmt::Debug for BudgetClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BudgetClock").field(&self.0).finish()
    }
}

impl GovernorClock for BudgetClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let ns = self.0.now().as_nanosecond();
        u64::try_from(ns)
            .map(Duration::from_nanos)
            .unwrap_or_default()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, BudgetClock, NoOpMiddleware<Duration>>;

/// The budget of one channel: all of its quotas must allow a message.
pub struct Budget {
    quotas: Vec<Quota>,
    limiters: Vec<Limiter>,
    clock: BudgetClock,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// A budget enforcing every quota of `quotas` (invalid quotas, with a zero count or
    /// window, are skipped: validation reports them). No quotas: unlimited.
    pub fn new(quotas: &[Quota], clock: Arc<dyn Clock>) -> Self {
        let clock = BudgetClock::new(clock);
        let mut kept = Vec::new();
        let mut limiters = Vec::new();
        // Shortest windows first: when a longer window refuses, the cell already taken from a
        // shorter one is lost, and a short window gets its cells back soonest.
        let mut sorted: Vec<Quota> = quotas.to_vec();
        sorted.sort_by_key(|q| q.per);
        for q in sorted {
            if let Some(gq) = strict_quota(q) {
                limiters.push(Limiter::direct_with_clock(gq, clock.clone()));
                kept.push(q);
            }
        }
        Self {
            quotas: kept,
            limiters,
            clock,
        }
    }

    /// A budget without limits.
    pub fn unlimited(clock: Arc<dyn Clock>) -> Self {
        Self::new(&[], clock)
    }

    /// The quotas enforced.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Takes one message from every quota, or returns how long to wait before trying again.
    /// When one quota refuses, the quotas checked before it (shorter windows) have spent a
    /// cell: the budget errs on the side of sending less, never more. Callers wait the
    /// returned time before asking again.
    pub fn try_take(&self) -> Result<(), Duration> {
        for l in &self.limiters {
            if let Err(not_until) = l.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                // governor rounds to its cell boundaries; never ask for a zero wait.
                return Err(wait.max(Duration::from_millis(1)));
            }
        }
        Ok(())
    }
}

/// The governor quota that keeps `q` in every sliding window: a burst of half the quota (at
/// least 1) and the rest spread evenly, one cell every `per / (count - burst)`. Any window of
/// length `per` then holds at most `count` messages, and the sustained rate is `count / per`.
/// `None` for a zero count or window.
pub fn strict_quota(q: Quota) -> Option<governor::Quota> {
    if q.count == 0 || q.per.is_zero() {
        return None;
    }
    let (burst, refill) = if q.count == 1 {
        (1, 1)
    } else {
        let burst = q.count / 2;
        (burst, q.count - burst)
    };
    let period = q.per.checked_div(refill)?;
    let burst = std::num::NonZeroU32::new(burst)?;
    governor::Quota::with_period(period).map(|g| g.allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{ManualClock, Timestamp};

    fn clock() -> ManualClock {
        ManualClock::new("2025-06-01T12:00:00Z".parse::<Timestamp>().unwrap())
    }

    #[test]
    fn grants_the_burst_then_refills_at_the_documented_rate() {
        let c = clock();
        // DingTalk / WeCom: 20 per minute.
        let b = Budget::new(
            &[Quota::new(20, Duration::from_secs(60))],
            Arc::new(c.clone()),
        );
        // Half the quota at once, then one every 60s / 10.
        for i in 0..10 {
            assert!(b.try_take().is_ok(), "message {i}");
        }
        let wait = b.try_take().unwrap_err();
        assert!(
            wait <= Duration::from_secs(6) && wait > Duration::ZERO,
            "{wait:?}"
        );
        c.advance(Duration::from_secs(6));
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_err());
    }

    #[test]
    fn every_quota_must_hold() {
        let c = clock();
        // Feishu: 5 per second and 100 per minute.
        let b = Budget::new(
            &[
                Quota::new(5, Duration::from_secs(1)),
                Quota::new(100, Duration::from_secs(60)),
            ],
            Arc::new(c.clone()),
        );
        let mut granted = 0;
        for _ in 0..600 {
            // 10 tries every 100 ms for a minute.
            for _ in 0..10 {
                if b.try_take().is_ok() {
                    granted += 1;
                }
            }
            c.advance(Duration::from_millis(100));
        }
        // The 100/min quota binds: never more than 100 in the minute.
        assert!((90..=100).contains(&granted), "{granted}");
    }

    #[test]
    fn no_quota_is_unlimited_and_bad_quotas_are_skipped() {
        let c = clock();
        let b = Budget::unlimited(Arc::new(c.clone()));
        assert!((0..10_000).all(|_| b.try_take().is_ok()));
        let b = Budget::new(&[Quota::new(0, Duration::from_secs(1))], Arc::new(c));
        assert!(b.quotas().is_empty());
        assert!(b.try_take().is_ok());
    }
}
