//! Writes a small, hand-made shop dataset into a DuckDB file, to try the CLI on:
//!
//! ```text
//! cargo run --release --example demo_db -- /tmp/demo.duckdb
//! analyzer --db /tmp/demo.duckdb funnel --step page:/cart --step screen:payment --step event:order
//! ```
//!
//! Six sessions of site `demo` on 2026-11-24, browsing products, a cart, and a checkout
//! page whose steps are `data-ct-screen` changes (shipping → payment); with form
//! filling, rage and dead clicks, JavaScript errors and a 404 page in them and in four
//! more sessions after 11:00 (see `insert_ux_events`).
//!
//! Site `demo-marketing` has 400 sessions from 12:00 on for the `links` and `ads`
//! audits: a hero banner in an A/B test, campaign landing URLs, a link nobody clicks
//! and one that leads to a 404 (see `insert_marketing_events`).
//!
//! With a second argument N, also N synthetic sessions of site `bulk` (about 6 events
//! each, dropping out at random steps), to time the audits on a larger file:
//! `demo_db /tmp/big.duckdb 200000`.

use anyhow::Context as _;
use duckdb::{Connection, params};

/// The columns some events set.
#[derive(Debug, Clone, Copy, Default)]
struct Extra {
    screen: Option<&'static str>,
    selector: Option<&'static str>,
    form: Option<&'static str>,
    name: Option<&'static str>,
}

/// (session, seconds after 10:00, kind, path, extra columns)
fn s(
    session: &'static str,
    at: i64,
    kind: &'static str,
    path: &'static str,
    extra: Extra,
) -> (&'static str, i64, &'static str, &'static str, Extra) {
    (session, at, kind, path, extra)
}

fn main() -> anyhow::Result<()> {
    let usage = "usage: demo_db FILE.duckdb [SYNTHETIC_SESSIONS]";
    let path = std::env::args().nth(1).context(usage)?;
    let bulk: i64 = match std::env::args().nth(2) {
        Some(n) => n.parse().context(usage)?,
        None => 0,
    };
    let conn = Connection::open(&path).with_context(|| format!("cannot open {path}"))?;
    store::create_or_migrate(&conn)?;
    let mut insert = conn.prepare(
        "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, visitor_id, \
         path, screen, selector, form, name, device) \
         VALUES ('demo', ?, ?, TIMESTAMP '2026-11-24 10:00:00' + to_milliseconds(?::BIGINT), \
                 TIMESTAMP '2026-11-24 10:00:00' + to_milliseconds(?::BIGINT + 300), \
                 ?, ?, ?, ?, ?, ?, ?, ?, 'desktop')",
    )?;
    let none = Extra::default();
    let screen = |name| Extra {
        screen: Some(name),
        ..none
    };
    let click = |css| Extra {
        selector: Some(css),
        ..none
    };
    let submit = |form| Extra {
        form: Some(form),
        ..none
    };
    let custom = |name| Extra {
        name: Some(name),
        ..none
    };
    let events = [
        // s1: product → cart → shipping → payment → order.
        s("s1", 0, "pageview", "/product/42", none),
        s("s1", 20, "click", "/product/42", click("button#add")),
        s("s1", 25, "pageview", "/cart", none),
        s("s1", 60, "click", "/cart", click("a#checkout")),
        s("s1", 62, "pageview", "/checkout", screen("shipping")),
        s("s1", 150, "submit", "/checkout", submit("shipping")),
        s("s1", 151, "screen", "/checkout", screen("payment")),
        s("s1", 240, "custom", "/checkout", custom("order")),
        s("s1", 250, "leave", "/checkout", screen("payment")),
        // s2: product → cart → shipping, leaves.
        s("s2", 0, "pageview", "/product/7", none),
        s("s2", 40, "pageview", "/cart", none),
        s("s2", 90, "pageview", "/checkout", screen("shipping")),
        s("s2", 300, "leave", "/checkout", screen("shipping")),
        // s3: cart → shipping → payment, leaves at payment.
        s("s3", 0, "pageview", "/cart", none),
        s("s3", 30, "pageview", "/checkout", screen("shipping")),
        s("s3", 100, "screen", "/checkout", screen("payment")),
        s("s3", 400, "leave", "/checkout", screen("payment")),
        // s4: home → product → product, leaves.
        s("s4", 0, "pageview", "/", none),
        s("s4", 15, "pageview", "/product/42", none),
        s("s4", 45, "pageview", "/product/7", none),
        s("s4", 70, "leave", "/product/7", none),
        // s5: cart, leaves at once.
        s("s5", 0, "pageview", "/cart", none),
        // s6: home → cart → shipping → payment → order, with a detour back to the cart.
        s("s6", 0, "pageview", "/", none),
        s("s6", 10, "pageview", "/cart", none),
        s("s6", 30, "pageview", "/checkout", screen("shipping")),
        s("s6", 50, "pageview", "/cart", none),
        s("s6", 70, "pageview", "/checkout", screen("shipping")),
        s("s6", 120, "screen", "/checkout", screen("payment")),
        s("s6", 180, "custom", "/checkout", custom("order")),
        s("s6", 185, "leave", "/checkout", screen("payment")),
    ];
    let mut seq = std::collections::HashMap::new();
    for (i, (session, at, kind, path, extra)) in events.into_iter().enumerate() {
        let n = seq.entry(session).or_insert(0);
        *n += 1;
        insert.execute(params![
            format!("demo-{i}"),
            kind,
            at * 1000,
            at * 1000,
            *n,
            session,
            format!("visitor-{session}"),
            path,
            extra.screen,
            extra.selector,
            extra.form,
            extra.name,
        ])?;
    }
    println!("wrote {} events to {path}", events.len());
    let ux = insert_ux_events(&conn)?;
    println!("wrote {ux} form, click and error events to {path}");
    let marketing = insert_marketing_events(&conn)?;
    println!("wrote {marketing} link, ad and campaign events (site demo-marketing) to {path}");
    if bulk > 0 {
        let rows = conn.execute(BULK, params![bulk * 12])?;
        println!("wrote {rows} synthetic events of {bulk} sessions (site bulk)");
    }
    conn.execute_batch(&format!(
        "UPDATE events_recent SET session_key = {} WHERE session_key IS NULL",
        store::schema::SESSION_KEY_SQL
    ))?;
    store::compact(&conn, store::Select::All)?;
    Ok(())
}

