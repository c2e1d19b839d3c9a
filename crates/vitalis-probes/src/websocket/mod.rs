//! `websocket`: connects to a WebSocket, optionally sends a subscribe
//! message, and judges the messages — either once per run, or from one
//! long-lived subscription (`stream = true`).
//!
//! Once per run (the default): connect, send `send`, and expect at least
//! `min_messages` (default 1) messages within `expect_within` (default: the
//! check's timeout), one of which satisfies `assert` when given. The
//! observed value is the time until that expectation was met, in ms.
//!
//! ```toml
//! type = "websocket"
//! url = "wss://stream.example.com/ws"
//! send = '{"op":"subscribe","args":["trades.BTCUSDT"]}'
//! expect_within = "3s"
//! min_messages = 2
//! assert = [{ path = "$.data.price", op = ">", value = 0 }]
//! ```
//!
//! Streaming (`stream = true`): the check owns one subscription, opened on
//! its first run by a background task that reconnects with backoff
//! (200 ms doubling to 5 s, with jitter) and stops when the check is
//! dropped (reload, removal). Each run only reads the subscription's state:
//! the age of the last message against `max_age` (observed, in ms), the
//! message rate over a sliding window against `min_rate` (per second; the
//! window is 10 s, or longer for low rates: 10 / `min_rate` seconds, at
//! most 10 minutes), and `assert` on the last message. A subscription that
//! stays silent for 10 × `max_age` (at least 30 s) is reopened, in case the
//! connection died without a close.
//!
//! ```toml
//! type = "websocket"
//! url = "wss://md.example.com/feed"
//! send = '{"subscribe":"ticks"}'
//! stream = true
//! max_age = "500ms"
//! min_rate = 20
//! ```
//!
//! Secret header values and URL userinfo never appear in output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::assertion::{AssertionConfig, Assertions, Subject, Verdict};
use crate::secret::{Redactor, Secret, redact_url};
use crate::tls::roots;
use crate::{BuildCx, BuildError, ProbeConfig};

mod conn;
mod once;
mod stream;

#[cfg(test)]
mod tests;

use conn::Endpoint;

/// Judges the messages of a WebSocket.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketConfig {
    /// `ws://` or `wss://` URL. Userinfo is never shown.
    pub url: String,
    /// A text message sent after connecting (a subscription).
    #[serde(default)]
    pub send: Option<String>,
    /// Request headers of the opening handshake.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Handshake headers whose values are secrets: sent, never shown.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, Secret>,
    /// CA certificates (PEM) to trust besides the system's, for `wss://`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Once per run: the messages must arrive within this (default: the
    /// check's timeout, which it must be shorter than).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub expect_within: Option<Duration>,
    /// Once per run: how many messages must arrive. Default 1.
    #[serde(default)]
    pub min_messages: Option<u32>,
    /// Assertions on a message's JSON: once per run, one message must
    /// satisfy them; with `stream`, the last message must.
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// Keep one subscription open and judge its freshness and rate.
    #[serde(default)]
    pub stream: bool,
    /// With `stream`: fail when the last message is older than this (e.g. `500ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
    /// With `stream`: fail when fewer messages than this arrive per second.
    #[serde(default)]
    pub min_rate: Option<f64>,
}

impl std::fmt::Debug for WebsocketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebsocketConfig")
            .field("url", &shown_url(&self.url))
            .field("headers", &self.headers)
            .field("secret_headers", &self.secret_headers)
            .field("stream", &self.stream)
            .field("max_age", &self.max_age)
            .field("min_rate", &self.min_rate)
            .finish_non_exhaustive()
    }
}

impl ProbeConfig for WebsocketConfig {
    const NAME: &'static str = "websocket";

