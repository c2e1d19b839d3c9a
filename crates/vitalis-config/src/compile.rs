//! From the merged tree to a validated [`Config`]: typed sections, built
//! checks, and registry validation, every error located.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use vitalis_core::spec::is_valid_id;
use vitalis_core::window::WindowError;
use vitalis_core::{
    ActiveWindow, BreakerSettings, CheckSettings, CheckSpec, Component, Defaults, Group, Impact,
    Level, RegistryError, Source, Topology, redact_url,
};
use vitalis_probes::{BuildCx, BuildError, ProbeKind};

use crate::config::*;
use crate::de::{DeError, from_node, index, join};
use crate::error::{ConfigError, ErrorKind, closest, quoted_list};
use crate::loader::TOP_KEYS;
use crate::node::{Entry, Fnv, Loc, Node, Sources, Val};
use crate::raw::*;

/// A node and its field path.
#[derive(Clone)]
pub(crate) struct Ptr<'a> {
    pub(crate) node: &'a Node,
    pub(crate) path: String,
}

impl<'a> Ptr<'a> {
    pub(crate) fn root(node: &'a Node) -> Self {
        Ptr {
            node,
            path: String::new(),
        }
    }

    fn key(&self, k: &str) -> Option<Ptr<'a>> {
        self.node.get(k).map(|node| Ptr {
            node,
            path: join(&self.path, k),
        })
    }

    /// The key's node, or this node (for its position) when the key is absent.
    fn at(&self, k: &str) -> Ptr<'a> {
        self.key(k).unwrap_or_else(|| Ptr {
            node: self.node,
            path: join(&self.path, k),
        })
    }

    fn items(&self) -> Vec<Ptr<'a>> {
        self.node
            .array()
            .unwrap_or_default()
            .iter()
            .map(|node| Ptr {
                node,
                path: index(&self.path, node.ord),
            })
            .collect()
    }

    /// The items of array `k` (none when absent).
    fn items_of(&self, k: &str) -> Vec<Ptr<'a>> {
        self.key(k).map(|p| p.items()).unwrap_or_default()
    }
}

/// What kind of input is being compiled.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'r> {
    /// The config file: everything allowed.
    File,
    /// Run-time registration: restricted types and hosts.
    Registered(&'r RegistrationConfig),
}

/// Probe types that talk to no host (or only to the Vitalis host itself).
const HOSTLESS_TYPES: &[&str] = &["heartbeat", "disk", "file", "sqlite"];

pub(crate) struct Cx<'a> {
    pub(crate) sources: &'a Sources,
    /// The store heartbeat checks read (shared with the push endpoint).
    pub(crate) heartbeats: &'a vitalis_probes::Heartbeats,
}

impl<'a> Cx<'a> {
    pub(crate) fn err(
        &self,
        kind: ErrorKind,
        at: &Ptr<'_>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.sources.error(kind, at.node.loc, &at.path, message)
    }

    pub(crate) fn de<T: DeserializeOwned>(
        &self,
        node: &Node,
        path: &str,
    ) -> Result<T, ConfigError> {
        from_node(node, path).map_err(|e| self.de_error(e))
    }

    fn de_error(&self, e: DeError) -> ConfigError {
        let e = *e.0;
        self.sources
            .error(e.kind, e.loc, e.path.as_deref().unwrap_or(""), e.message)
            .with_hint(e.hint)
    }

    /// `file:line:col` of a node, or its field path for JSON input.
    fn place(&self, at: &Ptr<'_>) -> String {
        match at.node.loc {
            Some(_) => self.sources.describe(at.node.loc),
            None => at.path.clone(),
        }
    }

    fn id(&self, what: &str, id: &str, at: &Ptr<'_>) -> Result<(), ConfigError> {
        if is_valid_id(id) {
            return Ok(());
        }
        Err(self
            .err(
                ErrorKind::InvalidValue,
                at,
                format!("{what} '{id}' is invalid"),
            )
            .with_hint(Some(
                "use lowercase letters, digits, '_', '.', '-', starting with a letter or digit"
                    .into(),
            )))
    }

