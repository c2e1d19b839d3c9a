//! Vitalis probes: the built-in check types (`tcp`, `http`, `command`, …).
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

mod registry;
pub mod tcp;

pub use registry::{BuildCx, BuildError, Kind, ProbeConfig, ProbeKind};

/// Every built-in probe type: the one list that knows them all.
pub static KINDS: &[&dyn ProbeKind] = &[&Kind::<tcp::TcpConfig>::NEW];

/// The probe type called `name`.
pub fn kind(name: &str) -> Option<&'static dyn ProbeKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// The names of every built-in probe type, for error messages.
pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}
