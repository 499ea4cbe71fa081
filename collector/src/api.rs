//! `/api/*`: the audits, saved funnels, accounts, sites and erasure, for a signed-in
//! [`Caller`] (see [`crate::auth`]), who sees only their sites.
//!
//! Audits run on their own DuckDB connection each ([`read`]): at most
//! `--max-audits` at once (503 + Retry-After beyond), stopped after
//! `--audit-timeout-s`, and stopped as soon as their client goes away. Every write
//! (saved funnels, accounts, sites, erasure) goes through the store's single writer.
//! Bodies must be `application/json`, so no other website can post here through a
//! visitor's browser without a preflight, and no answer carries a CORS header.

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path as UrlPath, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use duckdb::Connection;
use serde::Deserialize;
use serde_json::json;

use analyzer::saved::{self, FunnelsAction, SavedFunnel};

use crate::{
    accounts::{self, AccountError, Change, Site},
    auth::Caller,
    error::ApiError,
    ingest, retention,
    serve::App,
};

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

/// A JSON body of type `T`, or a 400 naming what is wrong.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
    what: &str,
) -> Result<T, ApiError> {
    require_json(headers)?;
    serde_json::from_slice(body).map_err(|e| ApiError::BadAudit {
        code: "invalid_request",
        message: format!("not {what}: {e}"),
    })
}

fn audit_error(e: &analyzer::Error) -> ApiError {
    if e.is_bad_request() {
        let code = e.code();
        ApiError::BadAudit {
            code,
            message: e.to_string(),
        }
    } else if e.to_string().to_ascii_lowercase().contains("interrupt") {
        ApiError::AuditTimeout(0)
    } else {
        ApiError::internal(e)
    }
}

pub(crate) fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => ApiError::BadAudit {
            code: "invalid_request",
            message: m,
        },
        AccountError::NotFound(m) => ApiError::NotFound {
            code: "not_found",
            message: m,
        },
        AccountError::Exists(m) => ApiError::BadAudit {
            code: "exists",
            message: m,
        },
        AccountError::Db(d) => ApiError::internal(d),
    }
}

/// Applies an accounts change through the writer; 204 when done.
async fn change(app: &App, change: Change) -> Result<Response, ApiError> {
    app.accounts
        .apply(&app.store, change)
        .await
        .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Interrupts a DuckDB query when dropped before [`Self::disarm`]: the audit's client
/// went away (axum drops the handler), or the time limit passed.
struct StopOnDrop(Option<Arc<duckdb::InterruptHandle>>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.interrupt();
        }
    }
}

/// Runs a read on a connection of its own, within the audit limits.
pub async fn read<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Connection) -> Result<T, analyzer::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = app
        .audits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy(app.config.max_audits))?;
    let conn = app.store.reader().map_err(ApiError::internal)?;
    let stop = StopOnDrop(Some(conn.interrupt_handle()));
    let task = tokio::task::spawn_blocking(move || {
        let _slot = permit; // freed when the query has really stopped
        f(&conn)
    });
    let limit = app.config.audit_timeout_s;
    match tokio::time::timeout(Duration::from_secs(limit), task).await {
        Err(_) => Err(ApiError::AuditTimeout(limit)), // `stop` interrupts it on drop
        Ok(joined) => {
            stop.disarm();
            match joined
                .map_err(ApiError::internal)?
                .map_err(|e| audit_error(&e))
            {
                Err(ApiError::AuditTimeout(_)) => Err(ApiError::AuditTimeout(limit)),
                other => other,
            }
        }
    }
}

/// `POST /api/audit`: an [`analyzer::AuditRequest`], narrowed to the caller's sites.
pub async fn audit(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut req: analyzer::AuditRequest = json_body(&headers, &body, "a valid audit request")?;
    caller.narrow(&mut req.scope_mut().site)?;
    let report = read(&app, move |conn| analyzer::run(conn, &req)).await?;
    Ok(Json(report).into_response())
}

/// `?site=S` of the funnels endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteQuery {
    site: Option<String>,
}

