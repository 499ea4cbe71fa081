//! The dashboard: web pages for site owners, designers and marketers, behind a
//! login, served by the collector under `/app/` (assets inline, nothing from another
//! host).
//!
//! - **Sign-in** ([`session`]): a login form, session cookies, CSRF tokens on every
//!   form, sign-in attempts rate-limited per address and per user (the same limits as
//!   the API's, [`crate::auth::login`]).
//! - **Pages**: the user's sites (embed snippet, "installed", today's numbers), an
//!   overview per site (sessions, page views, trend, top pages and screens, sources
//!   and campaigns, updated live), funnels (builder with the site's own paths,
//!   screens, clicks, forms and events to pick from; saved funnels; the same range one
//!   period before), every audit as a page with its chart and a sortable table, CSV
//!   and JSON downloads of every table and the HTML report; the account (password,
//!   API tokens) and, for admins, users and sites.
//! - **Who sees what**: the [`Caller`] of the session, read from the accounts on every
//!   request; a site the user may not see answers 404, as one that does not exist.
//!
//! Pages are templated with minijinja (`templates/`), charts are the report's
//! (plotters, SVG, [`analyzer::report`]); the range (`?range=today|7d|30d`, or
//! `since`/`until` dates) is kept in every link, so a URL can be shared.

pub mod session;

use std::sync::LazyLock;

use axum::{
    Router,
    body::Bytes,
    extract::{Path as UrlPath, Query, RawQuery, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use analyzer::saved::{self, FunnelsAction, SavedFunnel};
use analyzer::{AuditRequest, Report, Scope};

use crate::{
    accounts::{self, Change, Site},
    api,
    auth::{self, Caller},
    error::ApiError,
    ingest,
    serve::App,
};
pub use session::WebSessions;

/// Rows a page's table shows at most (the CSV and JSON have them all).
const MAX_ROWS: usize = 500;

/// The audits that have a page of their own (the funnel has its builder).
pub const AUDIT_PAGES: [&str; 6] = ["screens", "forms", "links", "ads", "frustration", "errors"];

const TEMPLATES: [(&str, &str); 11] = [
    ("_sitehead.html", include_str!("templates/_sitehead.html")),
    ("_section.html", analyzer::report::SECTION_TEMPLATE),
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("sites.html", include_str!("templates/sites.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("funnels.html", include_str!("templates/funnels.html")),
    ("account.html", include_str!("templates/account.html")),
    ("users.html", include_str!("templates/users.html")),
    ("message.html", include_str!("templates/message.html")),
];

static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    // Path segments and query values: every byte but unreserved ones escaped.
    env.add_filter("urlencode", |value: String| -> String {
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
    });
    env.add_global(
        "sort_js",
        minijinja::Value::from_safe_string(analyzer::report::SORT_JS.to_owned()),
    );
    env.add_global("audit_pages", minijinja::Value::from_serialize(AUDIT_PAGES));
    env
});

/// The dashboard's routes (under the `Host` check).
pub fn routes(app: &App) -> Router<App> {
    Router::new()
        .route("/app", get(|| async { Redirect::to("/app/") }))
        .route("/app/", get(|| async { Redirect::to("/app/sites") }))
        .route("/app/login", get(login_page).post(login_submit))
        .route("/app/logout", post(logout))
        .route("/app/sites", get(sites_page).post(create_site))
        .route("/app/account", get(account_page))
        .route("/app/account/password", post(change_password))
        .route("/app/account/tokens", post(create_token))
        .route("/app/account/tokens/{id}/revoke", post(revoke_token))
        .route("/app/users", get(users_page).post(create_user))
        .route("/app/users/access", post(user_access))
        .route("/app/site/{site}", get(overview))
        .route("/app/site/{site}/live", get(live))
        .route(
            "/app/site/{site}/funnels",
            get(funnels_page).post(save_funnel),
        )
        .route("/app/site/{site}/funnels/delete", post(delete_funnel))
        .route("/app/site/{site}/download/{file}", get(download))
        .route("/app/site/{site}/{audit}", get(audit_page))
        // Forms are small: a sign-in or a funnel is well under 16 KiB.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(page_errors))
        .layer(from_fn_with_state(app.clone(), auth::require_host))
        .layer(axum::middleware::from_fn(no_store))
}

/// Dashboard answers are private: never cached, never framed by another site.
async fn no_store(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// A refusal of axum's own, before a page's handler runs (a path segment that is not
/// UTF-8, a form over the limit, a query string a page cannot read), is plain text
/// in the framework's words: the page says it in ours instead.
async fn page_errors(req: Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    let message = match status {
        StatusCode::BAD_REQUEST => "This address is not valid; check the link.",
        StatusCode::PAYLOAD_TOO_LARGE => "That form is too large.",
        StatusCode::NOT_FOUND => "No such page.",
        StatusCode::METHOD_NOT_ALLOWED => "This page does not take that kind of request.",
        s if s.is_server_error() => "Something went wrong on the server.",
        _ => "This request could not be read.",
    };
    PageError::new(status, message).into_response()
}

/// A dashboard failure, as a page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
    /// Not signed in: the login page to send the browser to.
    login: Option<String>,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
            login: None,
        }
    }

    fn forbidden(message: &str) -> Self {
        PageError::new(StatusCode::FORBIDDEN, message)
    }

    fn no_site(site: &str) -> Self {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!(
                "No site `{}` among yours.",
                site.chars().take(80).collect::<String>()
            ),
        )
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let shown = e.to_string();
        let reference = match &e {
            ApiError::Internal { reference, .. } => Some(reference.clone()),
            _ => None,
        };
        // The API's own answer logs what went wrong on our side.
        let status = e.into_response().status();
        let message = match (status, reference) {
            (StatusCode::SERVICE_UNAVAILABLE, _) => {
                "The server is busy with other reports; try again in a few seconds.".to_owned()
            }
            (_, Some(reference)) => {
                format!("Something went wrong on the server (reference {reference}).")
            }
            (s, None) if s.is_server_error() => "Something went wrong on the server.".to_owned(),
            // A request's own fault: its message says what to change.
            _ => shown,
        };
        PageError {
            status,
            message,
            login: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let Some(to) = self.login {
            return Redirect::to(&to).into_response();
        }
        let body = render(
            "message.html",
            context! { title => "Sorry", message => self.message, user => () },
        );
        (self.status, body).into_response()
    }
}

