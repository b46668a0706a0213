//! Delivery with bounded retries: the [`Dispatcher`] calls a channel, waits (exponential
//! backoff with jitter, or the receiver's `Retry-After`) after a retryable failure, and returns
//! every attempt it made so the caller can persist them. Time is injected (a [`Sleeper`] and a
//! [`Clock`]), so tests run instantly and can check the waits.
//!
//! The durable outbox makes one attempt at a time ([`Dispatcher::attempt`]) and persists each
//! before deciding on the next; a notification becomes a dead letter when its attempts or its
//! age (counted from when it became pending) run out. [`DeliveryConfig`] is the `delivery:`
//! section of the config file.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{Clock, DeliveryAttempt, DeliveryOutcome, Notification, SystemClock, Timestamp};
use serde::Deserialize;

use crate::channel::{BoxFuture, Channels};

/// How a notification is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1). Default 5.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one. Default 1s.
    pub initial_backoff: Duration,
    /// Longest computed backoff. Default 60s.
    pub max_backoff: Duration,
    /// Longest wait granted to a receiver's `Retry-After`; longer requests are capped. Default
    /// 5 minutes.
    pub max_retry_after: Duration,
    /// Random fraction (0.0 to 1.0) taken off each computed backoff, so many notifications that
    /// failed together do not retry together. `0.0` makes backoff deterministic. Default 0.5.
    pub jitter: f64,
    /// Oldest a notification may get (from when it became pending) and still be retried; a
    /// failure whose next retry would come later makes it a dead letter. `None`: no limit.
    /// Default `None`.
    pub max_age: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            jitter: 0.5,
            max_age: None,
        }
    }
}

/// The `delivery:` section of the config file: how the outbox retries.
///
/// ```yaml
/// delivery:
///   max_attempts: 50      # then a dead letter
///   max_age: 24h          # or when it is older than this (from when it became pending)
///   initial_backoff: 1s   # doubled after each failure ...
///   max_backoff: 5m       # ... up to this, minus up to half of it as jitter
///   max_retry_after: 1h   # longest Retry-After honoured
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts in total before a notification is a dead letter (at least 1). Default 50.
    pub max_attempts: u32,
    /// Age after which a failing notification is a dead letter. Default 24h.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// First backoff. Default 1s.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest backoff. Default 5m.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured. Default 1h.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 50,
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl DeliveryConfig {
    /// Problems with the values, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_attempts == 0 {
            out.push(("max_attempts", "must be at least 1".to_string()));
        }
        if self.max_age.is_zero() {
            out.push(("max_age", "must be longer than 0s".to_string()));
        }
        if self.initial_backoff > self.max_backoff {
            out.push((
                "initial_backoff",
                "must not be longer than max_backoff".to_string(),
            ));
        }
        out
    }

    /// The retry policy it describes (jitter 0.5).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            max_retry_after: self.max_retry_after,
            jitter: 0.5,
            max_age: Some(self.max_age),
        }
    }
}

/// One attempt and what follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The attempt, to persist. `Dead` when the notification has failed for good.
    pub attempt: DeliveryAttempt,
    /// When the notification failed but may be retried: how long to wait.
    pub retry_in: Option<Duration>,
    /// Whether the wait was asked for by the receiver (`Retry-After`): the whole channel
    /// should pause, not just this notification.
    pub receiver_asked: bool,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): the receiver's `Retry-After`
    /// when given (capped at `max_retry_after`), else `initial_backoff * 2^(attempt-1)` capped
    /// at `max_backoff`, minus up to `jitter` of it.
    pub fn delay(&self, attempt: u32, retry_after_secs: Option<u64>) -> Duration {
        if let Some(secs) = retry_after_secs {
            return Duration::from_secs(secs).min(self.max_retry_after);
        }
        let exp = attempt.saturating_sub(1).min(30);
        let backoff = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return backoff;
        }
        backoff.mul_f64(1.0 - jitter * rand::random::<f64>())
    }
}

/// Something that waits. Production uses [`TokioSleeper`]; tests record the requested waits
/// and return at once.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// Waits with `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Delivers notifications with retries.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: RetryPolicy,
    sleeper: Arc<dyn Sleeper>,
    clock: Arc<dyn Clock>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Self::new(RetryPolicy::default())
    }
}

impl Dispatcher {
    /// A dispatcher with `policy`, the tokio timer and the system clock.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            sleeper: Arc::new(TokioSleeper),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same dispatcher waiting through `sleeper`.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The same dispatcher stamping attempts with `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Its retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Makes attempt number `attempt` (1-based, counted from `since`) to deliver `n`, pending
    /// since `since`, and decides what follows: a retryable failure becomes `Dead` when it was
    /// the last allowed attempt or when the retry would come after the maximum age.
    pub async fn attempt(
        &self,
        channels: &Channels,
        n: &Notification,
        attempt: u32,
        since: Timestamp,
    ) -> Step {
        let max = self.policy.max_attempts.max(1);
        let mut outcome = channels.send(n).await;
        let now = self.clock.now();
        let mut retry_in = None;
        let mut receiver_asked = false;
        if let DeliveryOutcome::Failed {
            error,
            retry_after_secs,
        } = &outcome
        {
            let wait = self.policy.delay(attempt, *retry_after_secs);
            let age = Duration::try_from(now.duration_since(since)).unwrap_or_default();
            if attempt >= max {
                outcome = DeliveryOutcome::Dead {
                    error: format!("{error} (giving up after {attempt} attempts)"),
                };
            } else if let Some(max_age) = self.policy.max_age.filter(|m| age + wait > *m) {
                outcome = DeliveryOutcome::Dead {
                    error: format!(
                        "{error} (giving up after {attempt} attempts: older than the maximum age of {})",
                        humantime_serde::re::humantime::format_duration(max_age)
                    ),
                };
            } else {
                retry_in = Some(wait);
                receiver_asked = retry_after_secs.is_some();
            }
        }
        match &outcome {
            DeliveryOutcome::Delivered { .. } => {
                tracing::info!(channel = %n.channel, notification = %n.id, attempt, "delivered");
            }
            DeliveryOutcome::Failed { error, .. } => {
                tracing::warn!(channel = %n.channel, notification = %n.id, attempt, %error, retry_in = ?retry_in, "delivery failed, will retry");
            }
            DeliveryOutcome::Dead { error } => {
                tracing::error!(channel = %n.channel, notification = %n.id, attempt, %error, "delivery failed for good: dead letter");
            }
        }
        Step {
            attempt: DeliveryAttempt {
                notification_id: n.id.clone(),
                channel: n.channel.clone(),
                attempt,
                at: now,
                outcome,
            },
            retry_in,
            receiver_asked,
        }
    }

