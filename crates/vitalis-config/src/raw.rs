//! The file's schema as serde + schemars types: what is deserialized from
//! the file, and what `vitalis schema` prints. Doc comments here become the
//! JSON Schema's descriptions.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use crate::config::{Details, Scope, Severity, SinkKind};

/// A humantime duration string (`250ms`, `5s`, `2m`, `1h`, `400d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        vitalis_core::duration::parse(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit, e.g. 250ms, 5s, 2m, 1h, 400d (units may be combined: 1h 30m).",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Zµ]+\\s*)+$",
            "examples": ["250ms", "5s", "2m", "48h"]
        })
    }
}

/// A socket address `ip:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addr(pub SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map(Addr).map_err(|_| {
            serde::de::Error::custom(format!(
                "'{text}' is not an ip:port address; write it like 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080"
            ))
        })
    }
}

impl JsonSchema for Addr {
    fn schema_name() -> Cow<'static, str> {
        "SocketAddress".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IP address and port, e.g. 127.0.0.1:8080 or [::]:8080.",
            "examples": ["127.0.0.1:8080"]
        })
    }
}

/// The Vitalis configuration file.
///
/// Durations are humantime strings; string values may use `${VAR}` and
/// `${VAR:-default}`. Unknown keys are errors.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Vitalis configuration")]
pub(crate) struct RawConfig {
    /// Other files to read, as globs relative to this file (`packs/*.toml`).
    /// Their `[[component]]`, `[[group]]`, `[[discovery]]`, `[[alert.sink]]`,
    /// `[[alert.route]]`, `[[alert.maintenance]]` and `[[server.token]]` are
    /// added to this file's; a plain table may be set in one file only.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "read by the loader before deserialization; here for the schema"
    )]
    pub(crate) include: Vec<String>,
    /// The HTTP (and gRPC) server.
    #[serde(default)]
    pub(crate) server: Option<RawServer>,
    /// Defaults of every check.
    #[serde(default)]
    pub(crate) defaults: Option<RawDefaults>,
    /// The circuit breaker defaults of every check.
    #[serde(default)]
    pub(crate) breaker: Option<RawBreaker>,
    /// The history store.
    #[serde(default)]
    pub(crate) history: Option<RawHistory>,
    /// Groups: views, or redundancy sets with `min_passing`.
    #[serde(default)]
    pub(crate) group: Vec<RawGroup>,
    /// The monitored components and their checks.
    #[serde(default)]
    pub(crate) component: Vec<RawComponent>,
    /// Sources of more components.
    #[serde(default)]
    pub(crate) discovery: Vec<RawDiscovery>,
    /// Alerting: sinks, routes, defaults, maintenance windows.
    #[serde(default)]
    pub(crate) alert: Option<RawAlert>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server")]
pub(crate) struct RawServer {
    /// HTTP listen address (default `127.0.0.1:8080`).
    #[serde(default)]
    pub(crate) listen: Option<Addr>,
    /// gRPC health listen address; gRPC is off when unset.
    #[serde(default)]
    pub(crate) grpc_listen: Option<Addr>,
    /// Who sees details: `never`, `when-authorized` (default), `always`.
    #[serde(default)]
    pub(crate) details: Option<Details>,
    /// Require a `read` token on `/metrics` (default false).
    #[serde(default)]
    pub(crate) metrics_auth: Option<bool>,
    /// Bearer tokens.
    #[serde(default)]
    pub(crate) token: Vec<RawToken>,
    /// What run-time registration accepts.
    #[serde(default)]
    pub(crate) registration: Option<RawRegistration>,
}

/// `[[server.token]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Token")]
pub(crate) struct RawToken {
    /// Name written to the audit log.
    pub(crate) name: String,
    /// The secret bearer value; usually `${VAR}`.
    pub(crate) value: String,
    /// Any of `read`, `heartbeat`, `write`, `admin`.
    pub(crate) scopes: Vec<Scope>,
}

