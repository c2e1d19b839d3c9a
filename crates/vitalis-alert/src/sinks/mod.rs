//! Sinks: where notifications go, each on a task of its own.
//!
//! Every configured `[[alert.sink]]` gets a bounded queue and a task that
//! delivers from it, so a slow or failing sink never blocks evaluation or
//! another sink. HTTP sinks deliver at least once: a failed attempt (a
//! connection error, a timeout, a 5xx, 408 or 429 answer) is retried with
//! exponential backoff, with the same dedup key, for up to
//! [`RetryPolicy::give_up_after`]; other 4xx answers are permanent errors.
//! Each sink counts its notifications by severity and [`Outcome`].
//!
//! * [`log`]: one line per notification on target `vitalis::alert`.
//! * [`webhook`]: documented JSON (see `docs/alerting.md`).
//! * [`slack`]: a Slack-compatible incoming webhook.
//! * [`alertmanager`]: Alertmanager's v2 API, with periodic re-sends and a
//!   `VitalisWatchdog` alert.

pub mod alertmanager;
pub mod log;
pub mod slack;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio::time::Instant;
use vitalis_config::{AlertSink, SinkKind};

use crate::model::{Notification, Severity};

/// What became of one notification at one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by the receiver (for `log`: written).
    Delivered,
    /// One attempt failed and will be retried (counted per attempt).
    Retried,
    /// Given up: a permanent error, or retries exhausted.
    Failed,
    /// Never attempted: the sink's queue was full, or no sink was routed.
    Dropped,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 4] = [
        Outcome::Delivered,
        Outcome::Retried,
        Outcome::Failed,
        Outcome::Dropped,
    ];

    /// The label value (`delivered`, `retried`, `failed`, `dropped`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

/// Per sink: notifications by severity and outcome.
#[derive(Debug, Default)]
pub struct SinkCounters {
    counts: [[AtomicU64; 4]; 3],
}

impl SinkCounters {
    /// Counts one notification.
    pub fn add(&self, severity: Severity, outcome: Outcome) {
        self.counts[severity.index()][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self, severity: Severity, outcome: Outcome) -> u64 {
        self.counts[severity.index()][outcome as usize].load(Ordering::Relaxed)
    }
}

/// One counter, for `vitalis_alerts_total{sink, severity, outcome}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSample {
    /// The sink's name (`none` for alerts no sink was routed to).
    pub sink: String,
    /// The alert's severity.
    pub severity: Severity,
    /// The outcome.
    pub outcome: Outcome,
    /// How many so far.
    pub count: u64,
}

/// Every sink's counters, kept across reloads by sink name.
#[derive(Debug, Default)]
pub struct Counters {
    sinks: Mutex<HashMap<String, Arc<SinkCounters>>>,
}

impl Counters {
    /// The counters of `sink` (created on first use).
    pub fn sink(&self, sink: &str) -> Arc<SinkCounters> {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(sink.to_string())
            .or_default()
            .clone()
    }

    /// Every non-zero counter, sorted by sink, severity, outcome.
    pub fn samples(&self) -> Vec<CounterSample> {
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (name, c) in sinks.iter() {
            for severity in Severity::ALL {
                for outcome in Outcome::ALL {
                    let count = c.get(severity, outcome);
                    if count > 0 {
                        out.push(CounterSample {
                            sink: name.clone(),
                            severity,
                            outcome,
                            count,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.sink, a.severity, a.outcome as usize).cmp(&(
                &b.sink,
                b.severity,
                b.outcome as usize,
            ))
        });
        out
    }
}

/// How HTTP sinks retry a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait after a failure (default 1s).
    pub initial: Duration,
    /// The longest wait between attempts (default 60s).
    pub max: Duration,
    /// Stop retrying one notification after this long (default 1h).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        }
    }
}

/// Settings shared by every sink.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Retries of HTTP sinks.
    pub retry: RetryPolicy,
    /// Vitalis' own base URL (`http://host:port`), for links in
    /// notifications and Alertmanager's `generatorURL`.
    pub external_url: Option<String>,
    /// How often Alertmanager sinks re-send active alerts and the watchdog (default 60s).
    pub resend_interval: Duration,
    /// Notifications queued per sink before new ones are dropped (default 1024).
    pub queue: usize,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            retry: RetryPolicy::default(),
            external_url: None,
            resend_interval: Duration::from_secs(60),
            queue: 1024,
        }
    }
}

impl DeliveryOptions {
    /// A link to the subject of `n` in Vitalis' API, when the base URL is known.
    pub(crate) fn link(&self, n: &Notification) -> Option<String> {
        let base = self.external_url.as_deref()?.trim_end_matches('/');
        Some(match &n.alert.subject {
            crate::Subject::Component(id) => format!("{base}/health/components/{id}"),
            crate::Subject::Group(id) => format!("{base}/health/groups/{id}"),
            crate::Subject::System => format!("{base}/health"),
        })
    }
}

/// A running sink: its declaration and its queue.
#[derive(Debug)]
pub(crate) struct SinkHandle {
    pub(crate) spec: AlertSink,
    tx: mpsc::Sender<Arc<Notification>>,
    counters: Arc<SinkCounters>,
}

impl SinkHandle {
    /// Starts the sink's task on the current runtime.
    pub(crate) fn spawn(
        spec: &AlertSink,
        opts: &Arc<DeliveryOptions>,
        counters: Arc<SinkCounters>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let (s, o, c) = (spec.clone(), opts.clone(), counters.clone());
        match spec.kind {
            SinkKind::Log => {
                tokio::spawn(log::run(s, rx, c));
            }
            SinkKind::Webhook => {
                tokio::spawn(deliver_each(s, o, rx, c, webhook::body));
            }
            SinkKind::Slack => {
                tokio::spawn(deliver_each(s, o, rx, c, slack::body));
            }
            SinkKind::Alertmanager => {
                tokio::spawn(alertmanager::run(s, o, rx, c));
            }
        }
        SinkHandle {
            spec: spec.clone(),
            tx,
            counters,
        }
    }

