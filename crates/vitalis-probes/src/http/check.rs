//! Running an `http` check and judging the answer.

use std::io::ErrorKind;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use super::client::{Clients, chain};
use super::sign::Signer;
use super::{ExpectStatus, StatusPattern};
use crate::BuildError;
use crate::assertion::Assertions;
use crate::secret::Redactor;

/// At most this much of a body is read; JSON assertions need all of it.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How much of a body a diagnostic quotes.
const PREVIEW_CHARS: usize = 200;

/// A compiled `http` check.
pub(crate) struct HttpCheck {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The URL as shown: userinfo redacted.
    pub(crate) shown_url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<String>,
    pub(crate) expect: StatusExpectation,
    pub(crate) max_latency: Option<Duration>,
    pub(crate) assert: Assertions,
    pub(crate) header_assert: Assertions,
    pub(crate) sign: Option<Signer>,
    pub(crate) clients: Arc<Clients>,
    pub(crate) redactor: Redactor,
    pub(crate) freshness: Freshness,
}

// === impl StatusExpectation ===

/// The accepted status codes, as inclusive ranges.
#[derive(Debug, Clone)]
pub(crate) struct StatusExpectation {
    ranges: Vec<(u16, u16)>,
    shown: String,
}

impl StatusExpectation {
    pub(crate) fn new(config: Option<&ExpectStatus>) -> Result<Self, BuildError> {
        let patterns: Vec<&StatusPattern> = match config {
            None => {
                return Ok(StatusExpectation {
                    ranges: vec![(200, 299)],
                    shown: "2xx".into(),
                });
            }
            Some(ExpectStatus::One(p)) => vec![p],
            Some(ExpectStatus::Many(list)) => list.iter().collect(),
        };
        if patterns.is_empty() {
            return Err(BuildError::key(
                "expect_status",
                "expect_status is an empty list; remove it (any 2xx) or list the codes",
            ));
        }
        let mut ranges = Vec::new();
        let mut shown = Vec::new();
        for p in patterns {
            // A code may come as a string too (e.g. from `${VAR}` expansion).
            let code = match p {
                StatusPattern::Code(c) => Some(*c),
                StatusPattern::Class(s) => s.trim().parse::<u16>().ok(),
            };
            match (code, p) {
                (Some(c), _) if (100..=599).contains(&c) => {
                    ranges.push((c, c));
                    shown.push(c.to_string());
                }
                (_, StatusPattern::Class(class))
                    if class.len() == 3
                        && class[1..].eq_ignore_ascii_case("xx")
                        && matches!(class.as_bytes()[0], b'1'..=b'5') =>
                {
                    let base = u16::from(class.as_bytes()[0] - b'0') * 100;
                    ranges.push((base, base + 99));
                    shown.push(class.to_ascii_lowercase());
                }
                (_, other) => {
                    let text = match other {
                        StatusPattern::Code(c) => c.to_string(),
                        StatusPattern::Class(s) => format!("'{s}'"),
                    };
                    return Err(BuildError::key(
                        "expect_status",
                        format!(
                            "expect_status {text} is neither a status code (100-599) nor a class like \"2xx\""
                        ),
                    ));
                }
            }
        }
        Ok(StatusExpectation {
            ranges,
            shown: shown.join(" or "),
        })
    }

    fn accepts(&self, status: StatusCode) -> bool {
        let s = status.as_u16();
        self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&s))
    }
}

// === impl Freshness ===

/// Decides when a run must open a new connection rather than reuse a
/// kept-alive one: every `every`, and after a connection-level failure
/// until a run succeeds.
#[derive(Debug)]
pub(crate) struct Freshness {
    pub(crate) every: Duration,
    state: Mutex<FreshState>,
}

#[derive(Debug, Default)]
struct FreshState {
    last_fresh: Option<Instant>,
    after_failure: bool,
}

impl Freshness {
    pub(crate) fn new(every: Duration) -> Self {
        Freshness {
            every,
            state: Mutex::default(),
        }
    }

    /// Whether this run uses a new connection.
    fn begin(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = s.after_failure || s.last_fresh.is_none_or(|t| t.elapsed() >= self.every);
        if fresh {
            s.last_fresh = Some(Instant::now());
        }
        fresh
    }

