//! `[history]` end to end: the real binary records into SQLite, serves
//! `/health/history` and `/health/uptime`, reports `vitalis.store`, records
//! its stop on SIGTERM, and the history survives a restart.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Daemon, TestDir, eventually, get_json};

fn config(port: &str, db: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
details = "always"

[defaults]
interval = "200ms"
timeout = "1s"

[history]
url = "sqlite://{db}"

[[component]]
id = "exchange"
group = "exchange"
critical = true
  [[component.check]]
  name = "port"
  level = "live"
  type = "tcp"
  address = "{port}"
"#
    )
}

/// The exchange's stored transitions, newest first.
async fn transitions(d: &Daemon) -> Vec<Value> {
    let (_, v) = d.get("/health/history?component=exchange&limit=1000").await;
    v["transitions"].as_array().cloned().unwrap_or_default()
}

fn went(t: &Value, subject: &str, from: &str, to: &str) -> bool {
    t["subject"] == subject && t["from"] == from && t["to"] == to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_history_across_a_fault_and_a_restart() {
    let dir = TestDir::new();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().to_string();
    let db = dir.path("history.db").display().to_string();
    dir.write("vitalis.toml", &config(&port, &db));
    let mut d = Daemon::start(&dir, "vitalis.toml");
    d.logged("recording history in sqlite://").await;
    assert!(!d.log().contains("section [history]"), "{}", d.log());

    // Healthy: results recorded, and the store's own component passes.
    eventually(Duration::from_secs(10), "passing results", async || {
        let (code, v) = d.get("/health/history?component=exchange").await;
        let results = v["results"].as_array()?;
        (code == 200 && results.len() >= 2 && results[0]["status"] == "pass").then_some(())
    })
    .await;
    let store = eventually(
        Duration::from_secs(10),
        "vitalis.store passes",
        async || {
            let (_, v) = d.get("/health/components/vitalis.store").await;
            (v["status"] == "pass").then_some(v)
        },
    )
    .await;
    assert!(
        store["checks"][0]["output"]
            .as_str()
            .unwrap()
            .contains("writing, lag"),
        "{store:#}"
    );
    let (code, health) = d.get("/health").await;
    assert_eq!(
        (code, &health["status"]),
        (200, &Value::from("pass")),
        "{health:#}"
    );

    // Fault: the port closes.
    drop(target);
    let first_epoch = eventually(
        Duration::from_secs(10),
        "the fault in history",
        async || {
            let ts = transitions(&d).await;
            let check = ts.iter().find(|t| went(t, "check", "pass", "fail"))?;
            ts.iter().find(|t| went(t, "component", "pass", "fail"))?;
            Some(check["epoch"].as_u64().unwrap())
        },
    )
    .await;
    let (_, v) = d
        .get("/health/history?component=exchange&check=port&limit=1")
        .await;
    let newest = &v["results"][0];
    assert_eq!(newest["status"], "fail", "{v:#}");
    assert!(newest["error"].as_str().unwrap().contains(&port), "{v:#}");
    let failed = transitions(&d)
        .await
        .into_iter()
        .find(|t| went(t, "check", "pass", "fail"))
        .unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains(&port),
        "{failed:#}"
    );

    // SIGTERM: the session's stop is recorded.
    d.signal("TERM");
    assert_eq!(d.wait(Duration::from_secs(10)), Some(0), "{}", d.log());
    d.logged(&format!("history store sqlite://{db} closed"))
        .await;

    // Restarted: the earlier history is still there, the new run adds to it.
    let d2 = Daemon::start(&dir, "vitalis.toml");
    eventually(
        Duration::from_secs(10),
        "the second run's results",
        async || {
            let (_, v) = d2
                .get("/health/history?component=exchange&limit=1000")
                .await;
            let results = v["results"].as_array()?;
            let epochs: std::collections::HashSet<u64> =
                results.iter().filter_map(|r| r["epoch"].as_u64()).collect();
            (epochs.len() == 2).then_some(())
        },
    )
    .await;
    let ts = transitions(&d2).await;
    assert!(
        ts.iter()
            .any(|t| t["epoch"] == first_epoch && went(t, "check", "pass", "fail")),
        "the first run's failure survives the restart: {ts:#?}"
    );

    let (code, up) = d2.get("/health/uptime?window=1h").await;
    assert_eq!(code, 200, "{up:#}");
    let sessions = up["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{up:#}");
    assert_eq!(sessions[0]["epoch"], first_epoch);
    assert!(
        sessions[0]["stopped"].is_string(),
        "the stop was recorded: {up:#}"
    );
    assert!(sessions[1]["stopped"].is_null());
    let exchange = up["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "exchange")
        .unwrap();
    assert!(exchange["pass_ms"].as_f64().unwrap() > 0.0, "{exchange:#}");
    assert!(exchange["fail_ms"].as_f64().unwrap() > 0.0, "{exchange:#}");
    let uptime = exchange["uptime"].as_f64().unwrap();
    assert!(uptime > 0.0 && uptime < 1.0, "{exchange:#}");
    // The time between the two runs is no data.
    assert!(
        up["monitored_ms"].as_f64().unwrap() < up["window_ms"].as_f64().unwrap(),
        "{up:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_when_the_store_is_unusable_at_start() {
    let dir = TestDir::new();
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().to_string();
    // A directory that does not exist: SQLite cannot create the file.
    let db = dir.path("missing/history.db").display().to_string();
    dir.write("vitalis.toml", &config(&port, &db));
    let d = Daemon::start(&dir, "vitalis.toml");
    d.logged("Vitalis serves anyway").await;
    let store = eventually(Duration::from_secs(10), "vitalis.store fails", async || {
        let (_, v) = d.get("/health/components/vitalis.store").await;
        (v["status"] == "fail").then_some(v)
    })
    .await;
    let error = store["checks"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&db) && error.contains("does its directory exist"),
        "{error}"
    );
    // The monitored system is still served; the store only degrades it.
    let (code, health) = eventually(Duration::from_secs(10), "exchange passes", async || {
        let (code, v) = d.get("/health").await;
        (v["checks"]["exchange:port"][0]["status"] == "pass").then_some((code, v))
    })
    .await;
    assert_eq!(
        (code, &health["status"]),
        (200, &Value::from("warn")),
        "{health:#}"
    );
    let (code, v) = d.get("/health/history?component=exchange").await;
    assert_eq!(code, 503, "{v:#}");
    // The directory appears: history catches up.
    std::fs::create_dir(dir.path("missing")).unwrap();
    eventually(Duration::from_secs(10), "history to catch up", async || {
        let (code, v) = d.get("/health/history?component=exchange").await;
        (code == 200 && !v["results"].as_array()?.is_empty()).then_some(())
    })
    .await;
    drop(target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_records_history_and_its_store_passes() {
    let dir = TestDir::new();
    let (d, lines) = Daemon::start_demo(&dir, &[]);
    let url = lines
        .iter()
        .find_map(|l| l.strip_prefix("history:"))
        .unwrap_or_else(|| panic!("no history line in {lines:?}"))
        .trim()
        .to_string();
    assert!(
        url.ends_with("/health/history?component=trading-db"),
        "{url}"
    );
    assert!(lines.iter().any(|l| l.starts_with("uptime:")), "{lines:?}");
    eventually(
        Duration::from_secs(15),
        "trading-db results in history",
        async || {
            let (code, v) = get_json(&url, None).await;
            (code == 200 && !v["results"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    assert!(dir.path("demo/vitalis.db").is_file());
    // The store's own component passes, so the demo still reaches "all pass".
    eventually(
        Duration::from_secs(15),
        "every component to pass",
        async || {
            let (_, v) = d.get("/health/components").await;
            let comps = v["components"].as_array()?;
            let store = comps.iter().find(|c| c["id"] == "vitalis.store")?;
            (store["status"] == "pass" && comps.iter().all(|c| c["status"] == "pass")).then_some(())
        },
    )
    .await;
}
