//! The one assertion language of every probe (SPEC section 4).
//!
//! ```toml
//! assert = [
//!   { path = "$.positions.age_ms", op = "<", value = 500 },
//!   { path = "$.positions.age_ms", op = "<", value = 200, impact = "warn" },
//! ]
//! ```
//!
//! * `op` is one of `==`, `!=`, `<`, `<=`, `>`, `>=`, `exists`, `matches`.
//! * `path` is an RFC 9535 JSON path where the probe yields JSON (absent: the
//!   whole document), a name where it yields named values (`header_assert`:
//!   the header name), and absent where the probe yields one value (a query's
//!   first column).
//! * `impact = "warn"` makes a failed assertion only warn: warn and fail
//!   thresholds are two assertions on the same value.
//!
//! Values compare numerically when both sides are numbers (numeric strings
//! count: a header `"1200"` is `> 1000`); otherwise `==`/`!=` compare as
//! strings when either side is a string and as JSON values otherwise, and
//! the orderings compare the texts. `matches` is a regular expression (Rust
//! `regex` syntax) searched in the value's text. A path that selects several
//! nodes (`$.feeds[*].lag_ms`) passes only when every node passes; a path
//! that selects nothing fails every op but `exists` with `value = false`.
//!
//! Compile the config once with [`Assertions::compile`], then evaluate each
//! run with [`Assertions::evaluate_json`], [`Assertions::evaluate_value`] or
//! [`Assertions::evaluate_named`]; the [`Verdict`] carries the worst status
//! and a diagnostic per failed assertion, e.g.
//! `$.positions.age_ms = 1250, expected < 500`.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;
use vitalis_core::{Impact, Status};

use crate::BuildError;

#[cfg(test)]
mod tests;

/// One assertion as written in the config.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// Where the value is: an RFC 9535 JSON path (`$.positions.age_ms`) for
    /// JSON, a header name for `header_assert`, absent for one-value probes.
    #[serde(default)]
    pub path: Option<String>,
    /// The comparison.
    pub op: Op,
    /// The expected value (a number, string or boolean). Required by every
    /// op but `exists`, where `false` asserts that the path is absent.
    #[serde(default)]
    pub value: Option<Value>,
    /// `warn`: a failure only warns. Default `fail`.
    #[serde(default)]
    #[schemars(with = "ImpactSchema")]
    pub impact: Impact,
}

/// The schema of `impact` (the core type has no schema of its own).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ImpactSchema {
    Fail,
    Warn,
}

/// An assertion's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Op {
    /// Equal (numerically when both sides are numbers).
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
    /// The path selects something (or nothing, with `value = false`).
    #[serde(rename = "exists")]
    Exists,
    /// The value's text matches a regular expression.
    #[serde(rename = "matches")]
    Matches,
}

impl Op {
    /// The op as written in config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Exists => "exists",
            Op::Matches => "matches",
        }
    }

    const fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a probe yields, which decides what `path` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A JSON document: `path` is an RFC 9535 JSON path; absent means `$`.
    Json,
    /// One value (a query's first column): `path` must be absent.
    Value,
    /// Named values, such as response headers: `path` is the name (matched
    /// case-insensitively) and required. The word prefixes diagnostics
    /// (`header x-mbx-used-weight-1m = 1200, expected < 1000`).
    Named(&'static str),
}

/// Where one assertion looks.
#[derive(Debug, Clone)]
enum Target {
    Path(JsonPath),
    Whole,
    Name(String),
}

/// One compiled assertion.
#[derive(Debug, Clone)]
struct Assertion {
    label: String,
    target: Target,
    op: Op,
    expected: Value,
    regex: Option<Regex>,
    impact: Impact,
}

/// A compiled list of assertions, ready to evaluate on every run.
#[derive(Debug, Clone, Default)]
pub struct Assertions {
    items: Vec<Assertion>,
}

/// The result of evaluating [`Assertions`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `pass`, `warn` (only `impact = "warn"` assertions failed) or `fail`.
    pub status: Status,
    /// One diagnostic per failed assertion, failing ones before warning ones:
    /// `$.positions.age_ms = 1250, expected < 500`.
    pub failures: Vec<String>,
    /// One line per passed assertion: `$.status = "ok" (== "ok")`.
    pub passed: Vec<String>,
}

impl Verdict {
    /// The failures joined by `; ` (empty when everything passed).
    pub fn message(&self) -> String {
        self.failures.join("; ")
    }

