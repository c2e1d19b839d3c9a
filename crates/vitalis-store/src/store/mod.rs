//! [`History`]: the store, its writer, its recorder and its self-check.
//!
//! ```text
//! engine ──observer (every run)──▶ Pending ◀──event consumer (every transition)── engine log
//!                                    │ (bounded, in memory)
//!                                    ▼
//!                          writer task: batches in one transaction,
//!                          retries with backoff, rolls up, prunes
//!                                    ▼
//!                            SQLite / PostgreSQL ◀── queries (HTTP)
//! ```

mod db;
mod health;
mod pending;
mod recorder;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};
use vitalis_core::{BoxFuture, CancelToken, Component, Engine, Event, Observer, redact_url};

pub use db::PruneReport;
pub use health::{StoreHealth, StoreState};

use crate::model::{
    Availability, HistoryPage, HistoryQuery, Rollup, RollupQuery, SessionEntry, SubjectKind,
    UptimeQuery, UptimeReport, from_millis,
};
use crate::reader::{HistoryReader, QueryError};
use crate::uptime::{self, Span};
use db::Db;
use pending::Pending;
use writer::Command;

/// The id of the component that reports the store's health.
pub const STORE_COMPONENT: &str = "vitalis.store";

/// Why the store could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names no backend this build has, or does not parse.
    #[error("history url '{url}' is not usable: {reason}")]
    BadUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The database failed (unreachable, locked, disk error, …).
    #[error("history store {url}: {detail}")]
    Database {
        /// The URL, password hidden.
        url: String,
        /// What failed and what to look at.
        detail: String,
    },
    /// The database holds a newer schema than this build knows.
    #[error(
        "history store {url} has schema version {found}, newer than this Vitalis knows ({known}); upgrade Vitalis or point it at another database"
    )]
    NewerSchema {
        /// The URL, password hidden.
        url: String,
        /// The stored version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The store was closed, or its writer stopped.
    #[error("the history store is closed")]
    Closed,
}

/// Counters of the store, for metrics (`vitalis_store_errors_total`, …).
/// Monotonic; read them with the accessors.
#[derive(Debug, Default)]
pub struct StoreStats {
    errors: AtomicU64,
    results_written: AtomicU64,
    transitions_written: AtomicU64,
    results_dropped: AtomicU64,
    transitions_dropped: AtomicU64,
    rollups_written: AtomicU64,
    rows_pruned: AtomicU64,
    gaps: AtomicU64,
}

impl StoreStats {
    /// Failed store operations (connects, writes, rollups, prunes).
    pub fn errors_total(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Results written.
    pub fn results_written(&self) -> u64 {
        self.results_written.load(Ordering::Relaxed)
    }

    /// Transitions written.
    pub fn transitions_written(&self) -> u64 {
        self.transitions_written.load(Ordering::Relaxed)
    }

    /// Results dropped because the buffer was full during an outage.
    pub fn results_dropped(&self) -> u64 {
        self.results_dropped.load(Ordering::Relaxed)
    }

    /// Transitions dropped because their buffer was full too.
    pub fn transitions_dropped(&self) -> u64 {
        self.transitions_dropped.load(Ordering::Relaxed)
    }

    /// Rollup rows written.
    pub fn rollups_written(&self) -> u64 {
        self.rollups_written.load(Ordering::Relaxed)
    }

    /// Rows deleted by retention.
    pub fn rows_pruned(&self) -> u64 {
        self.rows_pruned.load(Ordering::Relaxed)
    }

    /// Times the recorder fell behind the engine's event log and restated
    /// the state from a snapshot.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Tuning of a store; the defaults suit the daemon.
#[derive(Debug, Clone)]
struct Settings {
    instance: String,
    raw_retention: Duration,
    retention: Duration,
    flush_interval: Duration,
    batch_rows: usize,
    max_pending_results: usize,
    max_pending_transitions: usize,
    alive_interval: Duration,
    rollup_interval: Duration,
    prune_interval: Duration,
    connect_timeout: Duration,
    write_timeout: Duration,
    retry_max: Duration,
    close_timeout: Duration,
}

/// Builds a [`History`].
#[derive(Clone)]
pub struct HistoryBuilder {
    url: String,
    settings: Settings,
}

impl std::fmt::Debug for HistoryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the database password.
        f.debug_struct("HistoryBuilder")
            .field("url", &redact_url(&self.url))
            .field("settings", &self.settings)
            .finish()
    }
}

