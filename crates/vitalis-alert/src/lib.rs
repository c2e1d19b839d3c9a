//! Vitalis alerting: tells people — once, with the root cause — when the
//! health of the system gets worse, and when it recovers.
//!
//! Data flows one way: the engine's snapshots and ordered event log feed
//! the [`Evaluator`] (pure logic: `for`, root cause first, severity,
//! maintenance, resolution); its [`Notification`]s are [routed](routing)
//! to the configured sinks; each [sink](sinks) delivers from its own queue
//! on its own task (log, webhook, Slack, Alertmanager), at least once, with
//! a stable dedup key per alert and state.
//!
//! # Example
//!
//! ```
//! use vitalis_alert::{Alerting, State};
//! use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The database is down; the API depends on it and fails too.
//! let engine = Engine::builder()
//!     .component(Component::new("db").critical(true).check(CheckSpec::live(
//!         "port", check_fn(|_| async { Outcome::fail("127.0.0.1:5432: connection refused") }))))
//!     .component(Component::new("api").depends_on("db").check(CheckSpec::ready(
//!         "orders", check_fn(|_| async { Outcome::fail("GET /orders answered 503") }))))
//!     .start()?;
//! let config = vitalis_config::load_str(
//!     "[[alert.sink]]\nname = \"log\"\ntype = \"log\"\n[alert]\ndefault_sinks = [\"log\"]\n",
//!     "vitalis.toml",
//!     &vitalis_config::LoadOptions::without_env(),
//! )?;
//! let alerting = Alerting::builder(engine.clone()).config(&config.alert).start();
//! let mut notes = alerting.subscribe();
//! // The database pages (critical) and names what it impacts; the API raises no alert.
//! let db = loop {
//!     let n = notes.recv().await?;
//!     assert_ne!(n.alert.component.as_deref(), Some("api"));
//!     if n.alert.component.as_deref() == Some("db") && n.alert.impacts == ["api"] { break n; }
//! };
//! assert!(matches!(db.state, State::Firing | State::Update));
//! assert_eq!(db.alert.severity.as_str(), "critical");
//! # Ok(()) }
//! ```
//!
//! See [`evaluator`] for the rules, [`routing`] for routes, [`sinks`] for
//! delivery and the webhook's JSON, and `docs/alerting.md` for the whole
//! picture.

pub mod evaluator;
pub mod model;
pub mod routing;
mod runner;
pub mod sinks;

pub use evaluator::{Evaluation, Evaluator, Settings};
pub use model::{Alert, CheckSummary, Notification, Resolution, Severity, State, Subject};
pub use runner::{Alerting, AlertingBuilder};
pub use sinks::{CounterSample, DeliveryOptions, Outcome, RetryPolicy};
