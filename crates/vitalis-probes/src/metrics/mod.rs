//! `metrics`: scrapes a Prometheus / OpenMetrics text endpoint of the
//! target itself and judges one sample — no Prometheus server needed.
//!
//! ```toml
//! type = "metrics"
//! url = "http://127.0.0.1:9100/metrics"
//! metric = "db_pool_connections_in_use_ratio"
//! labels = { pool = "orders" }
//! assert = [
//!   { op = "<", value = 0.9 },
//!   { op = "<", value = 0.75, impact = "warn" },
//! ]
//! ```
//!
//! * `metric` is the sample name as exposed (`…_total` for counters);
//!   `labels` must all match (other labels may be present). When several
//!   series match, each must pass (a diagnostic names the failing series).
//! * `assert` is on the sample's value (no `path`). Without `assert` and
//!   `max_age`, the sample only has to be present.
//! * `max_age`: the value is a Unix timestamp in seconds (e.g.
//!   `drift_last_run_timestamp_seconds`); fail when it is older. The
//!   observed value is then the age in seconds.
//! * Otherwise the observed value is the sample's value, with a unit taken
//!   from the OpenMetrics `# UNIT` or the name's suffix (`_seconds` → `s`,
//!   `_bytes` → `bytes`, `_ratio` → `ratio`, `_percent` → `percent`,
//!   `_total`/`_count` → `count`, else `value`).
//!
//! `headers` and `secret_headers` are sent with the scrape (a bearer
//! token); secret values and URL userinfo never appear in output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::scrape::{self, Endpoint};
use crate::secret::Secret;
use crate::{BuildCx, BuildError, ProbeConfig};

pub(crate) mod exposition;

#[cfg(test)]
mod tests;

use exposition::Sample;

/// Timestamps before 2000 or after 5138 are not Unix seconds.
const EPOCH_2000: f64 = 946_684_800.0;
const EPOCH_MAX: f64 = 1e11;

/// The largest scrape read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What the scrape asks for (OpenMetrics first, then the Prometheus text).
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Scrapes `url` and judges one sample.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The metrics endpoint (`http://host:port/metrics`).
    pub url: String,
    /// The sample name, as exposed (e.g. `http_requests_total`).
    pub metric: String,
    /// Labels the sample must have (others may be present).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Assertions on the value (no `path`).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// The value is a Unix timestamp (seconds): fail when older than this.
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request headers whose values are secrets (tokens): sent, never shown.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("metric", &self.metric)
            .field("labels", &self.labels)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl ProbeConfig for MetricsConfig {
    const NAME: &'static str = "metrics";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let endpoint = Endpoint::new(&self.url, &self.headers, &self.secret_headers, None)?;
        let metric = self.metric.trim().to_string();
        if metric.is_empty() || metric.contains(['{', '}', ' ', '"']) {
            return Err(BuildError::key(
                "metric",
                format!(
                    "metric '{}' is not a sample name; write the name only (e.g. http_requests_total) and put labels in `labels`",
                    self.metric
                ),
            ));
        }
        let assert = Assertions::compile("assert", self.assert, Subject::Value)?;
        if self.max_age.is_some_and(|a| a.is_zero()) {
            return Err(BuildError::key("max_age", "max_age must be longer than 0s"));
        }
        Ok(Arc::new(MetricsCheck {
            endpoint,
            metric,
            labels: self.labels,
            assert,
            max_age: self.max_age,
        }))
    }
}

/// A built `metrics` check.
#[derive(Debug)]
struct MetricsCheck {
    endpoint: Endpoint,
    metric: String,
    labels: BTreeMap<String, String>,
    assert: Assertions,
    max_age: Option<Duration>,
}

impl Check for MetricsCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let o = self.attempt(&cx).await;
            self.endpoint.scrub(o)
        })
    }

    fn target_host(&self) -> Option<String> {
        self.endpoint.host()
    }
}