    /// Records whether the run failed below HTTP (connect, TLS, reset).
    fn end(&self, transport_failed: bool) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.after_failure = transport_failed;
    }
}

// === impl HttpCheck ===

/// What came back.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    complete: bool,
    elapsed: Duration,
}

enum Failure {
    Transport(reqwest::Error),
    Deadline,
}

impl Check for HttpCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let outcome = self.attempt(&cx).await;
            self.scrub(outcome)
        })
    }

    fn target_host(&self) -> Option<String> {
        self.url.host_str().map(str::to_string)
    }
}

impl HttpCheck {
    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let fresh = self.freshness.begin();
        let client = if fresh {
            &self.clients.fresh
        } else {
            &self.clients.pooled
        };
        let mut url = self.url.clone();
        let body = self.body.as_deref().unwrap_or("");
        if let Some(signer) = &self.sign {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            signer.sign(&mut url, body.as_bytes(), now_ms);
        }
        let mut request = client
            .request(self.method.clone(), url)
            .headers(self.headers.clone());
        if let Some((name, value)) = self.sign.as_ref().and_then(Signer::key_header) {
            request = request.header(name, value);
        }
        if let Some(b) = &self.body {
            request = request.body(b.clone());
        }

        let start = Instant::now();
        let exchange = async {
            let mut response = request.send().await.map_err(Failure::Transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            let mut complete = true;
            while let Some(chunk) = response.chunk().await.map_err(Failure::Transport)? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    body.truncate(MAX_BODY);
                    complete = false;
                    break;
                }
            }
            Ok(Answer {
                status,
                headers,
                body,
                complete,
                elapsed: start.elapsed(),
            })
        };
        let result = match tokio::time::timeout_at(cx.deadline(), exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Deadline),
        };
        self.freshness.end(result.is_err());
        match result {
            Ok(answer) => self.judge(answer),
            Err(Failure::Deadline) => Outcome::fail(format!(
                "{}: no complete answer within {} (the check's timeout); is the service overloaded, or a firewall dropping packets?",
                self.what(),
                vitalis_core::duration::format(cx.timeout())
            )),
            Err(Failure::Transport(e)) => Outcome::fail(self.transport_failure(e)),
        }
    }

    /// `GET http://host/path`, for diagnostics.
    fn what(&self) -> String {
        format!("{} {}", self.method, self.shown_url)
    }

    fn judge(&self, a: Answer) -> Outcome {
        let ms = a.elapsed.as_secs_f64() * 1000.0;
        let code = a.status.as_u16();
        if !self.expect.accepts(a.status) {
            let mut message = format!(
                "{}: answered {code} (expected {})",
                self.what(),
                self.expect.shown
            );
            message.push_str(&status_hint(a.status, &a.headers));
            message.push_str(&format!("; {}", preview(&a.body)));
            return Outcome::fail(message).observed(ms, "ms");
        }
        let mut problems: Vec<(Status, String)> = Vec::new();
        if let Some(max) = self.max_latency
            && a.elapsed > max
        {
            problems.push((
                Status::Fail,
                format!(
                    "answered {code} in {ms:.1}ms, over max_latency {}; the service or the network is slow",
                    vitalis_core::duration::format(max)
                ),
            ));
        }
        let mut passed = Vec::new();
        if !self.header_assert.is_empty() {
            let verdict = self.header_assert.evaluate_named(|name| {
                a.headers
                    .get_all(name)
                    .iter()
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect()
            });
            if verdict.status != Status::Pass {
                problems.push((verdict.status, verdict.message()));
            }
            passed.push(verdict.summary());
        }
        if !self.assert.is_empty() {
            if !a.complete {
                problems.push((
                    Status::Fail,
                    format!(
                        "the body is over {} MiB, too large to check its JSON",
                        MAX_BODY / (1024 * 1024)
                    ),
                ));
            } else {
                match serde_json::from_slice::<Value>(&a.body) {
                    Ok(doc) => {
                        let verdict = self.assert.evaluate_json(&doc);
                        if verdict.status != Status::Pass {
                            problems.push((verdict.status, verdict.message()));
                        }
                        passed.push(verdict.summary());
                    }
                    Err(e) => problems.push((
                        Status::Fail,
                        format!(
                            "answered {code} but the body is not JSON ({e}); {}",
                            preview(&a.body)
                        ),
                    )),
                }
            }
        }
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let outcome = if status == Status::Pass {
            let mut text = format!("{}: {code} in {ms:.1}ms", self.what());
            for p in passed.iter().filter(|p| !p.is_empty()) {
                text.push_str("; ");
                text.push_str(p);
            }
            Outcome::pass(text)
        } else {
            let text = problems
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; ");
            let message = format!("{}: {text}", self.what());
            match status {
                Status::Warn => Outcome::warn(message),
                _ => Outcome::fail(message),
            }
        };
        outcome.observed(ms, "ms")
    }

    /// A failure below HTTP, in words, with what to look at.
    fn transport_failure(&self, e: reqwest::Error) -> String {
        let timed_out = e.is_timeout();
        let e = e.without_url();
        let mut io_kind = None;
        let mut innermost = e.to_string();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            innermost = s.to_string();
            source = s.source();
        }
        let all = chain(&e).to_ascii_lowercase();
        let host = self.url.host_str().unwrap_or("");
        let (what, hint): (String, String) = if io_kind == Some(ErrorKind::ConnectionRefused) {
            (
                "connection refused".into(),
                "is the service running and listening on that port?".into(),
            )
        } else if all.contains("dns error") || all.contains("failed to lookup address") {
            (
                format!("cannot resolve host '{host}' ({innermost})"),
                "check DNS and the spelling of the host".into(),
            )
        } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
            (
                format!("TLS handshake failed: {innermost}"),
                tls_hint(&all).into(),
            )
        } else if all.contains("connection closed")
            || all.contains("incomplete")
            || all.contains("unexpected eof")
            || matches!(
                io_kind,
                Some(
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::UnexpectedEof
                )
            )
        {
            (
                format!("the connection closed before a complete answer ({innermost})"),
                "did the service crash or restart? look at its logs".into(),
            )
        } else if timed_out || io_kind == Some(ErrorKind::TimedOut) {
            (
                format!("timed out ({innermost})"),
                "is a firewall dropping packets, or the host down?".into(),
            )
        } else {
            (
                innermost,
                io_kind
                    .map(crate::tcp::connect_hint)
                    .unwrap_or("check that the host is reachable from the Vitalis host")
                    .into(),
            )
        };
        format!("{}: {what}; {hint}", self.what())
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

