//! One task per check: waits for its turn, runs the check once under its
//! timeout and the circuit breaker, and reports the result to the
//! aggregator. A run never overlaps the previous one.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

use super::{IDLE, Limits, Msg, REQUESTED, RUNNING, Resolved, Slot};
use crate::breaker::Breaker;
use crate::check::{Check, CheckCx};
use crate::model::{CheckResult, Outcome};

/// A finished run, as sent to the aggregator.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: u64,
    pub(crate) result: Arc<CheckResult>,
    pub(crate) breaker: Breaker,
    pub(crate) next_run: Option<Instant>,
    pub(crate) lag: Duration,
    pub(crate) urgent: bool,
}

pub(crate) struct Runner {
    pub(crate) slot: Arc<Slot>,
    pub(crate) check: Arc<dyn Check>,
    pub(crate) settings: Resolved,
    pub(crate) limits: Arc<Limits>,
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) first_delay: Duration,
}

impl Runner {
    pub(crate) async fn run(self) {
        let Runner {
            slot,
            check,
            settings,
            limits,
            tx,
            first_delay,
        } = self;
        let host_limit = check.target_host().and_then(|h| limits.for_host(&h));
        let mut breaker = Breaker::new(settings.breaker);
        let mut due = Instant::now() + first_delay;
        loop {
            let triggered = tokio::select! {
                _ = slot.cancel.cancelled() => return,
                _ = slot.trigger.notified() => true,
                _ = sleep_until(due), if !settings.on_demand => false,
            };
            if triggered && slot.state.load(Ordering::Acquire) != REQUESTED {
                continue; // the request was served by a scheduled run meanwhile
            }
            let now = Instant::now();
            slot.state.store(RUNNING, Ordering::Release);
            let forced = slot.forced.swap(false, Ordering::AcqRel);
            if !slot.active.load(Ordering::Acquire) || !breaker.try_acquire(now, forced) {
                slot.state.store(IDLE, Ordering::Release);
                due = breaker.open_until().unwrap_or(now + settings.interval);
                continue;
            }
            let lag = if triggered {
                Duration::ZERO
            } else {
                now.saturating_duration_since(due)
            };
            slot.set_in_flight(Some(now));
            let started = now;
            let outcome = run_once(
                &*check,
                settings.timeout,
                limits.global.clone(),
                host_limit.clone(),
            )
            .await;
            let finished_at = Instant::now();
            let duration = finished_at.saturating_duration_since(started);
            slot.set_in_flight(None);
            let urgent = slot.urgent.swap(false, Ordering::AcqRel);
            slot.state.store(IDLE, Ordering::Release);
            breaker.record(outcome.status, finished_at);
            let result = Arc::new(CheckResult::from_outcome(
                outcome,
                duration,
                Timestamp::now(),
            ));
            due = match breaker.open_until() {
                Some(until) => until,
                None => on_grid(finished_at + jittered(settings.interval), slot.base),
            };
            let msg = Finished {
                key: slot.key,
                result,
                breaker: breaker.clone(),
                next_run: (!settings.on_demand || breaker.open_until().is_some()).then_some(due),
                lag,
                urgent,
            };
            if tx.send(Msg::Finished(Box::new(msg))).is_err() {
                return;
            }
        }
    }
}

/// Rounds a due time up to the scheduling grid (10 ms from the engine's
/// start), so timers due close together fire in one wake-up of the runtime
/// instead of one each.
fn on_grid(due: Instant, base: Instant) -> Instant {
    const GRID_US: u128 = 10_000;
    let since = due.saturating_duration_since(base).as_micros();
    let rounded = since.div_ceil(GRID_US) * GRID_US;
    base + Duration::from_micros(rounded as u64)
}

/// The interval with ±5 % jitter, so checks sharing an interval drift apart.
fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.05;
    Duration::from_secs_f64(
        (interval.as_secs_f64() + spread * (fastrand::f64() * 2.0 - 1.0)).max(0.001),
    )
}

/// One attempt: concurrency permits, then the check, bounded by `timeout`
/// overall; a panic becomes a `fail` with its message.
async fn run_once(
    check: &dyn Check,
    timeout: Duration,
    global: Option<Arc<Semaphore>>,
    host: Option<(String, Arc<Semaphore>)>,
) -> Outcome {
    let cx = CheckCx::new(timeout);
    let cancel = cx.cancel_token();
    let attempt = async {
        let _g: Option<OwnedSemaphorePermit> = match global {
            Some(s) => Some(s.acquire_owned().await.expect("semaphore never closed")),
            None => None,
        };
        let _h: Option<OwnedSemaphorePermit> = match &host {
            Some((_, s)) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed"),
            ),
            None => None,
        };
        CatchUnwind(check.run(cx)).await
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => Outcome::fail(format!(
            "check panicked: {}; this is a bug in the check's code (the engine isolated it and kept running)",
            panic_message(&*panic)
        )),
        Err(_) => Outcome::fail(match &host {
            Some((h, _)) => format!(
                "timed out after {}: no answer from {h} within the check's timeout; look at that target's latency and load, or raise `timeout`",
                humanize(timeout)
            ),
            None => format!(
                "timed out after {}: the check did not finish within its timeout; look at what it waits on, or raise `timeout`",
                humanize(timeout)
            ),
        }),
    };
    cancel.cancel();
    outcome
}

/// Formats a duration the way config files write it (`2s`, `250ms`, `1.5s`).
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Polls a future, turning a panic into an error.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_config() {
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn jitter_stays_within_five_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(10));
            assert!(
                j >= Duration::from_millis(9500) && j <= Duration::from_millis(10500),
                "{j:?}"
            );
        }
    }
}
