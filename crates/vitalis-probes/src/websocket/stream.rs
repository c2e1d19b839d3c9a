//! `stream = true`: one subscription per check, kept open by a background
//! task; each run reads the age of the last message and the message rate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use vitalis_core::{CheckCx, Outcome, Status};

use super::Common;
use super::conn::{self, Endpoint};

/// The first wait before reconnecting; doubled after each failure.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// The longest wait before reconnecting.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long opening the connection (and subscribing) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that lived this long resets the backoff even without messages.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// At most this many message times are kept for the rate.
const MAX_TIMES: usize = 100_000;
/// The rate window (at least), and its longest.
const RATE_WINDOW: Duration = Duration::from_secs(10);
const RATE_WINDOW_MAX: Duration = Duration::from_secs(600);
/// The rate is not judged on less than this much of a connection.
const RATE_MIN_SPAN: Duration = Duration::from_secs(1);

/// A built `websocket` check with `stream = true`.
#[derive(Debug)]
pub(crate) struct StreamCheck {
    pub(super) common: Common,
    endpoint: Arc<Endpoint>,
    max_age: Option<Duration>,
    min_rate: Option<f64>,
    window: Duration,
    /// Idle subscriptions are reopened after this long without a message.
    idle: Duration,
    feed: Mutex<Option<Feed>>,
}

/// The running subscription; dropping it stops the task.
#[derive(Debug)]
struct Feed {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the task and the runs share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every message and connection change.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    started: Option<Instant>,
    /// Since when the current connection is open; `None` while disconnected.
    connected_since: Option<Instant>,
    disconnected_since: Option<Instant>,
    /// Connection attempts so far, and failures in a row.
    attempts: u64,
    failures_in_row: u64,
    last_error: Option<String>,
    last_message_at: Option<Instant>,
    /// The last message's text, kept only when there are assertions.
    last_message: Option<String>,
    total: u64,
    /// Arrival times within the rate window.
    times: VecDeque<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StreamCheck {
    pub(super) fn new(
        common: Common,
        endpoint: Arc<Endpoint>,
        max_age: Option<Duration>,
        min_rate: Option<f64>,
    ) -> Self {
        let window = match min_rate {
            Some(rate) => Duration::from_secs_f64(
                (10.0 / rate).clamp(RATE_WINDOW.as_secs_f64(), RATE_WINDOW_MAX.as_secs_f64()),
            ),
            None => RATE_WINDOW,
        };
        let idle = max_age
            .map(|a| a * 10)
            .unwrap_or_default()
            .max(Duration::from_secs(30));
        StreamCheck {
            common,
            endpoint,
            max_age,
            min_rate,
            window,
            idle,
            feed: Mutex::new(None),
        }
    }

    /// The shared state, starting the subscription on first use.
    fn shared(&self) -> Arc<Shared> {
        let mut feed = self.feed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = feed.as_ref()
            && !f.task.is_finished()
        {
            return f.shared.clone();
        }
        let shared = Arc::new(Shared::default());
        shared.lock().started = Some(Instant::now());
        let task = tokio::spawn(subscription(
            self.endpoint.clone(),
            shared.clone(),
            self.window,
            self.idle,
            !self.common.assert.is_empty(),
        ));
        *feed = Some(Feed {
            shared: shared.clone(),
            task,
        });
        shared
    }

    pub(super) async fn read(&self, cx: &CheckCx) -> Outcome {
        let shared = self.shared();
        // Before the first message, wait for it (within this run's time).
        let margin = (cx.timeout() / 10).min(Duration::from_millis(100));
        let until = cx.deadline() - margin;
        loop {
            let notified = shared.changed.notified();
            {
                let s = shared.lock();
                // A message, or a failed attempt, is something to report.
                if s.last_message_at.is_some() || s.last_error.is_some() {
                    break;
                }
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                break;
            }
        }
        let state = shared.lock();
        self.judge(&state, Instant::now())
    }

    fn judge(&self, s: &State, now: Instant) -> Outcome {
        let what = self.common.what();
        let ago = |t: Instant| age_text(now.saturating_duration_since(t));
        let connection = match (s.connected_since, s.disconnected_since) {
            (Some(since), _) => format!("connected for {}", ago(since)),
            (None, Some(since)) => format!(
                "disconnected for {}: {}; reconnecting with backoff ({} failed attempt{} in a row)",
                ago(since),
                s.last_error.as_deref().unwrap_or("connection lost"),
                s.failures_in_row,
                if s.failures_in_row == 1 { "" } else { "s" }
            ),
            (None, None) => match &s.last_error {
                Some(e) => format!(
                    "cannot connect: {e}; retrying with backoff ({} attempt{})",
                    s.attempts,
                    if s.attempts == 1 { "" } else { "s" }
                ),
                None => "connecting".to_string(),
            },
        };
        let Some(last) = s.last_message_at else {
            let since = s.started.map(ago).unwrap_or_default();
            return Outcome::fail(if s.connected_since.is_some() {
                format!(
                    "{what}: no message yet ({connection}, subscription started {since} ago); is the feed publishing, and does the subscribe message (send) match what the server expects?"
                )
            } else {
                format!("{what}: no message yet (subscription started {since} ago); {connection}")
            });
        };
        let age = now.saturating_duration_since(last);
        let age_ms = (age.as_secs_f64() * 1_000_000.0).round() / 1000.0;

        let mut problems: Vec<(Status, String)> = Vec::new();
        if let Some(max) = self.max_age
            && age > max
        {
            let context = if s.connected_since.is_some() {
                format!("{connection} but silent: is the publisher stalled upstream?")
            } else {
                connection.clone()
            };
            problems.push((
                Status::Fail,
                format!(
                    "last message {} ago, over max_age {}; the feed is stale ({context})",
                    age_text(age),
                    vitalis_core::duration::format(max)
                ),
            ));
        } else if self.max_age.is_none() && s.connected_since.is_none() {
            problems.push((Status::Fail, connection.clone()));
        }

        // The rate over the window, or over the current connection when younger.
        let span = match s.connected_since {
            Some(since) => now.saturating_duration_since(since).min(self.window),
            None => self.window,
        };
        let from = now.checked_sub(span).unwrap_or(now);
        let in_span = s.times.iter().filter(|t| **t >= from).count();
        let rate = (span >= RATE_MIN_SPAN).then(|| in_span as f64 / span.as_secs_f64());
        let rate_text = match rate {
            Some(r) => format!("{r:.1} msg/s over {}", age_text(span)),
            None => "rate: measuring".to_string(),
        };
        if let (Some(min), Some(r)) = (self.min_rate, rate)
            && r < min
        {
            problems.push((
                Status::Fail,
                format!(
                    "{rate_text}, under min_rate {min}/s; is the feed throttled, or the subscription missing symbols?"
                ),
            ));
        }

        let mut passed = String::new();
        if !self.common.assert.is_empty() {
            let verdict = self
                .common
                .verdict(s.last_message.as_deref().unwrap_or_default());
            if verdict.status != Status::Pass {
                problems.push((
                    verdict.status,
                    format!(
                        "the last message fails the assertions: {}",
                        verdict.message()
                    ),
                ));
            } else {
                passed = verdict.summary();
            }
        }

        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let outcome = match status {
            Status::Pass => {
                let mut text = format!(
                    "{what}: last message {} ago, {rate_text}, {} messages, {connection}",
                    age_text(age),
                    s.total
                );
                if !passed.is_empty() {
                    text.push_str("; ");
                    text.push_str(&passed);
                }
                Outcome::pass(text)
            }
            s => {
                let text = format!(
                    "{what}: {}",
                    problems
                        .into_iter()
                        .map(|(_, m)| m)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                if s == Status::Warn {
                    Outcome::warn(text)
                } else {
                    Outcome::fail(text)
                }
            }
        };
        outcome.observed(age_ms, "ms")
    }
}

/// `1.2s`, `340ms`, `3m 5s`.
fn age_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        vitalis_core::duration::format(Duration::from_secs(d.as_secs()))
    }
}

