//! A GET of an HTTP(S) endpoint for the probes that read what a server
//! publishes (`metrics`, `prometheus`, `vitalis`): URL and header handling,
//! secrets kept out of reports, and transport failures in words.
//!
//! Requests go through the `http` probe's shared client (kept-alive
//! connections, system CA certificates, no redirects followed).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use vitalis_core::Outcome;

use crate::BuildError;
use crate::http::client::{self, Clients, chain};
use crate::secret::{Redactor, Secret, redact_url};

/// A server endpoint to GET.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) url: Url,
    /// The URL as shown: userinfo redacted.
    pub(crate) shown: String,
    headers: HeaderMap,
    pub(crate) redactor: Redactor,
    clients: Arc<Clients>,
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    /// Whether the body was cut at the size limit.
    pub(crate) truncated: bool,
    pub(crate) elapsed: Duration,
}

impl Endpoint {
    /// Validates `url` (http or https with a host) and the headers.
    pub(crate) fn new(
        url: &str,
        headers: &BTreeMap<String, String>,
        secret_headers: &BTreeMap<String, Secret>,
        bearer: Option<&Secret>,
    ) -> Result<Endpoint, BuildError> {
        let mut redactor = Redactor::new();
        let parsed = Url::parse(url).map_err(|e| {
            BuildError::key(
                "url",
                format!(
                    "url '{}' is not a URL ({e}); write it like http://127.0.0.1:9090",
                    shown_text(url)
                ),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(BuildError::key(
                "url",
                format!(
                    "url '{}' must be http:// or https:// with a host",
                    redact_url(&parsed)
                ),
            ));
        }
        if let Some(p) = parsed.password() {
            redactor.add(p);
        } else if !parsed.username().is_empty() {
            redactor.add(parsed.username());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            redactor.add(&crate::secret::base64(
                format!(
                    "{}:{}",
                    parsed.username(),
                    parsed.password().unwrap_or_default()
                )
                .as_bytes(),
            ));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let (n, v) = header("headers", name, value, true)?;
            map.append(n, v);
        }
        for (name, value) in secret_headers {
            redactor.add(value.expose());
            let (n, mut v) = header("secret_headers", name, value.expose(), false)?;
            v.set_sensitive(true);
            map.append(n, v);
        }
        if let Some(token) = bearer {
            redactor.add(token.expose());
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    BuildError::key("token", "token holds characters a header cannot carry")
                })?;
            v.set_sensitive(true);
            map.insert(AUTHORIZATION, v);
        }
        let clients = client::shared(&client::TlsMaterial::default())
            .map_err(|e| BuildError::key("url", e))?;
        Ok(Endpoint {
            shown: redact_url(&parsed),
            url: parsed,
            headers: map,
            redactor,
            clients,
        })
    }

    /// The host, for per-host limits.
    pub(crate) fn host(&self) -> Option<String> {
        self.url.host_str().map(str::to_string)
    }

    /// GETs `url` (or `self.url`), reading at most `limit` bytes of body,
    /// giving up at `deadline`. The error is a sentence with what to look at.
    pub(crate) async fn get(
        &self,
        url: Option<Url>,
        accept: &str,
        limit: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Fetched, String> {
        let mut request = self
            .clients
            .pooled
            .get(url.unwrap_or_else(|| self.url.clone()))
            .headers(self.headers.clone());
        if !self.headers.contains_key(ACCEPT) {
            request = request.header(ACCEPT, accept);
        }
        let start = Instant::now();
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    body.truncate(limit);
                    truncated = true;
                    break;
                }
            }
            Ok::<_, reqwest::Error>(Fetched {
                status,
                content_type,
                body,
                truncated,
                elapsed: start.elapsed(),
            })
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(f)) => Ok(f),
            Ok(Err(e)) => Err(transport_failure(&e, self.url.host_str().unwrap_or(""))),
            Err(_) => Err(format!(
                "no complete answer within {} (the check's timeout); is the server overloaded, or a firewall dropping packets?",
                vitalis_core::duration::format(timeout)
            )),
        }
    }

    /// Removes every known secret from what is reported.
    pub(crate) fn scrub(&self, mut o: Outcome) -> Outcome {
        if !self.redactor.is_empty() {
            o.output = self.redactor.redact(&o.output);
            o.error = o.error.map(|e| self.redactor.redact(&e));
        }
        o
    }
}

/// What to look at for an unexpected status.
pub(crate) fn status_hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        300..=399 => "it redirects (redirects are not followed): point url at the final location",
        401 => "the credentials were refused: check the token or secret_headers",
        403 => "the credentials lack the permission needed",
        404 => "check the URL path",
        429 => "the server is rate limiting this check",
        500..=599 => "the server failed: look at its logs",
        _ => "check the URL and the server",
    }
}

/// `body starts: …` (or `empty body`).
pub(crate) fn preview(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "empty body".into();
    }
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("body starts: {}…", &flat[..cut]),
        None => format!("body starts: {flat}"),
    }
}

/// A failure below HTTP, in words, with what to look at.
fn transport_failure(e: &reqwest::Error, host: &str) -> String {
    let timed_out = e.is_timeout();
    let mut io_kind = None;
    let mut innermost = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = s.to_string();
        source = s.source();
    }
    let all = chain(e).to_ascii_lowercase();
    if io_kind == Some(ErrorKind::ConnectionRefused) {
        "connection refused; is the server running and listening on that port?".into()
    } else if all.contains("dns error") || all.contains("failed to lookup address") {
        format!(
            "cannot resolve host '{host}' ({innermost}); check DNS and the spelling of the host"
        )
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        format!(
            "TLS handshake failed: {innermost}; check the server's certificate (is it signed by a CA this host trusts, and for this host name?)"
        )
    } else if timed_out || io_kind == Some(ErrorKind::TimedOut) {
        format!("timed out ({innermost}); is a firewall dropping packets, or the host down?")
    } else if matches!(
        io_kind,
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof)
    ) || all.contains("connection closed")
        || all.contains("incomplete")
    {
        format!(
            "the connection closed before a complete answer ({innermost}); did the server crash or restart? look at its logs"
        )
    } else {
        format!(
            "{innermost}; {}",
            io_kind
                .map(crate::tcp::connect_hint)
                .unwrap_or("check that the host is reachable from the Vitalis host")
        )
    }
}

fn header(
    key: &str,
    name: &str,
    value: &str,
    show: bool,
) -> Result<(HeaderName, HeaderValue), BuildError> {
    let n = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| BuildError::key(key, format!("{key}: '{name}' is not a valid header name")))?;
    let v = HeaderValue::from_str(value).map_err(|_| {
        BuildError::key(
            key,
            if show {
                format!("{key}.{name}: '{value}' holds characters a header cannot carry")
            } else {
                format!("{key}.{name}: the value holds characters a header cannot carry")
            },
        )
    })?;
    Ok((n, v))
}

/// A URL as text before it parsed: userinfo cut out.
fn shown_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
