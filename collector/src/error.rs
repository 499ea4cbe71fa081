//! [`ApiError`]: every failure the HTTP API can answer with, mapped to a status and a
//! JSON body `{"error": CODE, "message": "...", ...}`. Bad input is a 4xx that names
//! the problem; overload is a 503 with `Retry-After`; 5xx are logged and never leak
//! internals.

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
    /// Reading the body failed.
    #[error("could not read the request body: {0}")]
    Body(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadAudit {
                code: "unknown_funnel",
                ..
            } => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) | ApiError::BadAudit { .. } | ApiError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType(_) | ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnknownSite(_) => StatusCode::FORBIDDEN,
            ApiError::Overloaded { .. } | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) | ApiError::AuditFailed { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
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
            ApiError::BadAudit { code, .. } | ApiError::AuditFailed { code, .. } => code,
            ApiError::Body(_) => "bad_body",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Storage(detail) => tracing::error!(%detail, "commit failed"),
            ApiError::AuditFailed { message, .. } => tracing::error!(%message, "audit failed"),
            _ => {}
        }
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let ApiError::Invalid(e) = &self
            && let Some(i) = e.event_index()
        {
            body["event_index"] = json!(i);
        }
        let retry = match &self {
            ApiError::Overloaded { retry_after_s } => Some(*retry_after_s),
            ApiError::ShuttingDown => Some(5),
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
        resp
    }
}
