//! Durations as config files write them: humantime strings (`250ms`, `5s`, `2m`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `250ms`, `5s`, `2m`, `1h 30m`, `400d`.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration ({e}); write it like 250ms, 5s, 2m or 1h"))
}

/// Formats like config files write it (`2s`, `250ms`, `1m 30s`).
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "vitalis_core::duration")]` for a `Duration` field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Serializes as a humantime string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// `#[serde(with = "vitalis_core::duration::option")]` for an `Option<Duration>` field
/// (use with `#[serde(default)]`).
pub mod option {
    use super::*;

    /// Deserializes a present value.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }

    /// Serializes as a humantime string or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_durations() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("400d").unwrap(), Duration::from_secs(400 * 86400));
        assert!(parse("5 parsecs").unwrap_err().contains("not a duration"));
        assert_eq!(format(Duration::from_millis(1500)), "1s 500ms");
    }
}
