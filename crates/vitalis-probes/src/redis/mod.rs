//! `redis`: connects, sends `PING` or a command, and judges the reply.
//!
//! ```toml
//! type = "redis"
//! url = "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0"
//! command = ["INFO", "replication"]
//! max_latency = "50ms"
//! assert = [
//!   { path = "role", op = "==", value = "master" },
//!   { path = "connected_slaves", op = ">=", value = 1, impact = "warn" },
//! ]
//! ```
//!
//! Every run opens a connection (the connect path is tested each time),
//! authenticates and selects the database from the URL, sends the command
//! and closes. The observed value is the latency in ms (connect + command).
//!
//! **The reply as JSON**, for `assert`: an integer or double is a number,
//! a string is a string — unless it holds a JSON object or array, which is
//! parsed —, nil is `null`, an array or set is an array, a map an object.
//! The reply to `INFO` is an object of its fields (`role`,
//! `connected_slaves`, `used_memory`, …; values as text, which compares as
//! numbers where it is one); fields written `k=v,k=v` (`db0`, `slave0`)
//! are objects themselves (`$.db0.keys`).
//!
//! **`path`** is an RFC 9535 JSON path into that JSON (absent: the whole
//! reply), or simply a field name: `role` is short for `$.role`.
//!
//! Commands that would stop, wipe or reconfigure the server, or never
//! return (`SHUTDOWN`, `FLUSHALL`, `CONFIG SET`, `SUBSCRIBE`, …) are refused
//! when the config loads: checks are also registered through the API.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{AsyncConnectionConfig, Client, RedisError, Value as Reply};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Perfdata, Status};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::dburl::{add_password, parse_url, shown_url_text};
use crate::secret::Redactor;
use crate::{BuildCx, BuildError, ProbeConfig};

#[cfg(test)]
mod tests;

/// How much of a reply a diagnostic quotes.
const REPLY_CHARS: usize = 120;

/// Commands never sent (first word, or first two words).
const REFUSED: &[&str] = &[
    "SHUTDOWN",
    "FLUSHALL",
    "FLUSHDB",
    "SWAPDB",
    "DEBUG",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
    "MIGRATE",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "CONFIG SET",
    "CONFIG REWRITE",
    "CONFIG RESETSTAT",
    "CLIENT KILL",
    "CLIENT PAUSE",
    "SCRIPT FLUSH",
    "SCRIPT KILL",
    "FUNCTION FLUSH",
    "FUNCTION DELETE",
    "ACL SETUSER",
    "ACL DELUSER",
    "CLUSTER RESET",
    "CLUSTER FAILOVER",
];

/// Connects to Redis, sends `command` (default `PING`) and judges the reply.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user]:password@host:port/db`. The password is a secret.
    pub url: String,
    /// The command: an argument list (`["GET", "last_tick"]`) or a string
    /// split at spaces (`"INFO replication"`). Default `PING`.
    #[serde(default)]
    pub command: Option<RedisCommand>,
    /// Fail when connecting and the command take longer than this (e.g. `50ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Assertions on the reply (see the module docs for `path`).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
}

/// `command`: a list of arguments or one string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RedisCommand {
    /// `["INFO", "replication"]`.
    Argv(Vec<String>),
    /// `"INFO replication"`, split at whitespace.
    Line(String),
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &shown_url_text(&self.url))
            .field("command", &self.command)
            .field("max_latency", &self.max_latency)
            .field("assert", &self.assert)
            .finish()
    }
}