    /// A short account of what passed, for a passing run's output.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 3;
        let mut text = self
            .passed
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.passed.len() > SHOWN {
            text.push_str(&format!(" and {} more", self.passed.len() - SHOWN));
        }
        text
    }
}

// === impl Assertions ===

impl Assertions {
    /// Compiles the assertions under config key `key` (`assert`,
    /// `header_assert`) for a probe that yields `subject`; a bad path, a bad
    /// regex or a missing value is an error naming the key and the index.
    pub fn compile(
        key: &str,
        configs: Vec<AssertionConfig>,
        subject: Subject,
    ) -> Result<Self, BuildError> {
        let items = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| compile_one(key, i, c, subject))
            .collect::<Result<_, _>>()?;
        Ok(Assertions { items })
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many assertions there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Evaluates against a JSON document (paths are queried in it; a name
    /// target reads a top-level key).
    pub fn evaluate_json(&self, doc: &Value) -> Verdict {
        self.evaluate(|target| match target {
            Target::Path(path) => path
                .query_located(doc)
                .iter()
                .map(|n| (n.location().to_string(), n.node().clone()))
                .collect(),
            Target::Whole => vec![(String::new(), doc.clone())],
            Target::Name(name) => doc
                .get(name)
                .map(|v| vec![(String::new(), v.clone())])
                .unwrap_or_default(),
        })
    }

    /// Evaluates against the one value a probe yields (`Value::Null` for a
    /// SQL `NULL`, which fails `exists`).
    pub fn evaluate_value(&self, value: &Value) -> Verdict {
        self.evaluate_json(value)
    }

    /// Evaluates against named values: `lookup(name)` returns every value
    /// under that name (a header may repeat), each of which must pass.
    pub fn evaluate_named(&self, lookup: impl Fn(&str) -> Vec<Value>) -> Verdict {
        self.evaluate(|target| match target {
            Target::Name(name) => lookup(name)
                .into_iter()
                .map(|v| (String::new(), v))
                .collect(),
            Target::Whole | Target::Path(_) => Vec::new(),
        })
    }

    fn evaluate(&self, resolve: impl Fn(&Target) -> Vec<(String, Value)>) -> Verdict {
        let mut status = Status::Pass;
        let mut fails = Vec::new();
        let mut warns = Vec::new();
        let mut passed = Vec::new();
        for a in &self.items {
            let nodes = resolve(&a.target);
            match a.check(&nodes) {
                Ok(line) => passed.push(line),
                Err(diagnostic) => match a.impact {
                    Impact::Fail => {
                        status = status.worst(Status::Fail);
                        fails.push(diagnostic);
                    }
                    Impact::Warn => {
                        status = status.worst(Status::Warn);
                        warns.push(format!("{diagnostic} (impact warn)"));
                    }
                },
            }
        }
        fails.extend(warns);
        Verdict {
            status,
            failures: fails,
            passed,
        }
    }
}

fn compile_one(
    key: &str,
    index: usize,
    c: AssertionConfig,
    subject: Subject,
) -> Result<Assertion, BuildError> {
    let at = |message: String| BuildError::key(key, format!("{key}[{index}]: {message}"));
    let (target, label) = match (subject, c.path) {
        (Subject::Json, None) => (Target::Whole, "$".to_string()),
        (Subject::Json, Some(p)) => {
            let path = JsonPath::parse(&p).map_err(|e| {
                at(format!(
                    "path '{p}' is not an RFC 9535 JSON path ({e}); write it like $.status or $.items[0].age_ms"
                ))
            })?;
            (Target::Path(path), p)
        }
        (Subject::Value, None) => (Target::Whole, "value".to_string()),
        (Subject::Value, Some(p)) => {
            return Err(at(format!(
                "this probe yields one value, so `path` ('{p}') has no meaning; remove it"
            )));
        }
        (Subject::Named(what), Some(p)) if !p.trim().is_empty() => {
            let name = p.trim().to_ascii_lowercase();
            (Target::Name(name.clone()), format!("{what} {name}"))
        }
        (Subject::Named(what), _) => {
            return Err(at(format!(
                "`path` must name the {what} to check (e.g. path = \"x-ratelimit-remaining\")"
            )));
        }
    };
    let mut regex = None;
    let expected = match (c.op, c.value) {
        (Op::Exists, None) => Value::Bool(true),
        (Op::Exists, Some(v @ Value::Bool(_))) => v,
        (Op::Exists, Some(v)) => {
            return Err(at(format!(
                "op 'exists' takes no value, or value = true/false (got {v})"
            )));
        }
        (Op::Matches, Some(Value::String(pattern))) => {
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    at(format!(
                        "'{pattern}' is not a valid regular expression: {e}"
                    ))
                })?;
            regex = Some(re);
            Value::String(pattern)
        }
        (Op::Matches, _) => {
            return Err(at(
                "op 'matches' needs a regular expression as a string value (e.g. value = \"^2\\\\.\")"
                    .to_string(),
            ));
        }
        (op, None) => {
            return Err(at(format!(
                "op '{op}' needs a value to compare with (e.g. value = 500)"
            )));
        }
        (op, Some(v @ (Value::Array(_) | Value::Object(_)))) if op.is_ordering() => {
            return Err(at(format!(
                "op '{op}' compares numbers or strings, not {v}"
            )));
        }
        (_, Some(v)) => v,
    };
    Ok(Assertion {
        label,
        target,
        op: c.op,
        expected,
        regex,
        impact: c.impact,
    })
}