/// A query string [`SiteQuery`] cannot read (another parameter, `site` twice): what
/// it takes, in our words (serde's name types and positions).
fn bad_query(e: &axum::extract::rejection::QueryRejection) -> ApiError {
    tracing::debug!(error = %e, "bad query string");
    ApiError::BadAudit {
        code: "invalid_request",
        message: "bad query string: this endpoint takes only `site=S`, once".to_owned(),
    }
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// `GET /api/funnels[?site=S]`: the funnels that apply to S (all the caller's without it).
pub async fn list_funnels(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    query: QueryResult<SiteQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    if let Some(site) = &q.site {
        caller.check_site(site)?;
    }
    let funnels = read(&app, move |conn| {
        saved::apply(conn, &FunnelsAction::List { site: q.site }, 0)
    })
    .await?;
    let visible: Vec<SavedFunnel> = funnels
        .into_iter()
        .filter(|f| f.site == saved::ANY_SITE || caller.may_see(&f.site))
        .collect();
    Ok(Json(json!({ "funnels": visible })).into_response())
}

/// A funnel action on the writer; answers the site's funnels afterwards.
pub(crate) async fn write_funnels(app: &App, action: FunnelsAction) -> Result<Response, ApiError> {
    let funnels = app
        .store
        .write(move |conn| saved::apply(conn, &action, analyzer::scope::now_ms()))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| audit_error(&e))?;
    Ok(Json(json!({ "funnels": funnels })).into_response())
}

/// Funnels for every site (`*`) are an admin's; a site's, its users'.
fn check_funnel_site(caller: &Caller, site: &str) -> Result<(), ApiError> {
    if site == saved::ANY_SITE {
        caller.check_admin()
    } else {
        caller.check_site(site)
    }
}

/// `POST /api/funnels` with a saved funnel's JSON: saves (or replaces) it.
pub async fn save_funnel(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let funnel: SavedFunnel = json_body(
        &headers,
        &body,
        "a saved funnel (expected {\"site\", \"name\", \"steps\", \"window\"})",
    )?;
    check_funnel_site(&caller, &funnel.site)?;
    write_funnels(&app, FunnelsAction::Save(funnel)).await
}

/// `DELETE /api/funnels/NAME[?site=S]` (S defaults to `*`, every site).
pub async fn delete_funnel(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    query: QueryResult<SiteQuery>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let site = q.site.unwrap_or_else(|| saved::ANY_SITE.to_owned());
    check_funnel_site(&caller, &site)?;
    write_funnels(&app, FunnelsAction::Delete { site, name }).await
}

/// `GET /api/me`: who the token belongs to, and their sites.
pub async fn me(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    let sites: Vec<String> = app.accounts.read(|s| {
        s.sites
            .keys()
            .filter(|id| caller.may_see(id))
            .cloned()
            .collect()
    });
    Json(json!({ "user": caller.user, "admin": caller.admin, "sites": sites }))
}

/// `GET /api/sites`: the caller's registered sites with their settings.
pub async fn list_sites(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    let sites: Vec<Site> = app.accounts.read(|s| {
        s.sites
            .values()
            .filter(|site| caller.may_see(&site.id))
            .cloned()
            .collect()
    });
    Json(json!({ "sites": sites }))
}

/// `POST /api/sites` (admin): registers a site or changes its settings.
pub async fn put_site(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    let mut site: Site = json_body(
        &headers,
        &body,
        "a site (expected {\"id\", \"domains\", \"retention_days\", \"clear_ids\"})",
    )?;
    site.validate().map_err(account_error)?;
    site.created_ms = app
        .accounts
        .read(|s| s.sites.get(&site.id).map(|old| old.created_ms))
        .unwrap_or_else(ingest::now_ms);
    app.accounts
        .apply(&app.store, Change::PutSite(site.clone()))
        .await
        .map_err(account_error)?;
    Ok(Json(json!({ "site": site })).into_response())
}

/// `DELETE /api/sites/ID` (admin): stops taking its events (they stay stored).
pub async fn delete_site(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    change(&app, Change::DeleteSite(id)).await
}

/// `GET /api/users` (admin).
pub async fn list_users(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.check_admin()?;
    let users: Vec<accounts::User> = app.accounts.read(|s| s.users.values().cloned().collect());
    Ok(Json(json!({ "users": users })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    sites: Vec<String>,
}

/// `POST /api/users` (admin): `{"name", "password", "admin", "sites"}`.
pub async fn add_user(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    let u: NewUser = json_body(
        &headers,
        &body,
        "a user (expected {\"name\", \"password\", \"admin\", \"sites\"})",
    )?;
    let hash = hash_blocking(u.password).await?;
    let add = Change::AddUser {
        name: u.name.clone(),
        password_hash: hash,
        admin: u.admin,
        sites: u.sites,
        created_ms: ingest::now_ms(),
    };
    app.accounts
        .apply(&app.store, add)
        .await
        .map_err(account_error)?;
    let user = app.accounts.read(|s| s.users.get(&u.name).cloned());
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))).into_response())
}

pub(crate) async fn hash_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(account_error)
}