impl ProbeConfig for RedisConfig {
    const NAME: &'static str = "redis";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        if self.url.starts_with("rediss://") || self.url.starts_with("redis+unix://") {
            return Err(BuildError::key(
                "url",
                format!(
                    "url '{}': only redis:// (plain TCP) is supported; for TLS, check the port with a tls check and Redis through a local stunnel, or open an issue",
                    shown_url_text(&self.url)
                ),
            ));
        }
        let (shown, host, mut redactor) = parse_url(&self.url, &["redis"])?;
        let client = Client::open(self.url.as_str()).map_err(|e| {
            BuildError::key(
                "url",
                format!(
                    "url '{shown}' is not a Redis URL ({}); write it like redis://:password@127.0.0.1:6379/0",
                    redactor.redact(&e.to_string())
                ),
            )
        })?;
        if let Some(pw) = &client.get_connection_info().redis_settings().password() {
            add_password(&mut redactor, pw);
        }
        let argv: Vec<String> = match self.command {
            None => vec!["PING".into()],
            Some(RedisCommand::Argv(v)) => v,
            Some(RedisCommand::Line(l)) => l.split_whitespace().map(str::to_string).collect(),
        };
        if argv.first().is_none_or(|a| a.trim().is_empty()) {
            return Err(BuildError::key(
                "command",
                "command is empty; remove it (PING) or give one, e.g. [\"INFO\", \"replication\"]",
            ));
        }
        let name = argv[0].to_ascii_uppercase();
        let two = argv
            .get(1)
            .map(|a| format!("{name} {}", a.to_ascii_uppercase()))
            .unwrap_or_default();
        if let Some(refused) = REFUSED.iter().find(|r| **r == name || **r == two) {
            return Err(BuildError::key(
                "command",
                format!(
                    "command {refused} would stop, wipe or reconfigure the server, or never return: a health check must not send it"
                ),
            ));
        }
        let info = name == "INFO";
        let assert = self
            .assert
            .into_iter()
            .map(|mut a| {
                a.path = a.path.map(|p| field_path(&p));
                a
            })
            .collect();
        Ok(Arc::new(RedisCheck {
            client,
            what: format!("redis {shown}"),
            host,
            shown_command: shown_command(&argv),
            argv,
            info,
            max_latency: self.max_latency,
            assert: Assertions::compile("assert", assert, Subject::Json)?,
            redactor,
        }))
    }
}

/// A field name as a JSON path: `role` → `$.role`; paths stay as they are.
fn field_path(p: &str) -> String {
    let p = p.trim();
    if p.starts_with('$') || p.is_empty() {
        return p.to_string();
    }
    let shorthand = p
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if shorthand {
        format!("$.{p}")
    } else {
        format!("$['{}']", p.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// The command for diagnostics: its name and at most two arguments, each
/// cut short (arguments may be long; none is a secret, the password is in
/// the URL).
fn shown_command(argv: &[String]) -> String {
    let mut parts: Vec<String> = argv
        .iter()
        .take(3)
        .map(|a| {
            if a.chars().count() > 40 {
                format!("{}…", a.chars().take(40).collect::<String>())
            } else {
                a.clone()
            }
        })
        .collect();
    if argv.len() > 3 {
        parts.push("…".into());
    }
    parts.join(" ")
}

/// A compiled `redis` check.
struct RedisCheck {
    client: Client,
    /// `redis redis://***@host:port/0`: how every message starts.
    what: String,
    host: Option<String>,
    argv: Vec<String>,
    shown_command: String,
    info: bool,
    max_latency: Option<Duration>,
    assert: Assertions,
    redactor: Redactor,
}

impl Check for RedisCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut o = self.attempt(&cx).await;
            o.output = self.redactor.redact(&o.output);
            o.error = o.error.map(|e| self.redactor.redact(&e));
            o
        })
    }

    fn target_host(&self) -> Option<String> {
        self.host.clone()
    }
}

