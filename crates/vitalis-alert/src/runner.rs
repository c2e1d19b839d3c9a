//! The alerting task: reads the engine's event log and snapshots, runs the
//! [`Evaluator`], routes its notifications and hands them to the sinks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use vitalis_config::{AlertConfig, SinkKind};
use vitalis_core::events::{Event, Replay};
use vitalis_core::{CancelToken, Engine};

use crate::evaluator::{Evaluator, Settings};
use crate::model::{Alert, Notification, State};
use crate::routing::route;
use crate::sinks::{CounterSample, Counters, DeliveryOptions, Outcome, SinkHandle};

/// Evaluate at least this often (maintenance windows open and close with time alone).
const TICK: Duration = Duration::from_secs(1);

/// Builds an [`Alerting`].
#[derive(Debug)]
pub struct AlertingBuilder {
    engine: Engine,
    config: AlertConfig,
    delivery: DeliveryOptions,
    root_cause_wait: Duration,
}

impl AlertingBuilder {
    /// The `[alert]` section (default: none — alerts are then only logged, as undeliverable).
    pub fn config(mut self, config: &AlertConfig) -> Self {
        self.config = config.clone();
        self
    }

    /// Delivery settings (retries, Vitalis' URL for links, Alertmanager re-sends).
    pub fn delivery(mut self, delivery: DeliveryOptions) -> Self {
        self.delivery = delivery;
        self
    }

    /// The longest a candidate alert waits for fresh results of its
    /// dependencies (default 10s).
    pub fn root_cause_wait(mut self, wait: Duration) -> Self {
        self.root_cause_wait = wait;
        self
    }

    /// Starts the evaluation task and one task per sink on the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Alerting {
        let (config_tx, config_rx) = watch::channel(Arc::new(self.config));
        let (notifications, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            config: config_tx,
            counters: Arc::new(Counters::default()),
            firing: Mutex::new(Vec::new()),
            notifications,
            stop: CancelToken::new(),
        });
        let task = Task {
            engine: self.engine,
            shared: shared.clone(),
            sinks: HashMap::new(),
            routed: HashMap::new(),
            delivery: Arc::new(self.delivery),
            root_cause_wait: self.root_cause_wait,
        };
        tokio::spawn(task.run(config_rx));
        Alerting {
            inner: Arc::new(Inner { shared }),
        }
    }
}

struct Shared {
    config: watch::Sender<Arc<AlertConfig>>,
    counters: Arc<Counters>,
    firing: Mutex<Vec<Arc<Alert>>>,
    notifications: broadcast::Sender<Arc<Notification>>,
    stop: CancelToken,
}

struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Alerting over one engine. Cheap to clone; stops when the last clone is
/// dropped or [`Alerting::shutdown`] is called.
///
/// ```
/// use vitalis_alert::Alerting;
/// use vitalis_core::{check_fn, CheckSpec, Component, Engine, Outcome};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::builder()
///     .component(Component::new("db").critical(true)
///         .check(CheckSpec::live("port", check_fn(|_| async { Outcome::fail("connection refused") }))))
///     .start()?;
/// let config = vitalis_config::load_str(
///     "[[alert.sink]]\nname = \"log\"\ntype = \"log\"\n[alert]\ndefault_sinks = [\"log\"]\n",
///     "vitalis.toml",
///     &vitalis_config::LoadOptions::without_env(),
/// )?;
/// let alerting = Alerting::builder(engine.clone()).config(&config.alert).start();
/// let mut notes = alerting.subscribe();
/// let first = notes.recv().await?; // the database's alert, then the system's
/// assert_eq!(first.alert.severity.as_str(), "critical");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("firing", &self.firing().len())
            .finish_non_exhaustive()
    }
}

impl Alerting {
    /// Starts building alerting over `engine`.
    pub fn builder(engine: Engine) -> AlertingBuilder {
        AlertingBuilder {
            engine,
            config: AlertConfig::default(),
            delivery: DeliveryOptions::default(),
            root_cause_wait: Settings::default().root_cause_wait,
        }
    }

    /// Swaps in a new `[alert]` section (reload): routes, sinks, `for` and
    /// maintenance windows change; alert state is kept. Unchanged sinks keep
    /// their queues; changed ones restart.
    pub fn reload(&self, config: &AlertConfig) {
        self.inner
            .shared
            .config
            .send_replace(Arc::new(config.clone()));
    }

    /// Alerts currently firing (including muted ones).
    pub fn firing(&self) -> Vec<Arc<Alert>> {
        self.inner
            .shared
            .firing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counters per sink, severity and outcome (for `vitalis_alerts_total`).
    pub fn counters(&self) -> Vec<CounterSample> {
        self.inner.shared.counters.samples()
    }

    /// Every notification as it is routed (a bounded broadcast: a receiver
    /// that falls behind misses some and learns so). For tests and live views.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notification>> {
        self.inner.shared.notifications.subscribe()
    }

    /// Stops evaluating; sinks finish what they have queued.
    pub fn shutdown(&self) {
        self.inner.shared.stop.cancel();
    }
}

/// What was sent for one alert: where, and the latest notification.
struct Routed {
    sinks: Vec<String>,
    last: Arc<Notification>,
}