impl HistoryBuilder {
    /// The name written in every row (default: `$VITALIS_INSTANCE`, else the
    /// host name, else `vitalis`). Keep it stable across restarts: uptime
    /// and rollups follow it.
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.settings.instance = name.into();
        self
    }

    /// How long every result is kept (default 48h; at least until rolled up).
    pub fn raw_retention(mut self, d: Duration) -> Self {
        self.settings.raw_retention = d;
        self
    }

    /// How long transitions, rollups and sessions are kept (default 400d).
    pub fn retention(mut self, d: Duration) -> Self {
        self.settings.retention = d;
        self
    }

    /// How often waiting rows are written (default 200 ms; sooner when a
    /// batch is full).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.settings.flush_interval = d.max(Duration::from_millis(1));
        self
    }

    /// Rows per transaction (default 2000).
    pub fn batch_rows(mut self, n: usize) -> Self {
        self.settings.batch_rows = n.max(1);
        self
    }

    /// Results held in memory while the store is down (default 100 000);
    /// past it the oldest are dropped and counted.
    pub fn max_pending_results(mut self, n: usize) -> Self {
        self.settings.max_pending_results = n.max(1);
        self
    }

    /// Transitions held in memory while the store is down (default 100 000).
    pub fn max_pending_transitions(mut self, n: usize) -> Self {
        self.settings.max_pending_transitions = n.max(1);
        self
    }

    /// How often the session's sign of life is written (default 5 s): a
    /// crash loses at most this much of the session.
    pub fn alive_interval(mut self, d: Duration) -> Self {
        self.settings.alive_interval = d;
        self
    }

    /// How often finished minutes and hours are rolled up (default 15 s).
    pub fn rollup_interval(mut self, d: Duration) -> Self {
        self.settings.rollup_interval = d;
        self
    }

    /// How often retention is applied (default 10 min).
    pub fn prune_interval(mut self, d: Duration) -> Self {
        self.settings.prune_interval = d;
        self
    }

    /// How long a connection attempt may take (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.settings.connect_timeout = d;
        self
    }

    /// How long one batch write may take before it counts as failed
    /// (default 10 s): a write stuck behind another session's lock, or on a
    /// connection that went silent, fails the store's check instead of
    /// leaving it passing while nothing is written.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.settings.write_timeout = d.max(Duration::from_millis(1));
        self
    }

    /// The longest wait between retries while the store fails (default 5 s).
    pub fn retry_max(mut self, d: Duration) -> Self {
        self.settings.retry_max = d.max(Duration::from_millis(1));
        self
    }

    /// How long [`History::close`] keeps trying to write what is left
    /// (default 5 s).
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.settings.close_timeout = d;
        self
    }

    /// Starts the store without waiting for the database: the writer
    /// connects in the background and retries until it succeeds, while
    /// results and transitions wait in memory and `vitalis.store` reports
    /// the failure. This is what the daemon does: a store that is down at
    /// start never stops Vitalis from serving.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> History {
        History::spawn(self.url, self.settings, None)
    }

    /// Connects and migrates now, then starts; fails when the database is
    /// unreachable or unusable.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn open(self) -> Result<History, StoreError> {
        let shown = redact_url(&self.url);
        let db = Db::connect(&self.url, &shown, self.settings.connect_timeout).await?;
        Ok(History::spawn(self.url, self.settings, Some(db)))
    }
}

/// The default instance name: `$VITALIS_INSTANCE`, else the host name.
fn default_instance() -> String {
    std::env::var("VITALIS_INSTANCE")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vitalis".to_string())
}

/// The run this store records: the engine's epoch and when it started.
#[derive(Debug, Clone, Copy)]
struct Session {
    epoch: u64,
    started_ms: i64,
}

/// What the writer reports about itself, for the self-check.
#[derive(Debug, Default)]
struct WriterState {
    /// A connect or write attempt has finished (either way).
    attempted: bool,
    /// The last attempt failed with this.
    last_error: Option<String>,
    /// Since when attempts fail.
    failing_since: Option<tokio::time::Instant>,
    /// When a batch was last committed.
    last_write: Option<Timestamp>,
    /// Closed: no more writes.
    closed: bool,
}

