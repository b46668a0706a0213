//! Fault injection: make the fake apiserver misbehave the way real ones do, on demand.
//!
//! A [`Faults`] handle (from [`crate::Simulator::faults`], or over HTTP at
//! `/sim/faults`) holds [`FaultRule`]s. Each API request (not discovery, not `/sim/*`)
//! is matched against the rules in insertion order by verb and resource; the first rule
//! that matches and still applies is consumed (its count goes down by one) and its
//! [`Fault`] decides the answer:
//!
//! * [`Fault::DropMidLine`] / [`Fault::DropMidLineAfter`]: a WATCH writes half of an
//!   event line and then the connection is torn down (no terminating chunk); a LIST
//!   writes half of its body the same way.
//! * [`Fault::Stall`]: a WATCH answers `200` and then sends nothing (no events, no
//!   bookmarks) for the duration, then carries on with everything queued meanwhile; a
//!   LIST sends nothing at all for the duration, then answers normally.
//! * [`Fault::InternalError`], [`Fault::ServiceUnavailable`], [`Fault::TooManyRequests`],
//!   [`Fault::Forbidden`]: the request is answered with the apiserver's `Status` body
//!   (500 `InternalError`, 503 `ServiceUnavailable`, 429 `TooManyRequests` with
//!   `Retry-After`, 403 `Forbidden` with the RBAC message) and has no effect.
//!
//! A rule applies to its next `times` matching requests, for a `duration`, or both
//! (whichever ends first); a rule with neither applies once. Stream faults only match
//! LIST and WATCH requests. Faulted requests are counted in
//! [`crate::RequestStats::faulted`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SimError;
use crate::stats::Verb;

/// Default user of [`Fault::Forbidden`] (herald's service account in the docs).
pub const DEFAULT_FORBIDDEN_USER: &str = "system:serviceaccount:herald:herald";
/// Default message of [`Fault::InternalError`] (an etcd timeout, as surfaced by the apiserver).
pub const DEFAULT_INTERNAL_ERROR: &str = "etcdserver: request timed out";
/// Default message of [`Fault::ServiceUnavailable`].
pub const DEFAULT_UNAVAILABLE: &str = "the server is currently unable to handle the request";
/// Message of [`Fault::TooManyRequests`] (the apiserver's max-in-flight / APF rejection text).
pub const TOO_MANY_REQUESTS_MESSAGE: &str = "Too many requests, please try again later.";

fn default_internal() -> String {
    DEFAULT_INTERNAL_ERROR.into()
}

fn default_unavailable() -> String {
    DEFAULT_UNAVAILABLE.into()
}

fn default_user() -> String {
    DEFAULT_FORBIDDEN_USER.into()
}

fn default_retry_after() -> u32 {
    1
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn de_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

/// What an injected fault does to a request.
///
/// JSON (for `POST /sim/faults`): `{"fault": "drop_mid_line"}`,
/// `{"fault": "drop_mid_line_after", "lines": 3}`, `{"fault": "stall", "seconds": 30}`,
/// `{"fault": "internal_error", "message": "..."}`, `{"fault": "service_unavailable"}`,
/// `{"fault": "too_many_requests", "retry_after_seconds": 5}`,
/// `{"fault": "forbidden", "user": "system:serviceaccount:herald:herald"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// WATCH: write the first half of the next event line, then drop the connection.
    /// LIST: write the first half of the body, then drop the connection.
    DropMidLine,
    /// WATCH: write `lines` complete lines, then half of the next one, then drop the
    /// connection. (LIST: like [`Fault::DropMidLine`].)
    DropMidLineAfter {
        /// Complete lines (events or bookmarks) written before the cut.
        lines: u32,
    },
    /// Keep the connection open and send nothing (no events, no bookmarks) for
    /// `duration`, then continue normally. [`Faults::release_stalls`] ends it early.
    Stall {
        /// How long to stay silent (JSON: `seconds`).
        #[serde(
            rename = "seconds",
            serialize_with = "ser_secs",
            deserialize_with = "de_secs"
        )]
        duration: Duration,
    },
    /// `500` `InternalError`: `Internal error occurred: <message>`.
    InternalError {
        /// The underlying error (default: an etcd request timeout).
        #[serde(default = "default_internal")]
        message: String,
    },
    /// `503` `ServiceUnavailable` with `message`.
    ServiceUnavailable {
        /// Message.
        #[serde(default = "default_unavailable")]
        message: String,
    },
    /// `429` `TooManyRequests`, `Retry-After: N` and `details.retryAfterSeconds: N`.
    TooManyRequests {
        /// Seconds the client is asked to wait (must be > 0 to be sent).
        #[serde(default = "default_retry_after")]
        retry_after_seconds: u32,
    },
    /// `403` `Forbidden` with the RBAC message for this request's verb, resource and
    /// namespace.
    Forbidden {
        /// The denied user.
        #[serde(default = "default_user")]
        user: String,
    },
}

