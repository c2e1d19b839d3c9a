//! Fixtures: stores in temp dirs or on a real PostgreSQL, engines with
//! checks the test switches, and rows with chosen times.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use vitalis_core::{
    Check, CheckResult, CheckSpec, Component, Defaults, Engine, Level, Outcome, RunRecord, Status,
    check_fn,
};
use vitalis_store::{History, HistoryBuilder, HistoryQuery, TransitionEntry};
use vitalis_testkit::postgres::Postgres;

/// Where a scenario's store lives.
pub(crate) enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(Postgres),
}

impl Backend {
    pub(crate) fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    pub(crate) fn postgres() -> Backend {
        Backend::Postgres(Postgres::start())
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.path().join("vitalis.db").display()),
            Backend::Postgres(pg) => pg.url(),
        }
    }

    /// A builder with short intervals, for instance `name`.
    pub(crate) fn builder(&self, name: &str) -> HistoryBuilder {
        fast(History::builder(self.url()).instance(name))
    }
}

/// Short intervals so tests see effects within a second.
pub(crate) fn fast(b: HistoryBuilder) -> HistoryBuilder {
    b.flush_interval(Duration::from_millis(20))
        .alive_interval(Duration::from_millis(100))
        .retry_max(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(2))
        .close_timeout(Duration::from_secs(3))
}

/// A check whose status the test sets (0 pass, 1 warn, 2 fail).
pub(crate) fn switch(state: &Arc<AtomicU8>) -> impl Check {
    let state = state.clone();
    check_fn(move |_| {
        let s = state.load(Ordering::SeqCst);
        async move {
            match s {
                0 => Outcome::pass("127.0.0.1:5432 accepted in 1.2ms").observed(1.2, "ms"),
                1 => Outcome::warn("127.0.0.1:5432 accepted in 180ms, over 100ms"),
                _ => Outcome::fail("127.0.0.1:5432: connection refused; is PostgreSQL running?"),
            }
        }
    })
}

/// An engine with component `db` (group `data`, critical, check `port`
/// switched by `state`) and the store's own component, recorded by `h`.
pub(crate) fn engine(h: &History, state: &Arc<AtomicU8>) -> Engine {
    let engine = Engine::builder()
        .defaults(Defaults {
            interval: Duration::from_millis(50),
            ..Defaults::default()
        })
        .observer(h.observer())
        .component(h.component())
        .component(
            Component::new("db")
                .group("data")
                .critical(true)
                .check(CheckSpec::live("port", switch(state)).kind("tcp")),
        )
        .start()
        .expect("valid registry");
    h.attach(&engine);
    engine
}

/// Polls `f` until it returns `Some`, or panics after `within`.
pub(crate) async fn eventually<T, F: Future<Output = Option<T>>>(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Feeds one result with a chosen time, as the engine's observer would.
pub(crate) fn feed(
    h: &History,
    component: &str,
    check: &str,
    status: Status,
    ms: f64,
    time: Timestamp,
) {
    let result = Arc::new(CheckResult::from_outcome(
        Outcome::new(status, format!("{status} in {ms}ms")),
        Duration::from_nanos((ms * 1_000_000.0) as u64),
        time,
    ));
    h.observer().on_run(&RunRecord {
        component,
        check,
        kind: "tcp",
        group: None,
        level: Level::Live,
        critical: false,
        result: &result,
        lag: Duration::ZERO,
    });
}

/// `t` minus `secs` seconds.
pub(crate) fn ago(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_sub(jiff::SignedDuration::from_secs(secs))
        .unwrap()
}

/// Every stored transition (up to 1000), newest first.
pub(crate) async fn transitions(h: &History) -> Vec<TransitionEntry> {
    h.query(&HistoryQuery::default().limit(1000))
        .await
        .expect("history query")
        .transitions
}
