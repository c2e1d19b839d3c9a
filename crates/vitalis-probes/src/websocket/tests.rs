//! Against real WebSocket servers on 127.0.0.1: axum's `ws` for feeds,
//! tokio-tungstenite behind rustls for `wss://`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vitalis_core::{Check, CheckCx, Outcome, Status};

use crate::{BuildCx, BuildError};

const TOKEN: &str = "ws-T0ken-s3cret";

#[derive(Clone)]
struct Feed {
    stop: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct FeedParams {
    /// Milliseconds between messages.
    every: Option<u64>,
    /// Wait for a "subscribe" text first, and acknowledge it.
    sub: Option<bool>,
    /// The price to publish.
    price: Option<f64>,
    /// Send this many messages, then stay silent.
    count: Option<u64>,
}

/// A feed server that can be stopped (closing every connection) and
/// started again on the same port.
struct FeedServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    async fn start() -> FeedServer {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> FeedServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let open = Arc::new(AtomicUsize::new(0));
        let state = Feed {
            stop: stop_rx.clone(),
            open: open.clone(),
        };
        let app = Router::new()
            .route("/feed", get(feed))
            .route("/auth", get(auth))
            .route("/close", get(close))
            .with_state(state);
        let mut shutdown = stop_rx;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await;
        });
        FeedServer {
            addr,
            stop,
            open,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn stop(self) -> SocketAddr {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.addr
    }
}

async fn feed(
    ws: WebSocketUpgrade,
    Query(p): Query<FeedParams>,
    State(state): State<Feed>,
) -> Response {
    ws.on_upgrade(move |socket| publish(socket, p, state))
}

