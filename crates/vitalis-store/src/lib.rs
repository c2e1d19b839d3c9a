//! Vitalis history: every result, every transition, per-minute and
//! per-hour rollups and instance sessions, in SQLite or PostgreSQL.
//!
//! The engine's observer queues each completed run and an event consumer
//! queues each transition of the engine's log; a background writer stores
//! them in batches, one transaction each, off the check path. When the
//! store fails, Vitalis keeps serving: rows wait in a bounded buffer, the
//! writer retries with backoff and catches up, and the `vitalis.store`
//! component reports the failure. Retention is applied in the background.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome};
//! use vitalis_store::{History, HistoryQuery, UptimeQuery};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("vitalis.db").display());
//! let history = History::builder(url).open().await?;
//! let engine = Engine::builder()
//!     .observer(history.observer())
//!     .component(history.component()) // `vitalis.store`
//!     .component(Component::new("db").check(
//!         CheckSpec::live("ping", check_fn(|_| async { Outcome::pass("pong") }))
//!             .interval(Duration::from_millis(50)),
//!     ))
//!     .start()?;
//! history.attach(&engine);
//! engine.refresh(|_| true, Duration::from_secs(1)).await;
//! history.flush().await?;
//! let page = history.query(&HistoryQuery::component("db")).await?;
//! assert!(!page.results.is_empty());
//! let uptime = history.uptime(UptimeQuery::last(Duration::from_secs(3600))).await?;
//! assert_eq!(uptime.sessions.len(), 1);
//! engine.shutdown();
//! history.close().await;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! `sqlite` and `postgres` (both on by default) each compile a backend.
//! With both off the crate holds only the query and answer types
//! ([`model`]), the [`HistoryReader`] trait and the pure computations
//! ([`uptime`], [`rollup`]) — what an HTTP API over a store needs — and no
//! database driver.
//!
//! See `docs/history.md` for the schema, retention, rollups, uptime and
//! outage behaviour.

pub mod model;
mod reader;
pub mod rollup;
pub mod uptime;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod store;

pub use model::{
    Availability, ChangeKind, DEFAULT_LIMIT, Granularity, HistoryPage, HistoryQuery, MAX_LIMIT,
    ResultEntry, Rollup, RollupQuery, SessionEntry, SubjectKind, TransitionEntry, UptimeQuery,
    UptimeReport,
};
pub use reader::{HistoryReader, QueryError};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::{
    History, HistoryBuilder, PruneReport, STORE_COMPONENT, StoreError, StoreHealth, StoreState,
    StoreStats,
};