/// An audit or form error the user can fix: 400 with its message.
fn bad_request(e: impl std::fmt::Display) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, e.to_string())
}

/// A refused accounts change: what was wrong with it, or (a database failure) a
/// reference to the server's log, never the failure itself.
fn refused(e: accounts::AccountError) -> PageError {
    match e {
        accounts::AccountError::Db(detail) => PageError::from(ApiError::internal(detail)),
        other => bad_request(other),
    }
}

/// A failure of ours: logged, shown only as a reference.
fn internal(e: impl std::fmt::Display) -> PageError {
    PageError::from(ApiError::internal(e))
}

fn render(name: &str, ctx: minijinja::Value) -> Html<String> {
    match ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "dashboard template failed");
            Html(
                "<!doctype html><title>clicktrail</title><p>This page could not be drawn.</p>"
                    .to_owned(),
            )
        }
    }
}

/// The signed-in user of a request and their session's CSRF token.
struct Page {
    caller: Caller,
    csrf: String,
}

impl Page {
    /// What every page's layout shows.
    fn base(&self) -> minijinja::Value {
        context! { name => self.caller.user.clone(), admin => self.caller.admin, csrf => self.csrf.clone() }
    }

    fn site(&self, app: &App, site: &str) -> Result<(), PageError> {
        if self.caller.may_see(site) && app.accounts.read(|s| s.sites.contains_key(site)) {
            Ok(())
        } else {
            Err(PageError::no_site(site))
        }
    }

    fn sites(&self, app: &App) -> Vec<String> {
        app.accounts.read(|s| {
            s.sites
                .keys()
                .filter(|id| self.caller.may_see(id))
                .cloned()
                .collect()
        })
    }
}

/// The page's user, or a redirect to the login page (back here after it).
fn signed_in(app: &App, headers: &HeaderMap, path: &str) -> Result<Page, PageError> {
    session_caller(app, headers)
        .map(|(caller, csrf)| Page { caller, csrf })
        .ok_or_else(|| {
            let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
            PageError {
                status: StatusCode::SEE_OTHER,
                message: String::new(),
                login: Some(format!("/app/login?next={next}")),
            }
        })
}

/// The user of a request's live session cookie, with the session's CSRF token: a
/// session whose user was deleted or whose password changed since is no session.
pub fn session_caller(app: &App, headers: &HeaderMap) -> Option<(Caller, String)> {
    let s = app
        .web
        .get(session::cookie(headers, session::COOKIE)?, ingest::now_ms())?;
    let caller = app.accounts.read(|a| {
        a.users
            .get(&s.user)
            .filter(|u| session::stamp(&u.password_hash) == s.stamp)
            .map(Caller::from)
    })?;
    Some((caller, s.csrf))
}

