//! Alerting end to end: the real binary pages the root cause of a
//! dependency outage — only it, naming what it impacts — to a webhook and
//! its log, then sends the resolution; `vitalis demo` logs the same for a
//! trading-database outage of the simulated platform.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::util::{Daemon, HttpTarget, TestDir, client, eventually};

/// A webhook receiver on loopback recording every JSON body.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let b2 = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let b = b2.clone();
                async move {
                    b.lock().unwrap().push(v);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, bodies }
    }

    fn all(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn find(&self, subject: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.all()
            .into_iter()
            .find(|b| b["alert"]["subject"] == subject && pred(b))
    }
}

fn impacts(b: &Value) -> Vec<String> {
    b["alert"]["impacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// db (critical, checked every 3 s) ← api (checked every 300 ms).
fn config(db: &str, api: &str, hook: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
details = "always"

[defaults]
interval = "300ms"
timeout = "1s"

[[component]]
id = "db"
name = "Orders database"
critical = true
runbook_url = "https://runbooks.example/db"
  [[component.check]]
  name = "status"
  type = "http"
  url = "http://{db}/status"
  interval = "3s"
  cache_ttl = "200ms"

[[component]]
id = "api"
critical = true
depends_on = ["db"]
  [[component.check]]
  name = "orders"
  type = "http"
  url = "http://{api}/status"

[[alert.sink]]
name = "hook"
type = "webhook"
url = "{hook}"

[[alert.sink]]
name = "log"
type = "log"

[[alert.route]]
match = {{ severity = "critical" }}
sinks = ["hook", "log"]

[alert]
default_sinks = ["log"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pages_the_root_cause_only_with_its_impacts_then_resolves() {
    let db = HttpTarget::start().await;
    let api = HttpTarget::start().await;
    let hook = Receiver::start().await;
    let dir = TestDir::new();
    dir.write("vitalis.toml", &config(&db.addr, &api.addr, &hook.url));
    let d = Daemon::start(&dir, "vitalis.toml");
    eventually(Duration::from_secs(10), "all pass", async || {
        let (_, h) = d.get("/health").await;
        (h["status"] == "pass").then_some(())
    })
    .await;
    // The database goes down: its dependent notices first (it is checked
    // ten times as often), yet only the database pages.
    api.code.store(503, Ordering::SeqCst);
    db.code.store(503, Ordering::SeqCst);
    let fired = eventually(
        Duration::from_secs(10),
        "db's alert naming api",
        async || {
            hook.find("component/db", |b| {
                b["state"] != "resolved" && impacts(b).contains(&"api".to_string())
            })
        },
    )
    .await;
    assert_eq!(fired["alert"]["severity"], "critical");
    assert_eq!(fired["alert"]["root_causes"], serde_json::json!(["db"]));
    assert_eq!(fired["alert"]["runbook_url"], "https://runbooks.example/db");
    assert!(
        fired["alert"]["checks"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{fired:#}"
    );
    // Let every check run a few more times: the symptom never pages.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        hook.find("component/api", |_| true).is_none(),
        "the symptom paged: {:#?}",
        hook.all()
    );
    let sys = hook
        .find("system", |b| b["state"] == "firing")
        .expect("the system's alert");
    assert_eq!(sys["alert"]["root_causes"], serde_json::json!(["db"]));
    // The log sink shows the same, one line per notification.
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("vitalis::alert") && l.contains("subject=component/db"))
        .unwrap_or_else(|| panic!("no alert line for db in: {log}"));
    assert!(line.contains("severity=critical"), "{line}");
    assert!(!log.contains("subject=component/api"), "{log}");
    // Recovery: the resolution for the same alert.
    db.code.store(200, Ordering::SeqCst);
    api.code.store(200, Ordering::SeqCst);
    let resolved = eventually(Duration::from_secs(10), "db resolved", async || {
        hook.find("component/db", |b| b["state"] == "resolved")
    })
    .await;
    assert_eq!(resolved["alert"]["id"], fired["alert"]["id"]);
    assert_eq!(resolved["alert"]["status"], "pass");
    eventually(
        Duration::from_secs(5),
        "resolution in the log",
        async || {
            d.log()
                .lines()
                .any(|l| {
                    l.contains("alert resolved")
                        && l.contains("subject=component/db")
                        && l.contains("state=resolved")
                })
                .then_some(())
        },
    )
    .await;
    assert!(hook.find("component/api", |_| true).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_firing_alerts_and_moves_their_sink() {
    let db = HttpTarget::start().await;
    let api = HttpTarget::start().await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let dir = TestDir::new();
    dir.write("vitalis.toml", &config(&db.addr, &api.addr, &first.url));
    let d = Daemon::start(&dir, "vitalis.toml");
    db.code.store(503, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "db firing", async || {
        first.find("component/db", |b| b["state"] == "firing")
    })
    .await;
    dir.write("vitalis.toml", &config(&db.addr, &api.addr, &second.url));
    d.signal("HUP");
    d.logged("configuration reloaded").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        second
            .find("component/db", |b| b["state"] == "firing")
            .is_none(),
        "a reload re-sent the alert: {:#?}",
        second.all()
    );
    db.code.store(200, Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "resolution at the new URL",
        async || second.find("component/db", |b| b["state"] == "resolved"),
    )
    .await;
    assert!(
        first
            .find("component/db", |b| b["state"] == "resolved")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_logs_the_trading_db_outage_as_one_root_cause() {
    let dir = TestDir::new();
    let (d, lines) = Daemon::start_demo(&dir, &[]);
    assert!(lines.iter().any(|l| l.starts_with("alerts:")), "{lines:?}");
    let faults = lines
        .iter()
        .find_map(|l| l.strip_prefix("fault API:"))
        .unwrap()
        .trim()
        .to_string();
    eventually(Duration::from_secs(10), "demo healthy", async || {
        let (_, h) = d.get("/health").await;
        (h["status"] == "pass").then_some(())
    })
    .await;
    let start = d.log().len();
    let r = client()
        .post(format!("{faults}/trading-db/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let alert_lines = |d: &Daemon| -> Vec<String> {
        d.log()[start..]
            .lines()
            .filter(|l| l.contains("vitalis::alert") && l.contains("dedup_key="))
            .map(str::to_string)
            .collect()
    };
    eventually(
        Duration::from_secs(15),
        "trading-db's alert naming its impacts",
        async || {
            alert_lines(&d)
                .iter()
                .any(|l| {
                    l.contains("subject=component/trading-db")
                        && l.contains("severity=critical")
                        && l.contains("feature-pipeline")
                        && l.contains("backups")
                })
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for l in alert_lines(&d) {
        assert!(
            !l.contains("subject=component/feature-pipeline")
                && !l.contains("subject=component/backups"),
            "a symptom paged: {l}"
        );
    }
    let r = client()
        .delete(format!("{faults}/trading-db"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually(Duration::from_secs(15), "trading-db resolved", async || {
        alert_lines(&d)
            .iter()
            .any(|l| l.contains("alert resolved") && l.contains("subject=component/trading-db"))
            .then_some(())
    })
    .await;
}
