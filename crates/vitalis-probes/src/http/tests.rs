//! Against real servers on 127.0.0.1:0: axum for the HTTP behaviour, raw
//! sockets for misbehaving servers, rustls for TLS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery};
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vitalis_core::{CheckCx, Outcome, Status};

use super::*;
use crate::http::sign::hmac_sha256_hex;

const API_KEY: &str = "key-AAAA-1111";
const API_SECRET: &str = "secret-BBBB-2222";
const BEARER: &str = "tok-SECRET-123";

fn app() -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async {
                (
                    [
                        ("content-type", "application/json"),
                        ("x-mbx-used-weight-1m", "1200"),
                        ("x-ratelimit-remaining", "50"),
                    ],
                    r#"{"status":"ok","positions":{"age_ms":1250},"feeds":[{"lag_ms":3},{"lag_ms":4}]}"#,
                )
            }),
        )
        .route(
            "/status/{code}",
            get(|UrlPath(code): UrlPath<u16>| async move {
                let status = AxumStatus::from_u16(code).unwrap();
                let mut headers = AxumHeaders::new();
                headers.insert("location", "https://other.example/moved".parse().unwrap());
                (status, headers, "upstream down:\n  database   unreachable")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "late"
            }),
        )
        .route("/html", get(|| async { "<html>not json</html>" }))
        // Echoes the request headers in a 500: what a careless server does.
        .route(
            "/echo",
            get(|headers: AxumHeaders| async move {
                let dump: Vec<String> = headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                    .collect();
                (AxumStatus::INTERNAL_SERVER_ERROR, dump.join("\n"))
            }),
        )
        .route("/signed", any(signed))
}

/// Verifies an exchange-style signature the way the exchange does.
async fn signed(headers: AxumHeaders, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let query = query.unwrap_or_default();
    let reject =
        |why: &str| (AxumStatus::UNAUTHORIZED, format!(r#"{{"error":"{why}"}}"#)).into_response();
    if headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return reject("bad api key");
    }
    let Some((signed_part, signature)) = query.rsplit_once("&signature=") else {
        return reject("no signature");
    };
    let Some(ts) = signed_part
        .split('&')
        .find_map(|kv| kv.strip_prefix("timestamp="))
        .and_then(|t| t.parse::<u128>().ok())
    else {
        return reject("no timestamp");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    if now.abs_diff(ts) > 60_000 {
        return reject("timestamp outside recvWindow");
    }
    let expected = hmac_sha256_hex(API_SECRET.as_bytes(), signed_part.as_bytes(), &body);
    if signature != expected {
        return reject("bad signature");
    }
    (
        [("content-type", "application/json")],
        format!(
            r#"{{"accepted":true,"query":"{signed_part}","body_len":{}}}"#,
            body.len()
        ),
    )
        .into_response()
}

/// Serves `app()` on 127.0.0.1:0; returns the base URL.
async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app()).await });
    format!("http://{addr}")
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    crate::testing::build("http", toml_text)
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("http", toml_text, Duration::from_secs(5)).await
}

use crate::testing::error;

