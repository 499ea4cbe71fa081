//! Signed-in browsers: session cookies and their CSRF tokens.
//!
//! A session is 256 random bits in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when the request came over HTTPS through a trusted proxy); the collector
//! keeps only its SHA-256, with the user's name, a CSRF token and an expiry, in
//! memory (a restart signs everyone out). Every state-changing request must carry the
//! session's CSRF token in its form and, when the browser sends `Origin` or
//! `Sec-Fetch-Site`, come from this origin. The user's rights are read from the
//! accounts on every request, so a revoked site or a deleted user takes effect at
//! once.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};

use crate::accounts::{random_hex, token_hash};

/// The session cookie's name.
pub const COOKIE: &str = "ct_session";
/// The cookie that carries the login form's CSRF token (before any session).
pub const LOGIN_COOKIE: &str = "ct_login";
/// How long a session lasts after sign-in.
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: String,
    pub csrf: String,
    /// A hash of the user's password hash at sign-in: a new password (set by the
    /// user or an admin) or a user deleted and made again ends the session.
    pub stamp: String,
    expires_ms: i64,
}

/// The live sessions, by the hash of their cookie.
#[derive(Debug, Default)]
pub struct WebSessions {
    live: Mutex<HashMap<String, WebSession>>,
}

impl WebSessions {
    /// A new session for `user` whose password hash is `password_hash`: its cookie
    /// value (shown once, never stored).
    pub fn start(&self, user: &str, password_hash: &str, now_ms: i64) -> String {
        let secret = random_hex(32);
        let session = WebSession {
            user: user.to_owned(),
            csrf: random_hex(16),
            stamp: stamp(password_hash),
            expires_ms: now_ms + SESSION_MS,
        };
        let mut live = self.lock();
        live.retain(|_, s| s.expires_ms > now_ms);
        live.insert(token_hash(&secret), session);
        secret
    }

    /// The session of a cookie value, if live.
    pub fn get(&self, secret: &str, now_ms: i64) -> Option<WebSession> {
        let live = self.lock();
        live.get(&token_hash(secret))
            .filter(|s| s.expires_ms > now_ms)
            .cloned()
    }

    /// Ends the session of a cookie value.
    pub fn end(&self, secret: &str) {
        self.lock().remove(&token_hash(secret));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WebSession>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a session keeps of the user's password hash.
pub fn stamp(password_hash: &str) -> String {
    token_hash(password_hash)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` when
/// `secure`; `max_age_s` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the browser says the request came from another site: `Sec-Fetch-Site`
/// other than same-origin or none, or an `Origin` whose host is not the request's.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let value = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (value(header::ORIGIN), value(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .split_once("://")
                .map_or(origin, |(_, rest)| rest)
                .trim_end_matches('/');
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_expire_and_end() {
        let s = WebSessions::default();
        let c = s.start("ann", "$argon2id$x", 0);
        let got = s.get(&c, 1).unwrap();
        assert_eq!(got.user, "ann");
        assert_eq!(got.stamp, stamp("$argon2id$x"));
        assert!(s.get(&c, SESSION_MS).is_none(), "expired");
        assert!(s.get("nope", 1).is_none());
        let e = s.start("bob", "h", 10);
        s.end(&e);
        assert!(s.get(&e, 11).is_none());
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(
            !cross_site(&h),
            "no Origin: a same-origin form in old browsers"
        );
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(cross_site(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(cross_site(&h), "a sibling subdomain is not this origin");
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(!cross_site(&h));
    }

    #[test]
    fn cookies_are_read_and_written() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ct_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie(COOKIE, "abc", 60, true);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure")
        );
        assert!(!set_cookie(COOKIE, "abc", 60, false).contains("Secure"));
    }
}