impl Fault {
    /// [`Fault::Stall`] for `duration`.
    pub fn stall(duration: Duration) -> Fault {
        Fault::Stall { duration }
    }

    /// [`Fault::InternalError`] with the default message.
    pub fn internal_error() -> Fault {
        Fault::InternalError {
            message: default_internal(),
        }
    }

    /// [`Fault::ServiceUnavailable`] with the default message.
    pub fn service_unavailable() -> Fault {
        Fault::ServiceUnavailable {
            message: default_unavailable(),
        }
    }

    /// [`Fault::TooManyRequests`] asking to retry after `seconds`.
    pub fn too_many_requests(seconds: u32) -> Fault {
        Fault::TooManyRequests {
            retry_after_seconds: seconds,
        }
    }

    /// [`Fault::Forbidden`] for [`DEFAULT_FORBIDDEN_USER`].
    pub fn forbidden() -> Fault {
        Fault::Forbidden {
            user: default_user(),
        }
    }

    /// True for faults that act on the response stream (drop, stall).
    pub fn is_stream_fault(&self) -> bool {
        matches!(
            self,
            Fault::DropMidLine | Fault::DropMidLineAfter { .. } | Fault::Stall { .. }
        )
    }

    fn applies_to(&self, verb: Verb) -> bool {
        !self.is_stream_fault() || matches!(verb, Verb::List | Verb::Watch)
    }

    /// The error response of an error fault for `req` (`None` for stream faults).
    pub fn error_for(&self, req: &RequestInfo<'_>) -> Option<SimError> {
        match self {
            Fault::InternalError { message } => Some(SimError::Internal(message.clone())),
            Fault::ServiceUnavailable { message } => {
                Some(SimError::ServiceUnavailable(message.clone()))
            }
            Fault::TooManyRequests {
                retry_after_seconds,
            } => Some(SimError::TooManyRequests {
                message: TOO_MANY_REQUESTS_MESSAGE.into(),
                retry_after_seconds: *retry_after_seconds,
            }),
            Fault::Forbidden { user } => {
                let resource = match req.subresource {
                    Some(sub) => format!("{}/{sub}", req.resource),
                    None => req.resource.to_string(),
                };
                Some(SimError::forbidden(
                    user,
                    req.verb.as_str(),
                    &resource,
                    req.group,
                    req.namespace,
                    req.name,
                ))
            }
            Fault::DropMidLine | Fault::DropMidLineAfter { .. } | Fault::Stall { .. } => None,
        }
    }
}

/// What a fault needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Verb.
    pub verb: Verb,
    /// Plural resource (`pods`).
    pub resource: &'a str,
    /// Subresource (`status`), if any.
    pub subresource: Option<&'a str>,
    /// API group (`""` for core, `events.k8s.io`).
    pub group: &'a str,
    /// Request namespace.
    pub namespace: Option<&'a str>,
    /// Object name, for requests on one object.
    pub name: Option<&'a str>,
}

