//! The router: `/collect`, the tracker files, the demo shop, `/healthz`, and the
//! audits over HTTP (`POST /api/audit`, the same [`analyzer::run`] the CLI uses,
//! on the collector's own reading connection, since the collector owns the file),
//! with the saved funnels they default to (`/api/funnels`).

use std::{
    path::{Component, Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path as UrlPath, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
    routing::{delete, get, post},
};
use serde_json::json;

use analyzer::saved::{self, FunnelsAction, SavedFunnel};

use crate::{Config, enrich::Salts, error::ApiError, ingest, store::Store};

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub salts: Arc<Salts>,
}

impl App {
    /// State over an opened store.
    pub fn new(config: Config, store: Store) -> Self {
        App {
            config: Arc::new(config),
            store,
            salts: Arc::new(Salts::default()),
        }
    }
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let mut r = Router::new()
        .route("/collect", post(ingest::collect).options(preflight))
        .route("/healthz", get(healthz))
        .route("/api/audit", post(audit))
        .route("/api/funnels", get(list_funnels).post(save_funnel))
        .route("/api/funnels/{name}", delete(delete_funnel))
        .route("/ct.js", get(tracker_file))
        .route("/ct_wasm.js", get(tracker_file))
        .route("/ct_wasm_bg.wasm", get(tracker_file));
    if app.config.demo {
        r = r
            .route("/", get(|| async { Redirect::temporary("/demo/") }))
            .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
            .route("/demo/", get(demo_file))
            .route("/demo/{*path}", get(demo_file));
    } else {
        r = r.route(
            "/",
            get(|| async { "clicktrail collector: POST /collect, GET /ct.js, GET /healthz\n" }),
        );
    }
    r.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "message": "no such endpoint"})),
        )
    })
    .method_not_allowed_fallback(|| async {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({
                "error": "method_not_allowed",
                "message": "this endpoint does not take that method",
            })),
        )
    })
    .layer(axum::middleware::from_fn(cors))
    .with_state(app)
}

/// The tracker's endpoints may be read cross-origin (it runs on the shop's origin);
/// `/api/*` may not: without the header, and with JSON bodies required (which need a
/// preflight), no other website can read reports or change saved funnels through a
/// visitor's browser.
async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api {
        return resp;
    }
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // The tracker backs off by Retry-After on 503; cross-origin it must be exposed.
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    resp
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

async fn healthz(State(app): State<App>) -> Json<serde_json::Value> {
    let c = app.store.counters();
    let rejected = c.rejected.lock().map(|m| m.clone()).unwrap_or_default();
    Json(json!({
        "status": "ok",
        "queue_depth": app.store.queue_depth(),
        "batches_committed": c.batches_committed.load(Ordering::Relaxed),
        "events_committed": c.events_committed.load(Ordering::Relaxed),
        "commits": c.commits.load(Ordering::Relaxed),
        "commit_failures": c.commit_failures.load(Ordering::Relaxed),
        "overloaded": c.overloaded.load(Ordering::Relaxed),
        "rejected": rejected,
    }))
}

/// `/api/*` bodies must be `application/json`: a form or `text/plain` post from
/// another website (no preflight) is refused.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = ingest::content_type_essence(headers);
    if essence == "application/json" {
        Ok(())
    } else {
        Err(ApiError::NotJson(if essence.is_empty() {
            "(none)".to_owned()
        } else {
            essence
        }))
    }
}

async fn audit(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let req: analyzer::AuditRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadAudit {
            code: "invalid_request",
            message: format!("not a valid audit request: {e}"),
        })?;
    let store = app.store.clone();
    let report =
        tokio::task::spawn_blocking(move || store.with_reader(|conn| analyzer::run(conn, &req)))
            .await
            .map_err(|e| ApiError::Storage(e.to_string()))?
            .map_err(|e| audit_error(&e))?;
    Ok(Json(report).into_response())
}

/// `?site=S` of the funnels endpoints.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteQuery {
    site: Option<String>,
}

