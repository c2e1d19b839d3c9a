//! Shared helpers for the probes' tests.

use std::sync::Arc;

use std::time::Duration;

use vitalis_core::{Check, CheckCx, Outcome};

use crate::{BuildCx, BuildError};

/// Builds a probe of type `kind` from TOML text, as the config loader would.
pub(crate) fn build(kind: &str, toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    let table: toml::Table = toml::from_str(toml_text).expect("valid toml");
    crate::kind(kind)
        .expect("a built-in probe type")
        .build(table, &BuildCx::default())
}

/// Builds a probe and runs it once with `timeout`.
pub(crate) async fn run(kind: &str, toml_text: &str, timeout: Duration) -> Outcome {
    build(kind, toml_text)
        .expect("a valid probe config")
        .run(CheckCx::new(timeout))
        .await
}

/// An outcome's error text (empty when none), for assertions.
pub(crate) fn error(o: &Outcome) -> &str {
    o.error.as_deref().unwrap_or("")
}
