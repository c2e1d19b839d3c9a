//! `vitalis serve` end to end: statuses, codes, the IETF body, verbose and
//! exclude, auth hiding, reload (API and SIGHUP, good and bad), run-time
//! registration, the audit log, and SIGTERM shutdown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Daemon, HttpTarget, TestDir, client, eventually, get_json, plugin};

const TOKENS: &str = r#"
[[server.token]]
name = "ops"
value = "${VITALIS_TEST_TOKEN}"
scopes = ["read", "admin", "write"]

[[server.token]]
name = "dashboard"
value = "read-only"
scopes = ["read"]

[[server.token]]
name = "batch-job"
value = "beat-token"
scopes = ["heartbeat"]
"#;

/// exchange (tcp, critical) ← risk-engine (http, critical); backups (nagios, warn impact).
fn platform(tcp: &str, http: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{TOKENS}
[defaults]
interval = "200ms"
timeout = "1s"

[[component]]
id = "exchange"
group = "exchange"
critical = true
  [[component.check]]
  name = "port"
  level = "live"
  type = "tcp"
  address = "{tcp}"

[[component]]
id = "risk-engine"
group = "risk"
critical = true
depends_on = ["exchange"]
owner = "risk-team"
runbook_url = "https://runbooks.example/risk"
labels = {{ tier = "core" }}
  [[component.check]]
  name = "positions"
  type = "http"
  url = "http://{http}/status"
  assert = [{{ path = "$.positions.age_ms", op = "<", value = 500 }}]

[[component]]
id = "backups"
group = "data"
  [[component.check]]
  name = "nightly"
  level = "deep"
  type = "command"
  interval = "200ms"
  impact = "warn"
  command = ["{dummy}", "1", "last backup 26h ago"]
{extra}"#,
        dummy = plugin("check_dummy")
    )
}