fn tls_hint(text: &str) -> &'static str {
    if text.contains("unknownissuer") || text.contains("unknown issuer") {
        "the server's certificate is not signed by a CA this host trusts; set tls.ca to the CA that signed it"
    } else if text.contains("notvalidforname") || text.contains("not valid for name") {
        "the certificate does not name this host; use the host name the certificate was issued for"
    } else if text.contains("expired") {
        "the server's certificate has expired; renew it"
    } else if text.contains("certificaterequired") || text.contains("certificate required") {
        "the server wants a client certificate; set tls.cert and tls.key"
    } else {
        "check the server's TLS setup and tls.ca, tls.cert and tls.key"
    }
}

/// What to look at for an unexpected status.
fn status_hint(status: StatusCode, headers: &HeaderMap) -> String {
    match status.as_u16() {
        300..=399 => match headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
            Some(location) => format!(
                "; it redirects to {} (redirects are not followed: point url there, or expect this status)",
                shown_location(location)
            ),
            None => String::new(),
        },
        401 | 403 => "; check the credentials (headers, secret_headers, sign)".into(),
        404 => "; check the URL path".into(),
        429 => "; the service is rate limiting this check".into(),
        _ => String::new(),
    }
}

/// A redirect target without userinfo.
fn shown_location(location: &str) -> String {
    match Url::parse(location) {
        Ok(u) => crate::secret::redact_url(&u),
        Err(_) => location.to_string(),
    }
}

/// `body starts: …` (or `empty body`): the first characters, one line.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "empty body".into();
    }
    match flat.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("body starts: {}…", &flat[..cut]),
        None => format!("body starts: {flat}"),
    }
}
