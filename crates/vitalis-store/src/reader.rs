//! [`HistoryReader`]: what an HTTP API needs from a history store, without
//! a database driver.

use vitalis_core::BoxFuture;

use crate::model::{HistoryPage, HistoryQuery, Rollup, RollupQuery, UptimeQuery, UptimeReport};

/// Why a query could not be answered. Bad input is the caller's to reject
/// before asking; these are failures of the store itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The store is not reachable (not connected yet, or down); the text
    /// says why.
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
    /// The query failed in the store.
    #[error("the history query failed: {0}")]
    Failed(String),
}

/// Read access to recorded history: results, transitions, rollups and
/// uptime. [`History`](crate::History) implements it; `vitalis-server`
/// serves it as `/health/history`, `/health/uptime` and `/health/rollups`.
///
/// ```
/// use vitalis_core::BoxFuture;
/// use vitalis_store::{HistoryPage, HistoryQuery, HistoryReader, QueryError, Rollup, RollupQuery,
///     UptimeQuery, UptimeReport};
///
/// /// A store that has recorded nothing (e.g. for a test of an API).
/// struct Empty;
///
/// impl HistoryReader for Empty {
///     fn history(&self, _q: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, QueryError>> {
///         Box::pin(async { Ok(HistoryPage { results: vec![], transitions: vec![] }) })
///     }
///     fn uptime(&self, _q: UptimeQuery) -> BoxFuture<'_, Result<UptimeReport, QueryError>> {
///         Box::pin(async { Err(QueryError::Unavailable("nothing recorded".into())) })
///     }
///     fn rollups(&self, _q: RollupQuery) -> BoxFuture<'_, Result<Vec<Rollup>, QueryError>> {
///         Box::pin(async { Ok(vec![]) })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    note = "vitalis_store::History implements `HistoryReader` when a backend feature (`sqlite`, `postgres`) is on"
)]
pub trait HistoryReader: Send + Sync + 'static {
    /// Results and transitions, newest first.
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, QueryError>>;

    /// Availability per component, group and of the system over a window.
    fn uptime(&self, query: UptimeQuery) -> BoxFuture<'_, Result<UptimeReport, QueryError>>;

    /// Per-minute or per-hour rollups of a component's checks, newest first.
    fn rollups(&self, query: RollupQuery) -> BoxFuture<'_, Result<Vec<Rollup>, QueryError>>;
}
