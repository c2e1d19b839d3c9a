//! Keeping secrets out of output, errors and logs.
//!
//! A [`Secret`] is a config string (a token, a signing key, a secret header
//! value) whose `Debug` never shows it; a [`Redactor`] scrubs every known
//! secret from text a probe is about to report, as a last line of defence
//! (a server may echo a header back in an error body). [`redact_url`]
//! renders a URL without its userinfo (`https://user:pass@host` becomes
//! `https://***@host`).

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

/// A secret string from the config. `Debug` prints `***`; read it with
/// [`Secret::expose`] only where it is sent to the target.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret from a string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every known secret in a text by `***`.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor that knows no secret yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (empty strings are ignored).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether no secret is known.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Standard base64 with padding (how basic auth carries credentials).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `url` as text without its userinfo: `https://user:pass@host/x` becomes
/// `https://***@host/x`. Other URLs are unchanged.
pub fn redact_url(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Both calls only fail for URLs that cannot carry userinfo, which then have none.
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let s: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "hunter2");
        let mut r = Redactor::new();
        r.add("hunter2");
        r.add("");
        r.add("hunter");
        assert_eq!(
            r.redact("pw hunter2, hunter and more"),
            "pw ***, *** and more"
        );
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn urls_lose_their_userinfo() {
        let u: reqwest::Url = "https://user:pa%20ss@example.com:8443/x?y=1"
            .parse()
            .unwrap();
        assert_eq!(redact_url(&u), "https://***@example.com:8443/x?y=1");
        let u: reqwest::Url = "https://token@example.com/".parse().unwrap();
        assert_eq!(redact_url(&u), "https://***@example.com/");
        let u: reqwest::Url = "http://127.0.0.1:9/ping".parse().unwrap();
        assert_eq!(redact_url(&u), "http://127.0.0.1:9/ping");
    }
}
