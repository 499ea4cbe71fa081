//! [`ApiError`]: every failure the HTTP API can answer with, mapped to a status and a
//! JSON body `{"error": CODE, "message": "...", ...}`. Bad input is a 4xx that names
//! the problem; overload is a 503 with `Retry-After`; 5xx are logged and never leak
//! internals. Other refusals are logged too (status, code, and the index of the
//! event at fault), at most [`LOGGED_PER_SECOND`] a second, so an operator sees
//! why batches were refused without a flooding client filling the log. Not the
//! message: it may quote what the client sent (a value in a bad JSON body, a
//! header), which is neither scrubbed nor short.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The batch failed validation.
    #[error(transparent)]
    Invalid(#[from] protocol::Error),
    /// The body is larger than [`protocol::MAX_BODY_BYTES`].
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// Not `text/plain` or `application/json`.
    #[error("content type `{0}` is not accepted; send text/plain or application/json")]
    MediaType(String),
    /// An `/api/*` body that is not `application/json`.
    #[error("content type `{0}` is not accepted here; send application/json")]
    NotJson(String),
    /// The site id is not in the collector's allow-list.
    #[error("site `{0}` is not served by this collector")]
    UnknownSite(String),
    /// The write queue is full: retry later.
    #[error("the collector is overloaded; retry after {retry_after_s} s")]
    Overloaded { retry_after_s: u32 },
    /// The collector is shutting down.
    #[error("the collector is shutting down; retry shortly")]
    ShuttingDown,
    /// Committing to DuckDB failed; nothing of the batch was stored.
    #[error("the events could not be stored; nothing of this batch was kept, retry")]
    Storage(String),
    /// An audit request was wrong.
    #[error("{message}")]
    BadAudit { code: &'static str, message: String },
    /// An audit failed on the server side (not the request's fault).
    #[error("{message}")]
    AuditFailed { code: &'static str, message: String },
    /// Reading the body failed (the detail is logged, not answered).
    #[error("could not read the request body")]
    Body(String),
    /// The body did not arrive within the time limit.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The batch would become more rows than one request may (links count one each).
    #[error("this batch would store {rows} rows; the limit per request is {limit}")]
    TooManyRows { rows: usize, limit: usize },
    /// The page or `Origin` is not on the site's domains.
    #[error("{0}")]
    OriginNotAllowed(String),
    /// Too many requests from this client or for this site.
    #[error("too many requests {0}; retry after {1} s")]
    RateLimited(&'static str, u32),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials valid, but not for this.
    #[error("{0}")]
    Forbidden(String),
    /// Not there, or not the caller's (another user's site looks the same as none).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// A `Host` this collector does not serve (DNS rebinding).
    #[error("this collector does not answer to host `{0}`; add it with --allowed-hosts")]
    BadHost(String),
    /// Every audit slot is taken.
    #[error("{0} audits are running; retry shortly")]
    Busy(usize),
    /// The audit ran past its time limit and was stopped.
    #[error("the audit ran longer than {0} s and was stopped; narrow the range or the site")]
    AuditTimeout(u64),
    /// Something failed on our side; the detail is in the log under `reference`.
    #[error("internal error (reference {reference}); the collector's log has the detail")]
    Internal { reference: String, detail: String },
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadAudit {
                code: "unknown_funnel",
                ..
            }
            | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) | ApiError::BadAudit { .. } | ApiError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge { .. } | ApiError::TooManyRows { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::MediaType(_) | ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnknownSite(_) | ApiError::OriginNotAllowed(_) | ApiError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::Overloaded { .. }
            | ApiError::ShuttingDown
            | ApiError::Busy(_)
            | ApiError::AuditTimeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) | ApiError::AuditFailed { .. } | ApiError::Internal { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadHost(_) => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// A failure on our side: logged in full under a reference, answered without it.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        ApiError::Internal {
            reference: u32::from_be_bytes(r).to_string(),
            detail: detail.to_string(),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(e) => e.code(),
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::MediaType(_) | ApiError::NotJson(_) => "unsupported_media_type",
            ApiError::UnknownSite(_) => "unknown_site",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Storage(_) => "storage_failed",
            ApiError::BadAudit { code, .. }
            | ApiError::AuditFailed { code, .. }
            | ApiError::NotFound { code, .. } => code,
            ApiError::Body(_) => "bad_body",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::TooManyRows { .. } => "too_many_rows",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::RateLimited(..) => "rate_limited",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::BadHost(_) => "unknown_host",
            ApiError::Busy(_) => "busy",
            ApiError::AuditTimeout(_) => "audit_timeout",
            ApiError::Internal { .. } => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Storage(detail) => tracing::error!(%detail, "commit failed"),
            ApiError::AuditFailed { message, .. } => tracing::error!(%message, "audit failed"),
            ApiError::Internal { reference, detail } => {
                tracing::error!(%reference, %detail, "internal error");
            }
            ApiError::Body(detail) => tracing::debug!(%detail, "body read failed"),
            _ if LOGGED.allow(unix_second()) => {
                let event = match &self {
                    ApiError::Invalid(e) => e.event_index(),
                    _ => None,
                };
                tracing::info!(
                    status = status.as_u16(),
                    code = self.code(),
                    ?event,
                    "refused"
                );
            }
            _ => {}
        }
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let ApiError::Invalid(e) = &self
            && let Some(i) = e.event_index()
        {
            body["event_index"] = json!(i);
        }
        let retry = match &self {
            ApiError::Overloaded { retry_after_s } | ApiError::RateLimited(_, retry_after_s) => {
                Some(*retry_after_s)
            }
            ApiError::ShuttingDown | ApiError::Busy(_) => Some(5),
            ApiError::AuditTimeout(_) => Some(60),
            _ => None,
        };
        if let Some(s) = retry {
            body["retry_after_s"] = json!(s);
        }
        let mut resp = (status, Json(body)).into_response();
        if let Some(s) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"clicktrail\""),
            );
        }
        resp
    }
}

