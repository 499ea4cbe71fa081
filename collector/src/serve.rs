//! The router and the state every handler shares: `/collect`, the tracker files,
//! the demo shop, `/healthz`, `/metrics`, and `/api/*` ([`crate::api`], behind the
//! `Host` check and credentials of [`crate::auth`]).

use std::{
    net::IpAddr,
    path::{Component, Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, Uri, header},
    middleware::{from_fn, from_fn_with_state},
    response::{IntoResponse, Redirect, Response},
    routing::{delete, get, post},
};
use serde_json::json;

use crate::{
    Config,
    accounts::Accounts,
    api, auth,
    enrich::Salts,
    ingest,
    ratelimit::RateLimiter,
    store::{COMMIT_BUCKETS_MS, Store, StoreError},
};

/// The rate limits of the collector.
#[derive(Debug)]
pub struct Limits {
    /// `/collect` requests per client address.
    pub ip: RateLimiter<IpAddr>,
    /// `/collect` events per site.
    pub site: RateLimiter<String>,
    /// Sign-in attempts per client address.
    pub login_ip: RateLimiter<IpAddr>,
    /// Sign-in attempts per user name.
    pub login_user: RateLimiter<String>,
}

impl Limits {
    fn new(config: &Config) -> Limits {
        Limits {
            ip: RateLimiter::new(config.rate_limit_ip, config.rate_limit_ip * 10.0),
            site: RateLimiter::new(config.rate_limit_site, config.rate_limit_site * 10.0),
            // 10 tries, then one every 6 s.
            login_ip: RateLimiter::new(1.0 / 6.0, 10.0),
            login_user: RateLimiter::new(1.0 / 6.0, 10.0),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub salts: Arc<Salts>,
    pub accounts: Arc<Accounts>,
    pub limits: Arc<Limits>,
    /// One permit per audit that may run at once.
    pub audits: Arc<tokio::sync::Semaphore>,
    /// The dashboard's signed-in browsers.
    pub web: Arc<crate::dashboard::WebSessions>,
}

impl App {
    /// State over an opened store: reads the accounts and sites from it.
    pub fn new(config: Config, store: Store) -> Result<Self, StoreError> {
        let state = store
            .with_reader(crate::accounts::State::load)
            .map_err(|e| StoreError::Open(format!("cannot read the accounts: {e}")))?;
        Ok(App {
            limits: Arc::new(Limits::new(&config)),
            audits: Arc::new(tokio::sync::Semaphore::new(config.max_audits.max(1))),
            config: Arc::new(config),
            store,
            salts: Arc::new(Salts::default()),
            accounts: Arc::new(Accounts::new(state)),
            web: Arc::default(),
        })
    }
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/api/audit", post(api::audit))
        .route(
            "/api/funnels",
            get(api::list_funnels).post(api::save_funnel),
        )
        .route("/api/funnels/{name}", delete(api::delete_funnel))
        .route("/api/me", get(api::me))
        .route("/api/sites", get(api::list_sites).post(api::put_site))
        .route("/api/sites/{id}", delete(api::delete_site))
        .route("/api/users", get(api::list_users).post(api::add_user))
        .route("/api/users/{name}", delete(api::delete_user))
        .route("/api/users/{name}/password", post(api::set_password))
        .route("/api/users/{name}/sites", post(api::grant_site))
        .route("/api/users/{name}/sites/{site}", delete(api::revoke_site))
        .route("/api/tokens", get(api::list_tokens).post(api::create_token))
        .route("/api/tokens/{id}", delete(api::revoke_token))
        .route("/api/erase", post(api::erase))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::error::API_MAX_BODY_BYTES,
        ))
        .layer(from_fn_with_state(app.clone(), auth::authenticate))
        .layer(from_fn_with_state(app.clone(), auth::require_host))
        .layer(from_fn(crate::error::json_errors))
        .layer(from_fn(no_store));
    let mut r = Router::new()
        .route("/collect", post(ingest::collect).options(preflight))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ct.js", get(tracker_file))
        .route("/ct_wasm_bg.wasm", get(tracker_file))
        .merge(api)
        .merge(crate::dashboard::routes(&app));
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
    .layer(from_fn(cors))
    .with_state(app)
}

/// `/api/*` answers are private (a user's reports and accounts, a new token's
/// secret) and may be read through a browser's session cookie: no cache, in the
/// browser or on the way, may keep them. Refusals included.
async fn no_store(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The tracker's endpoints may be read cross-origin (it runs on the shop's origin);
/// `/api/*` may not: without the header, and with JSON bodies required (which need a
/// preflight), no other website can read reports or change saved funnels through a
/// visitor's browser.
async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == "/app" || path.starts_with("/app/");
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

