//! How a probe type plugs in: a config struct implementing [`ProbeConfig`],
//! wrapped in [`Kind`] and listed in [`crate::KINDS`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use vitalis_core::Check;

/// What building a check may need besides its own config.
#[derive(Debug, Clone)]
pub struct BuildCx {
    /// The component id (for diagnostics and push endpoints).
    pub component: String,
    /// The check name.
    pub check: String,
    /// The check's timeout.
    pub timeout: Duration,
    /// The heartbeat store that `heartbeat` checks read and the heartbeat
    /// endpoint writes: pass the same store to every build (and reload).
    pub heartbeats: crate::heartbeat::Heartbeats,
}

impl Default for BuildCx {
    fn default() -> Self {
        BuildCx {
            component: String::new(),
            check: String::new(),
            timeout: Duration::from_secs(2),
            heartbeats: crate::heartbeat::Heartbeats::default(),
        }
    }
}

/// A probe config that is wrong in a way serde cannot see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// The probe key at fault (for locating it in the file), if one is.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl BuildError {
    /// An error about one key.
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

/// A probe type's config: deserialized from the check's table (minus the
/// check's own keys), validated, then built into a [`Check`].
pub trait ProbeConfig: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The `type` name in config files.
    const NAME: &'static str;

    /// Builds the check; refuse what serde could not (bad addresses, bad URLs).
    fn build(self, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError>;
}

/// A probe type, object-safe, as listed in [`crate::KINDS`].
pub trait ProbeKind: Send + Sync + 'static {
    /// The `type` name.
    fn name(&self) -> &'static str;
    /// The JSON Schema of the probe's own keys.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
    /// Deserializes and builds.
    fn build(&self, table: toml::Table, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError>;
}

/// Adapts a [`ProbeConfig`] to [`ProbeKind`].
pub struct Kind<C>(PhantomData<fn() -> C>);

impl<C> Kind<C> {
    /// The adapter (a constant, for the static list).
    pub const NEW: Self = Kind(PhantomData);
}

impl<C: ProbeConfig> ProbeKind for Kind<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<C>()
    }

    fn build(&self, table: toml::Table, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let config = C::deserialize(toml::Value::Table(table)).map_err(|e| {
            let message = e.message().to_string();
            // serde names an unknown or missing key in backticks: "unknown
            // field `adress`". (Other messages quote values that way.)
            let key = (message.starts_with("unknown field")
                || message.starts_with("missing field"))
            .then(|| message.split('`').nth(1).map(str::to_string))
            .flatten();
            BuildError { key, message }
        })?;
        Ok(Arc::new(Async(config.build(cx)?)))
    }
}

/// Marks a built probe as purely async: every built-in probe awaits its I/O
/// and never blocks its thread, so the engine runs it on the shared worker
/// pool (see [`Check::may_block`]).
struct Async(Arc<dyn Check>);

impl Check for Async {
    fn run(&self, cx: vitalis_core::CheckCx) -> vitalis_core::BoxFuture<'_, vitalis_core::Outcome> {
        self.0.run(cx)
    }

    fn target_host(&self) -> Option<String> {
        self.0.target_host()
    }

    fn may_block(&self) -> bool {
        false
    }
}