/// `[server.registration]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Registration")]
pub(crate) struct RawRegistration {
    /// Probe types accepted (default: all but `command`, which is never accepted).
    #[serde(default)]
    pub(crate) allowed_types: Option<Vec<String>>,
    /// When set, check targets must be one of these hosts (`*.example.com` allowed).
    #[serde(default)]
    pub(crate) allowed_hosts: Option<Vec<String>>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Defaults")]
pub(crate) struct RawDefaults {
    /// Interval of `live` and `ready` checks (default 5s).
    #[serde(default)]
    pub(crate) interval: Option<Dur>,
    /// Interval of `deep` checks (default 60s).
    #[serde(default)]
    pub(crate) deep_interval: Option<Dur>,
    /// Timeout of one run (default 2s).
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
    /// Age after which a refresh re-runs a check (default 5s).
    #[serde(default)]
    pub(crate) cache_ttl: Option<Dur>,
    /// Consecutive results before a worse status is reported (default 1).
    #[serde(default)]
    pub(crate) failure_threshold: Option<u32>,
    /// Consecutive results before a better status is reported (default 1).
    #[serde(default)]
    pub(crate) success_threshold: Option<u32>,
    /// Vitalis addition: checks running at once, overall (default: the engine's, high).
    #[serde(default)]
    pub(crate) max_concurrency: Option<u32>,
    /// Vitalis addition: checks running at once against one host (default: unlimited).
    #[serde(default)]
    pub(crate) max_concurrency_per_host: Option<u32>,
}

/// `[breaker]` (and a check's `breaker = { … }`).
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Breaker")]
pub(crate) struct RawBreaker {
    /// Whether the breaker is on (default true).
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    /// Consecutive raw `fail` results that open the circuit (default 5).
    #[serde(default)]
    pub(crate) failures: Option<u32>,
    /// How long the circuit first stays open (default 10s).
    #[serde(default)]
    pub(crate) open_for: Option<Dur>,
    /// Cap of the doubling open time (default 60s).
    #[serde(default)]
    pub(crate) max_open_for: Option<Dur>,
}

/// `[history]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "History")]
pub(crate) struct RawHistory {
    /// `sqlite://path` or `postgres://user:pass@host/db`.
    pub(crate) url: String,
    /// How long every result is kept (default 48h).
    #[serde(default)]
    pub(crate) raw_retention: Option<Dur>,
    /// How long transitions and rollups are kept (default 400d).
    #[serde(default)]
    pub(crate) retention: Option<Dur>,
}

/// `[[group]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Group")]
pub(crate) struct RawGroup {
    /// Identifier (`[a-z0-9][a-z0-9_.-]*`), shared namespace with components.
    pub(crate) id: String,
    /// For redundancy sets: whether the set failing fails the system.
    #[serde(default)]
    pub(crate) critical: bool,
    /// Makes the group a redundancy set: at least this many members up (≥ 1).
    #[serde(default)]
    pub(crate) min_passing: Option<u32>,
    /// Alert severity override.
    #[serde(default)]
    pub(crate) severity: Option<Severity>,
}

/// `[[component]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Component")]
pub(crate) struct RawComponent {
    /// Identifier (`[a-z0-9][a-z0-9_.-]*`).
    pub(crate) id: String,
    /// Display name (default: the id).
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// The group it belongs to (created implicitly when not declared).
    #[serde(default)]
    pub(crate) group: Option<String>,
    /// Whether its failure fails the system (otherwise it degrades it).
    #[serde(default)]
    pub(crate) critical: bool,
    /// Component or group ids it depends on.
    #[serde(default)]
    pub(crate) depends_on: Vec<String>,
    /// Free key/values passed to alerts and metrics.
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// The owning team.
    #[serde(default)]
    pub(crate) owner: Option<String>,
    /// Where to read what to do (http or https URL).
    #[serde(default)]
    pub(crate) runbook_url: Option<String>,
    /// Alert severity override.
    #[serde(default)]
    pub(crate) severity: Option<Severity>,
    /// The checks (at least one).
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "checks are compiled from the tree; here for the schema"
    )]
    pub(crate) check: Vec<CheckDecl>,
}

/// A check table; its keys are validated separately (own keys + the probe's),
/// so deserialization skips it.
#[derive(Debug)]
pub(crate) struct CheckDecl;

impl<'de> Deserialize<'de> for CheckDecl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| CheckDecl)
    }
}

/// How deep a check looks.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Level")]
pub(crate) enum LevelName {
    /// Is the component running at all.
    Live,
    /// Can it handle requests now (the default).
    Ready,
    /// Is it fully functional (interval defaults to `deep_interval`).
    Deep,
}

/// How bad a failing check may make its component.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Impact")]
pub(crate) enum ImpactName {
    /// Fails its component (the default).
    Fail,
    /// Makes its component `warn` at worst.
    Warn,
}

/// The check's own keys; every other key of the table belongs to the probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckKeys {
    /// Name, unique within the component (`[a-z0-9][a-z0-9_.-]*`).
    pub(crate) name: String,
    /// `live`, `ready` (default) or `deep`.
    #[serde(default)]
    pub(crate) level: Option<LevelName>,
    /// The probe type.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// `fail` (default) or `warn`.
    #[serde(default)]
    pub(crate) impact: Option<ImpactName>,
    /// Run interval (default `defaults.interval`, or `defaults.deep_interval` for deep checks).
    #[serde(default)]
    pub(crate) interval: Option<Dur>,
    /// Timeout of one run (default `defaults.timeout`).
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
    /// Age after which the result reads `unknown` (default 2 × interval + timeout).
    #[serde(default)]
    pub(crate) stale_after: Option<Dur>,
    /// Vitalis addition: grace after start, registration or a window opening
    /// during which `unknown` does not count as `fail` (default 2 × interval + timeout).
    #[serde(default)]
    pub(crate) grace: Option<Dur>,
    /// Vitalis addition: per-check `cache_ttl` (default `defaults.cache_ttl`).
    #[serde(default)]
    pub(crate) cache_ttl: Option<Dur>,
    /// Run only when a reader finds the result older than `cache_ttl`.
    #[serde(default)]
    pub(crate) on_demand: bool,
    /// When the check runs (default always).
    #[serde(default)]
    pub(crate) active: Vec<RawWindow>,
    /// Circuit breaker overrides.
    #[serde(default)]
    pub(crate) breaker: Option<RawBreaker>,
    /// Consecutive results before a worse status is reported.
    #[serde(default)]
    pub(crate) failure_threshold: Option<u32>,
    /// Consecutive results before a better status is reported.
    #[serde(default)]
    pub(crate) success_threshold: Option<u32>,
    /// Alert severity override.
    #[serde(default)]
    pub(crate) severity: Option<Severity>,
}

