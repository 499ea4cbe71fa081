//! Synthetic shop traffic written straight into the store, for benches at 10 and 100
//! million events (`cargo xtask bench`): one SQL statement per 10 million events, no
//! HTTP, no per-row Rust.
//!
//! Every session has ten events. Its start is spread over 30 days; its events come
//! 0-80 s apart, one in ten at the same millisecond as the one before (ties kept in
//! order by `seq`), and one session in twenty pauses for two hours midway (long gaps
//! that fall out of a funnel's window). Each session moves through the shop at its
//! own pace: home, a category, products, the cart, the checkout (shipping and payment
//! screens, form fields) and the thank-you page, with a `purchase` event; now and
//! then it steps back. Besides page views there are clicks, screens, field events,
//! custom events, leaves, link views, JavaScript errors, dead clicks and ad views,
//! 1 % bot traffic, and 1 % of page views with status 404. The numbers come from
//! `hash(event number)`, so a run is the same every time.

use duckdb::Connection;

/// Events per synthetic session.
pub const EVENTS_PER_SESSION: u64 = 10;

/// Events written per statement.
const CHUNK: u64 = 10_000_000;

/// 2026-01-01T00:00:00Z in ms.
const START_MS: i64 = 1_767_225_600_000;

/// Appends `events` synthetic events of `site` (rounded up to whole sessions) to
/// `events_recent`; [`crate::compact`] then moves them into the sorted layout.
/// Returns the number of events written.
pub fn generate(conn: &Connection, site: &str, events: u64) -> Result<u64, duckdb::Error> {
    let sessions = events.div_ceil(EVENTS_PER_SESSION).max(1);
    let total = sessions * EVENTS_PER_SESSION;
    let mut from = 0;
    while from < total {
        let to = (from + CHUNK).min(total);
        conn.execute(&insert_sql(sessions, from, to), [site])?;
        from = to;
    }
    Ok(total)
}