    fn positive(
        &self,
        d: Option<Dur>,
        at: &Ptr<'_>,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        match d {
            Some(Dur(d)) if d.is_zero() => Err(self.err(
                ErrorKind::InvalidValue,
                &at.at(key),
                format!("`{key}` must be greater than 0"),
            )),
            other => Ok(other.map(|d| d.0)),
        }
    }

    fn at_least_one(
        &self,
        n: Option<u32>,
        at: &Ptr<'_>,
        key: &str,
    ) -> Result<Option<u32>, ConfigError> {
        match n {
            Some(0) => Err(self.err(
                ErrorKind::InvalidValue,
                &at.at(key),
                format!("`{key}` must be at least 1"),
            )),
            other => Ok(other),
        }
    }

    fn http_url(&self, url: &str, at: &Ptr<'_>, what: &str) -> Result<(), ConfigError> {
        let ok = ["http://", "https://"]
            .iter()
            .any(|p| url.len() > p.len() && url[..p.len()].eq_ignore_ascii_case(p));
        if ok {
            Ok(())
        } else {
            Err(self.err(
                ErrorKind::InvalidValue,
                at,
                format!("{what} '{url}' is not an http:// or https:// URL"),
            ))
        }
    }

    // === whole file ===

    pub(crate) fn config(&self, root: &Node) -> Result<Config, ConfigError> {
        let raw: RawConfig = self.de(root, "")?;
        let top = Ptr::root(root);
        let sections: Vec<&'static str> = TOP_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "include" && root.get(k).is_some())
            .collect();

        let (defaults, max_concurrency) = self.defaults(
            raw.defaults.unwrap_or_default(),
            raw.breaker.unwrap_or_default(),
            &top.at("defaults"),
            &top.at("breaker"),
        )?;
        let server = self.server(raw.server.unwrap_or_default(), &top.at("server"))?;
        let history = match raw.history {
            Some(h) => Some(self.history(h, &top.at("history"))?),
            None => None,
        };

        let mut groups = Vec::new();
        let group_ptrs = top.items_of("group");
        for (g, at) in raw.group.into_iter().zip(&group_ptrs) {
            groups.push(self.group(g, at)?);
        }

        let mut components = Vec::new();
        let comp_ptrs = top.items_of("component");
        for (c, at) in raw.component.into_iter().zip(&comp_ptrs) {
            components.push(self.component(c, at, &defaults, Mode::File, Source::Config)?);
        }
        if let Err(e) = Topology::build(&groups, &components) {
            return Err(self.registry_error(e, &groups, &group_ptrs, &components, &comp_ptrs));
        }

        let alert = self.alert(raw.alert.unwrap_or_default(), &top.at("alert"))?;
        let mut discovery = Vec::new();
        for (d, at) in raw.discovery.into_iter().zip(top.items_of("discovery")) {
            discovery.push(self.discovery(d, &at)?);
        }

        let defaults_text = format!("{defaults:?}");
        let components = components
            .into_iter()
            .zip(&comp_ptrs)
            .map(|(component, at)| {
                let mut h = Fnv::new();
                at.node.hash_into(&mut h);
                h.write_str(&defaults_text);
                let (file, line) = match at.node.loc {
                    Some(l) => (
                        self.sources.path(l.file).to_path_buf(),
                        self.sources.line_col(l).0,
                    ),
                    None => (Default::default(), 0),
                };
                LoadedComponent {
                    component,
                    fingerprint: h.0,
                    file,
                    line,
                }
            })
            .collect();

        Ok(Config {
            server,
            defaults,
            max_concurrency,
            groups,
            components,
            history,
            alert,
            discovery,
            files: self.sources.files.iter().map(|f| f.path.clone()).collect(),
            sections,
        })
    }

    // === sections ===

    fn defaults(
        &self,
        d: RawDefaults,
        b: RawBreaker,
        at: &Ptr<'_>,
        bat: &Ptr<'_>,
    ) -> Result<(Defaults, ConcurrencyLimits), ConfigError> {
        let base = Defaults::default();
        let breaker = self.breaker(b, &base.breaker, bat)?;
        let defaults = Defaults {
            interval: self
                .positive(d.interval, at, "interval")?
                .unwrap_or(base.interval),
            deep_interval: self
                .positive(d.deep_interval, at, "deep_interval")?
                .unwrap_or(base.deep_interval),
            timeout: self
                .positive(d.timeout, at, "timeout")?
                .unwrap_or(base.timeout),
            cache_ttl: d.cache_ttl.map_or(base.cache_ttl, |d| d.0),
            failure_threshold: self
                .at_least_one(d.failure_threshold, at, "failure_threshold")?
                .unwrap_or(base.failure_threshold),
            success_threshold: self
                .at_least_one(d.success_threshold, at, "success_threshold")?
                .unwrap_or(base.success_threshold),
            breaker,
        };
        let limits = ConcurrencyLimits {
            global: self
                .at_least_one(d.max_concurrency, at, "max_concurrency")?
                .map(|n| n as usize),
            per_host: self
                .at_least_one(d.max_concurrency_per_host, at, "max_concurrency_per_host")?
                .map(|n| n as usize),
        };
        Ok((defaults, limits))
    }

    fn breaker(
        &self,
        b: RawBreaker,
        base: &BreakerSettings,
        at: &Ptr<'_>,
    ) -> Result<BreakerSettings, ConfigError> {
        let s = BreakerSettings {
            enabled: b.enabled.unwrap_or(base.enabled),
            failures: self
                .at_least_one(b.failures, at, "failures")?
                .unwrap_or(base.failures),
            open_for: self
                .positive(b.open_for, at, "open_for")?
                .unwrap_or(base.open_for),
            max_open_for: self
                .positive(b.max_open_for, at, "max_open_for")?
                .unwrap_or(base.max_open_for),
        };
        if s.max_open_for < s.open_for {
            let key = if b.max_open_for.is_some() {
                "max_open_for"
            } else {
                "open_for"
            };
            return Err(self.err(
                ErrorKind::InvalidValue,
                &at.at(key),
                format!(
                    "max_open_for ({}) is shorter than open_for ({})",
                    vitalis_core::duration::format(s.max_open_for),
                    vitalis_core::duration::format(s.open_for)
                ),
            ));
        }
        Ok(s)
    }

    fn server(&self, s: RawServer, at: &Ptr<'_>) -> Result<ServerConfig, ConfigError> {
        let base = ServerConfig::default();
        let listen = s.listen.map_or(base.listen, |a| a.0);
        let grpc_listen = s.grpc_listen.map(|a| a.0);
        if grpc_listen == Some(listen) {
            return Err(self.err(
                ErrorKind::InvalidValue,
                &at.at("grpc_listen"),
                format!("grpc_listen {listen} is the same address as listen"),
            ));
        }
        let mut tokens: Vec<Token> = Vec::new();
        let token_ptrs = at.items_of("token");
        for (t, tat) in s.token.into_iter().zip(&token_ptrs) {
            if t.name.trim().is_empty() {
                return Err(self.err(
                    ErrorKind::InvalidValue,
                    &tat.at("name"),
                    "token name is empty",
                ));
            }
            if let Some(i) = tokens.iter().position(|o| o.name == t.name) {
                return Err(self
                    .err(
                        ErrorKind::Duplicate,
                        &tat.at("name"),
                        format!("duplicate token name '{}'", t.name),
                    )
                    .with_hint(Some(format!(
                        "first declared at {}",
                        self.place(&token_ptrs[i].at("name"))
                    ))));
            }
            if t.value.is_empty() {
                return Err(self
                    .err(
                        ErrorKind::InvalidValue,
                        &tat.at("value"),
                        format!("token '{}' has an empty value", t.name),
                    )
                    .with_hint(Some(
                        "is the variable it comes from set to an empty string?".into(),
                    )));
            }
            if tokens.iter().any(|o| o.value.expose() == t.value) {
                return Err(self.err(
                    ErrorKind::Duplicate,
                    &tat.at("value"),
                    format!("token '{}' has the same value as another token; every token needs its own value", t.name),
                ));
            }
            if t.scopes.is_empty() {
                return Err(self
                    .err(
                        ErrorKind::InvalidValue,
                        &tat.at("scopes"),
                        format!("token '{}' has no scopes", t.name),
                    )
                    .with_hint(Some("give it some of read, heartbeat, write, admin".into())));
            }
            let mut scopes = t.scopes;
            scopes.sort();
            scopes.dedup();
            tokens.push(Token {
                name: t.name,
                value: Secret::new(t.value),
                scopes,
            });
        }
        let registration = match s.registration {
            None => RegistrationConfig::default(),
            Some(r) => self.registration(r, &at.at("registration"))?,
        };
        Ok(ServerConfig {
            listen,
            grpc_listen,
            details: s.details.unwrap_or_default(),
            metrics_auth: s.metrics_auth.unwrap_or(false),
            tokens,
            registration,
        })
    }

    fn registration(
        &self,
        r: RawRegistration,
        at: &Ptr<'_>,
    ) -> Result<RegistrationConfig, ConfigError> {
        let mut out = RegistrationConfig::default();
        if let Some(types) = r.allowed_types {
            for (t, tat) in types.iter().zip(at.items_of("allowed_types")) {
                if t == "command" {
                    return Err(self.err(
                        ErrorKind::InvalidValue,
                        &tat,
                        "`command` checks are never accepted through the API; remove it",
                    ));
                }
                if vitalis_probes::kind(t).is_none() {
                    return Err(self.unknown_type(t, &tat));
                }
            }
            out.allowed_types = types;
        }
        if let Some(hosts) = r.allowed_hosts {
            for (h, hat) in hosts.iter().zip(at.items_of("allowed_hosts")) {
                let bad = h.trim().is_empty()
                    || h.contains(['/', ' ', '@'])
                    || (h.contains(':')
                        && h.trim_matches(['[', ']'])
                            .parse::<std::net::Ipv6Addr>()
                            .is_err());
                if bad {
                    return Err(self
                        .err(
                            ErrorKind::InvalidValue,
                            &hat,
                            format!("'{h}' is not a host name"),
                        )
                        .with_hint(Some(
                            "write a host name or IP without scheme or port, or *.example.com"
                                .into(),
                        )));
                }
            }
            out.allowed_hosts = Some(hosts);
        }
        Ok(out)
    }

    fn history(&self, h: RawHistory, at: &Ptr<'_>) -> Result<HistoryConfig, ConfigError> {
        let lower = h.url.to_ascii_lowercase();
        let backend = if lower.starts_with("sqlite://") || lower.starts_with("sqlite:") {
            HistoryBackend::Sqlite
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            HistoryBackend::Postgres
        } else {
            return Err(self
                .err(
                    ErrorKind::InvalidValue,
                    &at.at("url"),
                    format!(
                        "history url '{}' is neither sqlite:// nor postgres://",
                        redact_url(&h.url)
                    ),
                )
                .with_hint(Some(
                    "e.g. sqlite://vitalis.db or postgres://user:pass@host/db".into(),
                )));
        };
        let raw_retention = self
            .positive(h.raw_retention, at, "raw_retention")?
            .unwrap_or(Duration::from_secs(48 * 3600));
        let retention = self
            .positive(h.retention, at, "retention")?
            .unwrap_or(Duration::from_secs(400 * 86400));
        if raw_retention > retention {
            return Err(self.err(
                ErrorKind::InvalidValue,
                &at.at("raw_retention"),
                format!(
                    "raw_retention ({}) is longer than retention ({})",
                    vitalis_core::duration::format(raw_retention),
                    vitalis_core::duration::format(retention)
                ),
            ));
        }
        Ok(HistoryConfig {
            url: h.url,
            backend,
            raw_retention,
            retention,
        })
    }

    fn group(&self, g: RawGroup, at: &Ptr<'_>) -> Result<Group, ConfigError> {
        self.id("group id", &g.id, &at.at("id"))?;
        if g.min_passing == Some(0) {
            return Err(self
                .err(
                    ErrorKind::InvalidValue,
                    &at.at("min_passing"),
                    "`min_passing` must be at least 1",
                )
                .with_hint(Some(
                    "leave min_passing out for a plain group (a view)".into(),
                )));
        }
        Ok(Group {
            id: g.id,
            critical: g.critical,
            min_passing: g.min_passing,
            severity: g.severity.map(|s| s.as_str().to_string()),
        })
    }

    // === components and checks ===

    pub(crate) fn component(
        &self,
        c: RawComponent,
        at: &Ptr<'_>,
        defaults: &Defaults,
        mode: Mode<'_>,
        source: Source,
    ) -> Result<Component, ConfigError> {
        self.id("component id", &c.id, &at.at("id"))?;
        if let Some(g) = &c.group {
            self.id("group id", g, &at.at("group"))?;
        }
        for k in c.labels.keys() {
            if k.trim().is_empty() {
                return Err(self.err(
                    ErrorKind::InvalidValue,
                    &at.at("labels"),
                    "label names must not be empty",
                ));
            }
        }
        if let Some(url) = &c.runbook_url {
            self.http_url(url, &at.at("runbook_url"), "runbook_url")?;
        }
        let check_ptrs = at.items_of("check");
        if check_ptrs.is_empty() {
            return Err(self
                .err(
                    ErrorKind::MissingKey,
                    &at.at("check"),
                    format!("component '{}' has no checks", c.id),
                )
                .with_hint(Some("declare at least one [[component.check]]".into())));
        }
        let mut checks = Vec::with_capacity(check_ptrs.len());
        for cat in &check_ptrs {
            checks.push(self.check(&c.id, cat, defaults, mode)?);
        }
        Ok(Component {
            name: c.name.unwrap_or_else(|| c.id.clone()),
            id: c.id,
            group: c.group,
            critical: c.critical,
            depends_on: c.depends_on,
            labels: c.labels,
            owner: c.owner,
            runbook_url: c.runbook_url,
            severity: c.severity.map(|s| s.as_str().to_string()),
            source,
            checks,
        })
    }

    fn check(
        &self,
        component: &str,
        at: &Ptr<'_>,
        defaults: &Defaults,
        mode: Mode<'_>,
    ) -> Result<CheckSpec, ConfigError> {
        let Some(entries) = at.node.table() else {
            return Err(self.err(
                ErrorKind::InvalidValue,
                at,
                format!("expected a check table, found {}", at.node.type_name()),
            ));
        };
        let (own, rest): (Vec<&Entry>, Vec<&Entry>) = entries
            .iter()
            .partition(|e| CHECK_KEYS.contains(&e.key.as_str()));
        let own_node = Node {
            val: Val::Table(own.into_iter().cloned().collect()),
            loc: at.node.loc,
            ord: at.node.ord,
        };
        let keys: CheckKeys = self.de(&own_node, &at.path)?;
        self.id("check name", &keys.name, &at.at("name"))?;

        let type_at = at.at("type");
        let Some(kind) = vitalis_probes::kind(&keys.kind) else {
            return Err(self.unknown_type(&keys.kind, &type_at));
        };
        if let Mode::Registered(reg) = mode {
            if keys.kind == "command" {
                return Err(self.err(
                    ErrorKind::Refused,
                    &type_at,
                    "`command` checks are never accepted through the API; declare them in the config file",
                ));
            }
            if !reg.allows_type(&keys.kind) {
                return Err(self
                    .err(
                        ErrorKind::Refused,
                        &type_at,
                        format!(
                            "probe type `{}` is not allowed for run-time registration",
                            keys.kind
                        ),
                    )
                    .with_hint(Some(format!(
                        "server.registration.allowed_types is {}",
                        quoted_list(reg.allowed_types.iter().map(String::as_str))
                    ))));
            }
        }

        // Keys neither the check nor the probe knows.
        if let Some(known) = crate::schema::probe_keys(kind) {
            for e in &rest {
                if !known.iter().any(|k| k == &e.key) {
                    let all = CHECK_KEYS
                        .iter()
                        .copied()
                        .chain(known.iter().map(String::as_str));
                    let hint = match closest(&e.key, all) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!(
                            "`{}` probe keys: {}",
                            kind.name(),
                            quoted_list(known.iter().map(String::as_str))
                        ),
                    };
                    return Err(self
                        .sources
                        .error(
                            ErrorKind::UnknownKey,
                            e.key_loc,
                            &join(&at.path, &e.key),
                            format!(
                                "unknown key `{}`: neither a check key nor a key of the `{}` probe",
                                e.key,
                                kind.name()
                            ),
                        )
                        .with_hint(Some(hint)));
                }
            }
        }

        let interval = self.positive(keys.interval, at, "interval")?;
        let timeout = self.positive(keys.timeout, at, "timeout")?;
        let mut active = Vec::new();
        for (w, wat) in keys.active.iter().zip(at.items_of("active")) {
            active.push(self.window(
                &w.days,
                w.from.as_deref(),
                w.to.as_deref(),
                w.tz.as_deref(),
                &wat,
            )?);
        }
        let breaker = match keys.breaker {
            Some(b) => Some(self.breaker(b, &defaults.breaker, &at.at("breaker"))?),
            None => None,
        };
        let settings = CheckSettings {
            interval,
            timeout,
            stale_after: self.positive(keys.stale_after, at, "stale_after")?,
            grace: keys.grace.map(|d| d.0),
            cache_ttl: keys.cache_ttl.map(|d| d.0),
            on_demand: keys.on_demand,
            active,
            breaker,
            failure_threshold: self.at_least_one(
                keys.failure_threshold,
                at,
                "failure_threshold",
            )?,
            success_threshold: self.at_least_one(
                keys.success_threshold,
                at,
                "success_threshold",
            )?,
            severity: keys.severity.map(|s| s.as_str().to_string()),
        };

        let table: toml::Table = rest
            .iter()
            .map(|e| (e.key.clone(), e.node.to_toml()))
            .collect();
        let cx = BuildCx {
            component: component.to_string(),
            check: keys.name.clone(),
            timeout: timeout.unwrap_or(defaults.timeout),
            heartbeats: self.heartbeats.clone(),
        };
        let check = kind
            .build(table, &cx)
            .map_err(|e| self.build_error(e, at, &rest, kind))?;

        if let Mode::Registered(reg) = mode
            && reg.allowed_hosts.is_some()
        {
            match check.target_host() {
                Some(host) if reg.allows_host(&host) => {}
                Some(host) => {
                    return Err(self.err(
                        ErrorKind::Refused,
                        at,
                        format!("target host '{host}' is not in server.registration.allowed_hosts"),
                    ));
                }
                None if HOSTLESS_TYPES.contains(&kind.name()) => {}
                None => {
                    return Err(self.err(
                        ErrorKind::Refused,
                        at,
                        format!(
                            "the target host of this `{}` check is unknown, and server.registration.allowed_hosts is set",
                            kind.name()
                        ),
                    ));
                }
            }
        }

        Ok(CheckSpec {
            name: keys.name,
            kind: keys.kind,
            level: match keys.level {
                None | Some(LevelName::Ready) => Level::Ready,
                Some(LevelName::Live) => Level::Live,
                Some(LevelName::Deep) => Level::Deep,
            },
            impact: match keys.impact {
                None | Some(ImpactName::Fail) => Impact::Fail,
                Some(ImpactName::Warn) => Impact::Warn,
            },
            settings,
            check,
        })
    }

    fn unknown_type(&self, kind: &str, at: &Ptr<'_>) -> ConfigError {
        let names = vitalis_probes::kind_names();
        let mut hint = format!("known types: {}", names.join(", "));
        if let Some(c) = closest(kind, names.iter().copied()) {
            hint = format!("did you mean `{c}`? {hint}");
        }
        self.err(
            ErrorKind::UnknownProbeType,
            at,
            format!("unknown probe type `{kind}`"),
        )
        .with_hint(Some(hint))
    }

    /// Locates a probe's build error: by its key, else by a value it quotes,
    /// else at the check.
    fn build_error(
        &self,
        e: BuildError,
        at: &Ptr<'_>,
        rest: &[&Entry],
        kind: &dyn ProbeKind,
    ) -> ConfigError {
        let unknown = e.message.starts_with("unknown field");
        let err_kind = if unknown {
            ErrorKind::UnknownKey
        } else {
            ErrorKind::InvalidValue
        };
        // By key (dotted for nested keys).
        if let Some(key) = &e.key {
            let mut parts = key.split('.');
            let first = parts.next().unwrap_or("");
            if let Some(entry) = rest.iter().find(|x| x.key == first) {
                let mut node = &entry.node;
                let mut key_loc = entry.key_loc;
                let mut path = join(&at.path, first);
                let mut found = true;
                for p in parts {
                    match node.entry(p) {
                        Some(sub) => {
                            key_loc = sub.key_loc;
                            node = &sub.node;
                            path = join(&path, p);
                        }
                        None => {
                            found = false;
                            break;
                        }
                    }
                }
                if found {
                    let loc = if unknown { key_loc } else { node.loc };
                    return self.sources.error(err_kind, loc, &path, e.message);
                }
            }
        }
        // By a value the message quotes (`5`, '5 parsecs', "x").
        let quoted: Vec<&str> = ['`', '\'', '"']
            .iter()
            .flat_map(|q| e.message.split(*q).skip(1).step_by(2))
            .filter(|s| !s.is_empty())
            .collect();
        let mut hits = Vec::new();
        for entry in rest {
            find_scalars(&entry.node, &join(&at.path, &entry.key), &quoted, &mut hits);
        }
        if let [(loc, path)] = hits.as_slice() {
            return self.sources.error(err_kind, *loc, path, e.message);
        }
        self.err(
            err_kind,
            at,
            format!("{} probe: {}", kind.name(), e.message),
        )
    }

    fn window(
        &self,
        days: &str,
        from: Option<&str>,
        to: Option<&str>,
        tz: Option<&str>,
        at: &Ptr<'_>,
    ) -> Result<ActiveWindow, ConfigError> {
        let (from_s, to_s, tz_s) = (
            from.unwrap_or("00:00"),
            to.unwrap_or("00:00"),
            tz.unwrap_or("UTC"),
        );
        ActiveWindow::parse(days, from_s, to_s, tz_s).map_err(|e| {
            let key = match &e {
                WindowError::Day(_) => "days",
                WindowError::Time(t) if from == Some(t.as_str()) => "from",
                WindowError::Time(_) => "to",
                WindowError::TimeZone(_) => "tz",
            };
            self.err(ErrorKind::InvalidValue, &at.at(key), e.to_string())
        })
    }

    // === alerts and discovery ===

    fn route_match(&self, m: Option<RawMatch>) -> RouteMatch {
        let m = m.unwrap_or_default();
        RouteMatch {
            group: m.group,
            component: m.component,
            severity: m.severity,
            labels: m.labels,
        }
    }

    fn sink_ref(&self, name: &str, sinks: &[AlertSink], at: &Ptr<'_>) -> Result<(), ConfigError> {
        if sinks.iter().any(|s| s.name == name) {
            return Ok(());
        }
        let mut e = self.err(
            ErrorKind::InvalidValue,
            at,
            format!("no [[alert.sink]] is named '{name}'"),
        );
        e = e.with_hint(match closest(name, sinks.iter().map(|s| s.name.as_str())) {
            Some(c) => Some(format!("did you mean '{c}'?")),
            None if sinks.is_empty() => Some("declare the sink with [[alert.sink]]".into()),
            None => Some(format!(
                "sinks: {}",
                quoted_list(sinks.iter().map(|s| s.name.as_str()))
            )),
        });
        Err(e)
    }

    fn alert(&self, a: RawAlert, at: &Ptr<'_>) -> Result<AlertConfig, ConfigError> {
        let base = AlertConfig::default();
        let mut sinks: Vec<AlertSink> = Vec::new();
        let sink_ptrs = at.items_of("sink");
        for (s, sat) in a.sink.into_iter().zip(&sink_ptrs) {
            if s.name.trim().is_empty() {
                return Err(self.err(
                    ErrorKind::InvalidValue,
                    &sat.at("name"),
                    "sink name is empty",
                ));
            }
            if let Some(i) = sinks.iter().position(|o| o.name == s.name) {
                return Err(self
                    .err(
                        ErrorKind::Duplicate,
                        &sat.at("name"),
                        format!("duplicate sink name '{}'", s.name),
                    )
                    .with_hint(Some(format!(
                        "first declared at {}",
                        self.place(&sink_ptrs[i].at("name"))
                    ))));
            }
            match (&s.url, s.kind) {
                (Some(_), SinkKind::Log) => {
                    return Err(self.err(
                        ErrorKind::InvalidValue,
                        &sat.at("url"),
                        "a `log` sink takes no url",
                    ));
                }
                (Some(url), _) => self.http_url(url, &sat.at("url"), "sink url")?,
                (None, SinkKind::Log) => {}
                (None, kind) => {
                    return Err(self.err(
                        ErrorKind::MissingKey,
                        &sat.at("url"),
                        format!(
                            "missing required key `url` (a `{}` sink needs one)",
                            kind.as_str()
                        ),
                    ));
                }
            }
            sinks.push(AlertSink {
                name: s.name,
                kind: s.kind,
                url: s.url,
                headers: s
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, Secret::new(v)))
                    .collect(),
                timeout: self
                    .positive(s.timeout, sat, "timeout")?
                    .unwrap_or(Duration::from_secs(10)),
            });
        }
        let mut routes = Vec::new();
        let route_ptrs = at.items_of("route");
        for (r, rat) in a.route.into_iter().zip(&route_ptrs) {
            if r.sinks.is_empty() {
                return Err(self.err(
                    ErrorKind::InvalidValue,
                    &rat.at("sinks"),
                    "a route needs at least one sink",
                ));
            }
            for (name, nat) in r.sinks.iter().zip(rat.items_of("sinks")) {
                self.sink_ref(name, &sinks, &nat)?;
            }
            routes.push(AlertRoute {
                matcher: self.route_match(r.matcher),
                sinks: r.sinks,
                continue_matching: r.continue_,
            });
        }
        let default_sinks = a.default_sinks.unwrap_or_default();
        for (name, nat) in default_sinks.iter().zip(at.items_of("default_sinks")) {
            self.sink_ref(name, &sinks, &nat)?;
        }
        if default_sinks.is_empty() && !routes.is_empty() {
            return Err(self
                .err(
                    ErrorKind::MissingKey,
                    &at.at("default_sinks"),
                    "`default_sinks` is required when any [[alert.route]] exists: alerts that match no route go there",
                )
                .with_hint(Some(format!(
                    "add default_sinks = [\"{}\"] to [alert]",
                    sinks.first().map_or("oncall", |s| s.name.as_str())
                ))));
        }
        if default_sinks.is_empty() && !sinks.is_empty() {
            return Err(self
                .err(
                    ErrorKind::MissingKey,
                    &at.at("default_sinks"),
                    "sinks are declared but no route or `default_sinks` sends alerts to them",
                )
                .with_hint(Some(format!(
                    "add default_sinks = [\"{}\"] to [alert]",
                    sinks[0].name
                ))));
        }
        let flap_high = a.flap_high.unwrap_or(base.flap_high);
        let flap_low = a.flap_low.unwrap_or(base.flap_low);
        for (v, key) in [(flap_high, "flap_high"), (flap_low, "flap_low")] {
            if !(0.0..=100.0).contains(&v) {
                return Err(self.err(
                    ErrorKind::InvalidValue,
                    &at.at(key),
                    format!("`{key}` is a percentage: between 0 and 100"),
                ));
            }
        }
        if flap_low >= flap_high {
            let key = if a.flap_low.is_some() {
                "flap_low"
            } else {
                "flap_high"
            };
            return Err(self.err(
                ErrorKind::InvalidValue,
                &at.at(key),
                format!("flap_low ({flap_low}) must be lower than flap_high ({flap_high})"),
            ));
        }
        let mut maintenance = Vec::new();
        for (m, mat) in a.maintenance.into_iter().zip(at.items_of("maintenance")) {
            let window = self.window(
                &m.days,
                m.from.as_deref(),
                m.to.as_deref(),
                m.tz.as_deref(),
                &mat,
            )?;
            maintenance.push(MaintenanceWindow {
                name: m.name,
                window,
                matcher: self.route_match(m.matcher),
            });
        }
        Ok(AlertConfig {
            sinks,
            routes,
            default_sinks,
            for_duration: a.for_.map_or(base.for_duration, |d| d.0),
            repeat_interval: self
                .positive(a.repeat_interval, at, "repeat_interval")?
                .unwrap_or(base.repeat_interval),
            flap_high,
            flap_low,
            maintenance,
        })
    }

    fn discovery(&self, d: RawDiscovery, at: &Ptr<'_>) -> Result<DiscoveryConfig, ConfigError> {
        let source = match d.kind {
            DiscoveryKind::File => {
                if d.url.is_some() {
                    return Err(self.err(
                        ErrorKind::InvalidValue,
                        &at.at("url"),
                        "`url` is for type = \"http\"; a file discovery takes `path`",
                    ));
                }
                let Some(path) = d.path else {
                    return Err(self.err(
                        ErrorKind::MissingKey,
                        &at.at("path"),
                        "missing required key `path` (a glob of TOML files)",
                    ));
                };
                if let Err(e) = glob::Pattern::new(&path) {
                    return Err(self.err(
                        ErrorKind::InvalidValue,
                        &at.at("path"),
                        format!("bad glob `{path}`: {} (at character {})", e.msg, e.pos + 1),
                    ));
                }
                let base = at
                    .node
                    .loc
                    .and_then(|l| self.sources.path(l.file).parent())
                    .unwrap_or(Path::new(""));
                DiscoverySource::File {
                    pattern: base.join(&path),
                }
            }
            DiscoveryKind::Http => {
                if d.path.is_some() {
                    return Err(self.err(
                        ErrorKind::InvalidValue,
                        &at.at("path"),
                        "`path` is for type = \"file\"; an http discovery takes `url`",
                    ));
                }
                let Some(url) = d.url else {
                    return Err(self.err(
                        ErrorKind::MissingKey,
                        &at.at("url"),
                        "missing required key `url`",
                    ));
                };
                self.http_url(&url, &at.at("url"), "discovery url")?;
                DiscoverySource::Http { url }
            }
        };
        Ok(DiscoveryConfig {
            source,
            interval: self
                .positive(d.interval, at, "interval")?
                .unwrap_or(Duration::from_secs(30)),
        })
    }

    // === registry errors ===

    pub(crate) fn registry_error(
        &self,
        e: RegistryError,
        groups: &[Group],
        group_ptrs: &[Ptr<'_>],
        comps: &[Component],
        comp_ptrs: &[Ptr<'_>],
    ) -> ConfigError {
        let comp_at = |id: &str| comps.iter().position(|c| c.id == id).map(|i| &comp_ptrs[i]);
        let message = e.to_string();
        match &e {
            RegistryError::Duplicate(id) => {
                let mut sites: Vec<Ptr<'_>> = groups
                    .iter()
                    .zip(group_ptrs)
                    .filter(|(g, _)| &g.id == id)
                    .map(|(_, p)| p.at("id"))
                    .collect();
                sites.extend(
                    comps
                        .iter()
                        .zip(comp_ptrs)
                        .filter(|(c, _)| &c.id == id)
                        .map(|(_, p)| p.at("id")),
                );
                if let [first, second, ..] = sites.as_slice() {
                    return self
                        .err(ErrorKind::Duplicate, second, message)
                        .with_hint(Some(format!("first declared at {}", self.place(first))));
                }
                if let Some((_, p)) = comps
                    .iter()
                    .zip(comp_ptrs)
                    .find(|(c, _)| c.group.as_deref() == Some(id.as_str()))
                {
                    return self.err(
                        ErrorKind::Duplicate,
                        &p.at("group"),
                        format!("group '{id}' is also a component id; component and group ids share one namespace"),
                    );
                }
                match sites.first() {
                    Some(at) => self.err(ErrorKind::Duplicate, at, message),
                    None => ConfigError::new(ErrorKind::Duplicate, "", message),
                }
            }
            RegistryError::DuplicateCheck { component, check } => {
                let Some(cat) = comp_at(component) else {
                    return ConfigError::new(ErrorKind::Duplicate, "", message);
                };
                let names: Vec<Ptr<'_>> = cat
                    .items_of("check")
                    .into_iter()
                    .filter(|p| p.node.get("name").and_then(Node::str) == Some(check.as_str()))
                    .map(|p| p.at("name"))
                    .collect();
                match names.as_slice() {
                    [first, second, ..] => self
                        .err(ErrorKind::Duplicate, second, message)
                        .with_hint(Some(format!("first declared at {}", self.place(first)))),
                    _ => self.err(ErrorKind::Duplicate, cat, message),
                }
            }
            RegistryError::UnknownDependency {
                component,
                dependency,
            } => {
                let Some(cat) = comp_at(component) else {
                    return ConfigError::new(ErrorKind::UnknownDependency, "", message);
                };
                let at = cat
                    .items_of("depends_on")
                    .into_iter()
                    .find(|p| p.node.str() == Some(dependency.as_str()))
                    .unwrap_or_else(|| cat.at("depends_on"));
                let ids = groups
                    .iter()
                    .map(|g| g.id.as_str())
                    .chain(comps.iter().map(|c| c.id.as_str()))
                    .chain(comps.iter().filter_map(|c| c.group.as_deref()));
                let hint = closest(dependency, ids).map(|c| format!("did you mean '{c}'?"));
                self.err(ErrorKind::UnknownDependency, &at, message)
                    .with_hint(hint)
            }
            RegistryError::Cycle(path) => {
                for pair in path.windows(2) {
                    let (a, b) = (&pair[0], &pair[1]);
                    if let Some(cat) = comp_at(a)
                        && let Some(dep) = cat
                            .items_of("depends_on")
                            .into_iter()
                            .find(|p| p.node.str() == Some(b.as_str()))
                    {
                        return self.err(ErrorKind::Cycle, &dep, message).with_hint(Some(
                            "a component may not depend, directly or through groups, on itself"
                                .into(),
                        ));
                    }
                }
                let first = path.first().and_then(|id| comp_at(id));
                match first {
                    Some(cat) => self.err(ErrorKind::Cycle, cat, message),
                    None => ConfigError::new(ErrorKind::Cycle, "", message),
                }
            }
            RegistryError::InvalidId { what, id } => {
                let at = match *what {
                    "group" => groups
                        .iter()
                        .zip(group_ptrs)
                        .find(|(g, _)| &g.id == id)
                        .map(|(_, p)| p.at("id"))
                        .or_else(|| {
                            comps
                                .iter()
                                .zip(comp_ptrs)
                                .find(|(c, _)| c.group.as_deref() == Some(id.as_str()))
                                .map(|(_, p)| p.at("group"))
                        }),
                    "check" => comp_ptrs
                        .iter()
                        .flat_map(|p| p.items_of("check"))
                        .find_map(|p| {
                            (p.node.get("name").and_then(Node::str) == Some(id.as_str()))
                                .then(|| p.at("name"))
                        }),
                    _ => comp_at(id).map(|p| p.at("id")),
                };
                match at {
                    Some(at) => self.err(ErrorKind::InvalidValue, &at, message),
                    None => ConfigError::new(ErrorKind::InvalidValue, "", message),
                }
            }
            RegistryError::NoChecks(id) => match comp_at(id) {
                Some(cat) => self.err(ErrorKind::MissingKey, cat, message),
                None => ConfigError::new(ErrorKind::MissingKey, "", message),
            },
            RegistryError::ZeroMinPassing(id) => {
                match groups.iter().zip(group_ptrs).find(|(g, _)| &g.id == id) {
                    Some((_, p)) => {
                        self.err(ErrorKind::InvalidValue, &p.at("min_passing"), message)
                    }
                    None => ConfigError::new(ErrorKind::InvalidValue, "", message),
                }
            }
            _ => ConfigError::new(ErrorKind::InvalidValue, "", message),
        }
    }
}

/// Scalars whose text is one of `wanted`, with their position and path.
fn find_scalars(node: &Node, path: &str, wanted: &[&str], hits: &mut Vec<(Option<Loc>, String)>) {
    let text = match &node.val {
        Val::Str(s) => Some(s.clone()),
        Val::Int(i) => Some(i.to_string()),
        Val::Float(f) => Some(f.to_string()),
        Val::Bool(b) => Some(b.to_string()),
        Val::Datetime(d) => Some(d.to_string()),
        Val::Array(items) => {
            for n in items {
                find_scalars(n, &index(path, n.ord), wanted, hits);
            }
            None
        }
        Val::Table(entries) => {
            for e in entries {
                find_scalars(&e.node, &join(path, &e.key), wanted, hits);
            }
            None
        }
    };
    if let Some(t) = text
        && wanted.contains(&t.as_str())
    {
        hits.push((node.loc, path.to_string()));
    }
}