async fn status_of(d: &Daemon, path: &str) -> (u16, Value) {
    get_json(&format!("{}{path}", d.base), Some("ops-token")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_statuses_root_causes_and_hides_details() {
    let dir = TestDir::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let http = HttpTarget::start().await;
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, ""));
    let d = Daemon::start(&dir, "vitalis.toml");

    // Healthy but for the warn-impact backup: 200, warn.
    let doc = eventually(Duration::from_secs(5), "first results", async || {
        let (code, doc) = status_of(&d, "/health").await;
        let all_ran = doc["checks"]
            .as_object()?
            .values()
            .all(|c| c[0].get("vitalis:status").is_none());
        (code == 200 && doc["status"] == "warn" && all_ran && doc["checks"].as_object()?.len() == 3)
            .then_some(doc)
    })
    .await;
    assert_eq!(
        doc["checks"]["risk-engine:positions"][0]["status"], "pass",
        "{doc:#}"
    );
    let backup = doc["checks"]["backups:nightly"][0]["output"]
        .as_str()
        .unwrap();
    assert!(
        backup.contains("check_dummy exited 1 (warning): WARNING: last backup 26h ago"),
        "{backup}"
    );
    assert_eq!(doc["checks"]["exchange:port"][0]["observedUnit"], "ms");

    // No token: status only; names never leak.
    assert_eq!(
        get_json(&format!("{}/health", d.base), None).await,
        (200, json!({"status": "warn"}))
    );
    assert_eq!(
        get_json(&format!("{}/health/components", d.base), None)
            .await
            .0,
        401
    );
    assert_eq!(
        get_json(
            &format!("{}/health/components/exchange", d.base),
            Some("bogus")
        )
        .await
        .0,
        401
    );
    let (code, comps) = get_json(&format!("{}/health/components", d.base), Some("read-only")).await;
    assert_eq!(code, 200);
    let risk = comps["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "risk-engine")
        .unwrap()
        .clone();
    assert_eq!(
        (
            risk["owner"].as_str(),
            risk["labels"]["tier"].as_str(),
            risk["source"].as_str()
        ),
        (Some("risk-team"), Some("core"), Some("config"))
    );
    assert_eq!(risk["checks"][0]["type"], "http");
    // refresh needs admin.
    assert_eq!(
        get_json(
            &format!("{}/health?refresh=true", d.base),
            Some("read-only")
        )
        .await
        .0,
        403
    );
    assert_eq!(status_of(&d, "/health?refresh=true").await.0, 200);

    // The exchange goes down and the risk engine fails too: one root cause.
    drop(tcp);
    http.code.store(503, Ordering::SeqCst);
    let doc = eventually(Duration::from_secs(5), "the outage", async || {
        let (code, doc) = status_of(&d, "/health").await;
        let exchange_is_root = doc["root_causes"].as_array()?.len() == 1
            && doc["root_causes"][0]["component"] == "exchange";
        (code == 503
            && doc["checks"]["risk-engine:positions"][0]["status"] == "fail"
            && exchange_is_root)
            .then_some(doc)
    })
    .await;
    assert_eq!(doc["root_causes"][0]["component"], "exchange");
    assert_eq!(doc["root_causes"][0]["impacts"], json!(["risk-engine"]));
    let err = doc["root_causes"][0]["error"].as_str().unwrap();
    assert!(err.contains(&tcp_addr) && err.contains("refused"), "{err}");
    assert_eq!(status_of(&d, "/health/live").await.0, 503);

    // verbose and exclude.
    let resp = client()
        .get(format!("{}/health?verbose", d.base))
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("[-]exchange:port failed: tcp ") && text.ends_with("[-]system failed\n"),
        "{text}"
    );
    assert!(
        text.contains("[+]backups:nightly warn: command ")
            && text.contains("WARNING: last backup 26h ago\n"),
        "{text}"
    );
    let (code, doc) = status_of(&d, "/health?exclude=exchange&exclude=risk-engine").await;
    assert_eq!((code, doc["status"].as_str()), (200, Some("warn")));
    let resp = client()
        .get(format!("{}/health?verbose", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "[-]system failed\n");

    // Groups.
    let (code, groups) = status_of(&d, "/health/groups").await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["exchange", "risk", "data"]);
    assert!(
        d.log().contains("action=\"refresh\""),
        "refresh is audited: {}",
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_state_and_rejects_bad_files() {
    let dir = TestDir::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let http = HttpTarget::start().await;
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, ""));
    let d = Daemon::start(&dir, "vitalis.toml");
    let since_before = eventually(Duration::from_secs(5), "first results", async || {
        let (_, c) = status_of(&d, "/health/components/exchange").await;
        (c["checks"][0]["status"] == "pass").then(|| c["checks"][0]["since"].clone())
    })
    .await;

    // Good reload through the API: one component added, the others kept.
    let extra = format!(
        "\n[[component]]\nid = \"late\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = \"{tcp_addr}\"\n"
    );
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, &extra));
    let resp = client()
        .post(format!("{}/v1/reload", d.base))
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["changes"]["added"], json!(["late"]));
    assert_eq!(body["changes"]["unchanged"], 3);
    let (code, c) = status_of(&d, "/health/components/exchange").await;
    assert_eq!(code, 200);
    assert_eq!(
        c["checks"][0]["since"], since_before,
        "unchanged components keep their state"
    );
    eventually(
        Duration::from_secs(5),
        "the new component's first result",
        async || {
            let (code, c) = status_of(&d, "/health/components/late").await;
            (code == 200 && c["status"] == "pass").then_some(())
        },
    )
    .await;

    // A bad file: 400 naming the line; the running config stays.
    dir.write(
        "vitalis.toml",
        &platform(&tcp_addr, &http.addr, &extra)
            .replace("depends_on = [\"exchange\"]", "depends_on = [\"nowhere\"]"),
    );
    let resp = client()
        .post(format!("{}/v1/reload", d.base))
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("vitalis.toml:") && detail.contains("nowhere"),
        "{detail}"
    );
    assert_eq!(status_of(&d, "/health/components/late").await.0, 200);
    // Reload needs admin.
    let resp = client()
        .post(format!("{}/v1/reload", d.base))
        .bearer_auth("read-only")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // SIGHUP with a good file removes `late` again.
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, ""));
    d.signal("HUP");
    eventually(Duration::from_secs(5), "SIGHUP reload", async || {
        (status_of(&d, "/health/components/late").await.0 == 404).then_some(())
    })
    .await;
    assert!(d.log().contains("configuration reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_registration_is_scoped_checked_and_audited() {
    let dir = TestDir::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let http = HttpTarget::start().await;
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, ""));
    let d = Daemon::start(&dir, "vitalis.toml");
    let url = format!("{}/v1/components/late", d.base);
    let body = json!({"group": "core", "depends_on": ["exchange"], "check": [{"name": "tcp", "type": "tcp", "address": tcp_addr}]});
    assert_eq!(
        client()
            .put(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        client()
            .put(&url)
            .bearer_auth("read-only")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let resp = client()
        .put(&url)
        .bearer_auth("ops-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let (code, c) = status_of(&d, "/health/components/late").await;
    assert_eq!((code, c["source"].as_str()), (200, Some("registered")));
    assert_eq!(
        client()
            .put(&url)
            .bearer_auth("ops-token")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Never a command through the API; unknown keys and dependencies are 400s.
    let cmd = json!({"check": [{"name": "x", "type": "command", "command": ["/bin/true"]}]});
    let resp = client()
        .put(&url)
        .bearer_auth("ops-token")
        .json(&cmd)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let bad = json!({"depends_on": ["ghost"], "check": [{"name": "x", "type": "tcp", "address": tcp_addr}]});
    let resp = client()
        .put(&url)
        .bearer_auth("ops-token")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("ghost"));
    let resp = client()
        .put(&url)
        .bearer_auth("ops-token")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Config components cannot be replaced or removed through the API.
    let resp = client()
        .delete(format!("{}/v1/components/exchange", d.base))
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(
        client()
            .delete(&url)
            .bearer_auth("ops-token")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client()
            .delete(&url)
            .bearer_auth("ops-token")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let log = d.log();
    assert!(
        log.contains("token=\"ops\"")
            && log.contains("action=\"register\"")
            && log.contains("action=\"deregister\""),
        "{log}"
    );
    assert!(
        !log.contains("ops-token"),
        "token values never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits() {
    let dir = TestDir::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let http = HttpTarget::start().await;
    dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, ""));
    let mut d = Daemon::start(&dir, "vitalis.toml");
    assert_eq!(
        client()
            .get(format!("{}/readyz", d.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{}/livez", d.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    d.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client()
            .get(format!("{}/readyz", d.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    // /health keeps answering while draining.
    assert!(
        client()
            .get(format!("{}/health", d.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
            < 500
    );
    assert_eq!(d.wait(Duration::from_secs(5)), Some(0));
    assert!(d.log().contains("stopped"));
}

/// The platform plus `nightly-export`, read by one heartbeat check.
struct HeartbeatDaemon {
    d: Daemon,
    /// Where the job posts its beats.
    url: String,
    _tcp: tokio::net::TcpListener,
    _http: HttpTarget,
    _dir: TestDir,
}

impl HeartbeatDaemon {
    async fn start(ttl: &str, interval: &str) -> Self {
        let dir = TestDir::new();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_addr = tcp.local_addr().unwrap().to_string();
        let http = HttpTarget::start().await;
        let extra = format!(
            "\n[[component]]\nid = \"nightly-export\"\n  [[component.check]]\n  name = \"beat\"\n  type = \"heartbeat\"\n  ttl = \"{ttl}\"\n  interval = \"{interval}\"\n"
        );
        dir.write("vitalis.toml", &platform(&tcp_addr, &http.addr, &extra));
        let d = Daemon::start(&dir, "vitalis.toml");
        let url = format!("{}/v1/components/nightly-export/heartbeat", d.base);
        HeartbeatDaemon {
            d,
            url,
            _tcp: tcp,
            _http: http,
            _dir: dir,
        }
    }

    /// The heartbeat check's status, output and error.
    async fn beat(&self) -> (String, String, String) {
        let (_, c) = status_of(&self.d, "/health/components/nightly-export").await;
        let field = |f: &str| c["checks"][0][f].as_str().unwrap_or("").to_string();
        (field("status"), field("output"), field("error"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_pushed_and_expire() {
    let hb = HeartbeatDaemon::start("1s", "100ms").await;
    let (d, url) = (&hb.d, hb.url.as_str());
    let beat_status = async || {
        let (status, _, error) = hb.beat().await;
        (status, error)
    };
    assert_eq!(
        client().post(url).send().await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        client()
            .post(url)
            .bearer_auth("read-only")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let resp = client()
        .post(format!("{}/v1/components/exchange/heartbeat", d.base))
        .bearer_auth("beat-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "no heartbeat check reads that component"
    );
    // No heartbeat yet: fails (after its first run) saying so.
    eventually(Duration::from_secs(5), "no-heartbeat failure", async || {
        (beat_status().await.0 == "fail").then_some(())
    })
    .await;
    assert_eq!(
        client()
            .post(url)
            .bearer_auth("beat-token")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    eventually(Duration::from_secs(3), "heartbeat pass", async || {
        (beat_status().await.0 == "pass").then_some(())
    })
    .await;
    // A reported failure fails the check with the job's words.
    let resp = client()
        .post(url)
        .bearer_auth("beat-token")
        .json(&json!({"status": "fail", "output": "export aborted: disk full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, err) = eventually(Duration::from_secs(3), "reported failure", async || {
        let s = beat_status().await;
        (s.0 == "fail").then_some(s)
    })
    .await;
    assert!(err.contains("export aborted: disk full"), "{err}");
    let resp = client()
        .post(url)
        .bearer_auth("beat-token")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // A good beat, then silence past the ttl.
    client()
        .post(url)
        .bearer_auth("beat-token")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(3), "pass again", async || {
        (beat_status().await.0 == "pass").then_some(())
    })
    .await;
    let (_, err) = eventually(Duration::from_secs(4), "expiry", async || {
        let s = beat_status().await;
        (s.0 == "fail").then_some(s)
    })
    .await;
    assert!(err.contains("ttl") || err.contains("no heartbeat"), "{err}");
}

/// A pushed heartbeat is judged when it arrives, not at the check's next
/// run: with a one-hour interval, a beat and then a reported failure show
/// within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_heartbeat_is_judged_at_once() {
    let hb = HeartbeatDaemon::start("1h", "1h").await;
    let url = hb.url.as_str();
    let beat = async || hb.beat().await;
    // The start-up run finds no beat yet (within its ttl: unknown).
    eventually(Duration::from_secs(5), "the start-up run", async || {
        let b = beat().await;
        (b.0 == "unknown" && b.1.contains("waiting for the first heartbeat")).then_some(())
    })
    .await;
    let post = async |body: Option<serde_json::Value>| {
        let mut req = client().post(url).bearer_auth("beat-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 200);
    };
    post(None).await;
    eventually(Duration::from_secs(5), "the beat judged", async || {
        (beat().await.0 == "pass").then_some(())
    })
    .await;
    post(Some(
        json!({"status": "fail", "output": "export aborted: disk full"}),
    ))
    .await;
    let (_, _, err) = eventually(Duration::from_secs(5), "the failure judged", async || {
        let b = beat().await;
        (b.0 == "fail").then_some(b)
    })
    .await;
    assert!(err.contains("export aborted: disk full"), "{err}");
}
