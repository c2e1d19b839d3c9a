//! `heartbeat`: a push check. The monitored job reports to Vitalis
//! (`POST /v1/components/{id}/heartbeat`, optionally with a body
//! `{"status":"fail","output":"…"}`), and the check judges the last report:
//!
//! * `pass` while the last heartbeat is younger than `ttl` and reported `pass`
//!   (or `warn`, which warns);
//! * `fail` when none arrived within `ttl` (saying when the last one came), or
//!   when the last one reported `fail` (with its output);
//! * `unknown` while waiting for the first heartbeat, until `ttl` has passed
//!   since the check started.
//!
//! ```toml
//! [[component.check]]
//! name = "nightly-export"
//! type = "heartbeat"
//! ttl = "26h"
//! ```
//!
//! The observed value is the age of the last heartbeat in seconds.
//!
//! Heartbeats live in a [`Heartbeats`] store, shared (cheaply cloned)
//! between the HTTP endpoint that records them and the checks that read
//! them; it is reachable from [`BuildCx::heartbeats`] and survives reloads
//! when the same store is passed to every build.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::{BuildCx, BuildError, ProbeConfig};

/// The longest `output` kept from a heartbeat (longer ones are cut).
pub const MAX_OUTPUT_CHARS: usize = 1024;

/// Passes while the last heartbeat pushed for the component is younger than
/// `ttl` and did not report a failure.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// How long a heartbeat counts (e.g. `90s`, `26h`): set it a little
    /// longer than the job's own period.
    #[serde(with = "vitalis_core::duration")]
    #[schemars(with = "String")]
    pub ttl: Duration,
}

impl ProbeConfig for HeartbeatConfig {
    const NAME: &'static str = "heartbeat";

    fn build(self, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        if self.ttl.is_zero() {
            return Err(BuildError::key(
                "ttl",
                "ttl must be longer than 0s: set it a little over the job's period (e.g. 90s for a job every minute)",
            ));
        }
        Ok(Arc::new(HeartbeatCheck {
            ttl: self.ttl,
            component: cx.component.clone(),
            started: Instant::now(),
            watch: cx.heartbeats.watch(&cx.component),
        }))
    }
}

// === impl Heartbeats ===

/// The heartbeats pushed to Vitalis, by component id. Cheap to clone: every
/// clone is the same store.
///
/// The HTTP endpoint calls [`Heartbeats::record`] (after parsing the body
/// with [`parse_body`]); `heartbeat` checks read the last beat of their
/// component; [`Heartbeats::is_watched`] tells the endpoint whether any
/// heartbeat check exists for a component (to answer 404 otherwise).
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    inner: Arc<Mutex<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    beats: HashMap<String, Beat>,
    /// How many live `heartbeat` checks read each component.
    watchers: HashMap<String, usize>,
}

/// One received heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    /// What the job reported (`pass` when the body said nothing).
    pub status: Status,
    /// What the job said, cut at [`MAX_OUTPUT_CHARS`].
    pub output: Option<String>,
    /// When it arrived (monotonic, for ages).
    pub received: Instant,
    /// When it arrived (wall clock, for messages).
    pub at: jiff::Timestamp,
}

impl Heartbeats {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a heartbeat for `component`, replacing the previous one.
    pub fn record(&self, component: &str, status: Status, output: Option<String>) {
        let output = output
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .map(|o| match o.char_indices().nth(MAX_OUTPUT_CHARS) {
                Some((cut, _)) => format!("{}…", &o[..cut]),
                None => o,
            });
        let beat = Beat {
            status,
            output,
            received: Instant::now(),
            at: jiff::Timestamp::now(),
        };
        self.lock().beats.insert(component.to_string(), beat);
    }

    /// The last heartbeat of `component`, if any arrived.
    pub fn last(&self, component: &str) -> Option<Beat> {
        self.lock().beats.get(component).cloned()
    }

    /// Whether a `heartbeat` check currently reads `component`.
    pub fn is_watched(&self, component: &str) -> bool {
        self.lock().watchers.get(component).is_some_and(|n| *n > 0)
    }

    /// Marks `component` as read by a check until the guard is dropped.
    fn watch(&self, component: &str) -> Watch {
        *self
            .lock()
            .watchers
            .entry(component.to_string())
            .or_default() += 1;
        Watch {
            store: self.clone(),
            component: component.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps a component marked as watched while its check lives.
#[derive(Debug)]
struct Watch {
    store: Heartbeats,
    component: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut store = self.store.lock();
        if let Some(n) = store.watchers.get_mut(&self.component) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                store.watchers.remove(&self.component);
            }
        }
    }
}