/// A fault plus which requests it applies to and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What happens to a matching request.
    pub fault: Fault,
    /// Only requests with this verb (`None`: any verb the fault applies to).
    pub verb: Option<Verb>,
    /// Only requests for this resource, named as in the stats (`pods`, `nodes`,
    /// `events`, `events.events.k8s.io`); `None`: any resource.
    pub resource: Option<String>,
    /// Number of matching requests to fault (`None`: unlimited while `duration` lasts).
    pub times: Option<u32>,
    /// How long the rule stays active from injection (`None`: until `times` is used up).
    pub duration: Option<Duration>,
}

impl FaultRule {
    /// A rule for the next single request of any verb/resource `fault` applies to.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            verb: None,
            resource: None,
            times: Some(1),
            duration: None,
        }
    }

    /// Restrict to `verb`.
    pub fn verb(mut self, verb: Verb) -> FaultRule {
        self.verb = Some(verb);
        self
    }

    /// Restrict to `resource` (`pods`, `events.events.k8s.io`).
    pub fn resource(mut self, resource: impl Into<String>) -> FaultRule {
        self.resource = Some(resource.into());
        self
    }

    /// Fault the next `n` matching requests.
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }

    /// Fault every matching request for `d` (clears the count; call [`FaultRule::times`]
    /// afterwards to have both limits).
    pub fn for_duration(mut self, d: Duration) -> FaultRule {
        self.duration = Some(d);
        self.times = None;
        self
    }

    fn matches(&self, verb: Verb, resource: &str) -> bool {
        self.verb.is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
            && self.fault.applies_to(verb)
    }
}

/// JSON form of a [`FaultRule`] (`POST /sim/faults`): the fault's fields plus optional
/// `verb`, `resource`, `times` and `duration_seconds`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRequest {
    /// The fault (tagged by `fault`).
    #[serde(flatten)]
    pub fault: Fault,
    /// Verb filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<Verb>,
    /// Resource filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Number of requests (default 1 unless `duration_seconds` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Active period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

impl FaultRequest {
    /// Convert to a rule, validating numbers.
    pub fn into_rule(self) -> Result<FaultRule, SimError> {
        let duration =
            match self.duration_seconds {
                Some(s) => Some(Duration::try_from_secs_f64(s).map_err(|e| {
                    SimError::BadRequest(format!("invalid duration_seconds {s}: {e}"))
                })?),
                None => None,
            };
        let times = match (self.times, duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        if times == Some(0) {
            return Err(SimError::BadRequest("times must be at least 1".into()));
        }
        if let (Some(v), true) = (self.verb, self.fault.is_stream_fault())
            && !matches!(v, Verb::List | Verb::Watch)
        {
            return Err(SimError::BadRequest(format!(
                "fault {:?} only applies to list and watch requests, not {}",
                self.fault,
                v.as_str()
            )));
        }
        Ok(FaultRule {
            fault: self.fault,
            verb: self.verb,
            resource: self.resource,
            times,
            duration,
        })
    }
}

/// Identifier of an injected rule.
pub type FaultId = u64;

/// An injected rule and what is left of it (`GET /sim/faults`).
#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    /// Rule id.
    pub id: FaultId,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// Verb filter.
    pub verb: Option<Verb>,
    /// Resource filter.
    pub resource: Option<String>,
    /// Requests still to fault (`None`: unlimited until it expires).
    pub remaining: Option<u32>,
    /// Seconds until the rule expires (`None`: no time limit).
    pub expires_in_seconds: Option<f64>,
    /// Requests faulted by this rule so far.
    pub hits: u64,
}

#[derive(Debug)]
struct Slot {
    id: FaultId,
    rule: FaultRule,
    remaining: Option<u32>,
    deadline: Option<Instant>,
    hits: u64,
}

impl Slot {
    fn live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.deadline.is_none_or(|d| now < d)
    }
}

