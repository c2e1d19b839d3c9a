//! The engine: schedules checks, folds their results into state, publishes
//! snapshots and events.
//!
//! Data flows one way. Each check has its own task ([`runner`]) that runs it
//! on its interval under its timeout and circuit breaker; results go to one
//! aggregator task ([`world`]) that owns all mutable state, applies damping,
//! staleness, grace and aggregation, appends every transition to the event
//! log, and publishes an immutable [`Snapshot`] (coalesced to at most one
//! swap per `publish_interval`). Readers only load the snapshot.

mod lanes;
mod runner;
mod tally;
mod views;
mod world;

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cancel::CancelToken;
use arc_swap::ArcSwap;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::events::{EventLog, EventReader};
use crate::model::{CheckResult, Level};
use crate::snapshot::{CheckState, Snapshot};
use crate::spec::{BreakerSettings, CheckSpec, Component, Defaults, Group};
use crate::topology::RegistryError;
use crate::window::ActiveWindow;

pub(crate) use runner::humanize;

/// Receives every completed run, on the aggregator task: keep it quick
/// (update a metric, queue a write). This is the hook for metrics and history.
pub trait Observer: Send + Sync + 'static {
    /// A run completed (or the engine recorded a synthetic result for a run
    /// that blocked past its timeout).
    fn on_run(&self, run: &RunRecord<'_>);
}

/// What an [`Observer`] learns about one run.
#[derive(Debug)]
pub struct RunRecord<'a> {
    /// Component id.
    pub component: &'a str,
    /// Check name.
    pub check: &'a str,
    /// Probe type.
    pub kind: &'a str,
    /// The component's group.
    pub group: Option<&'a str>,
    /// The check's level.
    pub level: Level,
    /// Whether the component is critical.
    pub critical: bool,
    /// The result.
    pub result: &'a Arc<CheckResult>,
    /// How late the run started against its schedule.
    pub lag: Duration,
}

/// Where checks run.
#[derive(Debug, Clone, Default)]
pub enum CheckRuntime {
    /// A runtime of their own with this many worker threads (the default: 2),
    /// so a check that blocks a thread cannot slow the servers.
    Dedicated(usize),
    /// An existing runtime (tests with paused time use the current one).
    Handle(Handle),
    /// The runtime `start` is called on.
    #[default]
    Current,
}

/// Settings of one check after defaults were applied.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) grace: Duration,
    pub(crate) cache_ttl: Duration,
    pub(crate) on_demand: bool,
    pub(crate) active: Vec<ActiveWindow>,
    pub(crate) breaker: BreakerSettings,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
}

impl Resolved {
    pub(crate) fn new(spec: &CheckSpec, d: &Defaults) -> Self {
        let s = &spec.settings;
        let interval = s.interval.unwrap_or(if spec.level == Level::Deep {
            d.deep_interval
        } else {
            d.interval
        });
        let timeout = s.timeout.unwrap_or(d.timeout);
        let derived = interval * 2 + timeout;
        Resolved {
            interval,
            timeout,
            stale_after: s.stale_after.unwrap_or(derived),
            grace: s.grace.unwrap_or(derived),
            cache_ttl: s.cache_ttl.unwrap_or(d.cache_ttl),
            on_demand: s.on_demand,
            active: s.active.clone(),
            breaker: s.breaker.unwrap_or(d.breaker),
            failure_threshold: s.failure_threshold.unwrap_or(d.failure_threshold),
            success_threshold: s.success_threshold.unwrap_or(d.success_threshold),
        }
    }
}

/// What a check's task and the rest of the engine share about it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: u64,
    /// The mailbox of the scheduler shard that runs this check.
    inbox: Arc<runner::Inbox>,
    /// [`IDLE`], [`REQUESTED`] or [`RUNNING`]: makes requested runs single-flight.
    pub(crate) state: AtomicU8,
    pub(crate) forced: AtomicBool,
    pub(crate) urgent: AtomicBool,
    pub(crate) active: AtomicBool,
    /// Start of the run in flight, in µs since `base` plus one; 0 when idle.
    in_flight_since: AtomicU64,
    /// The check's index in the aggregator's arrays (set at each registry
    /// change): lets a result find its record without a map lookup.
    pub(crate) index: AtomicUsize,
    pub(crate) base: Instant,
}

impl Slot {
    fn new(key: u64, base: Instant, active: bool, inbox: Arc<runner::Inbox>) -> Self {
        Slot {
            key,
            inbox,
            state: AtomicU8::new(IDLE),
            forced: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            active: AtomicBool::new(active),
            in_flight_since: AtomicU64::new(0),
            index: AtomicUsize::new(usize::MAX),
            base,
        }
    }

