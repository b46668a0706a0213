//! Error type of the simulator and its mapping onto Kubernetes `Status` objects.
//!
//! Every failure the fake API server can report is a [`SimError`]; [`SimError::status`]
//! renders it as the `meta/v1 Status` body (reason string and HTTP code) the real
//! kube-apiserver would send for the same situation.

use serde_json::{Value, json};

/// Errors produced by the simulator (both the programmatic API and the HTTP server).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The object does not exist (`404 NotFound`).
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Plural resource name, e.g. `pods`.
        resource: String,
        /// Object name.
        name: String,
    },
    /// An object with that name already exists (`409 AlreadyExists`).
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Plural resource name.
        resource: String,
        /// Object name.
        name: String,
    },
    /// Optimistic-concurrency failure: stale `metadata.resourceVersion` (`409 Conflict`).
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// Plural resource name.
        resource: String,
        /// Object name.
        name: String,
    },
    /// Malformed request (`400 BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// Semantically invalid request (`422 Invalid`).
    #[error("{0}")]
    Invalid(String),
    /// Missing or wrong bearer token (`401 Unauthorized`).
    #[error("Unauthorized")]
    Unauthorized,
    /// Method not supported on this path (`405 MethodNotAllowed`).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// Unsupported request body media type (`415 UnsupportedMediaType`).
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// Requested resourceVersion / continue token is older than the kept history (`410 Expired`).
    #[error("{0}")]
    Expired(String),
    /// Requested resourceVersion is newer than anything the store has (`504 Timeout`).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// resourceVersion the client asked for.
        requested: u64,
        /// Current resourceVersion of the store.
        current: u64,
    },
    /// Denied by authorization (`403 Forbidden`), as the apiserver's RBAC rejection.
    /// Build it with [`SimError::forbidden`].
    #[error("{message}")]
    Forbidden {
        /// Full message (`pods is forbidden: User "..." cannot list resource ...`).
        message: String,
        /// API group of the resource (`""` for core).
        group: String,
        /// Resource (`pods`), reported as `details.kind` like apimachinery's `NewForbidden`.
        kind: String,
        /// Object name, for requests on one object.
        name: Option<String>,
    },
    /// Internal server error (`500 InternalError`, apimachinery's `NewInternalError`).
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// The server cannot serve right now (`503 ServiceUnavailable`).
    #[error("{0}")]
    ServiceUnavailable(String),
    /// Throttled (`429 TooManyRequests` with `details.retryAfterSeconds`; the HTTP
    /// response also carries `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// Message.
        message: String,
        /// Seconds the client should wait.
        retry_after_seconds: u32,
    },
    /// No such path (`404 NotFound` with the generic message).
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// I/O failure (binding the listener, writing a kubeconfig, ...).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation failure.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// A scenario step could not be executed.
    #[error("scenario step {step} ({what}) failed: {source}")]
    Scenario {
        /// Index of the failing step.
        step: usize,
        /// Short description of the step.
        what: String,
        /// Underlying error.
        #[source]
        source: Box<SimError>,
    },
}

impl SimError {
    /// HTTP status code the real apiserver uses for this error.
    pub fn code(&self) -> u16 {
        match self {
            SimError::NotFound { .. } | SimError::NoRoute => 404,
            SimError::AlreadyExists { .. } | SimError::Conflict { .. } => 409,
            SimError::BadRequest(_) | SimError::Json(_) => 400,
            SimError::Invalid(_) => 422,
            SimError::Unauthorized => 401,
            SimError::MethodNotAllowed => 405,
            SimError::UnsupportedMediaType(_) => 415,
            SimError::Expired(_) => 410,
            SimError::TooLargeResourceVersion { .. } => 504,
            SimError::Forbidden { .. } => 403,
            SimError::TooManyRequests { .. } => 429,
            SimError::ServiceUnavailable(_) => 503,
            SimError::Io(_) | SimError::Scenario { .. } | SimError::Internal(_) => 500,
        }
    }

