//! One request to the API server, below kube-rs's typed API: sends it with
//! [`kube::Client::send`], turns an error answer into [`WatchError::Api`] with the server's
//! `Status` and its `Retry-After` (header, else `details.retryAfterSeconds`), and hands a
//! successful body over as a stream, never buffered whole.
//!
//! kube-rs's own retry layer is switched off for this client (see
//! [`client_from`](crate::client_from)), so every retry is the watcher's decision, with its
//! jittered backoff, and is counted.

use std::time::Duration;

use futures::{AsyncBufRead, TryStreamExt};
use http_body_util::{BodyExt, Limited};

use crate::error::{WatchError, one_line};

/// Largest error body read to find the `Status` in it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Longest `Retry-After` honoured; a longer one is capped (the server may ask again).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Sends `req` (a `GET` of `path`) and returns the response body as a byte stream.
pub(crate) async fn get_stream(
    client: &kube::Client,
    path: &str,
    req: http::Request<Vec<u8>>,
) -> Result<impl AsyncBufRead + Send + 'static, WatchError> {
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .map_err(|e| WatchError::from_kube("GET", path, e))?;
    let status = res.status();
    if status.is_success() {
        let body = res
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        return Ok(body.into_async_read());
    }
    let retry_after = res
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match Limited::new(res.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    Err(api_error(path, status.as_u16(), &text, retry_after))
}

/// The [`WatchError::Api`] of an error answer with status `code` and body `text`.
pub(crate) fn api_error(
    path: &str,
    code: u16,
    text: &str,
    retry_after_header: Option<Duration>,
) -> WatchError {
    let status: Option<kube::core::Status> = serde_json::from_str(text).ok();
    let (reason, message, body_retry) = match status {
        Some(s) => {
            let retry = s
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s)));
            (s.reason, one_line(&s.message), retry)
        }
        None => (
            http::StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("")
                .to_string(),
            one_line(&text.chars().take(200).collect::<String>()),
            None,
        ),
    };
    WatchError::Api {
        method: "GET",
        path: path.to_string(),
        code,
        reason,
        message,
        retry_after: retry_after_header
            .or(body_retry)
            .map(|d| d.min(MAX_RETRY_AFTER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_become_api_errors() {
        let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429}"#;
        let e = api_error("/api/v1/pods", 429, body, None);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.code(), Some(429));
        assert!(e.to_string().contains("TooManyRequests"), "{e}");
        // The header wins over the body.
        let e = api_error("/api/v1/pods", 429, body, Some(Duration::from_secs(7)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        // Not a Status: the HTTP reason and an excerpt.
        let e = api_error("/api/v1/pods", 503, "<html>down</html>", None);
        assert_eq!(
            e.to_string(),
            "GET /api/v1/pods: HTTP 503 Service Unavailable: <html>down</html>"
        );
        assert_eq!(e.retry_after(), None);
        let e = api_error("/x", 429, "", Some(Duration::from_secs(100_000)));
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
    }
}
