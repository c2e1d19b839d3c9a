//! The HTTP API over a real engine and a real listener on 127.0.0.1:0,
//! called with reqwest: statuses and codes, the IETF body, verbose and
//! exclude, auth hiding, refresh scopes, and hostile input (never a 5xx).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vitalis_core::{CheckSpec, Component, Engine, Group, Impact, Outcome, Status, check_fn};
use vitalis_server::{Api, Auth, Details, Scope, Token};

/// A check whose status the test sets: 0 pass, 1 warn, 2 fail.
fn switch(state: &Arc<AtomicU8>, what: &'static str) -> impl vitalis_core::Check {
    let state = state.clone();
    check_fn(move |_| {
        let s = state.load(Ordering::SeqCst);
        async move {
            match s {
                0 => Outcome::pass(format!("{what} answered")).observed(4.0, "ms"),
                1 => Outcome::warn(format!("{what} slow: 180ms over 100ms")),
                _ => Outcome::fail(format!("{what}: connection refused; is it running?")),
            }
        }
    })
}

struct Fixture {
    base: String,
    db: Arc<AtomicU8>,
    cache: Arc<AtomicU8>,
    engine: Engine,
    client: reqwest::Client,
}

async fn start(details: Details) -> Fixture {
    let db = Arc::new(AtomicU8::new(0));
    let cache = Arc::new(AtomicU8::new(0));
    let fast = Duration::from_millis(100);
    let engine = Engine::builder()
        .group(Group::new("data"))
        .component(
            Component::new("trading-db")
                .group("data")
                .critical(true)
                .check(
                    CheckSpec::live("tcp", switch(&db, "postgres"))
                        .kind("tcp")
                        .interval(fast),
                )
                .check(
                    CheckSpec::ready("query", switch(&db, "postgres"))
                        .kind("postgres")
                        .interval(fast),
                ),
        )
        .component(
            Component::new("cache")
                .group("data")
                .depends_on("trading-db")
                .check(
                    CheckSpec::ready("ping", switch(&cache, "redis"))
                        .kind("redis")
                        .interval(fast),
                ),
        )
        .component(
            Component::new("reports").check(
                CheckSpec::deep(
                    "export",
                    check_fn(|_| async { Outcome::fail("export is 3d old") }),
                )
                .interval(fast)
                .impact(Impact::Warn),
            ),
        )
        .start()
        .unwrap();
    let auth = Auth {
        details,
        tokens: vec![
            Token {
                name: "ops".into(),
                value: "ops-secret".into(),
                scopes: vec![Scope::Read, Scope::Admin],
            },
            Token {
                name: "reader".into(),
                value: "read-secret".into(),
                scopes: vec![Scope::Read],
            },
        ],
        metrics_auth: false,
    };
    let app = Api::new(engine.clone())
        .auth(Arc::new(ArcSwap::from_pointee(auth)))
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let f = Fixture {
        base,
        db,
        cache,
        engine,
        client: reqwest::Client::new(),
    };
    f.settle(|s| s.checks.iter().all(|c| c.runs >= 1)).await;
    f
}

impl Fixture {
    async fn settle(&self, pred: impl Fn(&vitalis_core::Snapshot) -> bool) {
        for _ in 0..200 {
            if pred(&self.engine.snapshot()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "state did not settle: {:#?}",
            self.engine.snapshot().view(vitalis_core::View::All)
        );
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String, Option<String>) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        (code, resp.text().await.unwrap(), ct)
    }

    async fn json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (code, body, _) = self.get(path, token).await;
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }
}

