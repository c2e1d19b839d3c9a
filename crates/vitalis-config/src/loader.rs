//! Reading files: parse with positions, expand variables in string values,
//! follow `include`, and merge everything into one tree.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::DeTable;

use crate::de::{index, join};
use crate::error::{ConfigError, ErrorKind, closest, quoted_list};
use crate::node::{Entry, Loc, Node, Sources, Val, from_toml};
use crate::vars::{LoadOptions, expand};

/// The top-level keys of a config file.
pub(crate) const TOP_KEYS: &[&str] = &[
    "include",
    "server",
    "defaults",
    "breaker",
    "history",
    "group",
    "component",
    "discovery",
    "alert",
];

/// Arrays of tables concatenated across files.
const ARRAY_KEYS: &[&str] = &["component", "group", "discovery"];

/// Plain tables (one file only), with the arrays of tables inside them that
/// are concatenated across files.
const PLAIN_TABLES: &[(&str, &[&str])] = &[
    ("server", &["token"]),
    ("alert", &["sink", "route", "maintenance"]),
    ("defaults", &[]),
    ("breaker", &[]),
    ("history", &[]),
];

/// The merged document and the files it came from.
pub(crate) struct Loaded {
    pub(crate) root: Node,
    pub(crate) sources: Sources,
}

/// Loads `path` and everything it includes.
pub(crate) fn load_path(path: &Path, opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    load_text(text, path.to_path_buf(), opts)
}

/// Loads `text` as if read from `name` (includes resolve relative to it).
pub(crate) fn load_text(
    text: String,
    name: PathBuf,
    opts: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let mut loader = Loader {
        opts,
        sources: Sources::default(),
        seen: Vec::new(),
    };
    let canonical = std::fs::canonicalize(&name).ok();
    let root = loader.load(name, text, canonical)?;
    Ok(Loaded {
        root,
        sources: loader.sources,
    })
}

fn io_error(path: &Path, e: &std::io::Error) -> ConfigError {
    let mut err = ConfigError::new(ErrorKind::Io, "", format!("cannot read the file: {e}"));
    err.inner.file = Some(path.to_path_buf());
    err.inner.source = Some(Arc::new(std::io::Error::new(e.kind(), e.to_string())));
    err
}

struct Loader<'o> {
    opts: &'o LoadOptions,
    sources: Sources,
    /// Canonical paths already read, with the file index.
    seen: Vec<(PathBuf, usize)>,
}

