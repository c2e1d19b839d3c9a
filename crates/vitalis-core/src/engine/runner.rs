//! The scheduler: a few shard tasks on the check runtime, each owning the
//! checks whose key falls in its shard. A shard keeps one timer (the earliest
//! due time), starts due and requested runs, polls the runs in flight, and
//! sends finished results to the aggregator in batches. No task or timer per
//! check: 10 000 checks cost a few wake-ups per 10 ms scheduling grid slot.
//!
//! Per check the rules are those of SPEC section 1: a run never overlaps the
//! previous one (an abandoned run that has not returned is reported, not
//! piled up), the circuit breaker gates runs, requested runs are single
//! flight.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cancel::CancelToken;
use atomic_waker::AtomicWaker;
use futures_util::future::Either;
use futures_util::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

use super::lanes::{Lanes, Returned};
use super::{IDLE, KeyHasher, Limits, Msg, RUNNING, Resolved, Slot};
use crate::breaker::{Breaker, Circuit};
use crate::check::{BoxFuture, Check, CheckCx};
use crate::model::{CheckResult, Outcome};

/// A finished run, as sent to the aggregator.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: u64,
    /// The check's index in the aggregator's arrays when it finished.
    pub(crate) index: usize,
    pub(crate) result: Arc<CheckResult>,
    /// The circuit breaker after this run.
    pub(crate) circuit: Circuit,
    pub(crate) open_until: Option<Instant>,
    pub(crate) consecutive_failures: u32,
    pub(crate) next_run: Option<Instant>,
    pub(crate) lag: Duration,
    pub(crate) urgent: bool,
}

/// What the engine tells a shard.
pub(crate) enum Command {
    /// Schedule a new check.
    Add(Box<Entry>),
    /// Run a check now (a refresh or an on-demand read).
    Request(u64),
    /// Forget a check (removed or replaced).
    Stop(u64),
}

/// A shard's mailbox: lock held only to push or take the queue.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<Vec<Command>>,
    waker: AtomicWaker,
    closed: AtomicBool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Inbox {
    pub(crate) fn push(&self, command: Command) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(command);
        self.waker.wake();
    }

    /// Ends the shard's task.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Resolves when commands are waiting (true) or the inbox closed (false).
    fn wait(&self) -> impl Future<Output = bool> + '_ {
        std::future::poll_fn(move |cx| {
            let ready = || {
                if self.closed.load(Ordering::Acquire) {
                    Some(false)
                } else if !self
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
                {
                    Some(true)
                } else {
                    None
                }
            };
            if let Some(r) = ready() {
                return Poll::Ready(r);
            }
            self.waker.register(cx.waker());
            ready().map_or(Poll::Pending, Poll::Ready)
        })
    }
}

/// One check as its shard holds it.
pub(crate) struct Entry {
    slot: Arc<Slot>,
    check: Arc<dyn Check>,
    settings: Resolved,
    host: Option<(String, Arc<Semaphore>)>,
    breaker: Breaker,
    /// A run abandoned at its timeout that has not returned yet (it blocks
    /// its thread): no new run starts until it does.
    abandoned: Option<(Returned, Instant)>,
    /// Shared by runs until one is cancelled (at a timeout).
    token: CancelToken,
    due: Instant,
    running: bool,
}

impl Entry {
    pub(crate) fn new(
        slot: Arc<Slot>,
        check: Arc<dyn Check>,
        settings: Resolved,
        limits: &Limits,
        first_delay: Duration,
    ) -> Self {
        let host = check.target_host().and_then(|h| limits.for_host(&h));
        Entry {
            breaker: Breaker::new(settings.breaker),
            due: Instant::now() + first_delay,
            slot,
            check,
            settings,
            host,
            abandoned: None,
            token: CancelToken::new(),
            running: false,
        }
    }
}

/// A run that ended (or was abandoned at its timeout).
struct RunDone {
    key: u64,
    timed_out: bool,
    outcome: Outcome,
    abandoned: Option<Returned>,
    started: Instant,
    lag: Duration,
}