/// Parses a heartbeat request body: empty (or whitespace) means `pass`;
/// otherwise a JSON object with an optional `status` (`pass`, `ok`, `up`,
/// `warn`, `fail`, `down`, `error`; default `pass`) and an optional `output`
/// string. The error says what is wrong, for a 400 answer.
pub fn parse_body(body: &[u8]) -> Result<(Status, Option<String>), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Status::Pass, None));
    }
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON ({e}); send nothing, or {{\"status\":\"fail\",\"output\":\"…\"}}"
        )
    })?;
    let serde_json::Value::Object(map) = doc else {
        return Err(
            "the body must be a JSON object like {\"status\":\"fail\",\"output\":\"…\"}".into(),
        );
    };
    if let Some(key) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "status" | "output"))
    {
        return Err(format!(
            "unknown field '{key}' in the heartbeat; use status and output"
        ));
    }
    let status = match map.get("status") {
        None | Some(serde_json::Value::Null) => Status::Pass,
        Some(serde_json::Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "pass" | "ok" | "up" => Status::Pass,
            "warn" => Status::Warn,
            "fail" | "down" | "error" => Status::Fail,
            other => {
                return Err(format!("status '{other}' is not one of pass, warn, fail"));
            }
        },
        Some(other) => return Err(format!("status must be a string (got {other})")),
    };
    let output = match map.get("output") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("output must be a string (got {other})")),
    };
    Ok((status, output))
}

// === impl HeartbeatCheck ===

/// A built `heartbeat` check.
#[derive(Debug)]
struct HeartbeatCheck {
    ttl: Duration,
    component: String,
    started: Instant,
    watch: Watch,
}

impl Check for HeartbeatCheck {
    fn run(&self, _cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move { self.judge(self.watch.store.last(&self.component)) })
    }
}

impl HeartbeatCheck {
    fn judge(&self, beat: Option<Beat>) -> Outcome {
        let ttl = vitalis_core::duration::format(self.ttl);
        let endpoint = format!("POST /v1/components/{}/heartbeat", self.component);
        let Some(beat) = beat else {
            let waited = self.started.elapsed();
            let waited_text = seconds(waited);
            return if waited < self.ttl {
                Outcome::unknown(format!(
                    "heartbeat {}: waiting for the first heartbeat ({waited_text} since the check started, ttl {ttl})",
                    self.component
                ))
            } else {
                Outcome::fail(format!(
                    "heartbeat {}: no heartbeat received since the check started {waited_text} ago (ttl {ttl}); is the job running, and does it send {endpoint} with a token that has the heartbeat scope?",
                    self.component
                ))
            };
        };
        let age = beat.received.elapsed();
        let age_s = age.as_secs_f64();
        let when = format!(
            "last heartbeat {} ago, at {}",
            seconds(age),
            beat.at.round(jiff::Unit::Second).unwrap_or(beat.at)
        );
        let said = beat
            .output
            .as_deref()
            .map(|o| format!(": {o}"))
            .unwrap_or_default();
        let outcome = if age > self.ttl {
            Outcome::fail(format!(
                "heartbeat {}: none within ttl {ttl} ({when}); has the job stopped or started failing before it reports? look at its logs and schedule",
                self.component
            ))
        } else {
            match beat.status {
                Status::Fail => Outcome::fail(format!(
                    "heartbeat {}: the job reported a failure{said} ({when})",
                    self.component
                )),
                Status::Warn => Outcome::warn(format!(
                    "heartbeat {}: the job reported a warning{said} ({when})",
                    self.component
                )),
                Status::Unknown => Outcome::unknown(format!(
                    "heartbeat {}: the job reported unknown{said} ({when})",
                    self.component
                )),
                Status::Pass => Outcome::pass(format!(
                    "heartbeat {}: ok{said} ({when}, ttl {ttl})",
                    self.component
                )),
            }
        };
        outcome.observed((age_s * 1000.0).round() / 1000.0, "s")
    }
}

