//! **The evaluator: when an alert fires, what it says, and when it resolves.**
//!
//! Pure logic over the engine's snapshots and events, driven by the
//! [`Alerting`](crate::Alerting) task (or a test) through two calls:
//! [`Evaluator::observe`] for each event of the transition log, then
//! [`Evaluator::evaluate`] with the snapshot that includes them. It returns
//! the notifications to send, the checks to re-run, and when to call again.
//!
//! # Semantics
//!
//! * **Subjects.** Components, redundancy sets (groups with `min_passing`)
//!   and the system. A plain group is a view whose status is the worst of
//!   its members: its alert would only repeat a member's, so it raises none
//!   (routes still match alerts by group). Members of a redundancy set raise
//!   no component alerts: the set is judged as a whole and alerts for them,
//!   naming its down members.
//! * **Degraded** means `warn` or `fail` in the overall view. A check whose
//!   result is `unknown` past its grace counts as `fail` there, so it alerts
//!   like one; before its grace, `unknown` raises nothing.
//! * **`for`.** A subject must stay degraded for `alert.for` (default 0s)
//!   before its alert fires. Any recovery in between — even one seen only in
//!   the event log, between two snapshots — starts the wait again.
//! * **Root cause first.** A component that is `impacted_by` a failing
//!   dependency raises no alert; the root cause's alert lists what it
//!   impacts (an update is sent when that list grows). Before a component or
//!   redundancy set alerts, every check upstream of it (its dependencies,
//!   transitively) must have a result from no earlier than the failure
//!   itself: those that are not fresh are re-run at once through `Engine::rerun`
//!   and waited for, at most `root_cause_wait` (default 10s) — so jitter
//!   never lets a symptom page before its cause. When an impacted component
//!   stops being impacted while still failing, it alerts only once its own
//!   checks have confirmed the failure after its root cause recovered. The
//!   system alert waits while any such hold is in progress.
//! * **Severity.** `critical` for a critical component's `fail`, a critical
//!   redundancy set's `fail` and the system's `fail`; `warning` otherwise. An
//!   explicit `severity` wins: a degrading check's (the highest among the
//!   checks at the component's status), else the component's or group's.
//! * **Resolution.** When the subject is no longer degraded (or is
//!   removed), a resolution is sent — but only for an alert whose firing
//!   notification was sent. Suppression (root causes, maintenance) applies
//!   to creation only, never to resolution.
//! * **Maintenance windows** mute notifications, never state: an alert that
//!   fires during a window is recorded and notified when the window ends if it
//!   is still firing; if it resolves first, nothing is sent at all.
//! * **Updates.** A firing alert whose severity changes, or whose impacts or
//!   root causes grow, sends an `update` (dedup key `…:update.<n>`).
//! * **Flapping** (Nagios' method). Each subject keeps its last 21 results
//!   — degraded or not, one per evaluation in which its checks produced a
//!   result, plus every transition of the event log — and their weighted
//!   percent state change (20 change slots, weighted 0.8 for the oldest to
//!   1.2 for the newest). At `flap_high` percent (default 20) one `flapping`
//!   notice is sent and the subject's notifications pause; below `flap_low`
//!   (default 5) one `settled` notice is sent and they resume: an alert
//!   still firing is notified then (once), an alert notified before the
//!   flapping that recovered meanwhile is resolved then.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use vitalis_config::{AlertConfig, MaintenanceWindow};
use vitalis_core::events::{Change, Event};
use vitalis_core::topology::NodeRef;
use vitalis_core::{CheckState, Snapshot, Status, View};

use crate::model::{
    Alert, CheckSummary, Notification, Resolution, Severity, State, Subject, alert_id,
};

/// Beyond a check's timeout, how long its result may take to be published
/// (the aggregator's tick and publication interval).
const PUBLISH_MARGIN: Duration = Duration::from_millis(500);

/// What the evaluator needs from `[alert]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `alert.for`: how long a degradation must hold before it alerts.
    pub for_duration: Duration,
    /// The longest a candidate alert waits for its dependencies' fresh results.
    pub root_cause_wait: Duration,
    /// `[[alert.maintenance]]`.
    pub maintenance: Vec<MaintenanceWindow>,
    /// Percent state change at which a subject starts flapping (default 20).
    pub flap_high: f64,
    /// Percent state change below which flapping has settled (default 5).
    pub flap_low: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            for_duration: Duration::ZERO,
            root_cause_wait: Duration::from_secs(10),
            maintenance: Vec::new(),
            flap_high: 20.0,
            flap_low: 5.0,
        }
    }
}

