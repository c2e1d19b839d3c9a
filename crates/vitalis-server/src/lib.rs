//! The Vitalis HTTP API, as an axum [`Router`] over a running
//! [`vitalis_core::Engine`].
//!
//! Every endpoint answers from the engine's latest snapshot — no reader ever
//! waits on a check — except `?refresh=true`, which waits at most its
//! deadline (80 ms by default).
//!
//! # Example
//!
//! Mount the health endpoints in a service's own router:
//!
//! ```no_run
//! use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome};
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Engine::builder()
//!     .component(Component::new("queue").check(CheckSpec::live("depth", check_fn(|_| async {
//!         Outcome::pass("depth 3").observed(3.0, "count")
//!     }))))
//!     .start()?;
//! let app = axum::Router::new().merge(vitalis_server::routes(health.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! See [`Api`] for tokens, details, reload, registration and history.

mod api;
pub mod auth;
pub mod error;
mod history;
mod render;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use vitalis_core::Engine;
use vitalis_store::HistoryReader;

pub use api::{Control, Lifecycle};
pub use auth::{Auth, Caller, Details, Scope, Token};
pub use error::ApiError;

/// The largest request body accepted (registration documents are small).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Health endpoints with the default policy (details only with a `read`
/// token, so none without tokens) and no write endpoints.
pub fn routes(engine: Engine) -> Router {
    Api::new(engine).router()
}

/// Builds the API router.
pub struct Api {
    engine: Engine,
    auth: Arc<ArcSwap<Auth>>,
    control: Option<Arc<dyn Control>>,
    lifecycle: Arc<Lifecycle>,
    refresh_deadline: Duration,
    request_timeout: Duration,
    history: Option<Arc<dyn HistoryReader>>,
}

impl Api {
    /// An API over `engine` with the default policy.
    pub fn new(engine: Engine) -> Self {
        let lifecycle = Arc::new(Lifecycle::default());
        lifecycle.set_ready();
        Api {
            engine,
            auth: Arc::new(ArcSwap::from_pointee(Auth::default())),
            control: None,
            lifecycle,
            refresh_deadline: Duration::from_millis(80),
            request_timeout: Duration::from_secs(10),
            history: None,
        }
    }

    /// Shares an access policy the caller can swap (on reload).
    pub fn auth(mut self, auth: Arc<ArcSwap<Auth>>) -> Self {
        self.auth = auth;
        self
    }

    /// Enables reload and run-time registration.
    pub fn control(mut self, control: Arc<dyn Control>) -> Self {
        self.control = Some(control);
        self
    }

    /// Shares the lifecycle flags (`/readyz`).
    pub fn lifecycle(mut self, lifecycle: Arc<Lifecycle>) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// How long `?refresh=true` may wait (default 80 ms).
    pub fn refresh_deadline(mut self, d: Duration) -> Self {
        self.refresh_deadline = d;
        self
    }

    /// Serves recorded history: `/health/history`, `/health/uptime` and
    /// `/health/rollups` (without it they answer 404 "history is not
    /// enabled"). `vitalis_store::History` is a reader.
    pub fn history(mut self, history: Arc<dyn HistoryReader>) -> Self {
        self.history = Some(history);
        self
    }

    /// The router, with JSON errors, a body limit, a request timeout and
    /// panic isolation.
    pub fn router(self) -> Router {
        let state = Arc::new(api::ApiState {
            engine: self.engine,
            auth: self.auth,
            control: self.control,
            lifecycle: self.lifecycle,
            refresh_deadline: self.refresh_deadline,
            history: self.history,
        });
        api::router(state)
            .fallback(|| async {
                error::ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not found",
                    Some("no such endpoint".into()),
                )
            })
            .layer(axum::middleware::map_response(error::json_errors))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.request_timeout,
            ))
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    Some("the server failed to answer; see its log".into()),
                )
                .into_response()
            }))
    }
}
