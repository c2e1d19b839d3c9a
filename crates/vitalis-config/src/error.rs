//! The one error type of the loader: where (file, line, column), what (the
//! field path), why (the message) and, where it helps, how to fix it (a hint).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read.
    Io,
    /// The file is not valid TOML (or the JSON is not an object).
    Syntax,
    /// A key that no part of the schema knows.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type or out of range (bad duration, bad level, …).
    InvalidValue,
    /// A check `type` that names no probe.
    UnknownProbeType,
    /// `depends_on` names neither a component nor a group.
    UnknownDependency,
    /// A dependency cycle.
    Cycle,
    /// Two components, groups, checks, tokens or sinks share an id or name.
    Duplicate,
    /// A plain table (`[server]`, `[defaults]`, …) set in two files.
    Conflict,
    /// `${VAR}` names a variable that is not set and has no default.
    UnsetVariable,
    /// A bad `include` entry (bad glob, missing file, file included twice).
    Include,
    /// Run-time registration refused (a `command` check, a type or host not allowed).
    Refused,
}

/// A configuration error: `file:line:column: field.path: message (hint: …)`.
///
/// Errors from files always carry the file, line and column; errors from
/// run-time registration (JSON) carry only the field path.
///
/// ```
/// let err = vitalis_config::load_str(
///     "[server]\nlisten = \"127.0.0.1:8080\"\nlsiten = \"x\"\n",
///     "vitalis.toml",
///     &vitalis_config::LoadOptions::without_env(),
/// )
/// .unwrap_err();
/// assert_eq!(err.line(), Some(3));
/// assert_eq!(err.path(), "server.lsiten");
/// assert!(err.to_string().starts_with("vitalis.toml:3:1: server.lsiten: unknown key"));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub(crate) inner: Box<ErrorInner>,
}

/// The fields of a [`ConfigError`], boxed to keep `Result`s small.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInner {
    pub(crate) kind: ErrorKind,
    pub(crate) file: Option<PathBuf>,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) path: String,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) source: Option<Arc<std::io::Error>>,
}

impl ConfigError {
    /// An error without a location (used for JSON input).
    pub(crate) fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            inner: Box::new(ErrorInner {
                kind,
                file: None,
                line: 0,
                column: 0,
                path: path.into(),
                message: message.into(),
                hint: None,
                source: None,
            }),
        }
    }

    /// Adds a hint.
    pub(crate) fn with_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.inner.hint = hint;
        }
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The file at fault, when the input was a file.
    pub fn file(&self) -> Option<&Path> {
        self.inner.file.as_deref()
    }

    /// The 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        (self.inner.line > 0).then_some(self.inner.line)
    }

    /// The 1-based column (in characters), when known.
    pub fn column(&self) -> Option<usize> {
        (self.inner.column > 0).then_some(self.inner.column)
    }

    /// The field path, like `component[0].check[1].address` (per-file
    /// indexes); empty for whole-file errors.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// How to fix it, when there is something useful to say.
    pub fn hint(&self) -> Option<&str> {
        self.inner.hint.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.inner.file {
            write!(f, "{}", file.display())?;
            if self.inner.line > 0 {
                write!(f, ":{}:{}", self.inner.line, self.inner.column)?;
            }
            f.write_str(": ")?;
        }
        if !self.inner.path.is_empty() {
            write!(f, "{}: ", self.inner.path)?;
        }
        f.write_str(&self.inner.message)?;
        if let Some(hint) = &self.inner.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The closest of `candidates` to `word`, for "did you mean" hints.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (with adjacent transpositions counting as one edit).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// `` `a`, `b`, `c` `` for messages.
pub(crate) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            closest("adress", ["address", "max_latency"]),
            Some("address")
        );
        assert_eq!(closest("lsiten", ["listen", "details"]), Some("listen"));
        assert_eq!(closest("zzz", ["listen", "details"]), None);
        assert_eq!(distance("abc", "acb"), 1);
    }

    #[test]
    fn displays_location_path_message_and_hint() {
        let mut e = ConfigError::new(
            ErrorKind::UnknownKey,
            "server.lsiten",
            "unknown key `lsiten`",
        )
        .with_hint(Some("did you mean `listen`?".into()));
        assert_eq!(
            e.to_string(),
            "server.lsiten: unknown key `lsiten` (hint: did you mean `listen`?)"
        );
        e.inner.file = Some("vitalis.toml".into());
        e.inner.line = 3;
        e.inner.column = 1;
        assert!(
            e.to_string()
                .starts_with("vitalis.toml:3:1: server.lsiten: ")
        );
    }
}