impl Settings {
    /// The settings of an `[alert]` section (default `root_cause_wait`).
    pub fn from_config(config: &AlertConfig) -> Self {
        Settings {
            for_duration: config.for_duration,
            maintenance: config.maintenance.clone(),
            flap_high: config.flap_high,
            flap_low: config.flap_low,
            ..Settings::default()
        }
    }
}

/// What one evaluation decided.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Notifications to route and deliver, in order.
    pub notifications: Vec<Notification>,
    /// Checks (indexes into the evaluated snapshot) whose fresh results a
    /// held alert waits for: re-run them with `Engine::rerun`.
    pub refresh: Vec<usize>,
    /// Evaluate again by then at the latest (a `for` or a hold ends).
    pub wake_at: Option<Instant>,
}

impl Evaluation {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// Alert state of every subject; see the [module docs](self) for the rules.
#[derive(Debug, Default)]
pub struct Evaluator {
    settings: Settings,
    tracks: BTreeMap<Subject, Track>,
    /// Status transitions seen in the event log since the last evaluation.
    transitions: HashMap<Subject, Vec<Status>>,
    /// Flap detection per subject.
    flaps: HashMap<Subject, Flap>,
    /// Per subject, the start (unix ms) of its latest alert: ids stay
    /// unique even for two alerts starting within one millisecond.
    last_start: HashMap<Subject, i64>,
}

/// How many results flap detection looks at.
const FLAP_RESULTS: usize = 21;

/// Flap detection of one subject.
#[derive(Debug, Default)]
struct Flap {
    /// Degraded or not, oldest first, at most [`FLAP_RESULTS`].
    history: VecDeque<bool>,
    /// Completed runs of the subject's checks at the last evaluation.
    runs: u64,
    /// Since when it flaps (the notice's id).
    since: Option<Timestamp>,
    /// An alert notified before the flapping whose subject recovered while
    /// flapping: resolved when it settles.
    stash: Option<Arc<Alert>>,
}

impl Flap {
    fn push(&mut self, degraded: bool) {
        if self.history.len() == FLAP_RESULTS {
            self.history.pop_front();
        }
        self.history.push_back(degraded);
    }
}

/// Nagios' weighted percent state change: 20 change slots between 21
/// results, weighted 0.8 (oldest) to 1.2 (newest), over 20.
pub fn percent_state_change(history: impl IntoIterator<Item = bool>) -> f64 {
    let h: Vec<bool> = history.into_iter().collect();
    let slots = FLAP_RESULTS - 1;
    let changes = h.len().saturating_sub(1).min(slots);
    let skip = h.len().saturating_sub(changes + 1);
    let h = &h[skip..];
    let mut total = 0.0;
    for k in 0..changes {
        if h[k] != h[k + 1] {
            let slot = k + (slots - changes);
            total += 0.8 + 0.4 * slot as f64 / (slots - 1) as f64;
        }
    }
    total / slots as f64 * 100.0
}

/// One degraded subject: pending, held, or firing.
#[derive(Debug)]
struct Track {
    degraded_at: Instant,
    started_at: Timestamp,
    /// Upstream results must be at least this recent before the alert fires.
    fresh_after: Instant,
    /// Set when the subject stopped being impacted: its own degraded checks
    /// must confirm the failure with results at least this recent.
    own_fresh_after: Option<Instant>,
    impacted: bool,
    hold: Option<Instant>,
    firing: Option<Firing>,
}

#[derive(Debug)]
struct Firing {
    alert: Arc<Alert>,
    notified: Option<Notified>,
}

#[derive(Debug)]
struct Notified {
    severity: Severity,
    /// Every impact and root cause told so far.
    told: BTreeSet<String>,
    rev: u32,
}

/// Where a subject sits in the snapshot.
#[derive(Debug, Clone, Copy)]
enum Index {
    Component(usize),
    Group(usize),
    System,
}

#[derive(Debug, Clone, Copy)]
struct Cond {
    index: Index,
    status: Status,
    impacted: bool,
}

fn degraded(status: Option<Status>) -> bool {
    matches!(status, Some(Status::Warn | Status::Fail))
}

/// Whether a transition to `status` ends an alert: only `pass` does
/// (`unknown` says nothing about the outage).
fn recovers(status: Status) -> bool {
    status == Status::Pass
}

impl Evaluator {
    /// An evaluator with no alerts.
    pub fn new(settings: Settings) -> Self {
        Evaluator {
            settings,
            ..Evaluator::default()
        }
    }

