//! A serde `Deserializer` over [`Node`]s: typed structs come out, and every
//! error comes back with the position and field path of the innermost key
//! or value at fault.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{ErrorKind, closest, quoted_list};
use crate::node::{Entry, Loc, Node, Val};

/// An error raised while deserializing; position and path are filled in
/// by the innermost node that sees it.
#[derive(Debug, Clone)]
pub(crate) struct DeError(pub(crate) Box<DeInner>);

/// The fields of a [`DeError`], boxed to keep `Result`s small.
#[derive(Debug, Clone)]
pub(crate) struct DeInner {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) loc: Option<Loc>,
    pub(crate) path: Option<String>,
    /// For a missing key: the key, appended to the table's path.
    field: Option<&'static str>,
}

impl DeError {
    fn fill(mut self, loc: Option<Loc>, path: &str) -> Self {
        let e = &mut self.0;
        if e.path.is_none() {
            e.loc = loc;
            e.path = Some(match e.field {
                Some(f) => join(path, f),
                None => path.to_string(),
            });
        }
        self
    }
}

impl DeError {
    fn new(
        kind: ErrorKind,
        message: String,
        hint: Option<String>,
        field: Option<&'static str>,
    ) -> Self {
        DeError(Box::new(DeInner {
            kind,
            message,
            hint,
            loc: None,
            path: None,
            field,
        }))
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(ErrorKind::InvalidValue, msg.to_string(), None, None)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let hint = match closest(field, expected.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None if expected.is_empty() => "this table takes no keys".into(),
            None => format!("known keys: {}", quoted_list(expected.iter().copied())),
        };
        DeError::new(
            ErrorKind::UnknownKey,
            format!("unknown key `{field}`"),
            Some(hint),
            None,
        )
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(
            ErrorKind::InvalidValue,
            format!(
                "invalid value `{variant}`: expected one of {}",
                quoted_list(expected.iter().copied())
            ),
            closest(variant, expected.iter().copied()).map(|c| format!("did you mean `{c}`?")),
            None,
        )
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(
            ErrorKind::MissingKey,
            format!("missing required key `{field}`"),
            None,
            Some(field),
        )
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("expected {exp}, found {}", unexpected(unexp)))
    }
}

fn unexpected(u: de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match u {
        U::Bool(b) => format!("boolean `{b}`"),
        U::Signed(i) => format!("integer `{i}`"),
        U::Unsigned(i) => format!("integer `{i}`"),
        U::Float(f) => format!("float `{f}`"),
        U::Str(s) => format!("string \"{s}\""),
        U::Map => "a table".into(),
        U::Seq => "an array".into(),
        other => other.to_string(),
    }
}

/// Deserializes `T` from `node`, whose field path is `path`.
pub(crate) fn from_node<'a, T: de::Deserialize<'a>>(
    node: &'a Node,
    path: &str,
) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_string(),
    })
}

/// `a.b`, quoting keys that are not bare.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// `a[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDe<'a> {
    fn fail(&self, expected: &str) -> DeError {
        de::Error::custom(format_args!(
            "expected {expected}, found {}",
            self.node.type_name()
        ))
    }

    fn done<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.fill(self.node.loc, &self.path))
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.val {
            Val::Str(s) => v.visit_borrowed_str(s),
            Val::Int(i) => v.visit_i64(*i),
            Val::Float(f) => v.visit_f64(*f),
            Val::Bool(b) => v.visit_bool(*b),
            Val::Datetime(d) => v.visit_string(d.to_string()),
            Val::Array(a) => v.visit_seq(SeqDe {
                iter: a.iter(),
                path: self.path.clone(),
            }),
            Val::Table(t) => v.visit_map(MapDe {
                iter: t.iter(),
                pending: None,
                path: self.path.clone(),
            }),
        };
        self.done(r)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.val {
            Val::Table(_) => self.deserialize_any(v),
            _ => {
                let e = self.fail("a table");
                self.done(Err(e))
            }
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.val {
            Val::Array(_) => self.deserialize_any(v),
            _ => {
                let e = self.fail("an array");
                self.done(Err(e))
            }
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.val {
            Val::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            _ => Err(self.fail("a string")),
        };
        self.done(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct KeyDe<'a> {
    entry: &'a Entry,
    path: String,
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_borrowed_str(&self.entry.key)
            .map_err(|e: DeError| e.fill(self.entry.key_loc, &self.path))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, Node>,
    path: String,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(node) => {
                let path = index(&self.path, node.ord);
                // Errors a `Deserialize` impl raises after reading the value
                // (a bad duration) still belong to this value.
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.fill(node.loc, &path))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, Entry>,
    pending: Option<&'a Entry>,
    path: String,
}

impl<'de> de::MapAccess<'de> for MapDe<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some(entry) => {
                self.pending = Some(entry);
                seed.deserialize(KeyDe {
                    entry,
                    path: join(&self.path, &entry.key),
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self
            .pending
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before its key"))?;
        let path = join(&self.path, &entry.key);
        seed.deserialize(NodeDe {
            node: &entry.node,
            path: path.clone(),
        })
        .map_err(|e| e.fill(entry.node.loc, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Sources, from_toml};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
        #[serde(default)]
        level: Option<Lvl>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Lvl {
        Live,
        Ready,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    fn parse(text: &str) -> (Sources, Node) {
        let doc = toml::de::DeTable::parse(text).unwrap();
        let mut s = Sources::default();
        let f = s.add("t.toml".into(), text.into());
        let n = from_toml(doc.get_ref(), doc.span(), f).unwrap();
        (s, n)
    }

    fn err(text: &str) -> (String, (usize, usize), ErrorKind) {
        let (s, n) = parse(text);
        let e = from_node::<Outer>(&n, "").unwrap_err();
        let e = *e.0;
        (e.path.unwrap(), s.line_col(e.loc.unwrap()), e.kind)
    }

    #[test]
    fn errors_carry_path_and_position() {
        let ok = "name = 'x'\n[[inner]]\nport = 1\nlevel = 'live'\n";
        let (_, n) = parse(ok);
        let o: Outer = from_node(&n, "").unwrap();
        assert!(matches!(o.inner[0].level, Some(Lvl::Live)));
        assert_eq!(
            err("name = 'x'\n[[inner]]\nport = 1\n[[inner]]\nport = 1\n  prot = 2\n"),
            ("inner[1].prot".into(), (6, 3), ErrorKind::UnknownKey)
        );
        assert_eq!(
            err("name = 'x'\n[[inner]]\nport = 70000\n"),
            ("inner[0].port".into(), (3, 8), ErrorKind::InvalidValue)
        );
        assert_eq!(
            err("name = 'x'\n[[inner]]\nlevel = 'deep'\nport = 1\n"),
            ("inner[0].level".into(), (3, 9), ErrorKind::InvalidValue)
        );
        assert_eq!(
            err("name = 'x'\n[[inner]]\nlevel = 'live'\n"),
            ("inner[0].port".into(), (2, 1), ErrorKind::MissingKey)
        );
        assert_eq!(
            err("name = 1\n"),
            ("name".into(), (1, 8), ErrorKind::InvalidValue)
        );
        assert_eq!(
            err("name = 'x'\ninner = 3\n"),
            ("inner".into(), (2, 9), ErrorKind::InvalidValue)
        );
    }

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(join("labels", "a.b"), "labels.\"a.b\"");
        assert_eq!(join("", "server"), "server");
        assert_eq!(index("component", 2), "component[2]");
    }
}