#[tokio::test]
async fn health_document_follows_the_ietf_draft() {
    let f = start(Details::WhenAuthorized).await;
    let (code, body, ct) = f.get("/health", Some("read-secret")).await;
    assert_eq!(code, 200);
    assert_eq!(ct.as_deref(), Some("application/health+json"));
    let doc: Value = serde_json::from_str(&body).unwrap();
    // The warn-impact export failure degrades the system to warn.
    assert_eq!(doc["status"], "warn");
    let check = &doc["checks"]["trading-db:query"];
    assert!(check.is_array(), "check values are arrays: {doc}");
    assert_eq!(check[0]["componentId"], "trading-db");
    assert_eq!(check[0]["componentType"], "datastore");
    assert_eq!(check[0]["status"], "pass");
    assert_eq!(check[0]["observedValue"], 4.0);
    assert_eq!(check[0]["observedUnit"], "ms");
    assert!(check[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        doc["checks"]["trading-db:tcp"][0]["componentType"],
        "component"
    );
    assert_eq!(doc["root_causes"], serde_json::json!([]));
    // Without a token: status only.
    let (code, anon) = f.json("/health", None).await;
    assert_eq!(code, 200);
    assert_eq!(anon, serde_json::json!({"status": "warn"}));
}

#[tokio::test]
async fn codes_views_and_root_causes_follow_failures() {
    let f = start(Details::Always).await;
    f.db.store(2, Ordering::SeqCst);
    f.cache.store(2, Ordering::SeqCst);
    f.settle(|s| {
        let all = s.view(vitalis_core::View::All);
        // Both database checks (live and ready) and the cache have failed.
        let db_down = s.checks[..2].iter().all(|c| c.status == Status::Fail);
        db_down && all.root_causes == vec![0] && all.impacted_by[1] == vec![0]
    })
    .await;
    let (code, doc) = f.json("/health", None).await;
    assert_eq!(code, 503);
    assert_eq!(doc["status"], "fail");
    let roots = doc["root_causes"].as_array().unwrap();
    assert_eq!(
        roots.len(),
        1,
        "the database is the root cause, the cache its symptom: {doc}"
    );
    assert_eq!(roots[0]["component"], "trading-db");
    assert_eq!(roots[0]["impacts"], serde_json::json!(["cache"]));
    assert!(
        roots[0]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(f.get("/health/live", None).await.0, 503);
    // Excluding the database: the cache (non-critical) only degrades.
    let (code, doc) = f.json("/health?exclude=trading-db", None).await;
    assert_eq!((code, doc["status"].as_str()), (200, Some("warn")));
    assert!(doc["checks"].get("trading-db:tcp").is_none());
    let (code, _) = f
        .json(
            "/health?exclude=trading-db&exclude=cache&exclude=reports",
            None,
        )
        .await;
    assert_eq!(code, 200);
    // Components and groups show the root cause and impacted_by.
    let (code, comps) = f.json("/health/components", None).await;
    assert_eq!(code, 200);
    let cache = comps["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cache")
        .unwrap();
    assert_eq!(cache["impacted_by"], serde_json::json!(["trading-db"]));
    assert_eq!(cache["checks"][0]["circuit"], "closed");
    assert_eq!(cache["checks"][0]["type"], "redis");
    let (code, g) = f.json("/health/groups/data", None).await;
    assert_eq!((code, g["status"].as_str()), (200, Some("fail")));
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    // Recovery.
    f.db.store(0, Ordering::SeqCst);
    f.cache.store(0, Ordering::SeqCst);
    f.settle(|s| s.system() == Status::Warn).await;
    assert_eq!(f.get("/health/ready", None).await.0, 200);
}

#[tokio::test]
async fn verbose_text_is_kubernetes_style() {
    let f = start(Details::WhenAuthorized).await;
    f.cache.store(2, Ordering::SeqCst);
    f.settle(|s| s.checks[2].status == Status::Fail).await;
    let (code, text, ct) = f.get("/health/ready?verbose", Some("read-secret")).await;
    assert_eq!(code, 200);
    assert!(ct.unwrap().starts_with("text/plain"));
    assert!(text.contains("[+]trading-db:tcp ok\n"), "{text}");
    assert!(
        text.contains("[-]cache:ping failed: redis: connection refused; is it running?\n"),
        "{text}"
    );
    assert!(
        !text.contains("reports:export"),
        "deep checks are not in readiness: {text}"
    );
    assert!(text.ends_with("[+]system ok\n"));
    let (_, text, _) = f.get("/health/ready?verbose", None).await;
    assert_eq!(text, "[+]system ok\n");
}

#[tokio::test]
async fn auth_hides_details_and_names() {
    let f = start(Details::WhenAuthorized).await;
    for path in [
        "/health/components",
        "/health/components/trading-db",
        "/health/components/nope",
        "/health/groups",
    ] {
        let (code, body) = f.json(path, None).await;
        assert_eq!(code, 401, "{path}");
        assert!(
            !body.to_string().contains("trading-db"),
            "{path} leaks names: {body}"
        );
    }
    assert_eq!(
        f.json("/health/components/nope", Some("read-secret"))
            .await
            .0,
        404
    );
    assert_eq!(f.json("/health", Some("wrong")).await.0, 401);
    // refresh needs admin: 401 anonymous, 403 with a read-only token.
    assert_eq!(f.json("/health?refresh=true", None).await.0, 401);
    assert_eq!(
        f.json("/health?refresh=true", Some("read-secret")).await.0,
        403
    );
    let (code, _) = f.json("/health?refresh=true", Some("ops-secret")).await;
    assert_eq!(code, 200);
    // never: even a read token sees status only on /health.
    let f = start(Details::Never).await;
    assert_eq!(
        f.json("/health", Some("read-secret")).await.1,
        serde_json::json!({"status": "warn"})
    );
    assert_eq!(
        f.json("/health/components", Some("read-secret")).await.0,
        200
    );
}

#[tokio::test]
async fn readiness_is_503_before_checks_ran() {
    let engine = Engine::builder()
        .component(Component::new("slow").check(CheckSpec::ready(
            "first",
            check_fn(|_| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Outcome::pass("finally")
            }),
        )))
        .start()
        .unwrap();
    let app = Api::new(engine).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = reqwest::Client::new();
    let ready = c.get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "warn", "vitalis:status": "unknown"})
    );
    assert_eq!(
        c.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/livez"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn errors_are_json_4xx() {
    let f = start(Details::Always).await;
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/nope", 404),
        ("DELETE", "/health", 405),
        ("GET", "/health?refresh=maybe", 400),
        ("GET", "/health/components/%ff%fe", 400),
        ("POST", "/v1/reload", 401),
        ("PUT", "/v1/components/x", 401),
    ];
    for (method, path, want) in cases {
        let resp = f
            .client
            .request(method.parse().unwrap(), format!("{}{path}", f.base))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert_eq!(code, *want, "{method} {path}: {body}");
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}