    /// Replaces the settings (reload); alert state is kept.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Subjects with an alert that fired (notified or muted), for tests and status pages.
    pub fn firing(&self) -> Vec<Arc<Alert>> {
        self.tracks
            .values()
            .filter_map(|t| t.firing.as_ref().map(|f| f.alert.clone()))
            .collect()
    }

    /// Notes one event of the transition log. Call for every event up to
    /// the `seq` of the snapshot passed to the next [`evaluate`](Self::evaluate),
    /// so that a recovery between two snapshots is not missed.
    pub fn observe(&mut self, event: &Event) {
        let Change::Status { to, .. } = &event.change else {
            return;
        };
        let subject = match &event.subject {
            vitalis_core::Subject::Component { id } => Subject::Component(id.clone()),
            vitalis_core::Subject::Group { id } => Subject::Group(id.clone()),
            vitalis_core::Subject::System => Subject::System,
            vitalis_core::Subject::Check { .. } => return,
        };
        self.transitions.entry(subject).or_default().push(*to);
    }

    /// Decides from `snap` (taken at `now` on the engine's clock; `wall`
    /// is the wall time for maintenance windows and timestamps).
    pub fn evaluate(&mut self, snap: &Snapshot, now: Instant, wall: Timestamp) -> Evaluation {
        let mut out = Evaluation::default();
        let current = conditions(snap);
        let transitions = std::mem::take(&mut self.transitions);
        // The status each subject recovered to in between, if it did.
        let recovered: HashMap<&Subject, Status> = transitions
            .iter()
            .filter_map(|(s, ts)| Some((s, *ts.iter().rev().find(|t| recovers(**t))?)))
            .collect();
        let settled = self.detect_flapping(snap, &current, &transitions, wall, &mut out);

        // Ended: recovered (now, or in between), or removed. An `unknown`
        // subject (no trustworthy result yet, e.g. just replaced by a
        // reload) neither ends its alert nor raises one.
        let ended: Vec<Subject> = self
            .tracks
            .keys()
            .filter(|s| {
                recovered.contains_key(s)
                    || !current.contains_key(*s)
                        && current_status(snap, s) != Some(Some(Status::Unknown))
            })
            .cloned()
            .collect();
        for subject in ended {
            let track = self.tracks.remove(&subject).expect("listed above");
            let Some(Firing {
                alert,
                notified: Some(_),
            }) = track.firing
            else {
                continue; // never sent: nothing to resolve
            };
            if let Some(flap) = self.flaps.get_mut(&subject)
                && flap.since.is_some()
            {
                // Flapping: resolved (or continued) once it settles.
                flap.stash = Some(alert);
                continue;
            }
            out.notifications.push(resolution(
                &alert,
                recovered.get(&subject).copied(),
                current_status(snap, &subject),
                wall,
            ));
        }
        // Settled with an alert that recovered while flapping: resolve it now.
        for subject in settled {
            if current.contains_key(&subject) {
                continue; // degraded again: its alert goes on (same id)
            }
            let stash = self.flaps.get_mut(&subject).and_then(|f| f.stash.take());
            if let Some(alert) = stash {
                out.notifications.push(resolution(
                    &alert,
                    None,
                    current_status(snap, &subject),
                    wall,
                ));
            }
        }

        // Components and redundancy sets first: the system waits on their holds.
        let mut holding = false;
        for (subject, cond) in &current {
            if matches!(subject, Subject::System) {
                continue;
            }
            holding |= self.step(snap, subject, *cond, now, wall, false, &mut out);
        }
        if let Some(cond) = current.get(&Subject::System) {
            self.step(snap, &Subject::System, *cond, now, wall, holding, &mut out);
        }
        out.refresh.sort_unstable();
        out.refresh.dedup();
        out
    }

