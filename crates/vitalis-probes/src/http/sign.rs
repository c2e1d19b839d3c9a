//! Exchange-style request signing (SPEC section 4):
//! `sign = { key, key_header, secret, timestamp_param = "timestamp", param = "signature" }`
//! adds `timestamp=<ms since epoch>` to the query, then
//! `signature=<hex HMAC-SHA256(secret, query string + body)>`, and sends the
//! key in `key_header`.

use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Sha256;

use crate::BuildError;
use crate::secret::{Redactor, Secret};

/// How to sign each request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// The API key, sent in `key_header` (a secret: never shown).
    #[serde(default)]
    pub key: Option<Secret>,
    /// The header that carries `key`, e.g. `X-MBX-APIKEY`.
    #[serde(default)]
    pub key_header: Option<String>,
    /// The HMAC-SHA256 secret (never shown).
    pub secret: Secret,
    /// The query parameter for the timestamp (ms since the Unix epoch).
    #[serde(default = "default_timestamp_param")]
    pub timestamp_param: String,
    /// The query parameter for the hex signature.
    #[serde(default = "default_param")]
    pub param: String,
}

fn default_timestamp_param() -> String {
    "timestamp".to_string()
}

fn default_param() -> String {
    "signature".to_string()
}

/// A validated [`SignConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    key: Option<(HeaderName, HeaderValue)>,
    secret: Secret,
    timestamp_param: String,
    param: String,
}

impl SignConfig {
    /// Validates; registers the secrets with `redactor`.
    pub(crate) fn compile(self, redactor: &mut Redactor) -> Result<Signer, BuildError> {
        let bad = |m: String| BuildError::key("sign", m);
        if self.secret.expose().is_empty() {
            return Err(bad("sign.secret is empty; is its variable set?".into()));
        }
        redactor.add(self.secret.expose());
        for (name, value) in [
            ("timestamp_param", &self.timestamp_param),
            ("param", &self.param),
        ] {
            let simple = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !simple {
                return Err(bad(format!(
                    "sign.{name} '{value}' must be a plain query parameter name (letters, digits, _ - .)"
                )));
            }
        }
        let key = match (self.key, self.key_header) {
            (None, None) => None,
            (Some(key), Some(header)) => {
                redactor.add(key.expose());
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    bad(format!(
                        "sign.key_header '{header}' is not a valid header name"
                    ))
                })?;
                let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                    bad("sign.key holds characters a header cannot carry".to_string())
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
            (Some(_), None) => {
                return Err(bad(
                    "sign.key needs sign.key_header, the header that carries it (e.g. X-MBX-APIKEY)"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "sign.key_header needs sign.key, the API key it carries".into(),
                ));
            }
        };
        Ok(Signer {
            key,
            secret: self.secret,
            timestamp_param: self.timestamp_param,
            param: self.param,
        })
    }
}

impl Signer {
    /// The key header to send, if any.
    pub(crate) fn key_header(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.key.as_ref()
    }

    /// Adds the timestamp and the signature over `query string + body` to `url`.
    pub(crate) fn sign(&self, url: &mut Url, body: &[u8], now_ms: u128) {
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&{}={now_ms}", self.timestamp_param),
            _ => format!("{}={now_ms}", self.timestamp_param),
        };
        url.set_query(Some(&query));
        // Sign exactly what will be sent, as the URL normalized it.
        let signed = url.query().unwrap_or_default().to_string();
        let signature = hmac_sha256_hex(self.secret.expose().as_bytes(), signed.as_bytes(), body);
        url.set_query(Some(&format!("{signed}&{}={signature}", self.param)));
    }
}

/// Lowercase hex of HMAC-SHA256(`key`, `a` + `b`).
pub(crate) fn hmac_sha256_hex(key: &[u8], a: &[u8], b: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(a);
    mac.update(b);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_documented_example() {
        // The worked example of Binance's API documentation (SIGNED endpoints).
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            hmac_sha256_hex(secret.as_bytes(), query.as_bytes(), b""),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn signs_query_then_appends_the_signature() {
        let cfg: SignConfig = toml::from_str(
            r#"key = "k"
key_header = "X-MBX-APIKEY"
secret = "s3cret""#,
        )
        .unwrap();
        let mut redactor = Redactor::new();
        let signer = cfg.compile(&mut redactor).unwrap();
        assert_eq!(redactor.redact("k s3cret"), "*** ***");
        let mut url: Url = "https://api.example/order/test?symbol=BTCUSDT"
            .parse()
            .unwrap();
        signer.sign(&mut url, b"qty=1", 1_700_000_000_000);
        let expected = hmac_sha256_hex(
            b"s3cret",
            b"symbol=BTCUSDT&timestamp=1700000000000",
            b"qty=1",
        );
        assert_eq!(
            url.query(),
            Some(format!("symbol=BTCUSDT&timestamp=1700000000000&signature={expected}").as_str())
        );
        assert!(signer.key_header().unwrap().1.is_sensitive());
    }

    #[test]
    fn refuses_half_configured_keys() {
        for (text, want) in [
            ("key = \"k\"\nsecret = \"s\"", "needs sign.key_header"),
            ("key_header = \"X\"\nsecret = \"s\"", "needs sign.key"),
            ("secret = \"\"", "empty"),
            ("secret = \"s\"\nparam = \"a b\"", "plain query parameter"),
        ] {
            let cfg: SignConfig = toml::from_str(text).unwrap();
            let e = cfg.compile(&mut Redactor::new()).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("sign"));
            assert!(e.message.contains(want), "{text}: {e}");
        }
    }
}
