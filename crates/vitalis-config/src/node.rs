//! A parsed document that keeps, for every key and value, the file and the
//! byte offset it came from, so that every later error can name file, line
//! and column — also after several files were merged into one tree.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ErrorKind};

/// A position: which source file, and the byte range in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) file: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A value with its position (`None` for JSON input) and its index in the
/// array it belongs to *within its own file* (for field paths).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) val: Val,
    pub(crate) loc: Option<Loc>,
    pub(crate) ord: usize,
}

/// A key/value pair of a table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_loc: Option<Loc>,
    pub(crate) node: Node,
}

/// The value itself.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(toml::value::Datetime),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

impl Node {
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.val {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime(_) => "a datetime",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
        }
    }

    pub(crate) fn table(&self) -> Option<&[Entry]> {
        match &self.val {
            Val::Table(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn array(&self) -> Option<&[Node]> {
        match &self.val {
            Val::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn str(&self) -> Option<&str> {
        match &self.val {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn entry(&self, key: &str) -> Option<&Entry> {
        self.table()?.iter().find(|e| e.key == key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    /// Converts to a `toml::Value` (for probes).
    pub(crate) fn to_toml(&self) -> toml::Value {
        match &self.val {
            Val::Str(s) => toml::Value::String(s.clone()),
            Val::Int(i) => toml::Value::Integer(*i),
            Val::Float(f) => toml::Value::Float(*f),
            Val::Bool(b) => toml::Value::Boolean(*b),
            Val::Datetime(d) => toml::Value::Datetime(*d),
            Val::Array(a) => toml::Value::Array(a.iter().map(Node::to_toml).collect()),
            Val::Table(t) => toml::Value::Table(
                t.iter()
                    .map(|e| (e.key.clone(), e.node.to_toml()))
                    .collect(),
            ),
        }
    }

    /// Feeds a canonical encoding (keys sorted, types tagged) to `h`.
    pub(crate) fn hash_into(&self, h: &mut Fnv) {
        match &self.val {
            Val::Str(s) => {
                h.write(b"s");
                h.write_str(s);
            }
            Val::Int(i) => {
                h.write(b"i");
                h.write(&i.to_le_bytes());
            }
            Val::Float(f) => {
                h.write(b"f");
                h.write(&f.to_bits().to_le_bytes());
            }
            Val::Bool(b) => h.write(if *b { b"T" } else { b"F" }),
            Val::Datetime(d) => {
                h.write(b"d");
                h.write_str(&d.to_string());
            }
            Val::Array(a) => {
                h.write(b"[");
                h.write(&(a.len() as u64).to_le_bytes());
                for n in a {
                    n.hash_into(h);
                }
            }
            Val::Table(t) => {
                let mut entries: Vec<&Entry> = t.iter().collect();
                entries.sort_by(|a, b| a.key.cmp(&b.key));
                h.write(b"{");
                h.write(&(entries.len() as u64).to_le_bytes());
                for e in entries {
                    h.write_str(&e.key);
                    e.node.hash_into(h);
                }
            }
        }
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, no dependency.
pub(crate) struct Fnv(pub u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn write_str(&mut self, s: &str) {
        self.write(&(s.len() as u64).to_le_bytes());
        self.write(s.as_bytes());
    }
}

// === source files ===

/// One file that was read.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// Every file read so far; `Loc::file` indexes into it.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) files: Vec<SourceFile>,
}

impl Sources {
    pub(crate) fn add(&mut self, path: PathBuf, text: String) -> usize {
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }

    pub(crate) fn path(&self, file: usize) -> &Path {
        &self.files[file].path
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, loc: Loc) -> (usize, usize) {
        let text = &self.files[loc.file].text;
        let offset = floor_char_boundary(text, loc.start.min(text.len()));
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// `file:line:col` for messages that point at a second place.
    pub(crate) fn describe(&self, loc: Option<Loc>) -> String {
        match loc {
            Some(loc) => {
                let (l, c) = self.line_col(loc);
                format!("{}:{l}:{c}", self.path(loc.file).display())
            }
            None => "(unknown place)".into(),
        }
    }

    /// The raw text a location covers.
    pub(crate) fn snippet(&self, loc: Loc) -> &str {
        let text = &self.files[loc.file].text;
        text.get(loc.start..loc.end).unwrap_or("")
    }

    /// An error at `loc` (or without a position).
    pub(crate) fn error(
        &self,
        kind: ErrorKind,
        loc: Option<Loc>,
        path: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let mut e = ConfigError::new(kind, path, message);
        if let Some(loc) = loc {
            let (line, column) = self.line_col(loc);
            e.inner.file = Some(self.path(loc.file).to_path_buf());
            e.inner.line = line;
            e.inner.column = column;
        }
        e
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// === conversions ===

/// Converts a parsed TOML document; entries are ordered as they appear in the file.
pub(crate) fn from_toml(
    table: &DeTable<'_>,
    span: std::ops::Range<usize>,
    file: usize,
) -> Result<Node, (String, Loc)> {
    let loc = |r: std::ops::Range<usize>| Loc {
        file,
        start: r.start,
        end: r.end,
    };
    fn value(
        v: &DeValue<'_>,
        at: Loc,
        ord: usize,
        loc: &dyn Fn(std::ops::Range<usize>) -> Loc,
    ) -> Result<Node, (String, Loc)> {
        let val = match v {
            DeValue::String(s) => Val::Str(s.to_string()),
            DeValue::Integer(i) => Val::Int(
                i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| (format!("integer {i} is out of range"), at))?,
            ),
            DeValue::Float(f) => Val::Float(
                f.as_str()
                    .parse()
                    .map_err(|_| (format!("float {f} is out of range"), at))?,
            ),
            DeValue::Boolean(b) => Val::Bool(*b),
            DeValue::Datetime(d) => Val::Datetime(*d),
            DeValue::Array(a) => Val::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| value(x.get_ref(), loc(x.span()), i, loc))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => {
                let mut entries = t
                    .iter()
                    .map(|(k, v)| {
                        Ok(Entry {
                            key: k.get_ref().to_string(),
                            key_loc: Some(loc(k.span())),
                            node: value(v.get_ref(), loc(v.span()), 0, loc)?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                entries.sort_by_key(|e| e.key_loc.map_or(0, |l| l.start));
                Val::Table(entries)
            }
        };
        Ok(Node {
            val,
            loc: Some(at),
            ord,
        })
    }
    let node = value(&DeValue::Table(table.clone()), loc(span), 0, &loc)?;
    Ok(node)
}

/// Converts JSON (run-time registration); `null` is refused.
pub(crate) fn from_json(
    v: &serde_json::Value,
    path: &str,
    ord: usize,
) -> Result<Node, ConfigError> {
    use serde_json::Value as J;
    let val = match v {
        J::Null => {
            return Err(ConfigError::new(
                ErrorKind::InvalidValue,
                path,
                "null is not a valid value; leave the key out instead",
            ));
        }
        J::Bool(b) => Val::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None if n.is_u64() => {
                return Err(ConfigError::new(
                    ErrorKind::InvalidValue,
                    path,
                    format!("integer {n} is out of range"),
                ));
            }
            None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Val::Str(s.clone()),
        J::Array(a) => Val::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| from_json(x, &crate::de::index(path, i), i))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => Val::Table(
            o.iter()
                .map(|(k, x)| {
                    Ok(Entry {
                        key: k.clone(),
                        key_loc: None,
                        node: from_json(x, &crate::de::join(path, k), 0)?,
                    })
                })
                .collect::<Result<_, ConfigError>>()?,
        ),
    };
    Ok(Node {
        val,
        loc: None,
        ord,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_file_order() {
        let text = "b = 1\na = \"x\"\n[t]\nk = [1, 2.5]\n";
        let doc = DeTable::parse(text).unwrap();
        let mut sources = Sources::default();
        let f = sources.add("x.toml".into(), text.into());
        let node = from_toml(doc.get_ref(), doc.span(), f).unwrap();
        let keys: Vec<&str> = node
            .table()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "t"]);
        let a = node.entry("a").unwrap();
        assert_eq!(sources.line_col(a.key_loc.unwrap()), (2, 1));
        assert_eq!(sources.line_col(a.node.loc.unwrap()), (2, 5));
        let k = node.get("t").unwrap().get("k").unwrap();
        assert_eq!(k.array().unwrap()[1].ord, 1);
        assert_eq!(sources.line_col(k.array().unwrap()[1].loc.unwrap()), (4, 9));
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_values() {
        let fp = |text: &str| {
            let doc = DeTable::parse(text).unwrap();
            let n = from_toml(doc.get_ref(), doc.span(), 0).unwrap();
            let mut h = Fnv::new();
            n.hash_into(&mut h);
            h.0
        };
        assert_eq!(fp("a = 1\nb = 'x'"), fp("b = 'x'\na = 1"));
        assert_ne!(fp("a = 1\nb = 'x'"), fp("a = 1\nb = 'y'"));
        assert_ne!(fp("a = 1"), fp("a = '1'"));
    }
}
