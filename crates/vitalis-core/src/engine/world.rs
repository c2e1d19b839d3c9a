//! The aggregator: the one task that owns mutable state. It folds results
//! into check, component, group and system statuses (incrementally, through
//! the functions of [`crate::aggregate`]), appends every transition to the
//! event log, and publishes snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::runner::{Finished, Runner};
use super::{Changes, Limits, Msg, Observer, Resolved, RunRecord, Shared, Slot, humanize};
use crate::aggregate::{View, aggregate, component_status, contribution, effective, group_status};
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
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) checks_on: Handle,
    pub(crate) cancel: CancellationToken,
    pub(crate) observer: Option<Arc<dyn Observer>>,
}

/// Per-check state owned by the aggregator.
struct Rec {
    resolved: Resolved,
    damper: Damper,
    result: Option<Arc<CheckResult>>,
    completed_at: Option<Instant>,
    shown: Status,
    stale: bool,
    /// The status counted in the overall view (uncapped); `None` when inactive.
    counted: Option<Status>,
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
            counted: active.then_some(Status::Unknown),
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
    by_key: HashMap<u64, usize>,
    next_key: u64,
    components: Vec<Since>,
    groups: Vec<Since>,
    system: Status,
    system_since: Timestamp,
    /// How many system contributors currently contribute each status, by severity.
    contributions: [u32; 4],
    views: Vec<Arc<CheckState>>,
    pending: Vec<(Subject, Change)>,
    dirty: bool,
    urgent: bool,
}

impl World {
    pub(crate) fn new(setup: Setup) -> Self {
        World {
            setup,
            declared_groups: Vec::new(),
            specs: Vec::new(),
            topo: Arc::new(Topology::default()),
            recs: Vec::new(),
            slots: Vec::new(),
            by_key: HashMap::new(),
            next_key: 1,
            components: Vec::new(),
            groups: Vec::new(),
            system: Status::Unknown,
            system_since: Timestamp::now(),
            contributions: [0; 4],
            views: Vec::new(),
            pending: Vec::new(),
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
            for (n, k) in node.checks.clone().enumerate() {
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
                let slot = Arc::new(Slot::new(self.next_key, self.setup.base, rec.active));
                self.next_key += 1;
                to_spawn.push((slot.clone(), spec.check.clone(), resolved));
                self.recs.push(rec);
                self.slots.push(slot);
                debug_assert_eq!(self.recs.len(), k + 1);
            }
        }
        for (k, slot) in old_slots.iter().enumerate() {
            if !kept[k] {
                slot.cancel.cancel();
            }
        }
        self.by_key = self
            .slots
            .iter()
            .enumerate()
            .map(|(k, s)| (s.key, k))
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

        let old_components: HashMap<Arc<str>, Since> = old_topo
            .components
            .iter()
            .zip(&self.components)
            .map(|(n, s)| (n.info.id.clone(), *s))
            .collect();
        let old_groups: HashMap<Arc<str>, Since> = old_topo
            .groups
            .iter()
            .zip(&self.groups)
            .map(|(g, s)| (g.id.clone(), *s))
            .collect();
        self.topo = Arc::new(topo);
        self.specs = specs;
        self.declared_groups = groups;
        // Statuses are recomputed in full below; nothing propagates until then.
        self.components.clear();
        for k in 0..self.recs.len() {
            self.refresh_check(k, now, wall);
        }
        self.views = (0..self.recs.len())
            .map(|k| self.check_view(k, now, wall))
            .collect();
        self.recompute_all(&old_components, &old_groups, wall);

        for (slot, check, resolved) in to_spawn {
            let first_delay = Duration::from_secs_f64(
                fastrand::f64() * resolved.interval.min(Duration::from_secs(1)).as_secs_f64(),
            );
            let runner = Runner {
                slot,
                check,
                settings: resolved,
                limits: self.setup.limits.clone(),
                tx: self.setup.tx.clone(),
                first_delay,
            };
            self.setup.checks_on.spawn(runner.run());
        }
        self.dirty = true;
        self.urgent = true;
        Ok(())
    }

    /// Appends pending transitions to the event log; returns the last seq.
    pub(crate) fn flush_events(&mut self, wall: Timestamp) -> u64 {
        self.setup.events.append(wall, self.pending.drain(..))
    }