/// A form body, field by field (repeated fields kept in order).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &Bytes) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// A state-changing request of a signed-in user: same origin, and the session's
/// CSRF token in the form.
fn check_post(page: &Page, headers: &HeaderMap, form: &Form) -> Result<(), PageError> {
    if session::cross_site(headers) {
        return Err(PageError::forbidden(
            "This form was sent from another site.",
        ));
    }
    if !session::same_secret(form.get("csrf"), &page.csrf) {
        return Err(PageError::forbidden(
            "This form has expired; go back, reload the page and send it again.",
        ));
    }
    Ok(())
}

/// Whether the request reached us over HTTPS (through a proxy we trust to say so).
fn is_https(app: &App, headers: &HeaderMap) -> bool {
    app.config.trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

// ---- sign-in -------------------------------------------------------------------

/// Where to go after signing in: a dashboard path only (never another site), made
/// of visible ASCII (the dashboard's own links are percent-encoded), so it is always
/// a valid `Location`. Anything else goes to the sites page: a link with a control
/// character in `next` must not turn a good sign-in into an error.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/app/")
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/app/sites".to_owned(),
    }
}

fn login_form(
    app: &App,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // One token per browser (a second login tab does not spoil the first).
    let token = session::cookie(headers, session::LOGIN_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| accounts::random_hex(16), str::to_owned);
    let cookie = session::set_cookie(session::LOGIN_COOKIE, &token, 3600, is_https(app, headers));
    let body = render(
        "login.html",
        context! { csrf => token, next => next, error => error, user => () },
    );
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

async fn login_page(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // The first `next`; anything else in the query is no reason to refuse the form.
    let next = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned());
    login_form(
        &app,
        &headers,
        &next_path(next.as_deref()),
        None,
        StatusCode::OK,
    )
}