    /// Delivers `n` on `channels`, retrying retryable failures up to
    /// [`RetryPolicy::max_attempts`] in total. Returns every attempt, in order; the last one is
    /// `Delivered`, or `Dead` (a permanent failure, or the last retryable failure once attempts
    /// are exhausted, with "giving up after N attempts" added to its error).
    pub async fn deliver(&self, channels: &Channels, n: &Notification) -> Vec<DeliveryAttempt> {
        let since = self.clock.now();
        let mut attempts = Vec::new();
        for attempt in 1..=self.policy.max_attempts.max(1) {
            let step = self.attempt(channels, n, attempt, since).await;
            attempts.push(step.attempt);
            match step.retry_in {
                Some(d) => self.sleeper.sleep(d).await,
                None => break,
            }
        }
        attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Channel, ChannelKind};
    use crate::testutil::{RecordingSleeper, notification};
    use std::sync::Mutex;

    /// A channel that answers from a script, then `Delivered`.
    #[derive(Debug)]
    struct Scripted {
        script: Mutex<Vec<DeliveryOutcome>>,
        calls: Mutex<u32>,
    }

    impl Channel for Scripted {
        fn name(&self) -> &str {
            "fake"
        }
        fn kind(&self) -> ChannelKind {
            ChannelKind::Webhook
        }
        fn template_kind(&self) -> &'static str {
            "text"
        }
        fn send<'a>(&'a self, _: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
            *self.calls.lock().unwrap() += 1;
            let mut s = self.script.lock().unwrap();
            let out = if s.is_empty() {
                DeliveryOutcome::Delivered { status: Some(200) }
            } else {
                s.remove(0)
            };
            Box::pin(async move { out })
        }
    }

    fn failed(retry_after: Option<u64>) -> DeliveryOutcome {
        DeliveryOutcome::Failed {
            error: "HTTP 503".into(),
            retry_after_secs: retry_after,
        }
    }

    async fn run(
        script: Vec<DeliveryOutcome>,
        policy: RetryPolicy,
    ) -> (Vec<DeliveryAttempt>, Vec<Duration>) {
        let ch = Arc::new(Scripted {
            script: Mutex::new(script),
            calls: Mutex::new(0),
        });
        let channels = Channels::from_channels([ch as Arc<dyn Channel>]);
        let sleeper = Arc::new(RecordingSleeper::default());
        let d = Dispatcher::new(policy).with_sleeper(sleeper.clone());
        let attempts = d.deliver(&channels, &notification("fake")).await;
        (attempts, sleeper.waits())
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn retries_with_exponential_backoff_then_succeeds() {
        let (attempts, waits) = run(vec![failed(None), failed(None), failed(None)], policy()).await;
        assert_eq!(attempts.len(), 4);
        assert_eq!(
            attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(attempts[3].outcome.is_delivered());
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs).to_vec());
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_as_dead() {
        let (attempts, waits) = run(vec![failed(None); 10], policy()).await;
        assert_eq!(attempts.len(), 5);
        assert_eq!(waits.len(), 4);
        assert_eq!(
            attempts[4].outcome,
            DeliveryOutcome::Dead {
                error: "HTTP 503 (giving up after 5 attempts)".into()
            }
        );
    }

    #[tokio::test]
    async fn permanent_failure_is_not_retried() {
        let dead = DeliveryOutcome::Dead {
            error: "HTTP 400".into(),
        };
        let (attempts, waits) = run(vec![dead.clone()], policy()).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, dead);
        assert!(waits.is_empty());
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_capped() {
        let (_, waits) = run(vec![failed(Some(7)), failed(Some(100_000))], policy()).await;
        assert_eq!(waits, [Duration::from_secs(7), Duration::from_secs(300)]);
    }

    #[tokio::test]
    async fn unknown_channel_is_dead_at_once() {
        let d = Dispatcher::default();
        let attempts = d.deliver(&Channels::default(), &notification("nope")).await;
        assert_eq!(attempts.len(), 1);
        assert!(matches!(attempts[0].outcome, DeliveryOutcome::Dead { .. }));
    }

    #[test]
    fn backoff_is_capped_and_jitter_stays_in_range() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = p.delay(attempt, None);
            let full = Duration::from_secs(1u64 << (attempt - 1).min(6)).min(p.max_backoff);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?}");
        }
    }
}
