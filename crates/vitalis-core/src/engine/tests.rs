//! Engine behaviour under paused time: timeouts, hangs, panics, damping,
//! the breaker, single flight, refresh deadlines, on-demand checks,
//! staleness, run-time changes and the event log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use crate::events::{Change, Replay, Subject};
use crate::{
    BreakerSettings, CheckSettings, CheckSpec, Circuit, Component, Defaults, Engine, Group, Level,
    Outcome, Snapshot, Status, View,
};

/// Paused-time tests run checks on the test's runtime: their closures are
/// async-only, so they run on the shared workers (blocking-pool threads would
/// hold off tokio's auto-advance of paused time).
fn check_fn<F, Fut, O>(f: F) -> crate::check::FnCheck<F>
where
    F: Fn(crate::CheckCx) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = O> + Send + 'static,
    O: crate::IntoOutcome,
{
    crate::check_fn(f).nonblocking()
}

fn counting(runs: &Arc<AtomicUsize>, status: Status) -> impl crate::Check {
    let runs = runs.clone();
    check_fn(move |_| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move { Outcome::new(status, format!("reported {status}")) }
    })
}

fn pass() -> impl crate::Check {
    check_fn(|_| async { Outcome::pass("ok") })
}

fn settings(interval_s: u64) -> CheckSettings {
    CheckSettings {
        interval: Some(Duration::from_secs(interval_s)),
        ..CheckSettings::default()
    }
}

/// Waits (in paused time) until the snapshot satisfies `pred`.
async fn until(
    engine: &Engine,
    within: Duration,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let deadline = Instant::now() + within;
    let mut w = engine.watch_snapshots();
    loop {
        let snap = engine.snapshot();
        if pred(&snap) {
            return snap;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}; last snapshot: {snap:#?}"
        );
        let _ = tokio::time::timeout_at(deadline, w.changed()).await;
    }
}

fn check<'a>(snap: &'a Snapshot, component: &str, name: &str) -> &'a crate::CheckState {
    &snap.checks[snap.topology.check(component, name).expect("check exists")]
}

