//! What the `postgres` and `sqlite` probes share: judging the first value of
//! a query's result (assertions, `max_latency`, the observed value).

use std::time::Duration;

use serde_json::Value;
use vitalis_core::{Outcome, Perfdata, Status};

use crate::assertion::Assertions;

/// How much of a query a diagnostic quotes.
const QUERY_CHARS: usize = 80;

/// How a query's result is judged; compiled once from the config.
#[derive(Debug, Clone)]
pub(crate) struct QueryJudge {
    /// Assertions on the first value (`Subject::Value`).
    pub(crate) assert: Assertions,
    /// Bound on the whole run (connect + query).
    pub(crate) max_latency: Option<Duration>,
    /// The unit of a numeric first value, when the config gives one.
    pub(crate) unit: Option<String>,
}

/// What one run got.
#[derive(Debug)]
pub(crate) struct Ran {
    /// The first column of the first row; `None` when there was no row.
    pub(crate) first: Option<Value>,
    /// Connect (or acquire) and query, together.
    pub(crate) elapsed: Duration,
    /// How the time was spent and pool figures (`connect 1.2ms, query 0.4ms`).
    pub(crate) detail: String,
    /// Extra figures for the result's perfdata (pool size and idle count).
    pub(crate) perfdata: Vec<Perfdata>,
}

impl QueryJudge {
    /// The outcome of a run that got an answer; `what` starts every message
    /// (`postgres postgres://***@127.0.0.1:5432/app`).
    pub(crate) fn judge(&self, what: &str, ran: Ran) -> Outcome {
        let ms = ran.elapsed.as_secs_f64() * 1000.0;
        let shown = match &ran.first {
            None => "no row".to_string(),
            Some(v) => format!("first value {}", show(v)),
        };
        let mut problems: Vec<(Status, String)> = Vec::new();
        if let Some(max) = self.max_latency
            && ran.elapsed > max
        {
            problems.push((
                Status::Fail,
                format!(
                    "answered in {ms:.1}ms ({}), over max_latency {}; the database or the network is slow: look at the server's load, locks and slow queries",
                    ran.detail,
                    vitalis_core::duration::format(max)
                ),
            ));
        }
        let mut passed = String::new();
        if !self.assert.is_empty() {
            match &ran.first {
                None => problems.push((
                    Status::Fail,
                    "the query returned no row, so there is no value to assert on; does it select what you expect (a WHERE that matches nothing, an empty table)?"
                        .to_string(),
                )),
                Some(v) => {
                    let verdict = self.assert.evaluate_value(v);
                    if verdict.status != Status::Pass {
                        problems.push((verdict.status, verdict.message()));
                    }
                    passed = verdict.summary();
                }
            }
        }
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let mut outcome = if status == Status::Pass {
            let mut text = format!("{what}: {shown} in {ms:.1}ms ({})", ran.detail);
            if !passed.is_empty() {
                text.push_str("; ");
                text.push_str(&passed);
            }
            Outcome::pass(text)
        } else {
            let text = problems
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; ");
            let message = format!("{what}: {text}");
            let mut o = if status == Status::Warn {
                Outcome::warn(message)
            } else {
                Outcome::fail(message)
            };
            o.output = format!("{}; {shown} in {ms:.1}ms ({})", o.output, ran.detail);
            o
        };
        match ran.first.as_ref().and_then(Value::as_f64) {
            Some(n) => {
                outcome.observed_value = Some(n);
                outcome.observed_unit = self.unit.clone();
            }
            None => outcome = outcome.observed(ms, "ms"),
        }
        outcome.perfdata.push(Perfdata {
            label: "latency".into(),
            value: ms,
            unit: "ms".into(),
            warn: None,
            crit: None,
            min: Some(0.0),
            max: self.max_latency.map(|m| m.as_secs_f64() * 1000.0),
        });
        outcome.perfdata.extend(ran.perfdata);
        outcome
    }
}

/// A count for perfdata (`pool_size`, `pool_idle`).
pub(crate) fn count(label: &str, value: f64, max: Option<f64>) -> Perfdata {
    Perfdata {
        label: label.into(),
        value,
        unit: String::new(),
        warn: None,
        crit: None,
        min: Some(0.0),
        max,
    }
}

/// The query for a diagnostic: one line, cut at 80 characters.
pub(crate) fn show_query(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(QUERY_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// A value for the output: JSON text, cut at 120 characters.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// A number's text as a JSON number (`None` for text that is not a finite number).
pub(crate) fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

/// Milliseconds, for diagnostics.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion::{AssertionConfig, Subject};
    use serde_json::json;

    fn judge(rules: &str, max_latency: Option<Duration>) -> QueryJudge {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, rename = "assert")]
            list: Vec<AssertionConfig>,
        }
        let t: T = toml::from_str(rules).unwrap();
        QueryJudge {
            assert: Assertions::compile("assert", t.list, Subject::Value).unwrap(),
            max_latency,
            unit: Some("s".into()),
        }
    }

    fn ran(first: Option<Value>, ms: u64) -> Ran {
        Ran {
            first,
            elapsed: Duration::from_millis(ms),
            detail: "query 1.0ms".into(),
            perfdata: vec![count("pool_size", 1.0, Some(2.0))],
        }
    }

    #[test]
    fn numbers_are_observed_and_asserted_text_is_not_observed() {
        let j = judge(
            r#"assert = [{ op = "<", value = 60 }, { op = "<", value = 20, impact = "warn" }]"#,
            None,
        );
        let o = j.judge("pg x", ran(Some(json!(5)), 3));
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed_value, Some(5.0));
        assert_eq!(o.observed_unit.as_deref(), Some("s"));
        assert!(
            o.output
                .starts_with("pg x: first value 5 in 3.0ms (query 1.0ms); value = 5 (< 60)"),
            "{}",
            o.output
        );
        assert_eq!(o.perfdata[0].label, "latency");
        assert_eq!(o.perfdata[1].label, "pool_size");
        let o = j.judge("pg x", ran(Some(json!(45.5)), 3));
        assert_eq!(o.status, Status::Warn);
        assert_eq!(
            o.error.as_deref(),
            Some("pg x: value = 45.5, expected < 20 (impact warn)")
        );
        let o = j.judge("pg x", ran(Some(json!("abc")), 3));
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed_unit.as_deref(), Some("ms"));
        let o = j.judge("pg x", ran(None, 3));
        assert_eq!(o.status, Status::Fail);
        assert!(o.error.unwrap().contains("returned no row"));
    }

    #[test]
    fn max_latency_bounds_the_run() {
        let j = judge("", Some(Duration::from_millis(50)));
        let o = j.judge("pg x", ran(Some(json!(1)), 80));
        assert_eq!(o.status, Status::Fail);
        assert!(
            o.error
                .unwrap()
                .starts_with("pg x: answered in 80.0ms (query 1.0ms), over max_latency 50ms"),
        );
        assert_eq!(j.judge("pg x", ran(None, 10)).status, Status::Pass);
    }

    #[test]
    fn helpers() {
        assert_eq!(number("42"), Some(json!(42)));
        assert_eq!(number(" 4.5 "), Some(json!(4.5)));
        assert_eq!(number("NaN"), None);
        assert_eq!(number("x"), None);
        assert_eq!(show_query("SELECT\n  1"), "SELECT 1");
        assert!(show_query(&"x ".repeat(100)).ends_with('…'));
    }
}