/// Keeps the subscription open until aborted.
async fn subscription(
    endpoint: Arc<Endpoint>,
    shared: Arc<Shared>,
    window: Duration,
    idle: Duration,
    keep_text: bool,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        shared.lock().attempts += 1;
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.open()).await;
        let mut socket = match opened {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => {
                fail_attempt(&shared, e);
                wait(&mut backoff).await;
                continue;
            }
            Err(_) => {
                fail_attempt(
                    &shared,
                    format!(
                        "no WebSocket handshake within {}",
                        vitalis_core::duration::format(CONNECT_TIMEOUT)
                    ),
                );
                wait(&mut backoff).await;
                continue;
            }
        };
        let connected = Instant::now();
        {
            let mut s = shared.lock();
            s.connected_since = Some(connected);
            s.disconnected_since = None;
            s.failures_in_row = 0;
            s.last_error = None;
        }
        shared.changed.notify_waiters();
        let mut got_any = false;
        let reason = loop {
            let next = match tokio::time::timeout(idle, socket.next()).await {
                Err(_) => {
                    break format!(
                        "no message for {}, reopened the subscription",
                        vitalis_core::duration::format(idle)
                    );
                }
                Ok(None) => break "the server closed the connection".to_string(),
                Ok(Some(Err(e))) => break conn::describe(&e),
                Ok(Some(Ok(m))) => m,
            };
            let text = match next {
                Message::Text(t) => keep_text.then(|| t.as_str().to_string()),
                Message::Binary(b) => keep_text.then(|| String::from_utf8_lossy(&b).into_owned()),
                Message::Close(frame) => {
                    break match frame {
                        Some(f) if !f.reason.is_empty() => format!(
                            "the server closed the connection (code {}, '{}')",
                            u16::from(f.code),
                            f.reason
                        ),
                        Some(f) => format!(
                            "the server closed the connection (code {})",
                            u16::from(f.code)
                        ),
                        None => "the server closed the connection".to_string(),
                    };
                }
                _ => continue,
            };
            got_any = true;
            let now = Instant::now();
            {
                let mut s = shared.lock();
                s.last_message_at = Some(now);
                s.total += 1;
                if keep_text {
                    s.last_message = text;
                }
                while s
                    .times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > window)
                    || s.times.len() >= MAX_TIMES
                {
                    s.times.pop_front();
                }
                s.times.push_back(now);
            }
            shared.changed.notify_waiters();
        };
        {
            let mut s = shared.lock();
            s.connected_since = None;
            s.disconnected_since = Some(Instant::now());
            s.last_error = Some(reason);
        }
        shared.changed.notify_waiters();
        if got_any || connected.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_MIN;
        }
        wait(&mut backoff).await;
    }
}

fn fail_attempt(shared: &Shared, error: String) {
    {
        let mut s = shared.lock();
        s.failures_in_row += 1;
        s.last_error = Some(error);
        if s.disconnected_since.is_none() && s.last_message_at.is_some() {
            s.disconnected_since = Some(Instant::now());
        }
    }
    shared.changed.notify_waiters();
}

/// Sleeps the backoff (with up to 20% jitter) and doubles it.
async fn wait(backoff: &mut Duration) {
    let jitter = backoff.mul_f64(fastrand::f64() * 0.2);
    tokio::time::sleep(*backoff + jitter).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}
