//! Delivery against real receivers on loopback: a webhook receiver (axum)
//! that fails before it succeeds, a slow one, Slack's message shape, reload,
//! and a real Alertmanager (Debian's `prometheus-alertmanager`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use vitalis_alert::{Alerting, DeliveryOptions, RetryPolicy};
use vitalis_core::{
    BreakerSettings, CheckRuntime, CheckSettings, CheckSpec, Component, Engine, Outcome, Status,
};

/// One request: headers (lowercase names) and JSON body.
type Request = (BTreeMap<String, String>, Value);

/// What a receiver got.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Request>>>,
    /// Answer 503 to this many requests first.
    fail_first: Arc<AtomicUsize>,
    /// Answer after this long (ms).
    delay_ms: Arc<AtomicUsize>,
    /// 2xx answers per Idempotency-Key.
    accepted: Arc<Mutex<BTreeMap<String, usize>>>,
    url: String,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let h: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let key = h.get("idempotency-key").cloned().unwrap_or_default();
    r.requests.lock().unwrap().push((
        h,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ));
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    *r.accepted.lock().unwrap().entry(key).or_default() += 1;
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn bodies(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn accepted(&self, key: &str) -> usize {
        self.accepted.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Accepted bodies with this state about this subject.
    fn find(&self, subject: &str, state: &str) -> Option<Value> {
        self.bodies().into_iter().find(|b| {
            b["alert"]["subject"] == subject
                && b["state"] == state
                && self.accepted(b["dedup_key"].as_str().unwrap_or_default()) > 0
        })
    }
}

/// Polls `f` until it returns `Some`, or panics after `within`.
/// Waits until component `id` passes (its first runs are in).
async fn passing(engine: &Engine, id: &str) {
    eventually(Duration::from_secs(10), &format!("{id} passing"), || {
        let snap = engine.snapshot();
        let ci = snap.topology.component(id)?;
        (snap.components[ci].status == Some(Status::Pass)).then_some(())
    })
    .await
}

async fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A component whose single check reports what the test sets (0 pass, 2 fail).
fn switched(id: &str, critical: bool) -> (Component, Arc<AtomicU8>) {
    let s = Arc::new(AtomicU8::new(0));
    let s2 = s.clone();
    let check = CheckSpec::live(
        "probe",
        vitalis_core::check_fn(move |_| {
            let v = s2.load(Ordering::SeqCst);
            async move {
                if v == 0 {
                    Outcome::pass("ok")
                } else {
                    Outcome::fail("127.0.0.1:5432: connection refused; is it running?")
                }
            }
        })
        .nonblocking(),
    )
    .settings(CheckSettings {
        interval: Some(Duration::from_millis(100)),
        timeout: Some(Duration::from_millis(100)),
        // A loaded machine may stall a run for a moment: that must not
        // read as a stale result (an alert of its own) in these tests.
        stale_after: Some(Duration::from_secs(10)),
        grace: Some(Duration::from_secs(10)),
        breaker: Some(BreakerSettings {
            enabled: false,
            ..BreakerSettings::default()
        }),
        ..CheckSettings::default()
    });
    let c = Component::new(id)
        .critical(critical)
        .label("tier", "core")
        .check(check);
    (c, s)
}

fn alert_config(text: &str) -> vitalis_config::AlertConfig {
    vitalis_config::load_str(
        text,
        "vitalis.toml",
        &vitalis_config::LoadOptions::without_env(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .alert
}

fn fast_retries() -> DeliveryOptions {
    DeliveryOptions {
        retry: RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            give_up_after: Duration::from_secs(30),
        },
        external_url: Some("http://127.0.0.1:8080".into()),
        ..DeliveryOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_until_delivered_once_per_key_with_its_headers() {
    let rx = Receiver::start().await;
    rx.fail_first.store(2, Ordering::SeqCst);
    let (db, db_state) = switched("db", true);
    let engine = Engine::builder()
        .check_runtime(CheckRuntime::Current)
        .component(db)
        .start()
        .unwrap();
    let config = alert_config(&format!(
        r#"
[[alert.sink]]
name = "hook"
type = "webhook"
url = "{}"
headers = {{ Authorization = "Bearer s3cret" }}
timeout = "2s"

[[alert.route]]
match = {{ component = "db" }}
sinks = ["hook"]

[alert]
default_sinks = ["hook"]
"#,
        rx.url
    ));
    let alerting = Alerting::builder(engine.clone())
        .config(&config)
        .delivery(fast_retries())
        .start();
    passing(&engine, "db").await;
    db_state.store(2, Ordering::SeqCst);
    let fired = eventually(Duration::from_secs(5), "db firing delivered", || {
        rx.find("component/db", "firing")
    })
    .await;
    // The body, as documented.
    let key = fired["dedup_key"].as_str().unwrap().to_string();
    assert!(
        key.starts_with("component:db:") && key.ends_with(":firing"),
        "{key}"
    );
    assert_eq!(fired["version"], 1);
    assert_eq!(fired["alert"]["severity"], "critical");
    assert_eq!(fired["alert"]["status"], "fail");
    assert_eq!(fired["alert"]["component"], "db");
    assert_eq!(fired["alert"]["root_causes"], serde_json::json!(["db"]));
    assert_eq!(fired["alert"]["labels"]["tier"], "core");
    assert_eq!(fired["alert"]["checks"][0]["check"], "probe");
    assert!(
        fired["alert"]["checks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(fired["url"], "http://127.0.0.1:8080/health/components/db");
    assert!(fired["alert"]["started_at"].as_str().is_some());
    // Two 503s, then delivered: retried with the same key, accepted once.
    let attempts = rx
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| h.get("idempotency-key") == Some(&key))
        .count();
    assert!(attempts >= 3, "attempts for {key}: {attempts}");
    assert_eq!(rx.accepted(&key), 1);
    for (h, _) in rx.requests.lock().unwrap().iter() {
        assert_eq!(
            h.get("authorization").map(String::as_str),
            Some("Bearer s3cret")
        );
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }
    // Recovery: the resolution, once, for the same alert.
    db_state.store(0, Ordering::SeqCst);
    let resolved = eventually(Duration::from_secs(5), "db resolved delivered", || {
        rx.find("component/db", "resolved")
    })
    .await;
    assert_eq!(resolved["alert"]["id"], fired["alert"]["id"]);
    assert_eq!(resolved["resolution"], "recovered");
    assert_eq!(resolved["alert"]["status"], "pass");
    assert!(resolved["alert"]["ended_at"].as_str().is_some());
    // The system's alert went the same way (no route matched it: default sinks).
    eventually(Duration::from_secs(5), "system resolved", || {
        rx.find("system", "resolved")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (key, n) in rx.accepted.lock().unwrap().iter() {
        assert_eq!(*n, 1, "{key} accepted {n} times");
    }
    // A post is counted once its answer is read, which may follow the
    // receiver accepting it.
    let count = |outcome: &str| -> u64 {
        alerting
            .counters()
            .iter()
            .filter(|c| c.sink == "hook" && c.outcome.as_str() == outcome)
            .map(|c| c.count)
            .sum()
    };
    eventually(Duration::from_secs(5), "4 deliveries counted", || {
        (count("delivered") >= 4).then_some(())
    })
    .await;
    let counters = alerting.counters();
    assert_eq!(count("delivered"), 4, "{counters:?}");
    assert!(count("retried") >= 2, "{counters:?}");
    assert_eq!(count("failed"), 0, "{counters:?}");
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_blocks_neither_evaluation_nor_other_sinks() {
    let slow = Receiver::start().await;
    slow.delay_ms.store(5_000, Ordering::SeqCst);
    let fast = Receiver::start().await;
    let (db, db_state) = switched("db", false);
    let engine = Engine::builder()
        .check_runtime(CheckRuntime::Current)
        .component(db)
        .start()
        .unwrap();
    let config = alert_config(&format!(
        r#"
[[alert.sink]]
name = "slow"
type = "webhook"
url = "{}"
timeout = "10s"

[[alert.sink]]
name = "fast"
type = "webhook"
url = "{}"

[alert]
default_sinks = ["slow", "fast"]
"#,
        slow.url, fast.url
    ));
    let alerting = Alerting::builder(engine.clone())
        .config(&config)
        .delivery(fast_retries())
        .start();
    passing(&engine, "db").await;
    db_state.store(2, Ordering::SeqCst);
    let t0 = Instant::now();
    eventually(Duration::from_secs(2), "fast sink gets the firing", || {
        fast.find("component/db", "firing")
    })
    .await;
    db_state.store(0, Ordering::SeqCst);
    eventually(
        Duration::from_secs(2),
        "fast sink gets the resolution",
        || fast.find("component/db", "resolved"),
    )
    .await;
    assert!(alerting.firing().is_empty(), "{:?}", alerting.firing());
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(
        slow.accepted.lock().unwrap().len(),
        0,
        "slow has not answered yet"
    );
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_sinks_and_routes_and_keeps_alert_state() {
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let (db, db_state) = switched("db", true);
    let engine = Engine::builder()
        .check_runtime(CheckRuntime::Current)
        .component(db)
        .start()
        .unwrap();
    let config = |url: &str| {
        alert_config(&format!(
            "[[alert.sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n[alert]\ndefault_sinks = [\"hook\"]\n"
        ))
    };
    let alerting = Alerting::builder(engine.clone())
        .config(&config(&first.url))
        .delivery(fast_retries())
        .start();
    passing(&engine, "db").await;
    db_state.store(2, Ordering::SeqCst);
    let fired = eventually(
        Duration::from_secs(5),
        "firing at the first receiver",
        || first.find("component/db", "firing"),
    )
    .await;
    // The sink moves to another URL: the alert is not sent again...
    alerting.reload(&config(&second.url));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(second.bodies().is_empty(), "{:?}", second.bodies());
    assert_eq!(alerting.firing().len(), 2, "db and the system still firing");
    // ... and its resolution goes where the sink now points.
    db_state.store(0, Ordering::SeqCst);
    let resolved = eventually(
        Duration::from_secs(5),
        "resolution at the second receiver",
        || second.find("component/db", "resolved"),
    )
    .await;
    assert_eq!(resolved["alert"]["id"], fired["alert"]["id"]);
    assert!(first.find("component/db", "resolved").is_none());
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_a_readable_message_and_unrouted_alerts_are_counted() {
    let rx = Receiver::start().await;
    let (db, db_state) = switched("db", true);
    let engine = Engine::builder()
        .check_runtime(CheckRuntime::Current)
        .component(db)
        .start()
        .unwrap();
    let config = alert_config(&format!(
        "[[alert.sink]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"{}\"\n[alert]\ndefault_sinks = [\"chat\"]\n",
        rx.url
    ));
    let _alerting = Alerting::builder(engine.clone())
        .config(&config)
        .delivery(fast_retries())
        .start();
    // No sinks at all: alerts are logged and counted, not lost silently.
    let bare = Alerting::builder(engine.clone()).start();
    passing(&engine, "db").await;
    db_state.store(2, Ordering::SeqCst);
    let text = eventually(Duration::from_secs(5), "slack message", || {
        rx.bodies()
            .into_iter()
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .find(|t| t.contains("db is failing"))
    })
    .await;
    assert!(
        text.contains("FIRING") && text.contains("[critical]"),
        "{text}"
    );
    assert!(
        text.contains("`db:probe` fail: 127.0.0.1:5432: connection refused"),
        "{text}"
    );
    assert!(
        text.contains("<http://127.0.0.1:8080/health/components/db|details>"),
        "{text}"
    );
    eventually(Duration::from_secs(2), "unrouted counted", || {
        bare.counters()
            .iter()
            .any(|c| c.sink == "none" && c.outcome.as_str() == "dropped")
            .then_some(())
    })
    .await;
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_alerts_the_watchdog_and_resolutions() {
    let am = tokio::task::spawn_blocking(vitalis_testkit::alertmanager::Alertmanager::start)
        .await
        .unwrap();
    let (db, db_state) = switched("db", true);
    let mut db = db;
    db.runbook_url = Some("https://runbooks.example/db".into());
    let engine = Engine::builder()
        .check_runtime(CheckRuntime::Current)
        .component(db)
        .start()
        .unwrap();
    let config = alert_config(&format!(
        "[[alert.sink]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"{}\"\n[alert]\ndefault_sinks = [\"am\"]\n",
        am.url()
    ));
    let alerting = Alerting::builder(engine.clone())
        .config(&config)
        .delivery(DeliveryOptions {
            resend_interval: Duration::from_secs(1),
            ..fast_retries()
        })
        .start();
    let alerts = |am: &vitalis_testkit::alertmanager::Alertmanager| -> Vec<Value> {
        serde_json::from_str::<Value>(&am.alerts())
            .unwrap()
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let named = |list: &[Value], name: &str| -> Option<Value> {
        list.iter()
            .find(|a| a["labels"]["alertname"] == name)
            .cloned()
    };
    // The watchdog fires from the start.
    let dog = eventually(Duration::from_secs(10), "watchdog in alertmanager", || {
        named(&alerts(&am), "VitalisWatchdog")
    })
    .await;
    assert_eq!(dog["status"]["state"], "active");
    db_state.store(2, Ordering::SeqCst);
    let a = eventually(Duration::from_secs(10), "db alert in alertmanager", || {
        named(&alerts(&am), "VitalisComponentDegraded")
    })
    .await;
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["component"], "db");
    assert_eq!(a["labels"]["vitalis_subject"], "component/db");
    assert_eq!(a["labels"]["tier"], "core");
    assert_eq!(
        a["annotations"]["runbook_url"],
        "https://runbooks.example/db"
    );
    assert!(
        a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{a:#}"
    );
    assert_eq!(
        a["generatorURL"],
        "http://127.0.0.1:8080/health/components/db"
    );
    assert!(named(&alerts(&am), "VitalisSystemDegraded").is_some());
    // Re-sent periodically: still active past its first `endsAt` (4 ×
    // the 1 s resend interval), which only a re-send moves on.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(named(&alerts(&am), "VitalisComponentDegraded").is_some());
    // Recovery: Alertmanager learns the end and drops it from active alerts.
    db_state.store(0, Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "db alert resolved in alertmanager",
        || {
            let list = alerts(&am);
            (named(&list, "VitalisComponentDegraded").is_none()
                && named(&list, "VitalisWatchdog").is_some())
            .then_some(())
        },
    )
    .await;
    // The component's and the system's firing and resolution; the sink
    // counts a post once Alertmanager answered it, which may be just after
    // Alertmanager shows its effect.
    let delivered = || -> u64 {
        alerting
            .counters()
            .iter()
            .filter(|c| c.sink == "am" && c.outcome.as_str() == "delivered")
            .map(|c| c.count)
            .sum()
    };
    eventually(Duration::from_secs(10), "4 deliveries counted", || {
        (delivered() >= 4).then_some(())
    })
    .await;
    engine.shutdown();
    drop(am);
}
