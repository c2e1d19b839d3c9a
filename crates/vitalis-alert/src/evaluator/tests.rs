//! The evaluator against a real engine under paused time: `for`, root cause
//! first (holds and refreshes), severity, redundancy sets, the system,
//! removal, maintenance, and a property test over random fault scripts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use tokio::time::Instant;
use vitalis_config::{MaintenanceWindow, RouteMatch};
use vitalis_core::events::{Change, Event, Replay};
use vitalis_core::{
    ActiveWindow, BreakerSettings, CheckSettings, CheckSpec, Component, Engine, Group, Outcome,
    Status,
};

use super::*;

/// A check's status, set by the test.
#[derive(Clone, Default)]
struct Switch(Arc<AtomicU8>);

impl Switch {
    fn set(&self, s: Status) {
        self.0.store(
            match s {
                Status::Pass => 0,
                Status::Warn => 1,
                Status::Fail => 2,
                Status::Unknown => 3,
            },
            Ordering::SeqCst,
        );
    }

    fn get(&self) -> Status {
        match self.0.load(Ordering::SeqCst) {
            0 => Status::Pass,
            1 => Status::Warn,
            2 => Status::Fail,
            _ => Status::Unknown,
        }
    }
}

/// A check that reports the worst of `switches` (a symptom of each of them).
fn check(name: &str, switches: &[&Switch], interval: Duration) -> CheckSpec {
    let switches: Vec<Switch> = switches.iter().map(|s| (*s).clone()).collect();
    CheckSpec::live(
        name,
        vitalis_core::check_fn(move |_| {
            let s = Status::worst_of(switches.iter().map(Switch::get)).unwrap_or(Status::Pass);
            async move { Outcome::new(s, format!("reported {s}")) }
        })
        .nonblocking(),
    )
    .settings(CheckSettings {
        interval: Some(interval),
        timeout: Some(Duration::from_millis(500)),
        // The breaker would keep a failing status for its open time; these
        // tests follow the switches.
        breaker: Some(BreakerSettings {
            enabled: false,
            ..BreakerSettings::default()
        }),
        ..CheckSettings::default()
    })
}

const SEC: Duration = Duration::from_secs(1);

/// A Tuesday: outside a Monday maintenance window.
fn tuesday() -> Timestamp {
    "2024-01-02T12:00:00Z".parse().unwrap()
}

fn monday() -> Timestamp {
    "2024-01-01T12:00:00Z".parse().unwrap()
}

/// What the harness saw: each notification with when it came.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    n: Notification,
}

/// Drives an evaluator the way the alerting task does, in 50 ms steps of
/// paused time, performing the refreshes it asks for.
struct Harness {
    engine: Engine,
    ev: Evaluator,
    seen_seq: u64,
    wall: Timestamp,
    notes: Vec<Seen>,
    /// Per notification index: whether its subject was impacted in the
    /// snapshot it was decided on.
    impacted_at_firing: Vec<bool>,
}

impl Harness {
    fn new(engine: Engine, settings: Settings) -> Self {
        let seen_seq = engine.snapshot().seq;
        Harness {
            engine,
            ev: Evaluator::new(settings),
            seen_seq,
            wall: tuesday(),
            notes: Vec::new(),
            impacted_at_firing: Vec::new(),
        }
    }

    async fn step(&mut self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let snap = self.engine.snapshot();
        match self.engine.events().since(self.seen_seq) {
            Replay::Events(events) => {
                for e in events.iter().filter(|e| e.seq <= snap.seq) {
                    self.ev.observe(e);
                    self.seen_seq = e.seq;
                }
            }
            Replay::Gap => self.seen_seq = snap.seq,
        }
        let out = self.ev.evaluate(&snap, Instant::now(), self.wall);
        let agg = snap.view(View::All);
        for n in out.notifications {
            let impacted = match &n.alert.subject {
                Subject::Component(id) => snap
                    .topology
                    .component(id)
                    .is_some_and(|i| !agg.impacted_by[i].is_empty()),
                _ => false,
            };
            self.impacted_at_firing.push(impacted);
            self.notes.push(Seen {
                at: Instant::now(),
                n,
            });
        }
        if !out.refresh.is_empty() {
            let engine = self.engine.clone();
            let wanted = out.refresh.clone();
            let wait = self.ev.settings().root_cause_wait;
            tokio::spawn(async move {
                engine.rerun(move |k| wanted.contains(&k), wait).await;
            });
        }
    }

    async fn run_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.step().await;
        }
    }

    /// Runs until a notification matching `pred` arrives (within `within`).
    async fn until(&mut self, within: Duration, what: &str, pred: impl Fn(&Notification) -> bool) {
        let until = Instant::now() + within;
        let start = self.notes.len();
        loop {
            if self.notes[start..].iter().any(|s| pred(&s.n)) {
                return;
            }
            assert!(
                Instant::now() < until,
                "no {what} within {within:?}; notifications: {:#?}",
                self.brief()
            );
            self.step().await;
        }
    }

    fn brief(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} {} impacts={:?}",
                    s.n.dedup_key,
                    s.n.alert.severity,
                    s.n.alert.status,
                    s.n.alert.subject,
                    s.n.alert.impacts
                )
            })
            .collect()
    }

    fn about(&self, subject: &str) -> Vec<&Notification> {
        self.notes
            .iter()
            .map(|s| &s.n)
            .filter(|n| n.alert.subject.to_string() == subject)
            .collect()
    }

    fn states(&self, subject: &str) -> Vec<State> {
        self.about(subject).iter().map(|n| n.state).collect()
    }
}

