//! The collector's HTTP contract, driven through the real router over a real DuckDB
//! file in a temp dir: what is acknowledged is on disk, bad input gets a JSON error
//! naming the problem, overload answers 503 + Retry-After.

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode, header},
};
use clicktrail_collector::{
    App, Config, router,
    store::{Store, WriterOptions},
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod common;

const SID: &str = "00112233445566778899aabbccddeeff";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn event(i: usize, kind: &str, extra: &str, t: i64) -> String {
    format!(r#"{{"id":"{i:032x}","k":"{kind}","t":{t},"seq":{i},"path":"/cart"{extra}}}"#)
}

fn batch(events: &[String]) -> String {
    format!(
        r#"{{"v":1,"site":"shop","sid":"{SID}","sent":{},"events":[{}]}}"#,
        now_ms(),
        events.join(",")
    )
}

struct Harness {
    /// Holds the temp folder of the file until the harness goes.
    dir: tempfile::TempDir,
    app: App,
    writer: clicktrail_collector::store::Writer,
    db: std::path::PathBuf,
    /// An admin's API token.
    token: String,
}

impl Harness {
    /// Stops the collector (the writer drains and checkpoints).
    fn stop(self) -> (std::path::PathBuf, tempfile::TempDir) {
        self.app.store.close();
        drop(self.app);
        self.writer.join();
        (self.db, self.dir)
    }

    /// Stops the collector and starts a new one, with the default configuration, on
    /// the same file.
    fn restart(self) -> Harness {
        let token = self.token.clone();
        let (db, dir) = self.stop();
        let (store, writer) = Store::open(&db, WriterOptions::default()).unwrap();
        let app = App::new(Config::default(), store).unwrap();
        Harness {
            dir,
            app,
            writer,
            db,
            token,
        }
    }
}

/// A collector over a fresh file with the site `shop` registered and an admin whose
/// token the `/api/*` calls use.
async fn harness(opts: WriterOptions, tweak: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.duckdb");
    let (store, writer) = Store::open(&db, opts).unwrap();
    let mut config = Config::default();
    config.db.clone_from(&db);
    config.rate_limit_ip = 0.0;
    config.rate_limit_site = 0.0;
    tweak(&mut config);
    let app = App::new(config, store).unwrap();
    let token = setup(&app).await;
    Harness {
        dir,
        app,
        writer,
        db,
        token,
    }
}

/// Registers `shop` and creates an admin; returns the admin's token.
async fn setup(app: &App) -> String {
    use clicktrail_collector::accounts::{Change, Site};
    if !app.accounts.read(|s| s.sites.contains_key("shop")) {
        app.accounts
            .apply(&app.store, Change::PutSite(Site::new("shop")))
            .await
            .unwrap();
    }
    common::token(app, "root", true, &[]).await
}

async fn post(app: &App, content_type: &str, body: String) -> (StatusCode, Value, Option<String>) {
    let req = Request::post("/collect")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
        .extension(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 5555))))
        .body(Body::from(body))
        .unwrap();
    let resp = router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry,
    )
}

