//! The loaded configuration: typed sections plus the vitalis-core
//! declarations (groups, components with built checks).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use vitalis_core::{ActiveWindow, Component, Defaults, Group, redact_url};

/// Sections whose feature is not built yet: parsed and validated, reported
/// by [`Config::inactive_sections`] so the daemon can say so. Remove a name
/// here when its feature lands.
pub const INACTIVE_SECTIONS: &[&str] = &["discovery"];

/// A loaded, validated configuration.
///
/// `Debug` never prints secrets (token values, header values, passwords in URLs).
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[defaults]` with `[breaker]` folded in.
    pub defaults: Defaults,
    /// `[defaults] max_concurrency` / `max_concurrency_per_host` (a Vitalis addition).
    pub max_concurrency: ConcurrencyLimits,
    /// `[[group]]`, in declaration order.
    pub groups: Vec<Group>,
    /// `[[component]]`, in load order (included files first, in glob order,
    /// then the including file's own).
    pub components: Vec<LoadedComponent>,
    /// `[history]`, when set.
    pub history: Option<HistoryConfig>,
    /// `[alert]`, `[[alert.sink]]`, `[[alert.route]]`, `[[alert.maintenance]]`.
    pub alert: AlertConfig,
    /// `[[discovery]]`.
    pub discovery: Vec<DiscoveryConfig>,
    /// Every file read, the main file first.
    pub files: Vec<PathBuf>,
    pub(crate) sections: Vec<&'static str>,
}

impl Config {
    /// The sections present in the file(s) whose feature is not built yet
    /// (see [`INACTIVE_SECTIONS`]), for a log line like
    /// `section [discovery] is not active yet`.
    pub fn inactive_sections(&self) -> Vec<&'static str> {
        INACTIVE_SECTIONS
            .iter()
            .copied()
            .filter(|s| self.sections.contains(s))
            .collect()
    }

    /// The top-level sections that were set (`server`, `defaults`, `component`, …).
    pub fn sections(&self) -> &[&'static str] {
        &self.sections
    }

    /// A component by id.
    pub fn component(&self, id: &str) -> Option<&LoadedComponent> {
        self.components.iter().find(|c| c.component.id == id)
    }

    /// The component declarations, ready for `EngineBuilder::component`.
    pub fn declarations(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().map(|c| &c.component)
    }

    /// What a reload from `previous` to `self` changes, by component id.
    pub fn diff(&self, previous: &Config) -> ComponentDiff {
        let mut d = ComponentDiff::default();
        for c in &self.components {
            match previous.component(&c.component.id) {
                None => d.added.push(c.component.id.clone()),
                Some(p) if p.fingerprint != c.fingerprint => d.changed.push(c.component.id.clone()),
                Some(_) => d.unchanged.push(c.component.id.clone()),
            }
        }
        for p in &previous.components {
            if self.component(&p.component.id).is_none() {
                d.removed.push(p.component.id.clone());
            }
        }
        d
    }
}

/// Component ids sorted by what a reload does to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentDiff {
    /// New ids.
    pub added: Vec<String>,
    /// Ids whose declaration (or the defaults) changed: rebuild them.
    pub changed: Vec<String>,
    /// Ids declared exactly as before: keep their state.
    pub unchanged: Vec<String>,
    /// Ids no longer declared.
    pub removed: Vec<String>,
}

/// One `[[component]]` with its checks built, and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedComponent {
    /// The declaration (source [`vitalis_core::Source::Config`]).
    pub component: Component,
    /// A stable hash of the component's table after variable expansion,
    /// together with the effective `[defaults]`/`[breaker]`: equal
    /// fingerprints across a reload mean the component is unchanged and
    /// keeps its state. Key order and formatting do not count.
    pub fingerprint: u64,
    /// The file that declared it.
    pub file: PathBuf,
    /// The line of its `[[component]]` header.
    pub line: usize,
}

/// Optional concurrency limits (defaults high: the engine's own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConcurrencyLimits {
    /// Checks running at once, overall.
    pub global: Option<usize>,
    /// Checks running at once against one target host.
    pub per_host: Option<usize>,
}

/// A secret string (a token value, a header value): `Debug` and `Display`
/// print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// HTTP listen address (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// gRPC health listen address; gRPC is off when unset.
    pub grpc_listen: Option<SocketAddr>,
    /// Who sees details (default `when-authorized`).
    pub details: Details,
    /// Whether `/metrics` needs a `read` token.
    pub metrics_auth: bool,
    /// `[[server.token]]`.
    pub tokens: Vec<Token>,
    /// `[server.registration]`.
    pub registration: RegistrationConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_listen: None,
            details: Details::WhenAuthorized,
            metrics_auth: false,
            tokens: Vec::new(),
            registration: RegistrationConfig::default(),
        }
    }
}

/// `server.details`: who sees component details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Details {
    /// Status endpoints show status only, even to `read` tokens.
    Never,
    /// Details for requests with a `read` token (the default).
    #[default]
    WhenAuthorized,
    /// Details for everyone (a local demo).
    Always,
}

/// A token's permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read details, components, groups, history, uptime, WebSocket.
    Read,
    /// Push heartbeats.
    Heartbeat,
    /// Register and remove components at run time.
    Write,
    /// Silences, reload, `?refresh=true`.
    Admin,
}

impl Scope {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Heartbeat => "heartbeat",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// `[[server.token]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Name, written to the audit log.
    pub name: String,
    /// The bearer value (a secret).
    pub value: Secret,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl Token {
    /// Whether the token has `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// `[server.registration]`: what run-time registration accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Probe types accepted (default: every built-in type but `command`,
    /// which is never accepted whatever this says).
    pub allowed_types: Vec<String>,
    /// When set, every check's target host must match one entry: an exact
    /// host name or IP, or `*.example.com` for any subdomain.
    pub allowed_hosts: Option<Vec<String>>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            allowed_types: vitalis_probes::kind_names()
                .into_iter()
                .filter(|k| *k != "command")
                .map(str::to_string)
                .collect(),
            allowed_hosts: None,
        }
    }
}

