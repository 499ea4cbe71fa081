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

/// Deletes the target's events of `site`; returns how many.
pub fn erase(conn: &Connection, site: &str, target: &Target) -> Result<u64, duckdb::Error> {
    let n = match target {
        Target::Visitor(v) => conn.execute(
            "DELETE FROM events WHERE site = ? AND visitor_id = ?",
            params![site, v],
        )?,
        Target::Session(s) => conn.execute(
            "DELETE FROM events WHERE site = ? AND session_id = ?",
            params![site, s],
        )?,
        Target::User { hashed, clear } => conn.execute(
            "DELETE FROM events WHERE site = ?1 AND session_id IN (
                 SELECT DISTINCT session_id FROM events
                 WHERE site = ?1 AND user_id IS NOT NULL AND user_id IN (?2, ?3))",
            params![site, hashed, clear],
        )?,
    };
    Ok(n as u64)
}

/// Deletes every site's events older than its retention; returns how many.
pub fn sweep(conn: &Connection, state: &State, now_ms: i64) -> Result<u64, duckdb::Error> {
    let mut total = 0;
    for site in state.sites.values() {
        if let Some(days) = site.retention_days {
            let cutoff = now_ms - i64::from(days) * 86_400_000;
            total += conn.execute(
                "DELETE FROM events WHERE site = ? AND ts < epoch_ms(?::BIGINT)",
                params![site.id, cutoff],
            )? as u64;
        }
    }
    Ok(total)
}
