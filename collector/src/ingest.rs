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
    accounts::Site,
    enrich::{self, Context, Salts},
    error::ApiError,
    ratelimit,
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
    let ip = client_ip(peer, headers, app.config.trust_proxy);
    app.limits
        .ip
        .check(&ratelimit::client_key(ip), 1.0)
        .map_err(|w| ApiError::RateLimited("from this address", ratelimit::retry_after_s(w)))?;
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
    let timeout = std::time::Duration::from_secs(app.config.request_timeout_s.max(1));
    let bytes = crate::server::read_body_limited(body, limit, timeout)
        .await
        .map_err(|e| match e {
            crate::server::BodyError::TooLarge => ApiError::TooLarge { limit },
            crate::server::BodyError::Timeout => {
                ApiError::BodyTimeout(app.config.request_timeout_s.max(1))
            }
            crate::server::BodyError::Other(d) => ApiError::Body(d),
        })?;
    let batch = protocol::parse_batch(&bytes)?;
    let rows = protocol::stored_rows(&batch);
    if rows > protocol::MAX_ROWS_PER_BATCH {
        return Err(ApiError::TooManyRows {
            rows,
            limit: protocol::MAX_ROWS_PER_BATCH,
        });
    }
    // `--sites` is a fixed list (registered or not); else the registered sites.
    let fixed = &app.config.sites;
    let registered = app.accounts.read(|s| s.sites.get(&batch.site).cloned());
    let site = if fixed.is_empty() {
        registered
    } else if fixed.contains(&batch.site) {
        Some(registered.unwrap_or_else(|| Site::new(&batch.site)))
    } else {
        None
    }
    .ok_or_else(|| ApiError::UnknownSite(batch.site.clone()))?;
    check_origin(&site, headers, &batch)?;
    app.limits
        .site
        .check(&site.id, rows as f64)
        .map_err(|w| ApiError::RateLimited("for this site", ratelimit::retry_after_s(w)))?;
    let ctx = Context {
        ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        received_ms: now_ms(),
        uid_key: app.accounts.read(|s| s.uid_key),
        clear_ids: site.clear_ids,
    };
    let salt = salt_for(app, ctx.received_ms.div_euclid(MS_PER_DAY)).await?;
    let rows = enrich::enrich(batch, &ctx, &salt);
    app.store.commit(rows).await.map_err(|e| match e {
        StoreError::Overloaded => ApiError::Overloaded { retry_after_s: 1 },
        StoreError::Closed => ApiError::ShuttingDown,
        StoreError::Commit(d) | StoreError::Open(d) => ApiError::Storage(d),
    })
}

/// A site with domains takes events only from its pages: the `Origin` a browser
/// sends (when there is one) and every page URL in the batch must be on them.
fn check_origin(site: &Site, headers: &HeaderMap, batch: &protocol::Batch) -> Result<(), ApiError> {
    if site.domains.is_empty() {
        return Ok(());
    }
    let host_of = |u: &str| {
        url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let ok = host_of(origin).is_some_and(|h| site.allows_host(&h));
        if !ok {
            return Err(ApiError::OriginNotAllowed(format!(
                "origin `{}` is not on the domains of site `{}`",
                origin.chars().take(100).collect::<String>(),
                site.id
            )));
        }
    }
    for (i, e) in batch.events.iter().enumerate() {
        if let Some(u) = e.url.as_deref().filter(|u| !u.starts_with('/'))
            && !host_of(u).is_some_and(|h| site.allows_host(&h))
        {
            return Err(ApiError::OriginNotAllowed(format!(
                "event {i}: its page is not on the domains of site `{}`",
                site.id
            )));
        }
    }
    Ok(())
}

/// Today's salt: held in memory, persisted through the store on the first batch of a day.
async fn salt_for(app: &App, day: i64) -> Result<[u8; 32], ApiError> {
    if let Some(s) = app.salts.get(day) {
        return Ok(s);
    }
    let salt = app
        .store
        .salt_for_day(day, Salts::random())
        .await
        .map_err(|e| match e {
            StoreError::Overloaded => ApiError::Overloaded { retry_after_s: 1 },
            StoreError::Closed => ApiError::ShuttingDown,
            other => ApiError::Storage(other.to_string()),
        })?;
    app.salts.set(day, salt);
    Ok(salt)
}

/// The client's address: the TCP peer, or with `trust_proxy` the last
/// `X-Forwarded-For` entry (the one our proxy added).
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trust_proxy: bool) -> IpAddr {
    if trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            // The last address is the one our proxy saw; earlier ones are the client's word.
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}