    /// Feeds each subject's new results to its flap detector; sends the
    /// `flapping` and `settled` notices. Returns the subjects that settled.
    fn detect_flapping(
        &mut self,
        snap: &Snapshot,
        current: &BTreeMap<Subject, Cond>,
        transitions: &HashMap<Subject, Vec<Status>>,
        wall: Timestamp,
        out: &mut Evaluation,
    ) -> Vec<Subject> {
        let topo = &snap.topology;
        let runs_of = |c: usize| -> u64 {
            topo.components[c]
                .checks
                .clone()
                .map(|k| snap.checks[k].runs)
                .sum()
        };
        let mut subjects: Vec<(Subject, Index, u64)> = Vec::new();
        for (i, node) in topo.components.iter().enumerate() {
            if !node
                .group
                .is_some_and(|g| topo.groups[g].is_redundancy_set())
            {
                subjects.push((
                    Subject::Component(node.info.id.clone()),
                    Index::Component(i),
                    runs_of(i),
                ));
            }
        }
        for (g, group) in topo.groups.iter().enumerate() {
            if group.is_redundancy_set() {
                let runs = group.members.iter().map(|&m| runs_of(m)).sum();
                subjects.push((Subject::Group(group.id.clone()), Index::Group(g), runs));
            }
        }
        let all_runs = snap.checks.iter().map(|c| c.runs).sum();
        subjects.push((Subject::System, Index::System, all_runs));

        let mut settled = Vec::new();
        let live: HashSet<&Subject> = subjects.iter().map(|(s, _, _)| s).collect();
        // A removed subject's alert that recovered while flapping was sent:
        // its resolution goes now, not never.
        for (subject, flap) in &mut self.flaps {
            if !live.contains(subject)
                && let Some(alert) = flap.stash.take()
            {
                out.notifications.push(resolution(&alert, None, None, wall));
            }
        }
        self.flaps.retain(|s, _| live.contains(s));
        // Components registered and removed at run time must not pile up.
        self.last_start.retain(|s, _| live.contains(s));
        let (high, low) = (self.settings.flap_high, self.settings.flap_low);
        for (subject, index, runs) in &subjects {
            let now_degraded = current.contains_key(subject);
            let flap = self.flaps.entry(subject.clone()).or_default();
            let seen = transitions
                .get(subject)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if !seen.is_empty() {
                for t in seen {
                    flap.push(degraded(Some(*t)));
                }
            } else if *runs != flap.runs {
                flap.push(now_degraded);
            }
            flap.runs = *runs;
            let percent = percent_state_change(flap.history.iter().copied());
            let state = match flap.since {
                None if percent >= high => {
                    flap.since = Some(wall);
                    State::Flapping
                }
                Some(_) if percent < low => State::Settled,
                _ => continue,
            };
            let since = flap.since.unwrap_or(wall);
            if state == State::Settled {
                flap.since = None;
                settled.push(subject.clone());
            }
            let status = current_status(snap, subject)
                .flatten()
                .unwrap_or(Status::Unknown);
            let cond = current.get(subject).copied().unwrap_or(Cond {
                index: *index,
                status,
                impacted: false,
            });
            let mut alert = build_alert(snap, subject, cond, since);
            alert.id = format!("{}:flap", alert.id);
            alert.summary = match state {
                State::Flapping => format!(
                    "{} is flapping ({percent:.0}% state change over its last {} results): its notifications pause until it settles",
                    title(&alert),
                    flap.history.len()
                ),
                _ => format!(
                    "{} stopped flapping (now {status}): notifications resume",
                    title(&alert)
                ),
            };
            if state == State::Settled {
                alert.ended_at = Some(wall);
            }
            let mut n = Notification::new(state, 0, Arc::new(alert));
            n.flap_percent = Some(percent);
            out.notifications.push(n);
        }
        settled
    }

