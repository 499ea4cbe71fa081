//! Scripted visits for the usability audits, in a real headless Chromium through the
//! real tracker and collector: an abandoned form at a named field, rage and dead
//! clicks, a JavaScript error on click, a click on a link to a missing page, ad
//! variants seen (and not seen: left before 1 s) and clicked a known number of
//! times, a quick back (and a slow one that is not). The rows the audits read must be exactly what the visitors did.

use std::time::Duration;

use analyzer::{AuditRequest, Scope};
use anyhow::Result;
use clicktrail_e2e::{Browser, Collector, Page};
use serde_json::{Value, json};

/// Runs `audit` (defaults for its params) through the live collector, as JSON.
fn audit(collector: &Collector, audit: &str) -> Result<Value> {
    let req: AuditRequest = serde_json::from_value(json!({
        "audit": audit,
        "scope": Scope { site: Some("demo".into()), ..Scope::default() },
    }))?;
    Ok(serde_json::to_value(collector.audit(&req)?)?)
}

/// The one item of `list` whose fields equal `want`.
fn find<'a>(list: &'a Value, want: &Value) -> &'a Value {
    let items = list.as_array().expect("a list");
    let hits: Vec<&Value> = items
        .iter()
        .filter(|item| {
            want.as_object()
                .expect("an object")
                .iter()
                .all(|(k, v)| &item[k] == v)
        })
        .collect();
    assert_eq!(hits.len(), 1, "exactly one item like {want} in {list:#}");
    hits[0]
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Sees ad A for 1.5 s, clicks it, rage-clicks the dead "Size guide", then hits the
/// broken "Notify me" button.
async fn frustrated_shopper(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=A").await?;
    pause(1_500).await;
    p.click_nav("banner", "/demo/product/boots.html").await?;
    for _ in 0..4 {
        p.click("size-guide").await?;
        pause(120).await;
    }
    pause(1_300).await;
    p.click("notify-me").await?;
    pause(1_300).await;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

/// Sees ad B, then follows the link to the gift-card page, which does not exist.
async fn broken_link(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=B").await?;
    pause(1_500).await;
    p.click_nav("gift-cards", "/demo/gift-cards.html").await?;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

/// Sees ad B, buys nothing: gives up on the shipping form at the address field.
async fn abandons_at_address(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=B").await?;
    pause(1_500).await;
    p.click_nav("p-scarf", "/demo/product/scarf.html").await?;
    p.click_nav("add-to-cart", "/demo/cart.html").await?;
    p.click_nav("checkout", "/demo/checkout.html").await?;
    p.type_into("full-name", "Typed Name").await?;
    p.type_into("email", "typed@example.test").await?;
    p.click("address").await?;
    pause(300).await;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

/// Lands with ad A and leaves after 0.3 s: no viewable impression (under 1 s), but
/// the links in view are seen (the observer reports after the first frames; a
/// visitor gone before any frame saw nothing).
async fn leaves_at_once(b: &Browser, base: &str) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/?ad=A").await?;
    pause(300).await;
    p.leave().await?;
    c.close().await?;
    Ok(())
}

/// Opens the cart, follows the Help link, reads for `read_ms`, then goes back. After
/// 1 s that is a quick back on the help page; after 6 s it is not. With `forward`,
/// goes forward to the help page again at once: no quick back either.
async fn back_from_help_after(b: &Browser, base: &str, read_ms: u64, forward: bool) -> Result<()> {
    let c = b.session().await?;
    let p = Page { c: &c, base };
    p.open("/demo/cart.html").await?;
    p.click_nav("nav-help", "/demo/help/").await?;
    pause(read_ms).await;
    c.back().await?;
    p.wait_path("/demo/cart.html").await?;
    pause(500).await;
    if forward {
        c.forward().await?;
        p.wait_path("/demo/help/").await?;
        pause(500).await;
    }
    p.leave().await?;
    c.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_visits_are_recorded_exactly() -> Result<()> {
    let collector = Collector::start().await?;
    let browser = Browser::start().await?;
    let base = collector.url.clone();
    frustrated_shopper(&browser, &base).await?;
    broken_link(&browser, &base).await?;
    abandons_at_address(&browser, &base).await?;
    leaves_at_once(&browser, &base).await?;
    back_from_help_after(&browser, &base, 1_000, false).await?;
    back_from_help_after(&browser, &base, 6_000, true).await?;
    collector.wait_quiet(30).await?;

    // The audits, live through the collector: the numbers of what the visitors did.
    let frustration = audit(&collector, "frustration")?;
    let issues = &frustration["issues"];
    let boots = "/demo/product/boots.html";
    let rage = find(
        issues,
        &json!({"kind": "rage_click", "page": boots, "selector": "span#size-guide"}),
    );
    assert_eq!(
        (rage["occurrences"].as_u64(), rage["sessions"].as_u64()),
        (Some(1), Some(1))
    );
    let dead = find(
        issues,
        &json!({"kind": "dead_click", "page": boots, "selector": "span#size-guide"}),
    );
    assert_eq!(dead["occurrences"], 4);
    let error_click = find(
        issues,
        &json!({"kind": "error_click", "page": boots, "selector": "button#notify-me"}),
    );
    assert_eq!(
        (
            error_click["occurrences"].as_u64(),
            error_click["share"].as_f64()
        ),
        (Some(1), Some(1.0))
    );

    // Back from the help page after 1 s is a quick back; after 6 s it is not,
    // and going forward to it again at once is no quick back from the cart.
    let quick = find(
        issues,
        &json!({"kind": "quick_back", "page": "/demo/help/"}),
    );
    assert_eq!(
        (
            quick["occurrences"].as_u64(),
            quick["sessions"].as_u64(),
            quick["page_sessions"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{quick}"
    );
    assert_eq!(quick["selector"], Value::Null);
    assert_eq!(
        issues
            .as_array()
            .map(|l| l.iter().filter(|i| i["kind"] == "quick_back").count()),
        Some(1),
        "no other quick back: {issues:#}"
    );

    let errors = audit(&collector, "errors")?;
    let js = find(&errors["js_errors"], &json!({"page": boots}));
    assert!(
        js["message"].as_str().unwrap_or("").contains("subscribe"),
        "{js}"
    );
    assert_eq!(
        (js["occurrences"].as_u64(), js["sessions"].as_u64()),
        (Some(1), Some(1))
    );
    let page404 = find(
        &errors["error_pages"],
        &json!({"page": "/demo/gift-cards.html"}),
    );
    assert_eq!(
        (page404["status"].as_u64(), page404["sessions"].as_u64()),
        (Some(404), Some(1))
    );
    assert_eq!(page404["came_from"][0]["from"], "/demo/");

    let links = audit(&collector, "links")?;
    let broken = find(
        &links["broken"],
        &json!({"page": "/demo/", "selector": "a#gift-cards"}),
    );
    assert_eq!(
        (
            broken["status"].as_u64(),
            broken["clicks"].as_u64(),
            broken["sessions"].as_u64()
        ),
        (Some(404), Some(1), Some(1))
    );
    let press = find(
        &links["links"],
        &json!({"page": "/demo/", "selector": "a#press-archive"}),
    );
    assert_eq!(
        (press["impressions"].as_u64(), press["clicks"].as_u64()),
        (Some(4), Some(0)),
        "seen on every home view, never clicked"
    );
    assert_eq!(
        links["unused"].as_array().map(Vec::len),
        Some(0),
        "4 impressions are too few to call a link unused"
    );

    let ads = audit(&collector, "ads")?;
    let campaign = find(&ads["campaigns"], &json!({"campaign": "winter-sale"}));
    let a = find(&campaign["variants"], &json!({"variant": "A"}));
    let b = find(&campaign["variants"], &json!({"variant": "B"}));
    assert_eq!(
        (
            a["impressions"].as_u64(),
            a["clicks"].as_u64(),
            a["sessions"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        (
            b["impressions"].as_u64(),
            b["clicks"].as_u64(),
            b["sessions"].as_u64()
        ),
        (Some(2), Some(0), Some(2))
    );
    assert_eq!(campaign["comparisons"][0]["verdict"], "not enough data yet");

    let forms = audit(&collector, "forms")?;
    let shipping = find(&forms["forms"], &json!({"form": "shipping"}));
    assert_eq!(
        (
            shipping["started"].as_u64(),
            shipping["submitted"].as_u64(),
            shipping["abandoned"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    // The add-to-cart form sent with its default quantity, no field touched: started
    // and submitted, listed first (as many started, more submitted).
    assert_eq!(forms["forms"][0]["form"], "add-to-cart");
    assert_eq!(
        (
            forms["forms"][0]["started"].as_u64(),
            forms["forms"][0]["submitted"].as_u64(),
            forms["forms"][0]["abandoned"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    let address = find(&shipping["fields"], &json!({"field": "address"}));
    assert_eq!(
        (
            address["last_before_abandon"].as_u64(),
            address["last_before_abandon_share"].as_f64()
        ),
        (Some(1), Some(1.0))
    );

    let db = collector.stop().await?;
    let conn = analyzer::open_read_only(&db)?;
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };

    // Ads: A seen once (the visitor who left at once saw it < 1 s), B twice; one click on A.
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'ad_view' AND ad = 'winter-sale:A'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'ad_view' AND ad = 'winter-sale:B'"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'click' AND ad = 'winter-sale:A'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'click' AND ad = 'winter-sale:B'"),
        0
    );

    // Frustration: four clicks on the dead "Size guide" within half a second; all dead.
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'click' AND selector LIKE '%size-guide%'"),
        4
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'dead_click' AND selector LIKE '%size-guide%'"
        ),
        4
    );
    // "Notify me" throws: one JavaScript error on the boots page, right after the click.
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'error' AND path = '/demo/product/boots.html'"
        ),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'error' AND message LIKE '%subscribe%'"),
        1
    );
    // The page did nothing visible after the throw: it is a dead click too.
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'dead_click' AND selector LIKE '%notify-me%'"
        ),
        1
    );

    // Links: the gift-card link was seen and clicked once and led to a 404 page.
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'click' AND href LIKE '%/demo/gift-cards.html'"
        ),
        1
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'pageview' AND path = '/demo/gift-cards.html' AND status = 404"
        ),
        1
    );
    assert!(
        count(
            "SELECT count(*) FROM events WHERE kind = 'link_view' AND path = '/demo/' AND href LIKE '%/demo/gift-cards.html'"
        ) >= 3
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'click' AND href LIKE '%/demo/press.html'"),
        0
    );

    // Forms: shipping started once, never submitted, last touched field: address.
    assert_eq!(
        count(
            "SELECT count(DISTINCT session_id) FROM events WHERE form = 'shipping' AND kind = 'focus'"
        ),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE form = 'shipping' AND kind = 'submit'"),
        0
    );
    let last: String = conn.query_row(
        "SELECT field FROM events WHERE form = 'shipping' AND kind IN ('focus', 'blur', 'change') ORDER BY ts DESC, seq DESC LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(last, "address");
    assert_eq!(
        count(
            "SELECT count(*) FROM events WHERE concat_ws('|', COLUMNS(*)) LIKE '%Typed Name%' OR concat_ws('|', COLUMNS(*)) LIKE '%typed@example%'"
        ),
        0
    );
    Ok(())
}
