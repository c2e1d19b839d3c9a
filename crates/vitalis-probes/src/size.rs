//! Sizes as config files write them: `"5GiB"`, `"500MB"`, `"1024"`, or a
//! TOML integer (bytes).
//!
//! Units: `B`; decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); binary
//! `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024). Case does not matter; a
//! space between number and unit is allowed; the number may have a fraction
//! (`"1.5GiB"`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "SizeSchema")]
pub struct Size(pub u64);

/// The schema of a size: a string like `"5GiB"` or a number of bytes.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SizeSchema {
    Text(String),
    Bytes(u64),
}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl Size {
    /// Parses `"5GiB"`, `"500 MB"`, `"1024"`.
    pub fn parse(text: &str) -> Result<Size, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let factor = if unit.is_empty() {
            Some(1)
        } else {
            UNITS.iter().find(|(u, _)| *u == unit).map(|(_, f)| *f)
        };
        let bad = || {
            format!(
                "'{text}' is not a size; write it like \"5GiB\", \"500MB\" or a number of bytes (units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        };
        let factor = factor.ok_or_else(bad)?;
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * factor as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(Size(b)),
            Raw::Text(t) => Size::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_bytes(self.0))
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `12.3 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const NAMES: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < NAMES.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", NAMES[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(Size::parse("5GiB").unwrap(), Size(5 << 30));
        assert_eq!(Size::parse("500 MB").unwrap(), Size(500_000_000));
        assert_eq!(Size::parse("1.5kib").unwrap(), Size(1536));
        assert_eq!(Size::parse("1024").unwrap(), Size(1024));
        assert_eq!(Size::parse("0B").unwrap(), Size(0));
        for bad in ["", "GiB", "5 parsecs", "-1GiB", "1e400"] {
            assert!(
                Size::parse(bad).unwrap_err().contains("not a size"),
                "{bad}"
            );
        }
        let s: Size = serde_json::from_str("2048").unwrap();
        assert_eq!(s, Size(2048));
        let s: Size = serde_json::from_str("\"1MiB\"").unwrap();
        assert_eq!(s.to_string(), "1.0 MiB");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(5 << 30), "5.0 GiB");
    }
}
