//! The immutable state readers see: taken in O(1) without locks, never
//! waiting on a check.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::aggregate::{Aggregate, View, aggregate, effective};
use crate::breaker::Circuit;
use crate::engine::Slot;
use crate::model::{CheckResult, Status};
use crate::topology::Topology;

/// One check as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckState {
    /// The reported status: after damping (`failure_threshold`/`success_threshold`)
    /// and staleness (`unknown` once the result is older than `stale_after`).
    pub status: Status,
    /// Whether the check is inside its active windows.
    pub active: bool,
    /// Whether its grace is over (an `unknown` then counts as `fail`).
    pub past_grace: bool,
    /// The latest result.
    pub result: Option<Arc<CheckResult>>,
    /// The latest result is older than `stale_after` (so the status reads `unknown`).
    pub stale: bool,
    /// The circuit breaker's state.
    pub circuit: Circuit,
    /// When the check runs next (the next trial while the circuit is open).
    pub next_run: Option<Timestamp>,
    /// Consecutive raw `fail` results.
    pub consecutive_failures: u32,
    /// A run is in progress.
    pub in_flight: bool,
    /// Completed runs since the check was registered.
    pub runs: u64,
    /// When the reported status last changed.
    pub since: Timestamp,
    /// When the latest run completed (engine clock), for cache ages.
    pub completed_at: Option<Instant>,
    /// The check's interval.
    pub interval: Duration,
    /// The check's timeout.
    pub timeout: Duration,
    /// Re-run threshold for refreshes and on-demand reads.
    pub cache_ttl: Duration,
    /// Runs only when read.
    pub on_demand: bool,
}

impl CheckState {
    /// The status aggregation counts in `view` for a check at `level`; `None`
    /// when inactive or outside the view.
    pub fn counted(&self, view: View, level: crate::model::Level) -> Option<Status> {
        (self.active && view.counts(level)).then(|| effective(self.status, self.past_grace))
    }

    /// Whether the latest result is older than `cache_ttl` at `now` (or missing).
    pub fn is_cache_expired(&self, now: Instant) -> bool {
        self.completed_at
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cache_ttl)
    }
}

/// Status bookkeeping for a component or group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Since {
    /// Status in the overall view.
    pub status: Option<Status>,
    /// When it last changed.
    pub since: Timestamp,
}

/// The whole state at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The instance's epoch.
    pub epoch: u64,
    /// The seq of the last event this snapshot includes.
    pub seq: u64,
    /// When it was built.
    pub time: Timestamp,
    /// Components, groups, checks and dependencies.
    pub topology: Arc<Topology>,
    /// Per check, indexed like `topology.checks`.
    pub checks: Arc<[CheckState]>,
    /// Per component: last transition.
    pub components: Arc<[Since]>,
    /// Per group: last transition.
    pub groups: Arc<[Since]>,
    /// When the system status last changed.
    pub system_since: Timestamp,
    /// The three views: live, ready, all (see [`View`]).
    pub views: [Arc<Aggregate>; 3],
    pub(crate) slots: Arc<[Arc<Slot>]>,
    /// The on-demand checks (by index), so a read looks at those only.
    pub(crate) on_demand: Arc<[usize]>,
}

impl Snapshot {
    /// The verdict of a view.
    pub fn view(&self, view: View) -> &Aggregate {
        &self.views[view.index()]
    }

    /// The system status in the overall view.
    pub fn system(&self) -> Status {
        self.view(View::All).system
    }

    /// Re-aggregates a view leaving out some components (`?exclude=`).
    /// Costs a full pass; the precomputed views serve every other read.
    pub fn aggregate_excluding(&self, view: View, excluded: &[usize]) -> Aggregate {
        aggregate(&self.topology, |k| {
            let info = &self.topology.checks[k];
            if excluded.contains(&info.component) {
                return None;
            }
            self.checks[k].counted(view, info.level)
        })
    }
}
