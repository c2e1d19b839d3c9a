//! The two backends behind one type: connecting, migrating, writing batches,
//! rolling up, pruning and the queries.
//!
//! The SQL is written once: [`on_pool!`] expands a body for each compiled-in
//! backend, and `QueryBuilder::push_bind` writes each backend's placeholders
//! (`?` or `$n`). Only the schema (the migrations) differs per backend.

use std::str::FromStr;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use sqlx::{Database, Pool, QueryBuilder, Row};
use vitalis_core::{Level, Status};

use crate::model::{
    ChangeKind, Granularity, HistoryQuery, ResultEntry, Rollup, RollupQuery, SubjectKind,
    TransitionEntry, from_millis,
};
use crate::rollup::{Figures, bucket_start};
use crate::store::StoreError;
use crate::store::pending::Batch;
use crate::uptime::Mark;

/// The migrations of each backend, in order: version `i + 1` is `[i]`.
#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_init.sql")];
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_init.sql")];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Rows per INSERT statement (well under both backends' bind limits).
const ROWS_PER_STATEMENT: usize = 400;
/// Rows per DELETE statement when pruning.
const PRUNE_CHUNK: i64 = 10_000;

/// A connected, migrated store.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool, for each backend.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            Db::Postgres($pool) => $body,
        }
    };
}

/// A query builder for the backend of `pool`.
fn sql<DB: Database>(_pool: &Pool<DB>, init: &str) -> QueryBuilder<DB>
where
    DB::Arguments: Default,
{
    QueryBuilder::new(init)
}

/// How a session row is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionWrite {
    pub(crate) epoch: u64,
    pub(crate) started_ms: i64,
    pub(crate) alive_ms: i64,
    pub(crate) stopped_ms: Option<i64>,
}

/// A session row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub(crate) epoch: u64,
    pub(crate) started_ms: i64,
    pub(crate) last_alive_ms: i64,
    pub(crate) stopped_ms: Option<i64>,
}

/// What one prune pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Raw results older than `raw_retention` (and rolled up).
    pub results: u64,
    /// Transitions older than `retention`.
    pub transitions: u64,
    /// Rollups older than `retention`.
    pub rollups: u64,
    /// Sessions that ended before `retention`.
    pub sessions: u64,
}

impl PruneReport {
    /// Every row deleted.
    pub fn total(&self) -> u64 {
        self.results + self.transitions + self.rollups + self.sessions
    }
}

fn status_word(s: &str) -> Result<Status, sqlx::Error> {
    s.parse()
        .map_err(|e: vitalis_core::model::ParseWordError| sqlx::Error::Decode(e.to_string().into()))
}

fn opt_status(s: Option<String>) -> Result<Option<Status>, sqlx::Error> {
    s.as_deref().map(status_word).transpose()
}

fn decode_err(e: String) -> sqlx::Error {
    sqlx::Error::Decode(e.into())
}

