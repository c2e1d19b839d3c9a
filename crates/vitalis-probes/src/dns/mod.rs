//! `dns`: asks a DNS server for one name and record type, and judges the
//! answer.
//!
//! ```toml
//! type = "dns"
//! query = "api.example.com"
//! record = "A"                 # A, AAAA, CNAME, TXT, MX, NS, SRV, PTR, CAA, SOA…; default A
//! server = "10.0.0.2:53"       # default: the nameservers of /etc/resolv.conf
//! expect = ["203.0.113.10"]    # each must be among the answers
//! assert = [{ path = "$.ttl", op = ">=", value = 60 }]
//! ```
//!
//! Every run sends a real query (no cache) over UDP, re-sent once a second
//! while unanswered, and over TCP when the answer is truncated. `query` is
//! always a fully qualified name (no search domains). With the system
//! resolver, the nameservers of `/etc/resolv.conf` are asked in turn until
//! one answers.
//!
//! * `SERVFAIL`, `REFUSED` and other error codes fail.
//! * `NXDOMAIN` and an empty answer fail, unless `assert` is given: then the
//!   assertions judge (`{ path = "$.rcode", op = "==", value = "NXDOMAIN" }`
//!   checks that a name is gone).
//! * `expect`: each listed answer must be present (others may be too).
//!   Names compare case-insensitively without the final dot; IP addresses
//!   by value; MX as `"10 mail.example.com"`; TXT by its text.
//! * `assert` sees `{"rcode": "NOERROR", "answers": ["…"], "count": n,
//!   "ttl": lowest, "records": [{"name", "type", "ttl", "value"}]}`.
//!
//! The observed value is the time to the answer, in ms.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::tcp::host_port;
use crate::{BuildCx, BuildError, ProbeConfig};

mod wire;

#[cfg(test)]
mod tests;

use wire::WireError;

/// Where the system resolver's nameservers are listed.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Asks a DNS server for `query` and judges the answer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// The name to resolve (fully qualified; a final dot is optional).
    pub query: String,
    /// The record type: `A` (default), `AAAA`, `CNAME`, `TXT`, `MX`, `NS`,
    /// `SRV`, `PTR`, `CAA`, `SOA`, …
    #[serde(default)]
    pub record: Option<String>,
    /// The server, `host:port` (a bare IP means port 53). Default: the
    /// nameservers of /etc/resolv.conf.
    #[serde(default)]
    pub server: Option<String>,
    /// Answers that must all be present (e.g. `["10.1.2.3"]`).
    #[serde(default)]
    pub expect: Vec<String>,
    /// Assertions on the answer document (see the module docs).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
}

impl ProbeConfig for DnsConfig {
    const NAME: &'static str = "dns";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let text = self.query.trim();
        let mut name = Name::from_utf8(text)
            .ok()
            .filter(|_| !text.is_empty())
            .ok_or_else(|| {
                BuildError::key(
                    "query",
                    format!(
                        "query '{}' is not a DNS name; write it like api.example.com",
                        self.query
                    ),
                )
            })?;
        name.set_fqdn(true);
        let record_text = self
            .record
            .as_deref()
            .unwrap_or("A")
            .trim()
            .to_ascii_uppercase();
        let record = RecordType::from_str(&record_text)
            .ok()
            .filter(|r| !matches!(r, RecordType::Unknown(_) | RecordType::AXFR | RecordType::IXFR | RecordType::OPT))
            .ok_or_else(|| {
                BuildError::key(
                    "record",
                    format!(
                        "record '{record_text}' is not a record type to query; use A, AAAA, CNAME, TXT, MX, NS, SRV, PTR, CAA or SOA"
                    ),
                )
            })?;
        let server = match &self.server {
            None => None,
            Some(s) => Some(parse_server(s).ok_or_else(|| {
                BuildError::key(
                    "server",
                    format!("server '{s}' is not host:port (e.g. 10.0.0.2:53 or [fd00::53]:53)"),
                )
            })?),
        };
        if self.expect.iter().any(|e| e.trim().is_empty()) {
            return Err(BuildError::key(
                "expect",
                "expect holds an empty answer; remove it",
            ));
        }
        let assert = Assertions::compile("assert", self.assert, Subject::Json)?;
        Ok(Arc::new(DnsCheck {
            shown_name: name.to_string().trim_end_matches('.').to_string(),
            name,
            record,
            server,
            expect: self.expect,
            assert,
        }))
    }
}