    /// Recomputes every component, group and the system from the counted
    /// check statuses (after a registry change), emitting transitions
    /// against the previous state by id.
    fn recompute_all(
        &mut self,
        old_components: &HashMap<Arc<str>, Since>,
        old_groups: &HashMap<Arc<str>, Since>,
        wall: Timestamp,
    ) {
        let agg = aggregate(&self.topo, |k| self.recs[k].counted);
        let topo = self.topo.clone();
        self.components = topo
            .components
            .iter()
            .zip(&agg.components)
            .map(|(node, &status)| {
                let old = old_components.get(&node.info.id);
                self.transition(
                    Subject::Component {
                        id: node.info.id.clone(),
                    },
                    old.and_then(|o| o.status),
                    status,
                    wall,
                    old,
                )
            })
            .collect();
        self.groups = topo
            .groups
            .iter()
            .zip(&agg.groups)
            .map(|(g, &status)| {
                let old = old_groups.get(&g.id);
                self.transition(
                    Subject::Group { id: g.id.clone() },
                    old.and_then(|o| o.status),
                    status,
                    wall,
                    old,
                )
            })
            .collect();
        self.contributions = [0; 4];
        for (ci, node) in topo.components.iter().enumerate() {
            if !node
                .group
                .is_some_and(|g| topo.groups[g].is_redundancy_set())
                && let Some(s) = agg.components[ci]
            {
                self.contributions[contribution(s, node.info.critical).severity() as usize] += 1;
            }
        }
        for (gi, g) in topo.groups.iter().enumerate() {
            if g.is_redundancy_set()
                && let Some(s) = agg.groups[gi]
            {
                self.contributions[contribution(s, g.critical).severity() as usize] += 1;
            }
        }
        self.update_system(wall);
        debug_assert_eq!(self.system, agg.system);
    }

    /// Records a status change of a component or group; returns its bookkeeping.
    fn transition(
        &mut self,
        subject: Subject,
        from: Option<Status>,
        to: Option<Status>,
        wall: Timestamp,
        old: Option<&Since>,
    ) -> Since {
        match (from, to) {
            (Some(f), Some(t)) if f != t => {
                self.pending.push((
                    subject,
                    Change::Status {
                        from: f,
                        to: t,
                        result: None,
                    },
                ));
                Since {
                    status: to,
                    since: wall,
                }
            }
            (None, Some(t)) if t != Status::Unknown => {
                self.pending.push((
                    subject,
                    Change::Status {
                        from: Status::Unknown,
                        to: t,
                        result: None,
                    },
                ));
                Since {
                    status: to,
                    since: wall,
                }
            }
            _ => Since {
                status: to,
                since: old.map_or(wall, |o| o.since),
            },
        }
    }

