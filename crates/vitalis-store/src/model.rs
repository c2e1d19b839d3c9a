//! What the store answers: the query types and the rows readers see.
//!
//! These types need no database driver; the HTTP API (`vitalis-server`)
//! uses them with the backends turned off. JSON is snake_case, times are
//! RFC 3339, durations are milliseconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use vitalis_core::{Level, Status};

/// The most rows of each kind one history query returns.
pub const MAX_LIMIT: usize = 1000;
/// Rows of each kind a history query returns when it does not say.
pub const DEFAULT_LIMIT: usize = 100;

/// `GET /health/history`: results and transitions, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this component (its results, its own transitions and its
    /// checks'); `None`: everything, including groups and the system.
    pub component: Option<String>,
    /// Only this check of `component` (its results and transitions).
    pub check: Option<String>,
    /// Oldest time included (inclusive).
    pub since: Option<Timestamp>,
    /// Newest time included (inclusive).
    pub until: Option<Timestamp>,
    /// At most this many results, and at most this many transitions (1 to
    /// [`MAX_LIMIT`]).
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            component: None,
            check: None,
            since: None,
            until: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl HistoryQuery {
    /// Everything about one component (the default limit).
    pub fn component(id: impl Into<String>) -> Self {
        HistoryQuery {
            component: Some(id.into()),
            ..Self::default()
        }
    }

    /// Narrows to one check of the component.
    pub fn check(mut self, name: impl Into<String>) -> Self {
        self.check = Some(name.into());
        self
    }

    /// Keeps rows at or after `t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.since = Some(t);
        self
    }

    /// Keeps rows at or before `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.until = Some(t);
        self
    }

    /// Sets the limit (clamped to 1..=[`MAX_LIMIT`]).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.clamp(1, MAX_LIMIT);
        self
    }
}

/// The answer to a [`HistoryQuery`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    /// Results, newest first.
    pub results: Vec<ResultEntry>,
    /// Transitions, newest first.
    pub transitions: Vec<TransitionEntry>,
}

/// One stored result of one check run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultEntry {
    /// When the run finished.
    pub time: Timestamp,
    /// Component id.
    pub component: String,
    /// Check name.
    pub check: String,
    /// Probe type.
    pub kind: String,
    /// The check's level.
    pub level: Level,
    /// The raw status of the run.
    pub status: Status,
    /// How long the run took.
    pub duration_ms: f64,
    /// The measured number, if any.
    pub observed_value: Option<f64>,
    /// Its unit.
    pub observed_unit: Option<String>,
    /// Diagnostics.
    pub output: String,
    /// On failure: what failed, against what, what to look at.
    pub error: Option<String>,
    /// The instance that recorded it.
    pub instance: String,
    /// That instance's epoch (which run of it).
    pub epoch: u64,
}

/// What a transition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// One check of a component.
    Check,
    /// A component.
    Component,
    /// A group.
    Group,
    /// The whole monitored system.
    System,
}

impl SubjectKind {
    /// The word stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Check => "check",
            SubjectKind::Component => "component",
            SubjectKind::Group => "group",
            SubjectKind::System => "system",
        }
    }
}

impl FromStr for SubjectKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "check" => SubjectKind::Check,
            "component" => SubjectKind::Component,
            "group" => SubjectKind::Group,
            "system" => SubjectKind::System,
            _ => return Err(format!("unknown subject '{s}'")),
        })
    }
}

/// What happened to a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Its status changed (`from` → `to`).
    Status,
    /// It was added (start-up, registration, reload).
    Added,
    /// It was removed.
    Removed,
    /// The recorder missed part of the engine's event log (it fell behind)
    /// and restated the subject's status from a snapshot (`to`).
    Resync,
}

impl ChangeKind {
    /// The word stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Status => "status",
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Resync => "resync",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "status" => ChangeKind::Status,
            "added" => ChangeKind::Added,
            "removed" => ChangeKind::Removed,
            "resync" => ChangeKind::Resync,
            _ => return Err(format!("unknown change '{s}'")),
        })
    }
}

/// One stored transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionEntry {
    /// When it happened.
    pub time: Timestamp,
    /// What it is about.
    pub subject: SubjectKind,
    /// The component (for check and component transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The group (for group transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The check (for check transitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// What happened.
    pub change: ChangeKind,
    /// The status before (status changes).
    pub from: Option<Status>,
    /// The status after (status changes and resyncs).
    pub to: Option<Status>,
    /// For check transitions: the output of the result that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// For check transitions: that result's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The instance that recorded it.
    pub instance: String,
    /// That instance's epoch.
    pub epoch: u64,
    /// The position in that epoch's event log.
    pub seq: u64,
}

/// `GET /health/uptime`: availability over a window ending now (or at `until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UptimeQuery {
    /// Start of the window.
    pub since: Timestamp,
    /// End of the window.
    pub until: Timestamp,
}

impl UptimeQuery {
    /// The `window` up to now.
    pub fn last(window: Duration) -> Self {
        let until = Timestamp::now();
        let since = jiff::SignedDuration::try_from(window)
            .ok()
            .and_then(|w| until.checked_sub(w).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        UptimeQuery { since, until }
    }
}

/// Availability of every subject over a window.
///
/// Uptime is time in `pass` or `warn` ÷ time observed (`pass`, `warn` or
/// `fail`), from the component, group and system transitions. Time while
/// Vitalis was not running (between sessions), before a subject's first
/// verdict in a session (`unknown`), and after its removal is no data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UptimeReport {
    /// Start of the window.
    pub since: Timestamp,
    /// End of the window.
    pub until: Timestamp,
    /// Its length.
    pub window_ms: f64,
    /// The instance whose record this is.
    pub instance: String,
    /// How much of the window Vitalis was running (covered by sessions).
    pub monitored_ms: f64,
    /// The runs of this instance that overlap the window, oldest first.
    pub sessions: Vec<SessionEntry>,
    /// Per component, by id.
    pub components: Vec<Availability>,
    /// Per group, by id.
    pub groups: Vec<Availability>,
    /// The whole system.
    pub system: Availability,
}

