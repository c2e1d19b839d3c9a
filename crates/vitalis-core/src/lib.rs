//! Vitalis health-check model and engine.
//!
//! Probes and in-process checks produce results; the [`Engine`] runs them in
//! parallel (timeouts, circuit breakers, damping, caching) and folds them
//! into an immutable [`Snapshot`] and an ordered [`events`] log that every
//! reader — HTTP, WebSocket, gRPC, metrics, history, alerts — consumes. This
//! crate has no network dependencies.
//!
//! # Example
//!
//! A service embedding two in-process checks:
//!
//! ```
//! use std::time::Duration;
//! use vitalis_core::{check_fn, CheckSpec, Component, Engine, Group, Outcome, Status};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), vitalis_core::RegistryError> {
//! let engine = Engine::builder()
//!     .group(Group::new("risk"))
//!     .component(
//!         Component::new("risk-engine").group("risk").critical(true)
//!             .check(CheckSpec::live("responsive", check_fn(|_cx| async { Outcome::pass("answered") })))
//!             .check(CheckSpec::ready("limits-enforced", check_fn(|_cx| async {
//!                 let rejected = true; // e.g. risk.dry_run(canary_order()).await?.rejected
//!                 Outcome::pass_if(rejected, "over-limit canary rejected")
//!             }))),
//!     )
//!     .start()?;
//! // Readers take a snapshot: one atomic load, never waiting on a check.
//! let before = engine.snapshot();
//! assert_eq!(before.system(), Status::Unknown); // nothing has run yet
//! // A refresh is the only read that waits, and only up to its deadline.
//! let refreshed = engine.refresh(|_| true, Duration::from_secs(2)).await;
//! assert_eq!(refreshed.snapshot.system(), Status::Pass);
//! # Ok(()) }
//! ```
//!
//! See [`aggregate`] for the rules, [`Engine`] for execution, [`events`]
//! for the transition log.

pub mod aggregate;
pub mod breaker;
pub mod cancel;
pub mod check;
pub mod damping;
pub mod duration;
pub mod engine;
pub mod events;
pub mod model;
pub mod redact;
pub mod snapshot;
pub mod spec;
pub mod topology;
pub mod window;

pub use aggregate::{Aggregate, View};
pub use breaker::Circuit;
pub use cancel::CancelToken;
pub use check::{BoxFuture, Check, CheckCx, check_fn};
pub use engine::{Changes, CheckRuntime, Engine, EngineBuilder, Observer, Refreshed, RunRecord};
pub use events::{Change, Event, EventLog, EventReader, Replay, Subject};
pub use model::{CheckResult, Impact, IntoOutcome, Level, Outcome, Perfdata, Status};
pub use redact::redact_url;
pub use snapshot::{CheckState, Since, Snapshot};
pub use spec::{BreakerSettings, CheckSettings, CheckSpec, Component, Defaults, Group, Source};
pub use topology::{RegistryError, Topology};
pub use window::ActiveWindow;
