//! The events table: the one schema shared by the collector (which appends to it)
//! and the audits (which read it). Append-only: sessions, funnels and exits are
//! derived at analysis time, never by UPDATE.

use std::fmt::Write as _;

/// Creates the events table if it does not exist. Column order is the order the
/// collector's Appender writes in.
pub const CREATE_EVENTS: &str = "
CREATE TABLE IF NOT EXISTS events (
    site        VARCHAR   NOT NULL, -- data-site of the snippet
    event_id    VARCHAR   NOT NULL, -- random 128-bit id from the tracker (32 hex)
    kind        VARCHAR   NOT NULL, -- protocol::kind
    ts          TIMESTAMP NOT NULL, -- event time, UTC (client clock, corrected when skewed by > 60 s)
    received_at TIMESTAMP NOT NULL, -- when the collector received the batch, UTC
    seq         INTEGER   NOT NULL, -- per-page sequence number: orders equal times
    session_id  VARCHAR   NOT NULL, -- tracker session (sessionStorage, 30 min idle)
    visitor_id  VARCHAR   NOT NULL, -- hash(daily salt, site, ip, user agent); never the ip
    path        VARCHAR   NOT NULL, -- page path, emails and tokens redacted
    url         VARCHAR,            -- page url, query reduced to utm_*/gclid/fbclid/msclkid/ref
    referrer    VARCHAR,            -- document.referrer (page views), same scrubbing
    title       VARCHAR,
    nav         VARCHAR,            -- navigate | reload | back_forward | push | replace | pop
    screen      VARCHAR,            -- data-ct-screen shown at the time
    selector    VARCHAR,            -- clicked element
    text        VARCHAR,            -- clicked element text, <= 64 chars
    href        VARCHAR,            -- clicked link target, scrubbed
    x           INTEGER,
    y           INTEGER,
    form        VARCHAR,
    field       VARCHAR,
    field_type  VARCHAR,
    duration_ms BIGINT,             -- focus time (blur) or time on page (leave)
    empty       BOOLEAN,            -- field left blank (blur/change); never the value
    name        VARCHAR,            -- custom event name
    props       VARCHAR,            -- custom event properties, JSON
    user_id     VARCHAR,            -- identify()
    browser     VARCHAR,
    os          VARCHAR,
    device      VARCHAR,            -- desktop | mobile | tablet | bot | other
    status      INTEGER,            -- HTTP status of the document (page views)
    ad          VARCHAR,            -- CAMPAIGN:VARIANT (ad views, clicks inside an ad)
    message     VARCHAR,            -- JavaScript error message (errors), <= 256 chars
    source      VARCHAR,            -- script URL of an error, scrubbed
    line        INTEGER             -- line of an error
);
";

/// Columns added after the first release, with their types: a file written by an
/// older collector gets them on open (see [`migrate_events`]).
const ADDED_COLUMNS: [(&str, &str); 5] = [
    ("status", "INTEGER"),
    ("ad", "VARCHAR"),
    ("message", "VARCHAR"),
    ("source", "VARCHAR"),
    ("line", "INTEGER"),
];

/// Brings an events table created by an older collector up to [`CREATE_EVENTS`].
pub fn migrate_events() -> String {
    ADDED_COLUMNS
        .iter()
        .fold(String::new(), |mut sql, (name, ty)| {
            let _ = write!(
                sql,
                "ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {ty};"
            );
            sql
        })
}

/// Number of columns in [`CREATE_EVENTS`].
pub const EVENT_COLUMNS: usize = 35;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_table_is_migrated_to_the_current_columns() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let old = CREATE_EVENTS
            .split("    status")
            .next()
            .unwrap()
            .trim_end()
            .trim_end_matches(',')
            .to_string()
            + "\n);";
        conn.execute_batch(&old).unwrap();
        conn.execute_batch(&migrate_events()).unwrap();
        conn.execute_batch(&migrate_events()).unwrap(); // idempotent
        let n: usize = conn
            .query_row(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, EVENT_COLUMNS);
        let fresh = duckdb::Connection::open_in_memory().unwrap();
        fresh.execute_batch(CREATE_EVENTS).unwrap();
        let n: usize = fresh
            .query_row(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, EVENT_COLUMNS);
    }
}