    /// `Status.reason` string the real apiserver uses for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            SimError::NotFound { .. } | SimError::NoRoute => "NotFound",
            SimError::AlreadyExists { .. } => "AlreadyExists",
            SimError::Conflict { .. } => "Conflict",
            SimError::BadRequest(_) | SimError::Json(_) => "BadRequest",
            SimError::Invalid(_) => "Invalid",
            SimError::Unauthorized => "Unauthorized",
            SimError::MethodNotAllowed => "MethodNotAllowed",
            SimError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            SimError::Expired(_) => "Expired",
            SimError::TooLargeResourceVersion { .. } => "Timeout",
            SimError::Forbidden { .. } => "Forbidden",
            SimError::TooManyRequests { .. } => "TooManyRequests",
            SimError::ServiceUnavailable(_) => "ServiceUnavailable",
            SimError::Io(_) | SimError::Scenario { .. } | SimError::Internal(_) => "InternalError",
        }
    }

    /// Render as a `meta/v1 Status` object, like the apiserver's error responses.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            SimError::NotFound { resource, name }
            | SimError::AlreadyExists { resource, name }
            | SimError::Conflict { resource, name } => {
                let (res, group) = match resource.split_once('.') {
                    Some((r, g)) => (r.to_string(), Some(g.to_string())),
                    None => (resource.clone(), None),
                };
                let mut d = json!({ "name": name, "kind": res });
                if let Some(g) = group {
                    d["group"] = Value::String(g);
                }
                Some(d)
            }
            SimError::Forbidden {
                group, kind, name, ..
            } => {
                // Go's `omitempty`: empty group / name are left out.
                let mut d = json!({ "kind": kind });
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                if let Some(n) = name.as_deref().filter(|n| !n.is_empty()) {
                    d["name"] = json!(n);
                }
                Some(d)
            }
            SimError::Internal(cause) => Some(json!({ "causes": [{ "message": cause }] })),
            SimError::TooManyRequests {
                retry_after_seconds,
                ..
            } => Some(json!({ "retryAfterSeconds": retry_after_seconds })),
            SimError::TooLargeResourceVersion { .. } => Some(json!({
                "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }],
                "retryAfterSeconds": 1
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }

    /// `details.retryAfterSeconds` of the rendered Status, if positive; the HTTP layer
    /// sends it as the `Retry-After` header, like the apiserver's `ErrorNegotiated`.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.status()
            .pointer("/details/retryAfterSeconds")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
    }

    /// The apiserver's authorization rejection for `verb` on `resource` (`pods`,
    /// `pods/status`) of API `group` (`""` for core), as rendered by
    /// `responsewriters.Forbidden` + `apierrors.NewForbidden`:
    /// `pods is forbidden: User "u" cannot list resource "pods" in API group "" at the
    /// cluster scope` (or `... in the namespace "ns"`; `pods "x" is forbidden: ...` for
    /// one object).
    pub fn forbidden(
        user: &str,
        verb: &str,
        resource: &str,
        group: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> SimError {
        let base = resource.split('/').next().unwrap_or(resource);
        let qualified = if group.is_empty() {
            base.to_string()
        } else {
            format!("{base}.{group}")
        };
        let scope = match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".into(),
        };
        let reason = format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
        );
        let message = match name.filter(|n| !n.is_empty()) {
            Some(n) => format!("{qualified} {n:?} is forbidden: {reason}"),
            None => format!("{qualified} is forbidden: {reason}"),
        };
        SimError::Forbidden {
            message,
            group: group.into(),
            kind: base.into(),
            name: name.map(str::to_string),
        }
    }

    /// Wrap an error as a failure of scenario step `step`.
    pub(crate) fn in_step(self, step: usize, what: impl Into<String>) -> SimError {
        SimError::Scenario {
            step,
            what: what.into(),
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_matches_apiserver() {
        let e = SimError::Conflict {
            resource: "pods".into(),
            name: "x".into(),
        };
        let s = e.status();
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(
            s["message"],
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(s["details"]["kind"], "pods");
    }

    #[test]
    fn forbidden_matches_rbac_rejection() {
        let e = SimError::forbidden(
            "system:serviceaccount:herald:herald",
            "list",
            "pods",
            "",
            None,
            None,
        );
        let s = e.status();
        assert_eq!(
            s["message"],
            "pods is forbidden: User \"system:serviceaccount:herald:herald\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            (s["code"].as_u64(), s["reason"].as_str()),
            (Some(403), Some("Forbidden"))
        );
        assert_eq!(s["details"], json!({"kind": "pods"}));
        let e = SimError::forbidden(
            "u",
            "get",
            "events",
            "events.k8s.io",
            Some("shop"),
            Some("e1"),
        );
        assert_eq!(
            e.to_string(),
            "events.events.k8s.io \"e1\" is forbidden: User \"u\" cannot get resource \"events\" in API group \"events.k8s.io\" in the namespace \"shop\""
        );
        assert_eq!(
            e.status()["details"],
            json!({"kind": "events", "group": "events.k8s.io", "name": "e1"})
        );
    }

    #[test]
    fn throttling_and_server_errors() {
        let e = SimError::TooManyRequests {
            message: "Too many requests, please try again later.".into(),
            retry_after_seconds: 7,
        };
        assert_eq!(e.code(), 429);
        assert_eq!(e.status()["details"]["retryAfterSeconds"], 7);
        assert_eq!(e.retry_after_seconds(), Some(7));
        let e = SimError::Internal("etcdserver: request timed out".into());
        let s = e.status();
        assert_eq!(
            s["message"],
            "Internal error occurred: etcdserver: request timed out"
        );
        assert_eq!(
            s["details"]["causes"][0]["message"],
            "etcdserver: request timed out"
        );
        assert_eq!(e.retry_after_seconds(), None);
        let e = SimError::ServiceUnavailable("x".into());
        assert_eq!((e.code(), e.reason()), (503, "ServiceUnavailable"));
        assert!(e.status().get("details").is_none());
    }

    #[test]
    fn not_found_message() {
        let e = SimError::NotFound {
            resource: "pods".into(),
            name: "x".into(),
        };
        assert_eq!(e.status()["message"], "pods \"x\" not found");
        assert_eq!(e.code(), 404);
    }
}