/// A duration rounded to whole seconds (milliseconds under a second).
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    vitalis_core::duration::format(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(ttl: &str, cx: &BuildCx) -> Arc<dyn Check> {
        let mut t = toml::Table::new();
        t.insert("ttl".into(), ttl.into());
        crate::kind("heartbeat").unwrap().build(t, cx).unwrap()
    }

    fn cx(heartbeats: &Heartbeats) -> BuildCx {
        BuildCx {
            component: "export".into(),
            check: "beat".into(),
            heartbeats: heartbeats.clone(),
            ..BuildCx::default()
        }
    }

    async fn run(check: &Arc<dyn Check>) -> Outcome {
        check.run(CheckCx::new(Duration::from_secs(1))).await
    }

    #[tokio::test]
    async fn passes_on_a_fresh_ok_beat_and_fails_on_a_reported_failure() {
        let store = Heartbeats::new();
        let check = build("1h", &cx(&store));
        assert!(store.is_watched("export"));
        assert!(!store.is_watched("other"));

        let o = run(&check).await;
        assert_eq!(o.status, Status::Unknown, "{o:?}");
        assert!(
            o.output.contains("waiting for the first heartbeat"),
            "{o:?}"
        );

        let (status, output) = parse_body(b"").unwrap();
        store.record("export", status, output);
        let o = run(&check).await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed_unit.as_deref(), Some("s"));
        assert!(o.observed_value.unwrap() < 1.0);

        let (status, output) =
            parse_body(br#"{"status":"fail","output":"export: disk full"}"#).unwrap();
        store.record("export", status, output);
        let o = run(&check).await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains("reported a failure: export: disk full") && err.contains("ago, at "),
            "{err}"
        );

        store.record("export", Status::Warn, Some("slow".into()));
        assert_eq!(run(&check).await.status, Status::Warn);

        drop(check);
        assert!(!store.is_watched("export"), "the guard unregisters");
    }

    #[tokio::test]
    async fn fails_when_no_beat_within_ttl_saying_when_the_last_came() {
        let store = Heartbeats::new();
        let check = build("150ms", &cx(&store));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = run(&check).await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains("no heartbeat received since the check started")
                && err.contains("POST /v1/components/export/heartbeat"),
            "{err}"
        );

        store.record("export", Status::Pass, None);
        assert_eq!(run(&check).await.status, Status::Pass);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = run(&check).await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains("none within ttl 150ms") && err.contains("last heartbeat 2"),
            "{err}"
        );
        assert!(o.observed_value.unwrap() >= 0.2);
    }

    #[test]
    fn bodies_parse_strictly() {
        assert_eq!(parse_body(b"  \n").unwrap(), (Status::Pass, None));
        assert_eq!(
            parse_body(br#"{"status":"OK"}"#).unwrap(),
            (Status::Pass, None)
        );
        assert_eq!(
            parse_body(br#"{"status":"warn","output":"lagging"}"#).unwrap(),
            (Status::Warn, Some("lagging".into()))
        );
        assert!(parse_body(b"fail").unwrap_err().contains("not JSON"));
        assert!(
            parse_body(br#"{"status":"maybe"}"#)
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            parse_body(br#"{"stat":"fail"}"#)
                .unwrap_err()
                .contains("unknown field 'stat'")
        );
        assert!(parse_body(br#"[1]"#).unwrap_err().contains("JSON object"));
        let long = "x".repeat(MAX_OUTPUT_CHARS + 10);
        let store = Heartbeats::new();
        store.record("c", Status::Fail, Some(long));
        assert_eq!(
            store.last("c").unwrap().output.unwrap().chars().count(),
            MAX_OUTPUT_CHARS + 1
        );
    }

    #[test]
    fn refuses_a_zero_ttl_and_unknown_keys() {
        let mut t = toml::Table::new();
        t.insert("ttl".into(), "0s".into());
        let e = crate::kind("heartbeat")
            .unwrap()
            .build(t, &BuildCx::default())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("ttl"));
        let mut t = toml::Table::new();
        t.insert("ttl".into(), "1m".into());
        t.insert("url".into(), "x".into());
        let e = crate::kind("heartbeat")
            .unwrap()
            .build(t, &BuildCx::default())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("url"));
    }

    #[test]
    fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
        let mut generator = schemars::SchemaGenerator::default();
        let schema = crate::kind("heartbeat").unwrap().schema(&mut generator);
        let text = serde_json::to_string(&schema).unwrap();
        let defs = serde_json::to_string(&generator.definitions()).unwrap();
        assert!(text.contains("ttl") || defs.contains("ttl"), "ttl missing");
        // As `vitalis validate` does: no tokio runtime here.
        let table: toml::Table = toml::from_str("ttl = \"1m\"").unwrap();
        assert!(
            crate::kind("heartbeat")
                .unwrap()
                .build(table, &crate::BuildCx::default())
                .is_ok()
        );
    }
}
