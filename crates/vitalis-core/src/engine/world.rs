//! The aggregator: the one task that owns mutable state. It folds results
//! into check, component, group and system statuses (incrementally, through
//! the functions of [`crate::aggregate`]), appends every transition to the
//! event log, and publishes snapshots.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cancel::CancelToken;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::runner::{Command, Entry, Finished, Inbox};
use super::tally::{Moved, Tally};
use super::views::CheckViews;
use super::{
    Changes, KeyHasher, Limits, Msg, Observer, Resolved, RunRecord, Shared, Slot, humanize,
};
#[cfg(debug_assertions)]
use crate::aggregate::aggregate;
use crate::aggregate::{Aggregate, View, effective};
use crate::breaker::Circuit;
use crate::damping::Damper;
use crate::events::{Change, EventLog, Subject};
use crate::model::{CheckResult, Outcome, Status};
use crate::snapshot::{CheckState, Since, Snapshot};
use crate::spec::{Component, Defaults, Group};
use crate::topology::{RegistryError, Topology};
use crate::window::is_active;

/// An answer to a run-time change, sent once the change is published.
type Reply = (
    oneshot::Sender<Result<(), RegistryError>>,
    Result<(), RegistryError>,
);

pub(crate) struct Setup {
    pub(crate) epoch: u64,
    pub(crate) base: Instant,
    pub(crate) defaults: Defaults,
    pub(crate) events: Arc<EventLog>,
    pub(crate) limits: Arc<Limits>,
    /// The scheduler shards' mailboxes; a check goes to `key % len`.
    pub(crate) shards: Vec<Arc<Inbox>>,
    pub(crate) cancel: CancelToken,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
}

/// Per-check state owned by the aggregator.
struct Rec {
    resolved: Resolved,
    damper: Damper,
    result: Option<Arc<CheckResult>>,
    completed_at: Option<Instant>,
    shown: Status,
    stale: bool,
    /// The status counted in each view (uncapped), by [`View::index`]; `None`
    /// when inactive or outside the view.
    counted: [Option<Status>; 3],
    past_grace: bool,
    grace_until: Instant,
    active: bool,
    circuit: Circuit,
    open_until: Option<Instant>,
    consecutive_failures: u32,
    next_run: Option<Instant>,
    runs: u64,
    since: Timestamp,
    /// When the watchdog last reported this check's run as blocked.
    blocked_reported: Option<Instant>,
}

impl Rec {
    fn new(resolved: Resolved, now: Instant, wall: Timestamp) -> Self {
        let active = is_active(&resolved.active, wall);
        Rec {
            damper: Damper::new(resolved.failure_threshold, resolved.success_threshold),
            grace_until: now + resolved.grace,
            resolved,
            result: None,
            completed_at: None,
            shown: Status::Unknown,
            stale: false,
            counted: [None; 3],
            past_grace: false,
            active,
            circuit: Circuit::Closed,
            open_until: None,
            consecutive_failures: 0,
            next_run: None,
            runs: 0,
            since: wall,
            blocked_reported: None,
        }
    }
}

pub(crate) struct World {
    setup: Setup,
    declared_groups: Vec<Group>,
    specs: Vec<Component>,
    topo: Arc<Topology>,
    recs: Vec<Rec>,
    slots: Vec<Arc<Slot>>,
    /// `slots` as snapshots share it: rebuilt only when the registry changes,
    /// so a publication costs one reference count, not one per check.
    shared_slots: Arc<[Arc<Slot>]>,
    /// The on-demand checks, rebuilt with the registry.
    on_demand: Arc<[usize]>,
    by_key: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    next_key: u64,
    /// Incremental aggregation per view, by [`View::index`].
    tallies: [Tally; 3],
    /// Each view's published verdict, kept until its tally moves (most
    /// results change no component's status).
    verdicts: [Option<Arc<Aggregate>>; 3],
    /// Component and group statuses as published, kept until one moves.
    published_components: Option<Arc<[Since]>>,
    published_groups: Option<Arc<[Since]>>,
    component_since: Vec<Timestamp>,
    group_since: Vec<Timestamp>,
    system_since: Timestamp,
    /// Set while a registry change is applied: statuses are recomputed in
    /// full afterwards, so nothing propagates incrementally meanwhile.
    rebuilding: bool,
    /// What readers see of each check.
    views: CheckViews,
    /// Per check: the earliest time staleness, grace or the circuit can
    /// change what readers see (the tick skips the check until then). Kept
    /// apart from the records so the tick scans a compact array.
    next_change: Vec<Instant>,
    /// Checks with active windows (the tick evaluates their windows).
    windowed: Vec<usize>,
    ticks: u64,
    pending: Vec<(Subject, Change)>,
    moved: Vec<Moved>,
    dirty: bool,
    urgent: bool,
}