/// Why the collector is not healthy, if it is not: the last commit failed, or the
/// database's disk is nearly full.
fn problems(app: &App) -> Vec<String> {
    let c = app.store.counters();
    let mut out = Vec::new();
    if c.failing.load(Ordering::Relaxed) {
        out.push(
            "the last commit failed; events are being refused with 500 until one succeeds"
                .to_owned(),
        );
    }
    let dir = app
        .store
        .path()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Some(free) = free_bytes(dir)
        && free < app.config.min_free_mb << 20
    {
        out.push(format!(
            "the database's disk has {} MiB free, under the {} MiB minimum",
            free >> 20,
            app.config.min_free_mb
        ));
    }
    out
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `GET /healthz`: 200 `{"status": "ok", …}`, or 503 `{"status": "failing",
/// "problems": [...]}` when commits fail or the disk is nearly full.
async fn healthz(State(app): State<App>) -> Response {
    let c = app.store.counters();
    let rejected = c.rejected.lock().map(|m| m.clone()).unwrap_or_default();
    let problems = problems(&app);
    let body = Json(json!({
        "status": if problems.is_empty() { "ok" } else { "failing" },
        "problems": problems,
        "queue_depth": app.store.queue_depth(),
        "queue_bytes": app.store.queue_bytes(),
        "batches_committed": c.batches_committed.load(Ordering::Relaxed),
        "events_committed": c.events_committed.load(Ordering::Relaxed),
        "commits": c.commits.load(Ordering::Relaxed),
        "commit_failures": c.commit_failures.load(Ordering::Relaxed),
        "overloaded": c.overloaded.load(Ordering::Relaxed),
        "rejected": rejected,
    }));
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// `GET /metrics`: the same counters in Prometheus' text format, and the commit
/// latency as a histogram. Counts only, nothing per site.
async fn metrics(State(app): State<App>) -> Response {
    use std::fmt::Write as _;
    let c = app.store.counters();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "clicktrail_events_committed_total",
        "counter",
        "Events committed to disk.",
        c.events_committed.load(Ordering::Relaxed),
    );
    metric(
        "clicktrail_batches_committed_total",
        "counter",
        "Batches committed to disk.",
        c.batches_committed.load(Ordering::Relaxed),
    );
    metric(
        "clicktrail_commits_total",
        "counter",
        "Group commits.",
        c.commits.load(Ordering::Relaxed),
    );
    metric(
        "clicktrail_commit_failures_total",
        "counter",
        "Group commits that failed.",
        c.commit_failures.load(Ordering::Relaxed),
    );
    metric(
        "clicktrail_overloaded_total",
        "counter",
        "Batches refused with 503 because the queue was full.",
        c.overloaded.load(Ordering::Relaxed),
    );
    metric(
        "clicktrail_queue_depth",
        "gauge",
        "Batches waiting for the writer.",
        app.store.queue_depth() as u64,
    );
    metric(
        "clicktrail_queue_bytes",
        "gauge",
        "Bytes of events waiting for the writer.",
        app.store.queue_bytes() as u64,
    );
    metric(
        "clicktrail_healthy",
        "gauge",
        "1 when /healthz is ok.",
        u64::from(problems(&app).is_empty()),
    );
    let _ = writeln!(
        out,
        "# HELP clicktrail_rejected_total Batches rejected, by error code.\n# TYPE clicktrail_rejected_total counter"
    );
    for (code, n) in c.rejected.lock().map(|m| m.clone()).unwrap_or_default() {
        let _ = writeln!(out, "clicktrail_rejected_total{{code=\"{code}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP clicktrail_commit_seconds Time of a group commit.\n# TYPE clicktrail_commit_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, le) in COMMIT_BUCKETS_MS.iter().enumerate() {
        cumulative += c.commit_latency[i].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "clicktrail_commit_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *le as f64 / 1000.0
        );
    }
    cumulative += c.commit_latency[COMMIT_BUCKETS_MS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "clicktrail_commit_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "clicktrail_commit_seconds_sum {}",
        c.commit_latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "clicktrail_commit_seconds_count {cumulative}");
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
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

/// `/ct.js`, the loader with the wasm-bindgen glue (cached briefly, so a new
/// version reaches every shop quickly), and the wasm module (cached for an hour;
/// the loader asks for it by the hash of its bytes, `?v=…`, so a new loader never
/// runs an old module from the cache).
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
                "message": format!("{name} is not built on this collector; build it with `cargo xtask build-tracker`"),
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
