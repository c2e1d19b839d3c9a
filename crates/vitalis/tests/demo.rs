//! `vitalis demo` end to end: the simulated platform comes up healthy; each
//! fault mode fails the right component with an actionable diagnostic, the
//! system status and root cause are right, and clearing it returns to pass.
//! The PostgreSQL data pack runs against a real PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Daemon, TestDir, client, eventually, get_json};

/// Healthy within this long of start-up.
const UP_WITHIN: Duration = Duration::from_secs(8);
/// A fault shows within this long (interval 1 s / deep 2 s + timeout 1 s,
/// plus max_age for staleness faults).
const FAIL_WITHIN: Duration = Duration::from_secs(10);
/// Back to pass within this long (a breaker may be open for 2 s).
const RECOVER_WITHIN: Duration = Duration::from_secs(12);

struct Demo {
    d: Daemon,
    faults: String,
    _dir: TestDir,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let dir = TestDir::new();
        let (d, lines) = Daemon::start_demo(&dir, args);
        let faults = lines
            .iter()
            .find_map(|l| l.strip_prefix("fault API:"))
            .unwrap_or_else(|| panic!("no fault API line in {lines:?}"))
            .trim()
            .to_string();
        assert!(lines.iter().any(|l| l.starts_with("health:")), "{lines:?}");
        Demo {
            d,
            faults,
            _dir: dir,
        }
    }

    async fn health(&self) -> Value {
        get_json(&format!("{}/health", self.d.base), None).await.1
    }

    async fn components(&self) -> Vec<Value> {
        let (_, v) = get_json(&format!("{}/health/components", self.d.base), None).await;
        v["components"].as_array().cloned().unwrap_or_default()
    }

    async fn component(&self, id: &str) -> Value {
        get_json(&format!("{}/health/components/{id}", self.d.base), None)
            .await
            .1
    }

    async fn inject(&self, component: &str, mode: &str) {
        let r = client()
            .post(format!("{}/{component}/{mode}", self.faults))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }

    async fn clear(&self, component: &str) {
        let r = client()
            .delete(format!("{}/{component}", self.faults))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// Waits until every component passes; returns how long it took.
    async fn all_pass(&self, within: Duration, what: &str) -> Duration {
        let t = Instant::now();
        let until = t + within;
        loop {
            let comps = self.components().await;
            let failing: Vec<String> = comps
                .iter()
                .filter(|c| c["status"] != "pass")
                .map(|c| {
                    let checks: Vec<String> = c["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|k| k["status"] != "pass")
                        .map(|k| format!("{}={} {}", k["name"], k["status"], k["error"]))
                        .collect();
                    format!("{} {}: {checks:?}", c["id"], c["status"])
                })
                .collect();
            if !comps.is_empty() && failing.is_empty() && self.health().await["status"] == "pass" {
                return t.elapsed();
            }
            assert!(
                Instant::now() < until,
                "{what}: not all components pass after {within:?}: {failing:#?}; log: {}",
                self.d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One fault and what it must show.
struct Case {
    component: &'static str,
    mode: &'static str,
    /// The component that must fail, its failing check, and a piece of that
    /// check's error.
    fails: &'static str,
    check: &'static str,
    error: &'static str,
    system: &'static str,
    /// The root cause and (some of) what it impacts.
    root: &'static str,
    impacts: &'static [&'static str],
}

async fn run_case(demo: &Demo, c: &Case) {
    run_case_within(demo, c, FAIL_WITHIN).await
}

/// `run_case` for a fault that takes longer to show (a backup job that
/// stops is noticed when its newest backup passes `max_age`).
async fn run_case_within(demo: &Demo, c: &Case, fail_within: Duration) {
    let label = format!("{}:{}", c.component, c.mode);
    demo.inject(c.component, c.mode).await;
    let started = Instant::now();
    let comp = eventually(
        fail_within,
        &format!("{label}: {} fails", c.fails),
        async || {
            let comp = demo.component(c.fails).await;
            let check = comp["checks"]
                .as_array()?
                .iter()
                .find(|k| k["name"] == c.check)?
                .clone();
            (comp["status"] == "fail" && check["status"] == "fail").then_some((comp, check))
        },
    )
    .await;
    let (comp, check) = comp;
    let error = check["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(c.error),
        "{label}: {}:{} error {error:?} should mention {:?}",
        c.fails,
        c.check,
        c.error
    );
    // Root cause and system status settle as dependents' checks run.
    let health = eventually(
        Duration::from_secs(5),
        &format!("{label}: system and root cause"),
        async || {
            let h = demo.health().await;
            let root = h["root_causes"]
                .as_array()?
                .iter()
                .find(|r| r["component"] == c.root)?
                .clone();
            let impacts: Vec<&str> = root["impacts"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (h["status"] == c.system && c.impacts.iter().all(|i| impacts.contains(i))).then_some(h)
        },
    )
    .await;
    // Nothing impacted is reported as a root cause of its own.
    for r in health["root_causes"].as_array().unwrap() {
        assert!(
            !c.impacts
                .contains(&r["component"].as_str().unwrap_or_default()),
            "{label}: {} is a symptom, not a root cause: {health:#}",
            r["component"]
        );
    }
    for i in c.impacts {
        let ic = demo.component(i).await;
        assert!(
            ic["impacted_by"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == c.root)),
            "{label}: {i} should be impacted_by {}: {ic:#}",
            c.root
        );
    }
    let took = started.elapsed();
    eprintln!("{label}: {} failed in {took:?}: {error}", c.fails);
    let _ = comp;
    demo.clear(c.component).await;
    let back = demo
        .all_pass(RECOVER_WITHIN, &format!("{label} cleared"))
        .await;
    eprintln!("{label}: recovered in {back:?}");
}

const RISK_ML: &[Case] = &[
    Case {
        component: "risk-engine",
        mode: "limits-off",
        fails: "risk-engine",
        check: "limits-enforced",
        error: "expected 422",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "stop-loss-off",
        fails: "risk-engine",
        check: "stop-loss-active",
        error: "$.stop_orders[0].type not found",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "breakers-stuck",
        fails: "risk-engine",
        check: "circuit-breakers",
        error: "$.tripped = false",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "stale",
        fails: "risk-engine",
        check: "positions-fresh",
        error: "$.positions.last_update_age_ms",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "erroring",
        fails: "risk-engine",
        check: "responsive",
        error: "answered 500",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "slow",
        fails: "risk-engine",
        check: "responsive",
        error: "/v1/ping",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "risk-engine",
        mode: "down",
        fails: "risk-engine",
        check: "responsive",
        error: "connection refused",
        system: "fail",
        root: "risk-engine",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "model-unloaded",
        fails: "model-server",
        check: "model-loaded",
        error: "answered 400",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "drift-stalled",
        fails: "model-server",
        check: "drift-detection",
        error: "over max_age",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "accuracy-degraded",
        fails: "model-server",
        check: "accuracy",
        error: "expected >= 0.7",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "slow",
        fails: "model-server",
        check: "prediction-latency",
        error: "/infer",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "erroring",
        fails: "model-server",
        check: "live",
        error: "answered 500",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "model-server",
        mode: "down",
        fails: "model-server",
        check: "live",
        error: "connection refused",
        system: "fail",
        root: "model-server",
        impacts: &[],
    },
    Case {
        component: "feature-pipeline",
        mode: "stale",
        fails: "feature-pipeline",
        check: "features-fresh",
        error: "over max_age",
        system: "fail",
        root: "feature-pipeline",
        impacts: &[],
    },
];

const EXCHANGE: &[Case] = &[
    Case {
        component: "market-data",
        mode: "feed-silent",
        fails: "market-data",
        check: "ticks",
        error: "over max_age",
        system: "warn",
        root: "market-data",
        impacts: &[],
    },
    Case {
        component: "market-data",
        mode: "failover-down",
        fails: "market-data-failover",
        check: "ticks",
        error: "ws://",
        system: "warn",
        root: "market-data-failover",
        impacts: &[],
    },
    Case {
        component: "market-data",
        mode: "down",
        fails: "market-data",
        check: "ticks",
        error: "ws://",
        system: "warn",
        root: "market-data",
        impacts: &[],
    },
    Case {
        component: "exchange-api",
        mode: "rate-limited",
        fails: "exchange-api",
        check: "order-placement",
        error: "429",
        system: "fail",
        root: "exchange-api",
        impacts: &["trading-app"],
    },
    Case {
        component: "market-data-failover",
        mode: "feed-silent",
        fails: "market-data-failover",
        check: "ticks",
        error: "over max_age",
        system: "warn",
        root: "market-data-failover",
        impacts: &[],
    },
    Case {
        component: "exchange-api",
        mode: "slow",
        fails: "exchange-api",
        check: "ping",
        error: "no complete answer within 1s",
        system: "fail",
        root: "exchange-api",
        impacts: &[],
    },
    Case {
        component: "exchange-api",
        mode: "erroring",
        fails: "exchange-api",
        check: "order-placement",
        error: "answered 500",
        system: "fail",
        root: "exchange-api",
        impacts: &[],
    },
    Case {
        component: "exchange-api",
        mode: "down",
        fails: "exchange-api",
        check: "ping",
        error: "connection refused",
        system: "fail",
        root: "exchange-api",
        impacts: &["risk-engine"],
    },
];

const DATA_SQLITE: &[Case] = &[
    Case {
        component: "trading-db",
        mode: "down",
        fails: "trading-db",
        check: "open",
        error: "does not exist",
        system: "fail",
        root: "trading-db",
        impacts: &["feature-pipeline", "backups"],
    },
    Case {
        component: "trading-db",
        mode: "stale",
        fails: "trading-db",
        check: "fills-fresh",
        error: "expected < 5",
        system: "fail",
        root: "trading-db",
        impacts: &[],
    },
    Case {
        component: "backups",
        mode: "erroring",
        fails: "backups",
        check: "last-run-succeeded",
        error: "expected == 1",
        system: "warn",
        root: "backups",
        impacts: &[],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_risk_and_ml_faults() {
    let demo = Demo::start(&[]);
    let up = demo.all_pass(UP_WITHIN, "start-up").await;
    eprintln!("healthy {up:?} after start");
    for c in RISK_ML {
        run_case(&demo, c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exchange_faults_and_feed_redundancy() {
    let demo = Demo::start(&[]);
    demo.all_pass(UP_WITHIN, "start-up").await;
    for c in EXCHANGE {
        run_case(&demo, c).await;
    }
    // Both feeds down: the redundancy set fails, and with it the system;
    // the trading app loses market data as a symptom of the feeds.
    demo.inject("market-data", "down").await;
    demo.inject("market-data-failover", "down").await;
    let groups = eventually(FAIL_WITHIN, "exchange-feeds fails", async || {
        let (_, g) = get_json(
            &format!("{}/health/groups/exchange-feeds", demo.d.base),
            None,
        )
        .await;
        (g["status"] == "fail").then_some(g)
    })
    .await;
    assert_eq!(groups["min_passing"], 1, "{groups:#}");
    eventually(
        FAIL_WITHIN,
        "system fails, feeds are the root causes",
        async || {
            let h = demo.health().await;
            let roots: Vec<&str> = h["root_causes"]
                .as_array()?
                .iter()
                .filter_map(|r| r["component"].as_str())
                .collect();
            (h["status"] == "fail"
                && roots.contains(&"market-data")
                && roots.contains(&"market-data-failover")
                && !roots.contains(&"trading-app"))
            .then_some(())
        },
    )
    .await;
    demo.clear("market-data").await;
    demo.clear("market-data-failover").await;
    demo.all_pass(RECOVER_WITHIN, "feeds back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_faults_sqlite_and_fault_at_start() {
    // A fault given on the command line is in place from the start.
    let demo = Demo::start(&["--fault", "risk-engine:limits-off"]);
    eventually(FAIL_WITHIN, "limits-off from --fault", async || {
        let c = demo.component("risk-engine").await;
        (c["status"] == "fail").then_some(())
    })
    .await;
    demo.clear("risk-engine").await;
    demo.all_pass(RECOVER_WITHIN, "after --fault cleared").await;
    for c in DATA_SQLITE {
        run_case(&demo, c).await;
    }
    // The backup job stops: noticed when the newest backup passes its
    // max_age (10 s in the demo) — backups are non-critical, so warn.
    let stopped = Case {
        component: "backups",
        mode: "down",
        fails: "backups",
        check: "backup-file",
        error: "old",
        system: "warn",
        root: "backups",
        impacts: &[],
    };
    run_case_within(&demo, &stopped, Duration::from_secs(20)).await;
    // The fault API refuses what it cannot do, saying why.
    let r = client()
        .post(format!("{}/trading-db/limits-off", demo.faults))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("its modes: down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_pack_on_real_postgres() {
    let pg = vitalis_testkit::postgres::Postgres::start();
    let url = pg.url();
    let demo = Demo::start(&["--postgres", &url]);
    demo.all_pass(UP_WITHIN + Duration::from_secs(4), "start-up on PostgreSQL")
        .await;
    let db = demo.component("trading-db").await;
    let kinds: Vec<&str> = db["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["type"].as_str())
        .collect();
    assert!(kinds.contains(&"postgres"), "{db:#}");
    // The password never shows.
    let all = get_json(&format!("{}/health/components", demo.d.base), None)
        .await
        .1
        .to_string();
    assert!(!all.contains(vitalis_testkit::postgres::PASSWORD));
    for c in [
        Case {
            component: "trading-db",
            mode: "down",
            fails: "trading-db",
            check: "port",
            error: "connect failed",
            system: "fail",
            root: "trading-db",
            impacts: &["feature-pipeline"],
        },
        Case {
            component: "trading-db",
            mode: "stale",
            fails: "trading-db",
            check: "fills-fresh",
            error: "expected < 5",
            system: "fail",
            root: "trading-db",
            impacts: &[],
        },
        Case {
            component: "trading-db",
            mode: "slow",
            fails: "trading-db",
            check: "query-latency",
            error: "postgres://***@",
            system: "fail",
            root: "trading-db",
            impacts: &[],
        },
        Case {
            component: "backups",
            mode: "erroring",
            fails: "backups",
            check: "last-run-succeeded",
            error: "expected == true",
            system: "warn",
            root: "backups",
            impacts: &[],
        },
    ] {
        run_case(&demo, &c).await;
    }
    drop(pg);
}

#[test]
fn demo_help_lists_fault_modes() {
    let dir = TestDir::new();
    let out = dir.vitalis(&["demo", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Example: `vitalis demo"), "{text}");
    for m in [
        "limits-off",
        "stop-loss-off",
        "model-unloaded",
        "drift-stalled",
        "feed-silent",
        "rate-limited",
        "failover-down",
    ] {
        assert!(text.contains(m), "{m} missing from:\n{text}");
    }
    let bad = dir.vitalis(&["demo", "--fault", "risk-engine:melted"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown fault mode 'melted'"));
}
