//! A service embedding Vitalis: two in-process checks, the health endpoints
//! mounted beside the service's own routes.
//!
//! Run with `cargo run -p example-embedded-service`, then:
//!
//! ```sh
//! curl -s localhost:3000/health        # status only (no token configured)
//! curl -s localhost:3000/health/ready?verbose
//! curl -s localhost:3000/orders/queue  # the service's own route
//! ```
//!
//! Set `EXAMPLE_STOP_AFTER_MS` to exit by itself (the test suite does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vitalis_core::{CheckSpec, Component, Engine, Group, Outcome, check_fn};

/// The service's own state: an order queue whose depth it tracks.
#[derive(Default)]
struct OrderQueue {
    depth: AtomicU64,
    last_fill_ms: AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queue = Arc::new(OrderQueue::default());

    // The service's own work: fills arrive, the queue moves.
    let worker = queue.clone();
    tokio::spawn(async move {
        loop {
            worker.depth.store(now_ms() % 40, Ordering::Relaxed);
            worker.last_fill_ms.store(now_ms(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let (depth_q, fill_q) = (queue.clone(), queue.clone());
    let health = Engine::builder()
        .group(Group::new("trading"))
        .component(
            Component::new("order-queue")
                .name("Order queue")
                .group("trading")
                .critical(true)
                // 1. Is the queue draining? A real measurement of the service's state.
                .check(
                    CheckSpec::ready(
                        "depth",
                        check_fn(move |_cx| {
                            let depth = depth_q.depth.load(Ordering::Relaxed);
                            async move {
                                Outcome::pass_if(
                                    depth < 100,
                                    format!("{depth} orders queued (limit 100)"),
                                )
                                .observed(depth as f64, "count")
                            }
                        }),
                    )
                    .interval(Duration::from_secs(1)),
                )
                // 2. Are fills arriving? The age of the newest one.
                .check(
                    CheckSpec::deep(
                        "fills-fresh",
                        check_fn(move |_cx| {
                            let age_ms = now_ms()
                                .saturating_sub(fill_q.last_fill_ms.load(Ordering::Relaxed));
                            async move {
                                Outcome::pass_if(
                                    age_ms < 2_000,
                                    format!("last fill {age_ms}ms ago (limit 2000ms)"),
                                )
                                .observed(age_ms as f64, "ms")
                            }
                        }),
                    )
                    .interval(Duration::from_secs(2)),
                ),
        )
        .start()?;

    let own = queue.clone();
    let app = axum::Router::new()
        .route(
            "/orders/queue",
            axum::routing::get(move || {
                let depth = own.depth.load(Ordering::Relaxed);
                async move { format!("{depth}\n") }
            }),
        )
        .merge(vitalis_server::routes(health.clone()));
    let addr = std::env::var("EXAMPLE_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let stop_after = std::env::var("EXAMPLE_STOP_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let engine = health.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            match stop_after {
                Some(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    println!("system status: {}", engine.snapshot().system());
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await?;
    Ok(())
}