fn count(app: &App, sql: &str) -> i64 {
    app.store
        .with_reader(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap()
}

#[tokio::test]
async fn a_good_batch_is_on_disk_when_acknowledged() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let t = now_ms();
    let events = vec![
        event(
            1,
            "pageview",
            r#","url":"https://shop.example/cart?utm_source=mail&email=jane%40mail.example&sessionid=abc#x","ref":"https://search.example/?q=boots","title":"Cart of jane@mail.example""#,
            t,
        ),
        event(
            2,
            "click",
            r#","sel":"button#pay","text":"Pay","x":10,"y":20,"href":"https://shop.example/u/jane@mail.example""#,
            t,
        ),
        event(
            3,
            "blur",
            r#","form":"shipping","field":"email","ft":"email","dur":1200,"empty":false"#,
            t,
        ),
    ];
    let (status, body, _) = post(&h.app, "text/plain;charset=UTF-8", batch(&events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 3);
    assert_eq!(
        count(&h.app, "SELECT count(*) FROM events WHERE site = 'shop'"),
        3
    );
    let (url, referrer, title, href, browser, visitor): (String, String, String, String, String, String) = h
        .app
        .store
        .with_reader(|c| {
            c.query_row(
                "SELECT url, referrer, title, (SELECT href FROM events WHERE kind='click'), browser, visitor_id FROM events WHERE kind = 'pageview'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
        })
        .unwrap();
    assert_eq!(url, "https://shop.example/cart?utm_source=mail");
    assert_eq!(referrer, "https://search.example/");
    assert_eq!(title, "Cart of [email]");
    assert_eq!(href, "https://shop.example/u/[email]");
    assert_eq!(browser, "Chrome");
    assert_eq!(visitor.len(), 32);
    // The raw IP is nowhere.
    assert_eq!(
        count(
            &h.app,
            "SELECT count(*) FROM events WHERE concat_ws('|', COLUMNS(*)) LIKE '%203.0.113.7%'"
        ),
        0
    );
    let (blur_dur, empty): (i64, bool) = h
        .app
        .store
        .with_reader(|c| {
            c.query_row(
                "SELECT duration_ms, empty FROM events WHERE kind='blur'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert_eq!((blur_dur, empty), (1200, false));
}

#[tokio::test]
async fn bad_input_gets_a_json_error_and_nothing_is_stored() {
    let h = harness(WriterOptions::default(), |c| c.sites = vec!["shop".into()]).await;
    let t = now_ms();
    let cases = [
        (
            "text/plain",
            "{not json".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "application/json",
            batch(&[event(1, "click", "", t), event(2, "warp", "", t)]),
            StatusCode::BAD_REQUEST,
            "unknown_kind",
        ),
        (
            "text/plain",
            batch(&[event(1, "click", "", t - 2 * 86_400_000)]),
            StatusCode::BAD_REQUEST,
            "bad_timestamp",
        ),
        (
            "text/plain",
            batch(&[]),
            StatusCode::BAD_REQUEST,
            "event_count",
        ),
        (
            "text/xml",
            batch(&[event(1, "click", "", t)]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            "x".repeat(protocol::MAX_BODY_BYTES + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "text/plain",
            batch(&[event(1, "click", "", t)]).replace("\"shop\"", "\"elsewhere\""),
            StatusCode::FORBIDDEN,
            "unknown_site",
        ),
    ];
    for (ct, body, want_status, want_code) in cases {
        let (status, json, _) = post(&h.app, ct, body).await;
        assert_eq!(status, want_status, "{want_code}: {json}");
        assert_eq!(json["error"], want_code, "{json}");
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{json}"
        );
    }
    let (_, json, _) = post(
        &h.app,
        "text/plain",
        batch(&[event(1, "click", "", t), event(2, "warp", "", t)]),
    )
    .await;
    assert_eq!(json["event_index"], 1);
    assert_eq!(count(&h.app, "SELECT count(*) FROM events"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_503_and_every_acknowledged_event_is_stored() {
    // A one-slot queue while the writer is busy with a large commit (a slow disk, a
    // burst): concurrent batches beyond the slot must be turned away with 503 +
    // Retry-After, and every acknowledged event must be on disk.
    let h = harness(
        WriterOptions {
            queue_capacity: 1,
            queue_bytes: 1 << 30,
            commit_max_events: 1_000_000,
            linger: Duration::ZERO,
        },
        |_| {},
    )
    .await;
    let mut rng = clicktrail_collector::synth::Rng::new(1);
    let ctx = clicktrail_collector::enrich::Context {
        ip: "198.51.100.1".parse().unwrap(),
        user_agent: "bench".into(),
        received_ms: now_ms(),
        uid_key: [0; 32],
        clear_ids: false,
    };
    let mut big = Vec::new();
    while big.len() < 300_000 {
        for b in clicktrail_collector::synth::session(&mut rng, "shop", now_ms()) {
            big.extend(clicktrail_collector::enrich::enrich(b, &ctx, &[0; 32]));
        }
    }
    let big_len = big.len() as i64;
    let store = h.app.store.clone();
    let busy = tokio::spawn(async move { store.commit(big).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = now_ms();
    let mut tasks = Vec::new();
    for b in 0..20 {
        let app = h.app.clone();
        let events: Vec<String> = (0..10)
            .map(|i| event(b * 100 + i, "click", "", t))
            .collect();
        tasks.push(tokio::spawn(async move {
            post(&app, "text/plain", batch(&events)).await
        }));
    }
    let (mut acknowledged, mut overloaded) = (0, 0);
    for task in tasks {
        let (status, body, retry) = task.await.unwrap();
        match status {
            StatusCode::OK => acknowledged += body["stored"].as_i64().unwrap(),
            StatusCode::SERVICE_UNAVAILABLE => {
                overloaded += 1;
                assert_eq!(body["error"], "overloaded");
                assert_eq!(retry.as_deref(), Some("1"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(busy.await.unwrap(), Ok(big_len as usize));
    assert!(
        overloaded > 0,
        "a one-slot queue under 20 concurrent batches must push back"
    );
    assert!(
        acknowledged > 0,
        "the slot's batch is committed after the big one"
    );
    assert_eq!(
        count(
            &h.app,
            "SELECT count(*) FROM events WHERE kind = 'click' AND session_id = '00112233445566778899aabbccddeeff'"
        ),
        acknowledged
    );
    assert_eq!(
        count(&h.app, "SELECT count(*) FROM events"),
        acknowledged + big_len
    );
    assert_eq!(
        h.app
            .store
            .counters()
            .overloaded
            .load(std::sync::atomic::Ordering::Relaxed),
        overloaded
    );
}

#[tokio::test]
async fn shutdown_drains_and_the_file_reopens_with_every_event() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let t = now_ms();
    for b in 0..5 {
        let events: Vec<String> = (0..20)
            .map(|i| event(b * 100 + i, "click", "", t))
            .collect();
        let (status, _, _) = post(&h.app, "text/plain", batch(&events)).await;
        assert_eq!(status, StatusCode::OK);
    }
    h.app.store.close();
    let (status, body, retry) =
        post(&h.app, "text/plain", batch(&[event(999, "click", "", t)])).await;
    assert_eq!(
        (status, body["error"].as_str(), retry.as_deref()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("shutting_down"),
            Some("5")
        )
    );
    let Harness {
        app,
        writer,
        db,
        dir: _dir,
        ..
    } = h;
    drop(app);
    writer.join();
    let conn = duckdb::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 100);
}

#[tokio::test]
async fn visitor_ids_are_stable_within_a_day_and_across_restarts() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let t = now_ms();
    post(&h.app, "text/plain", batch(&[event(1, "click", "", t)])).await;
    let first: String = h
        .app
        .store
        .with_reader(|c| c.query_row("SELECT visitor_id FROM events", [], |r| r.get(0)))
        .unwrap();
    assert!(!first.is_empty());
    let h = h.restart();
    post(&h.app, "text/plain", batch(&[event(2, "click", "", t)])).await;
    let ids: i64 = count(&h.app, "SELECT count(DISTINCT visitor_id) FROM events");
    assert_eq!(ids, 1, "same salt after restart on the same day");
    // The salt is in the key file beside the database, not in the database: a
    // copy of the file holds the visitor ids but not what they were hashed with.
    let tables: i64 = count(
        &h.app,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'salts'",
    );
    assert_eq!(tables, 0);
    let (db, dir) = h.stop();
    let key_file = clicktrail_collector::keyfile::path_for(&db);
    let key = std::fs::read_to_string(&key_file).unwrap();
    let hex = key
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_owned();
    let salt: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let file = std::fs::read(&db).unwrap();
    assert!(
        !file.windows(32).any(|w| w == salt),
        "the salt is not in the database"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Without the key file, a new salt: new visitor ids.
    std::fs::remove_file(&key_file).unwrap();
    let (store, writer) = Store::open(&db, WriterOptions::default()).unwrap();
    let app = App::new(Config::default(), store).unwrap();
    let h = Harness {
        dir,
        app,
        writer,
        db,
        token: String::new(),
    };
    post(&h.app, "text/plain", batch(&[event(3, "click", "", t)])).await;
    let ids: i64 = count(&h.app, "SELECT count(DISTINCT visitor_id) FROM events");
    assert_eq!(ids, 2, "a new key file, new visitor ids");
    h.stop();
}

#[tokio::test]
async fn salts_of_an_older_collector_leave_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.duckdb");
    {
        let (store, writer) = Store::open(&db, WriterOptions::default()).unwrap();
        store
            .write(|c| {
                c.execute_batch(
                    "CREATE TABLE salts (day BIGINT PRIMARY KEY, salt BLOB NOT NULL);
                     INSERT INTO salts VALUES (1, '\\x01'::BLOB);",
                )
            })
            .await
            .unwrap()
            .unwrap();
        store.close();
        drop(store);
        writer.join();
    }
    let (store, writer) = Store::open(&db, WriterOptions::default()).unwrap();
    let tables: i64 = store
        .with_reader(|c| {
            c.query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'salts'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(tables, 0);
    store.close();
    drop(store);
    writer.join();
}

#[tokio::test]
async fn health_and_cors() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let resp = router(h.app.clone())
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let resp = router(h.app.clone())
        .oneshot(Request::options("/collect").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = router(h.app.clone())
        .oneshot(Request::get("/ct.js").body(Body::empty()).unwrap())
        .await
        .unwrap();
    // No tracker built in this temp setup: a clear JSON 404.
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

async fn call(h: &Harness, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:8080")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = router(h.app.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn names(body: &Value) -> Vec<String> {
    body["funnels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn saved_funnels_over_http_become_the_audits_defaults() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let t = now_ms();
    let events = vec![
        event(1, "pageview", "", t),
        event(2, "custom", r#","name":"signup""#, t + 1000),
    ];
    let (status, body, _) = post(&h.app, "application/json", batch(&events)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Nothing saved yet: a funnel without steps says how to get one.
    let (status, body) = call(&h, "GET", "/api/funnels", "").await;
    assert_eq!((status, names(&body).len()), (StatusCode::OK, 0));
    let (status, body) = call(&h, "POST", "/api/audit", r#"{"audit":"funnel"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_param");
    assert!(body["message"].as_str().unwrap().contains("funnels save"));

    // Bad funnels are refused with what is wrong, and nothing is saved.
    for (bad, code) in [
        (
            r#"{"site":"shop","name":"a b","steps":["page:/"]}"#,
            "bad_param",
        ),
        (r#"{"site":"shop","name":"x","steps":["nope"]}"#, "bad_step"),
        (
            r#"{"site":"shop 1","name":"x","steps":["page:/"]}"#,
            "bad_param",
        ),
        (
            r#"{"site":"shop","name":"x","stepz":[]}"#,
            "invalid_request",
        ),
        ("not json", "invalid_request"),
    ] {
        let (status, body) = call(&h, "POST", "/api/funnels", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], code, "{bad}: {body}");
    }
    let (_, body) = call(&h, "GET", "/api/funnels", "").await;
    assert!(names(&body).is_empty());
    let (status, body) = call(&h, "GET", "/api/funnels/checkout", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");

    // Another website cannot change funnels through a visitor's browser: a
    // text/plain post (no preflight) is refused, and /api answers carry no CORS
    // header, so a JSON post's preflight fails.
    let good = r#"{"site":"shop","name":"x","steps":["page:/"]}"#;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let req = Request::post("/api/funnels")
            .header(header::HOST, "localhost")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(good))
            .unwrap();
        let resp = router(h.app.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            resp.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }
    let resp = router(h.app.clone())
        .oneshot(
            Request::get("/api/funnels")
                .header(header::HOST, "localhost")
                .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        resp.headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    let (_, body) = call(&h, "GET", "/api/funnels", "").await;
    assert!(names(&body).is_empty());

    let (status, body) = call(
        &h,
        "POST",
        "/api/funnels",
        r#"{"site":"shop","name":"signup","steps":["page:/cart","event:signup"],"window":"1h"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["signup"]);
    assert_eq!(body["funnels"][0]["window"], "1h");
    let (_, body) = call(
        &h,
        "POST",
        "/api/funnels",
        r#"{"name":"browse","steps":["page:/cart"]}"#,
    )
    .await;
    assert_eq!(body["funnels"][0]["site"], "*");
    let (_, body) = call(&h, "GET", "/api/funnels?site=shop", "").await;
    assert_eq!(names(&body), ["signup", "browse"]);
    let (_, body) = call(&h, "GET", "/api/funnels?site=blog", "").await;
    assert_eq!(names(&body), ["browse"]);
    let (status, body) = call(&h, "GET", "/api/funnels?sight=x", "").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &Value::from("invalid_request"))
    );

    // The site's first saved funnel is the default funnel and its last step the goal.
    let (status, body) = call(
        &h,
        "POST",
        "/api/audit",
        r#"{"audit":"funnel","scope":{"site":"shop"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "signup");
    assert_eq!(body["window_ms"], 3_600_000);
    assert_eq!(body["steps"][1]["entered"], 1);
    let (_, body) = call(
        &h,
        "POST",
        "/api/audit",
        r#"{"audit":"funnel","scope":{"site":"shop"},"name":"browse"}"#,
    )
    .await;
    assert_eq!(body["name"], "browse");
    let (_, body) = call(
        &h,
        "POST",
        "/api/audit",
        r#"{"audit":"ads","scope":{"site":"shop"}}"#,
    )
    .await;
    assert_eq!(body["goal"], "event:signup", "{body}");
    let (status, body) = call(
        &h,
        "POST",
        "/api/audit",
        r#"{"audit":"funnel","name":"nope"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_funnel");

    // The report has one funnel section per saved funnel.
    let (status, body) = call(
        &h,
        "POST",
        "/api/audit",
        r#"{"audit":"report","scope":{"site":"shop"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let funnels: Vec<&Value> = body["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["audit"] == "funnel")
        .collect();
    assert_eq!(funnels.len(), 2);
    assert_eq!(funnels[0]["name"], "signup");

    // Delete: the site's own, then a missing one is a 404 that names the problem.
    let (status, body) = call(&h, "DELETE", "/api/funnels/signup?site=shop", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["browse"]);
    let (status, body) = call(&h, "DELETE", "/api/funnels/signup?site=shop", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_funnel");
    assert_eq!(
        count(&h.app, "SELECT count(*) FROM funnels WHERE name = 'browse'"),
        1
    );
}

/// The tracker resends a batch when it got no answer: the events are stored once,
/// whether the resend comes before the session is compacted, after, or after a restart.
#[tokio::test]
async fn a_resent_batch_counts_once_also_across_a_restart_and_compaction() {
    let h = harness(WriterOptions::default(), |_| {}).await;
    let t = now_ms();
    let body = batch(&[event(1, "pageview", "", t), event(2, "click", "", t + 1)]);
    post(&h.app, "text/plain", body.clone()).await;
    post(&h.app, "text/plain", body.clone()).await;
    assert_eq!(count(&h.app, "SELECT count(*) FROM events"), 2);
    assert_eq!(count(&h.app, "SELECT count(*) FROM events_recent"), 4);
    let h = h.restart();
    let app = &h.app;
    post(app, "text/plain", body.clone()).await;
    assert_eq!(count(app, "SELECT count(*) FROM events"), 2);
    app.store
        .write(|c| ::store::compact(c, ::store::Select::All))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count(app, "SELECT count(*) FROM events_sorted"), 2);
    assert_eq!(count(app, "SELECT count(*) FROM events_recent"), 0);
    // After compaction, once more.
    post(app, "text/plain", body).await;
    assert_eq!(count(app, "SELECT count(*) FROM events"), 2);
    app.store
        .write(|c| ::store::compact(c, ::store::Select::All))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count(app, "SELECT count(*) FROM events_sorted"), 2);
    h.stop();
}