impl MetricsCheck {
    /// `metrics http://host/metrics pool_usage{pool="orders"}`.
    fn what(&self) -> String {
        format!(
            "metrics {} {}",
            self.endpoint.shown,
            series(&self.metric, self.labels.iter())
        )
    }

    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let what = self.what();
        let fetched = match self
            .endpoint
            .get(None, ACCEPT, MAX_BODY, cx.deadline(), cx.timeout())
            .await
        {
            Ok(f) => f,
            Err(e) => return Outcome::fail(format!("{what}: scrape failed: {e}")),
        };
        if !fetched.status.is_success() {
            return Outcome::fail(format!(
                "{what}: the endpoint answered {} (expected 2xx); {}; {}",
                fetched.status.as_u16(),
                scrape::status_hint(fetched.status),
                scrape::preview(&fetched.body)
            ));
        }
        if fetched.truncated {
            return Outcome::fail(format!(
                "{what}: the scrape is over {} MiB; is this the right endpoint?",
                MAX_BODY >> 20
            ));
        }
        let text = String::from_utf8_lossy(&fetched.body);
        let openmetrics =
            fetched.content_type.contains("openmetrics") || text.trim_end().ends_with("# EOF");
        let parsed = exposition::parse(&text, openmetrics);
        let found: Vec<&Sample> = parsed
            .samples
            .iter()
            .filter(|s| {
                s.name == self.metric
                    && self
                        .labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect();
        if found.is_empty() {
            return Outcome::fail(self.not_found(&parsed, &fetched.content_type));
        }
        self.judge(&found, &parsed.units)
    }

    fn not_found(&self, parsed: &exposition::Exposition, content_type: &str) -> String {
        let what = self.what();
        let same_name: Vec<&Sample> = parsed
            .samples
            .iter()
            .filter(|s| s.name == self.metric)
            .collect();
        let mut text = if !same_name.is_empty() {
            let shown: Vec<String> = same_name
                .iter()
                .take(5)
                .map(|s| series(&s.name, s.labels.iter().map(|(k, v)| (k, v))))
                .collect();
            format!(
                "{what}: no series has these labels; the endpoint has {} series of {}: {}{}; fix `labels`",
                same_name.len(),
                self.metric,
                shown.join(", "),
                if same_name.len() > 5 { ", …" } else { "" }
            )
        } else if parsed.samples.is_empty() {
            format!(
                "{what}: the endpoint exposes no samples (content type '{content_type}'); is url the metrics endpoint?"
            )
        } else {
            let mut similar: Vec<&str> = parsed
                .samples
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| {
                    let base = self.metric.trim_end_matches("_total");
                    n.contains(base) || base.contains(*n)
                })
                .collect();
            similar.dedup();
            let mut t = format!(
                "{what}: the metric is not exposed ({} samples scraped)",
                parsed.samples.len()
            );
            if !similar.is_empty() {
                similar.truncate(5);
                t.push_str(&format!("; similar names: {}", similar.join(", ")));
            }
            t.push_str("; has the application registered it yet (some metrics appear only after their first event)?");
            t
        };
        if let Some(first) = parsed.errors.first() {
            text.push_str(&format!(
                " ({} malformed line{}, first: {first})",
                parsed.errors.len(),
                if parsed.errors.len() == 1 { "" } else { "s" }
            ));
        }
        text
    }

