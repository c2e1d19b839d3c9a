//! Serving a simulated service: a real listener that really goes away while
//! the component is `down`, and the generic `slow` / `erroring` faults.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::faults::{Faults, Mode};

/// How long a `slow` service takes to answer.
pub(crate) const SLOW: Duration = Duration::from_millis(1500);

/// Binds a free loopback port.
pub(crate) async fn bind() -> anyhow::Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
}

/// Serves `router` on `listener` until the process ends; while `is_down`
/// holds for the component, the listener is closed (connects are refused)
/// and re-opened on the same port when it clears.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    router: Router,
    faults: Faults,
    component: &'static str,
    is_down: fn(&Faults, &str) -> bool,
) -> SocketAddr {
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => rebind(addr).await,
            };
            let f2 = faults.clone();
            let down = async move {
                let f3 = f2.clone();
                f2.wait_for(component, move |_| is_down(&f3, component))
                    .await
            };
            // Bounded: a stuck client must not keep a `down` service up.
            let serve = axum::serve(l, router.clone()).with_graceful_shutdown(down);
            let until_down = {
                let f2 = faults.clone();
                async move {
                    let f3 = f2.clone();
                    f2.wait_for(component, move |_| is_down(&f3, component))
                        .await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            };
            tokio::select! {
                r = serve => if let Err(e) = r { tracing::warn!(component, "serve: {e}") },
                () = until_down => {}
            }
            tracing::info!(component, "simulated outage: {addr} is closed");
            let f3 = faults.clone();
            faults
                .wait_for(component, move |_| !is_down(&f3, component))
                .await;
            tracing::info!(component, "recovered: {addr} is listening again");
        }
    });
    addr
}

/// `down` on the component itself.
pub(crate) fn down(faults: &Faults, component: &str) -> bool {
    faults.is(component, Mode::Down)
}

async fn rebind(addr: SocketAddr) -> tokio::net::TcpListener {
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                tracing::warn!("cannot listen on {addr} again yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Middleware for the generic `slow` and `erroring` faults of `component`.
pub(crate) fn generic_faults(router: Router, faults: Faults, component: &'static str) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let faults = faults.clone();
            async move {
                match faults.get(component) {
                    Some(Mode::Slow) => tokio::time::sleep(SLOW).await,
                    Some(Mode::Erroring) => {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(serde_json::json!({
                                "error": format!("{component}: internal error (simulated fault)")
                            })),
                        )
                            .into_response();
                    }
                    _ => {}
                }
                let r: Response = next.run(req).await;
                r
            }
        },
    ))
}

/// Seconds since the Unix epoch, as a float.
pub(crate) fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