    fn build(self, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let mut redactor = Redactor::new();
        let url = Url::parse(&self.url).map_err(|e| {
            BuildError::key(
                "url",
                format!(
                    "url '{}' is not a URL ({e}); write it like wss://stream.example.com/ws",
                    shown_url(&self.url)
                ),
            )
        })?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
            return Err(BuildError::key(
                "url",
                format!(
                    "url '{}' must be ws:// or wss:// with a host",
                    redact_url(&url)
                ),
            ));
        }
        if let Some(p) = url.password() {
            redactor.add(p);
        } else if !url.username().is_empty() {
            redactor.add(url.username());
        }
        let shown = redact_url(&url);

        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let (n, v) = header("headers", name, value, true)?;
            headers.append(n, v);
        }
        for (name, value) in &self.secret_headers {
            redactor.add(value.expose());
            let (n, mut v) = header("secret_headers", name, value.expose(), false)?;
            v.set_sensitive(true);
            headers.append(n, v);
        }

        let tls = if url.scheme() == "wss" {
            let extra = match &self.ca {
                Some(path) => roots::read_ca("ca", path)?,
                None => Vec::new(),
            };
            let config = roots::client_config(roots::root_store("ca", &extra)?)
                .map_err(|e| BuildError::key("ca", e))?;
            Some(Arc::new(config))
        } else {
            if self.ca.is_some() {
                return Err(BuildError::key(
                    "ca",
                    "ca applies to wss:// URLs only; remove it, or use wss://",
                ));
            }
            None
        };
        let assert = Assertions::compile("assert", self.assert, Subject::Json)?;
        let endpoint = Arc::new(Endpoint {
            url: self.url.clone(),
            headers,
            tls,
            send: self.send,
        });
        let common = Common {
            shown_url: shown,
            host: url.host_str().map(str::to_string),
            assert,
            redactor,
        };

        if self.stream {
            for (key, set) in [
                ("expect_within", self.expect_within.is_some()),
                ("min_messages", self.min_messages.is_some()),
            ] {
                if set {
                    return Err(BuildError::key(
                        key,
                        format!(
                            "{key} applies to one connection per run; with stream = true use max_age and min_rate"
                        ),
                    ));
                }
            }
            if self.max_age.is_none() && self.min_rate.is_none() {
                return Err(BuildError::key(
                    "stream",
                    "stream = true needs max_age (how fresh the last message must be, e.g. \"500ms\") and/or min_rate (messages per second)",
                ));
            }
            if let Some(rate) = self.min_rate
                && !(rate.is_finite() && rate > 0.0)
            {
                return Err(BuildError::key(
                    "min_rate",
                    format!(
                        "min_rate must be a positive number of messages per second (got {rate})"
                    ),
                ));
            }
            if self.max_age.is_some_and(|a| a.is_zero()) {
                return Err(BuildError::key("max_age", "max_age must be longer than 0s"));
            }
            return Ok(Arc::new(stream::StreamCheck::new(
                common,
                endpoint,
                self.max_age,
                self.min_rate,
            )));
        }

        for (key, set) in [
            ("max_age", self.max_age.is_some()),
            ("min_rate", self.min_rate.is_some()),
        ] {
            if set {
                return Err(BuildError::key(
                    key,
                    format!("{key} applies to a kept subscription: set stream = true"),
                ));
            }
        }
        if let Some(within) = self.expect_within
            && within >= cx.timeout
        {
            return Err(BuildError::key(
                "expect_within",
                format!(
                    "expect_within ({}) must be shorter than the check's timeout ({}); raise timeout",
                    vitalis_core::duration::format(within),
                    vitalis_core::duration::format(cx.timeout)
                ),
            ));
        }
        let min_messages = self.min_messages.unwrap_or(1);
        if min_messages == 0 {
            return Err(BuildError::key(
                "min_messages",
                "min_messages must be at least 1 (to check only the handshake, use min_messages = 1 with a feed that sends, or an http check)",
            ));
        }
        Ok(Arc::new(once::OnceCheck {
            common,
            endpoint,
            expect_within: self.expect_within,
            min_messages,
        }))
    }
}

/// What both modes share.
#[derive(Debug)]
struct Common {
    shown_url: String,
    host: Option<String>,
    assert: Assertions,
    redactor: Redactor,
}

impl Common {
    /// `websocket wss://host/path`.
    fn what(&self) -> String {
        format!("websocket {}", self.shown_url)
    }

    /// Evaluates the assertions on one message's text.
    fn verdict(&self, text: &str) -> Verdict {
        match serde_json::from_str::<Value>(text) {
            Ok(doc) => self.assert.evaluate_json(&doc),
            Err(e) => Verdict {
                status: Status::Fail,
                failures: vec![format!("the message is not JSON ({e}): {}", preview(text))],
                passed: Vec::new(),
            },
        }
    }

    /// Removes every known secret from what is reported.
    fn scrub(&self, mut o: Outcome) -> Outcome {
        if !self.redactor.is_empty() {
            o.output = self.redactor.redact(&o.output);
            o.error = o.error.map(|e| self.redactor.redact(&e));
        }
        o
    }
}

/// The first characters of a message, on one line.
fn preview(text: &str) -> String {
    const MAX: usize = 120;
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// A URL as text before it parsed: userinfo cut out.
fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
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

impl Check for once::OnceCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let o = self.attempt(&cx).await;
            self.common.scrub(o)
        })
    }

    fn target_host(&self) -> Option<String> {
        self.common.host.clone()
    }
}

impl Check for stream::StreamCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let o = self.read(&cx).await;
            self.common.scrub(o)
        })
    }

    fn target_host(&self) -> Option<String> {
        self.common.host.clone()
    }
}