impl RedisCheck {
    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let deadline = cx.deadline();
        let timeout = vitalis_core::duration::format(cx.timeout());
        let start = Instant::now();
        // Our own deadline, not the client's timeouts: it says which step was slow.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let mut conn = match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => {
                return Outcome::fail(format!(
                    "{}: no connection within {timeout} (the check's timeout); is the host up, or a firewall dropping packets? is the server overloaded (INFO stats)?",
                    self.what
                ));
            }
            Ok(Err(e)) => return Outcome::fail(self.failure(true, &e)),
            Ok(Ok(c)) => c,
        };
        let connected = start.elapsed();
        let mut cmd = ::redis::cmd(&self.argv[0]);
        for a in &self.argv[1..] {
            cmd.arg(a);
        }
        let reply = match tokio::time::timeout_at(deadline, cmd.query_async::<Reply>(&mut conn))
            .await
        {
            Err(_) => {
                return Outcome::fail(format!(
                    "{}: no reply to {} within {timeout} (the check's timeout); is the server blocked by a slow command or a fork (SLOWLOG GET, INFO persistence), or overloaded?",
                    self.what, self.shown_command
                ));
            }
            Ok(Err(e)) => return Outcome::fail(self.failure(false, &e)),
            Ok(Ok(r)) => r,
        };
        drop(conn);
        let elapsed = start.elapsed();
        let ms = elapsed.as_secs_f64() * 1000.0;
        let doc = if self.info {
            info_json(&reply)
        } else {
            reply_json(&reply)
        };
        let detail = format!(
            "connect {}, command {}",
            crate::sql::ms(connected),
            crate::sql::ms(elapsed - connected)
        );
        let mut problems: Vec<(Status, String)> = Vec::new();
        if let Some(max) = self.max_latency
            && elapsed > max
        {
            problems.push((
                Status::Fail,
                format!(
                    "{} answered in {ms:.1}ms ({detail}), over max_latency {}; the server or the network is slow: look at SLOWLOG GET, LATENCY LATEST and INFO stats",
                    self.shown_command,
                    vitalis_core::duration::format(max)
                ),
            ));
        }
        let verdict = self.assert.evaluate_json(&doc);
        if verdict.status != Status::Pass {
            problems.push((verdict.status, verdict.message()));
        }
        let shown_reply = if self.info {
            format!("{} fields", doc.as_object().map_or(0, serde_json::Map::len))
        } else {
            show(&doc)
        };
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        let mut outcome = if status == Status::Pass {
            let mut text = format!(
                "{}: {} → {shown_reply} in {ms:.1}ms ({detail})",
                self.what, self.shown_command
            );
            let summary = verdict.summary();
            if !summary.is_empty() {
                text.push_str("; ");
                text.push_str(&summary);
            }
            Outcome::pass(text)
        } else {
            let text = problems
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; ");
            let message = format!("{}: {text}", self.what);
            let mut o = if status == Status::Warn {
                Outcome::warn(message)
            } else {
                Outcome::fail(message)
            };
            o.output = format!(
                "{}; {} → {shown_reply} in {ms:.1}ms",
                o.output, self.shown_command
            );
            o
        };
        outcome.perfdata.push(Perfdata {
            label: "latency".into(),
            value: ms,
            unit: "ms".into(),
            warn: None,
            crit: None,
            min: Some(0.0),
            max: self.max_latency.map(|m| m.as_secs_f64() * 1000.0),
        });
        outcome.observed(ms, "ms")
    }

    /// A failure, in words, with what to look at.
    fn failure(&self, connecting: bool, e: &RedisError) -> String {
        let during = if connecting {
            "cannot connect"
        } else {
            "the connection was lost during the command"
        };
        let host = self.host.as_deref().unwrap_or("the host");
        let code = e.code().unwrap_or("").to_ascii_uppercase();
        let detail = e.detail().unwrap_or("");
        let server = if e.kind() == ::redis::ErrorKind::AuthenticationFailed && code.is_empty() {
            "the server rejected the user or password".to_string()
        } else if code.is_empty() {
            e.to_string()
        } else {
            format!("{code} {detail}").trim().to_string()
        };
        let (what, hint): (String, String) = if matches!(code.as_str(), "WRONGPASS" | "NOAUTH")
            || e.kind() == ::redis::ErrorKind::AuthenticationFailed
        {
            (
                format!("authentication failed: {server}"),
                "check the user and password in url (the password is never shown)".into(),
            )
        } else if code == "NOPERM" {
            (
                format!("not allowed: {server}"),
                format!(
                    "the user may not run {}; check its ACL (ACL GETUSER)",
                    self.argv[0]
                ),
            )
        } else if code == "LOADING" {
            (
                format!("the server is loading its dataset: {server}"),
                "it is starting or restarting; wait, and look at its log if this lasts".into(),
            )
        } else if !code.is_empty() {
            (
                format!("{} answered an error: {server}", self.shown_command),
                "check command (its name and arguments, and the key's type)".into(),
            )
        } else if e.is_connection_refusal() {
            (
                format!("{during}: connection refused"),
                format!("nothing listens there; is Redis running on {host} and is the port right?"),
            )
        } else if let Some(kind) = io_kind(e) {
            match kind {
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::BrokenPipe
                | ErrorKind::NotConnected => (
                    format!("{during}: the connection closed ({e})"),
                    "did the server restart or crash, or close idle clients (timeout)? look at its log".into(),
                ),
                _ if e.to_string().contains("lookup") => (
                    format!("{during}: cannot resolve host '{host}' ({e})"),
                    "check DNS and the spelling of the host".into(),
                ),
                kind => (
                    format!("{during}: {e}"),
                    crate::tcp::connect_hint(kind).into(),
                ),
            }
        } else if e.is_connection_dropped() || e.is_io_error() {
            (
                format!("{during}: the connection closed ({e})"),
                "did the server restart or crash? look at its log".into(),
            )
        } else {
            (format!("{during}: {e}"), "look at the server's log".into())
        };
        format!("{}: {what}; {hint}", self.what)
    }
}

