//! Writes a small, hand-made shop dataset into a DuckDB file, to try the CLI on:
//!
//! ```text
//! cargo run --release -p clicktrail-analyzer --example demo_db -- /tmp/demo.duckdb
//! analyzer --db /tmp/demo.duckdb funnel --step page:/cart --step screen:payment --step event:order
//! ```
//!
//! Six sessions of site `demo` on 2026-11-24, browsing products, a cart, and a checkout
//! page whose steps are `data-ct-screen` changes (shipping → payment).
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
    conn.execute_batch(analyzer::schema::CREATE_EVENTS)?;
    let mut insert = conn.prepare(
        "INSERT INTO events (site, event_id, kind, ts, received_at, seq, session_id, visitor_id, \
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
    if bulk > 0 {
        let rows = conn.execute(BULK, params![bulk * 12])?;
        println!("wrote {rows} synthetic events of {bulk} sessions (site bulk)");
    }
    Ok(())
}

/// Session `i / 12` takes step `i % 12` of a shop visit, up to a random last step.
const BULK: &str = "
INSERT INTO events (site, event_id, kind, ts, received_at, seq, session_id, visitor_id,
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