async fn publish(mut socket: WebSocket, p: FeedParams, state: Feed) {
    state.open.fetch_add(1, Ordering::SeqCst);
    let mut stop = state.stop.clone();
    let every = Duration::from_millis(p.every.unwrap_or(20));
    let price = p.price.unwrap_or(100.5);
    let body = async {
        if p.sub.unwrap_or(false) {
            loop {
                match socket.recv().await {
                    Some(Ok(WsMessage::Text(t))) if t.as_str() == "subscribe" => break,
                    Some(Ok(_)) => continue,
                    _ => return,
                }
            }
            if socket
                .send(WsMessage::Text(r#"{"ack":true}"#.into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut seq = 0u64;
        loop {
            if p.count.is_none_or(|c| seq < c) {
                let text = format!(r#"{{"seq":{seq},"price":{price}}}"#);
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    return;
                }
                seq += 1;
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::select! {
        () = body => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    state.open.fetch_sub(1, Ordering::SeqCst);
}

async fn auth(ws: WebSocketUpgrade, headers: AxumHeaders, State(state): State<Feed>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let p = FeedParams {
        every: None,
        sub: None,
        price: None,
        count: None,
    };
    ws.on_upgrade(move |socket| publish(socket, p, state))
}

async fn close(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        let _ = socket
            .send(WsMessage::Close(Some(axum::extract::ws::CloseFrame {
                code: 1008,
                reason: "symbol not allowed".into(),
            })))
            .await;
    })
}

fn build_with(toml_text: &str, timeout: Duration) -> Result<Arc<dyn Check>, BuildError> {
    let table: toml::Table = toml::from_str(toml_text).expect("valid toml");
    let cx = BuildCx {
        timeout,
        ..BuildCx::default()
    };
    crate::kind("websocket").unwrap().build(table, &cx)
}

fn build(toml_text: &str) -> Arc<dyn Check> {
    build_with(toml_text, Duration::from_secs(3)).unwrap()
}

async fn run_on(check: &Arc<dyn Check>) -> Outcome {
    check.run(CheckCx::new(Duration::from_secs(3))).await
}

use crate::testing::error;

// === once per run ===

#[tokio::test]
async fn messages_within_the_window_pass() {
    let server = FeedServer::start().await;
    let check = build(&format!(
        "url = \"{}\"\nmin_messages = 3\nexpect_within = \"2s\"\nassert = [{{ path = \"$.price\", op = \">\", value = 0 }}]",
        server.url("/feed")
    ));
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("3 messages in"), "{}", o.output);
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    assert!(o.observed_value.unwrap() < 1000.0);
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_subscribe_message_is_sent_and_an_ack_does_not_satisfy_assertions() {
    let server = FeedServer::start().await;
    let url = server.url("/feed?sub=true");
    let o = run_on(&build(&format!(
        "url = \"{url}\"\nsend = \"subscribe\"\nassert = [{{ path = \"$.price\", op = \"exists\" }}]"
    )))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("2 messages"), "{}", o.output);

    // Without the subscription, nothing comes.
    let o = run_on(&build(&format!(
        "url = \"{url}\"\nexpect_within = \"300ms\""
    )))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("0 messages in")
            && error(&o).contains("within 300ms, expected at least 1")
            && error(&o).contains("subscribe message (send)"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn a_bad_message_fails_the_assertion_naming_the_value() {
    let server = FeedServer::start().await;
    let o = run_on(&build(&format!(
        "url = \"{}\"\nexpect_within = \"300ms\"\nassert = [{{ path = \"$.price\", op = \">\", value = 0 }}]",
        server.url("/feed?price=-1")
    )))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("no message satisfied the assertions")
            && error(&o).contains("$.price = -1, expected > 0")
            && error(&o).contains("last message: {\"seq\":"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn refused_unauthorized_and_closed_connections_say_what_to_look_at() {
    let server = FeedServer::start().await;
    let o = run_on(&build(&format!(
        "url = \"{}\"\nsecret_headers = {{ Authorization = \"Bearer {TOKEN}\" }}",
        server.url("/auth")
    )))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    let o = run_on(&build(&format!(
        "url = \"{}\"\nsecret_headers = {{ Authorization = \"Bearer {TOKEN}x\" }}",
        server.url("/auth")
    )))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("HTTP 401 Unauthorized instead of switching to WebSocket")
            && error(&o).contains("check the credentials"),
        "{}",
        error(&o)
    );
    assert!(!format!("{o:?}").contains(TOKEN));

    let o = run_on(&build(&format!("url = \"{}\"", server.url("/close")))).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o)
            .contains("closed the connection (code 1008, 'symbol not allowed') after 0 messages"),
        "{}",
        error(&o)
    );

    let addr = server.stop().await;
    let o = run_on(&build(&format!("url = \"ws://{addr}/feed\""))).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("cannot connect") && error(&o).contains("nothing listens there"),
        "{}",
        error(&o)
    );
}

// === stream = true ===

#[tokio::test]
async fn a_flowing_stream_passes_with_age_and_rate() {
    let server = FeedServer::start().await;
    let check = build(&format!(
        "url = \"{}\"\nstream = true\nmax_age = \"500ms\"\nmin_rate = 10\nassert = [{{ path = \"$.price\", op = \">\", value = 0 }}]",
        server.url("/feed?every=20")
    ));
    // The first run waits for the first message.
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.observed_value.unwrap() < 500.0, "{o:?}");
    assert!(
        o.output.contains("msg/s over") && o.output.contains("connected for"),
        "{}",
        o.output
    );
    // One subscription serves every run.
    assert_eq!(server.open.load(Ordering::SeqCst), 1);
    // Dropping the check stops the subscription.
    drop(check);
    let closed = async {
        while server.open.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), closed)
        .await
        .expect("the subscription closes when the check is dropped");
}

#[tokio::test]
async fn a_silent_feed_is_stale() {
    let server = FeedServer::start().await;
    let check = build(&format!(
        "url = \"{}\"\nstream = true\nmax_age = \"300ms\"",
        server.url("/feed?count=1")
    ));
    assert_eq!(run_on(&check).await.status, Status::Pass);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("over max_age 300ms; the feed is stale (connected for")
            && error(&o).contains("but silent"),
        "{}",
        error(&o)
    );
    assert!(o.observed_value.unwrap() >= 600.0, "{o:?}");
}

#[tokio::test]
async fn a_slow_feed_fails_min_rate() {
    let server = FeedServer::start().await;
    let check = build(&format!(
        "url = \"{}\"\nstream = true\nmin_rate = 20",
        server.url("/feed?every=200")
    ));
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Pass, "measuring at first: {o:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("under min_rate 20/s"), "{}", error(&o));
}

#[tokio::test]
async fn the_last_message_is_asserted_in_a_stream() {
    let server = FeedServer::start().await;
    let check = build(&format!(
        "url = \"{}\"\nstream = true\nmax_age = \"1s\"\nassert = [{{ path = \"$.price\", op = \">\", value = 0 }}]",
        server.url("/feed?price=-2")
    ));
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("the last message fails the assertions: $.price = -2, expected > 0"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn a_stream_fails_while_the_server_is_gone_and_recovers_when_it_is_back() {
    let server = FeedServer::start().await;
    let url = server.url("/feed?every=20");
    let check = build(&format!(
        "url = \"{url}\"\nstream = true\nmax_age = \"400ms\""
    ));
    assert_eq!(run_on(&check).await.status, Status::Pass);

    let addr = server.stop().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let o = run_on(&check).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("over max_age 400ms; the feed is stale (disconnected for")
            && error(&o).contains("reconnecting with backoff"),
        "{}",
        error(&o)
    );

    let server = FeedServer::start_on(addr).await;
    let recovered = async {
        loop {
            let o = run_on(&check).await;
            if o.status == Status::Pass {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let o = tokio::time::timeout(Duration::from_secs(10), recovered)
        .await
        .expect("the subscription reconnects within the backoff");
    assert!(o.output.contains("connected for"), "{}", o.output);
    drop(server);
}

#[tokio::test]
async fn a_stream_that_cannot_connect_says_so_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let check = build(&format!(
        "url = \"ws://{addr}/feed\"\nstream = true\nmax_age = \"1s\""
    ));
    let start = std::time::Instant::now();
    let o = run_on(&check).await;
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("no message yet") && error(&o).contains("cannot connect"),
        "{}",
        error(&o)
    );
}

// === wss ===

#[tokio::test]
async fn wss_verifies_against_a_private_ca() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "WS Test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = ServerConfig::builder_with_provider(crate::tls::roots::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let _ = ws
                    .send(tokio_tungstenite::tungstenite::Message::text(
                        r#"{"ok":true}"#,
                    ))
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            });
        }
    });
    let url = format!("wss://localhost:{port}/");
    let o = run_on(&build(&format!("url = \"{url}\""))).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("TLS handshake failed") && error(&o).contains("set ca"),
        "{}",
        error(&o)
    );
    let o = run_on(&build(&format!(
        "url = \"{url}\"\nca = \"{}\"\nassert = [{{ path = \"$.ok\", op = \"==\", value = true }}]",
        ca_path.display()
    )))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build_with(text, Duration::from_secs(3)).err().unwrap().key;
    assert_eq!(key("url = \"http://h/\"").as_deref(), Some("url"));
    assert_eq!(key("url = \"not a url\"").as_deref(), Some("url"));
    assert_eq!(
        key("url = \"ws://h/\"\nstream = true").as_deref(),
        Some("stream")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nmax_age = \"1s\"").as_deref(),
        Some("max_age")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nstream = true\nmin_rate = 0").as_deref(),
        Some("min_rate")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nstream = true\nmax_age = \"1s\"\nmin_messages = 2").as_deref(),
        Some("min_messages")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nexpect_within = \"5s\"").as_deref(),
        Some("expect_within")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nca = \"/x.pem\"").as_deref(),
        Some("ca")
    );
    assert_eq!(
        key("url = \"ws://h/\"\nsubscribe = \"x\"").as_deref(),
        Some("subscribe")
    );
    let e = build_with(
        "url = \"wss://user:hunter2@h/\"\nmin_messages = 0",
        Duration::from_secs(3),
    )
    .err()
    .unwrap();
    assert_eq!(e.key.as_deref(), Some("min_messages"));
    assert!(!e.message.contains("hunter2"));
}

#[tokio::test]
async fn userinfo_never_shows() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let o = run_on(&build(&format!("url = \"ws://user:hunter2@{addr}/feed\""))).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("ws://***@127.0.0.1"), "{}", error(&o));
    assert!(!format!("{o:?}").contains("hunter2"));
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("websocket").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in [
        "url",
        "send",
        "headers",
        "secret_headers",
        "ca",
        "expect_within",
        "min_messages",
        "assert",
        "stream",
        "max_age",
        "min_rate",
    ] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table =
        toml::from_str("url = \"wss://h/ws\"\nstream = true\nmax_age = \"1s\"").unwrap();
    assert!(
        crate::kind("websocket")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