async fn login_submit(State(app): State<App>, req: Request) -> Response {
    let ip = auth::client_ip(&app, &req);
    let headers = req.headers().clone();
    let Ok(body) = axum::body::to_bytes(req.into_body(), 16 * 1024).await else {
        return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large.")
            .into_response();
    };
    let form = Form::parse(&body);
    let next = next_path(Some(form.get("next")));
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    if session::cross_site(&headers)
        || expected.is_empty()
        || !session::same_secret(form.get("csrf"), expected)
    {
        return login_form(
            &app,
            &headers,
            &next,
            Some("This sign-in form expired or came from another site; please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    match auth::login(&app, ip, form.get("user").trim(), form.get("password")).await {
        Ok(caller) => {
            let secret = app.web.start(
                &caller.user,
                &hash_now(&app, &caller.user),
                ingest::now_ms(),
            );
            let secure = is_https(&app, &headers);
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            for c in [
                session::set_cookie(session::COOKIE, &secret, session::SESSION_MS / 1000, secure),
                session::set_cookie(session::LOGIN_COOKIE, "", 0, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            let status = e.into_response().status();
            let message = match status {
                StatusCode::TOO_MANY_REQUESTS => {
                    "Too many sign-in attempts; wait a minute and try again."
                }
                StatusCode::UNAUTHORIZED => "Wrong user name or password.",
                _ => "Signing in failed on the server; try again.",
            };
            login_form(&app, &headers, &next, Some(message), status)
        }
    }
}

async fn logout(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Ok(page) = signed_in(&app, &headers, "/app/sites") {
        if let Err(e) = check_post(&page, &headers, &Form::parse(&body)) {
            return e.into_response();
        }
        if let Some(c) = session::cookie(&headers, session::COOKIE) {
            app.web.end(c);
        }
    }
    let clear = session::set_cookie(session::COOKIE, "", 0, is_https(&app, &headers));
    ([(header::SET_COOKIE, clear)], Redirect::to("/app/login")).into_response()
}

// ---- sites ------------------------------------------------------------------

/// Today's numbers of a site, and how long ago its last event arrived.
#[derive(Debug, Default, Serialize)]
struct SiteToday {
    id: String,
    domains: Vec<String>,
    events_today: u64,
    sessions_today: u64,
    last_event_s: Option<i64>,
}

fn site_today(
    conn: &duckdb::Connection,
    site: &Site,
    now_ms: i64,
) -> Result<SiteToday, analyzer::Error> {
    let midnight = now_ms - now_ms.rem_euclid(86_400_000);
    let (events, sessions): (i64, i64) = conn.query_row(
        "SELECT count(*), count(DISTINCT session_key) FROM events
         WHERE site = ? AND ts >= epoch_ms(?::BIGINT)",
        duckdb::params![site.id, midnight],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(SiteToday {
        id: site.id.clone(),
        domains: site.domains.clone(),
        events_today: events.unsigned_abs(),
        sessions_today: sessions.unsigned_abs(),
        last_event_s: last_event_s(conn, &site.id, now_ms)?,
    })
}

/// The collector's own address as the browser reached it, for the snippet.
fn origin(app: &App, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if is_https(app, headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

async fn sites_page(State(app): State<App>, headers: HeaderMap) -> Result<Response, PageError> {
    let page = signed_in(&app, &headers, "/app/sites")?;
    let sites: Vec<Site> = app.accounts.read(|s| {
        s.sites
            .values()
            .filter(|site| page.caller.may_see(&site.id))
            .cloned()
            .collect()
    });
    let now = ingest::now_ms();
    let today = api::read(&app, move |conn| {
        sites
            .iter()
            .map(|s| site_today(conn, s, now))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(render(
        "sites.html",
        context! { user => page.base(), sites => today, origin => origin(&app, &headers) },
    )
    .into_response())
}

async fn create_site(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let page = signed_in(&app, &headers, "/app/sites")?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    if !page.caller.admin {
        return Err(PageError::forbidden("Only an admin can add sites."));
    }
    let mut site = Site::new(form.get("id").trim());
    site.domains = form
        .get("domains")
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    site.validate().map_err(refused)?;
    if app.accounts.read(|s| s.sites.contains_key(&site.id)) {
        return Err(bad_request(format!(
            "The site `{}` exists already.",
            site.id
        )));
    }
    site.created_ms = ingest::now_ms();
    app.accounts
        .apply(&app.store, Change::PutSite(site))
        .await
        .map_err(refused)?;
    Ok(Redirect::to("/app/sites").into_response())
}

// ---- ranges -------------------------------------------------------------------

/// The range of a page, as its URL keeps it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct Range {
    #[serde(rename = "range")]
    preset: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// A saved funnel to show (the funnels page).
    name: Option<String>,
}

impl Range {
    /// The analyzer scope of `site` over this range, and the same length before it.
    fn scopes(&self, site: &str, now_ms: i64) -> Result<(Scope, Scope, String), PageError> {
        let day = 86_400_000;
        let midnight = now_ms - now_ms.rem_euclid(day);
        let date = |ms: i64| analyzer::scope::format_ms(ms)[..10].to_owned();
        let (since, until, label) = match self.preset.as_deref().unwrap_or("7d") {
            "today" => (midnight, now_ms, "today".to_owned()),
            "30d" => (now_ms - 30 * day, now_ms, "last 30 days".to_owned()),
            "custom" => {
                let parse = |v: Option<&str>| -> Result<i64, PageError> {
                    let v = v.unwrap_or("").trim();
                    Scope {
                        since: Some(v.to_owned()),
                        ..Scope::default()
                    }
                    .resolve(now_ms)
                    .ok()
                    .and_then(|s| s.since_ms)
                    .filter(|_| v.len() == 10)
                    .ok_or_else(|| bad_request(format!("`{v}` is not a date (YYYY-MM-DD)")))
                };
                let since = parse(self.since.as_deref())?;
                // The end date is included: until its end.
                let until = parse(self.until.as_deref())? + day;
                if until <= since {
                    return Err(bad_request("The range ends before it starts."));
                }
                (
                    since,
                    until,
                    format!("{} to {}", date(since), date(until - day)),
                )
            }
            _ => (now_ms - 7 * day, now_ms, "last 7 days".to_owned()),
        };
        let scope = |a: i64, b: i64| Scope {
            site: Some(site.to_owned()),
            since: Some(analyzer::scope::format_ms(a)),
            until: Some(analyzer::scope::format_ms(b)),
            include_bots: false,
        };
        // The period before: the same length just before; for today, yesterday up
        // to the same hour (a morning is not compared with an evening).
        let before = if self.preset.as_deref() == Some("today") {
            scope(since - day, until - day)
        } else {
            scope(since - (until - since), since)
        };
        Ok((scope(since, until), before, label))
    }

    /// The query string that keeps this range in links.
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("range", self.preset.as_deref().unwrap_or("7d"));
        if self.preset.as_deref() == Some("custom") {
            q.append_pair("since", self.since.as_deref().unwrap_or(""));
            q.append_pair("until", self.until.as_deref().unwrap_or(""));
        }
        q.finish()
    }

    fn context(&self, label: &str) -> minijinja::Value {
        context! {
            range => self.preset.clone().unwrap_or_else(|| "7d".to_owned()),
            since => self.since.clone().unwrap_or_default(),
            until => self.until.clone().unwrap_or_default(),
            query => self.query(),
            label => label,
        }
    }
}

/// An audit request from its name and scope, with every parameter at its default
/// (the same defaults as the CLI and the API).
fn request(audit: &str, scope: &Scope) -> Result<AuditRequest, PageError> {
    serde_json::from_value(json!({ "audit": audit, "scope": scope })).map_err(bad_request)
}

/// The saved funnel `name` of the scope's site, over the scope.
fn saved_funnel(scope: &Scope, name: &str) -> AuditRequest {
    AuditRequest::Funnel {
        scope: scope.clone(),
        steps: Vec::new(),
        name: Some(name.to_owned()),
        window: None,
    }
}

/// A page of one site over a range: who asks, which site, and the scopes.
struct SitePage {
    page: Page,
    site: String,
    range: Range,
    label: String,
    /// The range, and the same length just before it.
    scope: Scope,
    before: Scope,
}

impl SitePage {
    /// The signed-in user's page `tab` of `site` (404 if not theirs).
    fn open(
        app: &App,
        headers: &HeaderMap,
        site: String,
        range: Range,
        tab: &str,
    ) -> Result<Self, PageError> {
        let here = if tab == "overview" {
            format!("/app/site/{site}?{}", range.query())
        } else {
            format!("/app/site/{site}/{tab}?{}", range.query())
        };
        let page = signed_in(app, headers, &here)?;
        page.site(app, &site)?;
        let (scope, before, label) = range.scopes(&site, ingest::now_ms())?;
        Ok(SitePage {
            page,
            site,
            range,
            label,
            scope,
            before,
        })
    }

    /// `template` with the layout's values and `values`.
    fn render(&self, app: &App, template: &str, tab: &str, values: minijinja::Value) -> Response {
        render(
            template,
            context! {
                user => self.page.base(),
                site => self.site.clone(),
                sites => self.page.sites(app),
                tab => tab,
                period => self.range.context(&self.label),
                ..values
            },
        )
        .into_response()
    }
}

// ---- overview -----------------------------------------------------------------

/// The overview's live numbers: sessions and page views in the range, and how long
/// ago the site's last event arrived.
#[derive(Debug, Default, Serialize)]
struct Live {
    sessions: u64,
    pageviews: u64,
    last_event_s: Option<i64>,
}

fn live_numbers(
    conn: &duckdb::Connection,
    scope: &Scope,
    now_ms: i64,
) -> Result<Live, analyzer::Error> {
    let resolved = scope.resolve(now_ms)?;
    let sessions = analyzer::load::sessions(conn, &resolved)?;
    let (filter, params) = analyzer::load::scope_filter(&resolved);
    let pageviews: i64 = conn.query_row(
        &format!("SELECT count(*) FROM events WHERE {filter} AND kind = 'pageview'"),
        duckdb::params_from_iter(params),
        |r| r.get(0),
    )?;
    Ok(Live {
        sessions,
        pageviews: pageviews.unsigned_abs(),
        last_event_s: last_event_s(conn, resolved.site.as_deref().unwrap_or(""), now_ms)?,
    })
}

/// Seconds since the site's last event arrived; `None` before its first.
fn last_event_s(
    conn: &duckdb::Connection,
    site: &str,
    now_ms: i64,
) -> Result<Option<i64>, analyzer::Error> {
    let last: Option<i64> = conn.query_row(
        "SELECT epoch_ms(max(received_at)) FROM events WHERE site = ?",
        [site],
        |r| r.get(0),
    )?;
    Ok(last.map(|t| ((now_ms - t) / 1000).max(0)))
}

async fn overview(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(site): UrlPath<String>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let sp = SitePage::open(&app, &headers, site, range, "overview")?;
    let now = ingest::now_ms();
    let scope = sp.scope.clone();
    let site = sp.site.clone();
    let (numbers, last) = api::read(&app, move |conn| {
        let resolved = scope.resolve(now)?;
        Ok((
            analyzer::overview::overview(conn, &resolved, 10)?,
            last_event_s(conn, &site, now)?,
        ))
    })
    .await?;
    let days: Vec<(String, f64)> = numbers
        .days
        .iter()
        .map(|(day, n)| (day.clone(), *n as f64))
        .collect();
    let trend = analyzer::report::bar_chart("sessions per day", &days)
        .ok()
        .flatten()
        .map(minijinja::Value::from_safe_string);
    Ok(sp.render(
        &app,
        "overview.html",
        "overview",
        context! {
            numbers => numbers,
            last_event_s => last,
            trend => trend,
        },
    ))
}

/// `GET /app/site/S/live`: the overview's live numbers, as JSON.
async fn live(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(site): UrlPath<String>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let sp = SitePage::open(&app, &headers, site, range, "live")?;
    let (scope, now) = (sp.scope, ingest::now_ms());
    let numbers = api::read(&app, move |conn| live_numbers(conn, &scope, now)).await?;
    Ok(axum::Json(numbers).into_response())
}

// ---- audits -------------------------------------------------------------------

async fn audit_page(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath((site, audit)): UrlPath<(String, String)>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let sp = SitePage::open(&app, &headers, site, range, &audit)?;
    if !AUDIT_PAGES.contains(&audit.as_str()) {
        return Err(PageError::new(StatusCode::NOT_FOUND, "No such page."));
    }
    let req = request(&audit, &sp.scope)?;
    let report = api::read(&app, move |conn| analyzer::run(conn, &req)).await?;
    let section = analyzer::report::section(&report, &audit, &audit, MAX_ROWS).map_err(internal)?;
    Ok(sp.render(&app, "audit.html", &audit, context! { s => section }))
}

/// `GET /app/site/S/download/AUDIT.csv|AUDIT.json|report.html`.
async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath((site, file)): UrlPath<(String, String)>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let sp = SitePage::open(&app, &headers, site, range, &format!("download/{file}"))?;
    let (audit, format, mime) = match file.rsplit_once('.') {
        Some(("report", "html")) => ("report", analyzer::Format::Html, "text/html; charset=utf-8"),
        Some((a, "csv")) => (a, analyzer::Format::Csv, "text/csv; charset=utf-8"),
        Some((a, "json")) => (a, analyzer::Format::Json, "application/json"),
        _ => return Err(PageError::new(StatusCode::NOT_FOUND, "No such download.")),
    };
    if audit != "report" && audit != "funnel" && !AUDIT_PAGES.contains(&audit) {
        return Err(PageError::new(StatusCode::NOT_FOUND, "No such download."));
    }
    let req = if audit == "funnel" {
        saved_funnel(&sp.scope, sp.range.name.as_deref().unwrap_or_default())
    } else {
        request(audit, &sp.scope)?
    };
    let text = api::read(&app, move |conn| {
        let report = analyzer::run(conn, &req)?;
        analyzer::render(&report, format)
    })
    .await?;
    let name = format!("{}-{file}", sp.site)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response())
}

// ---- funnels ------------------------------------------------------------------

/// What the step pickers offer: the site's own paths, screens, clicked elements,
/// forms and custom events (the most frequent first).
fn step_choices(conn: &duckdb::Connection, site: &str) -> Result<Vec<String>, analyzer::Error> {
    let mut out = Vec::new();
    for (prefix, sql) in [
        (
            "page:",
            "SELECT path FROM events WHERE site = ? AND kind = 'pageview' AND path IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 60",
        ),
        (
            "screen:",
            "SELECT screen FROM events WHERE site = ? AND kind IN ('screen', 'pageview') AND screen IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 40",
        ),
        (
            "click:",
            "SELECT selector FROM events WHERE site = ? AND kind = 'click' AND selector IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 60",
        ),
        (
            "submit:",
            "SELECT form FROM events WHERE site = ? AND kind = 'submit' AND form IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 20",
        ),
        (
            "event:",
            "SELECT name FROM events WHERE site = ? AND kind = 'custom' AND name IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 40",
        ),
    ] {
        let mut stmt = conn.prepare(sql)?;
        for v in stmt.query_map([site], |r| r.get::<_, String>(0))? {
            out.push(format!("{prefix}{}", v?));
        }
    }
    Ok(out)
}

async fn funnels_page(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(site): UrlPath<String>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let sp = SitePage::open(&app, &headers, site, range, "funnels")?;
    let (scope, before) = (sp.scope.clone(), sp.before.clone());
    let (site2, wanted) = (sp.site.clone(), sp.range.name.clone());
    let (funnels, choices, shown) = api::read(&app, move |conn| {
        let funnels = saved::list(conn, Some(&site2))?;
        let choices = step_choices(conn, &site2)?;
        let chosen = wanted
            .as_deref()
            .and_then(|n| funnels.iter().find(|f| f.name == n))
            .or(funnels.first())
            .cloned();
        let shown = match chosen {
            Some(f) => {
                let ask = |scope: &Scope| analyzer::run(conn, &saved_funnel(scope, &f.name));
                Some((f.clone(), ask(&scope)?, ask(&before)?))
            }
            None => None,
        };
        Ok((funnels, choices, shown))
    })
    .await?;
    let mut shown_ctx = None;
    if let Some((f, now_r, before_r)) = shown {
        let section =
            analyzer::report::section(&now_r, "funnel", &f.name, MAX_ROWS).map_err(internal)?;
        let compare: Vec<(String, u64, u64)> = match (&now_r, &before_r) {
            (Report::Funnel(a), Report::Funnel(b)) => a
                .steps
                .iter()
                .zip(&b.steps)
                .map(|(x, y)| (x.step.clone(), x.entered, y.entered))
                .collect(),
            _ => Vec::new(),
        };
        shown_ctx = Some(context! {
            name => f.name, owner => f.site, window => f.window, s => section, compare => compare,
        });
    }
    Ok(sp.render(
        &app,
        "funnels.html",
        "funnels",
        context! {
            funnels => funnels,
            choices => choices,
            shown => shown_ctx,
        },
    ))
}

async fn save_funnel(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(site): UrlPath<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (_, form) = site_form(&app, &headers, &site, &body)?;
    let window = form.get("window").trim();
    let funnel = SavedFunnel {
        site: site.clone(),
        name: form.get("name").trim().to_owned(),
        steps: form.all("step"),
        window: if window.is_empty() {
            saved::DEFAULT_WINDOW.to_owned()
        } else {
            window.to_owned()
        },
    };
    funnel.validate().map_err(bad_request)?;
    let name = funnel.name.clone();
    api::write_funnels(&app, FunnelsAction::Save(funnel)).await?;
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("name", &name)
        .finish();
    Ok(Redirect::to(&format!("/app/site/{site}/funnels?{q}")).into_response())
}

/// A form posted on a page of `site`: its user (signed in, same origin, the CSRF
/// token, the site theirs) and its fields.
fn site_form(
    app: &App,
    headers: &HeaderMap,
    site: &str,
    body: &Bytes,
) -> Result<(Page, Form), PageError> {
    let page = signed_in(app, headers, &format!("/app/site/{site}/funnels"))?;
    let form = Form::parse(body);
    check_post(&page, headers, &form)?;
    page.site(app, site)?;
    Ok((page, form))
}

/// `POST /app/site/S/funnels/delete` (`name`, `scope` = `site` or `*`): deletes the
/// site's own saved funnel, or (admins) one saved for every site.
async fn delete_funnel(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(site): UrlPath<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (page, form) = site_form(&app, &headers, &site, &body)?;
    let owner = if form.get("scope") == saved::ANY_SITE {
        if !page.caller.admin {
            return Err(PageError::forbidden(
                "Only an admin can delete a funnel saved for every site.",
            ));
        }
        saved::ANY_SITE.to_owned()
    } else {
        site.clone()
    };
    let name = form.get("name").trim().to_owned();
    api::write_funnels(
        &app,
        FunnelsAction::Delete {
            site: owner,
            name: name.clone(),
        },
    )
    .await?;
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("deleted", &name)
        .finish();
    Ok(Redirect::to(&format!("/app/site/{site}/funnels?{q}")).into_response())
}

// ---- account and users ------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct AccountQuery {
    changed: Option<String>,
}

async fn account_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Result<Response, PageError> {
    let page = signed_in(&app, &headers, "/app/account")?;
    let notice = q
        .changed
        .is_some()
        .then_some("Your password was changed; other browsers were signed out.");
    Ok(account(&app, &page, None, notice).into_response())
}

fn account(app: &App, page: &Page, new_token: Option<&str>, notice: Option<&str>) -> Html<String> {
    let mut tokens: Vec<accounts::TokenInfo> = app.accounts.read(|s| {
        s.tokens
            .values()
            .filter(|t| t.user == page.caller.user)
            .cloned()
            .collect()
    });
    tokens.sort_by_key(|t| t.created_ms);
    let tokens: Vec<_> = tokens
        .into_iter()
        .map(|t| context! { id => t.id, label => t.label, created => analyzer::scope::format_ms(t.created_ms) })
        .collect();
    render(
        "account.html",
        context! {
            user => page.base(),
            sites => page.sites(app),
            tokens => tokens,
            new_token => new_token,
            notice => notice,
        },
    )
}

async fn change_password(State(app): State<App>, req: Request) -> Result<Response, PageError> {
    let ip = auth::client_ip(&app, &req);
    let headers = req.headers().clone();
    let page = signed_in(&app, &headers, "/app/account")?;
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| bad_request("That form is too large."))?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    // The current password first: a browser left signed in is not enough.
    auth::login(&app, ip, &page.caller.user, form.get("current"))
        .await
        .map_err(|e| match e {
            ApiError::Unauthorized(_) => PageError::forbidden("The current password is wrong."),
            other => PageError::from(other),
        })?;
    let new = form.get("new").to_owned();
    if new != form.get("again") {
        return Err(bad_request("The two new passwords differ."));
    }
    let hash = api::hash_blocking(new).await?;
    app.accounts
        .apply(
            &app.store,
            Change::SetPassword {
                name: page.caller.user.clone(),
                password_hash: hash,
            },
        )
        .await
        .map_err(refused)?;
    // Every session of the user ends with the old password (their stamp no longer
    // matches); this browser gets a new one, and a fresh page to go on from.
    if let Some(old) = session::cookie(&headers, session::COOKIE) {
        app.web.end(old);
    }
    let secret = app.web.start(
        &page.caller.user,
        &hash_now(&app, &page.caller.user),
        ingest::now_ms(),
    );
    let cookie = session::set_cookie(
        session::COOKIE,
        &secret,
        session::SESSION_MS / 1000,
        is_https(&app, &headers),
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/app/account?changed=1"),
    )
        .into_response())
}

/// The user's password hash as the accounts hold it now.
fn hash_now(app: &App, user: &str) -> String {
    app.accounts.read(|a| {
        a.users
            .get(user)
            .map(|u| u.password_hash.clone())
            .unwrap_or_default()
    })
}

async fn create_token(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let page = signed_in(&app, &headers, "/app/account")?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    let label = form.get("label").trim();
    let (change, token) = accounts::token_for(
        &page.caller.user,
        if label.is_empty() { "dashboard" } else { label },
    );
    app.accounts
        .apply(&app.store, change)
        .await
        .map_err(refused)?;
    Ok(account(&app, &page, Some(&token), None).into_response())
}

async fn revoke_token(
    State(app): State<App>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let page = signed_in(&app, &headers, "/app/account")?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    let theirs = app.accounts.read(|s| {
        s.tokens
            .values()
            .any(|t| t.id == id && (t.user == page.caller.user || page.caller.admin))
    });
    if !theirs {
        return Err(PageError::new(StatusCode::NOT_FOUND, "No such token."));
    }
    app.accounts
        .apply(&app.store, Change::DeleteToken(id))
        .await
        .map_err(refused)?;
    Ok(Redirect::to("/app/account").into_response())
}

fn admin_page(app: &App, headers: &HeaderMap) -> Result<Page, PageError> {
    let page = signed_in(app, headers, "/app/users")?;
    if page.caller.admin {
        Ok(page)
    } else {
        Err(PageError::forbidden("Only an admin can manage users."))
    }
}

async fn users_page(State(app): State<App>, headers: HeaderMap) -> Result<Response, PageError> {
    let page = admin_page(&app, &headers)?;
    let users: Vec<accounts::User> = app.accounts.read(|s| s.users.values().cloned().collect());
    Ok(render(
        "users.html",
        context! { user => page.base(), sites => page.sites(&app), users => users },
    )
    .into_response())
}

async fn create_user(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let page = admin_page(&app, &headers)?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    let hash = api::hash_blocking(form.get("password").to_owned()).await?;
    let add = Change::AddUser {
        name: form.get("name").trim().to_owned(),
        password_hash: hash,
        admin: form.get("admin") == "on",
        sites: form.all("site"),
        created_ms: ingest::now_ms(),
    };
    app.accounts.apply(&app.store, add).await.map_err(refused)?;
    Ok(Redirect::to("/app/users").into_response())
}

/// `POST /app/users/access`: `user`, `site`, `action` = `grant` or `revoke`.
async fn user_access(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let page = admin_page(&app, &headers)?;
    let form = Form::parse(&body);
    check_post(&page, &headers, &form)?;
    let (user, site) = (form.get("user").to_owned(), form.get("site").to_owned());
    let change = match form.get("action") {
        "revoke" => Change::Revoke { user, site },
        _ => Change::Grant { user, site },
    };
    app.accounts
        .apply(&app.store, change)
        .await
        .map_err(refused)?;
    Ok(Redirect::to("/app/users").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_dashboard_path_is_a_place_to_go_after_signing_in() {
        for kept in [
            "/app/users",
            "/app/site/demo/funnels?range=custom&since=2026-11-01&until=2026-11-30",
            "/app/site/demo%20shop",
        ] {
            assert_eq!(next_path(Some(kept)), kept);
        }
        for refused in [
            None,
            Some(""),
            Some("//evil.example/app/"),
            Some("https://evil.example/app/"),
            Some("/app/\\evil.example"),
            Some("/app/\r\nSet-Cookie: x=1"),
            Some("/app/\0"),
            Some("/app/a b"),
            Some("/app/\u{7f}"),
            Some("/app/caf\u{e9}"),
        ] {
            assert_eq!(next_path(refused), "/app/sites", "{refused:?}");
        }
    }
}
