//! `http`: sends a request and judges the answer — status, latency,
//! response headers, JSON body.
//!
//! ```toml
//! type = "http"
//! url = "http://127.0.0.1:8081/positions"
//! expect_status = 200                       # default: any 2xx
//! max_latency = "250ms"
//! assert = [{ path = "$.positions.age_ms", op = "<", value = 500 }]
//! header_assert = [{ path = "x-mbx-used-weight-1m", op = "<", value = 1000 }]
//! secret_headers = { Authorization = "Bearer ${RISK_TOKEN}" }
//! ```
//!
//! The observed value is the request's latency in ms (until the whole body
//! arrived). Secret header values, the `sign` key and secret, and URL
//! userinfo never appear in output or errors: URLs are shown as
//! `https://***@host/…`, and every report is scrubbed of known secrets
//! (a server echoing a header back in an error body cannot leak it).
//!
//! Connections are kept alive between runs, through one client per distinct
//! `tls` setting shared by all checks. So that a broken connect path (a
//! dead listener, a new firewall rule) cannot hide behind a kept-alive
//! connection, a run opens a new connection at least every
//! [`FRESH_CONNECT_EVERY`], and every run after a connection failure does
//! so until one succeeds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use vitalis_core::Check;

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::secret::{Redactor, Secret, redact_url};
use crate::{BuildCx, BuildError, ProbeConfig};

mod check;
pub(crate) mod client;
mod sign;

#[cfg(test)]
mod tests;

pub use sign::SignConfig;

use check::{Freshness, HttpCheck, StatusExpectation};

/// A run opens a new connection (instead of reusing a kept-alive one) at
/// least this often.
pub const FRESH_CONNECT_EVERY: Duration = Duration::from_secs(60);

/// Sends a request to `url` and judges the answer.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http://` or `https://` URL. Userinfo (`https://user:pass@host`) is
    /// sent as basic auth and never shown.
    pub url: String,
    /// The request method. Default `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request headers whose values are secrets (tokens): sent, never shown.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, Secret>,
    /// The request body, sent as is (set `Content-Type` in `headers`).
    #[serde(default)]
    pub body: Option<String>,
    /// The accepted status codes: a code (`200`), a class (`"4xx"`), or a
    /// list of them. Default: any 2xx.
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    /// Fail when the answer takes longer than this (e.g. `250ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Assertions on the JSON body; `path` is an RFC 9535 JSON path.
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// Assertions on response headers; `path` is the header name.
    #[serde(default)]
    pub header_assert: Vec<AssertionConfig>,
    /// Exchange-style request signing (HMAC-SHA256 over query + body).
    #[serde(default)]
    pub sign: Option<SignConfig>,
    /// A custom CA and a client certificate (PEM files).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &shown_url_text(&self.url))
            .field("method", &self.method)
            .field("headers", &self.headers)
            .field("secret_headers", &self.secret_headers)
            .field("expect_status", &self.expect_status)
            .field("max_latency", &self.max_latency)
            .field("assert", &self.assert)
            .field("header_assert", &self.header_assert)
            .field("sign", &self.sign)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// `expect_status`: one code or class, or a list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExpectStatus {
    /// One code or class.
    One(StatusPattern),
    /// Any of these.
    Many(Vec<StatusPattern>),
}

/// A status code (`204`) or class (`"2xx"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusPattern {
    /// An exact code.
    Code(u16),
    /// A class: `"1xx"` … `"5xx"`.
    Class(String),
}

/// `tls`: PEM files for a private CA and a client certificate.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates to trust besides the system's (PEM bundle).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM, leaf first), sent when the server asks.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl ProbeConfig for HttpConfig {
    const NAME: &'static str = "http";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(self.compile()?))
    }
}