/// `DELETE /api/users/NAME` (admin): the user and their tokens.
pub async fn delete_user(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    change(&app, Change::DeleteUser(name)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    password: String,
    /// The caller's current password, when the account is their own (the name of
    /// the dashboard's field).
    #[serde(default)]
    current: Option<String>,
}

/// `POST /api/users/NAME/password` `{"password", "current"}`: the user themself,
/// with their current password (a browser left signed in, or a token, is not enough
/// to take the account over), or an admin for another user (no `current`). Every
/// dashboard session of the user ends; API tokens are kept.
pub async fn set_password(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if caller.user != name {
        caller.check_admin()?;
    }
    let p: Password = json_body(&headers, &body, "{\"password\": …, \"current\": …}")?;
    if caller.user == name {
        let Some(current) = p.current.as_deref() else {
            return Err(ApiError::BadAudit {
                code: "current_password_required",
                message: "to change your own password, send the current one too: \
                          {\"password\": NEW, \"current\": OLD}"
                    .to_owned(),
            });
        };
        let ip = crate::auth::client_ip_of(&app, &extensions, &headers);
        crate::auth::login(&app, ip, &name, current)
            .await
            .map_err(|e| match e {
                ApiError::Unauthorized(_) => {
                    ApiError::Forbidden("the current password is wrong".to_owned())
                }
                other => other,
            })?;
    }
    let hash = hash_blocking(p.password).await?;
    change(
        &app,
        Change::SetPassword {
            name,
            password_hash: hash,
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    site: String,
}

/// `POST /api/users/NAME/sites` `{"site"}` (admin): gives the user a site.
pub async fn grant_site(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    let g: Grant = json_body(&headers, &body, "{\"site\": …}")?;
    change(
        &app,
        Change::Grant {
            user: name,
            site: g.site,
        },
    )
    .await
}

/// `DELETE /api/users/NAME/sites/SITE` (admin): takes a site away.
pub async fn revoke_site(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, site)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    caller.check_admin()?;
    change(&app, Change::Revoke { user: name, site }).await
}

/// `GET /api/tokens`: the caller's tokens (an admin's: everyone's), never their secrets.
pub async fn list_tokens(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    let mut tokens: Vec<accounts::TokenInfo> = app.accounts.read(|s| {
        s.tokens
            .values()
            .filter(|t| caller.admin || t.user == caller.user)
            .cloned()
            .collect()
    });
    tokens.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    Json(json!({ "tokens": tokens }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[serde(default)]
    label: String,
}

/// `POST /api/tokens` `{"label"}`: a new token for the caller, shown once. Also takes
/// `Authorization: Basic` (user name and password), to get a first token.
pub async fn create_token(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t: NewToken = if body.is_empty() {
        NewToken::default()
    } else {
        json_body(&headers, &body, "{\"label\": …}")?
    };
    let (change, token) = accounts::token_for(&caller.user, &t.label);
    let Change::AddToken { info, .. } = &change else {
        return Err(ApiError::internal("token_for gave another change"));
    };
    let info = info.clone();
    app.accounts
        .apply(&app.store, change)
        .await
        .map_err(account_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "id": info.id, "user": info.user, "label": info.label })),
    )
        .into_response())
}

/// `DELETE /api/tokens/ID`: revokes one of the caller's tokens (an admin: anyone's).
pub async fn revoke_token(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let owner = app.accounts.read(|s| {
        s.tokens
            .values()
            .find(|t| t.id == id)
            .map(|t| t.user.clone())
    });
    match owner {
        Some(u) if u == caller.user || caller.admin => {}
        _ => {
            return Err(ApiError::NotFound {
                code: "not_found",
                message: format!(
                    "no token `{}` of yours",
                    id.chars().take(40).collect::<String>()
                ),
            });
        }
    }
    change(&app, Change::DeleteToken(id)).await
}

/// `POST /api/erase` `{"site", "visitor_id" | "user_id" | "session_id"}`: deletes one
/// person's events (a GDPR erasure request). Answers how many were deleted.
pub async fn erase(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: retention::EraseRequest = json_body(
        &headers,
        &body,
        "an erasure (expected {\"site\", and one of \"visitor_id\", \"user_id\", \"session_id\"})",
    )?;
    caller.check_site(&req.site)?;
    let key = app.accounts.read(|s| s.uid_key);
    let target = req.target(&key).map_err(|m| ApiError::BadAudit {
        code: "invalid_request",
        message: m,
    })?;
    let site = req.site.clone();
    let deleted = app
        .store
        .write(move |conn| retention::erase(conn, &site, &target))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(site = %req.site, deleted, by = %caller.user, "erasure");
    Ok(Json(json!({ "site": req.site, "deleted": deleted })).into_response())
}
