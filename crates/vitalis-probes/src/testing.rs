//! Shared helpers for the probes' tests.

use std::sync::Arc;

use vitalis_core::Check;

use crate::{BuildCx, BuildError};

/// Builds a probe of type `kind` from TOML text, as the config loader would.
pub(crate) fn build(kind: &str, toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    let table: toml::Table = toml::from_str(toml_text).expect("valid toml");
    crate::kind(kind)
        .expect("a built-in probe type")
        .build(table, &BuildCx::default())
}
