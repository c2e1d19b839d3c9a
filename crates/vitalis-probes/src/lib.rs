//! Vitalis probes: the built-in check types (`tcp`, `http`, `command`, …).
//!
//! Built so far: [`http`], [`tcp`], [`command`]; the data probes
//! [`postgres`], [`redis`], [`sqlite`], [`disk`] and [`file`](mod@file); the network
//! probes [`tls`], [`dns`], [`websocket`], [`metrics`], [`prometheus`],
//! [`grpc`], [`heartbeat`] (push, through [`Heartbeats`]) and [`vitalis`]
//! (federation). Every probe that asserts
//! on what it measured uses the one [`assertion`] language; [`secret`]
//! keeps tokens, keys and passwords out of what probes report.
//!
//! Each probe type is one module with a config struct (serde +
//! [`schemars::JsonSchema`], `deny_unknown_fields`) that implements
//! [`ProbeConfig`], plus one line in [`KINDS`]. The config loader takes a
//! check's own keys (`name`, `level`, `timeout`, …) off the TOML table and
//! hands the rest to the probe named by `type`.
//!
//! # Example
//!
//! ```
//! let tcp = vitalis_probes::kind("tcp").expect("built in");
//! let table: toml::Table = toml::from_str(r#"address = "127.0.0.1:5432""#).unwrap();
//! let check = tcp.build(table, &vitalis_probes::BuildCx::default()).unwrap();
//! # let _ = check;
//! ```

pub mod assertion;
pub mod command;
mod dburl;
pub mod disk;
pub mod dns;
pub mod file;
pub mod grpc;
pub mod heartbeat;
pub mod http;
pub mod metrics;
pub mod postgres;
pub mod prometheus;
pub mod redis;
mod registry;
mod scrape;
pub mod secret;
pub mod size;
mod sql;
pub mod sqlite;
pub mod tcp;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod vitalis;
pub mod websocket;

pub use heartbeat::Heartbeats;
pub use registry::{BuildCx, BuildError, Kind, ProbeConfig, ProbeKind};

/// Every built-in probe type: the one list that knows them all.
pub static KINDS: &[&dyn ProbeKind] = &[
    &Kind::<http::HttpConfig>::NEW,
    &Kind::<tcp::TcpConfig>::NEW,
    &Kind::<tls::TlsConfig>::NEW,
    &Kind::<dns::DnsConfig>::NEW,
    &Kind::<websocket::WebsocketConfig>::NEW,
    &Kind::<command::CommandConfig>::NEW,
    &Kind::<metrics::MetricsConfig>::NEW,
    &Kind::<prometheus::PrometheusConfig>::NEW,
    &Kind::<grpc::GrpcConfig>::NEW,
    &Kind::<postgres::PostgresConfig>::NEW,
    &Kind::<redis::RedisConfig>::NEW,
    &Kind::<sqlite::SqliteConfig>::NEW,
    &Kind::<disk::DiskConfig>::NEW,
    &Kind::<file::FileConfig>::NEW,
    &Kind::<heartbeat::HeartbeatConfig>::NEW,
    &Kind::<vitalis::VitalisConfig>::NEW,
];

/// The probe type called `name`.
pub fn kind(name: &str) -> Option<&'static dyn ProbeKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// The names of every built-in probe type, for error messages.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe types of SPEC.md section 4, in its table's order.
    const SPEC_TYPES: &[&str] = &[
        "http",
        "tcp",
        "tls",
        "dns",
        "websocket",
        "postgres",
        "redis",
        "sqlite",
        "disk",
        "file",
        "command",
        "metrics",
        "prometheus",
        "grpc",
        "heartbeat",
        "vitalis",
    ];

    #[test]
    fn every_kind_is_a_spec_type_and_listed_once() {
        let names = kind_names();
        for name in &names {
            assert!(
                SPEC_TYPES.contains(name),
                "probe type '{name}' is not in SPEC.md section 4"
            );
            assert_eq!(
                names.iter().filter(|n| *n == name).count(),
                1,
                "{name} twice"
            );
            assert!(kind(name).is_some());
        }
        for built in [
            "http",
            "tcp",
            "command",
            "postgres",
            "redis",
            "sqlite",
            "disk",
            "file",
            "tls",
            "dns",
            "websocket",
            "metrics",
            "prometheus",
            "grpc",
            "heartbeat",
            "vitalis",
        ] {
            assert!(names.contains(&built), "{built} is not in KINDS");
        }
    }

    /// When the shared SPEC.md is beside the workspace (as on developer
    /// machines and in CI), its table must match `SPEC_TYPES`.
    #[test]
    fn spec_types_match_the_spec_table() {
        let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/SPEC.md");
        let Ok(text) = std::fs::read_to_string(&spec) else {
            eprintln!("{} not found; using the embedded list", spec.display());
            return;
        };
        let section = text
            .split("## 4. Probes")
            .nth(1)
            .and_then(|s| s.split("\n## 5.").next())
            .expect("SPEC.md has a section 4");
        let table: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(table, SPEC_TYPES);
    }
}