/// Settings with flap detection off (tests of other rules toggle faults
/// often enough to look like flapping).
fn no_flapping() -> Settings {
    Settings {
        flap_high: f64::INFINITY,
        ..Settings::default()
    }
}

fn start(b: vitalis_core::EngineBuilder) -> Engine {
    b.start().expect("valid registry")
}

#[tokio::test(start_paused = true)]
async fn fires_after_for_and_sends_the_resolution() {
    let db = Switch::default();
    let engine = start(
        Engine::builder().component(Component::new("db").critical(true).check(check(
            "port",
            &[&db],
            SEC,
        ))),
    );
    let mut h = Harness::new(
        engine,
        Settings {
            for_duration: Duration::from_secs(3),
            ..Settings::default()
        },
    );
    h.run_for(Duration::from_secs(2)).await;
    assert!(h.notes.is_empty(), "{:?}", h.brief());
    db.set(Status::Fail);
    let t0 = Instant::now();
    h.until(Duration::from_secs(6), "db firing", |n| {
        n.state == State::Firing && n.alert.component.as_deref() == Some("db")
    })
    .await;
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_millis(4600),
        "fired after {waited:?}"
    );
    let fired = h.about("component/db")[0].clone();
    assert_eq!(fired.alert.severity, Severity::Critical);
    assert_eq!(fired.alert.status, Status::Fail);
    assert_eq!(fired.alert.root_causes, ["db"]);
    assert_eq!(fired.alert.checks[0].check, "port");
    assert!(fired.dedup_key.starts_with("component:db:"));
    assert!(fired.dedup_key.ends_with(":firing"));
    // The system fails too (critical component): one alert of its own.
    h.run_for(SEC).await;
    let sys = h.about("system");
    assert_eq!(sys.len(), 1, "{:?}", h.brief());
    assert_eq!(
        (sys[0].alert.severity, sys[0].alert.root_causes.clone()),
        (Severity::Critical, vec!["db".to_string()])
    );
    db.set(Status::Pass);
    h.until(Duration::from_secs(3), "db resolved", |n| {
        n.state == State::Resolved && n.alert.component.as_deref() == Some("db")
    })
    .await;
    h.run_for(SEC).await;
    let resolved = h.about("component/db")[1].clone();
    assert_eq!(resolved.alert.id, fired.alert.id);
    assert_eq!(resolved.dedup_key, format!("{}:resolved", fired.alert.id));
    assert_eq!(resolved.resolution, Some(Resolution::Recovered));
    assert_eq!(resolved.alert.status, Status::Pass);
    assert!(resolved.alert.ended_at.is_some());
    assert_eq!(h.states("system"), [State::Firing, State::Resolved]);
    assert!(h.ev.firing().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_degradation_shorter_than_for_sends_nothing_and_warn_alerts_as_warning() {
    let db = Switch::default();
    let engine = start(
        Engine::builder().component(Component::new("db").critical(true).check(check(
            "port",
            &[&db],
            SEC,
        ))),
    );
    let mut h = Harness::new(
        engine,
        Settings {
            for_duration: Duration::from_secs(5),
            ..Settings::default()
        },
    );
    h.run_for(Duration::from_secs(2)).await;
    db.set(Status::Fail);
    h.run_for(Duration::from_secs(3)).await;
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(8)).await;
    assert!(h.notes.is_empty(), "{:?}", h.brief());
    // A critical component's warn is a warning.
    db.set(Status::Warn);
    h.until(Duration::from_secs(8), "warn alert", |n| {
        n.alert.component.as_deref() == Some("db")
    })
    .await;
    let n = h.about("component/db")[0];
    assert_eq!(
        (n.alert.status, n.alert.severity),
        (Status::Warn, Severity::Warning)
    );
}

