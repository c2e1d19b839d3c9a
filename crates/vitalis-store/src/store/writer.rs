//! The writer task: the only one that writes to the store.
//!
//! Every `flush_interval` (or as soon as a batch is full) it takes waiting
//! rows — transitions first — and writes them in one transaction, with the
//! session's sign of life. When that fails the batch goes back to the front
//! of the buffer, the error is reported by `vitalis.store`, and the next
//! attempt waits a backoff (doubling up to `retry_max`). Between writes it
//! rolls up finished minutes and hours and applies retention.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::db::{Db, PruneReport, SessionWrite, describe};
use super::{Shared, StoreError, StoreStats};
use crate::model::Granularity;
use crate::rollup::bucket_start;

/// Requests to the writer.
pub(super) enum Command {
    /// Write what is queued now; answer when stored or with the error.
    Flush(oneshot::Sender<Result<(), StoreError>>),
    /// Roll up finished buckets now.
    Rollup(oneshot::Sender<Result<usize, StoreError>>),
    /// Apply retention now.
    Prune(oneshot::Sender<Result<PruneReport, StoreError>>),
    /// Write what is left, record the session's stop, stop.
    Close(oneshot::Sender<()>),
}

/// The first wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// A bucket closes this long after its end (results finishing late).
const ROLLUP_SLACK_MS: i64 = 5_000;
/// Most buckets rolled up in one pass (a catch-up continues next pass).
const MAX_BUCKETS: [i64; 2] = [120, 24];
/// Repeated failures and drops are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

struct Writer {
    shared: Arc<Shared>,
    backoff: Duration,
    next_attempt: Instant,
    last_alive: Option<Instant>,
    next_rollup: Instant,
    next_prune: Instant,
    last_failure_log: Option<Instant>,
    logged_drops: (u64, u64),
    last_drop_log: Option<Instant>,
}

pub(super) async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let now = Instant::now();
    let s = &shared.settings;
    let mut w = Writer {
        backoff: MIN_BACKOFF,
        next_attempt: now,
        last_alive: None,
        next_rollup: now + s.rollup_interval,
        // The first pass soon after start: a restart catches up at once.
        next_prune: now + s.prune_interval.min(Duration::from_secs(30)),
        last_failure_log: None,
        logged_drops: (0, 0),
        last_drop_log: None,
        shared: shared.clone(),
    };
    let flush_interval = s.flush_interval;
    loop {
        let command = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            c = commands.recv() => match c {
                Some(c) => Some(c),
                None => break,
            },
            _ = shared.wake.notified() => None,
            _ = tokio::time::sleep(flush_interval) => None,
        };
        match command {
            None => w.cycle().await,
            Some(Command::Flush(reply)) => {
                let r = w.flush_now().await;
                let _ = reply.send(r);
            }
            Some(Command::Rollup(reply)) => {
                let r = w.rollup_now().await;
                let _ = reply.send(r);
            }
            Some(Command::Prune(reply)) => {
                let r = w.prune_now().await;
                let _ = reply.send(r);
            }
            Some(Command::Close(reply)) => {
                w.close().await;
                let _ = reply.send(());
                break;
            }
        }
    }
}

impl Writer {
    /// One scheduled round: write, then roll up and prune when due.
    async fn cycle(&mut self) {
        if Instant::now() < self.next_attempt {
            return;
        }
        let Some(db) = self.connect().await else {
            return;
        };
        if self.write(&db, None).await.is_err() {
            return;
        }
        // Writes that cannot keep up drop rows too.
        self.log_drops();
        let now = Instant::now();
        if now >= self.next_rollup {
            self.next_rollup = now + self.shared.settings.rollup_interval;
            if let Err(e) = self.rollup(&db).await {
                self.failed(&format!("rolling up: {}", describe(&e)));
                return;
            }
        }
        if now >= self.next_prune {
            self.next_prune = now + self.shared.settings.prune_interval;
            if let Err(e) = self.prune(&db).await {
                self.failed(&format!("applying retention: {}", describe(&e)));
            }
        }
    }

    fn error(&self) -> StoreError {
        StoreError::Database {
            url: self.shared.shown.clone(),
            detail: self
                .shared
                .state()
                .last_error
                .clone()
                .unwrap_or_else(|| "failed".into()),
        }
    }

    /// The connected store, connecting (and migrating) first if needed.
    async fn connect(&mut self) -> Option<Db> {
        if let Some(db) = self.shared.db.get() {
            return Some(db.clone());
        }
        let s = &self.shared;
        match Db::connect(&s.connect_url, &s.shown, s.settings.connect_timeout).await {
            Ok(db) => {
                tracing::info!(
                    "history store {} connected ({}, schema version {})",
                    s.shown,
                    db.backend(),
                    super::db::SCHEMA_VERSION
                );
                let _ = s.db.set(db.clone());
                self.succeeded();
                Some(db)
            }
            Err(e) => {
                let text = match &e {
                    StoreError::Database { detail, .. } => format!("cannot connect: {detail}"),
                    other => other.to_string(),
                };
                self.failed(&text);
                None
            }
        }
    }

