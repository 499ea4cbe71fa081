//! The clicktrail events store.
//!
//! # Layout
//!
//! - [`schema`]: the one column table ([`schema::COLUMNS`]) from which the DDL, the
//!   migrations, the writer's column order and the readers' columns come; the tables
//!   (`events_recent`, `events_sorted`) and the views (`events`, `events_overlap`,
//!   `events_pending`); opening a file of an older collector.
//! - [`compact`]: moves idle sessions from the append table into sorted blocks, each
//!   event once.

pub mod compact;
pub mod schema;

pub use compact::{Compacted, Select, compact};
pub use schema::{COLUMNS, Column, EVENT_COLUMNS, create_or_migrate, session_key};
