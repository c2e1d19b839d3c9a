//! The risk engine (HTTP/JSON): health shown by behaviour.
//!
//! * `GET /v1/ping` — responsive.
//! * `POST /v1/orders/dry-run` — pre-trade check of an order, never routed to
//!   a market: over-limit orders answer `422` with a reason.
//! * `POST /v1/sandbox/stop-loss-test` — a synthetic position past its stop in
//!   a sandbox book; the stop-loss monitor must emit a stop order.
//! * `POST /v1/sandbox/breaker-test` — feeds losses to a sandbox circuit
//!   breaker, which must trip, then resets it.
//! * `GET /v1/positions` — the position feed and the age of its last update.
//! * `GET /v1/kill-switch` — armed, and whether its path to the exchange answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::faults::{Faults, Mode};
use crate::serve::now_ms;

const ID: &str = "risk-engine";
/// Per-order quantity limit.
pub(crate) const MAX_QTY: f64 = 10_000.0;
/// Per-order notional limit.
pub(crate) const MAX_NOTIONAL: f64 = 1_000_000.0;
/// How long the stop-loss test waits for a stop order.
const STOP_WAIT: Duration = Duration::from_millis(500);

struct Risk {
    faults: Faults,
    /// ms since the epoch of the last position update.
    last_position: AtomicU64,
    positions: AtomicU64,
    stop_loss: mpsc::Sender<(SandboxPosition, f64, oneshot::Sender<Value>)>,
    exchange: String,
    http: reqwest::Client,
}

#[derive(Debug, Clone, Copy)]
struct SandboxPosition {
    qty: f64,
    stop: f64,
}

pub(crate) async fn start(
    faults: Faults,
    exchange: String,
) -> anyhow::Result<std::net::SocketAddr> {
    let (tx, mut rx) = mpsc::channel::<(SandboxPosition, f64, oneshot::Sender<Value>)>(16);
    let state = Arc::new(Risk {
        faults: faults.clone(),
        last_position: AtomicU64::new(now_ms()),
        positions: AtomicU64::new(0),
        stop_loss: tx,
        exchange,
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?,
    });
    // The stop-loss monitor: evaluates each position against each price.
    let f = faults.clone();
    tokio::spawn(async move {
        while let Some((pos, price, reply)) = rx.recv().await {
            if f.is(ID, Mode::StopLossOff) {
                // The monitor is wedged: the order never comes.
                drop(reply);
                continue;
            }
            if pos.qty > 0.0 && price <= pos.stop {
                let _ = reply.send(json!({"type": "stop", "side": "sell", "qty": pos.qty, "trigger": pos.stop, "sandbox": true}));
            }
        }
    });
    // The position feed: updates every 100 ms unless stale.
    let s2 = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if !s2.faults.is(ID, Mode::Stale) {
                s2.positions
                    .store(12 + (now_ms() / 1000) % 5, Ordering::Relaxed);
                s2.last_position.store(now_ms(), Ordering::Relaxed);
            }
        }
    });
    let router = Router::new()
        .route("/v1/ping", get(ping))
        .route("/v1/orders/dry-run", post(dry_run))
        .route("/v1/sandbox/stop-loss-test", post(stop_loss_test))
        .route("/v1/sandbox/breaker-test", post(breaker_test))
        .route("/v1/positions", get(positions))
        .route("/v1/kill-switch", get(kill_switch))
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

async fn ping() -> Json<Value> {
    Json(json!({"status": "ok", "time_ms": now_ms()}))
}

#[derive(Debug, Deserialize)]
struct Order {
    symbol: String,
    #[serde(default = "buy")]
    side: String,
    qty: f64,
    #[serde(default)]
    price: Option<f64>,
}

fn buy() -> String {
    "buy".into()
}

async fn dry_run(State(s): State<Arc<Risk>>, body: axum::body::Bytes) -> (StatusCode, Json<Value>) {
    let order: Order = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid order: {e}")})),
            );
        }
    };
    let price = order.price.unwrap_or(100.0);
    let notional = order.qty.abs() * price;
    let mut violations = Vec::new();
    if !s.faults.is(ID, Mode::LimitsOff) {
        if order.qty.abs() > MAX_QTY {
            violations.push(format!(
                "quantity {} over the position limit {MAX_QTY}",
                order.qty
            ));
        }
        if notional > MAX_NOTIONAL {
            violations.push(format!("notional {notional} over the limit {MAX_NOTIONAL}"));
        }
    }
    // A dry run is never routed to a market.
    if violations.is_empty() {
        (
            StatusCode::OK,
            Json(
                json!({"accepted": true, "rejected": false, "routed": false, "symbol": order.symbol, "side": order.side, "notional": notional}),
            ),
        )
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({"accepted": false, "rejected": true, "routed": false, "symbol": order.symbol, "side": order.side, "reason": format!("limit exceeded: {}", violations.join("; "))}),
            ),
        )
    }
}

async fn stop_loss_test(State(s): State<Arc<Risk>>) -> Json<Value> {
    let pos = SandboxPosition {
        qty: 100.0,
        stop: 95.0,
    };
    let price = 94.0;
    let started = Instant::now();
    let (tx, rx) = oneshot::channel();
    let order = if s.stop_loss.send((pos, price, tx)).await.is_ok() {
        tokio::time::timeout(STOP_WAIT, rx)
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    Json(json!({
        "position": {"qty": pos.qty, "stop": pos.stop, "price": price},
        "stop_orders": order.into_iter().collect::<Vec<_>>(),
        "elapsed_ms": elapsed,
        "waited_ms": STOP_WAIT.as_millis() as u64,
    }))
}

/// A sandbox circuit breaker: trips when the running loss passes the limit.
struct Breaker {
    loss: f64,
    limit: f64,
    tripped: bool,
}

async fn breaker_test(State(s): State<Arc<Risk>>) -> Json<Value> {
    let stuck = s.faults.is(ID, Mode::BreakersStuck);
    let mut b = Breaker {
        loss: 0.0,
        limit: 50_000.0,
        tripped: false,
    };
    let mut events = 0;
    for _ in 0..20 {
        events += 1;
        b.loss += 10_000.0;
        if !stuck && b.loss > b.limit {
            b.tripped = true;
            break;
        }
    }
    let tripped = b.tripped;
    // Reset: a tripped breaker must come back closed with no loss carried.
    if b.tripped {
        b.tripped = false;
        b.loss = 0.0;
    }
    let reset = !b.tripped && b.loss == 0.0;
    Json(
        json!({"tripped": tripped, "reset": tripped && reset, "loss_events": events, "limit": b.limit}),
    )
}

async fn positions(State(s): State<Arc<Risk>>) -> Json<Value> {
    let age = now_ms().saturating_sub(s.last_position.load(Ordering::Relaxed));
    Json(
        json!({"positions": {"count": s.positions.load(Ordering::Relaxed), "last_update_age_ms": age}}),
    )
}

async fn kill_switch(State(s): State<Arc<Risk>>) -> Json<Value> {
    let url = format!("{}/api/v3/ping", s.exchange);
    let (reachable, detail) = match s.http.get(&url).send().await {
        Ok(r) if r.status().is_success() || r.status() == StatusCode::TOO_MANY_REQUESTS => (
            true,
            format!("order gateway answered {}", r.status().as_u16()),
        ),
        Ok(r) => (
            false,
            format!("order gateway answered {}", r.status().as_u16()),
        ),
        Err(e) => (false, format!("order gateway unreachable: {e}")),
    };
    Json(json!({"armed": true, "reachable": reachable, "detail": detail}))
}