    /// Advances one degraded subject; returns whether it is held waiting for
    /// fresh results.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        snap: &Snapshot,
        subject: &Subject,
        cond: Cond,
        now: Instant,
        wall: Timestamp,
        others_holding: bool,
        out: &mut Evaluation,
    ) -> bool {
        let settings = &self.settings;
        let last_start = &mut self.last_start;
        let flap = self.flaps.get_mut(subject);
        let flapping = flap.as_ref().is_some_and(|f| f.since.is_some());
        let stash = if self.tracks.contains_key(subject) {
            None
        } else {
            flap.and_then(|f| f.stash.take())
        };
        let track = self.tracks.entry(subject.clone()).or_insert_with(|| Track {
            degraded_at: now,
            started_at: unique_start(
                last_start,
                subject,
                started_at(snap, cond.index).unwrap_or(wall),
            ),
            fresh_after: failure_seen_at(snap, cond.index).unwrap_or(now),
            own_fresh_after: None,
            impacted: false,
            hold: None,
            firing: None,
        });
        if let Some(alert) = stash {
            // Degraded again after recovering while flapping: the alert
            // notified before goes on (same id); no new firing.
            track.started_at = alert.started_at;
            track.firing = Some(Firing {
                notified: Some(Notified::of(&alert)),
                alert,
            });
        }
        if let Some(firing) = &mut track.firing {
            if cond.impacted {
                return false; // a symptom now: no updates (it resolves when it recovers)
            }
            let mut alert = build_alert(snap, subject, cond, track.started_at);
            alert.id = firing.alert.id.clone();
            let alert = Arc::new(alert);
            let muted = flapping || muted(settings, &alert, wall);
            firing.alert = alert.clone();
            match &mut firing.notified {
                None if !muted => {
                    firing.notified = Some(Notified::of(&alert));
                    out.notifications
                        .push(Notification::new(State::Firing, 0, alert));
                }
                Some(n) if !muted && n.changed(&alert) => {
                    n.rev += 1;
                    n.severity = alert.severity;
                    n.told.extend(told(&alert));
                    out.notifications
                        .push(Notification::new(State::Update, n.rev, alert));
                }
                _ => {}
            }
            return false;
        }
        // Seen as a symptom while waiting out `for`: it must confirm with
        // fresh results of its own if its root cause recovers first.
        track.impacted |= cond.impacted;
        let due = track.degraded_at + settings.for_duration;
        if now < due {
            out.wake(due);
            return false;
        }
        if cond.impacted {
            track.impacted = true;
            track.hold = None;
            return false;
        }
        if track.impacted {
            // Its root cause recovered (or moved): confirm with fresh results.
            track.impacted = false;
            track.hold = None;
            track.own_fresh_after = Some(latest_upstream_result(snap, cond.index).unwrap_or(now));
        }
        let waiting = match cond.index {
            Index::System => {
                if others_holding {
                    vec![(usize::MAX, settings.root_cause_wait)]
                } else {
                    Vec::new()
                }
            }
            _ => waiting_checks(snap, cond.index, track),
        };
        if !waiting.is_empty() {
            let deadline = *track.hold.get_or_insert_with(|| {
                let longest = waiting.iter().map(|(_, d)| *d).max().unwrap_or_default();
                out.refresh
                    .extend(waiting.iter().map(|(k, _)| *k).filter(|&k| k != usize::MAX));
                now + longest.min(settings.root_cause_wait)
            });
            if now < deadline {
                out.wake(deadline);
                return true;
            }
            tracing::debug!(
                target: "vitalis::alert",
                subject = %subject,
                "fresh results of its dependencies did not arrive within the wait; alerting on what is known"
            );
        }
        track.hold = None;
        let alert = Arc::new(build_alert(snap, subject, cond, track.started_at));
        let notified = (!flapping && !muted(settings, &alert, wall)).then(|| {
            out.notifications
                .push(Notification::new(State::Firing, 0, alert.clone()));
            Notified::of(&alert)
        });
        if notified.is_none() {
            tracing::info!(target: "vitalis::alert", subject = %subject, alert = %alert.id, "alert muted (maintenance window or flapping)");
        }
        track.firing = Some(Firing { alert, notified });
        false
    }
}

/// The resolution of `alert`: recovered to `between` (seen in the log) or
/// to its current status, or removed when it no longer exists.
fn resolution(
    alert: &Arc<Alert>,
    between: Option<Status>,
    current: Option<Option<Status>>,
    wall: Timestamp,
) -> Notification {
    let (status, resolution) = match (between, current) {
        (Some(to), _) => (to, Resolution::Recovered),
        (None, Some(s)) => (s.unwrap_or(Status::Unknown), Resolution::Recovered),
        (None, None) => (alert.status, Resolution::Removed),
    };
    let mut resolved = Alert::clone(alert);
    resolved.status = status;
    resolved.ended_at = Some(wall);
    resolved.summary = match resolution {
        Resolution::Recovered => format!("{} recovered: now {status}", title(alert)),
        Resolution::Removed => format!("{} was removed", title(alert)),
    };
    let mut n = Notification::new(State::Resolved, 0, Arc::new(resolved));
    n.resolution = Some(resolution);
    n
}

/// `started`, moved forward by whole milliseconds past the previous alert's
/// start on the same subject.
fn unique_start(
    last: &mut HashMap<Subject, i64>,
    subject: &Subject,
    started: Timestamp,
) -> Timestamp {
    let mut ms = started.as_millisecond();
    if let Some(&prev) = last.get(subject)
        && ms <= prev
    {
        ms = prev + 1;
    }
    last.insert(subject.clone(), ms);
    Timestamp::from_millisecond(ms).unwrap_or(started)
}