impl RegistrationConfig {
    /// Whether checks of type `kind` may be registered.
    pub fn allows_type(&self, kind: &str) -> bool {
        kind != "command" && self.allowed_types.iter().any(|t| t == kind)
    }

    /// Whether a check may target `host`.
    pub fn allows_host(&self, host: &str) -> bool {
        let Some(list) = &self.allowed_hosts else {
            return true;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        list.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => host == pattern,
            }
        })
    }
}

/// Alert severity (`severity` of a component, group, check or route match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Pages someone.
    Critical,
    /// Needs attention soon.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The storage behind `[history]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryBackend {
    /// `sqlite://path`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

/// `[history]`.
#[derive(Clone, PartialEq)]
pub struct HistoryConfig {
    /// Connection URL (may hold a password: `Debug` hides it).
    pub url: String,
    /// Which backend the URL selects.
    pub backend: HistoryBackend,
    /// How long every result is kept (default 48h).
    pub raw_retention: Duration,
    /// How long transitions and rollups are kept (default 400d).
    pub retention: Duration,
}

impl fmt::Debug for HistoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryConfig")
            .field("url", &redact_url(&self.url))
            .field("backend", &self.backend)
            .field("raw_retention", &self.raw_retention)
            .field("retention", &self.retention)
            .finish()
    }
}

/// `[alert]` and its arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// `[[alert.sink]]`.
    pub sinks: Vec<AlertSink>,
    /// `[[alert.route]]`, evaluated in order.
    pub routes: Vec<AlertRoute>,
    /// Where alerts that match no route go.
    pub default_sinks: Vec<String>,
    /// `for`: how long a degradation must hold before it alerts (default 0s).
    pub for_duration: Duration,
    /// Re-notification interval of long outages on webhook/Slack (default 4h).
    pub repeat_interval: Duration,
    /// Percent state change above which a check is flapping (default 20).
    pub flap_high: f64,
    /// Percent state change below which flapping has settled (default 5).
    pub flap_low: f64,
    /// `[[alert.maintenance]]`: weekly windows muting notifications.
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            sinks: Vec::new(),
            routes: Vec::new(),
            default_sinks: Vec::new(),
            for_duration: Duration::ZERO,
            repeat_interval: Duration::from_secs(4 * 3600),
            flap_high: 20.0,
            flap_low: 5.0,
            maintenance: Vec::new(),
        }
    }
}

