//! A parser for the Prometheus text exposition format (0.0.4) and
//! OpenMetrics text (1.0): samples with their labels, values and
//! timestamps.
//!
//! * `# HELP`, `# TYPE`, `# UNIT` and other comments are skipped (the
//!   `# UNIT` of a family is kept, for the observed unit); `# EOF` ends
//!   OpenMetrics text.
//! * Label values unescape `\\`, `\"` and `\n`; quoted (UTF-8) metric and
//!   label names (`{"my.metric", "a.b"="x"}`) are read too.
//! * Values: floats, `+Inf`, `-Inf`, `NaN`. Timestamps: integer
//!   milliseconds in Prometheus text, (fractional) seconds in OpenMetrics;
//!   both are returned in seconds.
//! * Exemplars (`… # {trace_id="x"} 1.0`) are ignored.
//!
//! A malformed line does not stop the parse: it is reported with its line
//! number, and the other lines still count (a health probe looks for one
//! sample and should still find it).

use std::collections::HashMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
    /// Seconds since the Unix epoch, when the line carries a timestamp.
    pub(crate) timestamp: Option<f64>,
}

/// What a parse found.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Exposition {
    pub(crate) samples: Vec<Sample>,
    /// `# UNIT` by family name (OpenMetrics).
    pub(crate) units: HashMap<String, String>,
    /// `line N: what is wrong`, for the lines that could not be read.
    pub(crate) errors: Vec<String>,
}

/// Parses exposition text; `openmetrics` selects how timestamps are read
/// (seconds rather than milliseconds).
pub(crate) fn parse(text: &str, openmetrics: bool) -> Exposition {
    let mut out = Exposition::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim_start();
            if comment == "EOF" {
                break;
            }
            if let Some(rest) = comment.strip_prefix("UNIT ") {
                let mut parts = rest.trim().splitn(2, ' ');
                if let (Some(family), Some(unit)) = (parts.next(), parts.next()) {
                    out.units
                        .insert(family.to_string(), unit.trim().to_string());
                }
            }
            continue;
        }
        match sample(trimmed, openmetrics) {
            Ok(s) => out.samples.push(s),
            Err(why) => out.errors.push(format!("line {}: {why}", i + 1)),
        }
    }
    out
}

/// One sample line.
fn sample(line: &str, openmetrics: bool) -> Result<Sample, String> {
    let mut cur = Cursor { s: line, pos: 0 };
    let mut name = if cur.peek() == Some('{') {
        String::new()
    } else {
        cur.metric_name()?
    };
    let mut labels = Vec::new();
    if cur.peek() == Some('{') {
        cur.bump();
        loop {
            cur.skip_spaces();
            match cur.peek() {
                Some('}') => {
                    cur.bump();
                    break;
                }
                None => return Err("the label set is not closed with }".into()),
                _ => {}
            }
            let label = if cur.peek() == Some('"') {
                cur.quoted()?
            } else {
                cur.label_name()?
            };
            cur.skip_spaces();
            if cur.peek() == Some('=') {
                cur.bump();
                cur.skip_spaces();
                if cur.peek() != Some('"') {
                    return Err(format!("the value of label '{label}' is not quoted"));
                }
                let value = cur.quoted()?;
                labels.push((label, value));
            } else if name.is_empty() && labels.is_empty() {
                // `{"utf8.metric.name", …}`
                name = label;
            } else {
                return Err(format!("label '{label}' has no value (expected =\"…\")"));
            }
            cur.skip_spaces();
            match cur.peek() {
                Some(',') => cur.bump(),
                Some('}') => {}
                _ => return Err("labels must be separated by commas".into()),
            }
        }
    }
    if name.is_empty() {
        return Err("the sample has no metric name".into());
    }
    let rest = cur.rest();
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a space and a value after {name}"));
    }
    // An exemplar starts at ` # `.
    let rest = rest.split(" # ").next().unwrap_or(rest);
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("the sample has no value")?;
    let value = number(value_text).ok_or_else(|| format!("'{value_text}' is not a number"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(t) => {
            let raw = number(t)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("timestamp '{t}' is not a number"))?;
            Some(if openmetrics { raw } else { raw / 1000.0 })
        }
    };
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected '{extra}' after the value and timestamp"
        ));
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

