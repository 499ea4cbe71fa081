//! The events table: the one schema shared by the collector (which appends to it)
//! and the audits (which read it). Append-only: sessions, funnels and exits are
//! derived at analysis time, never by UPDATE.

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
    device      VARCHAR             -- desktop | mobile | tablet | bot | other
);
";

/// Number of columns in [`CREATE_EVENTS`].
pub const EVENT_COLUMNS: usize = 30;