// === impl Assertion ===

impl Assertion {
    /// `Ok(summary)` when every node passes, else `Err(diagnostic)`.
    fn check(&self, nodes: &[(String, Value)]) -> Result<String, String> {
        if self.op == Op::Exists {
            let want = self.expected != Value::Bool(false);
            let present: Vec<_> = nodes.iter().filter(|(_, v)| !v.is_null()).collect();
            return match (want, present.first()) {
                (true, Some((_, v))) => Ok(format!("{} = {} (exists)", self.label, show(v))),
                (true, None) => Err(format!("{} not found, expected it to exist", self.label)),
                (false, None) => Ok(format!("{} absent (as expected)", self.label)),
                (false, Some((at, v))) => Err(format!(
                    "{} = {}, expected it not to exist",
                    self.where_(at, nodes.len()),
                    show(v)
                )),
            };
        }
        if nodes.is_empty() {
            return Err(format!(
                "{} not found, expected {}",
                self.label,
                self.expectation()
            ));
        }
        let failing: Vec<_> = nodes.iter().filter(|(_, v)| !self.holds(v)).collect();
        match failing.first() {
            None => Ok(format!(
                "{} = {} ({})",
                self.label,
                if nodes.len() == 1 {
                    show(&nodes[0].1)
                } else {
                    format!("{} values", nodes.len())
                },
                self.expectation()
            )),
            Some((at, v)) => {
                let mut d = format!(
                    "{} = {}, expected {}",
                    self.where_(at, nodes.len()),
                    show(v),
                    self.expectation()
                );
                if failing.len() > 1 {
                    d.push_str(&format!(
                        " ({} of {} values fail)",
                        failing.len(),
                        nodes.len()
                    ));
                }
                Err(d)
            }
        }
    }

    /// The configured label, or the node's own location when the path
    /// selected several nodes.
    fn where_(&self, location: &str, count: usize) -> String {
        if count > 1 && !location.is_empty() {
            location.to_string()
        } else {
            self.label.clone()
        }
    }

    fn expectation(&self) -> String {
        match self.op {
            Op::Matches => format!("matches \"{}\"", text(&self.expected)),
            op => format!("{op} {}", show(&self.expected)),
        }
    }

    fn holds(&self, actual: &Value) -> bool {
        let expected = &self.expected;
        match self.op {
            Op::Exists => !actual.is_null(),
            Op::Matches => self
                .regex
                .as_ref()
                .is_some_and(|re| re.is_match(&text(actual))),
            Op::Eq => equal(actual, expected),
            Op::Ne => !equal(actual, expected),
            op => match order(actual, expected) {
                None => false,
                Some(o) => match op {
                    Op::Lt => o == Ordering::Less,
                    Op::Le => o != Ordering::Greater,
                    Op::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
            },
        }
    }
}

/// A number, from a JSON number or a numeric string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// The text of a value: strings as they are, everything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x == y;
    }
    if (a.is_string() || b.is_string()) && is_scalar(a) && is_scalar(b) {
        return text(a) == text(b);
    }
    a == b
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y);
    }
    if is_scalar(a) && is_scalar(b) && !a.is_null() {
        return Some(text(a).cmp(&text(b)));
    }
    None
}

/// A value for a diagnostic: JSON text, cut at 120 characters.
fn show(v: &Value) -> String {
    const MAX: usize = 120;
    let s = v.to_string();
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}
