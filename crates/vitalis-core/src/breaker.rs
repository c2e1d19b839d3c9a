//! The per-check circuit breaker: after `failures` consecutive raw `fail`
//! results the circuit opens and the check is not run for `open_for`
//! (doubling up to `max_open_for` on every failed trial); then one half-open
//! trial decides. `warn` and `unknown` results do not count.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::model::Status;
use crate::spec::BreakerSettings;

/// The visible state of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Runs normally.
    Closed,
    /// Not run until the next trial.
    Open,
    /// The next run is a trial that decides.
    HalfOpen,
}

impl Circuit {
    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// A circuit breaker's state. Pure: time is passed in, so it is testable
/// without a clock.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    consecutive_failures: u32,
    state: State,
    /// The open time to use the next time the circuit opens.
    next_open_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            consecutive_failures: 0,
            state: State::Closed,
            next_open_for: settings.open_for,
        }
    }

    /// The state as readers see it at `now` (an open circuit past its time reads half-open).
    pub fn circuit(&self, now: Instant) -> Circuit {
        match self.state {
            State::Closed => Circuit::Closed,
            State::Open { until } if now >= until => Circuit::HalfOpen,
            State::Open { .. } => Circuit::Open,
            State::HalfOpen => Circuit::HalfOpen,
        }
    }

    /// When the circuit allows its next trial, while open.
    pub fn open_until(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Consecutive raw `fail` results so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether a run may start at `now`; `forced` (a refresh) allows a trial
    /// while open. Starting a run on an open circuit makes it half-open.
    pub fn try_acquire(&mut self, now: Instant, forced: bool) -> bool {
        match self.state {
            State::Closed | State::HalfOpen => true,
            State::Open { until } if forced || now >= until => {
                self.state = State::HalfOpen;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// Records a run's raw status at `now`. Returns the new circuit state.
    pub fn record(&mut self, status: Status, now: Instant) -> Circuit {
        if status == Status::Fail {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        } else {
            self.consecutive_failures = 0;
        }
        if !self.settings.enabled {
            return Circuit::Closed;
        }
        match (self.state, status) {
            (State::HalfOpen, Status::Fail) => self.open(now),
            (State::HalfOpen, _) => {
                self.state = State::Closed;
                self.next_open_for = self.settings.open_for;
            }
            (State::Closed, Status::Fail)
                if self.consecutive_failures >= self.settings.failures.max(1) =>
            {
                self.open(now)
            }
            _ => {}
        }
        self.circuit(now)
    }

    fn open(&mut self, now: Instant) {
        let open_for = self.next_open_for.min(self.settings.max_open_for);
        self.state = State::Open {
            until: now + open_for,
        };
        self.next_open_for = (open_for * 2).min(self.settings.max_open_for);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            enabled: true,
            failures: 3,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(25),
        }
    }

    #[test]
    fn opens_after_consecutive_fails_and_backs_off() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        assert_eq!(b.record(Status::Fail, t0), Circuit::Closed);
        assert_eq!(b.record(Status::Warn, t0), Circuit::Closed); // warn resets the streak
        for _ in 0..2 {
            assert_eq!(b.record(Status::Fail, t0), Circuit::Closed);
        }
        assert_eq!(b.record(Status::Fail, t0), Circuit::Open);
        assert_eq!(b.open_until(), Some(t0 + Duration::from_secs(10)));
        assert!(!b.try_acquire(t0 + Duration::from_secs(9), false));
        // Trial after 10s fails: open for 20s.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.circuit(t1), Circuit::HalfOpen);
        assert!(b.try_acquire(t1, false));
        assert_eq!(b.record(Status::Fail, t1), Circuit::Open);
        assert_eq!(b.open_until(), Some(t1 + Duration::from_secs(20)));
        // Next failed trial: capped at 25s.
        let t2 = t1 + Duration::from_secs(20);
        assert!(b.try_acquire(t2, false));
        b.record(Status::Fail, t2);
        assert_eq!(b.open_until(), Some(t2 + Duration::from_secs(25)));
        // A forced trial that passes closes it and resets the backoff.
        assert!(b.try_acquire(t2, true));
        assert_eq!(b.record(Status::Pass, t2), Circuit::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        for _ in 0..3 {
            b.record(Status::Fail, t2);
        }
        assert_eq!(b.open_until(), Some(t2 + Duration::from_secs(10)));
    }

    #[test]
    fn unknown_does_not_count_and_disabled_never_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        for _ in 0..10 {
            assert_eq!(b.record(Status::Unknown, t0), Circuit::Closed);
        }
        let mut off = Breaker::new(BreakerSettings {
            enabled: false,
            ..settings()
        });
        for _ in 0..10 {
            assert_eq!(off.record(Status::Fail, t0), Circuit::Closed);
        }
        assert_eq!(off.consecutive_failures(), 10);
        assert!(off.try_acquire(t0, false));
    }
}