    fn judge(
        &self,
        found: &[&Sample],
        units: &std::collections::HashMap<String, String>,
    ) -> Outcome {
        let what = self.what();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let several = found.len() > 1;
        let mut problems: Vec<(Status, String)> = Vec::new();
        let mut passed: Vec<String> = Vec::new();
        for s in found {
            let name = if several {
                format!(
                    "{}: ",
                    series(&s.name, s.labels.iter().map(|(k, v)| (k, v)))
                )
            } else {
                String::new()
            };
            if let Some(max) = self.max_age {
                if !s.value.is_finite() || !(EPOCH_2000..EPOCH_MAX).contains(&s.value) {
                    let hint = if s.value >= EPOCH_MAX && s.value.is_finite() {
                        " (it looks like milliseconds)"
                    } else {
                        ""
                    };
                    problems.push((
                        Status::Fail,
                        format!(
                            "{name}value {} is not a Unix timestamp in seconds{hint}; max_age needs a metric whose value is the time of the last run in seconds",
                            show(s.value)
                        ),
                    ));
                    continue;
                }
                let age = now - s.value;
                if age > max.as_secs_f64() {
                    problems.push((
                        Status::Fail,
                        format!(
                            "{name}last at {} ({} ago), over max_age {}; has the job stopped running?",
                            timestamp(s.value),
                            ago(age),
                            vitalis_core::duration::format(max)
                        ),
                    ));
                } else {
                    passed.push(format!(
                        "{name}last at {} ({} ago)",
                        timestamp(s.value),
                        ago(age)
                    ));
                }
            }
            if !self.assert.is_empty() {
                if s.value.is_nan() {
                    problems.push((
                        Status::Fail,
                        format!(
                            "{name}value is NaN (no data, e.g. a ratio of 0/0), so no assertion can hold; has the application measured anything yet?"
                        ),
                    ));
                    continue;
                }
                let verdict = self.assert.evaluate_value(&json_number(s.value));
                // Infinities are compared as the largest floats, shown as ±Inf.
                let shown = |t: String| {
                    t.replace(&json_number(f64::MIN).to_string(), "-Inf")
                        .replace(&json_number(f64::MAX).to_string(), "+Inf")
                };
                if verdict.status == Status::Pass {
                    passed.push(format!("{name}{}", shown(verdict.summary())));
                } else {
                    problems.push((
                        verdict.status,
                        format!("{name}{}", shown(verdict.message())),
                    ));
                }
            }
            if self.max_age.is_none() && self.assert.is_empty() {
                passed.push(format!("{name}value = {}", show(s.value)));
            }
        }
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let outcome = match status {
            Status::Pass => Outcome::pass(format!("{what}: {}", passed.join(", "))),
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
        let first = found[0];
        if self.max_age.is_some() {
            if (EPOCH_2000..EPOCH_MAX).contains(&first.value) {
                let age = ((now - first.value) * 1000.0).round() / 1000.0;
                return outcome.observed(age, "s");
            }
            return outcome;
        }
        if first.value.is_finite() {
            return outcome.observed(first.value, unit(&self.metric, units));
        }
        outcome
    }
}

/// `name{a="1", b="2"}` (or the bare name).
fn series<'a>(name: &str, labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let pairs: Vec<String> = labels.map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    if pairs.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", pairs.join(", "))
    }
}

/// A sample value as JSON; infinities become the largest floats (so that
/// `+Inf > 1000` holds), NaN becomes `"NaN"`.
pub(crate) fn json_number(v: f64) -> Value {
    let v = if v == f64::INFINITY {
        f64::MAX
    } else if v == f64::NEG_INFINITY {
        f64::MIN
    } else {
        v
    };
    serde_json::Number::from_f64(v).map_or_else(|| Value::String(show(v)), Value::Number)
}

pub(crate) fn show(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// The observed unit of a sample.
fn unit(metric: &str, units: &std::collections::HashMap<String, String>) -> &'static str {
    let declared = units
        .iter()
        .find(|(family, _)| metric.starts_with(family.as_str()))
        .map(|(_, u)| u.as_str());
    let from = |word: &str| match word {
        "seconds" => Some("s"),
        "milliseconds" => Some("ms"),
        "bytes" => Some("bytes"),
        "ratio" => Some("ratio"),
        "percent" => Some("percent"),
        _ => None,
    };
    if let Some(u) = declared.and_then(from) {
        return u;
    }
    let base = metric
        .strip_suffix("_total")
        .or_else(|| metric.strip_suffix("_count"));
    if base.is_some() {
        return "count";
    }
    metric.rsplit('_').next().and_then(from).unwrap_or("value")
}

/// `2m 5s`, `3.2s`.
fn ago(seconds: f64) -> String {
    if seconds < 0.0 {
        return format!("{:.1}s in the future", -seconds);
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    vitalis_core::duration::format(Duration::from_secs(seconds as u64))
}

/// `2026-01-31 12:00:00 UTC`.
fn timestamp(unix: f64) -> String {
    match jiff::Timestamp::from_second(unix as i64) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{unix} (unix time)"),
    }
}
