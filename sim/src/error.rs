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
            SimError::Io(_) | SimError::Scenario { .. } => 500,
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
            SimError::Io(_) | SimError::Scenario { .. } => "InternalError",
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
    fn not_found_message() {
        let e = SimError::NotFound {
            resource: "pods".into(),
            name: "x".into(),
        };
        assert_eq!(e.status()["message"], "pods \"x\" not found");
        assert_eq!(e.code(), 404);
    }
}