    /// Stops scheduling the check (removal, replacement).
    pub(crate) fn stop(&self) {
        self.inbox.push(runner::Command::Stop(self.key));
    }

    /// Marks a run in flight since `since`.
    pub(crate) fn set_in_flight(&self, since: Instant) {
        let v = since.saturating_duration_since(self.base).as_micros() as u64 + 1;
        self.in_flight_since.store(v, Ordering::Release);
    }

    /// Marks the check idle (a store only when it was marked in flight).
    pub(crate) fn clear_in_flight(&self) {
        if self.in_flight_since.load(Ordering::Acquire) != 0 {
            self.in_flight_since.store(0, Ordering::Release);
        }
    }

    pub(crate) fn in_flight_since(&self) -> Option<Instant> {
        match self.in_flight_since.load(Ordering::Acquire) {
            0 => None,
            v => Some(self.base + Duration::from_micros(v - 1)),
        }
    }

    /// Asks the task to run now (a refresh or an on-demand read). Single
    /// flight: a request while a run is requested or in progress shares it.
    /// `urgent` asks for the result to be published without coalescing.
    pub(crate) fn request_run(&self, forced: bool, urgent: bool) {
        if urgent {
            self.urgent.store(true, Ordering::Release);
        }
        if self
            .state
            .compare_exchange(IDLE, REQUESTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if forced {
                self.forced.store(true, Ordering::Release);
            }
            self.inbox.push(runner::Command::Request(self.key));
        }
    }
}

/// No run requested or in progress.
pub(crate) const IDLE: u8 = 0;
/// A run was requested and has not started.
pub(crate) const REQUESTED: u8 = 1;
/// A run is in progress.
pub(crate) const RUNNING: u8 = 2;

/// Concurrency limits: global and per target host.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) global: Option<Arc<Semaphore>>,
    per_host: Option<usize>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limits {
    pub(crate) fn for_host(&self, host: &str) -> Option<(String, Arc<Semaphore>)> {
        let n = self.per_host?;
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let sem = hosts
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(n)));
        Some((host.to_string(), sem.clone()))
    }
}

/// Messages to the aggregator.
pub(crate) enum Msg {
    Finished(Vec<runner::Finished>),
    Apply(Changes, oneshot::Sender<Result<(), RegistryError>>),
}

/// A batch of run-time changes, applied atomically: the result is validated
/// as a whole, and a bad batch changes nothing.
#[derive(Debug, Default)]
pub struct Changes {
    /// Replaces the declared groups when set.
    pub groups: Option<Vec<Group>>,
    /// Components to add, or to replace by id (their checks restart; others keep their state).
    pub upsert: Vec<Component>,
    /// Component ids to remove.
    pub remove: Vec<String>,
}

/// Hashes the engine's sequential check keys with one multiplication
/// (Fibonacci hashing): the hot paths look one up per result.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Counters the engine keeps about itself (for `/livez` and metrics).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    last_tick_us: AtomicU64,
    max_lag_us: AtomicU64,
}

/// What a refresh returns.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The newest snapshot when the refresh returned.
    pub snapshot: Arc<Snapshot>,
    /// Checks (by index) re-run but not finished by the deadline: their
    /// results are older than wanted and should be marked stale.
    pub running: Vec<usize>,
    /// How many checks were re-run (for [`Engine::refresh`]: how many were
    /// older than `cache_ttl` when it began).
    pub expired: usize,
}

struct Shared {
    current: ArcSwap<Snapshot>,
    published: watch::Sender<u64>,
    events: Arc<EventLog>,
    stats: Stats,
    base: Instant,
}

struct Inner {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    cancel: CancelToken,
    _runtime: Option<OwnedRuntime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A runtime the engine owns; shut down without blocking when dropped.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A running engine. Cheap to clone; the engine stops when the last clone is
/// dropped or [`Engine::shutdown`] is called.
///
/// ```
/// use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome, Status};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), vitalis_core::RegistryError> {
/// let engine = Engine::builder()
///     .component(Component::new("risk-engine").group("risk").critical(true).check(
///         CheckSpec::ready("limits-enforced", check_fn(|_cx| async move {
///             let rejected = true; // the service's own dry-run of an over-limit canary order
///             Outcome::pass_if(rejected, "over-limit canary rejected")
///         })),
///     ))
///     .start()?;
/// let snapshot = engine.snapshot(); // O(1), never waits on a check
/// assert_eq!(snapshot.topology.components.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    defaults: Defaults,
    groups: Vec<Group>,
    components: Vec<Component>,
    runtime: CheckRuntime,
    max_concurrency: Option<usize>,
    max_concurrency_per_host: Option<usize>,
    publish_interval: Option<Duration>,
    tick: Option<Duration>,
    event_capacity: Option<usize>,
    observers: Vec<Arc<dyn Observer>>,
}