impl Db {
    /// Connects to `url` (creating an SQLite file) and migrates the schema.
    pub(crate) async fn connect(
        url: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<Db, StoreError> {
        let lower = url.to_ascii_lowercase();
        let bad = |reason: String| StoreError::BadUrl {
            url: shown.to_string(),
            reason,
        };
        let db_err = |e: sqlx::Error| StoreError::Database {
            url: shown.to_string(),
            detail: describe(&e),
        };
        let db = if lower.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(|e| bad(e.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(timeout.min(Duration::from_secs(2)));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await
                    .map_err(db_err)?;
                Db::Sqlite(pool)
            }
            #[cfg(not(feature = "sqlite"))]
            return Err(bad(
                "this build has no SQLite backend (the `sqlite` feature of vitalis-store)".into(),
            ));
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|e| bad(e.to_string()))?
                    .application_name("vitalis");
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await
                    .map_err(db_err)?;
                Db::Postgres(pool)
            }
            #[cfg(not(feature = "postgres"))]
            return Err(bad(
                "this build has no PostgreSQL backend (the `postgres` feature of vitalis-store)"
                    .into(),
            ));
        } else {
            return Err(bad(
                "use sqlite://path or postgres://user:pass@host/db".into()
            ));
        };
        db.migrate(shown).await?;
        Ok(db)
    }

    /// The backend's name.
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => "postgres",
        }
    }

    fn migrations(&self) -> &'static [&'static str] {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => SQLITE_MIGRATIONS,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => POSTGRES_MIGRATIONS,
        }
    }

    /// Applies the migrations newer than the stored schema version, each in
    /// its own transaction (on PostgreSQL under an advisory lock, so that
    /// instances starting together migrate once).
    async fn migrate(&self, shown: &str) -> Result<(), StoreError> {
        let err = |e: sqlx::Error| StoreError::Database {
            url: shown.to_string(),
            detail: format!("migrating the schema: {}", describe(&e)),
        };
        let migrations = self.migrations();
        let known = migrations.len() as i64;
        debug_assert_eq!(known, SCHEMA_VERSION);
        let found: i64 = on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(err)?;
            #[cfg(feature = "postgres")]
            if matches!(self, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock(7335020231)")
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, applied_ms BIGINT NOT NULL)",
            )
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            let current = current.unwrap_or(0);
            if current < known {
                for (i, m) in migrations.iter().enumerate().skip(current as usize) {
                    sqlx::raw_sql(*m).execute(&mut *tx).await.map_err(err)?;
                    sql(pool, "INSERT INTO schema_version (version, applied_ms) VALUES (")
                        .push_bind(i as i64 + 1)
                        .push(", ")
                        .push_bind(jiff::Timestamp::now().as_millisecond())
                        .push(")")
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    tracing::info!("history store {shown}: schema migrated to version {}", i + 1);
                }
            }
            tx.commit().await.map_err(err)?;
            current
        });
        if found > known {
            return Err(StoreError::NewerSchema {
                url: shown.to_string(),
                found,
                known,
            });
        }
        Ok(())
    }

    /// Writes a batch (and the session's sign of life) in one transaction.
    /// Retried batches are idempotent: rows already stored are skipped.
    pub(crate) async fn write(
        &self,
        instance: &str,
        epoch: u64,
        batch: &Batch,
        session: Option<SessionWrite>,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.transitions.chunks(ROWS_PER_STATEMENT) {
                let mut q = sql(pool, "INSERT INTO transitions (instance, epoch, seq, part, time_ms, subject, subject_id, check_name, change, from_status, to_status, output, error) ");
                q.push_values(chunk, |mut b, t| {
                    b.push_bind(instance.to_string())
                        .push_bind(t.epoch as i64)
                        .push_bind(t.seq as i64)
                        .push_bind(i64::from(t.part))
                        .push_bind(t.time_ms)
                        .push_bind(t.subject.as_str())
                        .push_bind(t.subject_id.as_deref().map(str::to_string))
                        .push_bind(t.check.as_deref().map(str::to_string))
                        .push_bind(t.change.as_str())
                        .push_bind(t.from.map(Status::as_str))
                        .push_bind(t.to.map(Status::as_str))
                        .push_bind(t.output.clone())
                        .push_bind(t.error.clone());
                });
                q.push(" ON CONFLICT (instance, epoch, seq, part) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            for chunk in batch.results.chunks(ROWS_PER_STATEMENT) {
                let mut q = sql(pool, "INSERT INTO results (instance, epoch, rseq, time_ms, component, check_name, kind, level, status, duration_ms, observed_value, observed_unit, output, error) ");
                q.push_values(chunk, |mut b, r| {
                    let res = &r.result;
                    b.push_bind(instance.to_string())
                        .push_bind(epoch as i64)
                        .push_bind(r.rseq as i64)
                        .push_bind(r.time_ms())
                        .push_bind(r.component.to_string())
                        .push_bind(r.check.to_string())
                        .push_bind(r.kind.to_string())
                        .push_bind(r.level.as_str())
                        .push_bind(res.status.as_str())
                        .push_bind(res.duration.as_nanos() as f64 / 1_000_000.0)
                        .push_bind(res.observed_value)
                        .push_bind(res.observed_unit.clone())
                        .push_bind(res.output.clone())
                        .push_bind(res.error.clone());
                });
                q.push(" ON CONFLICT (instance, epoch, rseq) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            if let Some(s) = session {
                let mut q = sql(pool, "INSERT INTO sessions (instance, epoch, started_ms, last_alive_ms, stopped_ms) VALUES (");
                q.push_bind(instance.to_string())
                    .push(", ")
                    .push_bind(s.epoch as i64)
                    .push(", ")
                    .push_bind(s.started_ms)
                    .push(", ")
                    .push_bind(s.alive_ms)
                    .push(", ")
                    .push_bind(s.stopped_ms)
                    .push(") ON CONFLICT (instance, epoch) DO UPDATE SET last_alive_ms = excluded.last_alive_ms, stopped_ms = excluded.stopped_ms");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    // === rollups ===

    /// Where rolling up at granularity `g` stands: the end of the last
    /// bucket done.
    pub(crate) async fn rollup_progress(
        &self,
        instance: &str,
        g: Granularity,
    ) -> Result<Option<i64>, sqlx::Error> {
        on_pool!(self, pool => {
            let mut q = sql(pool, "SELECT done_until_ms FROM rollup_progress WHERE instance = ");
            q.push_bind(instance.to_string()).push(" AND bucket_secs = ").push_bind(g.secs());
            let row = q.build().fetch_optional(pool).await?;
            row.map(|r| r.try_get::<i64, _>(0)).transpose()
        })
    }

    /// The time of this instance's oldest stored result.
    pub(crate) async fn oldest_result(&self, instance: &str) -> Result<Option<i64>, sqlx::Error> {
        on_pool!(self, pool => {
            let mut q = sql(pool, "SELECT MIN(time_ms) FROM results WHERE instance = ");
            q.push_bind(instance.to_string());
            let row = q.build().fetch_one(pool).await?;
            row.try_get::<Option<i64>, _>(0)
        })
    }

    /// Computes the rollups of this instance's results in `[from_ms,
    /// to_ms)` (whole buckets of `g`), one check at a time.
    pub(crate) async fn compute_rollups(
        &self,
        instance: &str,
        g: Granularity,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Rollup>, sqlx::Error> {
        let width = g.millis();
        let mut out = Vec::new();
        // The check being read: (component, check) and its runs per bucket.
        let mut current: Option<(String, String)> = None;
        let mut buckets: std::collections::BTreeMap<i64, Vec<(Status, f64)>> = Default::default();
        let mut finish =
            |key: &(String, String),
             buckets: &mut std::collections::BTreeMap<i64, Vec<(Status, f64)>>| {
                for (start, mut runs) in std::mem::take(buckets) {
                    if let Some(f) = Figures::of(&mut runs) {
                        out.push(rollup_of(instance, g, start, key, &f));
                    }
                }
            };
        on_pool!(self, pool => {
            let mut q = sql(pool, "SELECT component, check_name, status, duration_ms, time_ms FROM results WHERE instance = ");
            q.push_bind(instance.to_string())
                .push(" AND time_ms >= ")
                .push_bind(from_ms)
                .push(" AND time_ms < ")
                .push_bind(to_ms)
                .push(" ORDER BY component, check_name");
            let mut rows = q.build().fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let component: String = row.try_get(0)?;
                let check: String = row.try_get(1)?;
                let status = status_word(&row.try_get::<String, _>(2)?)?;
                let duration: f64 = row.try_get(3)?;
                let time: i64 = row.try_get(4)?;
                if current.as_ref().is_none_or(|(c, k)| *c != component || *k != check) {
                    if let Some(key) = current.take() {
                        finish(&key, &mut buckets);
                    }
                    current = Some((component, check));
                }
                buckets.entry(bucket_start(time, width)).or_default().push((status, duration));
            }
        });
        if let Some(key) = current.take() {
            finish(&key, &mut buckets);
        }
        Ok(out)
    }

    /// Stores rollups (replacing any of the same bucket) and the progress.
    pub(crate) async fn write_rollups(
        &self,
        instance: &str,
        g: Granularity,
        rollups: &[Rollup],
        done_until_ms: i64,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in rollups.chunks(ROWS_PER_STATEMENT) {
                let mut q = sql(pool, "INSERT INTO rollups (instance, bucket_secs, start_ms, component, check_name, pass, warn, fail, unknown, latency_min_ms, latency_avg_ms, latency_max_ms, latency_p95_ms) ");
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(instance.to_string())
                        .push_bind(g.secs())
                        .push_bind(r.start.as_millisecond())
                        .push_bind(r.component.clone())
                        .push_bind(r.check.clone())
                        .push_bind(r.pass as i64)
                        .push_bind(r.warn as i64)
                        .push_bind(r.fail as i64)
                        .push_bind(r.unknown as i64)
                        .push_bind(r.latency_min_ms)
                        .push_bind(r.latency_avg_ms)
                        .push_bind(r.latency_max_ms)
                        .push_bind(r.latency_p95_ms);
                });
                q.push(" ON CONFLICT (instance, bucket_secs, component, check_name, start_ms) DO UPDATE SET pass = excluded.pass, warn = excluded.warn, fail = excluded.fail, unknown = excluded.unknown, latency_min_ms = excluded.latency_min_ms, latency_avg_ms = excluded.latency_avg_ms, latency_max_ms = excluded.latency_max_ms, latency_p95_ms = excluded.latency_p95_ms");
                q.build().execute(&mut *tx).await?;
            }
            let mut q = sql(pool, "INSERT INTO rollup_progress (instance, bucket_secs, done_until_ms) VALUES (");
            q.push_bind(instance.to_string())
                .push(", ")
                .push_bind(g.secs())
                .push(", ")
                .push_bind(done_until_ms)
                .push(") ON CONFLICT (instance, bucket_secs) DO UPDATE SET done_until_ms = excluded.done_until_ms");
            q.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    // === pruning ===

    /// Deletes results before `raw_before_ms`, transitions and rollups
    /// before `before_ms`, and sessions that ended before it.
    pub(crate) async fn prune(
        &self,
        raw_before_ms: Option<i64>,
        before_ms: i64,
    ) -> Result<PruneReport, sqlx::Error> {
        let mut report = PruneReport::default();
        on_pool!(self, pool => {
            if let Some(raw) = raw_before_ms {
                loop {
                    let mut q = sql(pool, "DELETE FROM results WHERE id IN (SELECT id FROM results WHERE time_ms < ");
                    q.push_bind(raw).push(" LIMIT ").push_bind(PRUNE_CHUNK).push(")");
                    let n = q.build().execute(pool).await?.rows_affected();
                    report.results += n;
                    if n < PRUNE_CHUNK as u64 {
                        break;
                    }
                }
            }
            loop {
                let mut q = sql(pool, "DELETE FROM transitions WHERE id IN (SELECT id FROM transitions WHERE time_ms < ");
                q.push_bind(before_ms).push(" LIMIT ").push_bind(PRUNE_CHUNK).push(")");
                let n = q.build().execute(pool).await?.rows_affected();
                report.transitions += n;
                if n < PRUNE_CHUNK as u64 {
                    break;
                }
            }
            let mut q = sql(pool, "DELETE FROM rollups WHERE start_ms < ");
            q.push_bind(before_ms);
            report.rollups = q.build().execute(pool).await?.rows_affected();
            let mut q = sql(pool, "DELETE FROM sessions WHERE COALESCE(stopped_ms, last_alive_ms) < ");
            q.push_bind(before_ms);
            report.sessions = q.build().execute(pool).await?.rows_affected();
        });
        Ok(report)
    }

    // === queries ===

    /// Results and transitions, newest first.
    pub(crate) async fn history(
        &self,
        q: &HistoryQuery,
    ) -> Result<(Vec<ResultEntry>, Vec<TransitionEntry>), sqlx::Error> {
        let since = q.since.map(|t| t.as_millisecond());
        let until = q.until.map(|t| t.as_millisecond());
        let limit = q.limit.clamp(1, crate::model::MAX_LIMIT) as i64;
        on_pool!(self, pool => {
            let mut b = sql(pool, "SELECT instance, epoch, time_ms, component, check_name, kind, level, status, duration_ms, observed_value, observed_unit, output, error FROM results WHERE 1 = 1");
            if let Some(c) = &q.component {
                b.push(" AND component = ").push_bind(c.clone());
            }
            if let Some(k) = &q.check {
                b.push(" AND check_name = ").push_bind(k.clone());
            }
            if let Some(s) = since {
                b.push(" AND time_ms >= ").push_bind(s);
            }
            if let Some(u) = until {
                b.push(" AND time_ms <= ").push_bind(u);
            }
            b.push(" ORDER BY time_ms DESC, id DESC LIMIT ").push_bind(limit);
            let rows = b.build().fetch_all(pool).await?;
            let mut results = Vec::with_capacity(rows.len());
            for row in rows {
                results.push(ResultEntry {
                    instance: row.try_get(0)?,
                    epoch: row.try_get::<i64, _>(1)? as u64,
                    time: from_millis(row.try_get(2)?),
                    component: row.try_get(3)?,
                    check: row.try_get(4)?,
                    kind: row.try_get(5)?,
                    level: row
                        .try_get::<String, _>(6)?
                        .parse::<Level>()
                        .map_err(|e| decode_err(e.to_string()))?,
                    status: status_word(&row.try_get::<String, _>(7)?)?,
                    duration_ms: row.try_get(8)?,
                    observed_value: row.try_get(9)?,
                    observed_unit: row.try_get(10)?,
                    output: row.try_get(11)?,
                    error: row.try_get(12)?,
                });
            }

            let mut b = sql(pool, "SELECT instance, epoch, seq, time_ms, subject, subject_id, check_name, change, from_status, to_status, output, error FROM transitions WHERE 1 = 1");
            if let Some(c) = &q.component {
                b.push(" AND subject IN ('check', 'component') AND subject_id = ").push_bind(c.clone());
            }
            if let Some(k) = &q.check {
                b.push(" AND subject = 'check' AND check_name = ").push_bind(k.clone());
            }
            if let Some(s) = since {
                b.push(" AND time_ms >= ").push_bind(s);
            }
            if let Some(u) = until {
                b.push(" AND time_ms <= ").push_bind(u);
            }
            b.push(" ORDER BY time_ms DESC, seq DESC, part DESC LIMIT ").push_bind(limit);
            let rows = b.build().fetch_all(pool).await?;
            let mut transitions = Vec::with_capacity(rows.len());
            for row in rows {
                let subject: SubjectKind = row.try_get::<String, _>(4)?.parse().map_err(decode_err)?;
                let id: Option<String> = row.try_get(5)?;
                let (component, group) = match subject {
                    SubjectKind::Group => (None, id),
                    _ => (id, None),
                };
                transitions.push(TransitionEntry {
                    instance: row.try_get(0)?,
                    epoch: row.try_get::<i64, _>(1)? as u64,
                    seq: row.try_get::<i64, _>(2)? as u64,
                    time: from_millis(row.try_get(3)?),
                    subject,
                    component,
                    group,
                    check: row.try_get(6)?,
                    change: row.try_get::<String, _>(7)?.parse().map_err(decode_err)?,
                    from: opt_status(row.try_get(8)?)?,
                    to: opt_status(row.try_get(9)?)?,
                    output: row.try_get(10)?,
                    error: row.try_get(11)?,
                });
            }
            Ok((results, transitions))
        })
    }

    /// This instance's sessions overlapping `[since_ms, until_ms]`.
    pub(crate) async fn sessions(
        &self,
        instance: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<SessionRow>, sqlx::Error> {
        on_pool!(self, pool => {
            let mut q = sql(pool, "SELECT epoch, started_ms, last_alive_ms, stopped_ms FROM sessions WHERE instance = ");
            q.push_bind(instance.to_string())
                .push(" AND started_ms <= ")
                .push_bind(until_ms)
                .push(" AND COALESCE(stopped_ms, last_alive_ms) >= ")
                .push_bind(since_ms)
                .push(" ORDER BY started_ms");
            let rows = q.build().fetch_all(pool).await?;
            rows.into_iter()
                .map(|r| {
                    Ok(SessionRow {
                        epoch: r.try_get::<i64, _>(0)? as u64,
                        started_ms: r.try_get(1)?,
                        last_alive_ms: r.try_get(2)?,
                        stopped_ms: r.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    /// The component, group and system status changes of `epochs` that
    /// uptime needs: each subject's last change at or before `since_ms`
    /// in each run, and every change in `(since_ms, until_ms]`.
    pub(crate) async fn marks(
        &self,
        instance: &str,
        epochs: &[u64],
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Mark>, sqlx::Error> {
        if epochs.is_empty() {
            return Ok(Vec::new());
        }
        let cols =
            "t.epoch, t.seq, t.part, t.time_ms, t.subject, t.subject_id, t.change, t.to_status";
        on_pool!(self, pool => {
            let push_epochs = |q: &mut QueryBuilder<_>| {
                q.push(" AND epoch IN (");
                let mut list = q.separated(", ");
                for e in epochs {
                    list.push_bind(*e as i64);
                }
                list.push_unseparated(")");
            };
            let mut q = sql(pool, &format!("SELECT {cols} FROM transitions t WHERE instance = "));
            q.push_bind(instance.to_string())
                .push(" AND subject <> 'check' AND time_ms > ")
                .push_bind(since_ms)
                .push(" AND time_ms <= ")
                .push_bind(until_ms);
            push_epochs(&mut q);
            let mut rows = q.build().fetch_all(pool).await?;

            let mut q = sql(pool, &format!("SELECT {cols} FROM transitions t JOIN (SELECT epoch, subject, COALESCE(subject_id, '') AS sid, MAX(seq) AS seq FROM transitions WHERE instance = "));
            q.push_bind(instance.to_string())
                .push(" AND subject <> 'check' AND time_ms <= ")
                .push_bind(since_ms);
            push_epochs(&mut q);
            q.push(" GROUP BY epoch, subject, COALESCE(subject_id, '')) l ON t.epoch = l.epoch AND t.subject = l.subject AND COALESCE(t.subject_id, '') = l.sid AND t.seq = l.seq WHERE t.instance = ")
                .push_bind(instance.to_string());
            rows.extend(q.build().fetch_all(pool).await?);

            let mut marks = Vec::with_capacity(rows.len());
            for row in rows {
                let change: ChangeKind = row.try_get::<String, _>(6)?.parse().map_err(decode_err)?;
                let to = opt_status(row.try_get(7)?)?;
                let status = match change {
                    ChangeKind::Removed => None,
                    ChangeKind::Added => Some(Status::Unknown),
                    ChangeKind::Status | ChangeKind::Resync => Some(to.unwrap_or(Status::Unknown)),
                };
                let subject: SubjectKind = row.try_get::<String, _>(4)?.parse().map_err(decode_err)?;
                marks.push(Mark {
                    epoch: row.try_get::<i64, _>(0)? as u64,
                    order: (
                        row.try_get::<i64, _>(1)? as u64,
                        row.try_get::<i64, _>(2)? as u32,
                    ),
                    time_ms: row.try_get(3)?,
                    subject: (subject, row.try_get(5)?),
                    status,
                });
            }
            Ok(marks)
        })
    }

    /// Stored rollups, newest first.
    pub(crate) async fn rollups(
        &self,
        instance: &str,
        q: &RollupQuery,
    ) -> Result<Vec<Rollup>, sqlx::Error> {
        let g = q.granularity;
        on_pool!(self, pool => {
            let mut b = sql(pool, "SELECT start_ms, component, check_name, pass, warn, fail, unknown, latency_min_ms, latency_avg_ms, latency_max_ms, latency_p95_ms FROM rollups WHERE instance = ");
            b.push_bind(instance.to_string())
                .push(" AND bucket_secs = ")
                .push_bind(g.secs())
                .push(" AND component = ")
                .push_bind(q.component.clone());
            if let Some(k) = &q.check {
                b.push(" AND check_name = ").push_bind(k.clone());
            }
            if let Some(s) = q.since {
                b.push(" AND start_ms >= ").push_bind(s.as_millisecond());
            }
            if let Some(u) = q.until {
                b.push(" AND start_ms <= ").push_bind(u.as_millisecond());
            }
            b.push(" ORDER BY start_ms DESC, check_name LIMIT ")
                .push_bind(q.limit.clamp(1, crate::model::MAX_LIMIT) as i64);
            let rows = b.build().fetch_all(pool).await?;
            rows.into_iter()
                .map(|r| {
                    Ok(Rollup {
                        start: from_millis(r.try_get(0)?),
                        granularity: g,
                        component: r.try_get(1)?,
                        check: r.try_get(2)?,
                        pass: r.try_get::<i64, _>(3)? as u64,
                        warn: r.try_get::<i64, _>(4)? as u64,
                        fail: r.try_get::<i64, _>(5)? as u64,
                        unknown: r.try_get::<i64, _>(6)? as u64,
                        latency_min_ms: r.try_get(7)?,
                        latency_avg_ms: r.try_get(8)?,
                        latency_max_ms: r.try_get(9)?,
                        latency_p95_ms: r.try_get(10)?,
                        instance: instance.to_string(),
                    })
                })
                .collect()
        })
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub(crate) async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

fn rollup_of(
    instance: &str,
    g: Granularity,
    start: i64,
    key: &(String, String),
    f: &Figures,
) -> Rollup {
    Rollup {
        start: from_millis(start),
        granularity: g,
        component: key.0.clone(),
        check: key.1.clone(),
        pass: f.pass,
        warn: f.warn,
        fail: f.fail,
        unknown: f.unknown,
        latency_min_ms: f.min_ms,
        latency_avg_ms: f.avg_ms,
        latency_max_ms: f.max_ms,
        latency_p95_ms: f.p95_ms,
        instance: instance.to_string(),
    }
}

/// A store error as an operator reads it: what failed and what to look at.
pub(crate) fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let hint = match code.as_str() {
                // SQLite: BUSY, LOCKED.
                "5" | "6" | "517" => "; another process holds a lock on the database file",
                // SQLite: CANTOPEN, READONLY, IOERR, FULL.
                "14" => "; does its directory exist, and may Vitalis write there?",
                "8" | "1032" => "; the file or its directory is read-only",
                "13" => "; the disk is full",
                c if c.starts_with("10") => "; a disk I/O error: look at the disk and the file system",
                // PostgreSQL: connection, auth, read-only, disk full.
                "28P01" | "28000" => "; check the user and password in the history url",
                "3D000" => "; the database does not exist: create it",
                "25006" => "; the server is read-only (a standby?): point the url at the primary",
                "53100" => "; the database server's disk is full",
                c if c.starts_with("57P") || c.starts_with("08") => {
                    "; the server shut down or dropped the connection"
                }
                _ => "",
            };
            format!("{} (code {code}){hint}", db.message())
        }
        sqlx::Error::Io(io) => format!(
            "{io}; is the database server running and reachable from this host?"
        ),
        sqlx::Error::PoolTimedOut => {
            "no connection within the acquire timeout: the database is unreachable, overloaded or locked"
                .to_string()
        }
        sqlx::Error::PoolClosed => "the connection pool is closed".to_string(),
        sqlx::Error::Tls(t) => format!("TLS: {t}; check the server's certificate and sslmode"),
        other => other.to_string(),
    }
}