#[derive(Debug)]
struct FaultsInner {
    rules: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    release: tokio::sync::watch::Sender<u64>,
}

/// Run-time fault injection for one simulator (cheap to clone; clones share the rules).
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<FaultsInner>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            inner: Arc::new(FaultsInner {
                rules: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                release: tokio::sync::watch::Sender::new(0),
            }),
        }
    }
}

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.inner.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a rule; it is matched after the rules injected before it.
    pub fn inject(&self, rule: FaultRule) -> FaultId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = rule.duration.map(|d| Instant::now() + d);
        tracing::info!(
            id,
            fault = ?rule.fault,
            verb = rule.verb.map(Verb::as_str),
            resource = rule.resource.as_deref(),
            times = rule.times,
            duration_ms = rule.duration.map(|d| d.as_millis() as u64),
            "fault injected"
        );
        self.rules().push(Slot {
            id,
            remaining: rule.times,
            rule,
            deadline,
            hits: 0,
        });
        id
    }

    /// Fault the next WATCH request (any resource).
    pub fn next_watch(&self, fault: Fault) -> FaultId {
        self.inject(FaultRule::new(fault).verb(Verb::Watch))
    }

    /// Fault the next LIST request (any resource).
    pub fn next_list(&self, fault: Fault) -> FaultId {
        self.inject(FaultRule::new(fault).verb(Verb::List))
    }

    /// Fault the next request with `verb` on `resource`.
    pub fn next(&self, verb: Verb, resource: &str, fault: Fault) -> FaultId {
        self.inject(FaultRule::new(fault).verb(verb).resource(resource))
    }

    /// Remove one rule; false if it was not (or no longer) there.
    pub fn remove(&self, id: FaultId) -> bool {
        let mut rules = self.rules();
        let before = rules.len();
        rules.retain(|s| s.id != id);
        rules.len() != before
    }

    /// Remove every rule and end every stall in progress.
    pub fn clear(&self) {
        self.rules().clear();
        self.release_stalls();
        tracing::info!("faults cleared");
    }

    /// End every stall in progress now (stalled watches resume, stalled lists answer).
    pub fn release_stalls(&self) {
        self.inner.release.send_modify(|g| *g += 1);
    }

    /// Rules still active, in matching order.
    pub fn active(&self) -> Vec<ActiveFault> {
        let now = Instant::now();
        let mut rules = self.rules();
        rules.retain(|s| s.live(now));
        rules
            .iter()
            .map(|s| ActiveFault {
                id: s.id,
                fault: s.rule.fault.clone(),
                verb: s.rule.verb,
                resource: s.rule.resource.clone(),
                remaining: s.remaining,
                expires_in_seconds: s
                    .deadline
                    .map(|d| d.saturating_duration_since(now).as_secs_f64()),
                hits: s.hits,
            })
            .collect()
    }

    /// Consume the first live rule matching `verb` on `resource`, if any.
    pub fn take(&self, verb: Verb, resource: &str) -> Option<Fault> {
        let now = Instant::now();
        let mut rules = self.rules();
        rules.retain(|s| s.live(now));
        let slot = rules.iter_mut().find(|s| s.rule.matches(verb, resource))?;
        if let Some(n) = &mut slot.remaining {
            *n -= 1;
        }
        slot.hits += 1;
        let fault = slot.rule.fault.clone();
        let id = slot.id;
        rules.retain(|s| s.live(now));
        tracing::info!(id, verb = verb.as_str(), resource, fault = ?fault, "fault fired");
        Some(fault)
    }

    /// A stall that starts now: subscribed to [`Faults::release_stalls`] at once, so a
    /// release issued after this call (even before the stall is awaited) ends it.
    pub fn stall_ticket(&self) -> StallTicket {
        let mut rx = self.inner.release.subscribe();
        let generation = *rx.borrow_and_update();
        StallTicket { rx, generation }
    }
}

/// A pending stall (see [`Faults::stall_ticket`]).
#[derive(Debug)]
pub struct StallTicket {
    rx: tokio::sync::watch::Receiver<u64>,
    generation: u64,
}