impl EngineBuilder {
    /// Sets the defaults for check settings.
    pub fn defaults(mut self, defaults: Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Declares a group.
    pub fn group(mut self, group: Group) -> Self {
        self.groups.push(group);
        self
    }

    /// Adds a component.
    pub fn component(mut self, component: Component) -> Self {
        self.components.push(component);
        self
    }

    /// Where checks run (default: the runtime `start` is called on).
    pub fn check_runtime(mut self, runtime: CheckRuntime) -> Self {
        self.runtime = runtime;
        self
    }

    /// At most this many runs at once across all checks (default 1024).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// At most this many runs at once against one target host (default unlimited).
    pub fn max_concurrency_per_host(mut self, n: usize) -> Self {
        self.max_concurrency_per_host = Some(n);
        self
    }

    /// The shortest time between two snapshot swaps (default 50 ms). Events
    /// are never coalesced; only snapshot publication is.
    pub fn publish_interval(mut self, d: Duration) -> Self {
        self.publish_interval = Some(d);
        self
    }

    /// How often staleness, grace, windows and blocked runs are evaluated (default 250 ms).
    pub fn tick(mut self, d: Duration) -> Self {
        self.tick = Some(d);
        self
    }

    /// How many events the log holds (default 65 536).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = Some(n);
        self
    }

    /// Adds a receiver of every completed run (history, metrics, ...); each
    /// call adds one more.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the registry and starts the engine on the current tokio
    /// runtime (checks run where [`CheckRuntime`] says).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<Engine, RegistryError> {
        let control = Handle::current();
        let shard_count = match self.runtime {
            CheckRuntime::Dedicated(n) => n.max(1),
            CheckRuntime::Handle(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            CheckRuntime::Current => 1,
        };
        let (owned, checks_on) = match self.runtime {
            CheckRuntime::Current => (None, control.clone()),
            CheckRuntime::Handle(h) => (None, h),
            CheckRuntime::Dedicated(threads) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads.max(1))
                    .thread_name("vitalis-check")
                    .enable_all()
                    .build()
                    .expect("failed to start the check runtime");
                let h = rt.handle().clone();
                (Some(OwnedRuntime(Some(rt))), h)
            }
        };
        let epoch = new_epoch();
        let base = Instant::now();
        let events = Arc::new(EventLog::new(epoch, self.event_capacity.unwrap_or(65_536)));
        let limits = Arc::new(Limits {
            global: Some(Arc::new(Semaphore::new(
                self.max_concurrency.unwrap_or(1024).max(1),
            ))),
            per_host: self.max_concurrency_per_host,
            hosts: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancelToken::new();
        // Scheduler shards: one per check worker thread.
        let shards: Vec<Arc<runner::Inbox>> = (0..shard_count)
            .map(|_| Arc::new(runner::Inbox::default()))
            .collect();
        let lanes = lanes::Lanes::new(checks_on.clone());
        for inbox in &shards {
            let shard = runner::Shard::new(
                inbox.clone(),
                tx.clone(),
                limits.global.clone(),
                lanes.clone(),
                base,
            );
            checks_on.spawn(shard.run());
        }
        let mut world = world::World::new(world::Setup {
            epoch,
            base,
            defaults: self.defaults,
            events: events.clone(),
            limits,
            shards,
            cancel: cancel.clone(),
            observers: self.observers,
        });
        world.apply(Changes {
            groups: Some(self.groups),
            upsert: self.components,
            remove: vec![],
        })?;
        let wall = jiff::Timestamp::now();
        let seq = world.flush_events(wall);
        let first = world.snapshot(seq, wall);
        let shared = Arc::new(Shared {
            current: ArcSwap::from_pointee(first),
            published: watch::Sender::new(0),
            events,
            stats: Stats::default(),
            base,
        });
        let publish_interval = self.publish_interval.unwrap_or(Duration::from_millis(50));
        let tick = self.tick.unwrap_or(Duration::from_millis(250));
        control.spawn(world.run(rx, shared.clone(), publish_interval, tick));
        Ok(Engine {
            inner: Arc::new(Inner {
                shared,
                tx,
                cancel,
                _runtime: owned,
            }),
        })
    }
}