/// One run of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionEntry {
    /// Its epoch.
    pub epoch: u64,
    /// When it started.
    pub started: Timestamp,
    /// The last sign of life recorded (updated every few seconds).
    pub last_alive: Timestamp,
    /// When it stopped cleanly; `None` while running or after a crash.
    pub stopped: Option<Timestamp>,
}

/// Time spent in each status by one subject within a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Availability {
    /// The component or group id (`None` for the system).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `up_ms ÷ observed_ms`, between 0 and 1; `None` without observed time.
    pub uptime: Option<f64>,
    /// Time in `pass` or `warn`.
    pub up_ms: f64,
    /// Time in `pass`, `warn` or `fail`.
    pub observed_ms: f64,
    /// Time in `pass`.
    pub pass_ms: f64,
    /// Time in `warn`.
    pub warn_ms: f64,
    /// Time in `fail`.
    pub fail_ms: f64,
    /// The rest of the window: `unknown`, not present, or Vitalis down.
    pub no_data_ms: f64,
}

impl Availability {
    /// A subject with no observed time in a window of `window_ms`.
    pub fn no_data(id: Option<String>, window_ms: f64) -> Self {
        Availability {
            id,
            uptime: None,
            up_ms: 0.0,
            observed_ms: 0.0,
            pass_ms: 0.0,
            warn_ms: 0.0,
            fail_ms: 0.0,
            no_data_ms: window_ms,
        }
    }
}

/// The width of a rollup bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl Granularity {
    /// Both, finest first.
    pub const ALL: [Granularity; 2] = [Granularity::Minute, Granularity::Hour];

    /// The bucket width in seconds (as stored: `bucket_secs`).
    pub const fn secs(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
        }
    }

    /// The bucket width in milliseconds.
    pub const fn millis(self) -> i64 {
        self.secs() * 1000
    }

    /// The word used in JSON and queries.
    pub const fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minute" => Ok(Granularity::Minute),
            "hour" => Ok(Granularity::Hour),
            _ => Err(format!("'{s}' is not a granularity (use minute or hour)")),
        }
    }
}

/// Rollups of one check (or of every check of a component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupQuery {
    /// The component.
    pub component: String,
    /// One of its checks; `None`: all of them.
    pub check: Option<String>,
    /// Minute or hour buckets.
    pub granularity: Granularity,
    /// Buckets starting at or after this time.
    pub since: Option<Timestamp>,
    /// Buckets starting at or before this time.
    pub until: Option<Timestamp>,
    /// At most this many buckets, newest first (1 to [`MAX_LIMIT`]).
    pub limit: usize,
}

/// Counts and latency figures of one check over one bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollup {
    /// Start of the bucket.
    pub start: Timestamp,
    /// Its width.
    pub granularity: Granularity,
    /// Component id.
    pub component: String,
    /// Check name.
    pub check: String,
    /// Results by raw status.
    pub pass: u64,
    /// Results with `warn`.
    pub warn: u64,
    /// Results with `fail`.
    pub fail: u64,
    /// Results with `unknown`.
    pub unknown: u64,
    /// Fastest run.
    pub latency_min_ms: f64,
    /// Mean run duration.
    pub latency_avg_ms: f64,
    /// Slowest run.
    pub latency_max_ms: f64,
    /// 95th percentile (nearest rank) of run durations.
    pub latency_p95_ms: f64,
    /// The instance that recorded the results.
    pub instance: String,
}

/// Milliseconds since the Unix epoch of a timestamp (as stored).
pub fn to_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// The timestamp of stored milliseconds (clamped to jiff's range).
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in [
            SubjectKind::Check,
            SubjectKind::Component,
            SubjectKind::Group,
            SubjectKind::System,
        ] {
            assert_eq!(s.as_str().parse::<SubjectKind>().unwrap(), s);
        }
        for c in [
            ChangeKind::Status,
            ChangeKind::Added,
            ChangeKind::Removed,
            ChangeKind::Resync,
        ] {
            assert_eq!(c.as_str().parse::<ChangeKind>().unwrap(), c);
        }
        for g in Granularity::ALL {
            assert_eq!(g.as_str().parse::<Granularity>().unwrap(), g);
        }
        assert!(
            "weekly"
                .parse::<Granularity>()
                .unwrap_err()
                .contains("minute or hour")
        );
    }

    #[test]
    fn limits_are_clamped_and_windows_end_now() {
        assert_eq!(HistoryQuery::default().limit(0).limit, 1);
        assert_eq!(HistoryQuery::default().limit(5000).limit, MAX_LIMIT);
        let q = UptimeQuery::last(Duration::from_secs(3600));
        assert_eq!(q.until.duration_since(q.since).as_secs(), 3600);
        let t = from_millis(1_700_000_000_123);
        assert_eq!(to_millis(t), 1_700_000_000_123);
        assert_eq!(from_millis(i64::MAX), Timestamp::MAX);
    }
}