impl Loader<'_> {
    fn load(
        &mut self,
        path: PathBuf,
        text: String,
        canonical: Option<PathBuf>,
    ) -> Result<Node, ConfigError> {
        let file = self.sources.add(path.clone(), text);
        if let Some(c) = canonical {
            self.seen.push((c, file));
        }
        let mut doc = {
            let text = self.sources.files[file].text.as_str();
            let parsed = DeTable::parse(text).map_err(|e| {
                let start = e.span().map_or(0, |s| s.start);
                let loc = Loc {
                    file,
                    start,
                    end: start,
                };
                self.sources.error(
                    ErrorKind::Syntax,
                    Some(loc),
                    "",
                    format!("invalid TOML: {}", e.message().trim_end()),
                )
            })?;
            from_toml(parsed.get_ref(), parsed.span(), file)
                .map_err(|(msg, loc)| self.sources.error(ErrorKind::Syntax, Some(loc), "", msg))?
        };
        self.check_top_keys(&doc)?;
        self.expand_strings(&mut doc, "")?;

        let mut merged = Node {
            val: Val::Table(Vec::new()),
            loc: doc.loc,
            ord: 0,
        };
        if let Val::Table(entries) = &mut doc.val
            && let Some(i) = entries.iter().position(|e| e.key == "include")
        {
            let include = entries.remove(i);
            let Some(patterns) = include.node.array() else {
                return Err(self
                    .sources
                    .error(
                        ErrorKind::InvalidValue,
                        include.node.loc,
                        "include",
                        format!(
                            "expected an array of globs, found {}",
                            include.node.type_name()
                        ),
                    )
                    .with_hint(Some("write include = [\"packs/*.toml\"]".into())));
            };
            for pattern in patterns {
                let pattern_path = index("include", pattern.ord);
                for included in self.resolve(&path, pattern, &pattern_path)? {
                    let text = std::fs::read_to_string(&included).map_err(|e| {
                        self.sources.error(
                            ErrorKind::Include,
                            pattern.loc,
                            &pattern_path,
                            format!("cannot read included file {}: {e}", included.display()),
                        )
                    })?;
                    let canonical = std::fs::canonicalize(&included).ok();
                    if let Some(c) = &canonical
                        && let Some((_, first)) = self.seen.iter().find(|(s, _)| s == c)
                    {
                        return Err(self
                            .sources
                            .error(
                                ErrorKind::Include,
                                pattern.loc,
                                &pattern_path,
                                format!(
                                    "{} is already read (as {}); a file may be included once only",
                                    included.display(),
                                    self.sources.path(*first).display()
                                ),
                            )
                            .with_hint(Some(
                                "check for include cycles and overlapping globs".into(),
                            )));
                    }
                    let sub = self.load(included, text, canonical)?;
                    self.merge(&mut merged, sub)?;
                }
            }
        }
        self.merge(&mut merged, doc)?;
        Ok(merged)
    }

    fn check_top_keys(&self, doc: &Node) -> Result<(), ConfigError> {
        for e in doc.table().unwrap_or_default() {
            if !TOP_KEYS.contains(&e.key.as_str()) {
                let hint = match closest(&e.key, TOP_KEYS.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("known keys: {}", quoted_list(TOP_KEYS.iter().copied())),
                };
                return Err(self
                    .sources
                    .error(
                        ErrorKind::UnknownKey,
                        e.key_loc,
                        &join("", &e.key),
                        format!("unknown key `{}`", e.key),
                    )
                    .with_hint(Some(hint)));
            }
        }
        Ok(())
    }

    /// Expands `${VAR}` in every string value (never in keys).
    fn expand_strings(&self, node: &mut Node, path: &str) -> Result<(), ConfigError> {
        match &mut node.val {
            Val::Str(s) if s.contains("${") => match expand(s, self.opts) {
                Ok(v) => *s = v,
                Err(e) => {
                    let mut loc = node.loc;
                    // Point at the reference itself (multi-line strings).
                    if let (Some(l), Some(var)) = (loc.as_mut(), &e.variable)
                        && let Some(off) = self.sources.snippet(*l).find(&format!("${{{var}"))
                    {
                        l.start += off;
                    }
                    let kind = if e.unset {
                        ErrorKind::UnsetVariable
                    } else {
                        ErrorKind::InvalidValue
                    };
                    return Err(self
                        .sources
                        .error(kind, loc, path, e.message)
                        .with_hint(e.hint));
                }
            },
            Val::Array(items) => {
                for item in items {
                    let p = index(path, item.ord);
                    self.expand_strings(item, &p)?;
                }
            }
            Val::Table(entries) => {
                for e in entries {
                    let p = join(path, &e.key);
                    self.expand_strings(&mut e.node, &p)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The files an `include` entry names, sorted.
    fn resolve(
        &self,
        including: &Path,
        node: &Node,
        path: &str,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        let err = |kind, msg: String, hint: Option<String>| {
            self.sources
                .error(kind, node.loc, path, msg)
                .with_hint(hint)
        };
        let Some(pattern) = node.str() else {
            return Err(err(
                ErrorKind::InvalidValue,
                format!("expected a glob string, found {}", node.type_name()),
                None,
            ));
        };
        let base = including.parent().unwrap_or(Path::new(""));
        let absolute = Path::new(pattern).is_absolute();
        let full = if absolute {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        if !pattern.contains(['*', '?', '[']) {
            if full.is_file() {
                return Ok(vec![full]);
            }
            return Err(err(
                ErrorKind::Include,
                format!("included file {} does not exist", full.display()),
                Some("paths in include are relative to the file that includes them".into()),
            ));
        }
        if let Err(e) = glob::Pattern::new(pattern) {
            return Err(err(
                ErrorKind::Include,
                format!(
                    "bad include glob `{pattern}`: {} (at character {})",
                    e.msg,
                    e.pos + 1
                ),
                Some("globs use *, ?, ** and [abc]; see the glob crate's syntax".into()),
            ));
        }
        // The directory part before the first wildcard must exist: a typo
        // in it should not silently include nothing.
        let static_dir: PathBuf = {
            let parts: Vec<&str> = pattern.split('/').collect();
            let n = parts
                .iter()
                .position(|p| p.contains(['*', '?', '[']))
                .unwrap_or(parts.len());
            let mut d = if absolute {
                PathBuf::from("/")
            } else {
                base.to_path_buf()
            };
            for p in &parts[..n] {
                d.push(p);
            }
            d
        };
        if !static_dir.as_os_str().is_empty() && !static_dir.is_dir() {
            return Err(err(
                ErrorKind::Include,
                format!(
                    "include glob `{pattern}`: directory {} does not exist",
                    static_dir.display()
                ),
                Some("paths in include are relative to the file that includes them".into()),
            ));
        }
        let full_pattern = if absolute || base.as_os_str().is_empty() {
            pattern.to_string()
        } else {
            let Some(base) = base.to_str() else {
                return Err(err(
                    ErrorKind::Include,
                    format!("the directory {} is not valid UTF-8", base.display()),
                    None,
                ));
            };
            format!("{}/{pattern}", glob::Pattern::escape(base))
        };
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(&full_pattern, options).map_err(|e| {
            err(
                ErrorKind::Include,
                format!("bad include glob `{pattern}`: {}", e.msg),
                None,
            )
        })?;
        let mut files = Vec::new();
        for p in paths {
            let p = p.map_err(|e| {
                err(
                    ErrorKind::Include,
                    format!(
                        "include glob `{pattern}`: cannot read {}: {}",
                        e.path().display(),
                        e.error()
                    ),
                    None,
                )
            })?;
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Merges a file's document into the merged tree.
    fn merge(&self, base: &mut Node, other: Node) -> Result<(), ConfigError> {
        let Val::Table(other_entries) = other.val else {
            return Ok(());
        };
        let Val::Table(base_entries) = &mut base.val else {
            return Ok(());
        };
        for entry in other_entries {
            let Some(existing) = base_entries.iter_mut().find(|e| e.key == entry.key) else {
                base_entries.push(entry);
                continue;
            };
            let key = entry.key.clone();
            if ARRAY_KEYS.contains(&key.as_str()) {
                self.concat(existing, entry, &key)?;
            } else if let Some((_, arrays)) = PLAIN_TABLES.iter().find(|(k, _)| *k == key) {
                self.merge_plain(existing, entry, &key, arrays)?;
            } else {
                return Err(self.sources.error(
                    ErrorKind::Conflict,
                    entry.key_loc,
                    &key,
                    format!(
                        "`{key}` is already set in {}",
                        self.sources.describe(existing.key_loc)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn concat(&self, existing: &mut Entry, entry: Entry, path: &str) -> Result<(), ConfigError> {
        let not_array = |e: &Entry| {
            self.sources.error(
                ErrorKind::InvalidValue,
                e.node.loc,
                path,
                format!(
                    "expected an array of tables ([[{path}]]), found {}",
                    e.node.type_name()
                ),
            )
        };
        if existing.node.array().is_none() {
            return Err(not_array(existing));
        }
        let Val::Array(items) = entry.node.val else {
            return Err(not_array(&entry));
        };
        if let Val::Array(base) = &mut existing.node.val {
            base.extend(items);
        }
        Ok(())
    }

    fn merge_plain(
        &self,
        existing: &mut Entry,
        entry: Entry,
        name: &str,
        arrays: &[&str],
    ) -> Result<(), ConfigError> {
        let not_table = |e: &Entry| {
            self.sources.error(
                ErrorKind::InvalidValue,
                e.node.loc,
                name,
                format!("expected a table ([{name}]), found {}", e.node.type_name()),
            )
        };
        let Some(base_entries) = existing.node.table() else {
            return Err(not_table(existing));
        };
        let Some(other_entries) = entry.node.table() else {
            return Err(not_table(&entry));
        };
        let first_definer = |entries: &[Entry]| {
            entries
                .iter()
                .find(|e| !arrays.contains(&e.key.as_str()))
                .map(|e| e.key_loc)
        };
        if let (Some(first), Some(second)) =
            (first_definer(base_entries), first_definer(other_entries))
        {
            return Err(self
                .sources
                .error(
                    ErrorKind::Conflict,
                    second,
                    name,
                    format!(
                        "table [{name}] is set in two files: here and in {}; a plain table may be set in one file only",
                        self.sources.describe(first)
                    ),
                )
                .with_hint(Some(format!("move all [{name}] keys into one file"))));
        }
        let Val::Table(other_entries) = entry.node.val else {
            return Ok(());
        };
        for sub in other_entries {
            let sub_path = join(name, &sub.key);
            let Val::Table(base_entries) = &mut existing.node.val else {
                return Ok(());
            };
            match base_entries.iter_mut().find(|e| e.key == sub.key) {
                Some(found) => self.concat(found, sub, &sub_path)?,
                None => base_entries.push(sub),
            }
        }
        Ok(())
    }
}