    /// Re-derives a check's shown status, staleness and counted status from
    /// its record at `now`; propagates a change of the counted status.
    /// Returns whether anything readers see changed.
    fn refresh_check(&mut self, k: usize, now: Instant, wall: Timestamp) -> bool {
        let slot_in_flight = self.slots[k].in_flight_since().is_some();
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
        let counted = rec.active.then(|| effective(shown, past_grace));
        let changed = shown != rec.shown
            || stale != rec.stale
            || past_grace != rec.past_grace
            || counted != rec.counted;
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
            if !self.components.is_empty() {
                self.update_component(self.topo.checks[k].component, wall);
            }
        }
        changed
    }

    fn update_component(&mut self, ci: usize, wall: Timestamp) {
        let topo = self.topo.clone();
        let node = &topo.components[ci];
        let status = component_status(
            node.checks
                .clone()
                .filter_map(|k| Some((self.recs[k].counted?, topo.checks[k].impact))),
        );
        let old = self.components[ci];
        if status == old.status {
            return;
        }
        self.components[ci] = self.transition(
            Subject::Component {
                id: node.info.id.clone(),
            },
            old.status,
            status,
            wall,
            Some(&old),
        );
        match node.group {
            Some(g) if topo.groups[g].is_redundancy_set() => self.update_group(g, wall),
            group => {
                self.shift_contribution(old.status, status, node.info.critical);
                if let Some(g) = group {
                    self.update_group(g, wall);
                }
                self.update_system(wall);
            }
        }
    }

    fn update_group(&mut self, g: usize, wall: Timestamp) {
        let topo = self.topo.clone();
        let group = &topo.groups[g];
        let status = group_status(
            group.min_passing,
            group.members.iter().map(|&m| self.components[m].status),
        );
        let old = self.groups[g];
        if status == old.status {
            return;
        }
        self.groups[g] = self.transition(
            Subject::Group {
                id: group.id.clone(),
            },
            old.status,
            status,
            wall,
            Some(&old),
        );
        if group.is_redundancy_set() {
            self.shift_contribution(old.status, status, group.critical);
            self.update_system(wall);
        }
    }

    fn shift_contribution(&mut self, from: Option<Status>, to: Option<Status>, critical: bool) {
        if let Some(f) = from {
            self.contributions[contribution(f, critical).severity() as usize] -= 1;
        }
        if let Some(t) = to {
            self.contributions[contribution(t, critical).severity() as usize] += 1;
        }
    }

    fn update_system(&mut self, wall: Timestamp) {
        let status = [Status::Fail, Status::Warn, Status::Unknown]
            .into_iter()
            .find(|s| self.contributions[s.severity() as usize] > 0)
            .unwrap_or(Status::Pass);
        if status != self.system {
            self.pending.push((
                Subject::System,
                Change::Status {
                    from: self.system,
                    to: status,
                    result: None,
                },
            ));
            self.system = status;
            self.system_since = wall;
        }
    }

    fn check_view(&self, k: usize, now: Instant, wall: Timestamp) -> Arc<CheckState> {
        let rec = &self.recs[k];
        let to_wall = |t: Instant| {
            let ahead = t.saturating_duration_since(now);
            wall.saturating_add(SignedDuration::try_from(ahead).unwrap_or(SignedDuration::ZERO))
                .unwrap_or(wall)
        };
        Arc::new(CheckState {
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
        })
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
        if let Some(observer) = &self.setup.observer {
            let info = &self.topo.checks[k];
            let comp = &self.topo.components[info.component].info;
            observer.on_run(&RunRecord {
                component: &comp.id,
                check: &info.name,
                kind: &info.kind,
                group: comp.group.as_deref(),
                level: info.level,
                critical: comp.critical,
                result: &result,
                lag,
            });
        }
        self.refresh_check(k, now, wall);
        self.views[k] = self.check_view(k, now, wall);
        self.dirty = true;
    }

    fn on_finished(&mut self, f: Finished, shared: &Shared) {
        let Some(&k) = self.by_key.get(&f.key) else {
            return; // a check that was removed or replaced meanwhile
        };
        let now = Instant::now();
        let rec = &mut self.recs[k];
        rec.circuit = f.breaker.circuit(now);
        rec.open_until = f.breaker.open_until();
        rec.consecutive_failures = f.breaker.consecutive_failures();
        rec.next_run = f.next_run;
        rec.blocked_reported = None;
        shared
            .stats
            .max_lag_us
            .fetch_max(f.lag.as_micros() as u64, Ordering::AcqRel);
        self.urgent |= f.urgent;
        self.record_result(k, f.result, f.lag, now, Timestamp::now());
    }

    /// Time-driven changes: windows opening and closing, staleness, grace
    /// expiry, and runs blocked past their timeout.
    fn tick(&mut self, tick: Duration) {
        let now = Instant::now();
        let wall = Timestamp::now();
        for k in 0..self.recs.len() {
            let rec = &mut self.recs[k];
            let slot = &self.slots[k];
            if !rec.resolved.active.is_empty() {
                let active = is_active(&rec.resolved.active, wall);
                if active != rec.active {
                    rec.active = active;
                    slot.active.store(active, Ordering::Release);
                    if active {
                        rec.grace_until = now + rec.resolved.grace;
                        slot.request_run(false, false);
                    }
                }
            }
            // Watchdog: a run that blocks its thread cannot be interrupted by
            // its timeout; report it on time anyway, once per interval.
            if let Some(started) = slot.in_flight_since() {
                let limit = rec.resolved.timeout + tick;
                let due = rec
                    .blocked_reported
                    .is_none_or(|t| now.saturating_duration_since(t) >= rec.resolved.interval);
                if now.saturating_duration_since(started) > limit && due {
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
                    continue;
                }
            }
            let in_flight = slot.in_flight_since().is_some();
            if self.refresh_check(k, now, wall) || self.views[k].in_flight != in_flight {
                self.views[k] = self.check_view(k, now, wall);
                self.dirty = true;
            }
        }
    }

    pub(crate) fn snapshot(&self, seq: u64, wall: Timestamp) -> Snapshot {
        let checks: Arc<[Arc<CheckState>]> = self.views.iter().cloned().collect();
        let views = View::ALL.map(|v| {
            Arc::new(aggregate(&self.topo, |k| {
                checks[k].counted(v, self.topo.checks[k].level)
            }))
        });
        debug_assert_eq!(
            views[View::All.index()].components,
            self.components.iter().map(|c| c.status).collect::<Vec<_>>(),
            "incremental and full aggregation disagree"
        );
        debug_assert_eq!(views[View::All.index()].system, self.system);
        Snapshot {
            epoch: self.setup.epoch,
            seq,
            time: wall,
            topology: self.topo.clone(),
            checks,
            components: self.components.iter().copied().collect(),
            groups: self.groups.iter().copied().collect(),
            system_since: self.system_since,
            views,
            slots: self.slots.iter().cloned().collect(),
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
        loop {
            let publish_at = last_publish + publish_interval;
            tokio::select! {
                biased;
                _ = self.setup.cancel.cancelled() => break,
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle(msg, &shared, &mut replies);
                    for _ in 0..4096 {
                        match rx.try_recv() {
                            Ok(msg) => self.handle(msg, &shared, &mut replies),
                            Err(_) => break,
                        }
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
        for slot in &self.slots {
            slot.cancel.cancel();
        }
    }

    fn handle(&mut self, msg: Msg, shared: &Shared, replies: &mut Vec<Reply>) {
        match msg {
            Msg::Finished(f) => self.on_finished(*f, shared),
            Msg::Apply(changes, reply) => {
                let result = self.apply(changes);
                replies.push((reply, result));
            }
        }
    }
}