impl Notified {
    fn of(alert: &Alert) -> Self {
        Notified {
            severity: alert.severity,
            told: told(alert).collect(),
            rev: 0,
        }
    }

    fn changed(&self, alert: &Alert) -> bool {
        alert.severity != self.severity || told(alert).any(|x| !self.told.contains(&x))
    }
}

fn told(alert: &Alert) -> impl Iterator<Item = String> + '_ {
    alert.impacts.iter().chain(&alert.root_causes).cloned()
}

fn muted(settings: &Settings, alert: &Alert, wall: Timestamp) -> bool {
    settings.maintenance.iter().any(|m| {
        m.window.contains(wall)
            && m.matcher.matches(
                alert.group.as_deref(),
                alert.component.as_deref(),
                alert.severity.to_config(),
                &alert.labels,
            )
    })
}

/// Every degraded subject that may alert, with its status and whether a
/// root cause elsewhere suppresses it.
fn conditions(snap: &Snapshot) -> BTreeMap<Subject, Cond> {
    let agg = snap.view(View::All);
    let topo = &snap.topology;
    let mut out = BTreeMap::new();
    for (i, node) in topo.components.iter().enumerate() {
        if node
            .group
            .is_some_and(|g| topo.groups[g].is_redundancy_set())
        {
            continue;
        }
        if let Some(status) = agg.components[i].filter(|s| degraded(Some(*s))) {
            out.insert(
                Subject::Component(node.info.id.clone()),
                Cond {
                    index: Index::Component(i),
                    status,
                    impacted: !agg.impacted_by[i].is_empty(),
                },
            );
        }
    }
    for (g, group) in topo.groups.iter().enumerate() {
        if !group.is_redundancy_set() {
            continue;
        }
        if let Some(status) = agg.groups[g].filter(|s| degraded(Some(*s))) {
            let down = down_members(snap, g);
            out.insert(
                Subject::Group(group.id.clone()),
                Cond {
                    index: Index::Group(g),
                    status,
                    impacted: !down.is_empty()
                        && down.iter().all(|&m| !agg.impacted_by[m].is_empty()),
                },
            );
        }
    }
    if degraded(Some(agg.system)) {
        out.insert(
            Subject::System,
            Cond {
                index: Index::System,
                status: agg.system,
                impacted: false,
            },
        );
    }
    out
}

/// The status of `subject` now: `None` when it no longer exists,
/// `Some(None)` when it exists with nothing counted.
fn current_status(snap: &Snapshot, subject: &Subject) -> Option<Option<Status>> {
    let agg = snap.view(View::All);
    match subject {
        Subject::Component(id) => snap.topology.component(id).map(|i| agg.components[i]),
        Subject::Group(id) => snap.topology.group(id).map(|g| agg.groups[g]),
        Subject::System => Some(Some(agg.system)),
    }
}

fn down_members(snap: &Snapshot, g: usize) -> Vec<usize> {
    let agg = snap.view(View::All);
    snap.topology.groups[g]
        .members
        .iter()
        .copied()
        .filter(|&m| agg.components[m] == Some(Status::Fail))
        .collect()
}

/// Checks of component `i` whose counted status (capped by impact) is
/// `warn` or `fail`, with that status.
fn degrading_checks(snap: &Snapshot, i: usize) -> impl Iterator<Item = (usize, Status)> + '_ {
    let topo = &snap.topology;
    topo.components[i].checks.clone().filter_map(move |k| {
        let info = &topo.checks[k];
        let s = info
            .impact
            .cap(snap.checks[k].counted(View::All, info.level)?);
        degraded(Some(s)).then_some((k, s))
    })
}

/// The components a subject is "about": itself, or a set's down members.
fn own_components(snap: &Snapshot, index: Index) -> Vec<usize> {
    match index {
        Index::Component(i) => vec![i],
        Index::Group(g) => {
            let down = down_members(snap, g);
            if down.is_empty() {
                snap.topology.groups[g].members.clone()
            } else {
                down
            }
        }
        Index::System => Vec::new(),
    }
}

/// When the subject last changed status (wall clock).
fn started_at(snap: &Snapshot, index: Index) -> Option<Timestamp> {
    match index {
        Index::Component(i) => snap.components.get(i).map(|s| s.since),
        Index::Group(g) => snap.groups.get(g).map(|s| s.since),
        Index::System => Some(snap.system_since),
    }
}

/// When the results that degraded the subject completed (engine clock).
fn failure_seen_at(snap: &Snapshot, index: Index) -> Option<Instant> {
    own_components(snap, index)
        .into_iter()
        .flat_map(|i| {
            degrading_checks(snap, i)
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        })
        .filter_map(|k| snap.checks[k].completed_at)
        .max()
}