fn insert_sql(sessions: u64, from: u64, to: u64) -> String {
    let per = EVENTS_PER_SESSION;
    let span_ms: i64 = 30 * 86_400_000;
    format!(
        "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id,
             visitor_id, path, url, referrer, title, nav, screen, selector, text, href, x, y,
             form, field, field_type, duration_ms, empty, name, props, user_id, browser, os,
             device, status, ad, message, source, line, session_key)
         WITH e AS (
             SELECT i, i // {per} AS s, (i % {per})::INTEGER AS j, hash(i) AS r,
                    hash(i // {per}) AS rs, hash(i - 1) AS rp
             FROM range({from}, {to}) t(i)
         ), t AS (
             SELECT *,
                 {START_MS} + (s * {span_ms} // {sessions}) + (rs % 600000)::BIGINT
                     + CASE WHEN rs % 20 = 0 AND j >= 5 THEN 7200000 ELSE 0 END AS base,
                 least(floor(j * ((rs >> 12) % 1000) / 1000.0 * 0.75)::INTEGER
                       - CASE WHEN r % 7 = 0 AND j > 0 THEN 1 ELSE 0 END, 5) AS stage,
                 (r >> 32) % 100 AS pick
             FROM e
         ), v AS (
             SELECT *,
                 CASE WHEN r % 10 = 0 AND j > 0
                      THEN base + (j - 1) * 40000 + (rp % 40000)::BIGINT
                      ELSE base + j * 40000 + (r % 40000)::BIGINT END AS ts_ms,
                 greatest(stage, 0) AS st,
                 CASE WHEN j = 0 OR pick < 55 THEN 'pageview'
                      WHEN pick < 70 THEN 'click'
                      WHEN pick < 76 THEN CASE WHEN greatest(stage, 0) = 4 THEN 'screen' ELSE 'pageview' END
                      WHEN pick < 84 THEN CASE WHEN greatest(stage, 0) = 4
                                               THEN ['focus', 'blur', 'change'][((r >> 8) % 3)::BIGINT + 1]
                                               ELSE 'leave' END
                      WHEN pick < 89 THEN 'custom'
                      WHEN pick < 92 THEN 'leave'
                      WHEN pick < 96 THEN 'link_view'
                      WHEN pick < 97 THEN 'error'
                      WHEN pick < 98 THEN 'dead_click'
                      ELSE 'ad_view' END AS kind
             FROM t
         )
         SELECT $1, lower(lpad(hex(i), 32, '0')), kind, epoch_ms(ts_ms), epoch_ms(ts_ms + 400),
             j, md5(s::VARCHAR), 'v' || (s // 3),
             ['/', '/category/' || (rs % 20), '/product/' || ((r >> 16) % 5000), '/cart',
              '/checkout', '/thanks'][st + 1] AS p,
             'https://shop.example' || p, NULL, 'Shop', CASE WHEN kind = 'pageview' THEN 'navigate' END,
             CASE WHEN st = 4 AND kind IN ('screen', 'pageview') THEN ['shipping', 'payment'][((r >> 24) % 2)::BIGINT + 1] END,
             CASE WHEN kind IN ('click', 'dead_click', 'link_view', 'ad_view')
                  THEN ['#add-to-cart', 'a.product-link', 'button#pay', 'nav > a:nth-of-type(2)',
                        '#search', '.carousel-next', 'footer a.press'][((r >> 40) % 7)::BIGINT + 1] END,
             CASE WHEN kind = 'click' THEN 'Add to cart' END,
             CASE WHEN kind IN ('click', 'link_view') AND (r >> 40) % 7 IN (1, 3, 6)
                  THEN 'https://shop.example/product/' || ((r >> 20) % 5000) END,
             CASE WHEN kind IN ('click', 'dead_click') THEN ((r >> 8) % 1200)::INTEGER END,
             CASE WHEN kind IN ('click', 'dead_click') THEN ((r >> 18) % 800)::INTEGER END,
             CASE WHEN kind IN ('focus', 'blur', 'change') THEN 'checkout' END,
             CASE WHEN kind IN ('focus', 'blur', 'change')
                  THEN ['email', 'name', 'address', 'card'][((r >> 28) % 4)::BIGINT + 1] END,
             CASE WHEN kind IN ('focus', 'blur', 'change') THEN 'text' END,
             CASE WHEN kind IN ('blur', 'leave') THEN ((r >> 8) % 60000)::BIGINT END,
             CASE WHEN kind IN ('blur', 'change') THEN (r >> 50) % 5 = 0 END,
             CASE WHEN kind = 'custom' THEN CASE WHEN st = 5 THEN 'purchase' ELSE 'add_to_cart' END END,
             NULL, NULL, 'Chrome', 'Linux',
             CASE WHEN rs % 100 = 0 THEN 'bot' WHEN rs % 3 = 0 THEN 'mobile' ELSE 'desktop' END,
             CASE WHEN kind = 'pageview' THEN CASE WHEN r % 100 = 3 THEN 404 ELSE 200 END END,
             CASE WHEN kind = 'ad_view' OR (kind = 'click' AND (r >> 40) % 7 = 5)
                  THEN 'spring:' || ['A', 'B'][((rs >> 30) % 2)::BIGINT + 1] END,
             CASE WHEN kind = 'error' THEN 'TypeError: x is undefined' END,
             CASE WHEN kind = 'error' THEN 'https://shop.example/app.js' END,
             CASE WHEN kind = 'error' THEN ((r >> 8) % 400)::INTEGER END,
             md5_number_lower($1 || chr(0) || md5(s::VARCHAR))
         FROM v"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Select, compact, create_or_migrate};

    #[test]
    fn writes_whole_realistic_sessions() {
        let conn = Connection::open_in_memory().unwrap();
        create_or_migrate(&conn).unwrap();
        let n = generate(&conn, "bench", 20_000).unwrap();
        assert_eq!(n, 20_000);
        compact(&conn, Select::All).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM events"), 20_000);
        assert_eq!(
            count("SELECT count(DISTINCT session_id) FROM events"),
            2_000
        );
        for kind in [
            "pageview",
            "click",
            "screen",
            "blur",
            "custom",
            "link_view",
            "error",
        ] {
            assert!(
                count(&format!(
                    "SELECT count(*) FROM events WHERE kind = '{kind}'"
                )) > 0,
                "{kind}"
            );
        }
        assert!(count("SELECT count(*) FROM events WHERE path = '/thanks'") > 0);
        assert!(count("SELECT count(*) FROM events WHERE name = 'purchase'") > 0);
        // Ties in time exist, and times never go back within a session.
        assert!(
            count(
                "SELECT count(*) FROM (SELECT session_id, ts FROM events
                 GROUP BY ALL HAVING count(*) > 1)"
            ) > 0
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM (SELECT ts, lag(ts) OVER (PARTITION BY session_id ORDER BY seq) AS prev
                 FROM events) WHERE ts < prev"
            ),
            0
        );
    }
}
