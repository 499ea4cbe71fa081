//! Test fixtures: a real DuckDB file in a temp dir, and hand-made events.
//!
//! Tests build events with [`ev`] and its setters, write them with [`Db::insert`]
//! (plain SQL INSERTs into `events_recent`, the table the collector appends to, then
//! a compaction into the sorted layout, like the collector's),//! the collector's), and read through [`Db::conn`], a read-only connection opened by
//! [`crate::open_read_only`], the CLI's path.

use std::path::{Path, PathBuf};

use duckdb::{Connection, params};

/// A temp DuckDB file with an empty events table.
pub(crate) struct Db {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Db {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.duckdb");
        store::create_or_migrate(&Connection::open(&path).unwrap()).unwrap();
        Db { path, _dir: dir }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` and compacts them into the sorted layout, as the collector
    /// does, through a read-write connection that is closed afterwards.
    pub(crate) fn insert(&self, events: &[Ev]) {
        self.append(events);
        let conn = Connection::open(self.path()).unwrap();
        store::compact(&conn, store::Select::All).unwrap();
    }

    /// Appends `events` to `events_recent` only: the state between two compactions.
    pub(crate) fn append(&self, events: &[Ev]) {
        let conn = Connection::open(self.path()).unwrap();
        let mut stmt = conn
            .prepare(
                "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id, \
                 visitor_id, path, nav, screen, selector, form, name, \
                 url, referrer, title, text, href, x, y, field, field_type, duration_ms, empty, \
                 props, status, ad, message, source, line, device, session_key) \
                 VALUES (?, ?, ?, epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ?, ?, ?, ?, ?, ?, ?, ?, ?, \
                         ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .unwrap();
        for e in events {
            stmt.execute(params![
                e.site,
                e.event_id,
                e.kind,
                e.ts,
                e.ts + 500,
                e.seq,
                e.session_id,
                e.visitor_id,
                e.path,
                e.nav,
                e.screen,
                e.selector,
                e.form,
                e.name,
                e.more.url,
                e.more.referrer,
                e.more.title,
                e.more.text,
                e.more.href,
                e.more.x,
                e.more.y,
                e.more.field,
                e.more.field_type,
                e.more.duration_ms,
                e.more.empty,
                e.more.props,
                e.more.status,
                e.more.ad,
                e.more.message,
                e.more.source,
                e.more.line,
                e.more.device,
                store::session_key(&e.site, &e.session_id),
            ])
            .unwrap();
        }
    }

    /// A read-only connection, as the CLI opens it.
    pub(crate) fn conn(&self) -> Connection {
        crate::open_read_only(self.path()).unwrap()
    }
}

/// One event row; unset columns are NULL, `site` is `shop`, `visitor_id` derives from
/// the session, `path` is `/`.
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    site: String,
    event_id: String,
    kind: String,
    ts: i64,
    seq: i32,
    session_id: String,
    visitor_id: String,
    path: String,
    nav: Option<String>,
    screen: Option<String>,
    selector: Option<String>,
    form: Option<String>,
    name: Option<String>,
    /// The columns few tests set, boxed so that fixture arrays stay small on the stack.
    more: Box<More>,
}

/// The less used columns of an [`Ev`].
#[derive(Debug, Clone, Default)]
pub(crate) struct More {
    url: Option<String>,
    referrer: Option<String>,
    title: Option<String>,
    text: Option<String>,
    href: Option<String>,
    x: Option<i32>,
    y: Option<i32>,
    field: Option<String>,
    field_type: Option<String>,
    duration_ms: Option<i64>,
    empty: Option<bool>,
    props: Option<String>,
    status: Option<i32>,
    ad: Option<String>,
    message: Option<String>,
    source: Option<String>,
    line: Option<i32>,
    device: Option<String>,
}

/// An event `id` of `kind` in `session` at `ts` (UTC epoch ms) with sequence number `seq`.
pub(crate) fn ev(id: &str, session: &str, ts: i64, seq: i32, kind: &str) -> Ev {
    Ev {
        site: "shop".into(),
        event_id: id.into(),
        kind: kind.into(),
        ts,
        seq,
        session_id: session.into(),
        visitor_id: format!("visitor-of-{session}"),
        path: "/".into(),
        nav: None,
        screen: None,
        selector: None,
        form: None,
        name: None,
        more: Box::default(),
    }
}

#[allow(dead_code, reason = "a setter for every column; each test uses a few")]
impl Ev {
    pub(crate) fn site(mut self, site: &str) -> Self {
        self.site = site.into();
        self
    }
    pub(crate) fn visitor(mut self, visitor: &str) -> Self {
        self.visitor_id = visitor.into();
        self
    }
    pub(crate) fn path(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }
    pub(crate) fn nav(mut self, nav: &str) -> Self {
        self.nav = Some(nav.into());
        self
    }
    pub(crate) fn screen(mut self, screen: &str) -> Self {
        self.screen = Some(screen.into());
        self
    }
    pub(crate) fn selector(mut self, selector: &str) -> Self {
        self.selector = Some(selector.into());
        self
    }
    pub(crate) fn form(mut self, form: &str) -> Self {
        self.form = Some(form.into());
        self
    }
    pub(crate) fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    pub(crate) fn url(mut self, url: &str) -> Self {
        self.more.url = Some(url.into());
        self
    }
    pub(crate) fn referrer(mut self, referrer: &str) -> Self {
        self.more.referrer = Some(referrer.into());
        self
    }
    pub(crate) fn title(mut self, title: &str) -> Self {
        self.more.title = Some(title.into());
        self
    }
    pub(crate) fn text(mut self, text: &str) -> Self {
        self.more.text = Some(text.into());
        self
    }
    pub(crate) fn href(mut self, href: &str) -> Self {
        self.more.href = Some(href.into());
        self
    }
    /// Click or dead-click coordinates (`x`, `y`).
    pub(crate) fn xy(mut self, x: i32, y: i32) -> Self {
        self.more.x = Some(x);
        self.more.y = Some(y);
        self
    }
    pub(crate) fn field(mut self, field: &str) -> Self {
        self.more.field = Some(field.into());
        self
    }
    pub(crate) fn field_type(mut self, field_type: &str) -> Self {
        self.more.field_type = Some(field_type.into());
        self
    }
    pub(crate) fn duration_ms(mut self, ms: i64) -> Self {
        self.more.duration_ms = Some(ms);
        self
    }
    pub(crate) fn empty(mut self, empty: bool) -> Self {
        self.more.empty = Some(empty);
        self
    }
    /// Custom event properties, as the JSON text the collector stores.
    pub(crate) fn props(mut self, json: &str) -> Self {
        self.more.props = Some(json.into());
        self
    }
    pub(crate) fn status(mut self, status: i32) -> Self {
        self.more.status = Some(status);
        self
    }
    pub(crate) fn ad(mut self, ad: &str) -> Self {
        self.more.ad = Some(ad.into());
        self
    }
    pub(crate) fn message(mut self, message: &str) -> Self {
        self.more.message = Some(message.into());
        self
    }
    pub(crate) fn source(mut self, source: &str) -> Self {
        self.more.source = Some(source.into());
        self
    }
    pub(crate) fn line(mut self, line: i32) -> Self {
        self.more.line = Some(line);
        self
    }
    /// The device class the collector derives from the user agent: `desktop`,
    /// `mobile`, `tablet`, `bot` or `other`.
    pub(crate) fn device(mut self, device: &str) -> Self {
        self.more.device = Some(device.into());
        self
    }
}

/// A page view of `path` served with status 200.
pub(crate) fn page_200(id: &str, session: &str, ts: i64, path: &str) -> Ev {
    ev(id, session, ts, 1, "pageview").path(path).status(200)
}

/// A link (`selector`, `href`) seen in the viewport on `path`.
pub(crate) fn link_seen(
    id: &str,
    session: &str,
    ts: i64,
    path: &str,
    selector: &str,
    href: &str,
) -> Ev {
    ev(id, session, ts, 2, "link_view")
        .path(path)
        .selector(selector)
        .href(href)
}

/// Compares `actual` with the checked-in snapshot `analyzer/snapshots/{name}`.
///
/// A difference (or a missing snapshot) fails the test and writes the new text next
/// to it as `{name}.new`, to review with `diff`. `CLICKTRAIL_UPDATE_SNAPSHOTS=1`
/// accepts the new text instead.
pub(crate) fn assert_snapshot(name: &str, actual: &str) {
    // The package folder at run time (`cargo test` sets it), not the one this test
    // binary was built from: checkouts that share a target dir reuse builds.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::env::current_dir().unwrap(), PathBuf::from)
        .join("snapshots");
    let path = dir.join(name);
    let fresh = dir.join(format!("{name}.new"));
    if std::env::var_os("CLICKTRAIL_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, actual).unwrap();
        let _ = std::fs::remove_file(&fresh);
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        let _ = std::fs::remove_file(&fresh);
        return;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&fresh, actual).unwrap();
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "snapshot {name} differs from line {} on: `{}` became `{}`; review `diff {} {}`, \
         then accept with CLICKTRAIL_UPDATE_SNAPSHOTS=1",
        line + 1,
        expected.lines().nth(line).unwrap_or("<end>"),
        actual.lines().nth(line).unwrap_or("<end>"),
        path.display(),
        fresh.display(),
    );
}

/// `n` session ids of site `shop` (`m0`, `m1`, …) whose keys fall in both halves
/// of the key space ([`crate::load::Half`]): for tests of passes run per half.
pub(crate) fn sessions_in_both_halves(n: usize) -> Vec<String> {
    let sessions: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let lower = sessions
        .iter()
        .filter(|s| store::session_key("shop", s) < 1 << 63)
        .count();
    assert!(lower > 0 && lower < n, "both halves hold sessions");
    sessions
}