/// Every component the subject depends on, transitively (groups stand for
/// their members), excluding the subject's own components.
fn upstream(snap: &Snapshot, index: Index) -> Vec<usize> {
    let topo = &snap.topology;
    let own: Vec<usize> = match index {
        Index::Component(i) => vec![i],
        Index::Group(g) => topo.groups[g].members.clone(),
        Index::System => return Vec::new(),
    };
    let mut seen = vec![false; topo.components.len()];
    for &i in &own {
        seen[i] = true;
    }
    let mut stack: Vec<usize> = Vec::new();
    let mut found = Vec::new();
    let push = |n: NodeRef, stack: &mut Vec<usize>| match n {
        NodeRef::Component(c) => stack.push(c),
        NodeRef::Group(g) => stack.extend(topo.groups[g].members.iter().copied()),
    };
    for &i in &own {
        for &d in &topo.components[i].deps {
            push(d, &mut stack);
        }
    }
    while let Some(c) = stack.pop() {
        if std::mem::replace(&mut seen[c], true) {
            continue;
        }
        found.push(c);
        for &d in &topo.components[c].deps {
            push(d, &mut stack);
        }
    }
    found
}

fn latest_upstream_result(snap: &Snapshot, index: Index) -> Option<Instant> {
    upstream(snap, index)
        .into_iter()
        .flat_map(|c| snap.topology.components[c].checks.clone())
        .filter_map(|k| snap.checks[k].completed_at)
        .max()
}

/// How long until check `c` can be expected to have a new result once it is
/// re-run ([`Engine::rerun`](vitalis_core::Engine::rerun) starts it at once,
/// or shares the run in flight), or `None` when it does not run (outside its
/// active windows).
fn wait_bound(c: &CheckState) -> Option<Duration> {
    c.active.then(|| c.timeout + PUBLISH_MARGIN)
}

/// Whether the check's latest result completed at or after `after`. No
/// slack: a dependency that passed even a millisecond before the failure
/// was seen may have failed since, so it is waited for.
fn is_fresh(c: &CheckState, after: Instant) -> bool {
    c.completed_at.is_some_and(|t| t >= after)
}

/// The checks a candidate alert still waits for, with how long each may take.
fn waiting_checks(snap: &Snapshot, index: Index, track: &Track) -> Vec<(usize, Duration)> {
    let topo = &snap.topology;
    let mut out = Vec::new();
    for c in upstream(snap, index) {
        for k in topo.components[c].checks.clone() {
            let state = &snap.checks[k];
            if is_fresh(state, track.fresh_after) {
                continue;
            }
            if let Some(d) = wait_bound(state) {
                out.push((k, d));
            }
        }
    }
    if let Some(after) = track.own_fresh_after {
        for c in own_components(snap, index) {
            for (k, _) in degrading_checks(snap, c) {
                let state = &snap.checks[k];
                if is_fresh(state, after) {
                    continue;
                }
                if let Some(d) = wait_bound(state) {
                    out.push((k, d));
                }
            }
        }
    }
    out
}