#[tokio::test(start_paused = true)]
async fn first_runs_happen_within_a_second_and_pass() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut b = Engine::builder();
    for i in 0..50 {
        b = b.component(
            Component::new(format!("c{i}"))
                .check(CheckSpec::live("up", counting(&runs, Status::Pass))),
        );
    }
    let engine = b.start().unwrap();
    assert_eq!(engine.snapshot().system(), Status::Unknown);
    let t0 = Instant::now();
    let snap = until(&engine, Duration::from_secs(2), |s| {
        s.system() == Status::Pass
    })
    .await;
    assert!(
        t0.elapsed() <= Duration::from_millis(1100),
        "first runs took {:?}",
        t0.elapsed()
    );
    assert_eq!(runs.load(Ordering::SeqCst), 50);
    assert!(snap.checks.iter().all(|c| c.runs == 1));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_check_times_out_on_time_without_stalling_others() {
    let fast_runs = Arc::new(AtomicUsize::new(0));
    let engine =
        Engine::builder()
            .component(
                Component::new("hangs").check(
                    CheckSpec::ready("forever", check_fn(|_| std::future::pending::<Outcome>()))
                        .timeout(Duration::from_secs(2)),
                ),
            )
            .component(Component::new("fast").check(
                CheckSpec::live("up", counting(&fast_runs, Status::Pass)).settings(settings(1)),
            ))
            .start()
            .unwrap();
    let t0 = Instant::now();
    let snap = until(&engine, Duration::from_secs(4), |s| {
        check(s, "hangs", "forever").runs == 1
    })
    .await;
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_millis(3100),
        "timeout reported after {took:?}"
    );
    let c = check(&snap, "hangs", "forever");
    assert_eq!(c.status, Status::Fail);
    let err = c.result.as_ref().unwrap().error.as_deref().unwrap();
    assert!(err.starts_with("timed out after 2s"), "{err}");
    // The fast check kept its schedule meanwhile.
    assert!(fast_runs.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_fails_alone_with_its_message() {
    let engine = Engine::builder()
        .component(Component::new("buggy").check(CheckSpec::ready(
            "explodes",
            check_fn(|_| async {
                if true {
                    panic!("index out of range in feature lookup");
                }
                Outcome::pass("unreachable")
            }),
        )))
        .component(Component::new("fine").check(CheckSpec::live("up", pass())))
        .start()
        .unwrap();
    let snap = until(&engine, Duration::from_secs(2), |s| {
        s.checks.iter().all(|c| c.runs >= 1)
    })
    .await;
    let c = check(&snap, "buggy", "explodes");
    assert_eq!(c.status, Status::Fail);
    let err = c.result.as_ref().unwrap().error.as_deref().unwrap();
    assert!(
        err.contains("check panicked: index out of range in feature lookup"),
        "{err}"
    );
    assert_eq!(check(&snap, "fine", "up").status, Status::Pass);
    // The engine lives on: the panicking check runs again on schedule.
    until(&engine, Duration::from_secs(12), |s| {
        check(s, "buggy", "explodes").runs >= 2
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn failure_and_success_thresholds_damp_flapping() {
    // Results: pass, fail, fail, pass, fail, fail, fail, pass, pass, ...
    let script = [
        Status::Pass,
        Status::Fail,
        Status::Fail,
        Status::Pass,
        Status::Fail,
        Status::Fail,
        Status::Fail,
    ];
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let flappy = check_fn(move |_| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        async move { Outcome::new(*script.get(i).unwrap_or(&Status::Pass), "scripted") }
    });
    let engine = Engine::builder()
        .component(
            Component::new("feed").check(CheckSpec::live("tick", flappy).settings(CheckSettings {
                failure_threshold: Some(3),
                success_threshold: Some(2),
                breaker: Some(BreakerSettings {
                    enabled: false,
                    ..BreakerSettings::default()
                }),
                ..settings(1)
            })),
        )
        .start()
        .unwrap();
    let mut seen = Vec::new();
    for runs in 1..=9u64 {
        let snap = until(&engine, Duration::from_secs(3), |s| {
            check(s, "feed", "tick").runs >= runs
        })
        .await;
        seen.push(check(&snap, "feed", "tick").status);
    }
    use Status::*;
    assert_eq!(
        seen,
        vec![Pass, Pass, Pass, Pass, Pass, Pass, Fail, Fail, Pass]
    );
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_backs_off_and_a_refresh_forces_a_trial() {
    let runs = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder()
        .component(Component::new("exchange").check(
            CheckSpec::ready("orders", counting(&runs, Status::Fail)).settings(CheckSettings {
                breaker: Some(BreakerSettings {
                    enabled: true,
                    failures: 3,
                    open_for: Duration::from_secs(10),
                    max_open_for: Duration::from_secs(30),
                }),
                ..settings(1)
            }),
        ))
        .start()
        .unwrap();
    let snap = until(&engine, Duration::from_secs(5), |s| {
        check(s, "exchange", "orders").circuit == Circuit::Open
    })
    .await;
    let c = check(&snap, "exchange", "orders");
    assert_eq!(
        (c.runs, c.consecutive_failures, c.status),
        (3, 3, Status::Fail)
    );
    assert!(c.next_run.is_some());
    let opened = Instant::now();
    // No run while open; the trial comes after 10s, fails, and the circuit reopens for 20s.
    sleep(Duration::from_secs(9)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    until(&engine, Duration::from_secs(3), |s| {
        check(s, "exchange", "orders").runs == 4
    })
    .await;
    let trial = opened.elapsed();
    assert!(
        trial >= Duration::from_secs(10) && trial < Duration::from_millis(10_500),
        "{trial:?}"
    );
    sleep(Duration::from_secs(19)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4, "second open period is 20s");
    until(&engine, Duration::from_secs(3), |s| {
        check(s, "exchange", "orders").runs == 5
    })
    .await;
    // Third open period is capped at 30s; a refresh forces a trial before that.
    sleep(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    let r = engine.refresh(|_| true, Duration::from_millis(80)).await;
    assert!(r.running.is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    assert_eq!(
        check(&r.snapshot, "exchange", "orders").circuit,
        Circuit::Open
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_refreshes_share_one_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    let slowish = check_fn(move |_| {
        r2.fetch_add(1, Ordering::SeqCst);
        async {
            sleep(Duration::from_millis(30)).await;
            Outcome::pass("ok")
        }
    });
    let engine = Engine::builder()
        .component(
            Component::new("db").check(CheckSpec::ready("query", slowish).settings(settings(3600))),
        )
        .start()
        .unwrap();
    until(&engine, Duration::from_secs(2), |s| s.checks[0].runs == 1).await;
    sleep(Duration::from_secs(6)).await; // older than cache_ttl (5s)
    let before = runs.load(Ordering::SeqCst);
    let refreshes: Vec<_> = (0..16)
        .map(|_| {
            let e = engine.clone();
            tokio::spawn(async move { e.refresh(|_| true, Duration::from_millis(80)).await })
        })
        .collect();
    for r in refreshes {
        let r = r.await.unwrap();
        assert!(r.running.is_empty());
        assert_eq!(r.snapshot.checks[0].runs, 2);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst) - before,
        1,
        "16 concurrent refreshes ran the check once"
    );
    // A fresh result is a cache hit: nothing re-runs.
    let r = engine.refresh(|_| true, Duration::from_millis(80)).await;
    assert_eq!((r.expired, runs.load(Ordering::SeqCst) - before), (0, 1));
    // A rerun runs it anyway, still single flight across concurrent callers.
    let reruns: Vec<_> = (0..4)
        .map(|_| {
            let e = engine.clone();
            tokio::spawn(async move { e.rerun(|_| true, Duration::from_millis(80)).await })
        })
        .collect();
    for r in reruns {
        let r = r.await.unwrap();
        assert_eq!((r.expired, r.snapshot.checks[0].runs), (1, 3));
    }
    assert_eq!(runs.load(Ordering::SeqCst) - before, 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_returns_at_its_deadline_marking_slow_checks_running() {
    let slow = check_fn(|_| async {
        sleep(Duration::from_millis(1500)).await;
        Outcome::pass("slow but fine")
    });
    let engine = Engine::builder()
        .component(
            Component::new("model")
                .check(CheckSpec::deep("inference", slow).settings(settings(3600))),
        )
        .start()
        .unwrap();
    let t0 = Instant::now();
    let r = engine.refresh(|_| true, Duration::from_millis(80)).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(80) && took < Duration::from_millis(100),
        "{took:?}"
    );
    assert_eq!(r.running, vec![0]);
    assert_eq!(r.snapshot.checks[0].status, Status::Unknown);
}

#[tokio::test(start_paused = true)]
async fn on_demand_checks_run_only_when_read_after_their_ttl() {
    let runs = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder()
        .component(Component::new("reports").check(
            CheckSpec::deep("export", counting(&runs, Status::Pass)).settings(CheckSettings {
                on_demand: true,
                cache_ttl: Some(Duration::from_secs(5)),
                ..CheckSettings::default()
            }),
        ))
        .start()
        .unwrap();
    sleep(Duration::from_secs(30)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no schedule for on-demand checks"
    );
    let (snap, asked) = engine.read();
    assert_eq!(
        (asked, snap.checks[0].runs),
        (1, 0),
        "the reader is answered at once from the cache"
    );
    until(&engine, Duration::from_secs(1), |s| s.checks[0].runs == 1).await;
    for _ in 0..5 {
        let (_, asked) = engine.read();
        assert_eq!(asked, 0, "fresh results are served from the cache");
    }
    sleep(Duration::from_secs(5)).await;
    assert_eq!(engine.read().1, 1);
    until(&engine, Duration::from_secs(1), |s| s.checks[0].runs == 2).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn old_results_turn_unknown_and_count_as_fail_after_grace() {
    // A check whose schedule stops (interval 1h) but whose results go stale after 10s:
    // a wedged scheduler must never serve an old pass.
    let engine = Engine::builder()
        .component(Component::new("risk").critical(true).check(
            CheckSpec::live("up", pass()).settings(CheckSettings {
                stale_after: Some(Duration::from_secs(10)),
                grace: Some(Duration::from_secs(20)),
                ..settings(3600)
            }),
        ))
        .start()
        .unwrap();
    until(&engine, Duration::from_secs(2), |s| {
        s.system() == Status::Pass
    })
    .await;
    let snap = until(&engine, Duration::from_secs(12), |s| {
        s.checks[0].status == Status::Unknown
    })
    .await;
    assert!(snap.checks[0].stale);
    assert_eq!(
        snap.system(),
        Status::Unknown,
        "within grace, unknown stays unknown"
    );
    let snap = until(&engine, Duration::from_secs(12), |s| {
        s.system() == Status::Fail
    })
    .await;
    assert_eq!(snap.checks[0].status, Status::Unknown);
    assert_eq!(snap.view(View::All).root_causes, vec![0]);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_not_green_before_checks_ran() {
    let engine = Engine::builder()
        .component(
            Component::new("db")
                .check(CheckSpec::ready("query", pass()))
                .check(CheckSpec::deep("fresh", pass())),
        )
        .start()
        .unwrap();
    let snap = engine.snapshot();
    assert_eq!(snap.view(View::Ready).system, Status::Unknown);
    assert_eq!(
        snap.view(View::Live).system,
        Status::Pass,
        "no live checks: nothing to fail"
    );
    let snap = until(&engine, Duration::from_secs(2), |s| {
        s.checks.iter().all(|c| c.runs == 1)
    })
    .await;
    assert_eq!(snap.view(View::Ready).system, Status::Pass);
    assert_eq!(snap.topology.checks[1].level, Level::Deep);
}

#[tokio::test(start_paused = true)]
async fn inactive_checks_do_not_run_and_are_left_out() {
    // A window covering every day but today (UTC): closed now.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let others: Vec<&str> = (0..7)
        .filter(|d| *d != today)
        .map(|d| days[d as usize])
        .collect();
    let window = crate::ActiveWindow::parse(&others.join(","), "00:00", "00:00", "UTC").unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder()
        .component(
            Component::new("feed")
                .critical(true)
                .check(
                    CheckSpec::live("ticks", counting(&runs, Status::Fail)).settings(
                        CheckSettings {
                            active: vec![window],
                            ..settings(1)
                        },
                    ),
                )
                .check(CheckSpec::live("up", pass())),
        )
        .start()
        .unwrap();
    let snap = until(&engine, Duration::from_secs(2), |s| {
        check(s, "feed", "up").runs == 1
    })
    .await;
    sleep(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert!(!check(&snap, "feed", "ticks").active);
    assert_eq!(engine.snapshot().system(), Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn runtime_changes_keep_the_state_of_others() {
    let engine = Engine::builder()
        .group(Group::new("data"))
        .component(
            Component::new("db")
                .group("data")
                .check(CheckSpec::live("up", pass()).settings(settings(1))),
        )
        .start()
        .unwrap();
    until(&engine, Duration::from_secs(3), |s| s.checks[0].runs >= 2).await;
    let runs_before = engine.snapshot().checks[0].runs;
    engine
        .upsert(
            Component::new("late")
                .group("data")
                .critical(true)
                .depends_on("db")
                .check(CheckSpec::live("tcp", pass())),
        )
        .await
        .unwrap();
    let snap = engine.snapshot();
    assert_eq!(snap.topology.components.len(), 2);
    assert!(
        check(&snap, "db", "up").runs >= runs_before,
        "db kept its state"
    );
    assert_eq!(check(&snap, "late", "tcp").runs, 0);
    until(&engine, Duration::from_secs(2), |s| {
        check(s, "late", "tcp").runs == 1
    })
    .await;
    // Replacing restarts only the replaced component's checks.
    engine
        .upsert(Component::new("late").group("data").check(CheckSpec::live(
            "tcp2",
            counting(&Arc::default(), Status::Warn),
        )))
        .await
        .unwrap();
    let snap = engine.snapshot();
    assert!(snap.topology.check("late", "tcp").is_none());
    assert_eq!(check(&snap, "late", "tcp2").runs, 0);
    assert!(check(&snap, "db", "up").runs >= runs_before);
    // A bad batch changes nothing.
    let err = engine
        .upsert(
            Component::new("x")
                .depends_on("nowhere")
                .check(CheckSpec::live("a", pass())),
        )
        .await;
    assert!(err.is_err());
    assert!(engine.snapshot().topology.component("x").is_none());
    engine.remove("late").await.unwrap();
    assert!(engine.remove("late").await.is_err());
    let Replay::Events(events) = engine.events().since(0) else {
        panic!("gap")
    };
    let regs: Vec<_> = events
        .iter()
        .filter_map(|e| match (&e.subject, &e.change) {
            (Subject::Component { id }, Change::Added | Change::Removed) => {
                Some(format!("{id}:{:?}", e.change))
            }
            _ => None,
        })
        .collect();
    assert_eq!(regs, vec!["db:Added", "late:Added", "late:Removed"]);
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_an_ordered_event_and_snapshots_carry_their_seq() {
    let flips = Arc::new(AtomicU32::new(0));
    let f2 = flips.clone();
    let flapping = check_fn(move |_| {
        let n = f2.fetch_add(1, Ordering::SeqCst);
        async move { Outcome::pass_if(n.is_multiple_of(2), "alternating") }
    });
    let engine = Engine::builder()
        .publish_interval(Duration::from_secs(5)) // coalesce snapshots hard; events must not be coalesced
        .component(Component::new("flappy").critical(true).check(
            CheckSpec::live("alt", flapping).settings(CheckSettings {
                breaker: Some(BreakerSettings {
                    enabled: false,
                    ..BreakerSettings::default()
                }),
                ..settings(1)
            }),
        ))
        .start()
        .unwrap();
    sleep(Duration::from_secs(6)).await;
    let Replay::Events(events) = engine.events().since(0) else {
        panic!("gap")
    };
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let system: Vec<(Status, Status)> = events
        .iter()
        .filter_map(|e| match (&e.subject, &e.change) {
            (Subject::System, Change::Status { from, to, .. }) => Some((*from, *to)),
            _ => None,
        })
        .collect();
    let n = flips.load(Ordering::SeqCst) as usize;
    assert!(n >= 5);
    // unknown→pass, then one transition per flip.
    assert_eq!(system.len(), n, "{system:?}");
    assert_eq!(system[0], (Status::Unknown, Status::Pass));
    assert!(system[1..].iter().all(|(f, t)| f != t));
    let snap = engine.snapshot();
    assert!(snap.seq <= engine.events().last_seq());
    assert_eq!(snap.epoch, engine.epoch());
}

#[tokio::test(start_paused = true)]
async fn root_causes_flow_through_the_engine() {
    let engine = Engine::builder()
        .defaults(Defaults { interval: Duration::from_secs(1), ..Defaults::default() })
        .component(Component::new("trading-db").critical(true).check(CheckSpec::ready("query", check_fn(|_| async {
            Outcome::fail("postgres://127.0.0.1:5432/trading: connection refused; is PostgreSQL running?")
        }))))
        .component(
            Component::new("features")
                .depends_on("trading-db")
                .check(CheckSpec::deep("fresh", check_fn(|_| async { Outcome::fail("newest feature row is 600s old") }))),
        )
        .start()
        .unwrap();
    let snap = until(&engine, Duration::from_secs(2), |s| {
        s.checks.iter().all(|c| c.runs >= 1)
    })
    .await;
    assert_eq!(snap.system(), Status::Fail);
    let agg = snap.view(View::All);
    assert_eq!(agg.root_causes, vec![0]);
    assert_eq!(agg.impacted_by[1], vec![0]);
    assert_eq!(snap.components[1].status, Some(Status::Fail));
}

/// Real time, a dedicated check runtime: a check that blocks its thread
/// (a closure: `may_block` by default, so it runs on a lane of the blocking
/// pool) is reported on time, other checks keep running — async ones and
/// closures that share the lanes with it — and no second run piles up
/// behind the blocked one.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_check_blocking_its_thread_is_reported_on_time() {
    let fast_runs = Arc::new(AtomicUsize::new(0));
    let closure_runs = Arc::new(AtomicUsize::new(0));
    let c2 = closure_runs.clone();
    let blocked_runs = Arc::new(AtomicUsize::new(0));
    let b2 = blocked_runs.clone();
    let engine = Engine::builder()
        .check_runtime(crate::CheckRuntime::Dedicated(2))
        .tick(Duration::from_millis(50))
        .component(
            Component::new("blocker").check(
                CheckSpec::ready(
                    "sync-io",
                    crate::check_fn(move |_| {
                        b2.fetch_add(1, Ordering::SeqCst);
                        async {
                            std::thread::sleep(Duration::from_millis(1500));
                            Outcome::pass("finally")
                        }
                    }),
                )
                .timeout(Duration::from_millis(200))
                .interval(Duration::from_millis(300)),
            ),
        )
        .component(
            Component::new("fast").check(
                CheckSpec::live("up", counting(&fast_runs, Status::Pass))
                    .interval(Duration::from_millis(100)),
            ),
        )
        .component(
            Component::new("fast-closure").check(
                CheckSpec::live(
                    "up",
                    crate::check_fn(move |_| {
                        c2.fetch_add(1, Ordering::SeqCst);
                        async { Outcome::pass("quick") }
                    }),
                )
                .interval(Duration::from_millis(100)),
            ),
        )
        .start()
        .unwrap();
    let started = std::time::Instant::now();
    let snap = until(&engine, Duration::from_secs(3), |s| {
        check(s, "blocker", "sync-io").status == Status::Fail
    })
    .await;
    // First run within 1 s, then its 200 ms timeout, plus slack.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "reported after {:?}",
        started.elapsed()
    );
    let err = check(&snap, "blocker", "sync-io")
        .result
        .as_ref()
        .unwrap()
        .error
        .clone()
        .unwrap();
    assert!(err.starts_with("timed out after 200ms"), "{err}");
    let before = fast_runs.load(Ordering::SeqCst);
    let closures_before = closure_runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        fast_runs.load(Ordering::SeqCst) > before + 2,
        "other checks keep running"
    );
    assert!(
        closure_runs.load(Ordering::SeqCst) > closures_before + 2,
        "closures on the other lanes keep running"
    );
    assert_eq!(
        check(&engine.snapshot(), "fast-closure", "up").status,
        Status::Pass
    );
    // The next due time finds the blocked run still going: reported, not piled up.
    let snap = until(&engine, Duration::from_secs(2), |s| {
        let r = check(s, "blocker", "sync-io")
            .result
            .as_ref()
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        r.contains("still running past its 200ms timeout")
    })
    .await;
    assert_eq!(check(&snap, "blocker", "sync-io").status, Status::Fail);
    assert_eq!(
        blocked_runs.load(Ordering::SeqCst),
        1,
        "no run started behind the blocked one"
    );
}