/// The event consumer's handle.
struct Consumer {
    sync: mpsc::Sender<oneshot::Sender<()>>,
    stop: CancelToken,
    task: tokio::task::JoinHandle<()>,
}

/// Everything the handles, the observer, the writer and the consumer share.
struct Shared {
    /// The URL to connect with (may hold a password: never shown).
    connect_url: String,
    shown: String,
    settings: Settings,
    pending: Mutex<Pending>,
    /// Wakes the writer early when a batch is full.
    wake: Notify,
    session: OnceLock<Session>,
    db: OnceLock<Db>,
    state: Mutex<WriterState>,
    stats: StoreStats,
    rseq: AtomicU64,
    commands: mpsc::UnboundedSender<Command>,
    consumer: Mutex<Option<Consumer>>,
    /// Stops the background tasks when the last [`History`] is dropped.
    cancel: CancelToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section can leave the data inconsistent when it panics.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    fn state(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.state)
    }

    fn db(&self) -> Result<&Db, QueryError> {
        self.db.get().ok_or_else(|| {
            let why = self
                .state()
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected yet".to_string());
            QueryError::Unavailable(format!("{}: {why}", self.shown))
        })
    }

    fn count_dropped(&self, d: pending::Dropped) {
        StoreStats::add(&self.stats.results_dropped, d.results);
        StoreStats::add(&self.stats.transitions_dropped, d.transitions);
    }
}

/// Stops the background tasks when the last handle goes.
struct Guard(Arc<Shared>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.cancel.cancel();
    }
}

/// The history store: records every result and transition of an engine in
/// SQLite or PostgreSQL, off the check path, and answers history, rollup
/// and uptime queries. Cheap to clone.
///
/// ```no_run
/// use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome};
/// use vitalis_store::{History, HistoryQuery};
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let history = History::builder("sqlite:///var/lib/vitalis/vitalis.db").start();
/// let engine = Engine::builder()
///     .observer(history.observer())       // every result
///     .component(history.component())     // `vitalis.store`: the store's own health
///     .component(Component::new("db").check(CheckSpec::live("ping", check_fn(|_| async {
///         Outcome::pass("pong")
///     }))))
///     .start()?;
/// history.attach(&engine);                // every transition, and the session
/// let page = history.query(&HistoryQuery::component("db")).await?;
/// println!("{} results", page.results.len());
/// engine.shutdown();
/// history.close().await;                  // writes what is left, records the stop
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct History {
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("url", &self.shared.shown)
            .field("instance", &self.shared.settings.instance)
            .finish_non_exhaustive()
    }
}

impl History {
    /// Starts building a store for `url`: `sqlite://path` (the file is
    /// created; relative paths are from the working directory) or
    /// `postgres://user:pass@host:port/db`.
    pub fn builder(url: impl Into<String>) -> HistoryBuilder {
        HistoryBuilder {
            url: url.into(),
            settings: Settings {
                instance: default_instance(),
                raw_retention: Duration::from_secs(48 * 3600),
                retention: Duration::from_secs(400 * 86_400),
                flush_interval: Duration::from_millis(200),
                batch_rows: 2000,
                max_pending_results: 100_000,
                max_pending_transitions: 100_000,
                alive_interval: Duration::from_secs(5),
                rollup_interval: Duration::from_secs(15),
                prune_interval: Duration::from_secs(600),
                connect_timeout: Duration::from_secs(5),
                write_timeout: Duration::from_secs(10),
                retry_max: Duration::from_secs(5),
                close_timeout: Duration::from_secs(5),
            },
        }
    }

    fn spawn(url: String, settings: Settings, db: Option<Db>) -> History {
        let (commands, rx) = mpsc::unbounded_channel();
        let shown = redact_url(&url);
        let shared = Arc::new(Shared {
            connect_url: url,
            shown,
            pending: Mutex::new(Pending::new(
                settings.max_pending_results,
                settings.max_pending_transitions,
            )),
            settings,
            wake: Notify::new(),
            session: OnceLock::new(),
            db: OnceLock::new(),
            state: Mutex::new(WriterState::default()),
            stats: StoreStats::default(),
            rseq: AtomicU64::new(0),
            commands,
            consumer: Mutex::new(None),
            cancel: CancelToken::new(),
        });
        if let Some(db) = db {
            let _ = shared.db.set(db);
            shared.state().attempted = true;
        }
        tokio::spawn(writer::run(shared.clone(), rx));
        History {
            _guard: Arc::new(Guard(shared.clone())),
            shared,
        }
    }

