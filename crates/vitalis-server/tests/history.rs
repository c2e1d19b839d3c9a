//! `/health/history`, `/health/uptime` and `/health/rollups` over a real
//! engine recorded by a real SQLite store, on a real listener: auth, bad
//! parameters (400 naming them), unknown ids (404), no store (404), a
//! store that is down (503), and the happy path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::Value;
use vitalis_core::{CheckSpec, Component, Defaults, Engine, Outcome, check_fn};
use vitalis_server::{Api, Auth, Details, Scope, Token};
use vitalis_store::History;

struct Fixture {
    base: String,
    db: Arc<AtomicU8>,
    history: History,
    engine: Engine,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn auth(details: Details) -> Auth {
    Auth {
        details,
        tokens: vec![
            Token {
                name: "dashboard".into(),
                value: "read-token".into(),
                scopes: vec![Scope::Read],
            },
            Token {
                name: "agent".into(),
                value: "beat-token".into(),
                scopes: vec![Scope::Heartbeat],
            },
        ],
        metrics_auth: false,
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// An engine with `db` (check `port`, switched by the test) recorded into
/// SQLite, served with `details`; `url` overrides the store's URL.
async fn start(details: Details, url: Option<String>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let healthy = url.is_none();
    let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("v.db").display()));
    let history = History::builder(url)
        .instance("api-test")
        .flush_interval(Duration::from_millis(20))
        .retry_max(Duration::from_millis(200))
        .start();
    if healthy {
        history.ready(Duration::from_secs(5)).await.unwrap();
    }
    let db = Arc::new(AtomicU8::new(0));
    let state = db.clone();
    let engine = Engine::builder()
        .defaults(Defaults {
            interval: Duration::from_millis(50),
            ..Defaults::default()
        })
        .observer(history.observer())
        .component(history.component())
        .component(
            Component::new("db").group("data").critical(true).check(
                CheckSpec::live(
                    "port",
                    check_fn(move |_| {
                        let s = state.load(Ordering::SeqCst);
                        async move {
                            if s == 0 {
                                Outcome::pass("127.0.0.1:5432 accepted").observed(1.0, "ms")
                            } else {
                                Outcome::fail(
                                    "127.0.0.1:5432: connection refused; is PostgreSQL running?",
                                )
                            }
                        }
                    }),
                )
                .kind("tcp"),
            ),
        )
        .start()
        .unwrap();
    history.attach(&engine);
    let app = Api::new(engine.clone())
        .auth(Arc::new(ArcSwap::from_pointee(auth(details))))
        .history(Arc::new(history.clone()))
        .router();
    Fixture {
        base: serve(app).await,
        db,
        history,
        engine,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Fixture {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        assert!(ct.contains("json"), "{path}: not JSON ({ct}): {text}");
        (code, serde_json::from_str(&text).unwrap())
    }

    async fn read(&self, path: &str) -> (u16, Value) {
        self.get(path, Some("read-token")).await
    }
}

async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_results_and_transitions_after_a_fault() {
    let f = start(Details::WhenAuthorized, None).await;
    eventually("passing results", || async {
        let (code, v) = f.read("/health/history?component=db").await;
        (code == 200 && v["results"].as_array()?.len() >= 2).then_some(())
    })
    .await;
    f.db.store(1, Ordering::SeqCst);
    let v = eventually("the failure in history", || async {
        f.history.flush().await.ok()?;
        let (_, v) = f
            .read("/health/history?component=db&check=port&limit=50")
            .await;
        let failed = v["transitions"]
            .as_array()?
            .iter()
            .any(|t| t["subject"] == "check" && t["from"] == "pass" && t["to"] == "fail");
        failed.then_some(v)
    })
    .await;
    assert_eq!(v["component"], "db");
    assert_eq!(v["check"], "port");
    assert_eq!(v["limit"], 50);
    let results = v["results"].as_array().unwrap();
    let newest = &results[0];
    assert_eq!(newest["status"], "fail", "{newest:#}");
    assert_eq!(newest["component"], "db");
    assert_eq!(newest["kind"], "tcp");
    assert_eq!(newest["level"], "live");
    assert_eq!(newest["instance"], "api-test");
    assert!(newest["duration_ms"].is_number());
    assert!(
        newest["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    let times: Vec<jiff::Timestamp> = results
        .iter()
        .map(|r| r["time"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let t = v["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "fail")
        .unwrap();
    assert_eq!(
        (t["component"].as_str(), t["check"].as_str()),
        (Some("db"), Some("port"))
    );
    assert_eq!(t["change"], "status");
    assert!(t["seq"].as_u64().unwrap() > 0);

    // limit and time range.
    let (code, v) = f.read("/health/history?component=db&limit=2").await;
    assert_eq!(code, 200);
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    let newest = v["results"][0]["time"].as_str().unwrap().to_string();
    let (_, v) = f
        .read(&format!("/health/history?component=db&since={newest}"))
        .await;
    assert!(!v["results"].as_array().unwrap().is_empty());
    let (_, v) = f
        .read("/health/history?component=db&until=2001-01-01T00:00:00Z")
        .await;
    assert_eq!(v["results"].as_array().unwrap().len(), 0);
    // Everything, groups and the system included.
    let (_, v) = f.read("/health/history?limit=1000").await;
    assert!(
        v["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["subject"] == "system")
    );

    // Uptime: every registered component, the system, the session.
    let (code, v) = f.read("/health/uptime?window=1h").await;
    assert_eq!(code, 200, "{v:#}");
    assert_eq!(v["window"], "1h");
    assert_eq!(v["window_ms"], 3_600_000.0);
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    let comps = v["components"].as_array().unwrap();
    let ids: Vec<&str> = comps.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["db", "vitalis.store"]);
    assert!(comps[0]["fail_ms"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["system"]["observed_ms"].as_f64().unwrap() > 0.0);

    // Rollups: none closed yet, but db is known: an empty list.
    let (code, v) = f
        .read("/health/rollups?component=db&granularity=hour")
        .await;
    assert_eq!(code, 200, "{v:#}");
    assert_eq!(v["granularity"], "hour");
    assert!(v["rollups"].as_array().unwrap().is_empty());
    f.engine.shutdown();
    f.history.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_a_read_token_unless_details_are_always_shown() {
    let f = start(Details::WhenAuthorized, None).await;
    for path in [
        "/health/history?component=db",
        "/health/uptime",
        "/health/rollups?component=db",
        "/health/history?component=nope",
    ] {
        let (code, v) = f.get(path, None).await;
        assert_eq!(code, 401, "{path}: {v}");
        assert!(!v.to_string().contains("db\""), "{path} leaks: {v}");
        assert_eq!(f.get(path, Some("beat-token")).await.0, 403, "{path}");
        assert_eq!(f.get(path, Some("wrong")).await.0, 401, "{path}");
    }
    let open = start(Details::Always, None).await;
    assert_eq!(open.get("/health/uptime", None).await.0, 200);
    let never = start(Details::Never, None).await;
    assert_eq!(never.get("/health/uptime", None).await.0, 401);
    assert_eq!(never.get("/health/uptime", Some("read-token")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_naming_them_and_never_5xx() {
    let f = start(Details::Always, None).await;
    for (query, param) in [
        ("/health/history?limit=0", "limit"),
        ("/health/history?limit=1001", "limit"),
        ("/health/history?limit=ten", "limit"),
        ("/health/history?limit=-1", "limit"),
        ("/health/history?since=yesterday", "since"),
        ("/health/history?until=2026-13-45T00:00:00Z", "until"),
        (
            "/health/history?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        ("/health/history?component=Trading%20DB", "component"),
        ("/health/history?component=db&check=../../etc", "check"),
        ("/health/history?check=port", "check"),
        ("/health/uptime?window=0s", "window"),
        ("/health/uptime?window=forever", "window"),
        ("/health/uptime?window=100000d", "window"),
        ("/health/uptime?until=noon", "until"),
        ("/health/rollups", "component"),
        (
            "/health/rollups?component=db&granularity=weekly",
            "granularity",
        ),
    ] {
        let (code, v) = f.get(query, None).await;
        assert_eq!(code, 400, "{query}: {v}");
        assert_eq!(
            v["error"],
            format!("bad parameter '{param}'"),
            "{query}: {v}"
        );
        assert!(
            v["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}: {v}"
        );
    }
    // Unknown parameters and empty values are ignored.
    assert_eq!(
        f.get("/health/history?component=db&check=&_=123", None)
            .await
            .0,
        200
    );
    // Hostile input never makes the server fail.
    for q in [
        "component=%00",
        "since=%FF%FE",
        "limit=99999999999999999999999",
        "window=1e9s",
        "component=db&component=cache",
        "since=&until=",
        &format!("component={}", "a".repeat(5000)),
    ] {
        for path in ["/health/history", "/health/uptime", "/health/rollups"] {
            let (code, v) = f.get(&format!("{path}?{q}"), None).await;
            assert!(code < 500, "{path}?{q}: {code} {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404_and_no_store_is_404_not_enabled() {
    let f = start(Details::Always, None).await;
    let (code, v) = f.get("/health/history?component=nope", None).await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["error"], "no component 'nope'");
    let (code, v) = f.get("/health/history?component=db&check=nope", None).await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(v["error"], "no check 'nope' in component 'db'");
    assert_eq!(f.get("/health/rollups?component=nope", None).await.0, 404);

    // A server without a store says so on each endpoint.
    let app = Api::new(f.engine.clone())
        .auth(Arc::new(ArcSwap::from_pointee(auth(Details::Always))))
        .router();
    let base = serve(app).await;
    let bare = Fixture {
        base,
        db: f.db.clone(),
        history: f.history.clone(),
        engine: f.engine.clone(),
        client: reqwest::Client::new(),
        _dir: tempfile::tempdir().unwrap(),
    };
    for path in [
        "/health/history",
        "/health/uptime",
        "/health/rollups?component=db",
    ] {
        let (code, v) = bare.get(path, None).await;
        assert_eq!(code, 404, "{path}: {v}");
        assert_eq!(v["error"], "history is not enabled");
        assert!(v["detail"].as_str().unwrap().contains("[history]"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_answers_503_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing/v.db", dir.path().display());
    let f = start(Details::Always, Some(url.clone())).await;
    eventually("the store to fail", || async {
        f.history.health().last_error.map(|_| ())
    })
    .await;
    for path in ["/health/history?component=db", "/health/uptime"] {
        let (code, v) = f.get(path, None).await;
        assert_eq!(code, 503, "{path}: {v}");
        assert_eq!(v["error"], "history store unavailable");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(&url) && detail.contains("vitalis.store"),
            "{detail}"
        );
    }
    // Vitalis itself keeps serving, and reports the store as failing.
    assert_eq!(f.get("/health/components/vitalis.store", None).await.0, 200);
    let v = eventually("vitalis.store fails", || async {
        let (_, v) = f.get("/health/components/vitalis.store", None).await;
        (v["status"] == "fail").then_some(v)
    })
    .await;
    assert!(
        v["checks"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{v:#}"
    );
    assert_eq!(v["checks"][0]["type"], "vitalis");
}
