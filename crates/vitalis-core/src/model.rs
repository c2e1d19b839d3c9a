//! The vocabulary: statuses, levels, impacts, and the result of one run.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The health of a check, component, group or the whole system.
///
/// Ordered worst first for aggregation: `Fail` > `Warn` > `Unknown` > `Pass`
/// (see [`Status::severity`]); `worst` of several statuses is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Working as expected.
    Pass,
    /// Degraded but serving.
    Warn,
    /// Broken.
    Fail,
    /// No trustworthy result: not run yet, or the last result is too old.
    Unknown,
}

impl Status {
    /// Every status, for iteration and tables.
    pub const ALL: [Status; 4] = [Status::Pass, Status::Warn, Status::Fail, Status::Unknown];

    /// Rank in the aggregation order: higher is worse (pass 0, unknown 1, warn 2, fail 3).
    pub const fn severity(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Unknown => 1,
            Status::Warn => 2,
            Status::Fail => 3,
        }
    }

    /// The worse of two statuses.
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The worst of many statuses; `None` when there are none.
    pub fn worst_of(statuses: impl IntoIterator<Item = Status>) -> Option<Status> {
        statuses.into_iter().reduce(Status::worst)
    }

    /// `pass` or `warn`: the thing serves requests.
    pub const fn is_up(self) -> bool {
        matches!(self, Status::Pass | Status::Warn)
    }

    /// The lowercase name used in JSON, metrics and text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How deep a check looks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Is the component running at all (a TCP connect, a ping).
    Live,
    /// Can it handle requests now (a query, an API call).
    #[default]
    Ready,
    /// Is it fully functional (a canary order, a sample inference).
    Deep,
}

impl Level {
    /// Every level, shallowest first.
    pub const ALL: [Level; 3] = [Level::Live, Level::Ready, Level::Deep];

    /// The lowercase name used in JSON and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Live => "live",
            Level::Ready => "ready",
            Level::Deep => "deep",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a failing check may make its component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    /// A failing check fails its component (the default).
    #[default]
    Fail,
    /// The check can make its component `warn` at worst.
    Warn,
}

impl Impact {
    /// Caps `status` by this impact: under `Warn`, `fail` becomes `warn`.
    pub fn cap(self, status: Status) -> Status {
        match (self, status) {
            (Impact::Warn, Status::Fail) => Status::Warn,
            _ => status,
        }
    }

    /// The lowercase name used in JSON and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            Impact::Fail => "fail",
            Impact::Warn => "warn",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a word that names no status, level or impact.
#[derive(Debug, Clone, thiserror::Error)]
#[error("'{word}' is not a valid {what} (expected one of: {expected})")]
pub struct ParseWordError {
    word: String,
    what: &'static str,
    expected: &'static str,
}

macro_rules! from_str_words {
    ($ty:ty, $what:literal, $expected:literal, { $($word:literal => $value:expr),* $(,)? }) => {
        impl FromStr for $ty {
            type Err = ParseWordError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($value),)*
                    _ => Err(ParseWordError { word: s.to_string(), what: $what, expected: $expected }),
                }
            }
        }
    };
}

from_str_words!(Status, "status", "pass, warn, fail, unknown", {
    "pass" => Status::Pass, "warn" => Status::Warn, "fail" => Status::Fail, "unknown" => Status::Unknown,
});
from_str_words!(Level, "level", "live, ready, deep", {
    "live" => Level::Live, "ready" => Level::Ready, "deep" => Level::Deep,
});
from_str_words!(Impact, "impact", "fail, warn", {
    "fail" => Impact::Fail, "warn" => Impact::Warn,
});

/// One Nagios-style performance datum: `'label'=value[UOM];warn;crit;min;max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perfdata {
    /// The label.
    pub label: String,
    /// The measured value.
    pub value: f64,
    /// The unit of measure as the plugin gave it (`ms`, `%`, `B`, …); empty when none.
    pub unit: String,
    /// The warning threshold range, verbatim.
    pub warn: Option<String>,
    /// The critical threshold range, verbatim.
    pub crit: Option<String>,
    /// The minimum possible value.
    pub min: Option<f64>,
    /// The maximum possible value.
    pub max: Option<f64>,
}

/// What a check's own code reports for one run; the engine adds timing and
/// turns it into a [`CheckResult`].
///
/// ```
/// use vitalis_core::{Outcome, Status};
/// let o = Outcome::pass("risk engine answered").observed(12.0, "ms");
/// assert_eq!(o.status, Status::Pass);
/// let f = Outcome::fail("GET http://127.0.0.1:9/ping: connection refused; is the risk engine running?");
/// assert!(f.error.is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The raw status of this run.
    pub status: Status,
    /// A number that was measured, if any.
    pub observed_value: Option<f64>,
    /// The unit of `observed_value` (`ms`, `s`, `bytes`, `percent`, `days`, `ratio`, `count`, `per_second`, …).
    pub observed_unit: Option<String>,
    /// Meaningful diagnostics, also when passing.
    pub output: String,
    /// On failure: what failed, against what target, and what to look at.
    pub error: Option<String>,
    /// Parsed Nagios performance data, when the probe speaks that protocol.
    pub perfdata: Vec<Perfdata>,
}

