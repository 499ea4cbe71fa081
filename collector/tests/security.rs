//! The collector as an attacker meets it: the real router over a real DuckDB file.
//! Who may read or change what (tokens, sites, hosts), what a hostile body costs,
//! what a flood does, what is stored of the secrets a page leaks, what an error
//! reveals, and whether health tells the truth.

// Tests read as a script: h (harness), s (status), b (body), e (event).
#![allow(clippy::many_single_char_names, clippy::needless_pass_by_value)]

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode, header},
};
use clicktrail_collector::{
    App, Config,
    accounts::{Change, Site},
    router,
    store::{Store, WriterOptions},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;

const SID: &str = "00112233445566778899aabbccddeeff";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct H {
    _dir: tempfile::TempDir,
    app: App,
    db: std::path::PathBuf,
    admin: String,
}

async fn start(tweak: impl FnOnce(&mut Config)) -> H {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.duckdb");
    let (store, _writer) = Store::open(&db, WriterOptions::default()).unwrap();
    let mut config = Config::default();
    config.db.clone_from(&db);
    tweak(&mut config);
    let app = App::new(config, store).unwrap();
    for id in ["a", "b"] {
        app.accounts
            .apply(&app.store, Change::PutSite(Site::new(id)))
            .await
            .unwrap();
    }
    let admin = common::token(&app, "root", true, &[]).await;
    H {
        _dir: dir,
        app,
        db,
        admin,
    }
}

impl H {
    /// A user who sees only `sites`, and their token.
    async fn user(&self, name: &str, sites: &[&str]) -> String {
        common::token(&self.app, name, false, sites).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let resp = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body, headers)
    }

    async fn api(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let (s, b, _) = self
            .send(req.body(Body::from(body.to_owned())).unwrap())
            .await;
        (s, b)
    }

    async fn collect(
        &self,
        body: String,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        self.collect_from([203, 0, 113, 7], body, extra).await
    }

    async fn collect_from(
        &self,
        ip: [u8; 4],
        body: String,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::post("/collect")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::USER_AGENT, CHROME)
            .extension(ConnectInfo(SocketAddr::from((ip, 5555))));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    fn count(&self, sql: &str) -> i64 {
        self.app
            .store
            .with_reader(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap()
    }
}

fn batch(site: &str, events: &[Value]) -> String {
    json!({"v": 1, "site": site, "sid": SID, "sent": now_ms(), "events": events}).to_string()
}

fn ev(i: usize, kind: &str, extra: Value) -> Value {
    let mut e =
        json!({"id": format!("{i:032x}"), "k": kind, "t": now_ms(), "seq": i, "path": "/cart"});
    if let (Some(o), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    e
}

#[tokio::test]
async fn the_api_needs_a_token_and_shows_each_user_only_their_sites() {
    let h = start(|_| {}).await;
    h.collect(batch("a", &[ev(1, "pageview", json!({}))]), &[])
        .await;
    h.collect(batch("b", &[ev(2, "pageview", json!({}))]), &[])
        .await;
    let ann = h.user("ann", &["a"]).await;

    // No token, a wrong token: 401 everywhere, with what to do.
    for (m, uri) in [
        ("POST", "/api/audit"),
        ("GET", "/api/funnels"),
        ("DELETE", "/api/funnels/x?site=a"),
        ("GET", "/api/sites"),
        ("GET", "/api/users"),
        ("GET", "/api/tokens"),
        ("POST", "/api/erase"),
    ] {
        for token in [None, Some("ct_0000"), Some("")] {
            let (s, b) = h.api(m, uri, token, "{}").await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {uri} {token:?}: {b}");
            assert_eq!(b["error"], "unauthorized");
        }
    }
    // Ann reads site a; site b looks like no site at all.
    let audit = |site: &str| json!({"audit": "screens", "scope": {"site": site}}).to_string();
    let (s, b) = h.api("POST", "/api/audit", Some(&ann), &audit("a")).await;
    assert_eq!(
        (s, b["sessions"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{b}"
    );
    let (s, b) = h.api("POST", "/api/audit", Some(&ann), &audit("b")).await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::NOT_FOUND, &json!("unknown_site")),
        "{b}"
    );
    let (s, b) = h
        .api("POST", "/api/audit", Some(&ann), &audit("nope"))
        .await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::NOT_FOUND, &json!("unknown_site")),
        "{b}"
    );
    // Without a site: hers only.
    let (s, b) = h
        .api("POST", "/api/audit", Some(&ann), r#"{"audit":"screens"}"#)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["scope"]["site"], "a");
    assert_eq!(b["sessions"], 1);
    // The admin sees both.
    let (_, b) = h
        .api(
            "POST",
            "/api/audit",
            Some(&h.admin),
            r#"{"audit":"screens"}"#,
        )
        .await;
    // A session belongs to its site: one session id sent to two sites is two sessions.
    assert_eq!(b["sessions"], 2, "one session id in each site: {b}");
    // Funnels of b: not hers to read, save or delete; `*` funnels are an admin's.
    let (s, _) = h.api("GET", "/api/funnels?site=b", Some(&ann), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let f = |site: &str| json!({"site": site, "name": "f", "steps": ["page:/"]}).to_string();
    let (s, _) = h.api("POST", "/api/funnels", Some(&ann), &f("b")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.api("POST", "/api/funnels", Some(&ann), &f("*")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h.api("POST", "/api/funnels", Some(&h.admin), &f("b")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .api("DELETE", "/api/funnels/f?site=b", Some(&ann), "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = h.api("GET", "/api/funnels", Some(&ann), "").await;
    assert_eq!(b["funnels"], json!([]), "b's funnel is not listed for ann");
    assert_eq!(h.count("SELECT count(*) FROM funnels"), 1);
    // Users, sites: an admin's business.
    let (s, _) = h.api("GET", "/api/users", Some(&ann), "").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h
        .api("POST", "/api/sites", Some(&ann), r#"{"id":"c"}"#)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b) = h.api("GET", "/api/sites", Some(&ann), "").await;
    assert_eq!(b["sites"].as_array().map(Vec::len), Some(1));
    // Ann's token revoked: 401 from then on.
    let (_, b) = h.api("GET", "/api/tokens", Some(&ann), "").await;
    let id = b["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = h
        .api("DELETE", &format!("/api/tokens/{id}"), Some(&ann), "")
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = h.api("GET", "/api/me", Some(&ann), "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_buys_a_token_a_few_times_a_minute() {
    let h = start(|_| {}).await;
    let basic = |user: &str, pw: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    };
    let req = |auth: String| {
        Request::post("/api/tokens")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, auth)
            .extension(ConnectInfo(SocketAddr::from(([198, 51, 100, 1], 1))))
            .body(Body::empty())
            .unwrap()
    };
    let (s, b, _) = h.send(req(basic("root", "root's long password"))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ct_") && token.len() == 67);
    let (s, b) = h.api("GET", "/api/me", Some(&token), "").await;
    assert_eq!((s, &b["user"]), (StatusCode::OK, &json!("root")));
    // A password is good only for that endpoint.
    let r = Request::get("/api/me")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, basic("root", "root's long password"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(r).await.0, StatusCode::UNAUTHORIZED);
    // Guessing is cut off.
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(h.send(req(basic("root", "guess"))).await.0);
    }
    assert!(codes.contains(&StatusCode::UNAUTHORIZED));
    assert_eq!(
        codes.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{codes:?}"
    );
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A request from the proxy at 10.0.0.1 for the client `xff`.
fn via_proxy(req: axum::http::request::Builder, xff: &str) -> axum::http::request::Builder {
    req.header(header::HOST, "localhost")
        .header("x-forwarded-for", xff)
        .extension(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 40_000))))
}

impl H {
    /// A dashboard sign-in through the proxy for client `xff`: its status and the
    /// `Location` it sends the browser to.
    async fn web_login(&self, xff: &str, user: &str, pw: &str, next: &str) -> (StatusCode, String) {
        let (_, _, headers) = self
            .send(
                via_proxy(Request::get("/app/login"), xff)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        let token = cookie
            .trim_start_matches("ct_login=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &token)
            .append_pair("user", user)
            .append_pair("password", pw)
            .append_pair("next", next)
            .finish();
        let (s, _, headers) = self
            .send(
                via_proxy(Request::post("/app/login"), xff)
                    .header(header::COOKIE, format!("ct_login={token}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(form))
                    .unwrap(),
            )
            .await;
        let to = headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
            .to_owned();
        (s, to)
    }
}

#[tokio::test]
async fn behind_a_proxy_each_client_has_its_own_sign_in_budget() {
    let h = start(|c| c.trust_proxy = true).await;
    let token_post = |xff: &str, auth: String| {
        via_proxy(Request::post("/api/tokens"), xff)
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap()
    };
    // One client guesses until it is cut off…
    let mut codes = Vec::new();
    for i in 0..12 {
        let r = token_post("198.51.100.66", basic(&format!("nobody{i}"), "guess"));
        codes.push(h.send(r).await.0);
    }
    assert_eq!(
        codes.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{codes:?}"
    );
    // …and the others, behind the same proxy, still sign in.
    let r = token_post("203.0.113.7", basic("root", "root's long password"));
    let (s, b, _) = h.send(r).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, to) = h
        .web_login("203.0.113.8", "root", "root's long password", "/app/users")
        .await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/app/users"));
    // The guesser is still counted as one client on the dashboard.
    let (s, _) = h
        .web_login(
            "198.51.100.66",
            "root",
            "root's long password",
            "/app/users",
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn no_api_answer_may_be_kept_by_a_cache() {
    let h = start(|_| {}).await;
    let get = |uri: &str, auth: Option<String>| {
        let mut r = Request::get(uri).header(header::HOST, "localhost");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    };
    let bearer = Some(format!("Bearer {}", h.admin));
    let new_token = Request::post("/api/tokens")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, basic("root", "root's long password"))
        .extension(ConnectInfo(SocketAddr::from(([198, 51, 100, 1], 1))))
        .body(Body::empty())
        .unwrap();
    let audit = Request::post("/api/audit")
        .header(header::HOST, "localhost")
        .header(header::AUTHORIZATION, bearer.clone().unwrap())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"audit": "screens", "scope": {"site": "a"}}"#,
        ))
        .unwrap();
    for (req, want) in [
        (get("/api/me", bearer.clone()), StatusCode::OK),
        (get("/api/users", bearer.clone()), StatusCode::OK),
        (get("/api/tokens", bearer.clone()), StatusCode::OK),
        (get("/api/sites", bearer.clone()), StatusCode::OK),
        (new_token, StatusCode::CREATED),
        (audit, StatusCode::OK),
        (get("/api/me", None), StatusCode::UNAUTHORIZED),
    ] {
        let uri = req.uri().to_string();
        let (s, b, headers) = h.send(req).await;
        assert_eq!(s, want, "{uri}: {b}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
    }
}

#[tokio::test]
async fn a_bad_place_to_go_after_signing_in_still_signs_in() {
    let h = start(|c| c.trust_proxy = true).await;
    for next in [
        "/app/\r\nSet-Cookie: pwn=1",
        "/app/\u{1}",
        "https://evil.example/",
    ] {
        let (s, to) = h
            .web_login("203.0.113.9", "root", "root's long password", next)
            .await;
        assert_eq!(
            (s, to.as_str()),
            (StatusCode::SEE_OTHER, "/app/sites"),
            "{next:?}"
        );
    }
}

#[tokio::test]
async fn ones_own_password_changes_only_with_the_current_one() {
    let h = start(|c| c.trust_proxy = true).await;
    let ann = h.user("ann", &["a"]).await;
    let (s, _) = h
        .web_login("203.0.113.20", "ann", "ann's long password", "/app/sites")
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let hh = &h;
    let set = |token: &str, name: &str, body: Value| {
        let (token, uri) = (token.to_owned(), format!("/api/users/{name}/password"));
        async move { hh.api("POST", &uri, Some(&token), &body.to_string()).await }
    };
    // A token (or a browser left signed in) alone is not enough.
    let (s, b) = set(&ann, "ann", json!({"password": "taken over for good"})).await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::BAD_REQUEST, &json!("current_password_required")),
        "{b}"
    );
    let (s, b) = set(
        &ann,
        "ann",
        json!({"password": "taken over for good", "current": "a guess"}),
    )
    .await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden")),
        "{b}"
    );
    // Nor is an admin's token for the admin's own account.
    let (s, _) = set(&h.admin, "root", json!({"password": "root's new password"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // With the current password it changes; her token is kept, and the new password
    // signs in (the old one no longer does).
    let (s, b) = set(
        &ann,
        "ann",
        json!({"password": "ann's new long password", "current": "ann's long password"}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(
        h.api("GET", "/api/me", Some(&ann), "").await.0,
        StatusCode::OK
    );
    let (s, _) = h
        .web_login("203.0.113.21", "ann", "ann's long password", "/app/sites")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h
        .web_login(
            "203.0.113.21",
            "ann",
            "ann's new long password",
            "/app/sites",
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    // An admin sets another user's password without knowing it.
    let (s, b) = set(&h.admin, "ann", json!({"password": "set by the admin"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _) = h
        .web_login("203.0.113.22", "ann", "set by the admin", "/app/sites")
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_api_answers_only_to_the_hosts_it_serves() {
    let h = start(|c| c.allowed_hosts = vec!["stats.shop.example".into()]).await;
    for (host, want) in [
        ("localhost:8080", StatusCode::OK),
        ("127.0.0.1", StatusCode::OK),
        ("[::1]:8080", StatusCode::OK),
        ("stats.shop.example", StatusCode::OK),
        ("attacker.example", StatusCode::MISDIRECTED_REQUEST),
        (
            "stats.shop.example.attacker.example",
            StatusCode::MISDIRECTED_REQUEST,
        ),
    ] {
        let r = Request::get("/api/me")
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
            .body(Body::empty())
            .unwrap();
        let (s, b, _) = h.send(r).await;
        assert_eq!(s, want, "{host}: {b}");
        if s != StatusCode::OK {
            assert_eq!(b["error"], "unknown_host");
        }
    }
    // /collect faces every browser, whatever the host.
    let r = Request::post("/collect")
        .header(header::HOST, "attacker.example")
        .header(header::USER_AGENT, CHROME)
        .extension(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 1))))
        .body(Body::from(batch("a", &[ev(1, "click", json!({}))])))
        .unwrap();
    assert_eq!(h.send(r).await.0, StatusCode::OK);
}

#[tokio::test]
async fn only_registered_sites_from_their_own_domains_are_taken() {
    let h = start(|_| {}).await;
    let mut shop = Site::new("shop");
    shop.domains = vec!["shop.example".into()];
    h.app
        .accounts
        .apply(&h.app.store, Change::PutSite(shop))
        .await
        .unwrap();
    let pv = |url: &str| ev(1, "pageview", json!({"url": url}));
    let cases = [
        (
            "nope",
            pv("https://x.example/"),
            None,
            StatusCode::FORBIDDEN,
            Some("unknown_site"),
        ),
        (
            "shop",
            pv("https://www.shop.example/cart"),
            Some("https://www.shop.example"),
            StatusCode::OK,
            None,
        ),
        (
            "shop",
            pv("https://shop.example/cart"),
            None,
            StatusCode::OK,
            None,
        ),
        (
            "shop",
            pv("https://shop.example/cart"),
            Some("https://evil.example"),
            StatusCode::FORBIDDEN,
            Some("origin_not_allowed"),
        ),
        (
            "shop",
            pv("https://evil.example/cart"),
            Some("https://shop.example"),
            StatusCode::FORBIDDEN,
            Some("origin_not_allowed"),
        ),
        (
            "shop",
            pv("https://shop.example/"),
            Some("null"),
            StatusCode::FORBIDDEN,
            Some("origin_not_allowed"),
        ),
        (
            "a",
            pv("https://anything.example/"),
            Some("https://anything.example"),
            StatusCode::OK,
            None,
        ),
    ];
    for (site, e, origin, want, code) in cases {
        let extra: Vec<(&str, &str)> = origin.iter().map(|o| ("origin", *o)).collect();
        let (s, b, _) = h.collect(batch(site, &[e]), &extra).await;
        assert_eq!(s, want, "{site} {origin:?}: {b}");
        if let Some(code) = code {
            assert_eq!(b["error"], code, "{b}");
            assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE site = 'nope'"),
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE url LIKE '%evil%'"),
        0
    );
}

#[tokio::test]
async fn a_small_body_cannot_become_thousands_of_rows() {
    let h = start(|_| {}).await;
    let links: Vec<Value> = (0..100).map(|i| json!([format!("a#l{i}"), "/x"])).collect();
    let events: Vec<Value> = (0..11)
        .map(|i| ev(i, "links", json!({"links": links})))
        .collect();
    let (s, b, _) = h.collect(batch("a", &events), &[]).await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_many_rows")),
        "{b}"
    );
    assert_eq!(h.count("SELECT count(*) FROM events"), 0);
    let (s, _, _) = h.collect(batch("a", &events[..10]), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.count("SELECT count(*) FROM events"), 1000);
}

#[tokio::test]
async fn a_flooding_client_is_slowed_and_others_still_get_in() {
    let h = start(|c| {
        c.rate_limit_ip = 1.0; // bursts of 10
        c.rate_limit_site = 0.0;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry = None;
    for i in 0..15 {
        let (s, b, hd) = h
            .collect_from(
                [198, 51, 100, 9],
                batch("a", &[ev(i, "click", json!({}))]),
                &[],
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(b["error"], "rate_limited");
            retry = hd.get(header::RETRY_AFTER).cloned();
        }
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        10,
        "{statuses:?}"
    );
    assert!(retry.is_some(), "429 carries Retry-After");
    let (s, _, _) = h
        .collect_from(
            [198, 51, 100, 10],
            batch("b", &[ev(99, "click", json!({}))]),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "another address is not affected");
    assert_eq!(
        h.count("SELECT count(*) FROM events"),
        11,
        "nothing refused was stored"
    );

    // Per site: events per second.
    let h = start(|c| {
        c.rate_limit_ip = 0.0;
        c.rate_limit_site = 10.0; // bursts of 100 events
    })
    .await;
    let many: Vec<Value> = (0..60).map(|i| ev(i, "click", json!({}))).collect();
    assert_eq!(h.collect(batch("a", &many), &[]).await.0, StatusCode::OK);
    let (s, b, _) = h.collect(batch("a", &many), &[]).await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate_limited"))
    );
    assert_eq!(
        h.collect(batch("b", &many), &[]).await.0,
        StatusCode::OK,
        "site b has its own budget"
    );
}

#[tokio::test]
async fn health_tells_the_truth_and_errors_reveal_nothing() {
    let h = start(|_| {}).await;
    let health = |h: &H| {
        let r = Request::get("/healthz").body(Body::empty()).unwrap();
        let app = h.app.clone();
        async move {
            let resp = router(app).oneshot(r).await.unwrap();
            let s = resp.status();
            let b = resp.into_body().collect().await.unwrap().to_bytes();
            (s, serde_json::from_slice::<Value>(&b).unwrap())
        }
    };
    assert_eq!(health(&h).await.0, StatusCode::OK);
    assert_eq!(
        h.collect(batch("a", &[ev(1, "click", json!({}))]), &[])
            .await
            .0,
        StatusCode::OK
    );
    // Commits start failing (here: the table is gone; a full disk looks the same).
    h.app
        .store
        .write(|c| c.execute_batch("DROP TABLE events_recent CASCADE"))
        .await
        .unwrap()
        .unwrap();
    let (s, b, _) = h
        .collect(batch("a", &[ev(2, "click", json!({}))]), &[])
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(b["error"], "storage_failed");
    let text = b.to_string();
    let dir = h.db.parent().unwrap().to_string_lossy().into_owned();
    assert!(!text.contains(&dir), "no path in answers: {text}");
    assert!(
        !text.to_lowercase().contains("catalog"),
        "no engine message: {text}"
    );
    let (s, b) = health(&h).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["status"], "failing");
    assert!(b["problems"][0].as_str().unwrap().contains("commit"));
    // /metrics says it too, in Prometheus' format.
    let r = Request::get("/metrics").body(Body::empty()).unwrap();
    let (s, b, hd) = h.send(r).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        hd[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = b.as_str().unwrap();
    for line in [
        "clicktrail_healthy 0",
        "clicktrail_commit_failures_total 1",
        "clicktrail_events_committed_total 1",
        "clicktrail_commit_seconds_count",
        "clicktrail_queue_depth 0",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    // A nearly full disk is not ok either.
    let h = start(|c| c.min_free_mb = u64::MAX >> 21).await;
    let (s, b) = health(&h).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b["problems"][0].as_str().unwrap().contains("free"), "{b}");
}

#[tokio::test]
async fn every_refusal_is_in_our_words() {
    let h = start(|_| {}).await;
    let framework = [
        "Invalid URL",
        "UTF-8 in",
        "Failed to",
        "deserialize",
        "length limit",
    ];
    let big = format!(
        r#"{{"audit": "screens", "pad": "{}"}}"#,
        "x".repeat(3 << 20)
    );
    for (method, uri, body, want) in [
        (
            "DELETE",
            "/api/funnels/%FF",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/users/%C0%AF/password",
            "{}".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "DELETE",
            "/api/users/root/sites/%FF",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/api/audit", big, StatusCode::PAYLOAD_TOO_LARGE),
        (
            "GET",
            "/api/funnels?site=a&site=b",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/funnels?x=1",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "PUT",
            "/api/me",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let (s, b, headers) = h.send(req).await;
        assert_eq!(s, want, "{method} {uri}: {b}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(b["error"].is_string() && !message.is_empty(), "{uri}: {b}");
        for f in framework {
            assert!(!message.contains(f), "{uri}: {message}");
        }
        if want == StatusCode::PAYLOAD_TOO_LARGE {
            assert_eq!(b["error"], "payload_too_large");
            assert!(message.contains(&(2 << 20).to_string()), "{message}");
        }
    }
    // The dashboard's pages say it in HTML, in its own words.
    for uri in [
        "/app/site/%FF",
        "/app/site/%FF/funnels",
        "/app/site/a/download/%FF",
    ] {
        let req = Request::get(uri)
            .header(header::HOST, "localhost")
            .body(Body::empty())
            .unwrap();
        let (s, b, headers) = h.send(req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = b.as_str().unwrap();
        assert!(page.contains("not valid"), "{page}");
        for f in framework {
            assert!(!page.contains(f), "{uri}: {page}");
        }
    }
    // A login link with `next` twice still shows the form.
    let req = Request::get("/app/login?next=a&next=b")
        .header(header::HOST, "localhost")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.0, StatusCode::OK);
}

#[test]
fn a_damaged_file_or_log_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.duckdb");
    std::fs::write(&junk, vec![0x42u8; 20_000]).unwrap();
    let err = Store::open(&junk, WriterOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("damaged") && err.contains("backup"), "{err}");

    let db = dir.path().join("ok.duckdb");
    {
        let (store, writer) = Store::open(&db, WriterOptions::default()).unwrap();
        store.close();
        drop(store);
        writer.join();
    }
    let wal = dir.path().join("ok.duckdb.wal");
    std::fs::write(&wal, vec![0x13u8; 5_000]).unwrap();
    match Store::open(&db, WriterOptions::default()) {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("write-ahead log") && e.contains(".wal"), "{e}");
        }
        // DuckDB may also ignore a log it cannot read as its own: then nothing is lost.
        Ok((store, writer)) => {
            store.close();
            drop(store);
            writer.join();
        }
    }
}

#[tokio::test]
async fn bots_are_stored_as_bots() {
    let h = start(|_| {}).await;
    for (i, ua) in [
        (
            1,
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        (2, "python-requests/2.31"),
        (3, ""),
        (4, CHROME),
    ] {
        let r = Request::post("/collect")
            .header(header::USER_AGENT, ua)
            .extension(ConnectInfo(SocketAddr::from(([203, 0, 113, i], 1))))
            .body(Body::from(
                json!({"v": 1, "site": "a", "sid": format!("{i:032x}"), "sent": now_ms(),
                       "events": [ev(usize::from(i), "pageview", json!({}))]})
                .to_string(),
            ))
            .unwrap();
        assert_eq!(h.send(r).await.0, StatusCode::OK);
    }
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE device = 'bot'"),
        3
    );
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE device <> 'bot'"),
        1
    );
}

#[tokio::test]
async fn identify_ids_are_a_keyed_hash_unless_the_site_opts_in() {
    let h = start(|_| {}).await;
    let mut clear = Site::new("b");
    clear.clear_ids = true;
    h.app
        .accounts
        .apply(&h.app.store, Change::PutSite(clear))
        .await
        .unwrap();
    for site in ["a", "b"] {
        let e = ev(1, "identify", json!({"uid": "customer-4711"}));
        assert_eq!(h.collect(batch(site, &[e]), &[]).await.0, StatusCode::OK);
    }
    let ids: Vec<String> = h.app.store.with_reader(|c| {
        let mut st = c
            .prepare("SELECT user_id FROM events ORDER BY site")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    });
    assert!(
        ids[0].starts_with("u_") && !ids[0].contains("4711"),
        "{ids:?}"
    );
    assert_eq!(ids[1], "customer-4711");
}

#[tokio::test]
async fn erasure_and_retention_delete_exactly_what_they_name() {
    let h = start(|_| {}).await;
    let sess = |sid: &str, ip: u8, uid: Option<&str>| {
        let mut events = vec![ev(1, "pageview", json!({})), ev(2, "click", json!({}))];
        if let Some(u) = uid {
            events.push(ev(3, "identify", json!({"uid": u})));
        }
        (
            json!({"v": 1, "site": "a", "sid": sid, "sent": now_ms(), "events": events})
                .to_string(),
            ip,
        )
    };
    for (body, ip) in [
        sess(&"1".repeat(32), 1, Some("jane")),
        sess(&"2".repeat(32), 2, None),
        sess(&"3".repeat(32), 3, None),
    ] {
        assert_eq!(
            h.collect_from([10, 0, 0, ip], body, &[]).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(h.count("SELECT count(*) FROM events"), 7);
    let (s, b) = h
        .api(
            "POST",
            "/api/erase",
            Some(&h.admin),
            r#"{"site":"a","user_id":"jane"}"#,
        )
        .await;
    assert_eq!((s, &b["deleted"]), (StatusCode::OK, &json!(3)), "{b}");
    let visitor: String = h
        .app
        .store
        .with_reader(|c| {
            c.query_row(
                &format!(
                    "SELECT visitor_id FROM events WHERE session_id = '{}' LIMIT 1",
                    "2".repeat(32)
                ),
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    let (_, b) = h
        .api(
            "POST",
            "/api/erase",
            Some(&h.admin),
            &json!({"site": "a", "visitor_id": visitor}).to_string(),
        )
        .await;
    assert_eq!(b["deleted"], 2);
    let (s, _) = h
        .api(
            "POST",
            "/api/erase",
            Some(&h.admin),
            r#"{"site":"a","visitor_id":"x","user_id":"y"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "exactly one target");
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{}'",
            "3".repeat(32)
        )),
        2
    );

    // Retention: a site keeping 30 days loses older events, another site keeps its own.
    let mut a = Site::new("a");
    a.retention_days = Some(30);
    h.app
        .accounts
        .apply(&h.app.store, Change::PutSite(a))
        .await
        .unwrap();
    let old = now_ms() - 40 * 86_400_000;
    h.app
        .store
        .write(move |c| {
            c.execute_batch(&format!(
                "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, visitor_id, path, browser, os, device, session_key)
                 SELECT s, 'old' || s, 'pageview', epoch_ms({old}), epoch_ms({old}), 1, 'x', 'v', '/', 'b', 'o', 'd', {key}
                 FROM (SELECT s AS site, s, 'x' AS session_id FROM (VALUES ('a'), ('b')) t(s))",
                key = store::schema::SESSION_KEY_SQL
            ))?;
            // The old rows in the sorted table, the new ones still appended: both swept.
            store::compact(c, store::Select::IdleBefore(old + 1)).map(|_| ())
        })
        .await
        .unwrap()
        .unwrap();
    let state = h.app.accounts.read(Clone::clone);
    let n = h
        .app
        .store
        .write(move |c| clicktrail_collector::retention::sweep(c, &state, now_ms()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        h.count("SELECT count(*) FROM events WHERE event_id LIKE 'old%'"),
        1
    );
    assert_eq!(h.count("SELECT count(*) FROM events"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_audit_is_stopped_and_never_delays_ingest() {
    let h = start(|c| {
        c.audit_timeout_s = 1;
        c.max_audits = 1;
    })
    .await;
    // A query that would run for minutes.
    let slow = |c: &duckdb::Connection| {
        c.query_row(
            "SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(analyzer::Error::from)
    };
    let app = h.app.clone();
    let audit = tokio::spawn(async move { clicktrail_collector::api::read(&app, slow).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile a batch of a new day (its salt is written) is committed at once.
    let t0 = std::time::Instant::now();
    let (s, _, _) = h
        .collect(batch("a", &[ev(1, "click", json!({}))]), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "ingest waited {:?}",
        t0.elapsed()
    );
    // A second audit finds the one slot taken.
    let (s, b) = h
        .api(
            "POST",
            "/api/audit",
            Some(&h.admin),
            r#"{"audit":"screens"}"#,
        )
        .await;
    assert_eq!(
        (s, &b["error"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("busy"))
    );
    // The slow one is stopped at its limit, and its slot is free again soon after.
    let r = audit.await.unwrap();
    assert!(
        matches!(
            r,
            Err(clicktrail_collector::error::ApiError::AuditTimeout(1))
        ),
        "{r:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, _) = h
        .api(
            "POST",
            "/api/audit",
            Some(&h.admin),
            r#"{"audit":"screens"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // A client that goes away stops its audit.
    let h = start(|c| c.max_audits = 1).await;
    let app = h.app.clone();
    let gone = tokio::spawn(async move { clicktrail_collector::api::read(&app, slow).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gone.abort();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (s, b) = h
        .api(
            "POST",
            "/api/audit",
            Some(&h.admin),
            r#"{"audit":"screens"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the slot was freed: {b}");
}

/// Secrets as a page may leak them, each in the encodings a browser produces.
const SECRETS: &[(&str, &str)] = &[
    ("jane.doe@mail.example", "janedoe"),
    ("jane.doe%40mail.example", "janedoe"),
    ("jane.doe%2540mail.example", "janedoe"),
    ("jane.doe&#64;mail.example", "janedoe"),
    ("jane.doe＠mail.example", "janedoe"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
    ),
    (
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "9f86d081884c7d659a2feaa0c55ad015",
    ),
    (
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "4eC39HqLyjWDarjtT1zdp7dc",
    ),
    ("4111 1111 1111 1111", "4111111111111111"),
    ("4111111111111111", "4111111111111111"),
    ("4111-1111-1111-1111", "4111111111111111"),
    ("4111%201111%201111%201111", "4111111111111111"),
    ("+1 (202) 555-0143", "2025550143"),
    ("+12025550143", "2025550143"),
    ("202-555-0143", "2025550143"),
    ("%2B1%20202%20555%200143", "2025550143"),
];

/// Where a page may put one: each stored text field of each kind of event.
fn planted(i: usize, s: &str) -> Vec<Value> {
    // In a URL a browser percent-encodes what is not URL syntax (`&#64;` too).
    let enc = s
        .replace(' ', "%20")
        .replace('&', "%26")
        .replace('#', "%23");
    vec![
        ev(
            i * 20,
            "pageview",
            json!({
                "title": format!("Order for {s} confirmed"),
                "url": format!("https://shop.example/account/{enc}/orders?utm_source={enc}&ref=https%3A%2F%2Fx.example%2F%3Fe%3D{enc}#/u/{enc}"),
                "ref": format!("https://mail.example/read?to={enc}"),
                "path": format!("/account/{enc}/orders?email={enc}"),
            }),
        ),
        ev(
            i * 20 + 1,
            "click",
            json!({
                "sel": format!("a[href=\"/u/{s}\"]"), "text": s.chars().take(64).collect::<String>(),
                "anc": format!("a.user-{s} li body"),
                "href": format!("https://shop.example/u/{enc}?utm_term={enc}"), "ad": format!("promo:{s}"),
                "screen": s,
            }),
        ),
        ev(
            i * 20 + 2,
            "blur",
            json!({"form": format!("f-{s}"), "field": s, "ft": "text"}),
        ),
        ev(
            i * 20 + 3,
            "custom",
            json!({"name": s, "props": {s: s, "nested": {"v": [s]}}}),
        ),
        ev(
            i * 20 + 4,
            "error",
            json!({"msg": format!("TypeError: {s} is undefined"),
                                        "src": format!("https://shop.example/app.js?u={enc}"), "line": 3}),
        ),
        ev(i * 20 + 5, "identify", json!({"uid": s})),
        ev(
            i * 20 + 6,
            "links",
            json!({"links": [[format!("a#{s}"), format!("/u/{enc}")]]}),
        ),
    ]
}

#[tokio::test]
async fn no_planted_secret_is_stored_in_any_field() {
    let h = start(|_| {}).await;
    let mut clear = Site::new("b");
    clear.clear_ids = true; // ids in clear still lose their secrets
    h.app
        .accounts
        .apply(&h.app.store, Change::PutSite(clear))
        .await
        .unwrap();
    for (i, (secret, _)) in SECRETS.iter().enumerate() {
        for site in ["a", "b"] {
            let (s, b, _) = h.collect(batch(site, &planted(i, secret)), &[]).await;
            assert_eq!(s, StatusCode::OK, "{secret}: {b}");
        }
    }
    let texts: Vec<String> = h.app.store.with_reader(|c| {
        let mut st = c
            .prepare(
                "SELECT unnest([path, url, referrer, title, nav, screen, selector, text, href, form,
                                field, field_type, name, props, user_id, ad, message, source,
                                ancestry])
                 FROM events",
            )
            .unwrap();
        st.query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .filter_map(Result::unwrap)
            .collect()
    });
    assert!(texts.len() > 500, "{}", texts.len());
    let mut found = Vec::new();
    // The keyed hashes of identify ids look like hex tokens, and are meant to.
    let hashed_id = |t: &str| t.len() == 34 && t.starts_with("u_");
    for t in texts.iter().filter(|t| !hashed_id(t)) {
        let squashed: String = t.chars().filter(char::is_ascii_alphanumeric).collect();
        let planted_core = SECRETS.iter().find(|(_, core)| squashed.contains(core));
        if clicktrail_collector::scrub::has_secret(t) || planted_core.is_some() {
            found.push(t.clone());
        }
    }
    assert!(
        found.is_empty(),
        "{} stored secrets, e.g. {:?}",
        found.len(),
        &found[..found.len().min(8)]
    );
}
