//! Retention and erasure: the two ways events leave the store.
//!
//! - A site's `retention_days`: the collector deletes its events older than that,
//!   at start and every hour ([`sweep`], on the writer).
//! - An erasure request (GDPR art. 17): every event of one visitor, one session, or
//!   one identified user (all the sessions in which `identify` named them) of one
//!   site, from `POST /api/erase` or `clicktrail erase` ([`erase`]). A user id is
//!   looked up both as stored by default (the keyed hash) and in clear (sites that
//!   opted in to clear ids).

use duckdb::{Connection, params};
use serde::Deserialize;

use crate::accounts::State;

/// Whose events to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Visitor(String),
    Session(String),
    /// The user id as it may be stored: its keyed hash, and as sent.
    User {
        hashed: String,
        clear: String,
    },
}

/// The JSON of `POST /api/erase`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    pub site: String,
    #[serde(default)]
    pub visitor_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl EraseRequest {
    /// The one target named, or what is wrong.
    pub fn target(&self, uid_key: &[u8; 32]) -> Result<Target, String> {
        match (&self.visitor_id, &self.session_id, &self.user_id) {
            (Some(v), None, None) if !v.is_empty() => Ok(Target::Visitor(v.clone())),
            (None, Some(s), None) if !s.is_empty() => Ok(Target::Session(s.clone())),
            (None, None, Some(u)) if !u.is_empty() => Ok(Target::User {
                hashed: crate::enrich::user_hash(uid_key, &self.site, u),
                clear: u.clone(),
            }),
            _ => Err("name exactly one of visitor_id, session_id, user_id (not empty)".to_owned()),
        }
    }
}

/// The two tables that hold events (see [`store::schema`]).
const EVENT_TABLES: [&str; 2] = ["events_recent", "events_sorted"];

/// Deletes the rows matching `condition` from both event tables; returns how many.
fn delete_events(
    conn: &Connection,
    condition: &str,
    params: &[&dyn duckdb::ToSql],
) -> Result<u64, duckdb::Error> {
    let mut n = 0;
    for table in EVENT_TABLES {
        n += conn.execute(&format!("DELETE FROM {table} WHERE {condition}"), params)? as u64;
    }
    Ok(n)
}

/// Deletes the target's events of `site`; returns how many.
pub fn erase(conn: &Connection, site: &str, target: &Target) -> Result<u64, duckdb::Error> {
    match target {
        Target::Visitor(v) => delete_events(conn, "site = ? AND visitor_id = ?", params![site, v]),
        Target::Session(s) => delete_events(conn, "site = ? AND session_id = ?", params![site, s]),
        Target::User { hashed, clear } => {
            // Every session the id was named in, found before any row goes.
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE erase_sessions AS
                 SELECT DISTINCT session_id FROM events
                 WHERE site = ?1 AND user_id IS NOT NULL AND user_id IN (?2, ?3)",
                params![site, hashed, clear],
            )?;
            let n = delete_events(
                conn,
                "site = ? AND session_id IN (SELECT session_id FROM erase_sessions)",
                params![site],
            );
            conn.execute_batch("DROP TABLE IF EXISTS erase_sessions")?;
            n
        }
    }
}

/// Deletes every site's events older than its retention; returns how many.
pub fn sweep(conn: &Connection, state: &State, now_ms: i64) -> Result<u64, duckdb::Error> {
    let mut total = 0;
    for site in state.sites.values() {
        if let Some(days) = site.retention_days {
            let cutoff = now_ms - i64::from(days) * 86_400_000;
            total += delete_events(
                conn,
                "site = ? AND ts < epoch_ms(?::BIGINT)",
                params![site.id, cutoff],
            )?;
        }
    }
    Ok(total)
}
