//! The `alertmanager` sink: Alertmanager's v2 API, `POST <url>/api/v2/alerts`.
//!
//! The sink keeps the set of active alerts and posts all of them, plus the
//! resolutions not yet accepted and an always-firing `VitalisWatchdog`
//! alert (a dead man's switch), whenever a notification arrives and every
//! `resend_interval` (default 60s). Firing alerts carry
//! `endsAt = now + 4 × resend_interval`, so Alertmanager resolves them on
//! its own if Vitalis stops sending; resolutions carry the recovery time.
//! A failed post is retried with backoff, new notifications merging into the
//! next attempt. Alertmanager deduplicates by label set, so several Vitalis
//! instances may feed one Alertmanager.
//!
//! Labels: `alertname` (`VitalisComponentDegraded`, `VitalisGroupDegraded`,
//! `VitalisSystemDegraded`), `severity`, `vitalis_subject`
//! (`component/<id>`, `group/<id>`, `system`), `component`, `group`, and
//! the component's own labels (names outside `[a-zA-Z_][a-zA-Z0-9_]*` are
//! rewritten with `_`). Annotations: `summary`, `description` (the degraded
//! checks), `status`, `root_causes`, `impacts`, `runbook_url`, `owner`,
//! `dedup_key`, `alert_id`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use vitalis_config::AlertSink;

use super::{DeliveryOptions, Outcome, SinkCounters, client, display_url, post_json};
use crate::model::{Alert, Notification, Severity, State, Subject};

/// The `alertname` of the always-firing dead man's switch.
pub const WATCHDOG: &str = "VitalisWatchdog";

/// The label set of an alert.
pub fn labels(a: &Alert) -> Map<String, Value> {
    let mut l = Map::new();
    for (k, v) in &a.labels {
        l.insert(label_name(k), Value::String(v.clone()));
    }
    let alertname = match a.subject {
        Subject::Component(_) => "VitalisComponentDegraded",
        Subject::Group(_) => "VitalisGroupDegraded",
        Subject::System => "VitalisSystemDegraded",
    };
    l.insert("alertname".into(), alertname.into());
    l.insert("severity".into(), a.severity.as_str().into());
    l.insert("vitalis_subject".into(), a.subject.to_string().into());
    if let Some(c) = &a.component {
        l.insert("component".into(), c.clone().into());
    }
    if let Some(g) = &a.group {
        l.insert("group".into(), g.clone().into());
    }
    l
}