impl HttpConfig {
    /// Validates and compiles everything that does not change between runs.
    fn compile(self) -> Result<HttpCheck, BuildError> {
        let mut redactor = Redactor::new();
        let url = Url::parse(&self.url).map_err(|e| {
            BuildError::key(
                "url",
                format!(
                    "url '{}' is not a URL ({e}); write it like http://127.0.0.1:8080/health",
                    shown_url_text(&self.url)
                ),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(BuildError::key(
                "url",
                format!(
                    "url '{}' must be http:// or https:// with a host",
                    redact_url(&url)
                ),
            ));
        }
        if let Some(password) = url.password() {
            redactor.add(password);
            redactor.add(&percent_decode(password));
        } else if !url.username().is_empty() {
            // A bare userinfo is usually a token.
            redactor.add(url.username());
            redactor.add(&percent_decode(url.username()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Userinfo is sent as basic auth: scrub that form too.
            let user = percent_decode(url.username());
            let password = url.password().map(percent_decode).unwrap_or_default();
            redactor.add(&crate::secret::base64(
                format!("{user}:{password}").as_bytes(),
            ));
        }
        let shown_url = redact_url(&url);

        let method = match &self.method {
            None => Method::GET,
            Some(m) => {
                Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                    BuildError::key("method", format!("method '{m}' is not an HTTP method"))
                })?
            }
        };

        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let (n, v) = header(name, value, "headers", Some(value))?;
            headers.append(n, v);
        }
        for (name, value) in &self.secret_headers {
            redactor.add(value.expose());
            let (n, mut v) = header(name, value.expose(), "secret_headers", None)?;
            v.set_sensitive(true);
            headers.append(n, v);
        }

        let expect = StatusExpectation::new(self.expect_status.as_ref())?;
        let assert = Assertions::compile("assert", self.assert, Subject::Json)?;
        let header_assert = Assertions::compile(
            "header_assert",
            self.header_assert,
            Subject::Named("header"),
        )?;
        let sign = self.sign.map(|s| s.compile(&mut redactor)).transpose()?;
        let tls = tls_material(self.tls.unwrap_or_default())?;
        let clients = client::shared(&tls).map_err(|e| BuildError::key("tls", e))?;

        Ok(HttpCheck {
            method,
            url,
            shown_url,
            headers,
            body: self.body,
            expect,
            max_latency: self.max_latency,
            assert,
            header_assert,
            sign,
            clients,
            redactor,
            freshness: Freshness::new(FRESH_CONNECT_EVERY),
        })
    }
}

/// A validated header; `shown` is the value to quote in errors (never a secret).
fn header(
    name: &str,
    value: &str,
    key: &str,
    shown: Option<&str>,
) -> Result<(HeaderName, HeaderValue), BuildError> {
    let n = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| BuildError::key(key, format!("{key}: '{name}' is not a valid header name")))?;
    let v = HeaderValue::from_str(value).map_err(|_| {
        BuildError::key(
            key,
            match shown {
                Some(s) => format!("{key}.{name}: '{s}' holds characters a header cannot carry"),
                None => format!("{key}.{name}: the value holds characters a header cannot carry"),
            },
        )
    })?;
    Ok((n, v))
}

/// Reads and checks the `tls` files.
fn tls_material(tls: TlsConfig) -> Result<client::TlsMaterial, BuildError> {
    let read = |what: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| {
            BuildError::key(
                "tls",
                format!("tls.{what} {}: cannot read it: {e}", path.display()),
            )
        })
    };
    let ca = match &tls.ca {
        None => None,
        Some(path) => {
            let pem = read("ca", path)?;
            client::parse_ca(&pem)
                .map_err(|e| BuildError::key("tls", format!("tls.ca {} {e}", path.display())))?;
            Some(pem)
        }
    };
    let identity = match (&tls.cert, &tls.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let mut pem = read("cert", cert)?;
            pem.push(b'\n');
            pem.extend(read("key", key)?);
            client::parse_identity(&pem).map_err(|e| {
                BuildError::key(
                    "tls",
                    format!(
                        "tls.cert {} with tls.key {} {e}",
                        cert.display(),
                        key.display()
                    ),
                )
            })?;
            Some(pem)
        }
        _ => {
            return Err(BuildError::key(
                "tls",
                "tls.cert and tls.key go together: give both, or neither",
            ));
        }
    };
    Ok(client::TlsMaterial { ca, identity })
}

/// A URL as text for an error, before it parsed: userinfo cut out.
fn shown_url_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Decodes `%XX` escapes (userinfo is stored percent-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