impl RunDone {
    /// A run that returned (no timeout, nothing abandoned).
    fn ended(key: u64, outcome: Outcome, started: Instant, lag: Duration) -> Self {
        RunDone {
            key,
            timed_out: false,
            outcome,
            abandoned: None,
            started,
            lag,
        }
    }
}

/// One shard's task.
pub(crate) struct Shard {
    inbox: Arc<Inbox>,
    entries: HashMap<u64, Entry, std::hash::BuildHasherDefault<KeyHasher>>,
    timeline: Timeline,
    inflight: FuturesUnordered<BoxFuture<'static, RunDone>>,
    batch: Vec<Finished>,
    tx: mpsc::UnboundedSender<Msg>,
    global: Option<Arc<Semaphore>>,
    lanes: Arc<Lanes>,
    clock: Clock,
}

impl Shard {
    pub(crate) fn new(
        inbox: Arc<Inbox>,
        tx: mpsc::UnboundedSender<Msg>,
        global: Option<Arc<Semaphore>>,
        lanes: Arc<Lanes>,
        base: Instant,
    ) -> Self {
        Shard {
            inbox,
            entries: HashMap::default(),
            timeline: Timeline::new(base),
            inflight: FuturesUnordered::new(),
            batch: Vec::new(),
            tx,
            global,
            lanes,
            clock: Clock::now(),
        }
    }

    pub(crate) async fn run(mut self) {
        let far = || Instant::now() + Duration::from_secs(3600);
        let sleep = sleep_until(far());
        tokio::pin!(sleep);
        loop {
            self.clock = Clock::now();
            let now = self.clock.instant;
            for command in self.inbox.take() {
                match command {
                    Command::Add(entry) => {
                        let key = entry.slot.key;
                        let mut entry = *entry;
                        if !entry.settings.on_demand {
                            entry.due = self.timeline.push(entry.due, key);
                        }
                        self.entries.insert(key, entry);
                    }
                    Command::Request(key) => self.start(key, true, now),
                    Command::Stop(key) => {
                        self.entries.remove(&key);
                    }
                }
            }
            while let Some((at, keys)) = self.timeline.pop_due(now) {
                for &key in &keys {
                    // Stale items (the entry moved on, or was removed) are skipped.
                    if self
                        .entries
                        .get(&key)
                        .is_some_and(|e| e.due == at && !e.running)
                    {
                        self.start(key, false, now);
                    }
                }
                self.timeline.recycle(keys);
            }
            // Runs that finish at once (most) are collected in this pass.
            while let Some(Some(done)) = futures_util::FutureExt::now_or_never(self.inflight.next())
            {
                self.finish(done);
            }
            if !self.batch.is_empty() {
                // The next batch is likely as large: no regrowing.
                let next = Vec::with_capacity(self.batch.len());
                let batch = std::mem::replace(&mut self.batch, next);
                if self.tx.send(Msg::Finished(batch)).is_err() {
                    return;
                }
            }
            let next = self.timeline.next().unwrap_or_else(far);
            sleep.as_mut().reset(next);
            tokio::select! {
                biased;
                open = self.inbox.wait() => if !open { return },
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => self.finish(done),
                _ = &mut sleep => {}
            }
        }
    }

