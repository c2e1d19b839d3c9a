//! The [`Check`] trait: one measurement of one aspect of a component.
//!
//! Probes and in-process checks implement it; the engine adds timeouts,
//! thresholds, the circuit breaker, caching and aggregation. Any async
//! closure is a check through [`check_fn`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::cancel::CancelToken;
use tokio::time::Instant;

use crate::model::{IntoOutcome, Outcome};

/// A boxed, sendable future: what [`Check::run`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a run gets to know about itself.
///
/// The engine drops the run's future at the deadline; `cancelled()` lets
/// code that hands work to other tasks or threads stop them too.
#[derive(Debug, Clone)]
pub struct CheckCx {
    deadline: Instant,
    timeout: Duration,
    cancel: CancelToken,
}

impl CheckCx {
    /// A context for a run that must finish within `timeout` from now.
    pub fn new(timeout: Duration) -> Self {
        CheckCx {
            deadline: Instant::now() + timeout,
            timeout,
            cancel: CancelToken::new(),
        }
    }

    /// A context sharing a cancellation token (the engine reuses one token
    /// across runs until a run is cancelled).
    pub(crate) fn with_token(deadline: Instant, timeout: Duration, cancel: CancelToken) -> Self {
        CheckCx {
            deadline,
            timeout,
            cancel,
        }
    }

    /// When the engine gives up on this run.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The check's timeout (the full budget of this run).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Resolves when the run is abandoned (timeout or shutdown).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the run has been abandoned.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// One measurement of one aspect of a component.
///
/// Implementations do one attempt and report what they saw; nothing is
/// retried. Never return a constant: measure something real, and on failure
/// say what failed, against what, and what to look at.
///
/// ```
/// use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};
///
/// /// Passes when the given file exists.
/// struct FileExists(std::path::PathBuf);
///
/// impl Check for FileExists {
///     fn run(&self, _cx: CheckCx) -> BoxFuture<'_, Outcome> {
///         Box::pin(async move {
///             match std::fs::metadata(&self.0) {
///                 Ok(m) => Outcome::pass("file present").observed(m.len() as f64, "bytes"),
///                 Err(e) => Outcome::fail(format!("{}: {e}; was it deleted?", self.0.display())),
///             }
///         })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    note = "implement `Check` for probes, or wrap an async closure with `vitalis_core::check_fn`"
)]
pub trait Check: Send + Sync + 'static {
    /// One attempt. The engine bounds it by the check's timeout.
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome>;

    /// The host this check talks to, for per-host concurrency limits.
    fn target_host(&self) -> Option<String> {
        None
    }

    /// Whether this check's code may block its thread (synchronous I/O,
    /// heavy computation). Such a check runs on a lane: a thread of tokio's
    /// blocking pool that it holds alone while it runs, so it cannot stall
    /// the worker threads — and their timers — that other checks share. The
    /// default is `true`, the safe choice for code the engine cannot see
    /// into; purely async checks (every built-in probe) return `false` and
    /// run on the shared workers, which is cheaper.
    fn may_block(&self) -> bool {
        true
    }
}

/// A check made from an async closure; see [`check_fn`].
pub struct FnCheck<F> {
    f: F,
    may_block: bool,
}

impl<F> FnCheck<F> {
    /// Declares that the closure's code never blocks its thread (it only
    /// awaits): the engine then runs it on the shared workers, which is
    /// cheaper than a thread of the blocking pool. Only promise this for
    /// purely async code — see [`Check::may_block`].
    pub fn nonblocking(mut self) -> Self {
        self.may_block = false;
        self
    }
}

/// Turns an async closure into a [`Check`].
///
/// The closure may return an [`Outcome`], a `Result<Outcome, E>` (an error
/// becomes a `fail` with its text), or a `bool`.
///
/// ```
/// use vitalis_core::{check_fn, Outcome};
/// let check = check_fn(|_cx| async move {
///     let queue_depth = 3; // the service's own measurement
///     Outcome::pass_if(queue_depth < 100, format!("queue depth {queue_depth}"))
///         .observed(queue_depth as f64, "count")
/// });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut, O>(f: F) -> FnCheck<F>
where
    F: Fn(CheckCx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoOutcome,
{
    FnCheck { f, may_block: true }
}

impl<F, Fut, O> Check for FnCheck<F>
where
    F: Fn(CheckCx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoOutcome,
{
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        let fut = (self.f)(cx);
        Box::pin(async move { fut.await.into_outcome() })
    }

    fn may_block(&self) -> bool {
        self.may_block
    }
}
