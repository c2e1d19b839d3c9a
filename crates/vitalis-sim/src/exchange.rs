//! The exchange: Binance-style REST (ping, signed test orders, rate-limit
//! usage headers), a primary and a failover WebSocket market-data feed, and
//! the trading app that uses them, with its own `/metrics`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::faults::{Faults, Mode};
use crate::serve::now_ms;

/// The demo's API key.
pub const API_KEY: &str = "sim-api-key";
/// The demo's API secret (HMAC-SHA256 key).
pub const API_SECRET: &str = "sim-api-secret";
/// Request weight allowed per minute.
pub(crate) const WEIGHT_LIMIT: u64 = 1200;
const RECV_WINDOW_MS: u64 = 5000;
const ID: &str = "exchange-api";
const TICK_EVERY: Duration = Duration::from_millis(100);

struct Exchange {
    faults: Faults,
    /// Request times within the last minute, with their weight.
    weights: Mutex<VecDeque<(Instant, u64)>>,
}

impl Exchange {
    /// Adds a request's weight; returns the used weight of the last minute.
    fn spend(&self, weight: u64) -> u64 {
        let mut w = self.weights.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while w
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            w.pop_front();
        }
        w.push_back((now, weight));
        w.iter().map(|(_, x)| x).sum()
    }
}

pub(crate) async fn start_rest(faults: Faults) -> anyhow::Result<SocketAddr> {
    let state = Arc::new(Exchange {
        faults: faults.clone(),
        weights: Mutex::new(VecDeque::new()),
    });
    let router = Router::new()
        .route("/api/v3/ping", get(ping))
        .route("/api/v3/time", get(time))
        .route("/api/v3/order/test", post(test_order))
        .with_state(state);
    let router = crate::serve::generic_faults(router, faults.clone(), ID);
    Ok(crate::serve::spawn(
        crate::serve::bind().await?,
        router,
        faults,
        ID,
        crate::serve::down,
    ))
}

fn with_weight(ex: &Exchange, weight: u64, resp: Response) -> Response {
    let used = if ex.faults.is(ID, Mode::RateLimited) {
        WEIGHT_LIMIT + ex.spend(weight)
    } else {
        ex.spend(weight)
    };
    let mut resp = resp;
    if let Ok(v) = used.to_string().parse() {
        resp.headers_mut().insert("x-mbx-used-weight-1m", v);
    }
    resp
}

fn rate_limited(ex: &Exchange) -> Option<Response> {
    ex.faults.is(ID, Mode::RateLimited).then(|| {
        with_weight(
            ex,
            1,
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"code": -1003, "msg": format!("Too much request weight used; current limit is {WEIGHT_LIMIT} request weight per 1 MINUTE.")})),
            )
                .into_response(),
        )
    })
}

async fn ping(State(ex): State<Arc<Exchange>>) -> Response {
    if let Some(r) = rate_limited(&ex) {
        return r;
    }
    with_weight(&ex, 1, Json(json!({})).into_response())
}

async fn time(State(ex): State<Arc<Exchange>>) -> Response {
    if let Some(r) = rate_limited(&ex) {
        return r;
    }
    with_weight(
        &ex,
        1,
        Json(json!({"serverTime": now_ms()})).into_response(),
    )
}

fn reject(code: StatusCode, err: i64, msg: &str) -> Response {
    (code, Json(json!({"code": err, "msg": msg}))).into_response()
}