/// Throws malformed and hostile requests at the server over raw TCP and
/// asserts it never answers 5xx, never panics and keeps serving.
#[tokio::test]
async fn hostile_requests_never_get_a_5xx() {
    let f = start(Details::WhenAuthorized).await;
    let addr = f.base.trim_start_matches("http://").to_string();
    let long = "a".repeat(70_000);
    let big_body = "x".repeat(400_000);
    let mut requests: Vec<String> = vec![
        "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n\r\n".into(),
        "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u{0}\r\n\r\n".into(),
        "GET /health?exclude=%zz HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "GET /health?verbose=%ff&exclude=&refresh=1 HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        format!("GET /health/components/{long} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {long}\r\n\r\n"),
        "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "BREW /health HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        format!("PUT /v1/components/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{big_body}", big_body.len()),
        "PUT /v1/components/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{{{{{".into(),
        "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".into(),
        "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n".into(),
        "GET /health/groups/%2e%2e HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".into(),
        "garbage\r\n\r\n".into(),
    ];
    // Random byte soup.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..30 {
        let mut s = String::from("GET /health");
        for _ in 0..20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let soup = b"?&=%/._-aZ09\\\"'<>{}[]";
            s.push(soup[(seed % soup.len() as u64) as usize] as char);
        }
        s.push_str(" HTTP/1.1\r\nHost: x\r\n\r\n");
        requests.push(s);
    }
    for req in &requests {
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = sock.write_all(req.as_bytes()).await;
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        if let Some(code) = head.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)) {
            assert!(
                !code.starts_with('5'),
                "{:?} got {head}",
                &req[..req.len().min(80)]
            );
        }
    }
    // Still serving.
    assert_eq!(f.get("/health", None).await.0, 200);
}