/// The columns the form, frustration and error events set.
#[derive(Debug, Clone, Copy, Default)]
struct Ux {
    nav: Option<&'static str>,
    selector: Option<&'static str>,
    form: Option<&'static str>,
    field: Option<&'static str>,
    duration_ms: Option<i64>,
    empty: Option<bool>,
    x: Option<i32>,
    y: Option<i32>,
    status: Option<i32>,
    referrer: Option<&'static str>,
    message: Option<&'static str>,
    source: Option<&'static str>,
    line: Option<i32>,
}

/// The demo's broken "add to cart" button, its error and script.
const ADD: &str = "button#add";
const PRICE: &str = "TypeError: Cannot read properties of undefined (reading 'price')";
const SHOP_JS: &str = "https://shop.example/js/shop.js";

/// Form-filling, clicks, errors and error pages for the `forms`, `frustration` and
/// `errors` audits. In s1, s2, s3 and s6 they fall inside the sessions' checkout visits
/// (before each session's last event, no page views), so funnel steps and the screens
/// of 10:00-11:00 are unchanged; s7 to s10 come at 11:xx and reach no funnel step.
///
/// - Form `shipping` (email, name, address, zip): s1 fills it in order and submits;
///   s2 skips the name, has zip rejected by the browser, fights with it and leaves;
///   s3 leaves the address blank, is blocked, fixes it and submits; s6 starts it, goes
///   back to the cart, starts again and submits.
/// - s2's "continue" button throws; s7 and s10 rage-click an "add to cart" button that
///   does nothing (dead clicks) and throws; s7 bounces back from a product page; s8
///   follows a dead promo link to a 404 and goes straight back; s9 lands on that 404
///   from a newsletter.
fn insert_ux_events(conn: &Connection) -> anyhow::Result<usize> {
    let mut insert = conn.prepare(
        "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, visitor_id, \
         path, nav, selector, form, field, duration_ms, empty, x, y, status, referrer, message, \
         source, line, device) \
         VALUES ('demo', ?, ?, TIMESTAMP '2026-11-24 10:00:00' + to_milliseconds(?::BIGINT), \
                 TIMESTAMP '2026-11-24 10:00:00' + to_milliseconds(?::BIGINT + 300), \
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'desktop')",
    )?;
    let none = Ux::default();
    let focus = |field| Ux {
        form: Some("shipping"),
        field: Some(field),
        ..none
    };
    let blur = |field, ms, empty| Ux {
        duration_ms: Some(ms),
        empty: Some(empty),
        ..focus(field)
    };
    let change = |field| Ux {
        empty: Some(false),
        ..focus(field)
    };
    let form = Ux {
        form: Some("shipping"),
        ..none
    };
    let click = |css, x, y| Ux {
        selector: Some(css),
        x: Some(x),
        y: Some(y),
        ..none
    };
    let view = |nav| Ux {
        nav: Some(nav),
        ..none
    };
    let status = |nav, status| Ux {
        status: Some(status),
        ..view(nav)
    };
    let error = |message, source, line| Ux {
        message: Some(message),
        source: Some(source),
        line: Some(line),
        ..none
    };
    let h11 = 3_600_000;
    // (session, ms after 10:00, kind, path, columns)
    let events: Vec<(&str, i64, &str, &str, Ux)> = vec![
        ("s1", 65_000, "focus", "/checkout", focus("email")),
        (
            "s1",
            71_000,
            "blur",
            "/checkout",
            blur("email", 6_000, false),
        ),
        ("s1", 71_000, "focus", "/checkout", focus("name")),
        (
            "s1",
            78_000,
            "blur",
            "/checkout",
            blur("name", 7_000, false),
        ),
        ("s1", 78_000, "focus", "/checkout", focus("address")),
        ("s1", 92_000, "change", "/checkout", change("address")),
        (
            "s1",
            95_000,
            "blur",
            "/checkout",
            blur("address", 17_000, false),
        ),
        ("s1", 95_000, "focus", "/checkout", focus("zip")),
        ("s1", 99_000, "change", "/checkout", change("zip")),
        (
            "s1",
            100_000,
            "blur",
            "/checkout",
            blur("zip", 5_000, false),
        ),
        ("s2", 95_000, "focus", "/checkout", focus("email")),
        (
            "s2",
            104_000,
            "blur",
            "/checkout",
            blur("email", 9_000, false),
        ),
        ("s2", 104_000, "focus", "/checkout", focus("name")),
        (
            "s2",
            110_000,
            "blur",
            "/checkout",
            blur("name", 6_000, true),
        ),
        ("s2", 110_000, "focus", "/checkout", focus("address")),
        ("s2", 130_000, "change", "/checkout", change("address")),
        (
            "s2",
            140_000,
            "blur",
            "/checkout",
            blur("address", 30_000, false),
        ),
        ("s2", 140_000, "focus", "/checkout", focus("zip")),
        ("s2", 150_000, "change", "/checkout", change("zip")),
        (
            "s2",
            160_000,
            "blur",
            "/checkout",
            blur("zip", 20_000, false),
        ),
        (
            "s2",
            164_500,
            "click",
            "/checkout",
            click("button#continue", 620, 710),
        ),
        (
            "s2",
            164_600,
            "error",
            "/checkout",
            error(
                "ReferenceError: validateZip is not defined",
                "https://shop.example/js/checkout.js",
                88,
            ),
        ),
        (
            "s2",
            170_000,
            "click",
            "/checkout",
            click("button#submit", 620, 780),
        ),
        ("s2", 170_010, "invalid", "/checkout", focus("zip")),
        ("s2", 170_020, "focus", "/checkout", focus("zip")),
        ("s2", 180_000, "change", "/checkout", change("zip")),
        ("s2", 185_000, "change", "/checkout", change("zip")),
        (
            "s2",
            200_000,
            "blur",
            "/checkout",
            blur("zip", 30_000, false),
        ),
        ("s3", 35_000, "focus", "/checkout", focus("email")),
        (
            "s3",
            40_000,
            "blur",
            "/checkout",
            blur("email", 5_000, false),
        ),
        ("s3", 40_000, "focus", "/checkout", focus("name")),
        (
            "s3",
            48_000,
            "blur",
            "/checkout",
            blur("name", 8_000, false),
        ),
        ("s3", 48_000, "focus", "/checkout", focus("address")),
        (
            "s3",
            52_000,
            "blur",
            "/checkout",
            blur("address", 4_000, true),
        ),
        ("s3", 52_000, "focus", "/checkout", focus("zip")),
        ("s3", 56_000, "change", "/checkout", change("zip")),
        ("s3", 58_000, "blur", "/checkout", blur("zip", 6_000, false)),
        ("s3", 60_000, "invalid", "/checkout", focus("address")),
        ("s3", 60_010, "focus", "/checkout", focus("address")),
        ("s3", 75_000, "change", "/checkout", change("address")),
        (
            "s3",
            80_000,
            "blur",
            "/checkout",
            blur("address", 20_000, false),
        ),
        ("s3", 99_000, "submit", "/checkout", form),
        ("s6", 32_000, "focus", "/checkout", focus("email")),
        (
            "s6",
            36_000,
            "blur",
            "/checkout",
            blur("email", 4_000, false),
        ),
        ("s6", 72_000, "focus", "/checkout", focus("email")),
        (
            "s6",
            74_000,
            "blur",
            "/checkout",
            blur("email", 2_000, false),
        ),
        ("s6", 74_000, "focus", "/checkout", focus("name")),
        (
            "s6",
            80_000,
            "blur",
            "/checkout",
            blur("name", 6_000, false),
        ),
        ("s6", 80_000, "focus", "/checkout", focus("address")),
        ("s6", 95_000, "change", "/checkout", change("address")),
        (
            "s6",
            100_000,
            "blur",
            "/checkout",
            blur("address", 20_000, false),
        ),
        ("s6", 100_000, "focus", "/checkout", focus("zip")),
        ("s6", 104_000, "change", "/checkout", change("zip")),
        (
            "s6",
            106_000,
            "blur",
            "/checkout",
            blur("zip", 6_000, false),
        ),
        ("s6", 118_000, "submit", "/checkout", form),
        ("s7", h11, "pageview", "/product/42", view("navigate")),
        (
            "s7",
            h11 + 5_000,
            "click",
            "/product/42",
            click(ADD, 410, 300),
        ),
        (
            "s7",
            h11 + 5_300,
            "click",
            "/product/42",
            click(ADD, 412, 302),
        ),
        (
            "s7",
            h11 + 5_600,
            "click",
            "/product/42",
            click(ADD, 409, 305),
        ),
        (
            "s7",
            h11 + 5_700,
            "error",
            "/product/42",
            error(PRICE, SHOP_JS, 214),
        ),
        (
            "s7",
            h11 + 6_000,
            "dead_click",
            "/product/42",
            click(ADD, 410, 300),
        ),
        (
            "s7",
            h11 + 6_300,
            "dead_click",
            "/product/42",
            click(ADD, 412, 302),
        ),
        (
            "s7",
            h11 + 20_000,
            "pageview",
            "/product/7",
            view("navigate"),
        ),
        (
            "s7",
            h11 + 23_000,
            "pageview",
            "/product/42",
            view("back_forward"),
        ),
        ("s7", h11 + 30_000, "leave", "/product/42", none),
        ("s8", h11 + 60_000, "pageview", "/", view("navigate")),
        ("s8", h11 + 64_000, "click", "/", click("a.promo", 200, 150)),
        (
            "s8",
            h11 + 65_000,
            "pageview",
            "/sale",
            status("navigate", 404),
        ),
        ("s8", h11 + 67_000, "pageview", "/", view("back_forward")),
        ("s8", h11 + 80_000, "leave", "/", none),
        (
            "s9",
            h11 + 600_000,
            "pageview",
            "/sale",
            Ux {
                referrer: Some("https://news.example/deals"),
                ..status("navigate", 404)
            },
        ),
        ("s9", h11 + 603_000, "leave", "/sale", none),
        (
            "s10",
            h11 + 1_200_000,
            "pageview",
            "/product/42",
            view("navigate"),
        ),
        (
            "s10",
            h11 + 1_204_000,
            "click",
            "/product/42",
            click("img.zoom", 300, 200),
        ),
        (
            "s10",
            h11 + 1_205_000,
            "dead_click",
            "/product/42",
            click("img.zoom", 300, 200),
        ),
        (
            "s10",
            h11 + 1_210_000,
            "click",
            "/product/42",
            click(ADD, 405, 298),
        ),
        (
            "s10",
            h11 + 1_210_050,
            "error",
            "/product/42",
            error(PRICE, SHOP_JS, 214),
        ),
        (
            "s10",
            h11 + 1_210_200,
            "click",
            "/product/42",
            click(ADD, 405, 298),
        ),
        (
            "s10",
            h11 + 1_210_400,
            "click",
            "/product/42",
            click(ADD, 406, 299),
        ),
        (
            "s10",
            h11 + 1_210_600,
            "click",
            "/product/42",
            click(ADD, 406, 299),
        ),
        (
            "s10",
            h11 + 1_211_200,
            "dead_click",
            "/product/42",
            click(ADD, 405, 298),
        ),
        ("s10", h11 + 1_230_000, "leave", "/product/42", none),
    ];
    let mut seq = std::collections::HashMap::new();
    for (i, (session, at, kind, path, ux)) in events.iter().enumerate() {
        let n = seq.entry(*session).or_insert(100);
        *n += 1;
        insert.execute(params![
            format!("demo-ux-{i}"),
            kind,
            at,
            at,
            *n,
            session,
            format!("visitor-{session}"),
            path,
            ux.nav,
            ux.selector,
            ux.form,
            ux.field,
            ux.duration_ms,
            ux.empty,
            ux.x,
            ux.y,
            ux.status,
            ux.referrer,
            ux.message,
            ux.source,
            ux.line,
        ])?;
    }
    Ok(events.len())
}