/// Verifies `signature = hex(HMAC-SHA256(secret, query-without-signature + body))`.
pub(crate) fn verify(query: &str, body: &[u8], secret: &str) -> Result<(), &'static str> {
    let Some(pos) = query.rfind("signature=") else {
        return Err("Mandatory parameter 'signature' was not sent.");
    };
    let signed = query[..pos].strip_suffix('&').unwrap_or(&query[..pos]);
    let sig = &query[pos + "signature=".len()..];
    let sig = sig.split('&').next().unwrap_or("");
    let Ok(expected) = hex_decode(sig) else {
        return Err("Signature for this request is not valid.");
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
    mac.update(signed.as_bytes());
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "Signature for this request is not valid.")
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ()> {
    if !s.len().is_multiple_of(2) {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn test_order(
    State(ex): State<Arc<Exchange>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = rate_limited(&ex) {
        return r;
    }
    let query = query.unwrap_or_default();
    let resp = (|| {
        if headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
            return reject(
                StatusCode::UNAUTHORIZED,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            );
        }
        let Some(ts) = param(&query, "timestamp").and_then(|t| t.parse::<u64>().ok()) else {
            return reject(
                StatusCode::BAD_REQUEST,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            );
        };
        let now = now_ms();
        if ts > now + 1000 || now.saturating_sub(ts) > RECV_WINDOW_MS {
            return reject(
                StatusCode::BAD_REQUEST,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            );
        }
        if let Err(msg) = verify(&query, &body, API_SECRET) {
            return reject(StatusCode::UNAUTHORIZED, -1022, msg);
        }
        for p in ["symbol", "side", "type"] {
            if param(&query, p).is_none() {
                return reject(
                    StatusCode::BAD_REQUEST,
                    -1102,
                    &format!(
                        "Mandatory parameter '{p}' was not sent, was empty/null, or malformed."
                    ),
                );
            }
        }
        // A test order is validated and never sent to the matching engine.
        Json(json!({})).into_response()
    })();
    with_weight(&ex, 1, resp)
}

// === market-data feeds ===

struct Feed {
    faults: Faults,
    id: &'static str,
    /// Whether this is the failover feed.
    failover: bool,
    ticks: tokio::sync::broadcast::Sender<String>,
}

fn feed_down(f: &Faults, id: &str) -> bool {
    f.is(id, Mode::Down)
        || (id == "market-data-failover" && f.is("market-data", Mode::FailoverDown))
}

fn feed_silent(f: &Faults, id: &str) -> bool {
    f.is(id, Mode::FeedSilent)
}

pub(crate) async fn start_feed(
    faults: Faults,
    id: &'static str,
    failover: bool,
) -> anyhow::Result<SocketAddr> {
    let (tx, _) = tokio::sync::broadcast::channel(256);
    let feed = Arc::new(Feed {
        faults: faults.clone(),
        id,
        failover,
        ticks: tx,
    });
    let f2 = feed.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK_EVERY);
        let mut price = 64_000.0_f64;
        let mut seq = 0u64;
        loop {
            tick.tick().await;
            seq += 1;
            price += ((seq * 7919) % 21) as f64 - 10.0;
            if feed_silent(&f2.faults, f2.id) || feed_down(&f2.faults, f2.id) {
                continue;
            }
            let msg = json!({"e": "trade", "E": now_ms(), "s": "BTCUSDT", "t": seq, "p": format!("{price:.2}"), "q": "0.010", "feed": if f2.failover {"failover"} else {"primary"}});
            let _ = f2.ticks.send(msg.to_string());
        }
    });
    let router = Router::new()
        .route("/ws", any(ws))
        .route("/ws/{stream}", any(ws))
        .with_state(feed);
    Ok(crate::serve::spawn(
        crate::serve::bind().await?,
        router,
        faults,
        id,
        feed_down,
    ))
}

async fn ws(State(feed): State<Arc<Feed>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |socket| stream(feed, socket))
}