/// A valid Prometheus label name for a component label key.
fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The postable alert for `n` (without `endsAt` for firing alerts; the
/// sink sets it at each post).
pub fn postable(n: &Notification, opts: &DeliveryOptions) -> Value {
    let a = &n.alert;
    let mut ann = Map::new();
    ann.insert("summary".into(), a.summary.clone().into());
    let description: Vec<String> = a
        .checks
        .iter()
        .map(|c| {
            format!(
                "{}:{} {}: {}",
                c.component,
                c.check,
                c.status,
                c.error.as_deref().unwrap_or("")
            )
        })
        .collect();
    if !description.is_empty() {
        ann.insert("description".into(), description.join("\n").into());
    }
    ann.insert("status".into(), a.status.as_str().into());
    if !a.root_causes.is_empty() {
        ann.insert("root_causes".into(), a.root_causes.join(", ").into());
    }
    if !a.impacts.is_empty() {
        ann.insert("impacts".into(), a.impacts.join(", ").into());
    }
    if let Some(r) = &a.runbook_url {
        ann.insert("runbook_url".into(), r.clone().into());
    }
    if let Some(o) = &a.owner {
        ann.insert("owner".into(), o.clone().into());
    }
    ann.insert("dedup_key".into(), n.dedup_key.clone().into());
    ann.insert("alert_id".into(), a.id.clone().into());
    let mut v = json!({
        "labels": labels(a),
        "annotations": ann,
        "startsAt": a.started_at.to_string(),
    });
    if let Some(url) = opts.link(n) {
        v["generatorURL"] = url.into();
    }
    if let (State::Resolved, Some(end)) = (n.state, a.ended_at) {
        v["endsAt"] = end.to_string().into();
    }
    v
}

fn watchdog(started: Timestamp, opts: &DeliveryOptions) -> Value {
    let mut v = json!({
        "labels": {"alertname": WATCHDOG, "severity": "none"},
        "annotations": {
            "summary": "Always firing while Vitalis runs and reaches this Alertmanager: route it to a dead man's switch, which pages when it stops."
        },
        "startsAt": started.to_string(),
    });
    if let Some(base) = &opts.external_url {
        v["generatorURL"] = format!("{}/livez", base.trim_end_matches('/')).into();
    }
    v
}

/// Active alerts by alert id: the postable alert and its label set.
#[derive(Debug, Default)]
struct Active {
    alerts: BTreeMap<String, Value>,
    /// Resolutions (and replaced label sets) not yet accepted.
    ending: Vec<Value>,
}

impl Active {
    fn apply(&mut self, n: &Notification, opts: &DeliveryOptions) {
        let v = postable(n, opts);
        match n.state {
            State::Firing | State::Update => {
                if let Some(old) = self.alerts.insert(n.alert.id.clone(), v.clone())
                    && old["labels"] != v["labels"]
                {
                    // Severity changed: Alertmanager sees a new alert; end the old one.
                    let mut end = old;
                    end["endsAt"] = Timestamp::now().to_string().into();
                    self.ending.push(end);
                }
            }
            State::Resolved => {
                self.alerts.remove(&n.alert.id);
                self.ending.push(v);
            }
            // Alertmanager has its own grouping and inhibition; the alert's
            // own state (paused while flapping) is what it receives.
            State::Flapping | State::Settled => {}
        }
    }

    fn batch(&self, started: Timestamp, opts: &DeliveryOptions) -> Value {
        let ends = Timestamp::now()
            .checked_add(
                jiff::SignedDuration::try_from(opts.resend_interval * 4).unwrap_or_default(),
            )
            .unwrap_or_else(|_| Timestamp::now());
        let mut all: Vec<Value> = self
            .alerts
            .values()
            .cloned()
            .chain(std::iter::once(watchdog(started, opts)))
            .map(|mut v| {
                v["endsAt"] = ends.to_string().into();
                v
            })
            .collect();
        all.extend(self.ending.iter().cloned());
        Value::Array(all)
    }
}

pub(crate) async fn run(
    spec: AlertSink,
    opts: Arc<DeliveryOptions>,
    mut rx: mpsc::Receiver<Arc<Notification>>,
    counters: Arc<SinkCounters>,
) {
    let client = client(&spec);
    let url = format!(
        "{}/api/v2/alerts",
        spec.url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
    );
    let started = Timestamp::now();
    let mut active = Active::default();
    let mut unsent: Vec<Severity> = Vec::new();
    let mut next_post = Instant::now();
    let mut failing_since: Option<Instant> = None;
    let mut delay = opts.retry.initial;
    let resend = opts.resend_interval.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            n = rx.recv() => {
                let Some(n) = n else { break };
                if matches!(n.state, State::Flapping | State::Settled) {
                    continue;
                }
                active.apply(&n, &opts);
                unsent.push(n.alert.severity);
                if failing_since.is_none() {
                    next_post = Instant::now();
                }
                continue;
            }
            _ = tokio::time::sleep_until(next_post) => {}
        }
        match post_json(&client, &url, None, &active.batch(started, &opts)).await {
            Ok(()) => {
                for s in unsent.drain(..) {
                    counters.add(s, Outcome::Delivered);
                }
                if failing_since.take().is_some() {
                    tracing::info!(target: "vitalis::alert", sink = %spec.name, "alertmanager reachable again: alerts delivered");
                }
                active.ending.clear();
                delay = opts.retry.initial;
                next_post = Instant::now() + resend;
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                let give_up = !e.retryable || since.elapsed() >= opts.retry.give_up_after;
                let outcome = if give_up {
                    Outcome::Failed
                } else {
                    Outcome::Retried
                };
                for s in &unsent {
                    counters.add(*s, outcome);
                }
                if give_up {
                    unsent.clear();
                    active.ending.clear();
                    failing_since = None;
                    delay = opts.retry.initial;
                    next_post = Instant::now() + resend;
                    tracing::error!(target: "vitalis::alert", sink = %spec.name, url = %display_url(&spec), "alertmanager rejected the alerts, giving up on pending resolutions (active alerts are re-sent in {resend:?}): {}", e.message);
                } else {
                    tracing::warn!(target: "vitalis::alert", sink = %spec.name, url = %display_url(&spec), "alertmanager post failed, retrying in {delay:?}: {}", e.message);
                    next_post = Instant::now() + delay;
                    delay = (delay * 2).min(opts.retry.max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_prometheus_names() {
        assert_eq!(label_name("tier"), "tier");
        assert_eq!(label_name("team.name"), "team_name");
        assert_eq!(label_name("9lives"), "_9lives");
        assert_eq!(label_name(""), "_");
    }
}
