//! `prometheus`: runs a PromQL instant query against a Prometheus server
//! (`GET /api/v1/query`) and judges the result.
//!
//! ```toml
//! type = "prometheus"
//! url = "http://prometheus:9090"
//! query = 'sum(rate(orders_rejected_total[5m])) / sum(rate(orders_total[5m]))'
//! assert = [{ op = "<", value = 0.05 }, { op = "<", value = 0.01, impact = "warn" }]
//! ```
//!
//! * `url` is the server's base URL (a URL ending in `/api/v1/query` is
//!   used as is).
//! * A vector result is judged series by series: each must pass `assert`
//!   (a diagnostic names the failing series). A scalar is one value; a
//!   string result is matched as text.
//! * An empty result fails and says so. Without `assert`, a non-empty
//!   result passes: an alert-style expression (`up{job="risk"} == 1`)
//!   passes while it returns something.
//! * A range-vector query (`x[5m]`) is refused with how to fix it; a query
//!   Prometheus rejects fails with its error.
//!
//! The observed value is the first series' value. `headers` and
//! `secret_headers` are sent (a bearer token); secrets never appear in output.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::metrics::{json_number, show};
use crate::scrape::{self, Endpoint};
use crate::secret::Secret;
use crate::{BuildCx, BuildError, ProbeConfig};

#[cfg(test)]
mod tests;

/// The largest answer read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How many series a diagnostic or output lists.
const SHOWN: usize = 5;

/// Runs a PromQL instant query and judges the result.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// The Prometheus server (`http://prometheus:9090`).
    pub url: String,
    /// The PromQL expression (an instant vector or a scalar).
    pub query: String,
    /// Assertions on each result value (no `path`).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request headers whose values are secrets (tokens): sent, never shown.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl ProbeConfig for PrometheusConfig {
    const NAME: &'static str = "prometheus";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let mut endpoint = Endpoint::new(&self.url, &self.headers, &self.secret_headers, None)?;
        if !endpoint
            .url
            .path()
            .trim_end_matches('/')
            .ends_with("/api/v1/query")
        {
            let path = format!("{}/api/v1/query", endpoint.url.path().trim_end_matches('/'));
            endpoint.url.set_path(&path);
        }
        if endpoint.url.query().is_some_and(|q| !q.is_empty()) {
            return Err(BuildError::key(
                "url",
                "url must not carry a query string; put the expression in `query`",
            ));
        }
        let query = self.query.trim().to_string();
        if query.is_empty() {
            return Err(BuildError::key(
                "query",
                "query is empty; write a PromQL expression such as up{job=\"api\"}",
            ));
        }
        let assert = Assertions::compile("assert", self.assert, Subject::Value)?;
        Ok(Arc::new(PrometheusCheck {
            endpoint,
            query,
            assert,
        }))
    }
}

/// A built `prometheus` check.
#[derive(Debug)]
struct PrometheusCheck {
    endpoint: Endpoint,
    query: String,
    assert: Assertions,
}

