//! Test fixtures: a real DuckDB file in a temp dir, and hand-made events.
//!
//! Tests build events with [`ev`] and its setters, write them with [`Db::insert`]
//! (plain SQL INSERTs into the table [`crate::schema::CREATE_EVENTS`] creates, like
//! the collector's), and read through [`Db::conn`], a read-only connection opened by
//! [`crate::open_read_only`], the CLI's path.

use std::path::{Path, PathBuf};

use duckdb::{Connection, params};

use crate::schema::CREATE_EVENTS;

/// A temp DuckDB file with an empty events table.
pub(crate) struct Db {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Db {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.duckdb");
        Connection::open(&path)
            .unwrap()
            .execute_batch(CREATE_EVENTS)
            .unwrap();
        Db { path, _dir: dir }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` through a read-write connection that is closed afterwards.
    pub(crate) fn insert(&self, events: &[Ev]) {
        let conn = Connection::open(self.path()).unwrap();
        let mut stmt = conn
            .prepare(
                "INSERT INTO events (site, event_id, kind, ts, received_at, seq, session_id, \
                 visitor_id, path, nav, screen, selector, form, name) \
                 VALUES (?, ?, ?, epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }
}

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
}