    /// Starts a run of `key` if its rules allow one now.
    fn start(&mut self, key: u64, requested: bool, now: Instant) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if e.running {
            return; // single flight: the run in progress serves the request
        }
        let slot = &*e.slot;
        slot.state.store(RUNNING, Ordering::Release);
        // Loads first: most runs find nothing to take, and a load does not
        // claim the cache line readers share.
        let forced =
            slot.forced.load(Ordering::Acquire) && slot.forced.swap(false, Ordering::AcqRel);
        if e.abandoned.as_ref().is_some_and(|(h, _)| h.get()) {
            e.abandoned = None;
        }
        let runnable = e.abandoned.is_none() && slot.active.load(Ordering::Acquire);
        if !runnable && e.abandoned.is_none() || runnable && !e.breaker.try_acquire(now, forced) {
            slot.state.store(IDLE, Ordering::Release);
            let next = e.breaker.open_until().unwrap_or(now + e.settings.interval);
            if !e.settings.on_demand || e.breaker.open_until().is_some() {
                e.due = self.timeline.push(next, key);
            }
            return;
        }
        let lag = if requested {
            Duration::ZERO
        } else {
            now.saturating_duration_since(e.due)
        };
        if let Some((_, since)) = &e.abandoned {
            let outcome = Outcome::fail(format!(
                "the previous run, started {} ago, is still running past its {} timeout and does not yield \
                 (a blocking call in async code?); no new run starts until it returns",
                humanize(now.saturating_duration_since(*since)),
                humanize(e.settings.timeout)
            ));
            // `abandoned` stays set (with its original start) for the next report.
            self.finish(RunDone::ended(key, outcome, now, lag));
            return;
        }
        e.running = true;
        let timeout = e.settings.timeout;
        let deadline = now + timeout;
        // Purely async with its permits free (the common case): poll in
        // place. Most such runs (an in-process check reading a value)
        // finish on this first poll and cost no task, no timer and no waker.
        let free = if e.check.may_block() {
            None
        } else {
            free_permits(self.global.as_ref(), e.host.as_ref())
        };
        let run = if let Some(permits) = free {
            let check = e.check.clone();
            let cx = CheckCx::with_token(deadline, timeout, e.token.clone());
            let mut run = Box::pin(async move { CatchUnwind(check.run(cx)).await });
            if let Some(ended) = futures_util::FutureExt::now_or_never(run.as_mut()) {
                drop(permits);
                let outcome = ended.unwrap_or_else(|panic| panicked(&*panic));
                self.finish(RunDone::ended(key, outcome, now, lag));
                return;
            }
            let token = e.token.clone();
            let host = e.host.as_ref().map(|(h, _)| h.clone());
            Either::Left(async move {
                let _permits = permits;
                let (outcome, timed_out) = finish_async(run, deadline, &token, || {
                    self::timed_out(host.as_deref(), timeout)
                })
                .await;
                (outcome, None, timed_out)
            })
        } else {
            Either::Right(attempt(
                e.check.clone(),
                e.token.clone(),
                deadline,
                timeout,
                self.global.clone(),
                e.host.clone(),
                self.lanes.clone(),
            ))
        };
        // Still going: readers and the watchdog see it in flight.
        e.slot.set_in_flight(now);
        let run: BoxFuture<'static, RunDone> = Box::pin(async move {
            let (outcome, abandoned, timed_out) = run.await;
            RunDone {
                key,
                timed_out,
                outcome,
                abandoned,
                started: now,
                lag,
            }
        });
        // Polled by `inflight` with the task's waker from now on.
        self.inflight.push(run);
    }

    /// Records a finished run: breaker, next due time, the result for the aggregator.
    fn finish(&mut self, done: RunDone) {
        let Some(e) = self.entries.get_mut(&done.key) else {
            return; // removed meanwhile
        };
        e.running = false;
        if let Some(h) = done.abandoned {
            e.abandoned = Some((h, done.started));
        }
        if done.timed_out {
            // The token was cancelled with the run; later runs get a fresh one.
            e.token = CancelToken::new();
        }
        let finished_at = Instant::now();
        let slot = &*e.slot;
        slot.clear_in_flight();
        let urgent =
            slot.urgent.load(Ordering::Acquire) && slot.urgent.swap(false, Ordering::AcqRel);
        slot.state.store(IDLE, Ordering::Release);
        e.breaker.record(done.outcome.status, finished_at);
        let duration = finished_at.saturating_duration_since(done.started);
        let result = Arc::new(CheckResult::from_outcome(
            done.outcome,
            duration,
            self.clock.wall_at(finished_at),
        ));
        let next = match e.breaker.open_until() {
            Some(until) => until,
            None => finished_at + jittered(e.settings.interval),
        };
        let scheduled = !e.settings.on_demand || e.breaker.open_until().is_some();
        if scheduled {
            e.due = self.timeline.push(next, done.key);
        }
        self.batch.push(Finished {
            key: done.key,
            index: slot.index.load(Ordering::Relaxed),
            result,
            circuit: e.breaker.circuit(finished_at),
            open_until: e.breaker.open_until(),
            consecutive_failures: e.breaker.consecutive_failures(),
            next_run: scheduled.then_some(e.due),
            lag: done.lag,
            urgent,
        });
    }
}

