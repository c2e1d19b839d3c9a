//! The scenarios, each run against SQLite and PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::Connection as _;
use vitalis_core::{Change, Engine, Event, Replay, Status, Subject};
use vitalis_store::{
    ChangeKind, Granularity, History, HistoryQuery, Rollup, RollupQuery, StoreError, StoreState,
    SubjectKind, UptimeQuery,
};

use crate::support::{Backend, ago, engine, eventually, fast, feed, transitions};

const WAIT: Duration = Duration::from_secs(10);

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap()
}

/// The status and error of the `vitalis.store` check as the engine reports it.
fn store_check(engine: &Engine) -> (Status, String) {
    let snap = engine.snapshot();
    let ci = snap
        .topology
        .component("vitalis.store")
        .expect("vitalis.store is registered");
    let k = snap.topology.components[ci].checks.start;
    let c = &snap.checks[k];
    let text = c
        .result
        .as_ref()
        .map(|r| r.error.clone().unwrap_or_else(|| r.output.clone()))
        .unwrap_or_default();
    (c.status, text)
}

/// Every event of the engine's log so far is stored.
async fn assert_no_transition_lost(engine: &Engine, h: &History) {
    let Replay::Events(log) = engine.events().since(0) else {
        panic!("the engine's log lost events")
    };
    assert!(!log.is_empty());
    h.flush().await.expect("flush after recovery");
    let stored: HashSet<(u64, u64)> = transitions(h)
        .await
        .iter()
        .map(|t| (t.epoch, t.seq))
        .collect();
    for e in log.iter() {
        assert!(
            stored.contains(&(e.epoch, e.seq)),
            "event {} ({:?} {:?}) was not stored",
            e.seq,
            e.subject,
            e.change
        );
    }
}

/// The db check went pass → fail, in the stored transitions of epoch `epoch`.
async fn db_failure_stored(h: &History, epoch: u64) -> bool {
    let Ok(()) = h.flush().await else {
        return false;
    };
    let Ok(page) = h.query(&HistoryQuery::component("db")).await else {
        return false;
    };
    page.transitions.iter().any(|t| {
        t.epoch == epoch
            && t.subject == SubjectKind::Check
            && t.to == Some(Status::Fail)
            && t.from == Some(Status::Pass)
    })
}