fn ids(snap: &Snapshot, list: impl IntoIterator<Item = usize>) -> Vec<String> {
    let mut v: Vec<String> = list
        .into_iter()
        .map(|i| snap.topology.components[i].info.id.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn check_summaries(snap: &Snapshot, components: &[usize]) -> Vec<CheckSummary> {
    let topo = &snap.topology;
    components
        .iter()
        .flat_map(|&i| degrading_checks(snap, i).collect::<Vec<_>>())
        .map(|(k, _)| {
            let state = &snap.checks[k];
            let info = &topo.checks[k];
            let error = if state.stale || state.status == Status::Unknown {
                Some(match &state.result {
                    Some(r) => format!("no fresh result (last: {})", r.time),
                    None => "no result yet".to_string(),
                })
            } else {
                state
                    .result
                    .as_ref()
                    .map(|r| r.error.clone().unwrap_or_else(|| r.output.clone()))
            };
            CheckSummary {
                component: topo.components[info.component].info.id.to_string(),
                check: info.name.to_string(),
                status: state.status,
                error,
            }
        })
        .collect()
}

/// How a summary names the alert's subject.
fn title(alert: &Alert) -> String {
    match &alert.subject {
        Subject::Component(id) if alert.name != **id => format!("{} ({id})", alert.name),
        Subject::Component(id) => id.to_string(),
        Subject::Group(id) => format!("redundancy set {id}"),
        Subject::System => "the system".to_string(),
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Fail => "failing",
        Status::Warn => "degraded",
        Status::Pass => "passing",
        Status::Unknown => "unknown",
    }
}

/// The alert for a degraded subject as the snapshot shows it now.
fn build_alert(snap: &Snapshot, subject: &Subject, cond: Cond, started: Timestamp) -> Alert {
    let topo = &snap.topology;
    let agg = snap.view(View::All);
    let id = alert_id(subject, started);
    match cond.index {
        Index::Component(i) => {
            let node = &topo.components[i];
            let info = &node.info;
            let check_override = degrading_checks(snap, i)
                .filter(|(_, s)| *s == cond.status)
                .filter_map(|(k, _)| topo.checks[k].severity.as_deref().and_then(Severity::parse))
                .max();
            let severity = check_override
                .or_else(|| info.severity.as_deref().and_then(Severity::parse))
                .unwrap_or(if cond.status == Status::Fail && info.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                });
            let checks = check_summaries(snap, &[i]);
            let impacts = ids(snap, agg.impacts(i));
            let mut summary = if info.name == *info.id {
                format!("{} is {}", info.id, word(cond.status))
            } else {
                format!("{} ({}) is {}", info.name, info.id, word(cond.status))
            };
            if let Some(c) = checks.first() {
                summary.push_str(&format!(
                    ": {}: {}",
                    c.check,
                    c.error.as_deref().unwrap_or(c.status.as_str())
                ));
            }
            if !impacts.is_empty() {
                summary.push_str(&format!("; impacts {}", impacts.join(", ")));
            }
            Alert {
                id,
                subject: subject.clone(),
                name: info.name.clone(),
                group: info.group.as_deref().map(str::to_string),
                component: Some(info.id.to_string()),
                status: cond.status,
                severity,
                summary,
                root_causes: vec![info.id.to_string()],
                impacts,
                checks,
                labels: info.labels.clone(),
                owner: info.owner.clone(),
                runbook_url: info.runbook_url.clone(),
                started_at: started,
                ended_at: None,
            }
        }
        Index::Group(g) => {
            let group = &topo.groups[g];
            let severity = group
                .severity
                .as_deref()
                .and_then(Severity::parse)
                .unwrap_or(if cond.status == Status::Fail && group.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                });
            let down = down_members(snap, g);
            let up = group
                .members
                .iter()
                .filter(|&&m| agg.components[m].is_some_and(Status::is_up))
                .count();
            let impacts = ids(snap, down.iter().flat_map(|&m| agg.impacts(m)));
            let mut summary = format!(
                "redundancy set {} is {}: {up} of {} members up (min_passing {})",
                group.id,
                word(cond.status),
                group.members.len(),
                group.min_passing.unwrap_or(1)
            );
            let root_causes = ids(snap, down.iter().copied());
            if !root_causes.is_empty() {
                summary.push_str(&format!("; down: {}", root_causes.join(", ")));
            }
            if !impacts.is_empty() {
                summary.push_str(&format!("; impacts {}", impacts.join(", ")));
            }
            Alert {
                id,
                subject: subject.clone(),
                name: group.id.to_string(),
                group: Some(group.id.to_string()),
                component: None,
                status: cond.status,
                severity,
                summary,
                root_causes,
                impacts,
                checks: check_summaries(snap, &own_components(snap, cond.index)),
                labels: BTreeMap::new(),
                owner: None,
                runbook_url: None,
                started_at: started,
                ended_at: None,
            }
        }
        Index::System => {
            // Every degraded component nothing else explains (sets stand for their members).
            let roots: Vec<usize> = (0..topo.components.len())
                .filter(|&i| degraded(agg.components[i]) && agg.impacted_by[i].is_empty())
                .collect();
            let root_causes = ids(snap, roots.iter().copied());
            let severity = if cond.status == Status::Fail {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let mut summary = format!("the system is {}", word(cond.status));
            if !root_causes.is_empty() {
                summary.push_str(&format!("; root causes: {}", root_causes.join(", ")));
            }
            Alert {
                id,
                subject: Subject::System,
                name: "system".into(),
                group: None,
                component: None,
                status: cond.status,
                severity,
                summary,
                root_causes,
                impacts: Vec::new(),
                checks: Vec::new(),
                labels: BTreeMap::new(),
                owner: None,
                runbook_url: None,
                started_at: started,
                ended_at: None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