/// The largest `/api/*` body (an audit request, a saved funnel, a user).
pub const API_MAX_BODY_BYTES: usize = 2 << 20;

/// `/api/*`: an error answer that is not JSON already (axum's own refusals, before
/// a handler runs: a path segment that is not UTF-8, a body over
/// [`API_MAX_BODY_BYTES`], a bad query string) becomes the API's
/// `{"error": CODE, "message": ...}` for its status. The framework's text is not
/// passed on: it names extractors and internals, not what to change.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let mut mapped = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge {
            limit: API_MAX_BODY_BYTES,
        }
        .into_response(),
        s if s.is_server_error() => {
            let mut r =
                ApiError::internal(format!("a {s} answer without a JSON body")).into_response();
            *r.status_mut() = s;
            r
        }
        s => {
            let (code, message) = match s {
                StatusCode::BAD_REQUEST => (
                    "invalid_request",
                    "the request could not be read: its path or query string is not valid \
                     (path segments must be percent-encoded UTF-8)",
                ),
                StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
                StatusCode::METHOD_NOT_ALLOWED => (
                    "method_not_allowed",
                    "this endpoint does not take that method",
                ),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                    "unsupported_media_type",
                    "content type not accepted here; send application/json",
                ),
                StatusCode::REQUEST_TIMEOUT => {
                    ("request_timeout", "the request body did not arrive in time")
                }
                _ => ("invalid_request", "the request could not be read"),
            };
            (status, Json(json!({ "error": code, "message": message }))).into_response()
        }
    };
    // Keep what the answer said besides its body (`Allow`, `Retry-After`).
    let (parts, _) = resp.into_parts();
    for (name, value) in &parts.headers {
        if !mapped.headers().contains_key(name) && name != header::CONTENT_LENGTH {
            mapped.headers_mut().append(name.clone(), value.clone());
        }
    }
    mapped
}

/// Whether an answer's body is JSON.
fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// The most refusals logged in one second.
pub const LOGGED_PER_SECOND: u32 = 10;

static LOGGED: Budget = Budget::new(LOGGED_PER_SECOND);

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A number of lines per second, shared by all threads (a line more or less when
/// two threads cross a second's boundary together).
struct Budget {
    per_second: u32,
    second: AtomicU64,
    used: AtomicU32,
}

impl Budget {
    const fn new(per_second: u32) -> Self {
        Budget {
            per_second,
            second: AtomicU64::new(0),
            used: AtomicU32::new(0),
        }
    }

    /// Whether one more line may be written in second `now`.
    fn allow(&self, now: u64) -> bool {
        if self.second.swap(now, Relaxed) != now {
            self.used.store(0, Relaxed);
        }
        self.used.fetch_add(1, Relaxed) < self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_up_to_the_budget_of_each_second() {
        let b = Budget::new(3);
        let first: Vec<bool> = (0..5).map(|_| b.allow(100)).collect();
        assert_eq!(first, [true, true, true, false, false]);
        assert!(b.allow(101), "a new second, a new budget");
        assert!(b.allow(101) && b.allow(101) && !b.allow(101));
    }
}