/// Session `i / 12` takes step `i % 12` of a shop visit, up to a random last step.
const BULK: &str = "
INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, visitor_id,
                    path, screen, selector, form, name)
SELECT 'bulk', 'bulk-' || i, kind, ts, ts + INTERVAL 1 SECOND, step + 1,
       's' || session, 'v' || (session // 3), path, screen, selector, form, name
FROM (
    SELECT i, i // 12 AS session, i % 12 AS step,
           TIMESTAMP '2026-11-24 00:00:00' + to_milliseconds((i // 12) * 400 + (i % 12) * 15000 + hash(i) % 5000) AS ts,
           ['pageview', 'click', 'pageview', 'click', 'pageview', 'focus', 'pageview',
            'submit', 'screen', 'custom', 'leave', 'blur'][i % 12 + 1] AS kind,
           CASE WHEN i % 12 < 2 THEN '/' WHEN i % 12 < 4 THEN '/product/' || (hash(i // 12) % 50)
                WHEN i % 12 < 6 THEN '/cart' ELSE '/checkout' END AS path,
           CASE WHEN i % 12 BETWEEN 6 AND 7 THEN 'shipping' WHEN i % 12 >= 8 THEN 'payment' END AS screen,
           CASE i % 12 WHEN 1 THEN 'nav > a.product' WHEN 3 THEN 'form > button#add' END AS selector,
           CASE WHEN i % 12 = 7 THEN 'shipping' END AS form,
           CASE WHEN i % 12 = 9 THEN 'order' END AS name,
           hash(i // 12) % 13 AS last_step
    FROM range(?) t(i)
)
WHERE step <= last_step
";

/// 400 sessions of site `demo-marketing`, one every 20 s from 12:00, for the `links`
/// and `ads` audits. Each lands on `/` (direct, from a newsletter, or from Google,
/// Meta or Microsoft ads, by `i % 8`), sees the hero banner `black-friday:A` (even
/// sessions) or `black-friday:B` (odd ones) and four links: the hero link, `a#shop`,
/// `a#sale` (to a page that is gone: 404) and `a#press` in the footer (never clicked).
/// A clicks the banner in 1 of 8 sessions, B in 1 of 5; about 1 in 10 of A buys, and
/// 1 in 4.4 of B (`purchase` on `/checkout`).
fn insert_marketing_events(conn: &Connection) -> anyhow::Result<usize> {
    const SHOP: &str = "https://shop.example";
    const LANDING: [&str; 8] = [
        "/",
        "/",
        "/",
        "/?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday",
        "/?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday",
        "/?gclid=Cj0KCQiA5rGuBhCnARIsAN11vgR",
        "/?utm_source=google&utm_medium=cpc&utm_campaign=boots&gclid=EAIaIQobChMI8",
        "/?fbclid=IwAR2xZ9",
    ];
    const LINKS: [(&str, &str); 4] = [
        ("main > div.hero > a", "/product/42"),
        ("nav > a#shop", "/shop"),
        ("nav > a#sale", "/black-friday-2025"),
        ("footer > a#press", "/press"),
    ];
    /// (ms after the landing, kind, path, url, selector, href, name, status, ad)
    type Row<'a> = (
        i64,
        &'a str,
        &'a str,
        Option<String>,
        Option<&'a str>,
        Option<String>,
        Option<&'a str>,
        Option<i32>,
        Option<&'a str>,
    );
    let mut insert = conn.prepare(
        "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, visitor_id, \
         path, url, referrer, selector, href, name, status, ad, device) \
         VALUES ('demo-marketing', ?, ?, TIMESTAMP '2026-11-24 12:00:00' + to_milliseconds(?::BIGINT), \
                 TIMESTAMP '2026-11-24 12:00:00' + to_milliseconds(?::BIGINT + 300), \
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'desktop')",
    )?;
    let mut rows = 0;
    for i in 0..400_i64 {
        let session = format!("m{i}");
        let t0 = i * 20_000;
        let b = i % 2 == 1;
        let ad = if b {
            "black-friday:B"
        } else {
            "black-friday:A"
        };
        let clicks_ad = if b {
            (i / 2) % 5 == 0
        } else {
            (i / 2) % 8 == 0
        };
        // A fixed scatter of the buyers over the sources: about 10 % of A, 23 % of B.
        let spread = (i * 7919 + 13) % 1000;
        let buys = if b { spread < 230 } else { spread < 100 };
        let page = |at, path: &'static str, url: String, status| -> Row<'_> {
            (
                at,
                "pageview",
                path,
                Some(url),
                None,
                None,
                None,
                Some(status),
                None,
            )
        };
        let click = |selector, path: &str, ad| -> Row<'_> {
            (
                6_000,
                "click",
                "/",
                None,
                Some(selector),
                Some(format!("{SHOP}{path}")),
                None,
                None,
                ad,
            )
        };
        let mut events: Vec<Row<'_>> = vec![
            page(0, "/", format!("{SHOP}{}", LANDING[(i % 8) as usize]), 200),
            (
                1_500,
                "ad_view",
                "/",
                None,
                Some("main > div.hero"),
                None,
                None,
                None,
                Some(ad),
            ),
        ];
        for (selector, path) in LINKS {
            events.push((
                3_000,
                "link_view",
                "/",
                None,
                Some(selector),
                Some(format!("{SHOP}{path}")),
                None,
                None,
                None,
            ));
        }
        if clicks_ad {
            events.push(click(LINKS[0].0, LINKS[0].1, Some(ad)));
            events.push(page(
                8_000,
                "/product/42",
                format!("{SHOP}/product/42"),
                200,
            ));
        } else if i % 12 == 5 {
            events.push(click(LINKS[2].0, LINKS[2].1, None));
            events.push(page(
                8_000,
                "/black-friday-2025",
                format!("{SHOP}/black-friday-2025"),
                404,
            ));
        } else if i % 3 == 2 {
            events.push(click(LINKS[1].0, LINKS[1].1, None));
            events.push(page(8_000, "/shop", format!("{SHOP}/shop"), 200));
        }
        if buys {
            events.push(page(30_000, "/checkout", format!("{SHOP}/checkout"), 200));
            events.push((
                60_000,
                "custom",
                "/checkout",
                None,
                None,
                None,
                Some("purchase"),
                None,
                None,
            ));
        }
        for (n, (at, kind, path, url, selector, href, name, status, ad)) in
            events.into_iter().enumerate()
        {
            insert.execute(params![
                format!("mkt-{i}-{n}"),
                kind,
                t0 + at,
                t0 + at,
                n as i64 + 1,
                session,
                format!("visitor-{session}"),
                path,
                url,
                (kind == "pageview" && path != "/").then(|| format!("{SHOP}/")),
                selector,
                href,
                name,
                status,
                ad,
            ])?;
            rows += 1;
        }
    }
    Ok(rows)
}