async fn stream(feed: Arc<Feed>, mut socket: WebSocket) {
    let mut rx = feed.ticks.subscribe();
    loop {
        tokio::select! {
            tick = rx.recv() => match tick {
                Ok(t) => if socket.send(Message::Text(t.into())).await.is_err() { return },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            msg = socket.recv() => match msg {
                // Subscriptions are acknowledged, Binance style.
                Some(Ok(Message::Text(t))) => {
                    let id = serde_json::from_str::<serde_json::Value>(&t).ok().and_then(|v| v.get("id").cloned());
                    let _ = socket.send(Message::Text(json!({"result": null, "id": id}).to_string().into())).await;
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if feed_down(&feed.faults, feed.id) {
                    let _ = socket.close().await;
                    return;
                }
            }
        }
    }
}

// === the trading app ===

/// The trading app's view: its market-data connection and rate-limit usage.
struct App {
    /// `primary`, `failover` or empty.
    connected: Mutex<&'static str>,
    last_tick_ms: AtomicU64,
    used_weight: AtomicU64,
    rest_ok: AtomicBool,
    failovers: AtomicU64,
}

pub(crate) async fn start_app(
    faults: Faults,
    rest: String,
    primary: String,
    failover: String,
) -> anyhow::Result<SocketAddr> {
    let app = Arc::new(App {
        connected: Mutex::new(""),
        last_tick_ms: AtomicU64::new(0),
        used_weight: AtomicU64::new(0),
        rest_ok: AtomicBool::new(false),
        failovers: AtomicU64::new(0),
    });
    // Market data: the primary feed, else the failover.
    let a2 = app.clone();
    tokio::spawn(async move {
        let feeds = [("primary", primary), ("failover", failover)];
        let mut i = 0;
        loop {
            let (name, url) = &feeds[i % 2];
            if let Ok(Ok((mut ws, _))) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio_tungstenite::connect_async(url.as_str()),
            )
            .await
            {
                *a2.connected.lock().unwrap_or_else(|p| p.into_inner()) = name;
                let since = Instant::now();
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(Some(Ok(m))) if m.is_text() => {
                            a2.last_tick_ms.store(now_ms(), Ordering::Relaxed);
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                    // On the failover, try the primary again every 5 s.
                    if i % 2 == 1 && since.elapsed() > Duration::from_secs(5) {
                        break;
                    }
                }
                let _ = ws.close(None).await;
                *a2.connected.lock().unwrap_or_else(|p| p.into_inner()) = "";
            }
            i += 1;
            if i % 2 == 1 {
                a2.failovers.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // REST: a request every 500 ms, reading the exchange's usage header.
    let a3 = app.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("http client");
        let url = format!("{rest}/api/v3/time");
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            match http.get(&url).send().await {
                Ok(r) => {
                    if let Some(w) = r
                        .headers()
                        .get("x-mbx-used-weight-1m")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                    {
                        a3.used_weight.store(w, Ordering::Relaxed);
                    }
                    a3.rest_ok.store(r.status().is_success(), Ordering::Relaxed);
                }
                Err(_) => a3.rest_ok.store(false, Ordering::Relaxed),
            }
        }
    });
    let _ = faults;
    let router = Router::new()
        .route("/metrics", get(app_metrics))
        .with_state(app);
    let listener = crate::serve::bind().await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

async fn app_metrics(State(a): State<Arc<App>>) -> impl IntoResponse {
    let connected = *a.connected.lock().unwrap_or_else(|p| p.into_inner());
    let used = a.used_weight.load(Ordering::Relaxed);
    let last = a.last_tick_ms.load(Ordering::Relaxed);
    let text = format!(
        "# HELP trading_exchange_connected Whether the app holds a live market-data connection, by feed.\n\
         # TYPE trading_exchange_connected gauge\n\
         trading_exchange_connected{{feed=\"primary\"}} {}\n\
         trading_exchange_connected{{feed=\"failover\"}} {}\n\
         trading_exchange_connected_any {}\n\
         # HELP trading_market_data_last_tick_timestamp_seconds When the app last received a tick.\n\
         # TYPE trading_market_data_last_tick_timestamp_seconds gauge\n\
         trading_market_data_last_tick_timestamp_seconds {:.3}\n\
         # HELP trading_exchange_rest_up Whether the last REST call to the exchange succeeded.\n\
         # TYPE trading_exchange_rest_up gauge\n\
         trading_exchange_rest_up {}\n\
         # HELP trading_rate_limit_used_weight Request weight used in the last minute, as the exchange reports it.\n\
         # TYPE trading_rate_limit_used_weight gauge\n\
         trading_rate_limit_used_weight {used}\n\
         # HELP trading_rate_limit_usage_ratio Used weight over the exchange's limit.\n\
         # TYPE trading_rate_limit_usage_ratio gauge\n\
         trading_rate_limit_usage_ratio {:.4}\n\
         # HELP trading_feed_failovers_total Switches to the failover feed.\n\
         # TYPE trading_feed_failovers_total counter\n\
         trading_feed_failovers_total {}\n",
        u8::from(connected == "primary"),
        u8::from(connected == "failover"),
        u8::from(!connected.is_empty()),
        last as f64 / 1000.0,
        u8::from(a.rest_ok.load(Ordering::Relaxed)),
        used as f64 / WEIGHT_LIMIT as f64,
        a.failovers.load(Ordering::Relaxed),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(q: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(API_SECRET.as_bytes()).unwrap();
        mac.update(q.as_bytes());
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signature_is_verified() {
        let q = "symbol=BTCUSDT&side=BUY&type=MARKET&timestamp=1";
        let good = format!("{q}&signature={}", sign(q, b""));
        assert_eq!(verify(&good, b"", API_SECRET), Ok(()));
        let tampered = good.replace("BUY", "SELL");
        assert!(verify(&tampered, b"", API_SECRET).is_err());
        assert!(verify(q, b"", API_SECRET).is_err());
        assert!(verify(&good, b"x", API_SECRET).is_err());
        assert!(verify(&format!("{q}&signature=zz"), b"", API_SECRET).is_err());
    }
}
