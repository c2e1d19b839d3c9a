//! `${VAR}` and `${VAR:-default}` in string values.
//!
//! Expansion runs on parsed string values, never on the file's text: a
//! variable's value cannot add keys or tables, and line numbers stay right.

use std::collections::BTreeMap;

/// Where variables come from: the embedding program's map first, then
/// (unless turned off) the process environment.
///
/// ```
/// use vitalis_config::LoadOptions;
/// let opts = LoadOptions::without_env().var("FEED_URL", "ws://127.0.0.1:9001");
/// assert_eq!(
///     vitalis_config::expand("${FEED_URL}/ticks ${MISSING:-n/a}", &opts).unwrap(),
///     "ws://127.0.0.1:9001/ticks n/a"
/// );
/// ```
#[derive(Clone)]
pub struct LoadOptions {
    /// Variables supplied by the embedding program; they win over the environment.
    pub vars: BTreeMap<String, String>,
    /// Whether to read variables missing from `vars` from the process
    /// environment (default `true`).
    pub use_env: bool,
    /// The store `heartbeat` checks read: share one across loads (reloads)
    /// and with the push endpoint (`POST /v1/components/{id}/heartbeat`).
    pub heartbeats: vitalis_probes::Heartbeats,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show the names only.
        f.debug_struct("LoadOptions")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("use_env", &self.use_env)
            .finish()
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            vars: BTreeMap::new(),
            use_env: true,
            heartbeats: vitalis_probes::Heartbeats::default(),
        }
    }
}

impl LoadOptions {
    /// Variables from the environment only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Variables from [`LoadOptions::vars`] only, never the environment
    /// (tests, demos, embedding programs that want a closed world).
    pub fn without_env() -> Self {
        LoadOptions {
            vars: BTreeMap::new(),
            use_env: false,
            heartbeats: vitalis_probes::Heartbeats::default(),
        }
    }

    /// Adds a variable.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of a variable, if set.
    pub fn lookup(&self, name: &str) -> Result<Option<String>, ExpandError> {
        if let Some(v) = self.vars.get(name) {
            return Ok(Some(v.clone()));
        }
        if !self.use_env {
            return Ok(None);
        }
        match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ExpandError {
                variable: Some(name.to_string()),
                unset: false,
                message: format!("environment variable `{name}` is not valid UTF-8"),
                hint: None,
            }),
        }
    }
}

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// The variable at fault, if one is.
    pub variable: Option<String>,
    /// Whether the error is an unset variable without a default (otherwise
    /// the reference itself is malformed).
    pub unset: bool,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

fn is_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Expands `${VAR}` and `${VAR:-default}` in `text`.
///
/// * `${VAR}`: the variable's value; unset is an error.
/// * `${VAR:-default}`: the value, or `default` when unset or empty.
/// * `$${` writes a literal `${`; any other `$` is kept as is.
pub fn expand(text: &str, opts: &LoadOptions) -> Result<String, ExpandError> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(close) = body_start.find('}') else {
            return Err(ExpandError {
                variable: None,
                unset: false,
                message: format!(
                    "unterminated variable reference `{}`",
                    tail.chars().take(24).collect::<String>()
                ),
                hint: Some("write ${NAME} or ${NAME:-default}; write $${ for a literal ${".into()),
            });
        };
        let body = &body_start[..close];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if !is_name(name) {
            return Err(ExpandError {
                variable: None,
                unset: false,
                message: format!("`${{{body}}}` is not a variable reference"),
                hint: Some(
                    "names are letters, digits and _ (not starting with a digit); write ${NAME} or ${NAME:-default}, or $${ for a literal ${"
                        .into(),
                ),
            });
        }
        if default.is_some_and(|d| d.contains("${")) {
            return Err(ExpandError {
                variable: Some(name.to_string()),
                unset: false,
                message: format!(
                    "the default of `${{{name}:-…}}` contains another variable reference; nesting is not supported"
                ),
                hint: None,
            });
        }
        match (opts.lookup(name)?, default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ExpandError {
                    variable: Some(name.to_string()),
                    unset: true,
                    message: format!("variable `{name}` is not set"),
                    hint: Some(format!(
                        "set {name} in the environment, or give a default: ${{{name}:-value}}"
                    )),
                });
            }
        }
        rest = &body_start[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LoadOptions {
        LoadOptions::without_env()
            .var("HOST", "db.internal")
            .var("EMPTY", "")
    }

    #[test]
    fn expands_values_and_defaults() {
        let o = opts();
        assert_eq!(
            expand("postgres://${HOST}:5432", &o).unwrap(),
            "postgres://db.internal:5432"
        );
        assert_eq!(expand("${PORT:-5432}", &o).unwrap(), "5432");
        assert_eq!(expand("${EMPTY:-fallback}", &o).unwrap(), "fallback");
        assert_eq!(expand("[${EMPTY}]", &o).unwrap(), "[]");
        assert_eq!(expand("${X:-}", &o).unwrap(), "");
        assert_eq!(
            expand("a$b $ $${HOST} $$x", &o).unwrap(),
            "a$b $ ${HOST} $$x"
        );
        assert_eq!(expand("no vars", &o).unwrap(), "no vars");
        assert_eq!(
            expand("${HOST}${HOST}", &o).unwrap(),
            "db.internaldb.internal"
        );
    }

    #[test]
    fn refuses_unset_and_malformed_references() {
        let o = opts();
        let e = expand("x ${NOPE} y", &o).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("NOPE"));
        assert!(e.message.contains("not set"));
        assert!(
            expand("${HOST", &o)
                .unwrap_err()
                .message
                .contains("unterminated")
        );
        assert!(
            expand("${1X}", &o)
                .unwrap_err()
                .message
                .contains("not a variable")
        );
        assert!(
            expand("${A:-${B}}", &o)
                .unwrap_err()
                .message
                .contains("nesting")
        );
    }

    #[test]
    fn the_map_wins_over_the_environment() {
        // PATH is set in any test environment.
        let o = LoadOptions::new().var("PATH", "mine");
        assert_eq!(expand("${PATH}", &o).unwrap(), "mine");
        assert!(expand("${PATH}", &LoadOptions::new()).is_ok());
        assert!(expand("${PATH}", &LoadOptions::without_env()).is_err());
    }
}