/// Wall-clock time from the monotonic clock, read once per scheduling pass
/// (results are stamped without a second clock call each).
struct Clock {
    instant: Instant,
    wall: Timestamp,
}

impl Clock {
    fn now() -> Self {
        Clock {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    fn wall_at(&self, at: Instant) -> Timestamp {
        let ahead = at.saturating_duration_since(self.instant);
        self.wall.checked_add(ahead).unwrap_or(self.wall)
    }
}

/// Due times on a 10 ms scheduling grid (from the engine's start): one
/// bucket of keys per grid tick, so checks due close together start in one
/// wake-up. The next [`Timeline::RING`] ticks are a ring of buckets whose
/// buffers are reused (a push is an index and a `Vec::push`); due times
/// past that horizon wait in an ordered map and move into the ring as it
/// turns.
struct Timeline {
    base: Instant,
    /// Bucket of tick `t` (for `cursor <= t < cursor + RING`) at `t % RING`.
    ring: Vec<Vec<u64>>,
    /// The first tick not taken yet.
    cursor: u64,
    /// Keys in the ring.
    in_ring: usize,
    /// Buckets past the ring's horizon, by tick.
    beyond: BTreeMap<u64, Vec<u64>>,
    /// Emptied buffers for reuse.
    spare: Vec<Vec<u64>>,
}

impl Timeline {
    const GRID: Duration = Duration::from_millis(10);
    /// Ticks the ring covers (10.24 s at the 10 ms grid).
    const RING: u64 = 1024;

    fn new(base: Instant) -> Self {
        Timeline {
            base,
            ring: (0..Self::RING).map(|_| Vec::new()).collect(),
            cursor: 0,
            in_ring: 0,
            beyond: BTreeMap::new(),
            spare: Vec::new(),
        }
    }

    fn at(&self, tick: u64) -> Instant {
        self.base + Self::GRID * tick as u32
    }

    /// The first grid tick at or after `t`.
    fn tick_of(&self, t: Instant) -> u64 {
        let micros = t.saturating_duration_since(self.base).as_micros();
        micros.div_ceil(Self::GRID.as_micros()) as u64
    }

    /// Schedules `key` at `due` rounded up to the grid (and to the first
    /// tick not taken yet); returns the rounded time.
    fn push(&mut self, due: Instant, key: u64) -> Instant {
        let tick = self.tick_of(due).max(self.cursor);
        if tick < self.cursor + Self::RING {
            self.ring[(tick % Self::RING) as usize].push(key);
            self.in_ring += 1;
        } else {
            self.beyond.entry(tick).or_default().push(key);
        }
        self.at(tick)
    }

    /// The earliest scheduled time.
    fn next(&self) -> Option<Instant> {
        if self.in_ring > 0 {
            let tick = (self.cursor..self.cursor + Self::RING)
                .find(|t| !self.ring[(t % Self::RING) as usize].is_empty())
                .expect("in_ring counts the ring's keys");
            return Some(self.at(tick));
        }
        self.beyond.keys().next().map(|t| self.at(*t))
    }

    /// The earliest bucket if it is due at `now`; hand its buffer back
    /// with [`Timeline::recycle`].
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, Vec<u64>)> {
        loop {
            if self.in_ring == 0 {
                // Nothing in the ring: jump to the next bucket beyond it.
                let &first = self.beyond.keys().next()?;
                self.cursor = self.cursor.max(first.saturating_sub(Self::RING - 1));
                self.take_beyond();
            }
            let at = self.at(self.cursor);
            if at > now {
                return None;
            }
            let slot = (self.cursor % Self::RING) as usize;
            let keys = (!self.ring[slot].is_empty()).then(|| {
                let fresh = self.spare.pop().unwrap_or_default();
                std::mem::replace(&mut self.ring[slot], fresh)
            });
            self.cursor += 1;
            // The ring turned: the slot just taken now holds its last tick,
            // which may have waited beyond it.
            self.take_beyond();
            if let Some(keys) = keys {
                self.in_ring -= keys.len();
                return Some((at, keys));
            }
        }
    }

    /// Returns a bucket's buffer for reuse.
    fn recycle(&mut self, mut keys: Vec<u64>) {
        keys.clear();
        self.spare.push(keys);
    }

    /// Moves buckets that came within the ring's horizon into it.
    fn take_beyond(&mut self) {
        while let Some(entry) = self.beyond.first_entry() {
            let tick = *entry.key();
            if tick >= self.cursor + Self::RING {
                break;
            }
            let keys = entry.remove();
            self.in_ring += keys.len();
            self.ring[(tick % Self::RING) as usize].extend(keys);
        }
    }
}

/// The interval with ±5 % jitter, so checks sharing an interval drift apart.
fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.05;
    Duration::from_secs_f64(
        (interval.as_secs_f64() + spread * (fastrand::f64() * 2.0 - 1.0)).max(0.001),
    )
}