/// The names of [`CheckKeys`]' fields (kept in sync by a test against the schema).
pub(crate) const CHECK_KEYS: &[&str] = &[
    "name",
    "level",
    "type",
    "impact",
    "interval",
    "timeout",
    "stale_after",
    "grace",
    "cache_ttl",
    "on_demand",
    "active",
    "breaker",
    "failure_threshold",
    "success_threshold",
    "severity",
];

/// A weekly window: `{ days = "mon-fri", from = "09:30", to = "16:00", tz = "America/New_York" }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Window")]
pub(crate) struct RawWindow {
    /// `mon-fri`, `sat,sun`, `daily`, …
    pub(crate) days: String,
    /// Start `HH:MM` (default 00:00).
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// End `HH:MM`, exclusive; earlier than `from` runs past midnight;
    /// equal to `from` means the whole day (default 00:00).
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// IANA time zone (default UTC).
    #[serde(default)]
    pub(crate) tz: Option<String>,
}

/// `[[discovery]]` kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DiscoveryKind {
    /// TOML files with `[[component]]` tables (`path`, a glob).
    File,
    /// Poll `url` for `{"components": [...]}`.
    Http,
}

/// `[[discovery]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Discovery")]
pub(crate) struct RawDiscovery {
    /// `file` or `http`.
    #[serde(rename = "type")]
    pub(crate) kind: DiscoveryKind,
    /// For `file`: a glob relative to this file.
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// For `http`: the registry URL.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// How often to look again (default 30s).
    #[serde(default)]
    pub(crate) interval: Option<Dur>,
}

/// `[alert]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Alert")]
pub(crate) struct RawAlert {
    /// Sinks for alerts no route matches; required when any route or sink exists.
    #[serde(default)]
    pub(crate) default_sinks: Option<Vec<String>>,
    /// How long a degradation must hold before it alerts (default 0s).
    #[serde(default, rename = "for")]
    pub(crate) for_: Option<Dur>,
    /// Re-notify long outages on webhook/Slack this often (default 4h).
    #[serde(default)]
    pub(crate) repeat_interval: Option<Dur>,
    /// Percent state change over the last 21 results above which a check is flapping (default 20).
    #[serde(default)]
    pub(crate) flap_high: Option<f64>,
    /// Percent state change below which flapping has settled (default 5).
    #[serde(default)]
    pub(crate) flap_low: Option<f64>,
    /// Notification targets.
    #[serde(default)]
    pub(crate) sink: Vec<RawSink>,
    /// Routes, evaluated in order; first match wins unless `continue = true`.
    #[serde(default)]
    pub(crate) route: Vec<RawRoute>,
    /// Vitalis addition: weekly maintenance windows muting notifications.
    #[serde(default)]
    pub(crate) maintenance: Vec<RawMaintenance>,
}

/// `[[alert.sink]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Sink")]
pub(crate) struct RawSink {
    /// Name routes refer to.
    pub(crate) name: String,
    /// `webhook`, `slack`, `alertmanager` or `log`.
    #[serde(rename = "type")]
    pub(crate) kind: SinkKind,
    /// Target URL (required except for `log`).
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// Extra HTTP headers (treated as secrets).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Timeout of one delivery attempt (default 10s).
    #[serde(default)]
    pub(crate) timeout: Option<Dur>,
}

/// `match` of a route or maintenance window.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Match")]
pub(crate) struct RawMatch {
    /// The component's group.
    #[serde(default)]
    pub(crate) group: Option<String>,
    /// The component id.
    #[serde(default)]
    pub(crate) component: Option<String>,
    /// The alert's severity.
    #[serde(default)]
    pub(crate) severity: Option<Severity>,
    /// Labels that must all match.
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}

/// `[[alert.route]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub(crate) struct RawRoute {
    /// What the route applies to (all alerts when absent).
    #[serde(default, rename = "match")]
    pub(crate) matcher: Option<RawMatch>,
    /// Sinks to notify.
    pub(crate) sinks: Vec<String>,
    /// Keep evaluating later routes after a match.
    #[serde(default, rename = "continue")]
    pub(crate) continue_: bool,
}

/// `[[alert.maintenance]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Maintenance")]
pub(crate) struct RawMaintenance {
    /// Optional name for logs.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// `mon-fri`, `sat,sun`, `daily`, …
    pub(crate) days: String,
    /// Start `HH:MM` (default 00:00).
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// End `HH:MM` (default 00:00; equal to `from` means the whole day).
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// IANA time zone (default UTC).
    #[serde(default)]
    pub(crate) tz: Option<String>,
    /// What it mutes (all when absent).
    #[serde(default, rename = "match")]
    pub(crate) matcher: Option<RawMatch>,
}
