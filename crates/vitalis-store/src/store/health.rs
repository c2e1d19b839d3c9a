//! `vitalis.store`: the store's health as a real check of the engine.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use vitalis_core::{BoxFuture, Check, CheckCx, CheckSpec, Component, Outcome};

use super::{STORE_COMPONENT, Shared};

/// Where the writer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    /// No connection attempt has finished yet.
    Connecting,
    /// Connected, and the last write succeeded.
    Writing,
    /// The last connect or write failed; rows are buffered and retried.
    Failing,
    /// The engine is not attached yet: results wait for its epoch.
    Detached,
    /// [`History::close`](crate::History::close) ran.
    Closed,
}

/// The store's health at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHealth {
    /// The URL, password hidden.
    pub url: String,
    /// Where the writer stands.
    pub state: StoreState,
    /// The last error, while failing.
    pub last_error: Option<String>,
    /// How long writes have been failing.
    pub failing_for: Option<Duration>,
    /// Results waiting in memory.
    pub pending_results: usize,
    /// Transitions waiting in memory.
    pub pending_transitions: usize,
    /// Age of the oldest waiting row (zero when nothing waits).
    pub lag: Duration,
    /// When a batch was last committed.
    pub last_write: Option<Timestamp>,
    /// Results written so far.
    pub results_written: u64,
    /// Transitions written so far.
    pub transitions_written: u64,
    /// Results dropped (buffer full during an outage).
    pub results_dropped: u64,
    /// Transitions dropped.
    pub transitions_dropped: u64,
    /// The buffer's bound for results.
    pub max_pending_results: usize,
}

pub(super) fn health(shared: &Shared) -> StoreHealth {
    let (pending_results, pending_transitions, oldest) = {
        let p = shared.pending();
        (p.results(), p.transitions(), p.oldest_ms())
    };
    let now_ms = Timestamp::now().as_millisecond();
    let lag = oldest.map_or(Duration::ZERO, |t| {
        Duration::from_millis(now_ms.saturating_sub(t).max(0) as u64)
    });
    let st = shared.state();
    let state = if st.closed {
        StoreState::Closed
    } else if st.last_error.is_some() {
        StoreState::Failing
    } else if !st.attempted {
        StoreState::Connecting
    } else if shared.session.get().is_none() {
        StoreState::Detached
    } else {
        StoreState::Writing
    };
    let stats = &shared.stats;
    StoreHealth {
        url: shared.shown.clone(),
        state,
        last_error: st.last_error.clone(),
        failing_for: st.failing_since.map(|t| t.elapsed()),
        pending_results,
        pending_transitions,
        lag,
        last_write: st.last_write,
        results_written: stats.results_written(),
        transitions_written: stats.transitions_written(),
        results_dropped: stats.results_dropped(),
        transitions_dropped: stats.transitions_dropped(),
        max_pending_results: shared.settings.max_pending_results,
    }
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.0}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl StoreHealth {
    /// The verdict `vitalis.store` reports.
    pub fn outcome(&self) -> Outcome {
        let url = &self.url;
        let dropped = if self.results_dropped + self.transitions_dropped > 0 {
            format!(
                "; {} results and {} transitions were dropped while the buffer was full",
                self.results_dropped, self.transitions_dropped
            )
        } else {
            String::new()
        };
        match self.state {
            StoreState::Failing => Outcome::fail(format!(
                "history store {url}: writes failing for {}: {}; {} results and {} transitions buffered in memory (bound {} results){dropped}; Vitalis keeps serving, retries with backoff and catches up when the store returns",
                ms(self.failing_for.unwrap_or_default()),
                self.last_error.as_deref().unwrap_or("unknown error"),
                self.pending_results,
                self.pending_transitions,
                self.max_pending_results,
            ))
            .observed((self.pending_results + self.pending_transitions) as f64, "count"),
            StoreState::Connecting => {
                Outcome::unknown(format!("history store {url}: connecting"))
            }
            StoreState::Detached => Outcome::unknown(format!(
                "history store {url}: connected, waiting for the engine to be attached (History::attach)"
            )),
            StoreState::Closed => Outcome::unknown(format!("history store {url}: closed")),
            StoreState::Writing => Outcome::pass(format!(
                "history store {url}: writing, lag {}, {} rows buffered; {} results and {} transitions written{dropped}",
                ms(self.lag),
                self.pending_results + self.pending_transitions,
                self.results_written,
                self.transitions_written,
            ))
            .observed(self.lag.as_secs_f64() * 1000.0, "ms"),
        }
    }
}

/// The check: reads the writer's state (no I/O of its own, so it never
/// competes with the writer).
struct StoreCheck(Arc<Shared>);

impl Check for StoreCheck {
    fn run(&self, _cx: CheckCx) -> BoxFuture<'_, Outcome> {
        let outcome = health(&self.0).outcome();
        Box::pin(async move { outcome })
    }

    fn may_block(&self) -> bool {
        false
    }
}

pub(super) fn component(shared: Arc<Shared>) -> Component {
    Component::new(STORE_COMPONENT)
        .name("Vitalis history store")
        .group("vitalis")
        .check(CheckSpec::ready("writes", StoreCheck(shared)).kind("vitalis"))
}

#[cfg(test)]
mod tests {
    use vitalis_core::Status;

    use super::*;

    fn sample(state: StoreState) -> StoreHealth {
        StoreHealth {
            url: "postgres://vitalis:***@127.0.0.1:5432/vitalis".into(),
            state,
            last_error: Some("cannot connect: connection refused".into()),
            failing_for: Some(Duration::from_secs(12)),
            pending_results: 5321,
            pending_transitions: 12,
            lag: Duration::from_millis(35),
            last_write: None,
            results_written: 100,
            transitions_written: 7,
            results_dropped: 0,
            transitions_dropped: 0,
            max_pending_results: 100_000,
        }
    }

    #[test]
    fn failing_names_the_error_backlog_and_url() {
        let o = sample(StoreState::Failing).outcome();
        assert_eq!(o.status, Status::Fail);
        let e = o.error.unwrap();
        for part in [
            "postgres://vitalis:***@127.0.0.1:5432/vitalis",
            "failing for 12s",
            "connection refused",
            "5321 results and 12 transitions buffered",
            "bound 100000",
        ] {
            assert!(e.contains(part), "{part} not in {e}");
        }
        assert_eq!(o.observed_value, Some(5333.0));
    }

    #[test]
    fn writing_passes_with_the_lag() {
        let o = sample(StoreState::Writing).outcome();
        assert_eq!(o.status, Status::Pass);
        assert!(o.output.contains("lag 35ms"), "{}", o.output);
        assert_eq!(
            (o.observed_value, o.observed_unit.as_deref()),
            (Some(35.0), Some("ms"))
        );
        assert_eq!(
            sample(StoreState::Connecting).outcome().status,
            Status::Unknown
        );
    }
}
