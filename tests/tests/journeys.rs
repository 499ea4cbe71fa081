//! Scripted visits of the demo shop in a real headless Chromium, through the real
//! wasm tracker and the real collector into a real DuckDB file; then the funnel and
//! screens audits must give exactly the numbers of what the visitors did, and no
//! typed text may be anywhere in the database.

use std::time::Duration;

use analyzer::{AuditRequest, Report, Scope};
use anyhow::Result;
use clicktrail_e2e::{Browser, Collector, Page};
use fantoccini::{Client, Locator};

/// Text typed into form fields during the visits; none of it may be stored.
const TYPED: [&str; 7] = [
    "Zebulon Quixote",
    "zebulon.q@typed.example",
    "17 Typedvalue Lane",
    "Quuxville",
    "4111111111111111",
    "Xerxes Cardholder",
    "40001234",
];

async fn fill_shipping(p: &Page<'_>) -> Result<()> {
    p.type_into("full-name", TYPED[0]).await?;
    p.type_into("email", TYPED[1]).await?;
    p.type_into("address", TYPED[2]).await?;
    p.type_into("city", TYPED[3]).await?;
    p.type_into("zip", "90210").await?;
    Ok(())
}

async fn wait_visible(c: &Client, id: &str) -> Result<()> {
    for _ in 0..100 {
        if c.find(Locator::Id(id)).await?.is_displayed().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("#{id} never became visible")
}

/// Home → product → cart → checkout (shipping screen).
async fn to_checkout(p: &Page<'_>, ad: &str, product: &str) -> Result<()> {
    p.open(&format!("/demo/?ad={ad}")).await?;
    p.click_nav(
        &format!("p-{product}"),
        &format!("/demo/product/{product}.html"),
    )
    .await?;
    p.click_nav("add-to-cart", "/demo/cart.html").await?;
    p.click_nav("checkout", "/demo/checkout.html").await?;
    Ok(())
}

async fn buyer(b: &Browser, base: &str, ad: &str, product: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    to_checkout(&p, ad, product).await?;
    fill_shipping(&p).await?;
    p.click("to-payment").await?;
    wait_visible(&c, "screen-payment").await?;
    p.type_into("card-number", TYPED[4]).await?;
    p.type_into("expiry", "12/30").await?;
    p.type_into("cvc", "123").await?;
    p.type_into("card-name", TYPED[5]).await?;
    p.click_nav("pay", "/demo/confirmation.html").await?;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

async fn stops_at_shipping(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    to_checkout(&p, "A", "gloves").await?;
    p.click("to-payment").await?; // empty form: the page rejects it
    wait_visible(&c, "shipping-error").await?;
    p.type_into("full-name", TYPED[0]).await?;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

async fn stops_at_payment(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    to_checkout(&p, "B", "boots").await?;
    fill_shipping(&p).await?;
    p.click("to-payment").await?;
    wait_visible(&c, "screen-payment").await?;
    p.type_into("card-number", TYPED[6]).await?;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

async fn reads_help_spa(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=A").await?;
    p.click_nav("nav-help", "/demo/help/").await?;
    p.click("help-returns").await?;
    p.click("help-shipping").await?;
    c.back().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

async fn bounces(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=B").await?;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

fn scope() -> Scope {
    Scope {
        site: Some("demo".into()),
        ..Scope::default()
    }
}

fn funnel_request_steps() -> Vec<String> {
    [
        "page:/demo/",
        "page:/demo/product/*",
        "page:/demo/cart.html",
        "screen:shipping",
        "screen:payment",
        "event:purchase",
    ]
    .map(String::from)
    .to_vec()
}

fn funnel_request() -> AuditRequest {
    AuditRequest::Funnel {
        scope: scope(),
        steps: funnel_request_steps(),
        name: None,
        window: Some("30m".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_visits_give_exact_funnel_and_screens() -> Result<()> {
    let collector = Collector::start().await?;
    let browser = Browser::start().await?;
    let base = collector.url.clone();

    buyer(&browser, &base, "A", "boots").await?;
    buyer(&browser, &base, "B", "scarf").await?;
    stops_at_shipping(&browser, &base).await?;
    stops_at_payment(&browser, &base).await?;
    reads_help_spa(&browser, &base).await?;
    bounces(&browser, &base).await?;
    collector.wait_quiet(50).await?;

    // Live, through the collector that owns the file.
    let Report::Funnel(funnel) = collector.audit(&funnel_request())? else {
        panic!("not a funnel report")
    };
    assert_eq!(funnel.sessions, 6);
    let entered: Vec<u64> = funnel.steps.iter().map(|s| s.entered).collect();
    assert_eq!(entered, [6, 4, 4, 4, 3, 2], "{funnel:#?}");
    assert_eq!(funnel.steps[4].dropped, 1);
    assert_eq!(funnel.steps[5].conversion_from_first, Some(2.0 / 6.0));

    // The demo's saved checkout funnel is the same flow, and the default funnel.
    let Report::Funnel(saved) = collector.audit(&AuditRequest::Funnel {
        scope: scope(),
        steps: Vec::new(),
        name: None,
        window: None,
    })?
    else {
        panic!("not a funnel report")
    };
    assert_eq!(saved.name.as_deref(), Some("checkout"));
    assert_eq!(saved.steps, funnel.steps);

    let Report::Screens(screens) = collector.audit(&AuditRequest::Screens {
        scope: scope(),
        top_next: 3,
    })?
    else {
        panic!("not a screens report")
    };
    let get = |label: &str| {
        screens
            .screens
            .iter()
            .find(|s| s.screen == label)
            .unwrap_or_else(|| panic!("no screen {label}: {screens:#?}"))
    };
    assert_eq!((get("/demo/").sessions, get("/demo/").exits), (6, 1));
    assert_eq!(
        (
            get("/demo/cart.html").sessions,
            get("/demo/cart.html").exits
        ),
        (4, 0)
    );
    assert_eq!((get("shipping").sessions, get("shipping").exits), (4, 1));
    assert_eq!((get("payment").sessions, get("payment").exits), (3, 1));
    assert_eq!(
        (
            get("/demo/confirmation.html").sessions,
            get("/demo/confirmation.html").exits
        ),
        (2, 2)
    );
    assert_eq!(get("/demo/product/boots.html").sessions, 2);
    let returns = get("/demo/help/returns");
    assert_eq!((returns.sessions, returns.views, returns.exits), (1, 2, 1));
    assert_eq!(get("/demo/help/").next[0].screen, "/demo/help/returns");
    assert_eq!(get("shipping").next[0].screen, "payment");
    assert_eq!(get("shipping").next[0].count, 3);

    // The one-file HTML report, made by the CLI from the live collector with no
    // parameters (the funnel is the saved one; the format follows --out), shown in
    // the real browser: the key numbers are visible in its DOM and it makes no
    // external request.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("report.html");
    let (ok, _, stderr) = collector.analyzer(&["report", "--out", &file.to_string_lossy()])?;
    assert!(ok, "analyzer report failed: {stderr}");
    let html = std::fs::read_to_string(&file)?;
    assert!(
        html.starts_with("<!doctype html>"),
        "{}",
        &html[..100.min(html.len())]
    );
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(external),
            "the report must be self-contained: found {external}"
        );
    }
    let c = browser.session().await?;
    c.goto(&format!("file://{}", file.display())).await?;
    let cells: Vec<String> = serde_json::from_value(
        c.execute("return Array.from(document.querySelectorAll('#funnel td')).map(td => td.textContent.trim());", vec![])
            .await?,
    )?;
    assert_eq!(&cells[..3], ["page:/demo/", "6", "–"], "{cells:?}");
    assert!(cells.iter().any(|c| c == "event:purchase"));
    assert!(
        cells.iter().any(|c| c == "33.3%"),
        "purchase reached by 2 of 6: {cells:?}"
    );
    let charts: Vec<String> = serde_json::from_value(
        c.execute("return Array.from(document.querySelectorAll('section:has(figure svg)')).map(s => s.id);", vec![])
            .await?,
    )?;
    for section in ["funnel", "screens", "forms", "links"] {
        assert!(
            charts.iter().any(|c| c == section),
            "a {section} chart: {charts:?}"
        );
    }
    let title: String = serde_json::from_value(
        c.execute(
            "return document.querySelector('#funnel h2').textContent;",
            vec![],
        )
        .await?,
    )?;
    assert_eq!(title, "funnel · checkout");
    let png = c.screenshot().await?;
    assert!(png.len() > 10_000, "a rendered page, not a blank one");
    c.close().await?;

    // Saved funnels through the CLI: a wrong name says which ones exist; a new one
    // is listed after the demo's.
    let (ok, _, stderr) = collector.analyzer(&["--site", "demo", "funnel", "--name", "nope"])?;
    assert!(!ok);
    assert!(
        stderr.contains("no saved funnel `nope`; saved: checkout"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = collector.analyzer(&[
        "--site",
        "demo",
        "funnels",
        "save",
        "help",
        "--step",
        "page:/demo/help/",
        "--step",
        "page:/demo/help/*",
    ])?;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("funnels · 2 saved"), "{stdout}");
    let (ok, stdout, stderr) = collector.analyzer(&[
        "--site", "demo", "--format", "csv", "funnel", "--name", "help",
    ])?;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("page:/demo/help/*,1,"),
        "1 reader went on to an article: {stdout}"
    );

    // Stop the collector (drain + checkpoint) and read the file directly.
    let db = collector.stop().await?;
    let conn = analyzer::open_read_only(&db)?;
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'custom' AND name = 'purchase'"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'custom' AND name = 'invalid'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'pageview' AND nav = 'push'"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'pageview' AND nav = 'pop'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'submit' AND form = 'shipping'"),
        4
    );
    assert_eq!(count("SELECT count(DISTINCT session_id) FROM events"), 6);
    assert!(
        count("SELECT count(*) FROM events WHERE field = 'card-number' AND kind = 'blur'") >= 1
    );
    // Nothing inside data-ct-ignore was recorded.
    assert_eq!(
        count("SELECT count(*) FROM events WHERE field = 'promo' OR selector LIKE '%apply-promo%'"),
        0
    );
    let Report::Funnel(offline) = analyzer::run(&conn, &funnel_request())? else {
        panic!()
    };
    assert_eq!(
        offline, funnel,
        "the file gives the same funnel as the live collector"
    );

    // No typed value anywhere: not in any column, not in the file's bytes.
    for typed in TYPED {
        let n = count(&format!(
            "SELECT count(*) FROM events WHERE concat_ws('|', COLUMNS(*)) LIKE '%{typed}%'"
        ));
        assert_eq!(n, 0, "typed text {typed:?} found in the events table");
    }
    drop(conn);
    let mut bytes = std::fs::read(&db)?;
    if let Ok(wal) = std::fs::read(db.with_extension("duckdb.wal")) {
        bytes.extend(wal);
    }
    for typed in TYPED {
        assert!(
            !bytes.windows(typed.len()).any(|w| w == typed.as_bytes()),
            "typed text {typed:?} found in the database file"
        );
    }
    Ok(())
}
