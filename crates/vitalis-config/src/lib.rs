//! Loads the Vitalis configuration file into typed structs and vitalis-core
//! declarations, with errors that name the file, the line and the field.
//!
//! A library with no server dependencies: the daemon uses it, and so can a
//! service that embeds Vitalis and wants the daemon's TOML config (with its
//! probes) beside its own checks.
//!
//! # Example
//!
//! ```
//! use vitalis_config::{load_str, LoadOptions};
//!
//! let text = r#"
//! [server]
//! listen = "127.0.0.1:9090"
//!
//! [[component]]
//! id = "trading-db"
//! group = "data"
//! critical = true
//!
//!   [[component.check]]
//!   name = "port"
//!   level = "live"
//!   type = "tcp"
//!   address = "${DB_HOST:-127.0.0.1}:5432"
//! "#;
//! let opts = LoadOptions::without_env().var("DB_HOST", "db.internal");
//! let config = load_str(text, "vitalis.toml", &opts)?;
//! assert_eq!(config.server.listen.port(), 9090);
//! let db = &config.components[0].component;
//! assert_eq!(db.checks[0].kind, "tcp");
//! assert_eq!(db.checks[0].check.target_host().as_deref(), Some("db.internal"));
//!
//! // Mistakes name the file, the line and the field:
//! let err = load_str(&text.replace("address", "adress"), "vitalis.toml", &opts).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "vitalis.toml:14:3: component[0].check[0].adress: unknown key `adress`: neither a check \
//!      key nor a key of the `tcp` probe (hint: did you mean `address`?)"
//! );
//! # Ok::<(), vitalis_config::ConfigError>(())
//! ```
//!
//! # How a file is read
//!
//! 1. Each file is parsed keeping the position of every key and value.
//! 2. `${VAR}` / `${VAR:-default}` are expanded in string values (never in
//!    the text, so a value cannot inject TOML); see [`LoadOptions`].
//! 3. `include` globs are followed (relative to the including file); arrays
//!    of tables are concatenated, a plain table may be set in one file only.
//! 4. Sections are deserialized into typed structs (unknown keys refused),
//!    checks are split into their own keys and their probe's keys, and each
//!    probe is built through [`vitalis_probes::kind`].
//! 5. The registry is validated with [`vitalis_core::Topology::build`]
//!    (ids, duplicates, unknown dependencies, cycles).
//!
//! See [`Config`] for the result, [`ConfigError`] for errors,
//! [`component_from_json`] for run-time registration and [`schema`] for the
//! JSON Schema. `docs/configuration.md` describes every field.

mod compile;
mod config;
mod de;
mod error;
mod loader;
mod node;
mod raw;
mod registration;
mod schema;
mod vars;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use config::{
    AlertConfig, AlertRoute, AlertSink, ComponentDiff, ConcurrencyLimits, Config, Details,
    DiscoveryConfig, DiscoverySource, HistoryBackend, HistoryConfig, INACTIVE_SECTIONS,
    LoadedComponent, MaintenanceWindow, RegistrationConfig, RouteMatch, Scope, Secret,
    ServerConfig, Severity, SinkKind, Token,
};
pub use error::{ConfigError, ErrorKind};
pub use registration::{JsonOptions, component_from_json};
pub use schema::schema;
pub use vars::{ExpandError, LoadOptions, expand};
/// Re-exported from [`vitalis_core::redact`], where it lives.
pub use vitalis_core::redact_url;

/// Loads the config file at `path` and everything it includes.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Config, ConfigError> {
    let loaded = loader::load_path(path, opts)?;
    compile::Cx {
        sources: &loaded.sources,
        heartbeats: &opts.heartbeats,
    }
    .config(&loaded.root)
}

/// Loads config text as if read from a file called `name` (used in
/// messages; `include` resolves relative to its directory).
pub fn load_str(
    text: &str,
    name: impl AsRef<Path>,
    opts: &LoadOptions,
) -> Result<Config, ConfigError> {
    let loaded = loader::load_text(text.to_string(), name.as_ref().to_path_buf(), opts)?;
    compile::Cx {
        sources: &loaded.sources,
        heartbeats: &opts.heartbeats,
    }
    .config(&loaded.root)
}

impl Config {
    /// Options for [`component_from_json`] matching this config's defaults,
    /// with the heartbeat store the push endpoint writes.
    pub fn json_options(
        &self,
        source: vitalis_core::Source,
        heartbeats: &vitalis_probes::Heartbeats,
    ) -> JsonOptions {
        JsonOptions {
            defaults: self.defaults.clone(),
            source,
            heartbeats: heartbeats.clone(),
        }
    }
}
