//! What an alert is: its subject, severity and content, and the
//! notifications (firing, update, resolved) that carry it to sinks.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use vitalis_core::Status;

/// How urgent an alert is. Ordered: `info` < `warning` < `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention soon.
    Warning,
    /// Pages someone.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The lowercase name (`critical`, `warning`, `info`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Position in [`Severity::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The config crate's equivalent (for route and maintenance matches).
    pub const fn to_config(self) -> vitalis_config::Severity {
        match self {
            Severity::Info => vitalis_config::Severity::Info,
            Severity::Warning => vitalis_config::Severity::Warning,
            Severity::Critical => vitalis_config::Severity::Critical,
        }
    }

    /// Parses an override as stored in the model (`severity = "critical"`);
    /// `None` for anything else.
    pub fn parse(text: &str) -> Option<Severity> {
        text.parse().ok()
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!(
                "'{s}' is not a severity (expected critical, warning or info)"
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A component (never a member of a redundancy set: the set alerts for its members).
    Component(Arc<str>),
    /// A redundancy set (`min_passing`), judged as a whole.
    Group(Arc<str>),
    /// The whole monitored system.
    System,
}

impl Subject {
    /// `component`, `group` or `system`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Subject::Component(_) => "component",
            Subject::Group(_) => "group",
            Subject::System => "system",
        }
    }

    /// The component or group id; `system` for the system.
    pub fn id(&self) -> &str {
        match self {
            Subject::Component(id) | Subject::Group(id) => id,
            Subject::System => "system",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::System => f.write_str("system"),
            s => write!(f, "{}/{}", s.kind(), s.id()),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One degraded check, as an alert shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckSummary {
    /// The component (differs from the subject for group and system alerts).
    pub component: String,
    /// The check name.
    pub check: String,
    /// Its reported status (`unknown` when its result went stale).
    pub status: Status,
    /// What failed, against what, what to look at (or the output when no error).
    pub error: Option<String>,
}

/// An alert's content: what is wrong, how bad, what else it breaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Identifies one alert from firing to resolution:
    /// `<kind>:<id>:<unix ms when it started>`, e.g. `component:trading-db:1717171717171`.
    pub id: String,
    /// What it is about.
    pub subject: Subject,
    /// Display name (the component's `name`; the id for groups; `system`).
    pub name: String,
    /// The component's group, or the group itself for group alerts.
    pub group: Option<String>,
    /// The component, for component alerts.
    pub component: Option<String>,
    /// The subject's status (for a resolution: the status it recovered to).
    pub status: Status,
    /// How urgent.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// The root causes this alert is about: the component itself for a
    /// component alert, the down members of a redundancy set, every
    /// degraded root cause for the system.
    pub root_causes: Vec<String>,
    /// Components failing because of this alert's root causes (they raise no alerts of their own).
    pub impacts: Vec<String>,
    /// The degraded checks behind it.
    pub checks: Vec<CheckSummary>,
    /// The component's labels.
    pub labels: BTreeMap<String, String>,
    /// The owning team.
    pub owner: Option<String>,
    /// Where to read what to do.
    pub runbook_url: Option<String>,
    /// When the subject degraded.
    pub started_at: Timestamp,
    /// When it recovered or was removed (resolutions only).
    pub ended_at: Option<Timestamp>,
}

/// What a notification says about its alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The alert started.
    Firing,
    /// A firing alert changed: its severity, or it impacts more components.
    Update,
    /// The subject recovered, or was removed.
    Resolved,
    /// The subject started flapping: its notifications pause until it settles.
    Flapping,
    /// The subject stopped flapping: notifications resume.
    Settled,
}

impl State {
    /// `firing`, `update` or `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Update => "update",
            State::Resolved => "resolved",
            State::Flapping => "flapping",
            State::Settled => "settled",
        }
    }
}

/// Why an alert resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// The subject's status recovered.
    Recovered,
    /// The subject was removed from the registry (reload, deregistration).
    Removed,
}

/// One message about one alert, delivered at least once to each of its
/// sinks; `dedup_key` is the same on every attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Firing, update or resolved.
    pub state: State,
    /// Stable per alert and state: `<alert id>:firing`, `<alert id>:update.<n>`,
    /// `<alert id>:resolved`; flapping notices: `<notice id>:flapping`,
    /// `<notice id>:settled`.
    pub dedup_key: String,
    /// For resolutions: why.
    pub resolution: Option<Resolution>,
    /// The alert as of this notification (for flapping notices: the
    /// subject's state, under the notice's own id).
    pub alert: Arc<Alert>,
    /// For flapping notices: the percent state change over the last 21 results.
    pub flap_percent: Option<f64>,
}

impl Notification {
    pub(crate) fn new(state: State, rev: u32, alert: Arc<Alert>) -> Self {
        let dedup_key = match state {
            State::Firing => format!("{}:firing", alert.id),
            State::Update => format!("{}:update.{rev}", alert.id),
            State::Resolved => format!("{}:resolved", alert.id),
            State::Flapping => format!("{}:flapping", alert.id),
            State::Settled => format!("{}:settled", alert.id),
        };
        Notification {
            state,
            dedup_key,
            resolution: None,
            alert,
            flap_percent: None,
        }
    }
}

/// The id of an alert on `subject` that started at `started`.
pub(crate) fn alert_id(subject: &Subject, started: Timestamp) -> String {
    format!(
        "{}:{}:{}",
        subject.kind(),
        subject.id(),
        started.as_millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::Warning);
        assert!(Severity::Warning > Severity::Info);
        assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
        assert_eq!(Severity::parse("page"), None);
        for s in Severity::ALL {
            assert_eq!(Severity::ALL[s.index()], s);
            assert_eq!(s.to_config().as_str(), s.as_str());
        }
    }

    #[test]
    fn dedup_keys_are_per_alert_and_state() {
        let subject = Subject::Component("db".into());
        let id = alert_id(&subject, Timestamp::from_millisecond(1_000).unwrap());
        assert_eq!(id, "component:db:1000");
        assert_eq!(Subject::System.to_string(), "system");
        assert_eq!(subject.to_string(), "component/db");
    }
}