struct Task {
    engine: Engine,
    shared: Arc<Shared>,
    sinks: HashMap<String, SinkHandle>,
    routed: HashMap<String, Routed>,
    delivery: Arc<DeliveryOptions>,
    root_cause_wait: Duration,
}

impl Task {
    fn settings(&self, config: &AlertConfig) -> Settings {
        Settings {
            root_cause_wait: self.root_cause_wait,
            ..Settings::from_config(config)
        }
    }

    async fn run(mut self, mut config_rx: watch::Receiver<Arc<AlertConfig>>) {
        let mut config = config_rx.borrow_and_update().clone();
        self.sync_sinks(&config);
        let mut evaluator = Evaluator::new(self.settings(&config));
        let mut reader = self.engine.subscribe(self.engine.snapshot().seq);
        let mut published = self.engine.watch_snapshots();
        let mut pending: VecDeque<Arc<Event>> = VecDeque::new();
        let stop = self.shared.stop.clone();
        loop {
            let snap = self.engine.snapshot();
            while pending.front().is_some_and(|e| e.seq <= snap.seq) {
                let e = pending.pop_front().expect("checked");
                evaluator.observe(&e);
            }
            let ev = evaluator.evaluate(&snap, Instant::now(), Timestamp::now());
            if !ev.refresh.is_empty() {
                let engine = self.engine.clone();
                let wanted: HashSet<usize> = ev.refresh.iter().copied().collect();
                let wait = self.root_cause_wait;
                tokio::spawn(async move {
                    engine.rerun(move |k| wanted.contains(&k), wait).await;
                });
            }
            for n in ev.notifications {
                self.dispatch(Arc::new(n), &config);
            }
            *self.shared.firing.lock().unwrap_or_else(|p| p.into_inner()) = evaluator.firing();
            let now = Instant::now();
            let until = ev.wake_at.map_or(now + TICK, |w| w.min(now + TICK));
            tokio::select! {
                batch = reader.next_batch() => match batch {
                    None => break,
                    Some(Replay::Events(events)) => pending.extend(events),
                    Some(Replay::Gap) => {
                        // Fell behind the log: resynchronise from the snapshot.
                        pending.clear();
                        reader.seek(self.engine.snapshot().seq);
                        tracing::warn!(target: "vitalis::alert", "alert evaluation fell behind the event log; resynchronised from a snapshot");
                    }
                },
                r = published.changed() => if r.is_err() { break },
                r = config_rx.changed() => {
                    if r.is_err() { break }
                    config = config_rx.borrow_and_update().clone();
                    evaluator.set_settings(self.settings(&config));
                    self.sync_sinks(&config);
                    tracing::info!(target: "vitalis::alert", sinks = config.sinks.len(), routes = config.routes.len(), "alert configuration reloaded");
                }
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.cancelled() => break,
            }
        }
    }

    /// Starts, keeps or restarts a task per configured sink. A restarted
    /// Alertmanager sink is told the alerts already firing there (it keeps
    /// them active by re-sending).
    fn sync_sinks(&mut self, config: &AlertConfig) {
        let mut next = HashMap::new();
        for spec in &config.sinks {
            match self.sinks.remove(&spec.name) {
                Some(h) if h.spec == *spec => {
                    next.insert(spec.name.clone(), h);
                }
                _ => {
                    let h = SinkHandle::spawn(
                        spec,
                        &self.delivery,
                        self.shared.counters.sink(&spec.name),
                    );
                    if spec.kind == SinkKind::Alertmanager {
                        for r in self.routed.values() {
                            if r.sinks.contains(&spec.name) {
                                h.send(r.last.clone());
                            }
                        }
                    }
                    next.insert(spec.name.clone(), h);
                }
            }
        }
        // Sinks left in `self.sinks` were removed: dropping their queue lets
        // their task deliver what it holds and end.
        self.sinks = next;
    }

    fn dispatch(&mut self, n: Arc<Notification>, config: &AlertConfig) {
        let id = &n.alert.id;
        let sinks = match n.state {
            State::Firing => route(config, &n.alert),
            State::Update => self
                .routed
                .get(id)
                .map(|r| r.sinks.clone())
                .unwrap_or_else(|| route(config, &n.alert)),
            State::Resolved => self
                .routed
                .remove(id)
                .map(|r| r.sinks)
                .unwrap_or_else(|| route(config, &n.alert)),
            State::Flapping | State::Settled => route(config, &n.alert),
        };
        if matches!(n.state, State::Firing | State::Update) {
            self.routed.insert(
                id.clone(),
                Routed {
                    sinks: sinks.clone(),
                    last: n.clone(),
                },
            );
        }
        if sinks.is_empty() {
            // No sink is configured at all: say so rather than drop it.
            crate::sinks::log::write("none", &n);
            self.shared
                .counters
                .sink("none")
                .add(n.alert.severity, Outcome::Dropped);
        }
        for name in &sinks {
            match self.sinks.get(name) {
                Some(h) => h.send(n.clone()),
                None => {
                    self.shared
                        .counters
                        .sink(name)
                        .add(n.alert.severity, Outcome::Dropped);
                    crate::sinks::log::write(name, &n);
                    tracing::error!(target: "vitalis::alert", sink = %name, dedup_key = %n.dedup_key, "the sink this alert was sent to was removed by a reload; notification logged here instead");
                }
            }
        }
        let _ = self.shared.notifications.send(n);
    }
}