    /// Writes waiting rows in batches until none is left (or `limit` rows
    /// were written), with the session's sign of life when due.
    async fn write(&mut self, db: &Db, limit: Option<usize>) -> Result<(), ()> {
        let Some(session) = self.shared.session.get().copied() else {
            // Not attached yet: results wait for the engine's epoch.
            return Ok(());
        };
        let s = self.shared.clone();
        let mut written = 0;
        loop {
            let alive_due = self
                .last_alive
                .is_none_or(|t| t.elapsed() >= s.settings.alive_interval);
            let batch = s.pending().take(s.settings.batch_rows);
            if batch.is_empty() && !alive_due {
                return Ok(());
            }
            let now_ms = Timestamp::now().as_millisecond();
            let sign = alive_due.then_some(SessionWrite {
                epoch: session.epoch,
                started_ms: session.started_ms,
                alive_ms: now_ms,
                stopped_ms: None,
            });
            let timeout = s.settings.write_timeout;
            let in_time = tokio::time::timeout(
                timeout,
                db.write(&s.settings.instance, session.epoch, &batch, sign),
            )
            .await;
            let outcome = match in_time {
                Ok(result) => result.map_err(|e| describe(&e)),
                Err(_) => Err(format!(
                    "no answer within {} (the write timeout); is a table locked by another session, or the connection hung? look at pg_stat_activity / the database's locks",
                    vitalis_core::duration::format(timeout)
                )),
            };
            match outcome {
                Ok(()) => {
                    if alive_due {
                        self.last_alive = Some(Instant::now());
                    }
                    StoreStats::add(&s.stats.results_written, batch.results.len() as u64);
                    StoreStats::add(&s.stats.transitions_written, batch.transitions.len() as u64);
                    written += batch.len();
                    s.state().last_write = Some(Timestamp::now());
                    self.succeeded();
                    if batch.is_empty() || limit.is_some_and(|l| written >= l) {
                        return Ok(());
                    }
                }
                Err(why) => {
                    let d = s.pending().put_back(batch);
                    s.count_dropped(d);
                    self.failed(&format!("writing: {why}"));
                    return Err(());
                }
            }
        }
    }

    async fn flush_now(&mut self) -> Result<(), StoreError> {
        let Some(db) = self.connect().await else {
            return Err(self.error());
        };
        let queued = self.shared.pending().len();
        self.write(&db, Some(queued.max(1)))
            .await
            .map_err(|()| self.error())
    }

    async fn rollup_now(&mut self) -> Result<usize, StoreError> {
        let Some(db) = self.connect().await else {
            return Err(self.error());
        };
        self.write(&db, None).await.map_err(|()| self.error())?;
        self.rollup(&db).await.map_err(|e| {
            self.failed(&format!("rolling up: {}", describe(&e)));
            self.error()
        })
    }

    async fn prune_now(&mut self) -> Result<PruneReport, StoreError> {
        let Some(db) = self.connect().await else {
            return Err(self.error());
        };
        self.prune(&db).await.map_err(|e| {
            self.failed(&format!("applying retention: {}", describe(&e)));
            self.error()
        })
    }

    /// Rolls up every finished bucket whose results are all stored.
    async fn rollup(&mut self, db: &Db) -> Result<usize, sqlx::Error> {
        let s = self.shared.clone();
        let instance = &s.settings.instance;
        let now_ms = Timestamp::now().as_millisecond();
        // Results still waiting in memory belong to buckets not yet closed.
        let closed_until = match s.pending().oldest_result_ms() {
            Some(t) => t.min(now_ms - ROLLUP_SLACK_MS),
            None => now_ms - ROLLUP_SLACK_MS,
        };
        let mut written = 0;
        for (g, max_buckets) in Granularity::ALL.into_iter().zip(MAX_BUCKETS) {
            let width = g.millis();
            let end_limit = bucket_start(closed_until, width);
            // A catch-up continues for a few passes at most per round.
            for _ in 0..8 {
                let start = match db.rollup_progress(instance, g).await? {
                    Some(done) => done,
                    None => match db.oldest_result(instance).await? {
                        Some(t) => bucket_start(t, width),
                        None => end_limit,
                    },
                };
                let end = end_limit.min(start + max_buckets * width);
                if end <= start {
                    if start == end_limit {
                        // Nothing stored yet: start from here next time.
                        db.write_rollups(instance, g, &[], end_limit).await?;
                    }
                    break;
                }
                let rows = db.compute_rollups(instance, g, start, end).await?;
                db.write_rollups(instance, g, &rows, end).await?;
                written += rows.len();
                if end >= end_limit {
                    break;
                }
            }
        }
        StoreStats::add(&s.stats.rollups_written, written as u64);
        Ok(written)
    }

