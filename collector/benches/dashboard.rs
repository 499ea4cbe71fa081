//! Dashboard benchmark: each page of a site over 10,000,000 synthetic events (1M
//! sessions), signed in, through the real router on a real DuckDB file. Prints each
//! page's answer time (best of three) and size.
//!
//! `cargo bench --bench dashboard` (or `cargo xtask bench`). `BENCH_DB`: a file
//! written by the audits bench to reuse (else one is generated); `BENCH_EVENTS`.

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, header};
use clicktrail_collector::{
    App, Config,
    accounts::{self, Change},
    router,
    store::{Store, WriterOptions},
};
use tower::ServiceExt as _;

const SITE: &str = "bench";
const PASSWORD: &str = "bench password 123";

fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = std::env::var_os("BENCH_DB")
        .map_or_else(|| dir.path().join("bench.duckdb"), std::path::PathBuf::from);
    if !db.exists() {
        let t = Instant::now();
        let conn = duckdb::Connection::open(&db).expect("open");
        store::create_or_migrate(&conn).expect("schema");
        store::synth::generate(&conn, SITE, events).expect("generate");
        store::compact(&conn, store::Select::All).expect("compact");
        conn.execute_batch("CHECKPOINT").expect("checkpoint");
        println!(
            "dashboard: {events} events written in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (store, writer) = Store::open(&db, WriterOptions::default()).expect("open store");
    let config = Config {
        sites: vec![SITE.to_owned()],
        ..Config::default()
    };
    let app = App::new(config, store.clone()).expect("app");
    rt.block_on(async {
        if !app.accounts.read(|s| s.users.contains_key("bench")) {
            let hash = accounts::hash_password(PASSWORD).expect("hash");
            app.accounts
                .apply(
                    &app.store,
                    Change::AddUser {
                        name: "bench".to_owned(),
                        password_hash: hash,
                        admin: true,
                        sites: Vec::new(),
                        created_ms: 0,
                    },
                )
                .await
                .expect("user");
        }
        for id in [SITE] {
            if !app.accounts.read(|s| s.sites.contains_key(id)) {
                app.accounts
                    .apply(&app.store, Change::PutSite(accounts::Site::new(id)))
                    .await
                    .expect("site");
            }
        }
        let routes = router(app.clone());
        let send = |req: Request<Body>| {
            let routes = routes.clone();
            async move { routes.oneshot(req).await.expect("answer") }
        };
        let get = |path: &str, cookie: &str| {
            Request::get(path)
                .header(header::HOST, "127.0.0.1")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .expect("request")
        };
        // Sign in as a browser does.
        let login = send(get("/app/login", "")).await;
        let login_cookie = cookie_of(&login, "ct_login");
        let csrf = login_cookie.split_once('=').map_or("", |(_, v)| v);
        let form = format!(
            "csrf={csrf}&user=bench&password={}",
            PASSWORD.replace(' ', "+")
        );
        let signed = send(
            Request::post("/app/login")
                .header(header::HOST, "127.0.0.1")
                .header(header::COOKIE, &login_cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("request"),
        )
        .await;
        let session = cookie_of(&signed, "ct_session");
        assert!(
            !session.is_empty(),
            "signing in failed: {}",
            signed.status()
        );

        // The synthetic month: January 2026.
        let range = "range=custom&since=2026-01-01&until=2026-01-31";
        println!("dashboard pages on {events} events (best of 3; answer time, body size):");
        for page in [
            "/app/sites".to_owned(),
            format!("/app/site/{SITE}?{range}"),
            format!("/app/site/{SITE}/live?{range}"),
            format!("/app/site/{SITE}/funnels?{range}"),
            format!("/app/site/{SITE}/screens?{range}"),
            format!("/app/site/{SITE}/forms?{range}"),
            format!("/app/site/{SITE}/links?{range}"),
            format!("/app/site/{SITE}/ads?{range}"),
            format!("/app/site/{SITE}/frustration?{range}"),
            format!("/app/site/{SITE}/errors?{range}"),
            format!("/app/site/{SITE}/download/screens.csv?{range}"),
        ] {
            let mut best = f64::MAX;
            let mut size = 0;
            for _ in 0..3 {
                let t = Instant::now();
                let resp = send(get(&page, &session)).await;
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .expect("body");
                best = best.min(t.elapsed().as_secs_f64());
                size = body.len();
                assert!(status.is_success(), "{page}: {status}");
            }
            let name = page.split('?').next().unwrap_or(&page);
            println!(
                "  {name:<42} {best:>6.2} s  {:>8.1} KB",
                size as f64 / 1024.0
            );
        }
    });
    store.close();
    drop(store);
    drop(app);
    writer.join();
}

/// `name=value` of the `Set-Cookie` named `name` in an answer.
fn cookie_of(resp: &axum::response::Response, name: &str) -> String {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or("")
        .to_owned()
}
