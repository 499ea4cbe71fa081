//! The clicktrail events store.
//!
//! # Layout
//!
//! - [`schema`]: the one column table ([`schema::COLUMNS`]) from which the DDL, the
//!   migrations, the writer's column order and the readers' columns come; the tables
//!   (`events_recent`, `events_sorted`) and the views (`events`, `events_overlap`,
//!   `events_pending`); opening a file of an older collector.
//! - [`bulk`]: large writes through DuckDB's own Arrow scan (`clicktrail import`):
//!   a file of new sessions goes straight into sorted blocks.
//! - [`compact`]: moves idle sessions from the append table into sorted blocks, each
//!   event once.
//! - [`synth`]: realistic synthetic shop traffic written straight into the store
//!   (benches at 10 and 100 million events).

pub mod bulk;
pub mod compact;
pub mod schema;
pub mod synth;

pub use compact::{Compacted, Select, compact};

use duckdb::Connection;

/// Runs `f` in one transaction of `conn`: committed when it succeeds, rolled back
/// when it fails.
pub fn transaction<T, E: From<duckdb::Error>>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    match f() {
        Ok(value) => {
            conn.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
/// DuckDB's memory limit for an events file: its cache of what it read, and what
/// a query holds, before it spills to disk. DuckDB's default is most of the
/// machine's memory; the audits stream, so this bound keeps the collector and a
/// whole report within a few GB on a file of any size.
pub const MEMORY_LIMIT: &str = "1536MB";

/// Applies [`MEMORY_LIMIT`] to the database `conn` belongs to.
pub fn limit_memory(conn: &duckdb::Connection) -> Result<(), duckdb::Error> {
    conn.execute_batch(&format!("SET memory_limit = '{MEMORY_LIMIT}'"))
}

pub use schema::{COLUMNS, Column, EVENT_COLUMNS, create_or_migrate, session_key};
