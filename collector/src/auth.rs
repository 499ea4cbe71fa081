//! Who is asking: the `Host` check and the credentials of `/api/*`.
//!
//! [`require_host`] refuses a request whose `Host` the collector does not serve
//! (localhost, 127.0.0.1, `[::1]`, the listen address and `--allowed-hosts`): a page on
//! another domain that rebinds its DNS name to this machine cannot reach the API with
//! a visitor's browser. [`authenticate`] turns `Authorization: Bearer TOKEN` into a
//! [`Caller`] (or `Basic user:password`, only to create a token with
//! `POST /api/tokens`, rate-limited per address and per user); without one the answer
//! is 401. A request without `Authorization` may instead carry a dashboard session
//! cookie ([`crate::dashboard::session_caller`]); with it, a request that changes
//! state must come from the collector's own origin. Handlers then ask the
//! [`Caller`] which sites it may see: another user's site answers 404, as a site that
//! does not exist.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{Extensions, HeaderMap, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;

use crate::{accounts::User, error::ApiError, ingest, ratelimit, serve::App};

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub admin: bool,
    pub sites: BTreeSet<String>,
}

impl From<&User> for Caller {
    fn from(u: &User) -> Self {
        Caller {
            user: u.name.clone(),
            admin: u.admin,
            sites: u.sites.clone(),
        }
    }
}

/// The 404 for a site the caller may not see (or that does not exist).
pub fn no_such_site(site: &str) -> ApiError {
    ApiError::NotFound {
        code: "unknown_site",
        message: format!(
            "no site `{}` among yours",
            site.chars().take(80).collect::<String>()
        ),
    }
}

impl Caller {
    /// Whether the caller may read and manage `site`.
    pub fn may_see(&self, site: &str) -> bool {
        self.admin || self.sites.contains(site)
    }

    /// 404 unless the caller may see `site`.
    pub fn check_site(&self, site: &str) -> Result<(), ApiError> {
        if self.may_see(site) {
            Ok(())
        } else {
            Err(no_such_site(site))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn check_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only an admin may do this".to_owned()))
        }
    }

    /// Narrows an audit's site to what the caller may see: their own site as asked,
    /// their only site when none is asked, every site for an admin.
    pub fn narrow(&self, site: &mut Option<String>) -> Result<(), ApiError> {
        match site.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => self.check_site(s),
            None if self.admin => Ok(()),
            None => match self.sites.len() {
                0 => Err(ApiError::Forbidden(format!(
                    "user `{}` has no sites yet; an admin grants them",
                    self.user
                ))),
                1 => {
                    *site = self.sites.first().cloned();
                    Ok(())
                }
                _ => Err(ApiError::BadAudit {
                    code: "site_required",
                    message: format!(
                        "choose a site (\"scope\": {{\"site\": …}}, or --site): one of {}",
                        self.sites.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }),
            },
        }
    }
}