pub(crate) async fn records_an_engine_and_answers_newest_first(b: Backend) {
    let h = b.builder("node-a").open().await.expect("store opens");
    let state = Arc::new(AtomicU8::new(0));
    let engine = engine(&h, &state);
    eventually(WAIT, "passing results of db", || async {
        h.flush().await.ok()?;
        let p = h.query(&HistoryQuery::component("db")).await.ok()?;
        (p.results.len() >= 3).then_some(())
    })
    .await;
    state.store(2, Ordering::SeqCst);
    let page = eventually(WAIT, "the failure's transitions", || async {
        h.flush().await.ok()?;
        let p = h.query(&HistoryQuery::component("db")).await.ok()?;
        let check = p.transitions.iter().any(|t| {
            t.subject == SubjectKind::Check
                && t.check.as_deref() == Some("port")
                && (t.from, t.to) == (Some(Status::Pass), Some(Status::Fail))
        });
        let component = p.transitions.iter().any(|t| {
            t.subject == SubjectKind::Component
                && (t.from, t.to) == (Some(Status::Pass), Some(Status::Fail))
        });
        (check && component && p.results[0].status == Status::Fail).then_some(p)
    })
    .await;

    // Newest first, every row db's, from this instance and run.
    assert!(page.results.windows(2).all(|w| w[0].time >= w[1].time));
    assert!(page.transitions.windows(2).all(|w| w[0].time >= w[1].time));
    for r in &page.results {
        assert_eq!(
            (r.component.as_str(), r.check.as_str(), r.kind.as_str()),
            ("db", "port", "tcp")
        );
        assert_eq!((r.instance.as_str(), r.epoch), ("node-a", engine.epoch()));
    }
    for t in &page.transitions {
        assert_eq!(t.component.as_deref(), Some("db"), "{t:?}");
        assert_eq!(t.instance, "node-a");
    }
    let newest = &page.results[0];
    assert!(
        newest
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{newest:?}"
    );
    let passing = page
        .results
        .iter()
        .find(|r| r.status == Status::Pass)
        .unwrap();
    assert_eq!(
        (passing.observed_value, passing.observed_unit.as_deref()),
        (Some(1.2), Some("ms"))
    );
    let failed = page
        .transitions
        .iter()
        .find(|t| t.subject == SubjectKind::Check && t.to == Some(Status::Fail))
        .unwrap();
    assert!(
        failed
            .output
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{failed:?}"
    );

    // Without a component: registrations, the group and the system too.
    let all = transitions(&h).await;
    assert!(
        all.iter()
            .any(|t| t.change == ChangeKind::Added && t.component.as_deref() == Some("db"))
    );
    assert!(all.iter().any(|t| t.subject == SubjectKind::Group
        && t.group.as_deref() == Some("data")
        && t.to == Some(Status::Fail)));
    assert!(
        all.iter()
            .any(|t| t.subject == SubjectKind::System && t.to == Some(Status::Fail))
    );

    // The store's own check passes, with its lag.
    let (status, text) = eventually(WAIT, "vitalis.store passes", || async {
        let c = store_check(&engine);
        (c.0 == Status::Pass).then_some(c)
    })
    .await;
    assert_eq!(status, Status::Pass);
    assert!(text.contains("writing, lag"), "{text}");
    assert_eq!(h.health().state, StoreState::Writing);
    assert!(h.stats().results_written() >= 3 && h.stats().transitions_written() >= 4);
    assert_eq!(h.stats().errors_total(), 0);

    let up = h
        .uptime(UptimeQuery::last(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(up.sessions.len(), 1);
    assert_eq!(up.sessions[0].epoch, engine.epoch());
    let db = up
        .components
        .iter()
        .find(|a| a.id.as_deref() == Some("db"))
        .unwrap();
    assert!(db.pass_ms > 0.0 && db.fail_ms > 0.0, "{db:?}");

    engine.shutdown();
    h.close().await;
    assert_eq!(h.health().state, StoreState::Closed);
}

pub(crate) async fn filters_by_time_and_check_and_limits(b: Backend) {
    let h = b.builder("node-a").open().await.expect("store opens");
    h.begin_session(7);
    let base_ms = (Timestamp::now().as_millisecond() - 3_600_000) / 1000 * 1000;
    let at = |s: i64| ts(base_ms + s * 1000);
    for i in 0..10 {
        let check = if i % 2 == 0 { "port" } else { "query" };
        feed(&h, "db", check, Status::Pass, i as f64, at(i));
    }
    feed(&h, "cache", "ping", Status::Warn, 3.0, at(5));
    for i in 0..6u64 {
        let (from, to) = if i % 2 == 0 {
            (Status::Pass, Status::Fail)
        } else {
            (Status::Fail, Status::Pass)
        };
        h.record_event(&Event {
            seq: i + 1,
            epoch: 7,
            time: at(i as i64 * 2),
            subject: Subject::Check {
                component: "db".into(),
                check: "port".into(),
            },
            change: Change::Status {
                from,
                to,
                result: None,
            },
        });
    }
    h.flush().await.unwrap();
    let secs = |p: &vitalis_store::HistoryPage| -> Vec<i64> {
        p.results
            .iter()
            .map(|r| (r.time.as_millisecond() - base_ms) / 1000)
            .collect()
    };
    let seqs = |p: &vitalis_store::HistoryPage| -> Vec<u64> {
        p.transitions.iter().map(|t| t.seq).collect()
    };

    let all = h
        .query(&HistoryQuery::component("db").limit(1000))
        .await
        .unwrap();
    assert_eq!(secs(&all), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert_eq!(seqs(&all), [6, 5, 4, 3, 2, 1]);
    assert_eq!(all.results[0].duration_ms, 9.0);

    let top = h
        .query(&HistoryQuery::component("db").limit(3))
        .await
        .unwrap();
    assert_eq!(secs(&top), [9, 8, 7]);
    assert_eq!(seqs(&top), [6, 5, 4]);

    // since and until are inclusive.
    let mid = h
        .query(&HistoryQuery::component("db").since(at(3)).until(at(6)))
        .await
        .unwrap();
    assert_eq!(secs(&mid), [6, 5, 4, 3]);
    assert_eq!(seqs(&mid), [4, 3]); // at 6 s and 4 s
    let after = h
        .query(&HistoryQuery::component("db").since(at(8)))
        .await
        .unwrap();
    assert_eq!(secs(&after), [9, 8]);
    assert_eq!(seqs(&after), [6, 5]);

    let query = h
        .query(&HistoryQuery::component("db").check("query"))
        .await
        .unwrap();
    assert_eq!(secs(&query), [9, 7, 5, 3, 1]);
    assert!(query.transitions.is_empty());
    let port = h
        .query(&HistoryQuery::component("db").check("port"))
        .await
        .unwrap();
    assert_eq!(secs(&port), [8, 6, 4, 2, 0]);
    assert_eq!(port.transitions.len(), 6);

    let cache = h.query(&HistoryQuery::component("cache")).await.unwrap();
    assert_eq!((cache.results.len(), cache.transitions.len()), (1, 0));
    assert_eq!(cache.results[0].status, Status::Warn);
    let none = h.query(&HistoryQuery::component("nope")).await.unwrap();
    assert!(none.results.is_empty() && none.transitions.is_empty());
    h.close().await;
}

/// Figures computed here, independently of the crate.
fn expect_rollup(r: &Rollup, runs: &[(Status, f64)], start_ms: i64) {
    assert_eq!(r.start.as_millisecond(), start_ms, "{r:?}");
    let count = |s: Status| runs.iter().filter(|(x, _)| *x == s).count() as u64;
    assert_eq!(
        (r.pass, r.warn, r.fail, r.unknown),
        (
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Unknown)
        ),
        "{r:?}"
    );
    let mut d: Vec<f64> = runs.iter().map(|(_, d)| *d).collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = d.len();
    let rank = (95 * n).div_ceil(100); // nearest rank, 1-based
    assert_eq!(r.latency_min_ms, d[0], "{r:?}");
    assert_eq!(r.latency_max_ms, d[n - 1], "{r:?}");
    assert_eq!(r.latency_p95_ms, d[rank - 1], "{r:?}");
    let avg = d.iter().sum::<f64>() / n as f64;
    assert!((r.latency_avg_ms - avg).abs() < 1e-9, "{r:?} vs avg {avg}");
}

pub(crate) async fn rollups_match_figures_computed_here(b: Backend) {
    let h = b.builder("node-a").open().await.expect("store opens");
    h.begin_session(1);
    let now_ms = Timestamp::now().as_millisecond();
    let hour = (now_ms - 3 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let (m0, m1) = (hour + 5 * 60_000, hour + 6 * 60_000);
    let first: Vec<(Status, f64)> = (1..=20)
        .map(|i| ((i * 7) % 20 + 1) as f64)
        .enumerate()
        .map(|(n, d)| {
            let s = match n {
                3 | 4 => Status::Fail,
                5 => Status::Warn,
                _ => Status::Pass,
            };
            (s, d)
        })
        .collect();
    let second = vec![
        (Status::Pass, 3.0),
        (Status::Pass, 9.5),
        (Status::Unknown, 4.0),
        (Status::Pass, 100.0),
        (Status::Fail, 2.25),
        (Status::Pass, 8.0),
        (Status::Pass, 5.0),
    ];
    for (n, (s, d)) in first.iter().enumerate() {
        feed(&h, "db", "port", *s, *d, ts(m0 + n as i64 * 1000));
    }
    for (n, (s, d)) in second.iter().enumerate() {
        feed(&h, "db", "port", *s, *d, ts(m1 + n as i64 * 2000));
    }
    feed(&h, "db", "query", Status::Pass, 50.0, ts(m0 + 500));
    h.flush().await.unwrap();
    // Minutes: port ×2, query ×1; hours: port, query.
    assert_eq!(h.rollup_now().await.unwrap(), 5);
    // Done buckets are not rolled up again.
    assert_eq!(h.rollup_now().await.unwrap(), 0);

    let q = |check: &str, granularity| RollupQuery {
        component: "db".into(),
        check: Some(check.into()),
        granularity,
        since: None,
        until: None,
        limit: 100,
    };
    let minutes = h.rollups(&q("port", Granularity::Minute)).await.unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:#?}");
    expect_rollup(&minutes[0], &second, m1);
    expect_rollup(&minutes[1], &first, m0);
    assert_eq!(minutes[1].latency_p95_ms, 19.0);
    assert_eq!(minutes[0].granularity, Granularity::Minute);
    assert_eq!(minutes[0].instance, "node-a");
    let hours = h.rollups(&q("port", Granularity::Hour)).await.unwrap();
    assert_eq!(hours.len(), 1);
    let both: Vec<(Status, f64)> = first.iter().chain(&second).copied().collect();
    expect_rollup(&hours[0], &both, hour);
    let query = h.rollups(&q("query", Granularity::Minute)).await.unwrap();
    assert_eq!(query.len(), 1);
    expect_rollup(&query[0], &[(Status::Pass, 50.0)], m0);

    // All checks of the component, newest bucket first.
    let mut all = q("port", Granularity::Minute);
    all.check = None;
    let rows = h.rollups(&all).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].start.as_millisecond(), m1);
    // A time range.
    all.since = Some(ts(m1));
    assert_eq!(h.rollups(&all).await.unwrap().len(), 1);
    assert!(h.stats().rollups_written() >= 5);
    h.close().await;
}

pub(crate) async fn retention_prunes_what_is_past_it(b: Backend) {
    let h = b
        .builder("node-a")
        .raw_retention(Duration::from_secs(3600))
        .retention(Duration::from_secs(3 * 3600))
        .open()
        .await
        .expect("store opens");
    h.begin_session(1);
    let now = Timestamp::now();
    // `mid` is past the raw retention and well inside the retention, so no
    // hour boundary near the test's start moves its hour out of it.
    let (old, mid, new) = (ago(now, 5 * 3600), ago(now, 90 * 60), ago(now, 600));
    for (n, t) in [old, mid, new].into_iter().enumerate() {
        feed(&h, "db", "port", Status::Pass, 1.0, t);
        h.record_event(&Event {
            seq: n as u64 + 1,
            epoch: 1,
            time: t,
            subject: Subject::Component { id: "db".into() },
            change: Change::Status {
                from: Status::Unknown,
                to: Status::Pass,
                result: None,
            },
        });
    }
    h.flush().await.unwrap();
    let stored = async || {
        let p = h.query(&HistoryQuery::component("db")).await.unwrap();
        let r: Vec<Timestamp> = p.results.iter().map(|r| r.time).collect();
        let t: Vec<u64> = p.transitions.iter().map(|t| t.seq).collect();
        (r, t)
    };

    // Nothing rolled up yet: raw results stay, whatever their age.
    let report = h.prune_now().await.unwrap();
    assert_eq!((report.results, report.transitions), (0, 1), "{report:?}");
    let (results, seqs) = stored().await;
    assert_eq!(results.len(), 3);
    assert_eq!(seqs, [3, 2]);

    h.rollup_now().await.unwrap();
    let report = h.prune_now().await.unwrap();
    assert_eq!(report.results, 2, "{report:?}");
    assert_eq!(
        report.rollups, 2,
        "the minute and hour of the oldest: {report:?}"
    );
    let (results, seqs) = stored().await;
    assert_eq!(results, [ts(new.as_millisecond())]);
    assert_eq!(seqs, [3, 2]);
    let minutes = h
        .rollups(&RollupQuery {
            component: "db".into(),
            check: None,
            granularity: Granularity::Minute,
            since: None,
            until: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:#?}");
    assert!(minutes.iter().all(|r| r.start >= ago(now, 3 * 3600)));
    assert_eq!(h.stats().rows_pruned(), 1 + 2 + 2);
    h.close().await;
}

pub(crate) async fn uptime_counts_time_between_sessions_as_no_data(b: Backend) {
    let since = Timestamp::now();
    let state = Arc::new(AtomicU8::new(0));

    // Run 1: db passes.
    let h1 = b.builder("node-a").open().await.expect("store opens");
    let e1 = engine(&h1, &state);
    let started1 = Timestamp::now();
    eventually(WAIT, "db passes in run 1", || async {
        h1.flush().await.ok()?;
        let p = h1.query(&HistoryQuery::component("db")).await.ok()?;
        p.transitions
            .iter()
            .any(|t| t.subject == SubjectKind::Component && t.to == Some(Status::Pass))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    e1.shutdown();
    h1.close().await;
    let stopped1 = Timestamp::now();

    // Vitalis is down for a second.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // Run 2: db fails.
    state.store(2, Ordering::SeqCst);
    let started2 = Timestamp::now();
    let h2 = b.builder("node-a").open().await.expect("store opens again");
    let e2 = engine(&h2, &state);
    eventually(WAIT, "db fails in run 2", || {
        component_fails_in(&h2, e2.epoch())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    h2.flush().await.unwrap();
    let until = Timestamp::now();

    let r = h2.uptime(UptimeQuery { since, until }).await.unwrap();
    assert_eq!(r.instance, "node-a");
    assert_eq!(r.sessions.len(), 2, "{r:#?}");
    assert_eq!(r.sessions[0].epoch, e1.epoch());
    assert!(
        r.sessions[0].stopped.is_some(),
        "run 1 stopped cleanly: {r:#?}"
    );
    assert_eq!(r.sessions[1].epoch, e2.epoch());
    assert!(r.sessions[1].stopped.is_none());
    let ms = |a: Timestamp, b: Timestamp| b.duration_since(a).as_secs_f64() * 1000.0;
    let down = ms(stopped1, started2);
    let run1 = ms(started1, stopped1);
    assert!(down >= 1000.0);
    // Covered: both runs, not the time between them.
    assert!(r.monitored_ms <= r.window_ms - down + 5.0, "{r:#?}");
    assert!(r.monitored_ms >= run1 - 100.0, "{r:#?}");

    let db = r
        .components
        .iter()
        .find(|a| a.id.as_deref() == Some("db"))
        .unwrap();
    assert!(db.pass_ms >= 700.0, "{db:?}");
    assert!(db.fail_ms >= 500.0, "{db:?}");
    assert_eq!(db.warn_ms, 0.0);
    assert!(db.no_data_ms >= down - 5.0, "{db:?}");
    assert!(db.observed_ms <= r.monitored_ms);
    assert_eq!(db.uptime, Some(db.up_ms / db.observed_ms));
    let u = db.uptime.unwrap();
    assert!(u > 0.0 && u < 1.0, "{u}");
    // db is critical: the system failed in run 2 as well.
    assert!(r.system.fail_ms >= 500.0, "{:?}", r.system);
    let group = r
        .groups
        .iter()
        .find(|g| g.id.as_deref() == Some("data"))
        .unwrap();
    assert!(group.pass_ms > 0.0 && group.fail_ms > 0.0);

    e2.shutdown();
    h2.close().await;
}

async fn component_fails_in(h: &History, epoch: u64) -> Option<()> {
    h.flush().await.ok()?;
    let p = h.query(&HistoryQuery::component("db")).await.ok()?;
    p.transitions
        .iter()
        .any(|t| {
            t.epoch == epoch && t.subject == SubjectKind::Component && t.to == Some(Status::Fail)
        })
        .then_some(())
}

pub(crate) async fn reopening_keeps_history_and_migrates_once(b: Backend) {
    let h = b.builder("node-a").open().await.expect("store opens");
    h.begin_session(1);
    feed(&h, "db", "port", Status::Pass, 2.0, Timestamp::now());
    h.flush().await.unwrap();
    h.close().await;
    let h = b.builder("node-a").open().await.expect("store opens again");
    let page = h.query(&HistoryQuery::component("db")).await.unwrap();
    assert_eq!(page.results.len(), 1);
    h.close().await;
    assert_eq!(scalar(&b, "SELECT count(*) FROM schema_version").await, 1);
    assert_eq!(
        scalar(&b, "SELECT max(version) FROM schema_version").await,
        1
    );

    // A database from a newer Vitalis is refused, with what to do.
    execute(
        &b,
        "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)",
    )
    .await;
    let err = b.builder("node-a").open().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                known: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade Vitalis"), "{err}");
    // Started anyway, the store reports it and keeps everything in memory.
    let h = b.builder("node-a").start();
    eventually(WAIT, "the store to fail", || async {
        (h.health().state == StoreState::Failing).then_some(())
    })
    .await;
    let health = h.health();
    assert!(health.last_error.unwrap().contains("schema version 99"));
    assert!(h.query(&HistoryQuery::default()).await.is_err());
}

async fn scalar(b: &Backend, sql: &'static str) -> i64 {
    match b {
        Backend::Sqlite(_) => {
            let mut c = sqlx::sqlite::SqliteConnection::connect(&b.url())
                .await
                .unwrap();
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
        Backend::Postgres(pg) => pg.psql(sql).parse().unwrap(),
    }
}

async fn execute(b: &Backend, sql: &'static str) {
    match b {
        Backend::Sqlite(_) => {
            let mut c = sqlx::sqlite::SqliteConnection::connect(&b.url())
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres(pg) => {
            pg.psql(sql);
        }
    }
}

/// Waits until the engine shows db passing (before a test breaks it).
async fn db_passes(engine: &Engine) {
    db_is(engine, Status::Pass).await
}

/// Waits until the engine shows `db` with `status`.
async fn db_is(engine: &Engine, status: Status) {
    eventually(WAIT, &format!("db to {status}"), || async {
        let snap = engine.snapshot();
        let ci = snap.topology.component("db")?;
        (snap.components[ci].status == Some(status)).then_some(())
    })
    .await;
}

/// Waits until `vitalis.store` fails; returns its error.
async fn store_fails(engine: &Engine) -> String {
    eventually(WAIT, "vitalis.store to fail", || async {
        let (s, text) = store_check(engine);
        (s == Status::Fail).then_some(text)
    })
    .await
}

/// After an outage: the store catches up on `backend`, every transition of
/// the engine's log is stored, the db failure among them; then both stop.
async fn catches_up_losing_nothing(engine: Engine, h: History, backend: &str) {
    store_recovers(&engine, &h).await;
    assert_eq!(h.backend(), Some(backend));
    assert_no_transition_lost(&engine, &h).await;
    assert!(db_failure_stored(&h, engine.epoch()).await);
    engine.shutdown();
    h.close().await;
}

/// An engine over `h` (its store and a switchable `db`), once the store
/// writes and db passes.
async fn healthy(h: &History) -> (Engine, Arc<AtomicU8>) {
    let state = Arc::new(AtomicU8::new(0));
    let engine = engine(h, &state);
    store_recovers(&engine, h).await;
    db_passes(&engine).await;
    (engine, state)
}

/// During an outage of the store: db fails, and the store's check fails
/// too; returns its error.
async fn db_fails_unstored(engine: &Engine, state: &AtomicU8) -> String {
    state.store(2, Ordering::SeqCst);
    db_is(engine, Status::Fail).await;
    store_fails(engine).await
}

/// Waits until writes succeed again and the store check passes.
async fn store_recovers(engine: &Engine, h: &History) {
    eventually(WAIT, "the store to catch up", || async {
        h.flush().await.ok()?;
        (h.health().state == StoreState::Writing).then_some(())
    })
    .await;
    eventually(WAIT, "vitalis.store to pass again", || async {
        (store_check(engine).0 == Status::Pass).then_some(())
    })
    .await;
}

pub(crate) async fn sqlite_locked(b: Backend) {
    let url = b.url();
    let h = b
        .builder("node-a")
        .max_pending_results(40)
        .open()
        .await
        .expect("store opens");
    let (engine, state) = healthy(&h).await;

    // Another process takes the write lock.
    let mut lock = sqlx::sqlite::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
    let error = db_fails_unstored(&engine, &state).await;
    for part in [url.as_str(), "locked", "buffered in memory", "catches up"] {
        assert!(error.contains(part), "{part} not in {error}");
    }
    // The buffer holds within its bound: old results go, transitions stay.
    eventually(WAIT, "results to be dropped", || async {
        (h.stats().results_dropped() > 0).then_some(())
    })
    .await;
    let health = h.health();
    assert!(health.pending_results <= 40, "{health:?}");
    // A write attempt holds its batch apart while it waits on the lock.
    eventually(WAIT, "transitions waiting in memory", || async {
        (h.health().pending_transitions > 0).then_some(())
    })
    .await;
    assert_eq!(h.stats().transitions_dropped(), 0);
    assert!(h.stats().errors_total() > 0);
    assert!(matches!(h.flush().await, Err(StoreError::Database { .. })));

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    catches_up_losing_nothing(engine, h, "sqlite").await;
}

pub(crate) async fn sqlite_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("later");
    let url = format!("sqlite://{}", sub.join("vitalis.db").display());
    let err = fast(History::builder(&url)).open().await.unwrap_err();
    assert!(
        err.to_string().contains("does its directory exist"),
        "{err}"
    );

    let h = fast(History::builder(&url).instance("node-a")).start();
    let state = Arc::new(AtomicU8::new(0));
    let engine = engine(&h, &state);
    let error = store_fails(&engine).await;
    assert!(
        error.contains(&url) && error.contains("cannot connect"),
        "{error}"
    );
    db_passes(&engine).await;
    state.store(2, Ordering::SeqCst);
    db_is(&engine, Status::Fail).await;
    eventually(WAIT, "transitions to wait in memory", || async {
        (h.health().pending_transitions > 4).then_some(())
    })
    .await;
    std::fs::create_dir(&sub).unwrap();
    catches_up_losing_nothing(engine, h, "sqlite").await;
}

pub(crate) async fn postgres_stopped() {
    use vitalis_testkit::postgres::{PASSWORD, Postgres};
    let mut pg = Postgres::start();
    let h = fast(History::builder(pg.url()).instance("node-a"))
        .open()
        .await
        .expect("store opens");
    let (engine, state) = healthy(&h).await;

    // A fast shutdown: every session is terminated. (Not SIGKILL: the test
    // server runs with synchronous_commit=off, so a crash would lose
    // commits it had acknowledged — its durability, not the store's.)
    tokio::task::block_in_place(|| pg.stop());
    let error = db_fails_unstored(&engine, &state).await;
    let shown = format!("postgres://vitalis:***@127.0.0.1:{}/vitalis", pg.port());
    assert!(error.contains(&shown), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(error.contains("buffered in memory"), "{error}");
    eventually(WAIT, "transitions to wait in memory", || async {
        (h.health().pending_transitions > 4).then_some(())
    })
    .await;

    tokio::task::block_in_place(|| pg.start_again());
    catches_up_losing_nothing(engine, h, "postgres").await;
}

pub(crate) async fn postgres_locked() {
    use vitalis_testkit::postgres::Postgres;
    let pg = Postgres::start();
    let h = fast(History::builder(pg.url()).instance("node-a"))
        .write_timeout(Duration::from_secs(1))
        .open()
        .await
        .expect("store opens");
    let (engine, state) = healthy(&h).await;

    // Another session locks the tables the writer inserts into, and keeps
    // the lock: every write now waits on it.
    let mut lock = sqlx::postgres::PgConnection::connect(&pg.url())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE results, transitions, sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    // Nothing is written: the store's check says so, it does not pass on.
    let error = db_fails_unstored(&engine, &state).await;
    assert!(error.contains("no answer within 1s"), "{error}");
    assert!(error.contains("buffered in memory"), "{error}");

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    catches_up_losing_nothing(engine, h, "postgres").await;
}

pub(crate) async fn a_gap_in_the_event_log_is_restated_from_a_snapshot(b: Backend) {
    let h = b.builder("node-a").open().await.expect("store opens");
    let state = Arc::new(AtomicU8::new(0));
    // A log of two events, and the store attached only once it has wrapped:
    // the first events are gone when the recorder starts reading.
    let engine = Engine::builder()
        .defaults(vitalis_core::Defaults {
            interval: Duration::from_millis(50),
            ..vitalis_core::Defaults::default()
        })
        .event_capacity(2)
        .observer(h.observer())
        .component(h.component())
        .component(vitalis_core::Component::new("db").group("data").check(
            vitalis_core::CheckSpec::live("port", crate::support::switch(&state)),
        ))
        .start()
        .unwrap();
    db_passes(&engine).await;
    assert!(matches!(engine.events().since(0), Replay::Gap));
    h.attach(&engine);
    h.flush().await.unwrap();
    // At least the gap at attach; the store's own first transitions may
    // overrun a two-event log again. Never a resync per loop turn (a
    // snapshot older than the log is waited out, not restated again).
    let gaps = h.stats().gaps();
    assert!((1..=10).contains(&gaps), "{gaps} gaps");
    let all = transitions(&h).await;
    let resynced = |subject: SubjectKind, id: Option<&str>, to: Status| {
        all.iter().any(|t| {
            t.change == ChangeKind::Resync
                && t.subject == subject
                && t.to == Some(to)
                && (t.component.as_deref().or(t.group.as_deref())) == id
        })
    };
    assert!(
        resynced(SubjectKind::Check, Some("db"), Status::Pass),
        "{all:#?}"
    );
    assert!(
        resynced(SubjectKind::Component, Some("db"), Status::Pass),
        "{all:#?}"
    );
    assert!(
        resynced(SubjectKind::Group, Some("data"), Status::Pass),
        "{all:#?}"
    );
    // Until attached, the store's own check reads unknown, and so does the
    // system — or already pass, if the store's check ran between the start
    // of its session and the restatement.
    let store = Some("vitalis.store");
    let restated = |subject: SubjectKind, id: Option<&str>| {
        resynced(subject, id, Status::Unknown) || resynced(subject, id, Status::Pass)
    };
    assert!(restated(SubjectKind::Component, store), "{all:#?}");
    assert!(restated(SubjectKind::System, None), "{all:#?}");
    // Uptime starts from the restated state.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let up = h
        .uptime(UptimeQuery::last(Duration::from_secs(60)))
        .await
        .unwrap();
    let db = up
        .components
        .iter()
        .find(|a| a.id.as_deref() == Some("db"))
        .unwrap();
    assert!(db.pass_ms >= 150.0 && db.uptime == Some(1.0), "{db:?}");
    engine.shutdown();
    h.close().await;
}
