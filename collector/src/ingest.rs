//! `POST /collect`: the only way events enter clicktrail.
//!
//! Checks the content type and size, parses and validates the batch with
//! [`protocol::parse_batch`] (accepted or rejected whole), enriches it, and waits
//! for the store to commit it. `200 {"stored": N}` means the N events are on disk;
//! anything else is a JSON error naming the problem, and nothing of the batch is kept.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Json,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, header},
};
use serde_json::{Value, json};

use crate::{
    enrich::{self, Context, Salts},
    error::ApiError,
    serve::App,
    store::StoreError,
};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `/collect` handler.
pub async fn collect(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let result = accept(&app, peer, &headers, body).await;
    if let Err(e) = &result {
        app.store.counters().reject(e.code());
    }
    result.map(|n| Json(json!({ "stored": n })))
}

/// The media type of a request without its parameters, lower-cased (`text/plain`
/// of `text/plain;charset=UTF-8`); empty when there is none.
pub(crate) fn content_type_essence(headers: &HeaderMap) -> String {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

async fn accept(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, ApiError> {
    let essence = content_type_essence(headers);
    if !matches!(essence.as_str(), "text/plain" | "application/json" | "") {
        return Err(ApiError::MediaType(essence));
    }
    let limit = protocol::MAX_BODY_BYTES;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let e = e.into_inner();
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::TooLarge { limit }
        } else {
            ApiError::Body(e.to_string())
        }
    })?;
    let batch = protocol::parse_batch(&bytes)?;
    if !app.config.sites.is_empty() && !app.config.sites.iter().any(|s| s == &batch.site) {
        return Err(ApiError::UnknownSite(batch.site));
    }
    let ctx = Context {
        ip: client_ip(peer, headers, app.config.trust_proxy),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        received_ms: now_ms(),
    };
    let salt = salt_for(app, ctx.received_ms.div_euclid(MS_PER_DAY)).await?;
    let rows = enrich::enrich(batch, &ctx, &salt);
    app.store.commit(rows).await.map_err(|e| match e {
        StoreError::Overloaded => ApiError::Overloaded { retry_after_s: 1 },
        StoreError::Closed => ApiError::ShuttingDown,
        StoreError::Commit(d) | StoreError::Open { detail: d, .. } => ApiError::Storage(d),
    })
}

/// Today's salt: held in memory, persisted through the store on the first batch of a day.
async fn salt_for(app: &App, day: i64) -> Result<[u8; 32], ApiError> {
    if let Some(s) = app.salts.get(day) {
        return Ok(s);
    }
    let store = app.store.clone();
    let salt = tokio::task::spawn_blocking(move || store.salt_for_day(day, Salts::random()))
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .map_err(|e| ApiError::Storage(e.to_string()))?;
    app.salts.set(day, salt);
    Ok(salt)
}

fn client_ip(peer: SocketAddr, headers: &HeaderMap, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}