/// A sink's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Documented JSON POSTed to `url`.
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
    /// Alertmanager's v2 API at `url`.
    Alertmanager,
    /// Vitalis' own log.
    Log,
}

impl SinkKind {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Log => "log",
        }
    }
}

/// `[[alert.sink]]`.
#[derive(Clone, PartialEq)]
pub struct AlertSink {
    /// Name routes refer to.
    pub name: String,
    /// Kind.
    pub kind: SinkKind,
    /// Target URL (none for `log`).
    pub url: Option<String>,
    /// Extra HTTP headers (secrets).
    pub headers: BTreeMap<String, Secret>,
    /// Timeout of one delivery attempt (default 10s).
    pub timeout: Duration,
}

impl fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A Slack webhook URL is a credential; other URLs lose their password.
        let url = self.url.as_deref().map(|u| match self.kind {
            SinkKind::Slack => redact_path(u),
            _ => redact_url(u),
        });
        f.debug_struct("AlertSink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &url)
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What an alert route or maintenance window applies to; empty matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component's group.
    pub group: Option<String>,
    /// The component id.
    pub component: Option<String>,
    /// The alert's severity.
    pub severity: Option<Severity>,
    /// Labels that must all be present with these values.
    pub labels: BTreeMap<String, String>,
}

impl RouteMatch {
    /// Whether an alert with these attributes matches.
    pub fn matches(
        &self,
        group: Option<&str>,
        component: Option<&str>,
        severity: Severity,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.group.as_deref().is_none_or(|g| group == Some(g))
            && self
                .component
                .as_deref()
                .is_none_or(|c| component == Some(c))
            && self.severity.is_none_or(|s| s == severity)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `[[alert.route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRoute {
    /// `match`.
    pub matcher: RouteMatch,
    /// Sinks to notify.
    pub sinks: Vec<String>,
    /// `continue`: keep evaluating later routes after this one matched.
    pub continue_matching: bool,
}

/// `[[alert.maintenance]]`: a weekly window that mutes notifications (never
/// the recorded state).
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Optional name for logs.
    pub name: Option<String>,
    /// When.
    pub window: ActiveWindow,
    /// What it mutes (all when empty).
    pub matcher: RouteMatch,
}

/// `[[discovery]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    /// Where components come from.
    pub source: DiscoverySource,
    /// How often to look again (default 30s).
    pub interval: Duration,
}

/// A discovery source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverySource {
    /// TOML files holding `[[component]]` tables; the glob is resolved
    /// relative to the file that declared it.
    File {
        /// The glob, already joined to the declaring file's directory.
        pattern: PathBuf,
    },
    /// A URL answering `{"components": [...]}` in the registration schema.
    Http {
        /// The URL.
        url: String,
    },
}

/// `scheme://host/***`: hides everything after the host.
fn redact_path(url: &str) -> String {
    let redacted = redact_url(url);
    match redacted.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}/***")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_urls_lose_their_path() {
        assert_eq!(
            redact_path("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/***"
        );
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        let r = RegistrationConfig {
            allowed_hosts: Some(vec![
                "db.internal".into(),
                "*.svc.local".into(),
                "::1".into(),
            ]),
            ..RegistrationConfig::default()
        };
        assert!(r.allows_host("DB.internal"));
        assert!(r.allows_host("risk.svc.local"));
        assert!(r.allows_host("[::1]"));
        assert!(!r.allows_host("svc.local"));
        assert!(!r.allows_host("evilsvc.local"));
        assert!(!r.allows_host("db.internal.evil"));
        assert!(RegistrationConfig::default().allows_host("anything"));
        assert!(!RegistrationConfig::default().allows_type("command"));
    }

    #[test]
    fn secrets_do_not_print() {
        let t = Token {
            name: "ops".into(),
            value: Secret::new("hunter2"),
            scopes: vec![Scope::Read],
        };
        assert!(!format!("{t:?}").contains("hunter2"));
        assert_eq!(t.value.expose(), "hunter2");
    }
}