impl World {
    pub(crate) fn new(setup: Setup) -> Self {
        let empty = Topology::default();
        // Before the first registration nothing was judged: the system is `unknown`.
        let mut tallies = View::ALL.map(|v| Tally::full(v, &empty, |_| None));
        tallies.iter_mut().for_each(|t| t.system = Status::Unknown);
        World {
            setup,
            declared_groups: Vec::new(),
            specs: Vec::new(),
            tallies,
            verdicts: [None, None, None],
            published_components: None,
            published_groups: None,
            topo: Arc::new(empty),
            recs: Vec::new(),
            slots: Vec::new(),
            shared_slots: Arc::new([]),
            on_demand: Arc::new([]),
            by_key: HashMap::default(),
            next_key: 1,
            component_since: Vec::new(),
            group_since: Vec::new(),
            system_since: Timestamp::now(),
            rebuilding: false,
            views: CheckViews::new(Vec::new()),
            next_change: Vec::new(),
            windowed: Vec::new(),
            ticks: 0,
            pending: Vec::new(),
            moved: Vec::new(),
            dirty: true,
            urgent: false,
        }
    }

    /// Applies a batch of changes: validates the result as a whole, keeps the
    /// state of untouched components, starts and stops check tasks.
    pub(crate) fn apply(&mut self, changes: Changes) -> Result<(), RegistryError> {
        let now = Instant::now();
        let wall = Timestamp::now();
        let groups = changes
            .groups
            .unwrap_or_else(|| self.declared_groups.clone());
        let mut specs = self.specs.clone();
        for id in &changes.remove {
            let before = specs.len();
            specs.retain(|c| &c.id != id);
            if specs.len() == before {
                return Err(RegistryError::NotFound(id.clone()));
            }
        }
        let mut replaced: HashSet<String> = HashSet::new();
        for c in changes.upsert {
            match specs.iter_mut().find(|s| s.id == c.id) {
                Some(s) => {
                    replaced.insert(c.id.clone());
                    *s = c;
                }
                None => specs.push(c),
            }
        }
        let topo = Topology::build(&groups, &specs)?;

        // Carry over the state of untouched components; start the rest.
        let old_topo = std::mem::take(&mut self.topo);
        let mut old_recs: Vec<Option<Rec>> = std::mem::take(&mut self.recs)
            .into_iter()
            .map(Some)
            .collect();
        let old_slots = std::mem::take(&mut self.slots);
        let mut kept = vec![false; old_slots.len()];
        let mut to_spawn = Vec::new();
        for (ci, node) in topo.components.iter().enumerate() {
            let carried = (!replaced.contains(&*node.info.id))
                .then(|| old_topo.component(&node.info.id))
                .flatten();
            for n in 0..node.checks.len() {
                if let Some(old_ci) = carried {
                    let old_k = old_topo.components[old_ci].checks.start + n;
                    if let Some(rec) = old_recs[old_k].take() {
                        kept[old_k] = true;
                        self.recs.push(rec);
                        self.slots.push(old_slots[old_k].clone());
                        continue;
                    }
                }
                let spec = &specs[ci].checks[n];
                let resolved = Resolved::new(spec, &self.setup.defaults);
                let rec = Rec::new(resolved.clone(), now, wall);
                let inbox = slot_inbox(&self.setup.shards, self.next_key).clone();
                let slot = Arc::new(Slot::new(self.next_key, self.setup.base, rec.active, inbox));
                self.next_key += 1;
                to_spawn.push((slot.clone(), spec.check.clone(), resolved));
                self.recs.push(rec);
                self.slots.push(slot);
            }
        }
        for (k, slot) in old_slots.iter().enumerate() {
            if !kept[k] {
                slot.stop();
            }
        }
        for (k, slot) in self.slots.iter().enumerate() {
            slot.index.store(k, Ordering::Relaxed);
        }
        self.by_key = self
            .slots
            .iter()
            .enumerate()
            .map(|(k, s)| (s.key, k))
            .collect();
        self.shared_slots = self.slots.iter().cloned().collect();
        self.on_demand = (0..self.recs.len())
            .filter(|&k| self.recs[k].resolved.on_demand)
            .collect();

        // Registration events.
        for node in &topo.components {
            if old_topo.component(&node.info.id).is_none() {
                self.pending.push((
                    Subject::Component {
                        id: node.info.id.clone(),
                    },
                    Change::Added,
                ));
            }
        }
        for node in &old_topo.components {
            if topo.component(&node.info.id).is_none() {
                self.pending.push((
                    Subject::Component {
                        id: node.info.id.clone(),
                    },
                    Change::Removed,
                ));
            }
        }

        let all = View::All.index();
        let old_components: HashMap<Arc<str>, Since> = old_topo
            .components
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.info.id.clone(),
                    Since {
                        status: self.tallies[all].components[i],
                        since: self.component_since[i],
                    },
                )
            })
            .collect();
        let old_groups: HashMap<Arc<str>, Since> = old_topo
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    g.id.clone(),
                    Since {
                        status: self.tallies[all].groups[i],
                        since: self.group_since[i],
                    },
                )
            })
            .collect();
        self.topo = Arc::new(topo);
        self.specs = specs;
        self.declared_groups = groups;
        self.next_change = vec![now; self.recs.len()];
        self.windowed = (0..self.recs.len())
            .filter(|&k| !self.recs[k].resolved.active.is_empty())
            .collect();
        self.rebuilding = true;
        for k in 0..self.recs.len() {
            self.refresh_check(k, now, wall);
        }
        self.rebuilding = false;
        self.views = CheckViews::new(
            (0..self.recs.len())
                .map(|k| self.check_view(k, now, wall))
                .collect(),
        );
        self.recompute_all(&old_components, &old_groups, wall);

        for (slot, check, resolved) in to_spawn {
            let spread = resolved.interval.min(Duration::from_secs(1));
            let inbox = slot_inbox(&self.setup.shards, slot.key);
            let entry = Entry::new(
                slot,
                check,
                resolved,
                &self.setup.limits,
                spread.mul_f64(fastrand::f64()),
            );
            inbox.push(Command::Add(Box::new(entry)));
        }
        self.dirty = true;
        self.urgent = true;
        Ok(())
    }

    /// Appends pending transitions to the event log; returns the last seq.
    pub(crate) fn flush_events(&mut self, wall: Timestamp) -> u64 {
        self.setup.events.append(wall, self.pending.drain(..))
    }

    /// Recomputes every view in full (after a registry change), emitting the
    /// overall view's transitions against the previous state by id.
    fn recompute_all(
        &mut self,
        old_components: &HashMap<Arc<str>, Since>,
        old_groups: &HashMap<Arc<str>, Since>,
        wall: Timestamp,
    ) {
        let topo = self.topo.clone();
        let old_system = self.tallies[View::All.index()].system;
        self.tallies =
            View::ALL.map(|v| Tally::full(v, &topo, |k| self.recs[k].counted[v.index()]));
        self.verdicts = [None, None, None];
        self.published_components = None;
        self.published_groups = None;
        let all = &self.tallies[View::All.index()];
        let (components, groups, system) = (all.components.clone(), all.groups.clone(), all.system);
        self.component_since = topo
            .components
            .iter()
            .zip(components)
            .map(|(node, status)| {
                let old = old_components.get(&node.info.id);
                transition_event(
                    &mut self.pending,
                    Subject::Component {
                        id: node.info.id.clone(),
                    },
                    old.and_then(|o| o.status),
                    status,
                    wall,
                )
                .unwrap_or(old.map_or(wall, |o| o.since))
            })
            .collect();
        self.group_since = topo
            .groups
            .iter()
            .zip(groups)
            .map(|(g, status)| {
                let old = old_groups.get(&g.id);
                transition_event(
                    &mut self.pending,
                    Subject::Group { id: g.id.clone() },
                    old.and_then(|o| o.status),
                    status,
                    wall,
                )
                .unwrap_or(old.map_or(wall, |o| o.since))
            })
            .collect();
        if system != old_system {
            self.pending.push((
                Subject::System,
                Change::Status {
                    from: old_system,
                    to: system,
                    result: None,
                },
            ));
            self.system_since = wall;
        }
    }

    /// Re-derives a check's shown status, staleness and counted statuses from
    /// its record at `now`; propagates changes to every view.
    /// Returns whether anything readers see changed.
    fn refresh_check(&mut self, k: usize, now: Instant, wall: Timestamp) -> bool {
        let slot_in_flight = self.slots[k].in_flight_since().is_some();
        let level = self.topo.checks[k].level;
        let rec = &mut self.recs[k];
        let circuit_open = rec.open_until.is_some_and(|u| now < u);
        let stale = rec
            .completed_at
            .is_some_and(|t| now.saturating_duration_since(t) > rec.resolved.stale_after)
            && !slot_in_flight
            && !circuit_open;
        let shown = if stale {
            Status::Unknown
        } else {
            rec.damper.reported()
        };
        // An on-demand check goes stale when nobody reads it; that absence of
        // readers is not a failure of the target, so it stays `unknown`.
        let past_grace = now >= rec.grace_until && !(rec.resolved.on_demand && stale);
        let counted = View::ALL
            .map(|v| (rec.active && v.counts(level)).then(|| effective(shown, past_grace)));
        let changed = shown != rec.shown
            || stale != rec.stale
            || past_grace != rec.past_grace
            || counted != rec.counted;
        let far = now + Duration::from_secs(86_400);
        let stale_at = match rec.completed_at {
            Some(t) if !stale => t + rec.resolved.stale_after + Duration::from_millis(1),
            _ => far,
        };
        let grace_at = if now < rec.grace_until {
            rec.grace_until
        } else {
            far
        };
        let trial_at = rec.open_until.filter(|u| now < *u).unwrap_or(far);
        self.next_change[k] = stale_at.min(grace_at).min(trial_at);
        rec.stale = stale;
        rec.past_grace = past_grace;
        if shown != rec.shown {
            let from = std::mem::replace(&mut rec.shown, shown);
            rec.since = wall;
            let info = &self.topo.checks[k];
            let component = self.topo.components[info.component].info.id.clone();
            let result = if stale { None } else { rec.result.clone() };
            self.pending.push((
                Subject::Check {
                    component,
                    check: info.name.clone(),
                },
                Change::Status {
                    from,
                    to: shown,
                    result,
                },
            ));
        }
        if counted != rec.counted {
            rec.counted = counted;
            if !self.rebuilding {
                self.component_changed(self.topo.checks[k].component, wall);
            }
        }
        changed
    }

    /// Folds a change of component `ci`'s checks into every view; the overall
    /// view's transitions become events.
    fn component_changed(&mut self, ci: usize, wall: Timestamp) {
        let topo = self.topo.clone();
        let mut moved = std::mem::take(&mut self.moved);
        for tally in &mut self.tallies {
            let v = tally.view.index();
            let recs = &self.recs;
            moved.clear();
            tally.component_changed(&topo, ci, |k| recs[k].counted[v], &mut moved);
            if moved.is_empty() {
                continue;
            }
            self.verdicts[v] = None;
            if tally.view != View::All {
                continue;
            }
            for m in &moved {
                match *m {
                    Moved::Component(i, from, to) => {
                        let subject = Subject::Component {
                            id: topo.components[i].info.id.clone(),
                        };
                        self.published_components = None;
                        if let Some(t) =
                            transition_event(&mut self.pending, subject, from, to, wall)
                        {
                            self.component_since[i] = t;
                        }
                    }
                    Moved::Group(g, from, to) => {
                        let subject = Subject::Group {
                            id: topo.groups[g].id.clone(),
                        };
                        self.published_groups = None;
                        if let Some(t) =
                            transition_event(&mut self.pending, subject, from, to, wall)
                        {
                            self.group_since[g] = t;
                        }
                    }
                    Moved::System(from, to) => {
                        self.pending.push((
                            Subject::System,
                            Change::Status {
                                from,
                                to,
                                result: None,
                            },
                        ));
                        self.system_since = wall;
                    }
                }
            }
        }
        self.moved = moved;
    }

    fn check_view(&self, k: usize, now: Instant, wall: Timestamp) -> CheckState {
        let rec = &self.recs[k];
        let to_wall = |t: Instant| {
            let ahead = t.saturating_duration_since(now).as_nanos() as i128;
            Timestamp::from_nanosecond(wall.as_nanosecond() + ahead).unwrap_or(wall)
        };
        CheckState {
            status: rec.shown,
            active: rec.active,
            past_grace: rec.past_grace,
            result: rec.result.clone(),
            stale: rec.stale,
            circuit: if rec.open_until.is_some_and(|u| now < u) {
                Circuit::Open
            } else {
                rec.circuit
            },
            next_run: rec.next_run.map(to_wall),
            consecutive_failures: rec.consecutive_failures,
            in_flight: self.slots[k].in_flight_since().is_some(),
            runs: rec.runs,
            since: rec.since,
            completed_at: rec.completed_at,
            interval: rec.resolved.interval,
            timeout: rec.resolved.timeout,
            cache_ttl: rec.resolved.cache_ttl,
            on_demand: rec.resolved.on_demand,
        }
    }

    fn record_result(
        &mut self,
        k: usize,
        result: Arc<CheckResult>,
        lag: Duration,
        now: Instant,
        wall: Timestamp,
    ) {
        let rec = &mut self.recs[k];
        rec.damper.record(result.status);
        rec.result = Some(result.clone());
        rec.completed_at = Some(now);
        rec.runs += 1;
        if !self.setup.observers.is_empty() {
            let info = &self.topo.checks[k];
            let comp = &self.topo.components[info.component].info;
            let record = RunRecord {
                component: &comp.id,
                check: &info.name,
                kind: &info.kind,
                group: comp.group.as_deref(),
                level: info.level,
                critical: comp.critical,
                result: &result,
                lag,
            };
            for observer in &self.setup.observers {
                observer.on_run(&record);
            }
        }
        self.refresh_check(k, now, wall);
        let view = self.check_view(k, now, wall);
        self.views.set(k, view);
        self.dirty = true;
    }

    fn on_finished(&mut self, f: Finished, now: Instant, wall: Timestamp) {
        // The index the shard read from the slot is right unless the
        // registry changed since; the map settles it then.
        let k = match self.slots.get(f.index) {
            Some(slot) if slot.key == f.key => f.index,
            _ => match self.by_key.get(&f.key) {
                Some(&k) => k,
                None => return, // a check that was removed or replaced meanwhile
            },
        };
        let rec = &mut self.recs[k];
        rec.circuit = f.circuit;
        rec.open_until = f.open_until;
        rec.consecutive_failures = f.consecutive_failures;
        rec.next_run = f.next_run;
        rec.blocked_reported = None;
        self.urgent |= f.urgent;
        self.record_result(k, f.result, f.lag, now, wall);
    }

    /// Time-driven changes: windows opening and closing, staleness, grace
    /// expiry, and runs blocked past their timeout.
    fn tick(&mut self, tick: Duration) {
        let now = Instant::now();
        let wall = Timestamp::now();
        self.ticks += 1;
        for i in 0..self.windowed.len() {
            let k = self.windowed[i];
            let rec = &mut self.recs[k];
            let active = is_active(&rec.resolved.active, wall);
            if active != rec.active {
                rec.active = active;
                self.slots[k].active.store(active, Ordering::Release);
                if active {
                    rec.grace_until = now + rec.resolved.grace;
                    self.slots[k].request_run(false, false);
                }
                self.next_change[k] = now;
            }
        }
        // Runs in flight are looked at once a second (every check's slot);
        // in between only checks whose next time-driven change has come.
        let scan_in_flight = self.ticks.is_multiple_of(4);
        for k in 0..self.recs.len() {
            if !scan_in_flight && now < self.next_change[k] {
                continue;
            }
            let started = self.slots[k].in_flight_since();
            if let Some(started) = started
                && self.watchdog(k, started, tick, now, wall)
            {
                continue;
            }
            if now < self.next_change[k] && started.is_none() && !self.views.in_flight(k) {
                continue; // nothing time-driven can have changed yet
            }
            if self.refresh_check(k, now, wall) || self.views.in_flight(k) != started.is_some() {
                let view = self.check_view(k, now, wall);
                self.views.set(k, view);
                self.dirty = true;
            }
        }
    }

    /// A run that blocks a thread of the check runtime's workers cannot be
    /// interrupted by its timeout (and may stop the scheduler shard itself);
    /// report it on time anyway, once per interval. Returns whether it did.
    fn watchdog(
        &mut self,
        k: usize,
        started: Instant,
        tick: Duration,
        now: Instant,
        wall: Timestamp,
    ) -> bool {
        let rec = &mut self.recs[k];
        let limit = rec.resolved.timeout + tick * 4;
        let due = rec
            .blocked_reported
            .is_none_or(|t| now.saturating_duration_since(t) >= rec.resolved.interval);
        if now.saturating_duration_since(started) <= limit || !due {
            return false;
        }
        rec.blocked_reported = Some(now);
        let outcome = Outcome::fail(format!(
            "timed out after {}: the run started {} ago has not returned and does not yield to its timeout; \
             the check is blocking its thread (a blocking call in async code?); no new run starts until it returns",
            humanize(rec.resolved.timeout),
            humanize(now.saturating_duration_since(started)),
        ));
        let result = Arc::new(CheckResult::from_outcome(
            outcome,
            now.saturating_duration_since(started),
            wall,
        ));
        self.record_result(k, result, Duration::ZERO, now, wall);
        true
    }

    pub(crate) fn snapshot(&mut self, seq: u64, wall: Timestamp) -> Snapshot {
        let checks = self.views.publish();
        for (verdict, tally) in self.verdicts.iter_mut().zip(&self.tallies) {
            if verdict.is_none() {
                *verdict = Some(Arc::new(tally.verdict(&self.topo)));
            }
        }
        let views = self
            .verdicts
            .each_ref()
            .map(|v| v.clone().expect("computed above"));
        #[cfg(debug_assertions)]
        for v in View::ALL {
            let full = aggregate(&self.topo, |k| {
                checks[k].counted(v, self.topo.checks[k].level)
            });
            assert_eq!(
                *views[v.index()],
                full,
                "incremental and full aggregation disagree in view {v:?}"
            );
        }
        let all = &self.tallies[View::All.index()];
        let components = self
            .published_components
            .get_or_insert_with(|| {
                all.components
                    .iter()
                    .zip(&self.component_since)
                    .map(|(s, t)| Since {
                        status: *s,
                        since: *t,
                    })
                    .collect()
            })
            .clone();
        let groups = self
            .published_groups
            .get_or_insert_with(|| {
                all.groups
                    .iter()
                    .zip(&self.group_since)
                    .map(|(s, t)| Since {
                        status: *s,
                        since: *t,
                    })
                    .collect()
            })
            .clone();
        Snapshot {
            epoch: self.setup.epoch,
            seq,
            time: wall,
            topology: self.topo.clone(),
            checks,
            components,
            groups,
            system_since: self.system_since,
            views,
            slots: self.shared_slots.clone(),
            on_demand: self.on_demand.clone(),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        shared: Arc<Shared>,
        publish_interval: Duration,
        tick_every: Duration,
    ) {
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_publish = Instant::now();
        self.dirty = false;
        self.urgent = false;
        let mut replies: Vec<Reply> = Vec::new();
        // Messages handled in the last wake-up.
        let mut batch = 0usize;
        loop {
            if batch > 1 {
                // Results are arriving in a burst (checks due together):
                // let the burst gather instead of waking once per result.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            batch = 0;
            let publish_at = last_publish + publish_interval;
            tokio::select! {
                biased;
                _ = self.setup.cancel.cancelled() => break,
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    // One clock reading serves the whole batch.
                    let (now, wall) = (Instant::now(), Timestamp::now());
                    self.handle(msg, &shared, &mut replies, now, wall);
                    batch = 1;
                    while batch < 4096 {
                        match rx.try_recv() {
                            Ok(msg) => self.handle(msg, &shared, &mut replies, now, wall),
                            Err(_) => break,
                        }
                        batch += 1;
                    }
                }
                _ = tick.tick() => {
                    self.tick(tick_every);
                    let since_base = Instant::now().saturating_duration_since(shared.base);
                    shared.stats.last_tick_us.store(since_base.as_micros() as u64, Ordering::Release);
                }
                _ = sleep_until(publish_at), if self.dirty => {}
            }
            let wall = Timestamp::now();
            let seq = self.flush_events(wall);
            let now = Instant::now();
            if self.dirty && (self.urgent || now >= publish_at) {
                shared.current.store(Arc::new(self.snapshot(seq, wall)));
                shared.published.send_modify(|n| *n += 1);
                self.dirty = false;
                self.urgent = false;
                last_publish = now;
            }
            for (reply, result) in replies.drain(..) {
                let _ = reply.send(result);
            }
        }
        for inbox in &self.setup.shards {
            inbox.close();
        }
        // Transitions found in this last pass are still recorded.
        self.flush_events(Timestamp::now());
        self.setup.events.close();
    }

    fn handle(
        &mut self,
        msg: Msg,
        shared: &Shared,
        replies: &mut Vec<Reply>,
        now: Instant,
        wall: Timestamp,
    ) {
        match msg {
            Msg::Finished(batch) => {
                // One atomic update per batch, not per result.
                if let Some(lag) = batch.iter().map(|f| f.lag).max() {
                    shared
                        .stats
                        .max_lag_us
                        .fetch_max(lag.as_micros() as u64, Ordering::AcqRel);
                }
                for f in batch {
                    self.on_finished(f, now, wall);
                }
            }
            Msg::Apply(changes, reply) => {
                let result = self.apply(changes);
                replies.push((reply, result));
            }
        }
    }
}

/// Records a status change of a component or group as an event; returns the
/// time of the change when there was one. Becoming counted from nothing reads
/// as a change from `unknown`; becoming uncounted is no status change.
fn transition_event(
    pending: &mut Vec<(Subject, Change)>,
    subject: Subject,
    from: Option<Status>,
    to: Option<Status>,
    wall: Timestamp,
) -> Option<Timestamp> {
    let to = to?;
    let from = from.unwrap_or(Status::Unknown);
    (from != to).then(|| {
        pending.push((
            subject,
            Change::Status {
                from,
                to,
                result: None,
            },
        ));
        wall
    })
}

/// The scheduler shard that owns check `key`.
fn slot_inbox(shards: &[Arc<Inbox>], key: u64) -> &Arc<Inbox> {
    &shards[(key % shards.len() as u64) as usize]
}
