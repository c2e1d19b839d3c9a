//! The per-check states readers see, published at a cost proportional to
//! what changed, not to the number of checks.
//!
//! A snapshot holds an array of `CheckState`s, by value (a result costs no
//! allocation of its own state). Copying that array at every publication
//! would touch every check's state 20 times a second. Instead two arrays take
//! turns: the one published last (`front`) and the one before (`back`). Once
//! no reader holds the snapshot that showed `back`, it is brought up to date
//! in place with the changes it missed and published as the next array; only
//! when a reader still holds it is a full copy made.

use std::sync::Arc;

use crate::snapshot::CheckState;

/// Double-buffered check states.
pub(crate) struct CheckViews {
    /// The array of the last published snapshot.
    front: Arc<[CheckState]>,
    /// The array published before `front`, to be reused.
    back: Option<Arc<[CheckState]>>,
    /// Changes in `front` that `back` lacks.
    behind: Vec<(usize, CheckState)>,
    /// Changes since the last publication, in order.
    changed: Vec<(usize, CheckState)>,
    /// Per check: whether the latest state shows a run in flight.
    in_flight: Vec<bool>,
}

impl CheckViews {
    /// States of a new registry (every check's state given).
    pub(crate) fn new(states: Vec<CheckState>) -> Self {
        CheckViews {
            in_flight: states.iter().map(|s| s.in_flight).collect(),
            front: states.into(),
            back: None,
            behind: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Sets check `k`'s state for the next publication.
    pub(crate) fn set(&mut self, k: usize, state: CheckState) {
        self.in_flight[k] = state.in_flight;
        self.changed.push((k, state));
    }

    /// Whether check `k`'s latest state shows a run in flight.
    pub(crate) fn in_flight(&self, k: usize) -> bool {
        self.in_flight[k]
    }

    /// The array for the next snapshot: every check's latest state.
    pub(crate) fn publish(&mut self) -> Arc<[CheckState]> {
        if self.changed.is_empty() {
            return self.front.clone();
        }
        let mut next = match self.back.take() {
            Some(mut back) if Arc::strong_count(&back) == 1 => {
                let states = Arc::get_mut(&mut back).expect("only this holds it");
                for (k, state) in self.behind.drain(..) {
                    states[k] = state;
                }
                back
            }
            // A reader still holds the snapshot showing `back`: copy.
            _ => {
                self.behind.clear();
                self.front.iter().cloned().collect()
            }
        };
        let states = Arc::get_mut(&mut next).expect("fresh or unique");
        for (k, state) in &self.changed {
            states[*k] = state.clone();
        }
        // `front` becomes `back`, lacking exactly this publication's changes.
        std::mem::swap(&mut self.behind, &mut self.changed);
        self.back = Some(std::mem::replace(&mut self.front, next.clone()));
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;

    use super::*;
    use crate::breaker::Circuit;
    use crate::model::Status;

    fn state(runs: u64) -> CheckState {
        CheckState {
            status: Status::Pass,
            active: true,
            past_grace: false,
            result: None,
            stale: false,
            circuit: Circuit::Closed,
            next_run: None,
            consecutive_failures: 0,
            in_flight: !runs.is_multiple_of(2),
            runs,
            since: Timestamp::UNIX_EPOCH,
            completed_at: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(1),
            on_demand: false,
        }
    }

    fn runs(states: &[CheckState]) -> Vec<u64> {
        states.iter().map(|s| s.runs).collect()
    }

    #[test]
    fn every_publication_shows_the_latest_states_and_old_ones_stay_intact() {
        let mut views = CheckViews::new((0..4).map(|_| state(0)).collect());
        let mut expected = vec![0u64; 4];
        let mut held = Vec::new();
        // A deterministic mix of changes, some publications with a reader
        // keeping the previous array alive (forcing the copy path).
        for round in 1..=40u64 {
            for (k, runs) in expected.iter_mut().enumerate() {
                if !(round + k as u64).is_multiple_of(3) {
                    *runs = round * 10 + k as u64;
                    views.set(k, state(*runs));
                    assert_eq!(views.in_flight(k), *runs % 2 == 1);
                }
            }
            let published = views.publish();
            assert_eq!(runs(&published), expected, "round {round}");
            if round % 5 == 0 {
                held.push((published.clone(), expected.clone()));
            }
        }
        // Arrays readers kept still show what they showed.
        for (array, shown) in &held {
            assert_eq!(&runs(array), shown);
        }
    }

    #[test]
    fn unchanged_publications_share_the_array() {
        let mut views = CheckViews::new(vec![state(0), state(0)]);
        let a = views.publish();
        let b = views.publish();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