    /// The observer to add to the engine (`EngineBuilder::observer`): it
    /// queues every completed run, without I/O.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(recorder::Recorder(self.shared.clone()))
    }

    /// The `vitalis.store` component (check `writes`, type `vitalis`,
    /// group `vitalis`, not critical): `fail` with the last error, the
    /// backlog and the URL while writes fail, `pass` with the write lag
    /// otherwise. Add it to the engine beside your components.
    pub fn component(&self) -> Component {
        health::component(self.shared.clone())
    }

    /// Starts recording `engine`: its session (epoch, start, periodic sign
    /// of life, stop) and every transition of its event log. Call once,
    /// right after starting the engine; one store records one engine.
    pub fn attach(&self, engine: &Engine) {
        self.begin_session(engine.epoch());
        let mut slot = lock(&self.shared.consumer);
        if slot.is_none() {
            *slot = Some(recorder::spawn_consumer(
                self.shared.clone(),
                engine.clone(),
            ));
        }
    }

    /// Starts the session of run `epoch` without an engine's event log (for
    /// programs that feed [`History::record_event`] themselves). Only the
    /// first call counts.
    pub fn begin_session(&self, epoch: u64) {
        let _ = self.shared.session.set(Session {
            epoch,
            started_ms: Timestamp::now().as_millisecond(),
        });
        self.shared.wake.notify_one();
    }

    /// Queues one event as a transition (the event consumer does this for
    /// every event of the attached engine's log).
    pub fn record_event(&self, event: &Event) {
        recorder::record_event(&self.shared, event);
    }

    /// Writes everything queued so far (including the engine's events up
    /// to now) and returns once it is stored, or with the store's error.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.sync_events().await;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Flush(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Rolls up every finished minute and hour now (the writer also does it
    /// every `rollup_interval`); returns how many rollup rows were written.
    pub async fn rollup_now(&self) -> Result<usize, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Rollup(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies retention now (the writer also does it every `prune_interval`).
    pub async fn prune_now(&self) -> Result<PruneReport, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Prune(tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until the store is connected, or its first attempt failed, or
    /// `within` passed; the error then says why it is not connected (the
    /// writer keeps retrying).
    pub async fn ready(&self, within: Duration) -> Result<(), StoreError> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if self.shared.db.get().is_some() {
                return Ok(());
            }
            let failed = self.shared.state().last_error.clone();
            if failed.is_some() || tokio::time::Instant::now() >= until {
                return Err(StoreError::Database {
                    url: self.shared.shown.clone(),
                    detail: failed.unwrap_or_else(|| format!("not connected within {within:?}")),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops recording: reads the engine's last events, writes what is
    /// queued (trying for `close_timeout`), records the session's stop and
    /// closes the connections. Call it after `Engine::shutdown`.
    pub async fn close(&self) {
        let consumer = lock(&self.shared.consumer).take();
        if let Some(c) = consumer {
            c.stop.cancel();
            let _ = c.task.await;
        }
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The store's health right now (what `vitalis.store` reports).
    pub fn health(&self) -> StoreHealth {
        health::health(&self.shared)
    }

    /// The counters.
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.shared.shown
    }

    /// The instance name written in every row.
    pub fn instance(&self) -> &str {
        &self.shared.settings.instance
    }

    /// The backend in use (`sqlite` or `postgres`), once connected.
    pub fn backend(&self) -> Option<&'static str> {
        self.shared.db.get().map(Db::backend)
    }

    /// Results and transitions, newest first.
    pub async fn query(&self, q: &HistoryQuery) -> Result<HistoryPage, QueryError> {
        let db = self.shared.db()?;
        let (results, transitions) = db.history(q).await.map_err(|e| self.failed(&e))?;
        Ok(HistoryPage {
            results,
            transitions,
        })
    }

    /// Stored rollups, newest first (this instance's).
    pub async fn rollups(&self, q: &RollupQuery) -> Result<Vec<Rollup>, QueryError> {
        let db = self.shared.db()?;
        db.rollups(&self.shared.settings.instance, q)
            .await
            .map_err(|e| self.failed(&e))
    }

    /// Availability of every component and group and of the system over a
    /// window, from this instance's transitions and sessions.
    pub async fn uptime(&self, q: UptimeQuery) -> Result<UptimeReport, QueryError> {
        let db = self.shared.db()?;
        let instance = &self.shared.settings.instance;
        let since = q.since.as_millisecond();
        let until = q.until.as_millisecond().max(since);
        let now = Timestamp::now().as_millisecond();
        let mut sessions = db
            .sessions(instance, since, until)
            .await
            .map_err(|e| self.failed(&e))?;
        // The running session ends now, whatever its last stored sign of life
        // (and may not be stored yet while the store was down).
        let current = self.shared.session.get().copied();
        if let Some(cur) = current
            && cur.started_ms <= until
            && !sessions.iter().any(|s| s.epoch == cur.epoch)
        {
            sessions.push(db::SessionRow {
                epoch: cur.epoch,
                started_ms: cur.started_ms,
                last_alive_ms: now,
                stopped_ms: None,
            });
        }
        let spans: Vec<Span> = sessions
            .iter()
            .map(|s| Span {
                epoch: s.epoch,
                start_ms: s.started_ms,
                end_ms: match s.stopped_ms {
                    Some(t) => t,
                    None if current.is_some_and(|c| c.epoch == s.epoch) => now,
                    None => s.last_alive_ms,
                },
            })
            .collect();
        let epochs: Vec<u64> = spans.iter().map(|s| s.epoch).collect();
        let marks = db
            .marks(instance, &epochs, since, until)
            .await
            .map_err(|e| self.failed(&e))?;
        let computed = uptime::compute(since, until, &spans, &marks);
        let window_ms = (until - since) as f64;
        let mut components = Vec::new();
        let mut groups = Vec::new();
        let mut system = Availability::no_data(None, window_ms);
        for ((kind, id), tally) in &computed.tallies {
            let a = tally.availability(id.clone(), window_ms);
            match kind {
                SubjectKind::Component => components.push(a),
                SubjectKind::Group => groups.push(a),
                SubjectKind::System => system = a,
                SubjectKind::Check => {}
            }
        }
        Ok(UptimeReport {
            since: from_millis(since),
            until: from_millis(until),
            window_ms,
            instance: instance.clone(),
            monitored_ms: computed.monitored_ms,
            sessions: sessions
                .iter()
                .map(|s| SessionEntry {
                    epoch: s.epoch,
                    started: from_millis(s.started_ms),
                    last_alive: from_millis(s.last_alive_ms),
                    stopped: s.stopped_ms.map(from_millis),
                })
                .collect(),
            components,
            groups,
            system,
        })
    }

    fn failed(&self, e: &sqlx::Error) -> QueryError {
        StoreStats::add(&self.shared.stats.errors, 1);
        QueryError::Failed(format!("{}: {}", self.shared.shown, db::describe(e)))
    }

    fn command(&self, c: Command) -> Result<(), StoreError> {
        self.shared.commands.send(c).map_err(|_| StoreError::Closed)
    }

    /// Has the event consumer read the engine's log up to now.
    async fn sync_events(&self) {
        let sync = lock(&self.shared.consumer).as_ref().map(|c| c.sync.clone());
        if let Some(sync) = sync {
            let (tx, rx) = oneshot::channel();
            if sync.send(tx).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

impl HistoryReader for History {
    fn history(&self, query: HistoryQuery) -> BoxFuture<'_, Result<HistoryPage, QueryError>> {
        Box::pin(async move { self.query(&query).await })
    }

    fn uptime(&self, query: UptimeQuery) -> BoxFuture<'_, Result<UptimeReport, QueryError>> {
        Box::pin(History::uptime(self, query))
    }

    fn rollups(&self, query: RollupQuery) -> BoxFuture<'_, Result<Vec<Rollup>, QueryError>> {
        Box::pin(async move { History::rollups(self, &query).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_defaults_to_a_name() {
        assert!(!default_instance().is_empty());
    }

    #[test]
    fn the_builder_hides_the_password_when_printed() {
        let b = History::builder("postgres://vitalis:pgsecret@127.0.0.1:5432/history");
        let shown = format!("{b:?}");
        assert!(!shown.contains("pgsecret"), "{shown}");
        assert!(shown.contains("127.0.0.1:5432/history"), "{shown}");
    }
}