#[tokio::test(start_paused = true)]
async fn a_recovery_seen_only_in_the_event_log_restarts_for() {
    let db = Switch::default();
    let engine =
        start(Engine::builder().component(Component::new("db").check(check("port", &[&db], SEC))));
    let epoch = engine.epoch();
    let mut h = Harness::new(
        engine,
        Settings {
            for_duration: Duration::from_secs(4),
            ..Settings::default()
        },
    );
    h.run_for(Duration::from_secs(2)).await;
    db.set(Status::Fail);
    h.run_for(Duration::from_secs(3)).await;
    // A pass between two snapshots (fail → pass → fail within one batch).
    h.ev.observe(&Event {
        seq: h.seen_seq,
        epoch,
        time: Timestamp::now(),
        subject: vitalis_core::Subject::Component { id: "db".into() },
        change: Change::Status {
            from: Status::Fail,
            to: Status::Pass,
            result: None,
        },
    });
    let t0 = Instant::now();
    h.until(Duration::from_secs(6), "db firing", |n| {
        n.state == State::Firing && n.alert.component.as_deref() == Some("db")
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn unknown_alerts_as_fail_only_after_its_grace() {
    let db = Switch::default();
    db.set(Status::Unknown);
    let engine = start(
        Engine::builder().component(Component::new("db").critical(true).check(check(
            "port",
            &[&db],
            SEC,
        ))),
    );
    let mut h = Harness::new(engine, Settings::default());
    // Grace: 2 × 1s + 500ms.
    h.run_for(Duration::from_millis(2300)).await;
    assert!(h.notes.is_empty(), "{:?}", h.brief());
    h.until(Duration::from_secs(2), "alert after grace", |n| {
        n.alert.component.as_deref() == Some("db")
    })
    .await;
    let n = h.about("component/db")[0];
    assert_eq!(
        (n.alert.status, n.alert.severity),
        (Status::Fail, Severity::Critical)
    );
    assert_eq!(n.alert.checks[0].status, Status::Unknown);
}

#[tokio::test(start_paused = true)]
async fn severity_overrides_and_defaults() {
    let (a, b, c) = (Switch::default(), Switch::default(), Switch::default());
    let mut loud = check("loud", &[&b], SEC);
    loud.settings.severity = Some("critical".into());
    let mut quiet = Component::new("reports").check(check("up", &[&c], SEC));
    quiet.severity = Some("info".into());
    let engine = start(
        Engine::builder()
            .component(Component::new("cache").check(check("up", &[&a], SEC)))
            .component(Component::new("ledger").check(loud))
            .component(quiet),
    );
    let mut h = Harness::new(engine, Settings::default());
    h.run_for(Duration::from_secs(2)).await;
    for s in [&a, &b, &c] {
        s.set(Status::Fail);
    }
    h.run_for(Duration::from_secs(3)).await;
    let sev = |s: &str| h.about(s)[0].alert.severity;
    // Non-critical fail: warning; a check's override wins; so does a component's.
    assert_eq!(sev("component/cache"), Severity::Warning);
    assert_eq!(sev("component/ledger"), Severity::Critical);
    assert_eq!(sev("component/reports"), Severity::Info);
    // Nothing critical fails: the system only degrades.
    assert_eq!(sev("system"), Severity::Warning);
}

/// db ← api (api's check fails whenever db is down): the symptom is seen
/// first (api runs every second, db every 5 s), yet only db pages, naming
/// api.
async fn symptom_first() -> (Harness, Instant) {
    let db = Switch::default();
    let mut db_check = check("port", &[&db], Duration::from_secs(5));
    db_check.settings = CheckSettings {
        interval: Some(Duration::from_secs(5)),
        timeout: Some(Duration::from_millis(500)),
        breaker: db_check.settings.breaker,
        ..CheckSettings::default()
    };
    let engine = start(
        Engine::builder()
            .component(Component::new("db").critical(true).check(db_check))
            .component(
                Component::new("api")
                    .critical(true)
                    .depends_on("db")
                    .check(check("orders", &[&db], SEC)),
            ),
    );
    let mut h = Harness::new(engine.clone(), Settings::default());
    h.run_for(Duration::from_secs(2)).await;
    // Just after db's run: its next one is ~5 s away.
    let snap = engine.snapshot();
    let k = snap.topology.check("db", "port").unwrap();
    let runs = snap.checks[k].runs;
    while engine.snapshot().checks[k].runs == runs {
        h.step().await;
    }
    db.set(Status::Fail);
    let failed_at = Instant::now();
    h.until(Duration::from_secs(12), "db's alert with its impact", |n| {
        n.alert.component.as_deref() == Some("db") && n.alert.impacts == ["api"]
    })
    .await;
    h.run_for(Duration::from_secs(3)).await;
    assert!(
        h.about("component/api").is_empty(),
        "the symptom paged: {:#?}",
        h.brief()
    );
    // The system's alert names the root cause only.
    let sys = h.about("system");
    assert_eq!(sys.len(), 1, "{:?}", h.brief());
    assert_eq!(sys[0].alert.root_causes, ["db"]);
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(8)).await;
    assert_eq!(
        h.states("component/db").last(),
        Some(&State::Resolved),
        "{:?}",
        h.brief()
    );
    assert!(h.about("component/api").is_empty(), "{:?}", h.brief());
    (h, failed_at)
}

#[tokio::test(start_paused = true)]
async fn root_cause_first_reruns_a_dependency_whose_result_predates_the_failure() {
    // db's result is recent (well within its 5 s cache_ttl) but older than
    // the failure api sees: the hold re-runs db at once instead of waiting
    // ~5 s for its next scheduled run.
    let (h, failed_at) = symptom_first().await;
    let first_db = h
        .notes
        .iter()
        .find(|s| s.n.alert.component.as_deref() == Some("db"))
        .unwrap();
    assert!(
        first_db.at - failed_at < Duration::from_secs(3),
        "db paged {:?} after the failure",
        first_db.at - failed_at
    );
    let sys = h
        .notes
        .iter()
        .find(|s| s.n.alert.subject == Subject::System)
        .unwrap();
    assert!(sys.at >= first_db.at);
}

/// db (critical, checked every second) ← api (non-critical), whose check
/// fails while any of `api_fails_with` does.
fn db_and_api(db: &Switch, api_fails_with: &[&Switch], api_interval: Duration) -> Engine {
    start(
        Engine::builder()
            .component(
                Component::new("db")
                    .critical(true)
                    .check(check("port", &[db], SEC)),
            )
            .component(Component::new("api").depends_on("db").check(check(
                "orders",
                api_fails_with,
                api_interval,
            ))),
    )
}

#[tokio::test(start_paused = true)]
async fn an_impacted_component_alerts_after_its_root_cause_recovers_if_still_failing() {
    let (db, api) = (Switch::default(), Switch::default());
    let engine = db_and_api(&db, &[&db, &api], SEC);
    let mut h = Harness::new(engine, no_flapping());
    h.run_for(Duration::from_secs(2)).await;
    db.set(Status::Fail);
    api.set(Status::Fail); // broken on its own too
    h.until(Duration::from_secs(5), "db alert naming api", |n| {
        n.alert.component.as_deref() == Some("db") && n.alert.impacts == ["api"]
    })
    .await;
    h.run_for(Duration::from_secs(2)).await;
    assert!(h.about("component/api").is_empty(), "{:?}", h.brief());
    db.set(Status::Pass);
    h.until(Duration::from_secs(5), "api's own alert", |n| {
        n.alert.component.as_deref() == Some("api") && n.state == State::Firing
    })
    .await;
    assert!(h.states("component/db").contains(&State::Resolved));
    let api_alert = h.about("component/api")[0];
    assert_eq!(api_alert.alert.severity, Severity::Warning);
    // When the symptom clears with its cause, it never alerts.
    api.set(Status::Pass);
    h.run_for(Duration::from_secs(3)).await;
    let before = h.about("component/api").len();
    db.set(Status::Fail);
    h.run_for(Duration::from_secs(3)).await;
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(4)).await;
    assert_eq!(h.about("component/api").len(), before, "{:?}", h.brief());
    assert!(h.ev.firing().is_empty(), "{:?}", h.ev.firing());
}

/// api is seen failing as db's symptom while it waits out `for`, and db
/// recovers before api's next run: at the end of `for` api's failure is
/// still the symptom's old result, so api confirms with a fresh run of its
/// own (which passes) instead of paging.
#[tokio::test(start_paused = true)]
async fn a_symptom_whose_cause_recovers_during_for_confirms_before_paging() {
    let db = Switch::default();
    let engine = db_and_api(&db, &[&db], Duration::from_secs(20));
    let settings = Settings {
        for_duration: Duration::from_secs(5),
        ..no_flapping()
    };
    let mut h = Harness::new(engine.clone(), settings);
    h.run_for(Duration::from_secs(2)).await;
    let k = engine.snapshot().topology.check("api", "orders").unwrap();
    let runs = engine.snapshot().checks[k].runs;
    db.set(Status::Fail);
    // api's next scheduled run sees db down: api fails, as db's symptom.
    while engine.snapshot().checks[k].runs == runs {
        h.step().await;
    }
    assert_eq!(engine.snapshot().checks[k].status, Status::Fail);
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(10)).await;
    assert!(
        !h.states("component/api").contains(&State::Firing),
        "api paged on its symptom's old result: {:?}",
        h.brief()
    );
    assert_eq!(engine.snapshot().checks[k].status, Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn removing_a_component_resolves_its_alert() {
    let db = Switch::default();
    db.set(Status::Fail);
    let engine = start(
        Engine::builder()
            .component(Component::new("db").check(check("port", &[&db], SEC)))
            .component(Component::new("web").check(check("up", &[], SEC))),
    );
    let mut h = Harness::new(engine.clone(), Settings::default());
    h.until(Duration::from_secs(3), "db firing", |n| {
        n.state == State::Firing
    })
    .await;
    engine.remove("db").await.unwrap();
    h.until(Duration::from_secs(2), "db resolved", |n| {
        n.state == State::Resolved && n.alert.component.as_deref() == Some("db")
    })
    .await;
    let r = *h.about("component/db").last().unwrap();
    assert_eq!(r.resolution, Some(Resolution::Removed));
}

#[tokio::test(start_paused = true)]
async fn maintenance_mutes_creation_never_resolution_and_nothing_unsent_resolves() {
    let db = Switch::default();
    let engine = start(
        Engine::builder().component(Component::new("db").group("data").check(check(
            "port",
            &[&db],
            SEC,
        ))),
    );
    let window = MaintenanceWindow {
        name: Some("monday".into()),
        window: ActiveWindow::parse("mon", "00:00", "00:00", "UTC").unwrap(),
        matcher: RouteMatch {
            group: Some("data".into()),
            ..RouteMatch::default()
        },
    };
    let mut h = Harness::new(
        engine,
        Settings {
            maintenance: vec![window],
            ..no_flapping()
        },
    );
    h.wall = monday();
    h.run_for(Duration::from_secs(2)).await;
    // Fails and recovers inside the window: nothing at all for db.
    db.set(Status::Fail);
    h.run_for(Duration::from_secs(3)).await;
    assert_eq!(
        h.ev.firing().len(),
        2,
        "db and the system are recorded as firing"
    );
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(3)).await;
    assert!(h.about("component/db").is_empty(), "{:?}", h.brief());
    // Fails inside, still failing when the window ends: notified then.
    db.set(Status::Fail);
    h.run_for(Duration::from_secs(3)).await;
    assert!(h.about("component/db").is_empty(), "{:?}", h.brief());
    h.wall = tuesday();
    h.step().await;
    assert_eq!(h.states("component/db"), [State::Firing]);
    // Its resolution is sent even inside a window.
    h.wall = monday();
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(3)).await;
    assert_eq!(h.states("component/db"), [State::Firing, State::Resolved]);
    // The window matched group `data`: the system's alerts were never muted.
    assert_eq!(
        h.states("system"),
        [
            State::Firing,
            State::Resolved,
            State::Firing,
            State::Resolved
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_redundancy_set_alerts_as_a_whole_and_escalates() {
    let (p, f, t) = (Switch::default(), Switch::default(), Switch::default());
    let engine = start(
        Engine::builder()
            .group(Group::new("feeds").min_passing(1).critical(true))
            .component(
                Component::new("primary")
                    .group("feeds")
                    .check(check("ticks", &[&p], SEC)),
            )
            .component(
                Component::new("failover")
                    .group("feeds")
                    .check(check("ticks", &[&f], SEC)),
            )
            .component(
                Component::new("trader")
                    .critical(true)
                    .depends_on("feeds")
                    .check(check("quotes", &[&t], SEC)),
            ),
    );
    let mut h = Harness::new(engine, Settings::default());
    h.run_for(Duration::from_secs(2)).await;
    p.set(Status::Fail);
    h.until(Duration::from_secs(4), "the set degrades", |n| {
        n.alert.subject == Subject::Group("feeds".into())
    })
    .await;
    let set = h.about("group/feeds")[0].clone();
    assert_eq!(
        (set.state, set.alert.status, set.alert.severity),
        (State::Firing, Status::Warn, Severity::Warning)
    );
    assert_eq!(set.alert.root_causes, ["primary"]);
    assert!(
        set.alert.summary.contains("1 of 2 members up"),
        "{}",
        set.alert.summary
    );
    // Members raise no alerts of their own: the set speaks for them.
    assert!(h.about("component/primary").is_empty(), "{:?}", h.brief());
    // Both feeds down, and the trader loses its quotes as a consequence.
    f.set(Status::Fail);
    t.set(Status::Fail);
    h.until(Duration::from_secs(4), "the set fails", |n| {
        n.alert.subject == Subject::Group("feeds".into()) && n.state == State::Update
    })
    .await;
    h.run_for(Duration::from_secs(2)).await;
    let last = h.about("group/feeds").last().unwrap().alert.clone();
    assert_eq!(
        (last.status, last.severity),
        (Status::Fail, Severity::Critical)
    );
    assert_eq!(last.root_causes, ["failover", "primary"]);
    assert_eq!(last.impacts, ["trader"]);
    assert!(
        h.about("group/feeds")
            .iter()
            .any(|n| n.dedup_key.ends_with(":update.1"))
    );
    assert!(h.about("component/trader").is_empty(), "{:?}", h.brief());
    p.set(Status::Pass);
    f.set(Status::Pass);
    t.set(Status::Pass);
    h.run_for(Duration::from_secs(4)).await;
    assert_eq!(
        h.about("group/feeds").last().unwrap().state,
        State::Resolved
    );
    assert!(h.about("component/trader").is_empty(), "{:?}", h.brief());
    assert!(h.ev.firing().is_empty());
}

/// A storm: `db` fails and passes every 1.5 s, ten times (ending on a pass).
async fn storm(h: &mut Harness, db: &Switch) {
    for i in 0..10 {
        db.set(if i % 2 == 0 {
            Status::Fail
        } else {
            Status::Pass
        });
        h.run_for(Duration::from_millis(1500)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn flapping_sends_one_notice_instead_of_a_storm_and_one_when_it_settles() {
    let db = Switch::default();
    let mut c = check("port", &[&db], Duration::from_millis(500));
    c.settings.interval = Some(Duration::from_millis(500));
    let engine = start(Engine::builder().component(Component::new("db").check(c)));
    let mut h = Harness::new(engine, Settings::default());
    h.run_for(SEC).await;
    storm(&mut h, &db).await;
    let states = h.states("component/db");
    let flapping_at = states
        .iter()
        .position(|s| *s == State::Flapping)
        .unwrap_or_else(|| panic!("no flapping notice: {:#?}", h.brief()));
    // Before: the first alerts; after: silence (no firing, update or resolution).
    assert!((2..=6).contains(&flapping_at), "{states:?}");
    assert_eq!(states.len(), flapping_at + 1, "a storm: {:#?}", h.brief());
    let notice = h.about("component/db")[flapping_at].clone();
    assert!(notice.flap_percent.unwrap() >= 20.0, "{notice:?}");
    assert!(notice.dedup_key.ends_with(":flapping"));
    assert!(
        notice.alert.summary.contains("is flapping"),
        "{}",
        notice.alert.summary
    );
    // It stays down: the flapping settles once 21 steady results push the
    // changes out, and the outage is notified then (once).
    db.set(Status::Fail);
    h.until(Duration::from_secs(20), "settled", |n| {
        n.state == State::Settled
    })
    .await;
    h.run_for(SEC).await;
    let after: Vec<State> = h.states("component/db")[flapping_at + 1..].to_vec();
    assert_eq!(after[0], State::Settled, "{after:?}");
    let open: Vec<&Notification> = h
        .about("component/db")
        .into_iter()
        .filter(|n| !matches!(n.state, State::Flapping | State::Settled))
        .collect();
    // Every alert id: fired once; all resolved but the last, which is open.
    let mut ids: Vec<String> = open.iter().map(|n| n.alert.id.clone()).collect();
    ids.dedup();
    let last = ids.last().unwrap().clone();
    for id in &ids {
        let states: Vec<State> = open
            .iter()
            .filter(|n| &n.alert.id == id)
            .map(|n| n.state)
            .collect();
        if *id == last {
            assert_eq!(states.first(), Some(&State::Firing), "{id}: {states:?}");
            assert!(!states.contains(&State::Resolved), "{id}: {states:?}");
        } else {
            assert_eq!(states, [State::Firing, State::Resolved], "{id}");
        }
    }
    let firing: Vec<String> = h.ev.firing().iter().map(|a| a.id.clone()).collect();
    assert!(firing.contains(&last), "{firing:?}");
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(2)).await;
    assert_eq!(h.states("component/db").last(), Some(&State::Resolved));
    assert_eq!(
        h.states("component/db")
            .iter()
            .filter(|s| **s == State::Flapping)
            .count(),
        1
    );
}

#[test]
fn percent_state_change_weights_recent_changes_more() {
    assert_eq!(percent_state_change([]), 0.0);
    assert_eq!(percent_state_change([true; 21]), 0.0);
    // Every result a change: 100%.
    let alternating = (0..21).map(|i| i % 2 == 0);
    assert!((percent_state_change(alternating) - 100.0).abs() < 1e-9);
    // One change, newest: weight 1.2 of 20 slots; oldest: 0.8.
    let newest: Vec<bool> = (0..21).map(|i| i == 20).collect();
    assert!((percent_state_change(newest) - 6.0).abs() < 1e-9);
    let oldest: Vec<bool> = (0..21).map(|i| i == 0).collect();
    assert!((percent_state_change(oldest) - 4.0).abs() < 1e-9);
    // A short history counts its changes in the newest slots.
    assert!((percent_state_change([false, true]) - 6.0).abs() < 1e-9);
}

/// The alert lifecycle over random fault scripts: every alert fires once,
/// resolves at most once and last; a component whose own fault is off
/// never pages (the symptom of a dependency does not); everything resolves
/// once all faults clear; a lasting fault with no dependencies pages.
#[derive(Debug, Clone)]
struct Step {
    after_ms: u64,
    toggle: usize,
}

const NAMES: [&str; 7] = ["db", "api", "web", "p", "f", "trader", "batch"];

fn scenario(steps: Vec<Step>, intervals: Vec<u64>, flapping: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let sw: Vec<Switch> = (0..NAMES.len()).map(|_| Switch::default()).collect();
        let iv = |i: usize| Duration::from_secs(intervals[i]);
        let engine = start(
            Engine::builder()
                .group(Group::new("feeds").min_passing(1).critical(true))
                .component(
                    Component::new("db")
                        .critical(true)
                        .check(check("c", &[&sw[0]], iv(0))),
                )
                .component(Component::new("api").depends_on("db").check(check(
                    "c",
                    &[&sw[0], &sw[1]],
                    iv(1),
                )))
                .component(
                    Component::new("web")
                        .critical(true)
                        .depends_on("api")
                        .check(check("c", &[&sw[0], &sw[1], &sw[2]], iv(2))),
                )
                .component(
                    Component::new("p")
                        .group("feeds")
                        .check(check("c", &[&sw[3]], iv(3))),
                )
                .component(
                    Component::new("f")
                        .group("feeds")
                        .check(check("c", &[&sw[4]], iv(4))),
                )
                .component(Component::new("trader").depends_on("feeds").check(check(
                    "c",
                    &[&sw[5]],
                    iv(5),
                )))
                .component(Component::new("batch").check(check("c", &[&sw[6]], iv(6)))),
        );
        let settings = if flapping {
            Settings::default()
        } else {
            no_flapping()
        };
        let mut h = Harness::new(engine, settings);
        h.run_for(Duration::from_secs(3)).await;
        // Per component: when its own fault was last on (None: never / now off for long).
        let mut on_since: HashMap<usize, Instant> = HashMap::new();
        let mut last_on: HashMap<usize, Instant> = HashMap::new();
        let mut long_faults: Vec<(usize, Instant, Instant)> = Vec::new();
        let mut checked = 0;
        let check_new = |h: &Harness,
                         last_on: &HashMap<usize, Instant>,
                         on_since: &HashMap<usize, Instant>,
                         checked: &mut usize| {
            for (i, s) in h.notes.iter().enumerate().skip(*checked) {
                if s.n.state != State::Firing {
                    continue;
                }
                let own: Vec<usize> = match &s.n.alert.subject {
                    Subject::Component(id) => vec![NAMES.iter().position(|n| **n == **id).unwrap()],
                    Subject::Group(_) => vec![3, 4],
                    Subject::System => continue,
                };
                // Its own fault is on, or was on until recently (its result lags by an interval).
                let recent = own.iter().any(|o| {
                    on_since.contains_key(o)
                        || last_on
                            .get(o)
                            .is_some_and(|t| s.at.duration_since(*t) <= Duration::from_secs(8))
                });
                assert!(
                    recent,
                    "{} paged without a fault of its own: {:#?}",
                    s.n.alert.subject,
                    h.brief()
                );
                assert!(
                    !h.impacted_at_firing[i],
                    "an impacted component paged: {:#?}",
                    h.brief()
                );
            }
            *checked = h.notes.len();
        };
        for st in &steps {
            h.run_for(Duration::from_millis(st.after_ms)).await;
            check_new(&h, &last_on, &on_since, &mut checked);
            let s = &sw[st.toggle];
            if s.get() == Status::Fail {
                s.set(Status::Pass);
                let since = on_since.remove(&st.toggle).unwrap();
                last_on.insert(st.toggle, Instant::now());
                long_faults.push((st.toggle, since, Instant::now()));
            } else {
                s.set(Status::Fail);
                on_since.insert(st.toggle, Instant::now());
            }
        }
        // Every fault lasts longer than any check's interval (3 s + jitter),
        // so its own check sees it: a fault shorter than that may show only
        // in a dependent's result, which then rightly pages on its own.
        h.run_for(Duration::from_secs(4)).await;
        check_new(&h, &last_on, &on_since, &mut checked);
        for (i, s) in sw.iter().enumerate() {
            if s.get() == Status::Fail {
                s.set(Status::Pass);
                long_faults.push((i, on_since.remove(&i).unwrap(), Instant::now()));
                last_on.insert(i, Instant::now());
            }
        }
        // Long enough for 21 stable results of the slowest check (flapping settles).
        h.run_for(Duration::from_secs(if flapping { 80 } else { 20 }))
            .await;
        check_new(&h, &last_on, &on_since, &mut checked);

        // Flapping notices alternate per subject, starting with `flapping`,
        // and every subject has settled by now.
        let mut flaps: BTreeMap<String, Vec<State>> = BTreeMap::new();
        for s in h
            .notes
            .iter()
            .filter(|s| matches!(s.n.state, State::Flapping | State::Settled))
        {
            flaps
                .entry(s.n.alert.subject.to_string())
                .or_default()
                .push(s.n.state);
        }
        assert!(flapping || flaps.is_empty(), "{flaps:?}");
        for (subject, states) in &flaps {
            for (i, st) in states.iter().enumerate() {
                let want = if i % 2 == 0 {
                    State::Flapping
                } else {
                    State::Settled
                };
                assert_eq!(*st, want, "{subject}: {states:?}");
            }
            assert_eq!(
                states.last(),
                Some(&State::Settled),
                "{subject} still flapping: {:#?}",
                h.brief()
            );
        }

        // Lifecycle per alert id.
        let mut by_id: BTreeMap<String, Vec<State>> = BTreeMap::new();
        for s in h
            .notes
            .iter()
            .filter(|s| !matches!(s.n.state, State::Flapping | State::Settled))
        {
            by_id
                .entry(s.n.alert.id.clone())
                .or_default()
                .push(s.n.state);
        }
        for (id, states) in &by_id {
            assert_eq!(states[0], State::Firing, "{id}: {states:?}");
            assert_eq!(
                states.iter().filter(|s| **s == State::Firing).count(),
                1,
                "{id}: {states:?}"
            );
            assert_eq!(
                states.last(),
                Some(&State::Resolved),
                "{id} never resolved: {:#?}",
                h.brief()
            );
            assert_eq!(
                states.iter().filter(|s| **s == State::Resolved).count(),
                1,
                "{id}: {states:?}"
            );
        }
        // Never two open alerts on one subject.
        let mut open: HashMap<String, String> = HashMap::new();
        for s in &h.notes {
            let subject = s.n.alert.subject.to_string();
            match s.n.state {
                State::Firing => {
                    assert!(
                        !open.contains_key(&subject),
                        "two open alerts on {subject}: {:#?}",
                        h.brief()
                    );
                    open.insert(subject, s.n.alert.id.clone());
                }
                State::Resolved => {
                    assert_eq!(open.remove(&subject).as_ref(), Some(&s.n.alert.id));
                }
                State::Update => assert_eq!(open.get(&subject), Some(&s.n.alert.id)),
                State::Flapping | State::Settled => {}
            }
        }
        assert!(h.ev.firing().is_empty(), "{:?}", h.ev.firing());
        // A lasting fault of a component without dependencies pages.
        for (i, from, to) in long_faults {
            if flapping || ![0, 6].contains(&i) || to.duration_since(from) < Duration::from_secs(9)
            {
                continue;
            }
            let subject = format!("component/{}", NAMES[i]);
            assert!(
                h.notes
                    .iter()
                    .any(|s| s.n.alert.subject.to_string() == subject
                        && s.n.state == State::Firing
                        && s.at >= from
                        && s.at <= to + Duration::from_secs(1)),
                "{subject} failed from {from:?} to {to:?} without paging: {:#?}",
                h.brief()
            );
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn alert_lifecycle_holds_over_random_faults(
        steps in prop::collection::vec((3500u64..8000, 0usize..NAMES.len()).prop_map(|(after_ms, toggle)| Step { after_ms, toggle }), 1..10),
        intervals in prop::collection::vec(1u64..=3, NAMES.len()),
        flapping in any::<bool>(),
    ) {
        scenario(steps, intervals, flapping);
    }
}

/// An alert sent before its component started flapping, which recovered
/// while flapping, waits to be resolved when the flapping settles; if the
/// component is removed first, it is resolved then (never left open).
#[tokio::test(start_paused = true)]
async fn removing_a_flapping_component_resolves_the_alert_it_had_sent() {
    let db = Switch::default();
    let mut c = check("port", &[&db], Duration::from_millis(500));
    c.settings.interval = Some(Duration::from_millis(500));
    let engine = start(
        Engine::builder()
            .component(Component::new("db").check(c))
            .component(Component::new("api").check(check("up", &[], SEC))),
    );
    let mut h = Harness::new(engine.clone(), Settings::default());
    h.run_for(SEC).await;
    storm(&mut h, &db).await;
    assert!(h.states("component/db").contains(&State::Flapping));
    let open = |h: &Harness| -> Vec<String> {
        let about = h.about("component/db");
        let ids: HashSet<&String> = about
            .iter()
            .filter(|n| n.state == State::Firing)
            .map(|n| &n.alert.id)
            .collect();
        ids.into_iter()
            .filter(|id| {
                !about
                    .iter()
                    .any(|n| &n.alert.id == *id && n.state == State::Resolved)
            })
            .cloned()
            .collect()
    };
    let waiting = open(&h);
    assert_eq!(
        waiting.len(),
        1,
        "a sent alert waits on the flapping: {:#?}",
        h.brief()
    );
    engine.remove("db").await.unwrap();
    h.run_for(Duration::from_secs(2)).await;
    assert!(open(&h).is_empty(), "left open: {:#?}", h.brief());
    let resolved = h
        .about("component/db")
        .into_iter()
        .find(|n| n.alert.id == waiting[0] && n.state == State::Resolved)
        .expect("resolved");
    assert_eq!(resolved.resolution, Some(Resolution::Removed));
}

/// A reload that edits a failing component replaces it: its checks read
/// `unknown` until they run again. That is no recovery: the alert stays
/// open (no resolution, no second alert), and resolves once, on a pass.
#[tokio::test(start_paused = true)]
async fn a_replaced_failing_component_keeps_its_alert_while_unknown() {
    let db = Switch::default();
    let spec = |owner: &str| {
        let mut c = Component::new("db").critical(true).check(check(
            "port",
            &[&db],
            Duration::from_secs(2),
        ));
        c.owner = Some(owner.into());
        c
    };
    let engine = start(Engine::builder().component(spec("data-eng")));
    let mut h = Harness::new(engine.clone(), no_flapping());
    h.run_for(Duration::from_secs(3)).await;
    db.set(Status::Fail);
    h.until(Duration::from_secs(5), "db's alert", |n| {
        n.alert.component.as_deref() == Some("db") && n.state == State::Firing
    })
    .await;
    engine.upsert(spec("platform")).await.unwrap();
    let k = engine.snapshot().topology.check("db", "port").unwrap();
    assert_eq!(engine.snapshot().checks[k].status, Status::Unknown);
    h.run_for(Duration::from_secs(6)).await;
    let states = h.states("component/db");
    assert_eq!(states, [State::Firing], "{:#?}", h.brief());
    assert_eq!(engine.snapshot().checks[k].status, Status::Fail);
    db.set(Status::Pass);
    h.run_for(Duration::from_secs(4)).await;
    assert_eq!(
        h.states("component/db"),
        [State::Firing, State::Resolved],
        "{:#?}",
        h.brief()
    );
}