impl Outcome {
    /// An outcome with the given status and output.
    pub fn new(status: Status, output: impl Into<String>) -> Self {
        Outcome {
            status,
            observed_value: None,
            observed_unit: None,
            output: output.into(),
            error: None,
            perfdata: Vec::new(),
        }
    }

    /// A passing outcome.
    pub fn pass(output: impl Into<String>) -> Self {
        Self::new(Status::Pass, output)
    }

    /// A warning outcome; the message is both output and error.
    pub fn warn(error: impl Into<String>) -> Self {
        let error = error.into();
        Outcome {
            error: Some(error.clone()),
            ..Self::new(Status::Warn, error)
        }
    }

    /// A failing outcome; the message is both output and error. Say what
    /// failed, against what target, and what to look at.
    pub fn fail(error: impl Into<String>) -> Self {
        let error = error.into();
        Outcome {
            error: Some(error.clone()),
            ..Self::new(Status::Fail, error)
        }
    }

    /// An outcome with no trustworthy verdict (for example a Nagios plugin that exited 3).
    pub fn unknown(error: impl Into<String>) -> Self {
        let error = error.into();
        Outcome {
            error: Some(error.clone()),
            ..Self::new(Status::Unknown, error)
        }
    }

    /// `pass` with `output` when `ok`, else `fail` with the same text as error.
    pub fn pass_if(ok: bool, output: impl Into<String>) -> Self {
        if ok {
            Self::pass(output)
        } else {
            Self::fail(output)
        }
    }

    /// Attaches a measured value and its unit.
    pub fn observed(mut self, value: f64, unit: impl Into<String>) -> Self {
        self.observed_value = Some(value);
        self.observed_unit = Some(unit.into());
        self
    }

    /// Replaces the output text (keeps the error).
    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = output.into();
        self
    }
}

/// Converts what an in-process check returns into an [`Outcome`]: an
/// `Outcome` as is, a `Result` whose error becomes a `fail`.
pub trait IntoOutcome {
    /// The conversion.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl<E: fmt::Display> IntoOutcome for Result<Outcome, E> {
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(o) => o,
            Err(e) => Outcome::fail(format!("{e:#}")),
        }
    }
}

impl IntoOutcome for bool {
    fn into_outcome(self) -> Outcome {
        Outcome::pass_if(self, if self { "ok" } else { "check returned false" })
    }
}

/// The result of one run of a check, as readers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The raw status of this run (before thresholds, staleness and impact).
    pub status: Status,
    /// A measured number, if any.
    pub observed_value: Option<f64>,
    /// Its unit.
    pub observed_unit: Option<String>,
    /// How long the run took.
    #[serde(rename = "duration_ms", serialize_with = "serialize_millis")]
    pub duration: Duration,
    /// When the run finished (wall clock).
    pub time: Timestamp,
    /// Diagnostics.
    pub output: String,
    /// On failure: what failed, against what, what to look at.
    pub error: Option<String>,
    /// Nagios performance data, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub perfdata: Vec<Perfdata>,
}

impl CheckResult {
    /// Stamps an outcome with its duration and finishing time.
    pub fn from_outcome(outcome: Outcome, duration: Duration, time: Timestamp) -> Self {
        CheckResult {
            status: outcome.status,
            observed_value: outcome.observed_value,
            observed_unit: outcome.observed_unit,
            duration,
            time,
            output: outcome.output,
            error: outcome.error,
            perfdata: outcome.perfdata,
        }
    }
}

/// Serializes a duration as fractional milliseconds.
pub fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_fail_warn_unknown_pass() {
        use Status::*;
        assert_eq!(Pass.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Warn), Warn);
        assert_eq!(Warn.worst(Fail), Fail);
        assert_eq!(Status::worst_of([Pass, Unknown, Pass]), Some(Unknown));
        assert_eq!(Status::worst_of([]), None);
    }

    #[test]
    fn warn_impact_caps_fail_only() {
        assert_eq!(Impact::Warn.cap(Status::Fail), Status::Warn);
        assert_eq!(Impact::Warn.cap(Status::Unknown), Status::Unknown);
        assert_eq!(Impact::Fail.cap(Status::Fail), Status::Fail);
    }

    #[test]
    fn results_convert_errors_to_fail() {
        let r: Result<Outcome, String> = Err("db down".into());
        let o = r.into_outcome();
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.error.as_deref(), Some("db down"));
        assert_eq!("deep".parse::<Level>().unwrap(), Level::Deep);
        assert!(
            "sideways"
                .parse::<Level>()
                .unwrap_err()
                .to_string()
                .contains("live, ready, deep")
        );
    }
}