/// `(host, port)` of `host:port`, `[v6]:port`, or a bare IP (port 53).
fn parse_server(text: &str) -> Option<(String, u16)> {
    let text = text.trim();
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some((ip.to_string(), 53));
    }
    host_port(text).map(|(h, p)| (h.to_string(), p))
}

/// A built `dns` check.
#[derive(Debug)]
struct DnsCheck {
    name: Name,
    shown_name: String,
    record: RecordType,
    server: Option<(String, u16)>,
    expect: Vec<String>,
    assert: Assertions,
}

impl Check for DnsCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move { self.attempt(&cx).await })
    }

    fn target_host(&self) -> Option<String> {
        self.server.as_ref().map(|(h, _)| h.clone())
    }
}

impl DnsCheck {
    /// `dns A api.example.com @10.0.0.2:53`.
    fn what(&self, server: &str) -> String {
        format!("dns {} {} @{server}", self.record, self.shown_name)
    }

    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let deadline = cx.deadline();
        let (servers, shown) = match self.servers(deadline).await {
            Ok(s) => s,
            Err(message) => return Outcome::fail(message),
        };
        let query = wire::query(&self.name, self.record);
        let mut errors = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            // Share what is left among the servers still to ask.
            let left = deadline.saturating_duration_since(Instant::now());
            let budget = left / u32::try_from(servers.len() - i).unwrap_or(1);
            let start = Instant::now();
            match wire::exchange(*server, &query, start + budget).await {
                Ok(answer) => {
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    return self.judge(&answer, &server.to_string()).observed(ms, "ms");
                }
                Err(e) => errors.push((server, e)),
            }
        }
        let detail = errors
            .iter()
            .map(|(s, e)| format!("{s}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        let hint = if errors.iter().all(|(_, e)| matches!(e, WireError::Refused)) {
            "is the DNS server running, and is the port right?"
        } else if errors.iter().all(|(_, e)| matches!(e, WireError::Timeout)) {
            "is the server up and reachable from the Vitalis host (firewall, UDP and TCP port 53)?"
        } else {
            "check the DNS server and the network path to it"
        };
        Outcome::fail(format!(
            "{}: no answer within {} ({detail}); {hint}",
            self.what(&shown),
            vitalis_core::duration::format(cx.timeout())
        ))
    }

    /// The servers to ask, and how to name them in messages.
    async fn servers(&self, deadline: Instant) -> Result<(Vec<SocketAddr>, String), String> {
        match &self.server {
            Some((host, port)) => {
                let shown = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                if let Ok(ip) = host.parse::<IpAddr>() {
                    return Ok((vec![SocketAddr::new(ip, *port)], shown));
                }
                let found = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), *port)))
                    .await
                    .map_err(|_| format!("{}: resolving the server's own name '{host}' timed out; use its IP address in server", self.what(&shown)))?
                    .map_err(|e| format!("{}: cannot resolve the server's own name '{host}' ({e}); use its IP address in server", self.what(&shown)))?;
                Ok((found.collect(), shown))
            }
            None => {
                let text = tokio::fs::read_to_string(RESOLV_CONF).await.map_err(|e| {
                    format!(
                        "dns {} {}: cannot read {RESOLV_CONF} to find the system's nameservers ({e}); set server",
                        self.record, self.shown_name
                    )
                })?;
                let servers = nameservers(&text);
                if servers.is_empty() {
                    return Err(format!(
                        "dns {} {}: {RESOLV_CONF} lists no nameserver; set server, or fix the host's resolver configuration",
                        self.record, self.shown_name
                    ));
                }
                let shown = servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok((servers, format!("system resolver {shown}")))
            }
        }
    }

    fn judge(&self, answer: &Message, server: &str) -> Outcome {
        let what = self.what(server);
        let code = answer.response_code();
        let rcode = rcode_name(code);
        let records: Vec<(String, RecordType, u32, String)> = answer
            .answers()
            .iter()
            .map(|r| (shown(r.name()), r.record_type(), r.ttl(), value(r.data())))
            .collect();
        let wanted: Vec<&(String, RecordType, u32, String)> = records
            .iter()
            .filter(|(_, t, _, _)| self.record == RecordType::ANY || *t == self.record)
            .collect();
        let values: Vec<String> = wanted.iter().map(|(_, _, _, v)| v.clone()).collect();
        let alias = records
            .iter()
            .find(|(_, t, _, _)| *t == RecordType::CNAME && self.record != RecordType::CNAME)
            .map(|(_, _, _, v)| format!(" (an alias of {v})"))
            .unwrap_or_default();

        match code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::ServFail => {
                return Outcome::fail(format!(
                    "{what}: the server failed to answer (SERVFAIL); its upstream or the zone's authoritative servers may be unreachable, or DNSSEC validation failed; look at the DNS server's logs"
                ));
            }
            ResponseCode::Refused => {
                return Outcome::fail(format!(
                    "{what}: the server refused the query (REFUSED); it does not serve this zone, or does not allow recursion for the Vitalis host"
                ));
            }
            other => {
                return Outcome::fail(format!(
                    "{what}: the server answered {rcode} ({}); check the DNS server",
                    other.to_str()
                ));
            }
        }

        let doc = json!({
            "rcode": rcode,
            "answers": values,
            "count": values.len(),
            "ttl": wanted.iter().map(|(_, _, ttl, _)| *ttl).min(),
            "records": records.iter().map(|(n, t, ttl, v)| json!({
                "name": n, "type": t.to_string(), "ttl": ttl, "value": v,
            })).collect::<Vec<Value>>(),
        });

        let mut problems: Vec<(Status, String)> = Vec::new();
        let mut passed = Vec::new();
        if self.assert.is_empty() {
            if code == ResponseCode::NXDomain {
                return Outcome::fail(format!(
                    "{what}: the name does not exist (NXDOMAIN); check the spelling and the zone's records (was it deleted, or is the change not published yet?)"
                ));
            }
            if values.is_empty() {
                return Outcome::fail(format!(
                    "{what}: no {} record{alias} (the name exists, the answer is empty); check the zone's records",
                    self.record
                ));
            }
        } else {
            let verdict = self.assert.evaluate_json(&doc);
            if verdict.status != Status::Pass {
                problems.push((verdict.status, verdict.message()));
            }
            passed.push(verdict.summary());
        }
        let missing: Vec<&String> = self
            .expect
            .iter()
            .filter(|e| !values.iter().any(|v| same_answer(self.record, e, v)))
            .collect();
        if !missing.is_empty() {
            let missing = missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>();
            problems.push((
                Status::Fail,
                format!(
                    "expected {} among the answers, got {}; was the record changed, or does this server see another version of the zone?",
                    missing.join(", "),
                    list(&values)
                ),
            ));
        }
        let status = Status::worst_of(problems.iter().map(|(s, _)| *s)).unwrap_or(Status::Pass);
        match status {
            Status::Pass => {
                let mut text = format!("{what}: {rcode} {}{alias}", list(&values));
                for p in passed.iter().filter(|p| !p.is_empty()) {
                    text.push_str("; ");
                    text.push_str(p);
                }
                Outcome::pass(text)
            }
            s => {
                let text = format!(
                    "{what}: {}",
                    problems
                        .into_iter()
                        .map(|(_, m)| m)
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                if s == Status::Warn {
                    Outcome::warn(text)
                } else {
                    Outcome::fail(text)
                }
            }
        }
    }
}