/// A float as the formats write it (`+Inf`, `-Inf`, `NaN`, `1e+06`).
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        t if t
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE_".contains(c))
            && !t.contains('_') =>
        {
            t.parse().ok()
        }
        _ => None,
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn ident(&mut self, colon: bool, what: &str) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
            if !ok || (self.pos == start && c.is_ascii_digit()) {
                break;
            }
            self.bump();
        }
        if self.pos == start {
            return Err(format!(
                "expected a {what} at '{}'",
                self.rest().chars().take(20).collect::<String>()
            ));
        }
        Ok(self.s[start..self.pos].to_string())
    }

    fn metric_name(&mut self) -> Result<String, String> {
        self.ident(true, "metric name")
    }

    fn label_name(&mut self) -> Result<String, String> {
        self.ident(false, "label name")
    }

    /// A `"…"` string with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, String> {
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("a quoted string is not closed".into()),
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some('n') => out.push('\n'),
                        Some('\\') => out.push('\\'),
                        Some('"') => out.push('"'),
                        // Unknown escapes are kept as written (Prometheus does the same).
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("a quoted string ends in a backslash".into()),
                    }
                    self.bump();
                }
                Some(c) => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn prometheus_text_with_comments_labels_escapes_and_timestamps() {
        let text = "# HELP http_requests_total The total number of HTTP requests.\n\
            # TYPE http_requests_total counter\n\
            http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
            http_requests_total{method=\"post\",code=\"400\",} 3 1395066363000\n\
            \n\
            # Escaping in label values:\n\
            msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
            metric_without_timestamp_and_labels 12.47\n\
            something_weird{problem=\"division by zero\"} +Inf -3982045\n\
            rpc_duration_seconds{quantile=\"0.5\"} NaN\n\
            go_gc_duration_seconds_count 7\r\n";
        let e = parse(text, false);
        assert_eq!(e.errors, Vec::<String>::new());
        assert_eq!(e.samples.len(), 7);
        assert_eq!(
            e.samples[0],
            Sample {
                name: "http_requests_total".into(),
                labels: labels(&[("method", "post"), ("code", "200")]),
                value: 1027.0,
                timestamp: Some(1_395_066_363.0),
            }
        );
        assert_eq!(e.samples[1].labels.len(), 2, "a trailing comma is allowed");
        assert_eq!(
            e.samples[2].labels,
            labels(&[
                ("path", "C:\\DIR\\FILE.TXT"),
                ("error", "Cannot find file:\n\"FILE.TXT\"")
            ])
        );
        assert_eq!(e.samples[2].value, 1_458_255_915.0);
        assert!(e.samples[3].labels.is_empty());
        assert_eq!(e.samples[4].value, f64::INFINITY);
        assert_eq!(e.samples[4].timestamp, Some(-3982.045));
        assert!(e.samples[5].value.is_nan());
        assert_eq!(e.samples[6].value, 7.0);
    }

    #[test]
    fn openmetrics_units_exemplars_seconds_and_eof() {
        let text = "# TYPE acme_http_router_request_seconds summary\n\
            # UNIT acme_http_router_request_seconds seconds\n\
            acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n\
            acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0 1520879607.789\n\
            foo_bucket{le=\"0.01\"} 0\n\
            foo_bucket{le=\"+Inf\"} 17 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
            # EOF\n\
            after_eof 1\n";
        let e = parse(text, true);
        assert_eq!(e.errors, Vec::<String>::new());
        assert_eq!(e.samples.len(), 4);
        assert_eq!(e.samples[1].timestamp, Some(1_520_879_607.789));
        assert_eq!(e.samples[3].labels, labels(&[("le", "+Inf")]));
        assert_eq!(e.samples[3].value, 17.0);
        assert_eq!(
            e.units
                .get("acme_http_router_request_seconds")
                .map(String::as_str),
            Some("seconds")
        );
    }

    #[test]
    fn quoted_utf8_names() {
        let e = parse(
            "{\"my.dotted.metric\", \"service.name\"=\"api\"} 5\n{\"only.name\"} 1\n",
            false,
        );
        assert_eq!(e.errors, Vec::<String>::new());
        assert_eq!(e.samples[0].name, "my.dotted.metric");
        assert_eq!(e.samples[0].labels, labels(&[("service.name", "api")]));
        assert_eq!(e.samples[1].name, "only.name");
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let text = "ok 1\n\
            bad{a=\"x} 1\n\
            bad{a=x} 1\n\
            bad{a=\"x\" b=\"y\"} 1\n\
            bad 1 2 3\n\
            bad abc\n\
            bad\n\
            9bad 1\n\
            also_ok{x=\"1\"} 2\n";
        let e = parse(text, false);
        assert_eq!(e.samples.len(), 2, "{e:?}");
        assert_eq!(e.samples[1].name, "also_ok");
        assert_eq!(e.errors.len(), 7, "{:?}", e.errors);
        assert!(e.errors[0].starts_with("line 2: "), "{:?}", e.errors);
        assert!(e.errors[1].contains("not quoted"), "{:?}", e.errors);
        assert!(
            e.errors[4].contains("'abc' is not a number"),
            "{:?}",
            e.errors
        );
    }
}