impl StallTicket {
    /// Wait until `duration` has passed or the stalls were released.
    pub async fn wait(mut self, duration: Duration) {
        let generation = self.generation;
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.rx.wait_for(|g| *g != generation) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_verb_and_resource_and_run_out() {
        let f = Faults::default();
        f.inject(
            FaultRule::new(Fault::too_many_requests(2))
                .verb(Verb::List)
                .resource("pods")
                .times(2),
        );
        assert_eq!(f.take(Verb::List, "nodes"), None);
        assert_eq!(f.take(Verb::Watch, "pods"), None);
        assert_eq!(
            f.take(Verb::List, "pods"),
            Some(Fault::too_many_requests(2))
        );
        assert_eq!(f.active()[0].remaining, Some(1));
        assert!(f.take(Verb::List, "pods").is_some());
        assert_eq!(f.take(Verb::List, "pods"), None);
        assert!(f.active().is_empty());
    }

    #[test]
    fn stream_faults_only_hit_list_and_watch() {
        let f = Faults::default();
        f.inject(FaultRule::new(Fault::DropMidLine));
        assert_eq!(f.take(Verb::Get, "pods"), None);
        assert_eq!(f.take(Verb::Create, "events"), None);
        assert_eq!(f.take(Verb::Watch, "events"), Some(Fault::DropMidLine));
        assert_eq!(f.take(Verb::Watch, "events"), None);
    }

    #[test]
    fn duration_rules_are_unlimited_until_expiry_and_first_match_wins() {
        let f = Faults::default();
        let a =
            f.inject(FaultRule::new(Fault::forbidden()).for_duration(Duration::from_secs(3600)));
        f.inject(FaultRule::new(Fault::internal_error()));
        for _ in 0..5 {
            assert_eq!(f.take(Verb::Get, "nodes"), Some(Fault::forbidden()));
        }
        assert!(f.remove(a));
        assert_eq!(f.take(Verb::Get, "nodes"), Some(Fault::internal_error()));
        f.inject(FaultRule::new(Fault::internal_error()).for_duration(Duration::ZERO));
        assert_eq!(f.take(Verb::Get, "nodes"), None, "expired at once");
    }

    #[test]
    fn wire_format() {
        let r: FaultRequest = serde_json::from_str(
            r#"{"fault": "stall", "seconds": 1.5, "verb": "watch", "resource": "pods"}"#,
        )
        .unwrap();
        let rule = r.into_rule().unwrap();
        assert_eq!(rule.fault, Fault::stall(Duration::from_millis(1500)));
        assert_eq!((rule.verb, rule.times), (Some(Verb::Watch), Some(1)));
        let r: FaultRequest =
            serde_json::from_str(r#"{"fault": "forbidden", "duration_seconds": 10}"#).unwrap();
        let rule = r.into_rule().unwrap();
        assert_eq!(rule.fault, Fault::forbidden());
        assert_eq!(
            (rule.times, rule.duration),
            (None, Some(Duration::from_secs(10)))
        );
        let r: FaultRequest =
            serde_json::from_str(r#"{"fault": "drop_mid_line", "verb": "get"}"#).unwrap();
        assert!(r.into_rule().is_err());
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault": "nope"}"#).is_err());
        let r: FaultRequest =
            serde_json::from_str(r#"{"fault": "too_many_requests", "times": 0}"#).unwrap();
        assert!(r.into_rule().is_err());
    }

    #[tokio::test]
    async fn release_ends_a_stall() {
        let f = Faults::default();
        let ticket = f.stall_ticket();
        f.release_stalls();
        // Released before it was awaited: returns at once instead of after an hour.
        tokio::time::timeout(
            Duration::from_secs(60),
            ticket.wait(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
        let ticket = f.stall_ticket();
        tokio::time::timeout(
            Duration::from_secs(60),
            ticket.wait(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    }
}