/// The `nameserver` addresses of a resolv.conf text.
fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            let addr = rest.split_whitespace().next()?;
            // A zone index (fe80::1%eth0) cannot be used here: skip it.
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE {}", u16::from(other)),
    }
}

/// A name without its final dot.
fn shown(name: &Name) -> String {
    name.to_string().trim_end_matches('.').to_string()
}

/// A record's value as written in `expect`: names without the final dot.
fn value(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt.to_string(),
        other => other
            .to_string()
            .split(' ')
            .map(|token| token.strip_suffix('.').unwrap_or(token))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Whether an expected answer matches a received one.
fn same_answer(record: RecordType, expected: &str, got: &str) -> bool {
    let expected = expected.trim();
    if record == RecordType::TXT {
        return expected == got || expected.trim_matches('"') == got;
    }
    if let (Ok(a), Ok(b)) = (expected.parse::<IpAddr>(), got.parse::<IpAddr>()) {
        return a == b;
    }
    let norm = |s: &str| {
        s.split_whitespace()
            .map(|t| t.strip_suffix('.').unwrap_or(t).to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    norm(expected) == norm(got)
}

/// `[a, b]` for messages (`no answers` when empty).
fn list(values: &[String]) -> String {
    if values.is_empty() {
        return "no answers".into();
    }
    const SHOWN: usize = 8;
    let mut text = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        text.push_str(&format!(" and {} more", values.len() - SHOWN));
    }
    format!("[{text}]")
}