    /// Queues a notification; never waits. A full queue drops it, counted and logged.
    pub(crate) fn send(&self, n: Arc<Notification>) {
        let severity = n.alert.severity;
        if let Err(e) = self.tx.try_send(n) {
            self.counters.add(severity, Outcome::Dropped);
            let n = match e {
                mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
            };
            tracing::error!(
                target: "vitalis::alert",
                sink = %self.spec.name,
                dedup_key = %n.dedup_key,
                "alert sink queue is full (the sink is slow or failing): notification dropped"
            );
        }
    }
}

/// A URL safe to log: no password, and for Slack not the secret path.
pub(crate) fn display_url(spec: &AlertSink) -> String {
    let url = spec.url.as_deref().unwrap_or("");
    match spec.kind {
        SinkKind::Slack => match reqwest::Url::parse(url) {
            Ok(u) => format!("{}://{}/***", u.scheme(), u.host_str().unwrap_or("")),
            Err(_) => "***".into(),
        },
        _ => vitalis_config::redact_url(url),
    }
}

/// The HTTP client of one sink: its timeout and headers.
pub(crate) fn client(spec: &AlertSink) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    for (k, v) in &spec.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v.expose()),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            _ => tracing::error!(
                target: "vitalis::alert",
                sink = %spec.name,
                header = %k,
                "alert sink header is not a valid HTTP header: left out"
            ),
        }
    }
    reqwest::Client::builder()
        .timeout(spec.timeout)
        .default_headers(headers)
        .user_agent(concat!("vitalis/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Why one attempt failed, and whether retrying can help.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

/// One POST of `body`; `Ok` on a 2xx answer.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    dedup_key: Option<&str>,
    body: &serde_json::Value,
) -> Result<(), AttemptError> {
    let mut req = client.post(url).json(body);
    if let Some(k) = dedup_key {
        req = req.header("Idempotency-Key", k);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let code = r.status();
            let text = r.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            Err(AttemptError {
                message: format!("answered {code}: {text}"),
                retryable: code.is_server_error()
                    || code == reqwest::StatusCode::REQUEST_TIMEOUT
                    || code == reqwest::StatusCode::TOO_MANY_REQUESTS,
            })
        }
        Err(e) => {
            // reqwest names the URL; a webhook's path or query may be its
            // secret (a Slack hook is).
            let e = e.without_url();
            Err(AttemptError {
                message: if e.is_timeout() {
                    "timed out".to_string()
                } else if e.is_connect() {
                    format!("cannot connect: {}", error_chain(&e))
                } else {
                    error_chain(&e)
                },
                retryable: true,
            })
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Delivers one notification's body, retrying per `policy`; counts the
/// outcome. Returns whether it was delivered.
pub(crate) async fn deliver_with_retry(
    spec: &AlertSink,
    client: &reqwest::Client,
    policy: RetryPolicy,
    counters: &SinkCounters,
    n: &Notification,
    body: &serde_json::Value,
) -> bool {
    let url = spec.url.as_deref().unwrap_or_default();
    let severity = n.alert.severity;
    let started = Instant::now();
    let mut delay = policy.initial;
    let mut attempt = 1u32;
    loop {
        match post_json(client, url, Some(&n.dedup_key), body).await {
            Ok(()) => {
                counters.add(severity, Outcome::Delivered);
                if attempt > 1 {
                    tracing::info!(target: "vitalis::alert", sink = %spec.name, dedup_key = %n.dedup_key, attempt, "alert delivered after retries");
                }
                return true;
            }
            Err(e) if !e.retryable || started.elapsed() + delay > policy.give_up_after => {
                counters.add(severity, Outcome::Failed);
                tracing::error!(
                    target: "vitalis::alert",
                    sink = %spec.name,
                    url = %display_url(spec),
                    dedup_key = %n.dedup_key,
                    attempt,
                    "alert delivery failed, giving up: {}",
                    e.message
                );
                return false;
            }
            Err(e) => {
                counters.add(severity, Outcome::Retried);
                tracing::warn!(
                    target: "vitalis::alert",
                    sink = %spec.name,
                    url = %display_url(spec),
                    dedup_key = %n.dedup_key,
                    attempt,
                    "alert delivery failed, retrying in {delay:?}: {}",
                    e.message
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max);
                attempt += 1;
            }
        }
    }
}

/// The task of a sink that posts each notification on its own (`webhook`,
/// `slack`): `body` makes the JSON, delivered in order with retries.
async fn deliver_each(
    spec: AlertSink,
    opts: Arc<DeliveryOptions>,
    mut rx: mpsc::Receiver<Arc<Notification>>,
    counters: Arc<SinkCounters>,
    body: fn(&Notification, &DeliveryOptions) -> serde_json::Value,
) {
    let client = client(&spec);
    while let Some(n) = rx.recv().await {
        let body = body(&n, &opts);
        deliver_with_retry(&spec, &client, opts.retry, &counters, &n, &body).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_post_does_not_name_the_secret_url() {
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/services/T0/B0/hooksecret?token=qsecret");
        let e = post_json(&reqwest::Client::new(), &url, None, &serde_json::json!({}))
            .await
            .expect_err("nothing listens");
        assert!(e.retryable);
        assert!(e.message.starts_with("cannot connect"), "{}", e.message);
        assert!(
            !e.message.contains("hooksecret") && !e.message.contains("qsecret"),
            "{}",
            e.message
        );
    }
}