fn new_epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ fastrand::u64(..) >> 16
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The current state: one atomic load, no lock, never waits on a check.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.shared.current.load_full()
    }

    /// The current state, after asking on-demand checks whose result is
    /// older than their `cache_ttl` to run in the background (the answer does
    /// not wait for them). Returns how many were asked.
    pub fn read(&self) -> (Arc<Snapshot>, usize) {
        let snap = self.snapshot();
        let now = Instant::now();
        let mut asked = 0;
        for &k in snap.on_demand.iter() {
            let c = &snap.checks[k];
            if c.active && !c.in_flight && c.is_cache_expired(now) {
                snap.slots[k].request_run(false, false);
                asked += 1;
            }
        }
        (snap, asked)
    }

    /// Re-runs the selected checks whose results are older than their
    /// `cache_ttl` (single flight: a run already in progress is shared, and
    /// concurrent refreshes share runs), forcing a breaker trial, and waits
    /// at most `deadline` for them. Results still running are listed in
    /// [`Refreshed::running`].
    pub async fn refresh(&self, select: impl Fn(usize) -> bool, deadline: Duration) -> Refreshed {
        let now = Instant::now();
        self.run_now(|k, c| select(k) && c.is_cache_expired(now), deadline)
            .await
    }

    /// Re-runs the selected checks whatever the age of their results (single
    /// flight as with [`Engine::refresh`], forcing a breaker trial) and waits
    /// at most `deadline` for them. For a caller that needs results newer
    /// than some event, e.g. alerting confirming a root cause before paging.
    pub async fn rerun(&self, select: impl Fn(usize) -> bool, deadline: Duration) -> Refreshed {
        self.run_now(|k, _| select(k), deadline).await
    }

    async fn run_now(
        &self,
        select: impl Fn(usize, &CheckState) -> bool,
        deadline: Duration,
    ) -> Refreshed {
        let until = Instant::now() + deadline;
        let snap = self.snapshot();
        let mut wanted: Vec<(usize, u64)> = Vec::new();
        for (k, c) in snap.checks.iter().enumerate() {
            if !c.active || !select(k, c) {
                continue;
            }
            snap.slots[k].request_run(true, true);
            wanted.push((k, c.runs + 1));
        }
        let expired = wanted.len();
        let mut published = self.inner.shared.published.subscribe();
        loop {
            let snap = self.snapshot();
            let running: Vec<usize> = wanted
                .iter()
                .filter(|(k, runs)| snap.checks.get(*k).is_some_and(|c| c.runs < *runs))
                .map(|(k, _)| *k)
                .collect();
            if running.is_empty() || Instant::now() >= until {
                return Refreshed {
                    snapshot: snap,
                    running,
                    expired,
                };
            }
            tokio::select! {
                r = published.changed() => if r.is_err() { return Refreshed { snapshot: snap, running, expired } },
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Applies run-time changes (add, replace, remove components; replace
    /// groups). Unchanged components keep their state. Returns once the new
    /// state is published.
    pub async fn apply(&self, changes: Changes) -> Result<(), RegistryError> {
        let (reply, answer) = oneshot::channel();
        if self.inner.tx.send(Msg::Apply(changes, reply)).is_err() {
            return Err(RegistryError::Stopped);
        }
        answer.await.unwrap_or(Err(RegistryError::Stopped))
    }

    /// Adds or replaces one component.
    pub async fn upsert(&self, component: Component) -> Result<(), RegistryError> {
        self.apply(Changes {
            upsert: vec![component],
            ..Changes::default()
        })
        .await
    }

    /// Removes one component.
    pub async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        self.apply(Changes {
            remove: vec![id.to_string()],
            ..Changes::default()
        })
        .await
    }

    /// The event log (for history, alerts, WebSocket, gRPC Watch).
    pub fn events(&self) -> &Arc<EventLog> {
        &self.inner.shared.events
    }

    /// A reader of events after `seq`.
    pub fn subscribe(&self, seq: u64) -> EventReader {
        self.inner.shared.events.reader(seq)
    }

    /// A receiver that changes whenever a snapshot is published.
    pub fn watch_snapshots(&self) -> watch::Receiver<u64> {
        self.inner.shared.published.subscribe()
    }

    /// This instance's epoch.
    pub fn epoch(&self) -> u64 {
        self.inner.shared.events.epoch()
    }

    /// Time since the aggregator last ticked (for `/livez`: is the scheduler alive).
    pub fn since_last_tick(&self) -> Duration {
        let s = &self.inner.shared;
        let last = s.base + Duration::from_micros(s.stats.last_tick_us.load(Ordering::Acquire));
        Instant::now().saturating_duration_since(last)
    }

    /// The largest scheduling lag seen since the last call (how late runs start).
    pub fn take_max_lag(&self) -> Duration {
        Duration::from_micros(self.inner.shared.stats.max_lag_us.swap(0, Ordering::AcqRel))
    }

    /// Stops every check and the aggregator.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

#[cfg(test)]
mod tests;