/// The I/O error kind under a Redis error, if it is one.
fn io_kind(e: &RedisError) -> Option<ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// A reply as JSON (see the module docs).
fn reply_json(reply: &Reply) -> Value {
    match reply {
        Reply::Nil => Value::Null,
        Reply::Int(i) => Value::from(*i),
        Reply::Double(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        Reply::Boolean(b) => Value::Bool(*b),
        Reply::Okay => Value::String("OK".into()),
        Reply::SimpleString(s) => Value::String(s.clone()),
        Reply::BulkString(bytes) => text_json(&String::from_utf8_lossy(bytes)),
        Reply::VerbatimString { text, .. } => text_json(text),
        Reply::BigNumber(n) => Value::String(format!("{n:?}")),
        Reply::Array(items) | Reply::Set(items) | Reply::Push { data: items, .. } => {
            Value::Array(items.iter().map(reply_json).collect())
        }
        Reply::Map(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (key_text(k), reply_json(v)))
                .collect(),
        ),
        Reply::Attribute { data, .. } => reply_json(data),
        Reply::ServerError(e) => Value::String(format!("{e}")),
        // `Value` is non-exhaustive: a future reply type, as text.
        other => Value::String(format!("{other:?}")),
    }
}

/// A string reply: parsed when it holds a JSON object or array.
fn text_json(text: &str) -> Value {
    let t = text.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(text)
    {
        return v;
    }
    Value::String(text.to_string())
}

fn key_text(k: &Reply) -> String {
    match reply_json(k) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// An `INFO` reply as an object of its fields.
fn info_json(reply: &Reply) -> Value {
    let text = match reply {
        Reply::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Reply::VerbatimString { text, .. } => text.clone(),
        Reply::SimpleString(s) => s.clone(),
        other => return reply_json(other),
    };
    let mut fields = Map::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let nested: Option<Map<String, Value>> = value
            .split(',')
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            })
            .collect();
        let value = match nested {
            Some(map) if value.contains('=') => Value::Object(map),
            _ => Value::String(value.to_string()),
        };
        fields.insert(key.to_string(), value);
    }
    Value::Object(fields)
}

/// A reply for the output: JSON text, cut short.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(REPLY_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}
