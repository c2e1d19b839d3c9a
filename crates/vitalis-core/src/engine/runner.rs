//! One task per check: waits for its turn, runs the check once under its
//! timeout and the circuit breaker, and reports the result to the
//! aggregator. A run never overlaps the previous one.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinHandle};
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
        // A run abandoned at its timeout that has not returned yet (it blocks
        // its thread): no new run starts until it does.
        let mut abandoned: Option<(AbortHandle, Instant)> = None;
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
            if abandoned.as_ref().is_some_and(|(h, _)| h.is_finished()) {
                abandoned = None;
            }
            let runnable = abandoned.is_none() && slot.active.load(Ordering::Acquire);
            if !runnable && abandoned.is_none() || runnable && !breaker.try_acquire(now, forced) {
                slot.state.store(IDLE, Ordering::Release);
                due = breaker.open_until().unwrap_or(now + settings.interval);
                continue;
            }
            let lag = if triggered {
                Duration::ZERO
            } else {
                now.saturating_duration_since(due)
            };
            let outcome = match &abandoned {
                Some((_, since)) => Outcome::fail(format!(
                    "the previous run, started {} ago, is still running past its {} timeout and does not yield \
                     (a blocking call in async code?); no new run starts until it returns",
                    humanize(now.saturating_duration_since(*since)),
                    humanize(settings.timeout)
                )),
                None => {
                    slot.set_in_flight(Some(now));
                    let (outcome, still_running) = attempt(
                        &check,
                        settings.timeout,
                        limits.global.clone(),
                        host_limit.clone(),
                    )
                    .await;
                    abandoned = still_running.map(|h| (h, now));
                    slot.set_in_flight(None);
                    outcome
                }
            };
            let finished_at = Instant::now();
            let duration = finished_at.saturating_duration_since(now);
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

/// One attempt: concurrency permits, then the check in a task of its own,
/// bounded by `timeout` overall. A check whose code may block its thread
/// ([`Check::may_block`]) runs on a thread of tokio's blocking pool, so it
/// cannot stall the workers (and their timers) that other checks share. A
/// panic becomes a `fail` with its message. A run still going at the timeout
/// is abandoned: the caller gets its handle to tell when it finally ends.
async fn attempt(
    check: &Arc<dyn Check>,
    timeout: Duration,
    global: Option<Arc<Semaphore>>,
    host: Option<(String, Arc<Semaphore>)>,
) -> (Outcome, Option<AbortHandle>) {
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        Outcome::fail(match &host {
            Some((h, _)) => format!(
                "timed out after {}: no answer from {h} within the check's timeout; look at that target's latency and load, or raise `timeout`",
                humanize(timeout)
            ),
            None => format!(
                "timed out after {}: the check did not finish within its timeout; look at what it waits on, or raise `timeout`",
                humanize(timeout)
            ),
        })
    };
    let permits = async {
        let g = match global {
            Some(s) => Some(s.acquire_owned().await.expect("semaphore never closed")),
            None => None,
        };
        let h = match &host {
            Some((_, s)) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed"),
            ),
            None => None,
        };
        (g, h)
    };
    let Ok(permits) = tokio::time::timeout_at(deadline, permits).await else {
        return (timed_out(), None);
    };
    let cx = CheckCx::new(deadline.saturating_duration_since(Instant::now()));
    let cancel = cx.cancel_token();
    let may_block = check.may_block();
    let check = check.clone();
    let body = {
        let cancel = cancel.clone();
        async move {
            let _permits: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>) = permits;
            tokio::select! {
                outcome = check.run(cx) => Some(outcome),
                _ = cancel.cancelled() => None,
            }
        }
    };
    let mut run: JoinHandle<Option<Outcome>> = if may_block {
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(body))
    } else {
        tokio::spawn(body)
    };
    let outcome = match tokio::time::timeout_at(deadline, &mut run).await {
        Ok(Ok(Some(outcome))) => outcome,
        Ok(Err(e)) if e.is_panic() => Outcome::fail(format!(
            "check panicked: {}; this is a bug in the check's code (the engine isolated it and kept running)",
            panic_message(&*e.into_panic())
        )),
        Ok(_) => {
            Outcome::fail("the run was cancelled before it finished (the engine is shutting down?)")
        }
        Err(_) => {
            cancel.cancel();
            run.abort();
            return (timed_out(), Some(run.abort_handle()));
        }
    };
    (outcome, None)
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