impl Check for PrometheusCheck {
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

/// One value of the result.
struct Item {
    /// `name{label="v"}`, empty for a scalar.
    series: String,
    value: Value,
    number: Option<f64>,
}

impl PrometheusCheck {
    fn what(&self) -> String {
        let base = self
            .endpoint
            .shown
            .split("/api/v1/query")
            .next()
            .unwrap_or_default()
            .to_string();
        format!("prometheus {base} `{}`", self.query)
    }

    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let what = self.what();
        let mut url: Url = self.endpoint.url.clone();
        url.query_pairs_mut().append_pair("query", &self.query);
        let fetched = match self
            .endpoint
            .get(
                Some(url),
                "application/json",
                MAX_BODY,
                cx.deadline(),
                cx.timeout(),
            )
            .await
        {
            Ok(f) => f,
            Err(e) => return Outcome::fail(format!("{what}: the query failed: {e}")),
        };
        let ms = fetched.elapsed.as_secs_f64() * 1000.0;
        let doc: Value = match serde_json::from_slice(&fetched.body) {
            Ok(d) if !fetched.truncated => d,
            _ => {
                return Outcome::fail(format!(
                    "{what}: the server answered {} without a Prometheus API document; {}; is url the Prometheus server? {}",
                    fetched.status.as_u16(),
                    scrape::status_hint(fetched.status),
                    scrape::preview(&fetched.body)
                ));
            }
        };
        if doc["status"] != "success" {
            let kind = doc["errorType"].as_str().unwrap_or("error");
            let error = doc["error"].as_str().unwrap_or("no error text");
            let hint = match kind {
                "bad_data" => "fix the PromQL (try it in the Prometheus UI)",
                "timeout" | "canceled" => {
                    "the query is too expensive for the server's limits; narrow it"
                }
                _ => "look at the Prometheus server's logs",
            };
            return Outcome::fail(format!(
                "{what}: Prometheus rejected the query ({kind}: {error}; HTTP {}); {hint}",
                fetched.status.as_u16()
            ));
        }
        let data = &doc["data"];
        let items = match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .map(|series| {
                    series
                        .iter()
                        .map(|s| item(series_name(&s["metric"]), &s["value"][1]))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Some("scalar") => vec![item(String::new(), &data["result"][1])],
            Some("string") => vec![Item {
                series: String::new(),
                value: data["result"][1].clone(),
                number: None,
            }],
            Some("matrix") => {
                return Outcome::fail(format!(
                    "{what}: the query returns a range vector (matrix); an instant query needs an instant vector: wrap it, e.g. last_over_time(…[5m]) or rate(…[5m])"
                ));
            }
            other => {
                return Outcome::fail(format!(
                    "{what}: unexpected result type {}; is this a Prometheus-compatible API?",
                    other.unwrap_or("(none)")
                ));
            }
        };
        let warnings = doc["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|w| !w.is_empty())
            .map(|w| format!(" (Prometheus warns: {w})"))
            .unwrap_or_default();
        if items.is_empty() {
            return Outcome::fail(format!(
                "{what}: the query returned no series (empty result){warnings}; is the metric scraped (check up{{job=…}}), are the label matchers right, or is the condition simply not met? try it in the Prometheus UI"
            ))
            .observed(ms, "ms");
        }
        self.judge(&items, &warnings)
    }

    fn judge(&self, items: &[Item], warnings: &str) -> Outcome {
        let what = self.what();
        let several = items.len() > 1;
        let mut problems: Vec<(Status, String)> = Vec::new();
        let mut passed: Vec<String> = Vec::new();
        for it in items {
            let prefix = if several || !it.series.is_empty() {
                format!(
                    "{}: ",
                    if it.series.is_empty() {
                        "{}"
                    } else {
                        &it.series
                    }
                )
            } else {
                String::new()
            };
            if self.assert.is_empty() {
                passed.push(format!("{prefix}{}", text(&it.value)));
                continue;
            }
            if it.number.is_some_and(f64::is_nan) {
                problems.push((
                    Status::Fail,
                    format!("{prefix}value is NaN (e.g. a rate of 0/0), so no assertion can hold"),
                ));
                continue;
            }
            let verdict = self.assert.evaluate_value(&it.value);
            let shown = |t: String| {
                t.replace(&json_number(f64::MIN).to_string(), "-Inf")
                    .replace(&json_number(f64::MAX).to_string(), "+Inf")
            };
            if verdict.status == Status::Pass {
                passed.push(format!("{prefix}{}", shown(verdict.summary())));
            } else {
                problems.push((
                    verdict.status,
                    format!("{prefix}{}", shown(verdict.message())),
                ));
            }
        }
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let outcome = match status {
            Status::Pass => {
                let mut shown: Vec<String> = passed.iter().take(SHOWN).cloned().collect();
                if passed.len() > SHOWN {
                    shown.push(format!("and {} more", passed.len() - SHOWN));
                }
                Outcome::pass(format!("{what}: {}{warnings}", shown.join(", ")))
            }
            s => {
                let total = problems.len();
                let mut shown: Vec<String> =
                    problems.into_iter().take(SHOWN).map(|(_, m)| m).collect();
                if total > SHOWN {
                    shown.push(format!("and {} more series fail", total - SHOWN));
                }
                let text = format!("{what}: {}{warnings}", shown.join("; "));
                if s == Status::Warn {
                    Outcome::warn(text)
                } else {
                    Outcome::fail(text)
                }
            }
        };
        match items[0].number.filter(|n| n.is_finite()) {
            Some(n) => outcome.observed(n, "value"),
            None => outcome,
        }
    }
}

/// A sample value (`"0.93"`, `"NaN"`, `"+Inf"`) as a number and as JSON.
fn item(series: String, raw: &Value) -> Item {
    let number = raw.as_str().and_then(|s| match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    });
    let value = match number {
        Some(n) if n.is_nan() => Value::String("NaN".into()),
        Some(n) => json_number(n),
        None => raw.clone(),
    };
    Item {
        series,
        value,
        number,
    }
}

/// `name{a="1", b="2"}` from a result's `metric` object.
fn series_name(metric: &Value) -> String {
    let Some(map) = metric.as_object() else {
        return String::new();
    };
    let name = map.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect();
    if labels.is_empty() {
        if name.is_empty() {
            "{}".to_string()
        } else {
            name.to_string()
        }
    } else {
        format!("{name}{{{}}}", labels.join(", "))
    }
}

/// A value as shown: numbers as Prometheus writes them.
fn text(v: &Value) -> String {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(|f| {
                if f == f64::MAX {
                    "+Inf".into()
                } else if f == f64::MIN {
                    "-Inf".into()
                } else {
                    show(f)
                }
            })
            .unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
