//! Declarations: components, their checks, groups, and per-check settings.
//!
//! These are what a config file or an embedding service hands to the engine.
//! Settings left unset take the engine's [`Defaults`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::check::Check;
use crate::model::{Impact, Level};
use crate::window::ActiveWindow;

/// Engine-wide defaults for check settings (SPEC section 5, `[defaults]` and `[breaker]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Interval of `live` and `ready` checks.
    pub interval: Duration,
    /// Interval of `deep` checks.
    pub deep_interval: Duration,
    /// Timeout of one run.
    pub timeout: Duration,
    /// How old a result may be before a refresh re-runs it.
    pub cache_ttl: Duration,
    /// Consecutive results needed before a worse status is reported.
    pub failure_threshold: u32,
    /// Consecutive results needed before a better status is reported.
    pub success_threshold: u32,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: Duration::from_secs(5),
            deep_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(5),
            failure_threshold: 1,
            success_threshold: 1,
            breaker: BreakerSettings::default(),
        }
    }
}

/// Circuit breaker settings of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Whether the breaker is on.
    pub enabled: bool,
    /// Consecutive raw `fail` results that open the circuit.
    pub failures: u32,
    /// How long the circuit first stays open.
    pub open_for: Duration,
    /// The cap of the doubling open time.
    pub max_open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            enabled: true,
            failures: 5,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(60),
        }
    }
}

/// Per-check settings; `None` takes the engine default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckSettings {
    /// Run interval (deep checks default to `deep_interval`).
    pub interval: Option<Duration>,
    /// Timeout of one run.
    pub timeout: Option<Duration>,
    /// Age after which a result reads `unknown` (default `2 × interval + timeout`).
    pub stale_after: Option<Duration>,
    /// Grace after start, registration or window opening during which `unknown`
    /// does not count as `fail` (default `2 × interval + timeout`).
    pub grace: Option<Duration>,
    /// Re-run threshold for refreshes and on-demand reads.
    pub cache_ttl: Option<Duration>,
    /// Run only when a reader finds the result older than `cache_ttl`.
    pub on_demand: bool,
    /// When the check runs; empty means always.
    pub active: Vec<ActiveWindow>,
    /// Circuit breaker overrides.
    pub breaker: Option<BreakerSettings>,
    /// Consecutive results before a worse status is reported.
    pub failure_threshold: Option<u32>,
    /// Consecutive results before a better status is reported.
    pub success_threshold: Option<u32>,
    /// Alert severity override (`critical`, `warning`, …).
    pub severity: Option<String>,
}

/// A check as declared: its identity, its classification, and its code.
#[derive(Clone)]
pub struct CheckSpec {
    /// Name, unique within the component (`[a-z0-9][a-z0-9_.-]*`).
    pub name: String,
    /// Probe type (`tcp`, `http`, …; `inline` for in-process checks).
    pub kind: String,
    /// How deep it looks.
    pub level: Level,
    /// How bad it can make its component.
    pub impact: Impact,
    /// Scheduling and damping settings.
    pub settings: CheckSettings,
    /// The code that runs.
    pub check: Arc<dyn Check>,
}

impl fmt::Debug for CheckSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("level", &self.level)
            .field("impact", &self.impact)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CheckSpec {
    /// A check at the given level.
    pub fn new(name: impl Into<String>, level: Level, check: impl Check) -> Self {
        CheckSpec {
            name: name.into(),
            kind: "inline".into(),
            level,
            impact: Impact::Fail,
            settings: CheckSettings::default(),
            check: Arc::new(check),
        }
    }

    /// A `live` check: is the component running at all.
    pub fn live(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Level::Live, check)
    }

    /// A `ready` check: can it handle requests now.
    pub fn ready(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Level::Ready, check)
    }

    /// A `deep` check: is it fully functional.
    pub fn deep(name: impl Into<String>, check: impl Check) -> Self {
        Self::new(name, Level::Deep, check)
    }

    /// Sets the probe type name shown to readers.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Sets the impact.
    pub fn impact(mut self, impact: Impact) -> Self {
        self.impact = impact;
        self
    }

    /// Sets the interval.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.settings.interval = Some(interval);
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = Some(timeout);
        self
    }

    /// Replaces all settings.
    pub fn settings(mut self, settings: CheckSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// A component as declared.
#[derive(Debug, Clone)]
pub struct Component {
    /// Identifier (`[a-z0-9][a-z0-9_.-]*`), shared namespace with groups.
    pub id: String,
    /// Display name (defaults to the id).
    pub name: String,
    /// The group it belongs to, if any.
    pub group: Option<String>,
    /// Whether its failure fails the system (otherwise it degrades it).
    pub critical: bool,
    /// Component or group ids it depends on.
    pub depends_on: Vec<String>,
    /// Free key/values passed to alerts and metrics.
    pub labels: BTreeMap<String, String>,
    /// The owning team.
    pub owner: Option<String>,
    /// Where to read what to do.
    pub runbook_url: Option<String>,
    /// Alert severity override.
    pub severity: Option<String>,
    /// Where it came from: `config`, `registered`, `discovered` or `inline`.
    pub source: Source,
    /// Its checks.
    pub checks: Vec<CheckSpec>,
}

/// Where a component's declaration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The configuration file.
    #[default]
    Config,
    /// Run-time registration through the API.
    Registered,
    /// A discovery source.
    Discovered,
}

impl Source {
    /// The lowercase name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Registered => "registered",
            Source::Discovered => "discovered",
        }
    }
}

impl Component {
    /// A component with the given id and no checks.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Component {
            name: id.clone(),
            id,
            group: None,
            critical: false,
            depends_on: Vec::new(),
            labels: BTreeMap::new(),
            owner: None,
            runbook_url: None,
            severity: None,
            source: Source::Config,
            checks: Vec::new(),
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Puts it in a group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Marks it critical (its failure fails the system).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Adds a dependency on a component or group.
    pub fn depends_on(mut self, id: impl Into<String>) -> Self {
        self.depends_on.push(id.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a check.
    pub fn check(mut self, check: CheckSpec) -> Self {
        self.checks.push(check);
        self
    }
}

/// A group as declared. Groups named by a component but not declared exist
/// implicitly as plain, non-critical views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Identifier, shared namespace with components.
    pub id: String,
    /// Only meaningful for redundancy sets: whether the set's failure fails the system.
    pub critical: bool,
    /// Makes the group a redundancy set: at least this many members must be up.
    pub min_passing: Option<u32>,
    /// Alert severity override.
    pub severity: Option<String>,
}

impl Group {
    /// A plain group (a view).
    pub fn new(id: impl Into<String>) -> Self {
        Group {
            id: id.into(),
            critical: false,
            min_passing: None,
            severity: None,
        }
    }

    /// Makes it a redundancy set needing `n` members up.
    pub fn min_passing(mut self, n: u32) -> Self {
        self.min_passing = Some(n);
        self
    }

    /// Sets whether the redundancy set is critical.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

/// Whether `id` is a valid component, group or check identifier:
/// `[a-z0-9][a-z0-9_.-]*`.
pub fn is_valid_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_charset() {
        for ok in ["db", "trading-db", "a.b_c-1", "0x"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "-db", "Trading", "a b", "db/1", "_x"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