fn audit_error(e: &analyzer::Error) -> ApiError {
    if e.is_bad_request() {
        ApiError::BadAudit {
            code: e.code(),
            message: e.to_string(),
        }
    } else {
        ApiError::AuditFailed {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Carries out a saved-funnels action on the collector's connection and answers
/// `{"funnels": [...]}`, the funnels of its site afterwards.
async fn funnels_action(app: App, action: FunnelsAction) -> Result<Response, ApiError> {
    let store = app.store.clone();
    let funnels = tokio::task::spawn_blocking(move || {
        store.with_reader(|conn| saved::apply(conn, &action, analyzer::scope::now_ms()))
    })
    .await
    .map_err(|e| ApiError::Storage(e.to_string()))?
    .map_err(|e| audit_error(&e))?;
    Ok(Json(json!({ "funnels": funnels })).into_response())
}

/// `GET /api/funnels[?site=S]`: the funnels that apply to S (all without it).
async fn list_funnels(
    State(app): State<App>,
    query: Result<Query<SiteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    funnels_action(app, FunnelsAction::List { site: q.site }).await
}

/// `POST /api/funnels` with a saved funnel's JSON: saves (or replaces) it.
async fn save_funnel(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let funnel: SavedFunnel = serde_json::from_slice(&body).map_err(|e| ApiError::BadAudit {
        code: "invalid_request",
        message: format!(
            "not a saved funnel (expected {{\"site\", \"name\", \"steps\", \"window\"}}): {e}"
        ),
    })?;
    funnels_action(app, FunnelsAction::Save(funnel)).await
}

/// `DELETE /api/funnels/NAME[?site=S]` (S defaults to `*`, every site).
async fn delete_funnel(
    State(app): State<App>,
    UrlPath(name): UrlPath<String>,
    query: Result<Query<SiteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let site = q.site.unwrap_or_else(|| saved::ANY_SITE.to_owned());
    funnels_action(app, FunnelsAction::Delete { site, name }).await
}

fn bad_query(e: &axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::BadAudit {
        code: "invalid_request",
        message: format!("bad query string: {}", e.body_text()),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn file_response(path: &Path, status: StatusCode, cache: &'static str) -> Option<Response> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(
        (
            status,
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, cache),
            ],
            Body::from(bytes),
        )
            .into_response(),
    )
}

/// `/ct.js` (cached briefly, so a new loader reaches every shop quickly) and the
/// wasm module with its glue (cached for an hour).
async fn tracker_file(State(app): State<App>, uri: Uri) -> Response {
    let name = uri.path().trim_start_matches('/');
    let cache = if name == "ct.js" {
        "public, max-age=300"
    } else {
        "public, max-age=3600"
    };
    match file_response(&app.config.tracker_dir.join(name), StatusCode::OK, cache).await {
        Some(r) => r,
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": "tracker_not_built",
                "message": format!("{name} is not in {}; build it with `cargo xtask build-tracker`", app.config.tracker_dir.display()),
            })),
        )
            .into_response(),
    }
}

/// A path below `root` with no `..`, or `None`.
fn safe_join(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
}

/// The demo shop. Folders serve their `index.html`; `/demo/help/*` is a
/// single-page app, so unknown paths below it serve `help/index.html` (deep links
/// and reloads work); any other missing page is the shop's `404.html` with status 404.
async fn demo_file(State(app): State<App>, uri: Uri) -> Response {
    let root = &app.config.demo_dir;
    let rel = uri.path().strip_prefix("/demo").unwrap_or("");
    let no_cache = "no-cache";
    if let Some(mut path) = safe_join(root, rel) {
        if path.is_dir() {
            path = path.join("index.html");
        }
        if let Some(r) = file_response(&path, StatusCode::OK, no_cache).await {
            return r;
        }
        if rel.starts_with("/help/")
            && Path::new(rel).extension().is_none()
            && let Some(r) =
                file_response(&root.join("help/index.html"), StatusCode::OK, no_cache).await
        {
            return r;
        }
    }
    file_response(&root.join("404.html"), StatusCode::NOT_FOUND, no_cache)
        .await
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}