/// Concurrency permits (global, per host) held by a run.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

/// The run's permits if every limit has one free now, without waiting.
fn free_permits(
    global: Option<&Arc<Semaphore>>,
    host: Option<&(String, Arc<Semaphore>)>,
) -> Option<Permits> {
    let global = match global {
        Some(s) => Some(s.clone().try_acquire_owned().ok()?),
        None => None,
    };
    let host = match host {
        Some((_, s)) => Some(s.clone().try_acquire_owned().ok()?),
        None => None,
    };
    Some((global, host))
}

/// One attempt: concurrency permits, then the check, bounded by `timeout`
/// overall. A check whose code may block its thread ([`Check::may_block`])
/// runs on a lane (a thread of tokio's blocking pool, see [`Lanes`]), so it
/// cannot stall the workers (and their timers) that other checks share. A
/// panic becomes a `fail` with its message. A run still going at the timeout
/// is abandoned: the caller gets a handle telling when it finally returns.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    check: Arc<dyn Check>,
    token: CancelToken,
    deadline: Instant,
    timeout: Duration,
    global: Option<Arc<Semaphore>>,
    host: Option<(String, Arc<Semaphore>)>,
    lanes: Arc<Lanes>,
) -> (Outcome, Option<Returned>, bool) {
    let timed_out = || timed_out(host.as_ref().map(|(h, _)| h.as_str()), timeout);
    // Permits: taken at once when free (the common case), else awaited
    // within the run's budget.
    let permits = match free_permits(global.as_ref(), host.as_ref()) {
        Some(permits) => permits,
        None => {
            let wait = async {
                let g = match &global {
                    Some(s) => Some(
                        s.clone()
                            .acquire_owned()
                            .await
                            .expect("semaphore never closed"),
                    ),
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
            let Ok(permits) = tokio::time::timeout_at(deadline, wait).await else {
                return (timed_out(), None, false);
            };
            permits
        }
    };
    let cx = CheckCx::with_token(deadline, timeout, token.clone());
    if !check.may_block() {
        // Purely async: run in place (no task to spawn); dropping the future
        // at the deadline cancels it.
        let _permits = permits;
        let (outcome, timed_out) =
            finish_async(CatchUnwind(check.run(cx)), deadline, &token, timed_out).await;
        return (outcome, None, timed_out);
    }
    // May block: a lane drives it.
    let cancel = token.clone();
    let body = async move {
        let _permits: Permits = permits;
        tokio::select! {
            outcome = check.run(cx) => Some(outcome),
            _ = cancel.cancelled() => None,
        }
    };
    let (ended, returned) = lanes.spawn(body);
    let outcome = match tokio::time::timeout_at(deadline, ended).await {
        Ok(Ok(Ok(Some(outcome)))) => outcome,
        Ok(Ok(Err(panic))) => panicked(&*panic),
        Ok(Ok(Ok(None)) | Err(_)) => {
            Outcome::fail("the run was cancelled before it finished (the engine is shutting down?)")
        }
        Err(_) => {
            token.cancel();
            return (timed_out(), Some(returned), true);
        }
    };
    (outcome, None, false)
}

/// Drives an async run to its end or its deadline: the outcome (a panic as
/// a `fail`), and whether it timed out (its token then cancelled).
async fn finish_async<F>(
    run: F,
    deadline: Instant,
    token: &CancelToken,
    timed_out: impl FnOnce() -> Outcome,
) -> (Outcome, bool)
where
    F: Future<Output = Result<Outcome, Box<dyn Any + Send>>> + Unpin,
{
    match (Bounded {
        run,
        deadline,
        timer: None,
    })
    .await
    {
        Some(Ok(outcome)) => (outcome, false),
        Some(Err(panic)) => (panicked(&*panic), false),
        None => {
            token.cancel();
            (timed_out(), true)
        }
    }
}

/// The result of a run that did not finish within its timeout.
fn timed_out(host: Option<&str>, timeout: Duration) -> Outcome {
    Outcome::fail(match host {
        Some(h) => format!(
            "timed out after {}: no answer from {h} within the check's timeout; look at that target's latency and load, or raise `timeout`",
            humanize(timeout)
        ),
        None => format!(
            "timed out after {}: the check did not finish within its timeout; look at what it waits on, or raise `timeout`",
            humanize(timeout)
        ),
    })
}

fn panicked(payload: &(dyn Any + Send)) -> Outcome {
    Outcome::fail(format!(
        "check panicked: {}; this is a bug in the check's code (the engine isolated it and kept running)",
        panic_message(payload)
    ))
}

/// A run bounded by its deadline; `None` when the deadline passed first.
/// The timer is created only if the run does not finish on its first poll
/// (an in-process check reading a value never needs one).
struct Bounded<F> {
    run: F,
    deadline: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future + Unpin> Future for Bounded<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = Pin::new(&mut self.run).poll(cx) {
            return Poll::Ready(Some(v));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        timer.as_mut().poll(cx).map(|()| None)
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
    fn timeline_yields_buckets_in_due_order_near_and_far() {
        let base = Instant::now();
        let mut t = Timeline::new(base);
        let ms = |n: u64| base + Duration::from_millis(n);
        // Near (in the ring), far (past its 10.24 s horizon), and rounding
        // up to the 10 ms grid.
        assert_eq!(t.push(ms(25), 1), ms(30));
        assert_eq!(t.push(ms(30), 2), ms(30));
        assert_eq!(t.push(ms(60_000), 3), ms(60_000));
        assert_eq!(t.push(ms(10_000), 4), ms(10_000));
        assert_eq!(t.push(ms(20_005), 5), ms(20_010));
        assert_eq!(t.next(), Some(ms(30)));
        assert_eq!(t.pop_due(ms(29)), None);
        let mut seen = Vec::new();
        for now in (0..=70_000).step_by(1000).map(ms) {
            while let Some((at, keys)) = t.pop_due(now) {
                assert!(at <= now);
                seen.extend(keys.iter().map(|k| (at, *k)));
                t.recycle(keys);
            }
        }
        assert_eq!(
            seen,
            vec![
                (ms(30), 1),
                (ms(30), 2),
                (ms(10_000), 4),
                (ms(20_010), 5),
                (ms(60_000), 3)
            ]
        );
        assert_eq!(t.next(), None);
        // A due time already passed goes to the first tick not taken yet
        // (after the last bucket taken): due at once.
        let at = t.push(ms(5), 6);
        assert!(at > ms(60_000) && at <= ms(70_000), "{at:?}");
        assert_eq!(t.pop_due(ms(70_000)).map(|(_, k)| k), Some(vec![6]));
    }

    #[test]
    fn timeline_reuses_bucket_buffers() {
        let base = Instant::now();
        let mut t = Timeline::new(base);
        for round in 1..=3u64 {
            for k in 0..100 {
                t.push(base + Duration::from_millis(round * 100), k);
            }
            let (_, keys) = t.pop_due(base + Duration::from_secs(1)).unwrap();
            assert_eq!(keys.len(), 100);
            t.recycle(keys);
        }
        // Three rounds through one bucket each, one spare buffer in turn.
        assert_eq!(t.spare.len(), 1);
        assert!(t.spare[0].capacity() >= 100);
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