/// The host part of a `Host` header value (no port, lower case, no brackets).
pub fn host_name(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        v.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(v, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the API and pages answer to `host`.
pub fn host_allowed(app: &App, headers: &HeaderMap, uri_host: Option<&str>) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(uri_host)
        .map(host_name)
    else {
        return false;
    };
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    let listen = app.config.listen.ip();
    if !listen.is_unspecified() && host.parse::<IpAddr>().is_ok_and(|ip| ip == listen) {
        return true;
    }
    app.config
        .allowed_hosts
        .iter()
        .any(|a| a == "*" || host_name(a) == host)
}

/// Refuses a request for a host the collector does not serve (421).
pub async fn require_host(State(app): State<App>, req: Request, next: Next) -> Response {
    if host_allowed(&app, req.headers(), req.uri().host()) {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| "(none)".to_owned(), host_name);
    ApiError::BadHost(host.chars().take(100).collect()).into_response()
}

/// The client's address as every limit keys it, the same as `/collect`'s: the TCP
/// peer, or behind `--trust-proxy` the last `X-Forwarded-For` entry (else every
/// visitor behind the proxy would share one sign-in budget, and one guesser could
/// spend it for all). `None` without a connection (tests that build requests).
pub fn client_ip(app: &App, req: &Request) -> Option<IpAddr> {
    client_ip_of(app, req.extensions(), req.headers())
}

/// [`client_ip`] from a request's extensions and headers (in a handler).
pub fn client_ip_of(app: &App, extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0;
    Some(ingest::client_ip(peer, headers, app.config.trust_proxy))
}

/// `/api/*`: a [`Caller`] from the request's credentials, or 401.
pub async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_owned();
    // A signed-in dashboard browser (no `Authorization`): its session, but nothing
    // that changes state from another origin (the cookie is `SameSite=Strict`, and
    // bodies must be JSON; this is the third lock).
    if auth.is_empty()
        && let Some((c, _)) = crate::dashboard::session_caller(&app, req.headers())
    {
        let reads = matches!(*req.method(), Method::GET | Method::HEAD);
        if !reads && crate::dashboard::session::cross_site(req.headers()) {
            return ApiError::Forbidden(
                "this request came from another site; the dashboard's session works only from its own pages"
                    .to_owned(),
            )
            .into_response();
        }
        req.extensions_mut().insert(c);
        return next.run(req).await;
    }
    let token_post = req.method() == Method::POST && req.uri().path() == "/api/tokens";
    match caller(&app, &auth, token_post, client_ip(&app, &req)).await {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The caller named by an `Authorization` value; a password (Basic) only when
/// `token_post` (the request creates a token).
async fn caller(
    app: &App,
    auth: &str,
    token_post: bool,
    ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return app
            .accounts
            .read(|s| s.token_user(value.trim()).map(Caller::from))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "this API token is not valid (revoked, or mistyped)".to_owned(),
                )
            });
    }
    if scheme.eq_ignore_ascii_case("basic") && token_post {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or(("", ""));
        return login(app, ip, user, password).await;
    }
    Err(ApiError::Unauthorized(
        "this endpoint needs an API token: `Authorization: Bearer TOKEN` \
         (create one with `clicktrail tokens create --user NAME`)"
            .to_owned(),
    ))
}

/// Checks a user's password, at most a few tries a minute per address and per user.
pub async fn login(
    app: &App,
    ip: Option<IpAddr>,
    user: &str,
    password: &str,
) -> Result<Caller, ApiError> {
    if let Some(ip) = ip {
        app.limits
            .login_ip
            .check(&ratelimit::client_key(ip), 1.0)
            .map_err(|w| {
                ApiError::RateLimited("to sign in from this address", ratelimit::retry_after_s(w))
            })?;
    }
    app.limits
        .login_user
        .check(&user.to_owned(), 1.0)
        .map_err(|w| {
            ApiError::RateLimited("to sign in as this user", ratelimit::retry_after_s(w))
        })?;
    let accounts = app.accounts.clone();
    let (user, password) = (user.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || {
        accounts.read(|s| s.login(&user, &password).map(Caller::from))
    })
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::Unauthorized("wrong user name or password".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_brackets() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("shop.example."), "shop.example");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn narrowing_gives_each_caller_only_their_sites() {
        let ann = Caller {
            user: "ann".into(),
            admin: false,
            sites: ["a".to_owned()].into(),
        };
        let mut site = None;
        ann.narrow(&mut site).unwrap();
        assert_eq!(site.as_deref(), Some("a"));
        let mut b = Some("b".to_owned());
        assert!(matches!(ann.narrow(&mut b), Err(ApiError::NotFound { .. })));
        let two = Caller {
            sites: ["a".to_owned(), "b".to_owned()].into(),
            ..ann.clone()
        };
        assert!(two.narrow(&mut None).is_err());
        let admin = Caller { admin: true, ..ann };
        let mut all = None;
        admin.narrow(&mut all).unwrap();
        assert_eq!(all, None);
    }
}