#[tokio::test]
async fn passes_on_2xx_and_observes_latency() {
    let base = serve().await;
    let o = run(&format!(r#"url = "{base}/health""#)).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(
        o.output.starts_with(&format!("GET {base}/health: 200 in ")),
        "{o:?}"
    );
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    assert!(o.observed_value.unwrap() > 0.0);
    assert_eq!(
        build(&format!(r#"url = "{base}/health""#))
            .unwrap()
            .target_host()
            .as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test]
async fn wrong_status_fails_quoting_the_body() {
    let base = serve().await;
    let o = run(&format!(r#"url = "{base}/status/503""#)).await;
    assert_eq!(o.status, Status::Fail);
    assert_eq!(
        error(&o),
        format!(
            "GET {base}/status/503: answered 503 (expected 2xx); body starts: upstream down: database unreachable"
        )
    );
    assert!(o.observed_value.is_some());
    // An explicit expectation: a code, a class, a list.
    let o = run(&format!("url = \"{base}/status/503\"\nexpect_status = 503")).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "url = \"{base}/status/503\"\nexpect_status = \"503\""
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "url = \"{base}/status/404\"\nexpect_status = [\"4xx\", 200]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "url = \"{base}/health\"\nexpect_status = [204, \"3xx\"]"
    ))
    .await;
    assert!(
        error(&o).contains("answered 200 (expected 204 or 3xx)"),
        "{o:?}"
    );
    // Redirects are reported, not followed; auth failures say what to check.
    let o = run(&format!(r#"url = "{base}/status/301""#)).await;
    assert!(
        error(&o)
            .contains("answered 301 (expected 2xx); it redirects to https://other.example/moved"),
        "{o:?}"
    );
    let o = run(&format!(r#"url = "{base}/status/401""#)).await;
    assert!(error(&o).contains("check the credentials"), "{o:?}");
}

#[tokio::test]
async fn slow_answers_fail_max_latency() {
    let base = serve().await;
    let o = run(&format!("url = \"{base}/slow\"\nmax_latency = \"100ms\"")).await;
    assert_eq!(o.status, Status::Fail);
    let err = error(&o);
    assert!(
        err.starts_with(&format!("GET {base}/slow: answered 200 in "))
            && err.contains("over max_latency 100ms"),
        "{err}"
    );
    assert!(o.observed_value.unwrap() >= 300.0);
    let o = run(&format!("url = \"{base}/slow\"\nmax_latency = \"2s\"")).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    // Past the check's own deadline: a failure on time, not a hang.
    let check = build(&format!(r#"url = "{base}/slow""#)).unwrap();
    let o = check.run(CheckCx::new(Duration::from_millis(100))).await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("no complete answer within 100ms"),
        "{o:?}"
    );
}

#[tokio::test]
async fn json_assertions_pass_fail_and_warn() {
    let base = serve().await;
    let url = format!("url = \"{base}/health\"");
    let o = run(&format!(
        "{url}\nassert = [{{ path = \"$.status\", op = \"==\", value = \"ok\" }}, {{ path = \"$.feeds[*].lag_ms\", op = \"<\", value = 10 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains(r#"$.status = "ok" (== "ok")"#), "{o:?}");

    let o = run(&format!(
        "{url}\nassert = [{{ path = \"$.positions.age_ms\", op = \"<\", value = 500 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail);
    assert_eq!(
        error(&o),
        format!("GET {base}/health: $.positions.age_ms = 1250, expected < 500")
    );

    let o = run(&format!(
        "{url}\nassert = [{{ path = \"$.positions.age_ms\", op = \"<\", value = 5000 }}, {{ path = \"$.positions.age_ms\", op = \"<\", value = 1000, impact = \"warn\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(error(&o).ends_with("$.positions.age_ms = 1250, expected < 1000 (impact warn)"));

    let o = run(&format!(
        "url = \"{base}/html\"\nassert = [{{ path = \"$.status\", op = \"exists\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("body is not JSON")
            && error(&o).contains("body starts: <html>not json</html>"),
        "{o:?}"
    );
}

#[tokio::test]
async fn header_assertions() {
    let base = serve().await;
    let url = format!("url = \"{base}/health\"");
    let o = run(&format!(
        "{url}\nheader_assert = [{{ path = \"x-mbx-used-weight-1m\", op = \"<\", value = 1000 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail);
    assert_eq!(
        error(&o),
        format!("GET {base}/health: header x-mbx-used-weight-1m = \"1200\", expected < 1000")
    );
    let o = run(&format!(
        "{url}\nheader_assert = [{{ path = \"X-MBX-Used-Weight-1m\", op = \"<\", value = 2000 }}, {{ path = \"x-ratelimit-remaining\", op = \">\", value = 100, impact = \"warn\" }}, {{ path = \"content-type\", op = \"matches\", value = \"json\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(error(&o).contains("header x-ratelimit-remaining = \"50\", expected > 100"));
    let o = run(&format!(
        "{url}\nheader_assert = [{{ path = \"x-absent\", op = \"exists\", value = false }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
}

#[tokio::test]
async fn signed_requests_are_verified_by_the_server() {
    let base = serve().await;
    let sign = format!(
        "sign = {{ key = \"{API_KEY}\", key_header = \"X-MBX-APIKEY\", secret = \"{API_SECRET}\" }}"
    );
    let accepted = "assert = [{ path = \"$.accepted\", op = \"==\", value = true }]";
    // GET with a query of its own.
    let o = run(&format!(
        "url = \"{base}/signed?symbol=BTCUSDT&side=BUY\"\n{sign}\n{accepted}"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    // POST: the body is signed too.
    let o = run(&format!(
        "url = \"{base}/signed\"\nmethod = \"post\"\nbody = \"quantity=1&price=0.1\"\n{sign}\n{accepted}"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    // A wrong secret: the server recomputes and rejects.
    let o = run(&format!(
        "url = \"{base}/signed?symbol=BTCUSDT\"\nsign = {{ key = \"{API_KEY}\", key_header = \"X-MBX-APIKEY\", secret = \"not-the-secret\" }}"
    ))
    .await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("answered 401 (expected 2xx)") && error(&o).contains("bad signature"),
        "{o:?}"
    );
    for o in [&o] {
        for secret in [API_KEY, "not-the-secret"] {
            assert!(!o.output.contains(secret) && !error(o).contains(secret));
        }
    }
}

#[tokio::test]
async fn secrets_never_reach_output_or_errors() {
    let base = serve().await;
    let authority = base.trim_start_matches("http://");
    // The server echoes every request header into its error body.
    let o = run(&format!(
        "url = \"http://admin:hunter2pass@{authority}/echo\"\nsecret_headers = {{ Authorization-Extra = \"Bearer {BEARER}\" }}\nheaders = {{ X-Visible = \"plain-value\" }}\nsign = {{ key = \"{API_KEY}\", key_header = \"X-MBX-APIKEY\", secret = \"{API_SECRET}\" }}"
    ))
    .await;
    assert_eq!(o.status, Status::Fail);
    let text = format!("{} {}", o.output, error(&o));
    assert!(text.contains("answered 500"), "{text}");
    assert!(
        text.contains(&format!("GET http://***@{authority}/echo")),
        "{text}"
    );
    assert!(
        text.contains("plain-value"),
        "non-secret headers stay visible: {text}"
    );
    assert!(text.contains("authorization-extra: ***"), "{text}");
    // The URL's userinfo went out as basic auth, and is scrubbed in that form too.
    assert!(text.contains("authorization: Basic ***"), "{text}");
    let basic = crate::secret::base64("admin:hunter2pass".as_bytes());
    for secret in [BEARER, API_KEY, API_SECRET, "hunter2pass", basic.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // Nor in a transport error, nor in the config's Debug.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let cfg = format!(
        "url = \"https://user:hunter2pass@127.0.0.1:{port}/x\"\nsecret_headers = {{ X-Token = \"{BEARER}\" }}"
    );
    let o = run(&cfg).await;
    let text = format!("{} {}", o.output, error(&o));
    assert!(text.contains("https://***@127.0.0.1"), "{text}");
    let config: HttpConfig = toml::from_str(&cfg).unwrap();
    let debug = format!("{config:?} {text}");
    for secret in [BEARER, "hunter2pass"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[tokio::test]
async fn connection_refused_says_what_to_look_at() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let o = run(&format!(r#"url = "http://{addr}/ping""#)).await;
    assert_eq!(o.status, Status::Fail);
    assert_eq!(
        error(&o),
        format!(
            "GET http://{addr}/ping: connection refused; is the service running and listening on that port?"
        )
    );
    let o = run(r#"url = "http://no-such-host.invalid/ping""#).await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("cannot resolve host 'no-such-host.invalid'"),
        "{o:?}"
    );
}

/// A server that accepts, reads the request, and then misbehaves.
async fn broken_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(reply).await;
            // Dropped: the connection closes mid-answer.
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_server_vanishing_mid_answer_fails_the_run() {
    let base = broken_server(b"").await;
    let o = run(&format!(r#"url = "{base}/health""#)).await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("the connection closed before a complete answer")
            && error(&o).contains("did the service crash or restart?"),
        "{o:?}"
    );
    let base = broken_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\":").await;
    let o = run(&format!(r#"url = "{base}/health""#)).await;
    assert_eq!(o.status, Status::Fail);
    assert!(
        error(&o).contains("the connection closed before a complete answer"),
        "{o:?}"
    );
}

/// A keep-alive HTTP/1.1 server counting connections; `stop` closes its
/// listener while established connections keep being served.
struct KeepAliveServer {
    base: String,
    connections: Arc<AtomicUsize>,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn keep_alive_server() -> KeepAliveServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return, // drops the listener
                accepted = listener.accept() => {
                    let Ok((mut socket, _)) = accepted else { return };
                    count.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        let mut seen = Vec::new();
                        loop {
                            let Ok(n) = socket.read(&mut buf).await else { return };
                            if n == 0 { return }
                            seen.extend_from_slice(&buf[..n]);
                            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                seen.drain(..end + 4);
                                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if socket.write_all(reply).await.is_err() { return }
                            }
                        }
                    });
                }
            }
        }
    });
    KeepAliveServer {
        base,
        connections,
        stop,
    }
}

#[tokio::test]
async fn reuses_connections_but_proves_new_ones_can_be_opened() {
    let server = keep_alive_server().await;
    let config: HttpConfig = toml::from_str(&format!(r#"url = "{}/""#, server.base)).unwrap();
    let mut check = config.compile().unwrap();
    let period = Duration::from_secs(1);
    check.freshness = Freshness::new(period);
    let cx = || CheckCx::new(Duration::from_secs(5));

    // Run 1 opens a fresh (unpooled) connection, run 2 the pooled one,
    // runs 3 and 4 reuse it.
    for _ in 0..4 {
        assert_eq!(check.run(cx()).await.status, Status::Pass);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);

    // The listener goes away; the kept-alive connection still answers.
    server.stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(check.run(cx()).await.status, Status::Pass);

    // Once the fresh-connect period is over, a run must connect anew: the
    // broken connect path shows.
    tokio::time::sleep(period).await;
    let o = check.run(cx()).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("connection refused"), "{o:?}");
    // And keeps showing: after a connection failure every run connects anew.
    let o = check.run(cx()).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
}

#[tokio::test]
async fn checks_with_the_same_tls_share_clients() {
    let a: HttpConfig = toml::from_str(r#"url = "http://127.0.0.1:1/a""#).unwrap();
    let b: HttpConfig = toml::from_str(r#"url = "http://127.0.0.1:2/b""#).unwrap();
    let (a, b) = (a.compile().unwrap(), b.compile().unwrap());
    assert!(Arc::ptr_eq(&a.clients, &b.clients));
}

#[test]
fn bad_configs_name_the_key() {
    let cases = [
        (r#"url = "not a url""#, "url", "is not a URL"),
        (
            r#"url = "ftp://host/x""#,
            "url",
            "must be http:// or https://",
        ),
        (
            "url = \"http://h/\"\nmethod = \"GE T\"",
            "method",
            "not an HTTP method",
        ),
        (
            "url = \"http://h/\"\nexpect_status = 999",
            "expect_status",
            "neither a status code",
        ),
        (
            "url = \"http://h/\"\nexpect_status = \"2xy\"",
            "expect_status",
            "neither a status code",
        ),
        (
            "url = \"http://h/\"\nexpect_status = []",
            "expect_status",
            "empty list",
        ),
        (
            "url = \"http://h/\"\nheaders = { \"bad header\" = \"v\" }",
            "headers",
            "not a valid header name",
        ),
        (
            "url = \"http://h/\"\nsecret_headers = { X-T = \"line\\nbreak-SECRET\" }",
            "secret_headers",
            "the value holds characters",
        ),
        (
            "url = \"http://h/\"\nassert = [{ path = \"$[\", op = \"exists\" }]",
            "assert",
            "assert[0]",
        ),
        (
            "url = \"http://h/\"\nheader_assert = [{ op = \"exists\" }]",
            "header_assert",
            "must name the header",
        ),
        (
            "url = \"http://h/\"\ntls = { cert = \"/x.pem\" }",
            "tls",
            "go together",
        ),
        (
            "url = \"http://h/\"\ntls = { ca = \"/nonexistent/ca.pem\" }",
            "tls",
            "tls.ca /nonexistent/ca.pem: cannot read it",
        ),
        (
            "url = \"http://h/\"\nsign = { secret = \"s\", key = \"k\" }",
            "sign",
            "key_header",
        ),
        (
            "url = \"http://h/\"\nmax_latncy = \"1s\"",
            "max_latncy",
            "unknown field",
        ),
    ];
    for (text, key, want) in cases {
        let e = build(text).err().unwrap_or_else(|| panic!("{text} built"));
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(e.message.contains(want), "{text}: {e}");
        assert!(!e.message.contains("SECRET"), "{e}");
    }
    let e = build(r#"url = "https://u:pw-SECRET@/x""#).err().unwrap();
    assert!(!e.message.contains("SECRET"), "{e}");
    // A valid config builds without a runtime (as `vitalis validate` does).
    assert!(build(r#"url = "http://127.0.0.1:8080/health""#).is_ok());
}

#[test]
fn the_schema_lists_every_key() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("http").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in [
        "url",
        "method",
        "headers",
        "secret_headers",
        "body",
        "expect_status",
        "max_latency",
        "assert",
        "header_assert",
        "sign",
        "tls",
        "key_header",
        "timestamp_param",
    ] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
}

mod tls {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::server::WebPkiClientVerifier;
    use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto::aws_lc_rs};

    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
        ca_der: CertificateDer<'static>,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: PrivateKeyDer<'static>,
    }

    /// A CA, a server certificate for 127.0.0.1/localhost, and a client
    /// certificate, all signed by the CA; PEM files in a temp dir.
    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "vitalis test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "vitalis probe");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("client.pem"), client_cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            dir,
        }
    }

    /// An HTTPS server answering `200 ok` to one request per connection;
    /// with `client_auth`, it demands a client certificate signed by the CA.
    async fn https_server(pki: &Pki, client_auth: bool) -> String {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        format!("https://127.0.0.1:{}", addr.port())
    }

    #[tokio::test]
    async fn a_private_ca_is_trusted_through_tls_ca() {
        let pki = pki();
        let base = https_server(&pki, false).await;
        let o = run(&format!(r#"url = "{base}/health""#)).await;
        assert_eq!(o.status, Status::Fail);
        assert!(
            error(&o).contains("TLS handshake failed") && error(&o).contains("set tls.ca"),
            "{o:?}"
        );
        let ca = pki.dir.path().join("ca.pem");
        let o = run(&format!(
            "url = \"{base}/health\"\ntls = {{ ca = \"{}\" }}",
            ca.display()
        ))
        .await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_through_tls_cert_and_key() {
        let pki = pki();
        let base = https_server(&pki, true).await;
        let ca = pki.dir.path().join("ca.pem");
        let o = run(&format!(
            "url = \"{base}/health\"\ntls = {{ ca = \"{}\" }}",
            ca.display()
        ))
        .await;
        assert_eq!(o.status, Status::Fail, "{o:?}");
        let o = run(&format!(
            "url = \"{base}/health\"\ntls = {{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
            ca.display(),
            pki.dir.path().join("client.pem").display(),
            pki.dir.path().join("client.key").display()
        ))
        .await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
    }

    #[test]
    fn unreadable_pem_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = build(&format!(
            "url = \"https://h/\"\ntls = {{ ca = \"{}\" }}",
            junk.display()
        ))
        .err()
        .unwrap();
        assert!(e.message.contains("holds no PEM certificate"), "{e}");
        let e = build(&format!(
            "url = \"https://h/\"\ntls = {{ cert = \"{0}\", key = \"{0}\" }}",
            junk.display()
        ))
        .err()
        .unwrap();
        assert!(e.message.contains("not a usable PEM certificate"), "{e}");
    }
}