    /// Deletes what retention no longer keeps. Raw results stay until their
    /// hour is rolled up, whatever `raw_retention` says.
    async fn prune(&mut self, db: &Db) -> Result<PruneReport, sqlx::Error> {
        let s = self.shared.clone();
        let now_ms = Timestamp::now().as_millisecond();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let rolled = db
            .rollup_progress(&s.settings.instance, Granularity::Hour)
            .await?;
        let raw_before = rolled.map(|r| r.min(now_ms.saturating_sub(ms(s.settings.raw_retention))));
        let before = now_ms.saturating_sub(ms(s.settings.retention));
        let report = db.prune(raw_before, before).await?;
        StoreStats::add(&s.stats.rows_pruned, report.total());
        if report.total() > 0 {
            tracing::info!(
                results = report.results,
                transitions = report.transitions,
                rollups = report.rollups,
                sessions = report.sessions,
                "history store {}: retention applied",
                s.shown
            );
        }
        Ok(report)
    }

    /// Writes what is left within `close_timeout`, then the session's stop.
    async fn close(&mut self) {
        let s = self.shared.clone();
        let until = Instant::now() + s.settings.close_timeout;
        let mut stored = false;
        loop {
            if let Some(db) = self.connect().await
                && self.write(&db, None).await.is_ok()
            {
                if let Some(session) = s.session.get().copied() {
                    let now_ms = Timestamp::now().as_millisecond();
                    let stop = SessionWrite {
                        epoch: session.epoch,
                        started_ms: session.started_ms,
                        alive_ms: now_ms,
                        stopped_ms: Some(now_ms),
                    };
                    let empty = super::pending::Batch::default();
                    if let Err(e) = db
                        .write(&s.settings.instance, session.epoch, &empty, Some(stop))
                        .await
                    {
                        self.failed(&format!("recording the stop: {}", describe(&e)));
                    } else {
                        stored = true;
                    }
                } else {
                    stored = true;
                }
                if stored {
                    db.close().await;
                    break;
                }
            }
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(self.backoff.min(Duration::from_millis(500))).await;
        }
        let left = s.pending().len();
        if !stored || left > 0 {
            tracing::error!(
                "history store {}: closing with {left} rows not written (the store failed: {})",
                s.shown,
                s.state().last_error.clone().unwrap_or_default()
            );
        }
        s.state().closed = true;
    }

    fn succeeded(&mut self) {
        let mut st = self.shared.state();
        st.attempted = true;
        if let Some(since) = st.failing_since.take() {
            let pending = self.shared.pending().len();
            tracing::info!(
                "history store {} recovered after {:.1}s of failures; {pending} rows still buffered, catching up",
                self.shared.shown,
                since.elapsed().as_secs_f64()
            );
        }
        st.last_error = None;
        self.backoff = MIN_BACKOFF;
        self.next_attempt = Instant::now();
        self.last_failure_log = None;
    }

    fn failed(&mut self, error: &str) {
        let s = &self.shared;
        StoreStats::add(&s.stats.errors, 1);
        let now = Instant::now();
        let (results, transitions) = {
            let p = s.pending();
            (p.results(), p.transitions())
        };
        let first = {
            let mut st = s.state();
            st.attempted = true;
            st.last_error = Some(error.to_string());
            let first = st.failing_since.is_none();
            st.failing_since.get_or_insert(now);
            first
        };
        if first {
            tracing::error!(
                "history store {}: {error}; Vitalis keeps serving, buffering {results} results and {transitions} transitions in memory (bound {}) and retrying",
                s.shown,
                s.settings.max_pending_results
            );
            self.last_failure_log = Some(now);
        } else if self
            .last_failure_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(
                "history store {} still failing: {error}; {results} results and {transitions} transitions buffered",
                s.shown
            );
            self.last_failure_log = Some(now);
        }
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(s.settings.retry_max);
        self.log_drops();
    }

    /// Says in the log when rows were dropped (at most every 30 s).
    fn log_drops(&mut self) {
        let s = &self.shared;
        let now = (s.stats.results_dropped(), s.stats.transitions_dropped());
        if now == self.logged_drops || self.last_drop_log.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        let (r, t) = (now.0 - self.logged_drops.0, now.1 - self.logged_drops.1);
        if t > 0 {
            tracing::error!(
                "history store {}: the buffer of transitions is full (bound {}); dropped the {t} oldest transitions and {r} oldest results — history has a hole there",
                s.shown,
                s.settings.max_pending_transitions
            );
        } else {
            tracing::warn!(
                "history store {}: the buffer is full (bound {} results); dropped the {r} oldest results (transitions are kept)",
                s.shown,
                s.settings.max_pending_results
            );
        }
        self.logged_drops = now;
        self.last_drop_log = Some(Instant::now());
    }
}
