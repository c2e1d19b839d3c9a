//! `tcp`: connects to `address`; passes when the connection is accepted
//! (within `max_latency` when set). Observes the connect time in ms.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};

use crate::{BuildCx, BuildError, ProbeConfig};

/// Succeeds when `address` accepts a TCP connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// Fail when connecting takes longer than this (e.g. `50ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
}

impl ProbeConfig for TcpConfig {
    const NAME: &'static str = "tcp";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        host_port(&self.address).ok_or_else(|| {
            BuildError::key(
                "address",
                format!(
                    "address '{}' is not host:port (e.g. 127.0.0.1:5432)",
                    self.address
                ),
            )
        })?;
        Ok(Arc::new(self))
    }
}

/// Splits `host:port` (`[v6]:port` too); `None` when malformed.
pub(crate) fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(())?;
    Some((host, port.parse().ok()?))
}

/// A hint for a failed connect, by error kind.
pub(crate) fn connect_hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ConnectionRefused => {
            "nothing listens there; is the service running and is the port right?"
        }
        ErrorKind::TimedOut => "no answer; is a firewall dropping packets or the host down?",
        ErrorKind::NotFound | ErrorKind::InvalidInput => {
            "the host name does not resolve; check DNS and the spelling"
        }
        ErrorKind::PermissionDenied => "the connection was refused by local policy",
        _ => "check that the host is reachable from the Vitalis host",
    }
}

impl Check for TcpConfig {
    fn run(&self, _cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let start = Instant::now();
            match TcpStream::connect(&self.address).await {
                Ok(_stream) => {
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    match self.max_latency {
                        Some(max) if start.elapsed() > max => Outcome::fail(format!(
                            "tcp {}: connected in {ms:.1}ms, over max_latency {}; the host or network is slow",
                            self.address,
                            vitalis_core::duration::format(max)
                        )),
                        _ => Outcome::pass(format!("tcp {}: connected in {ms:.1}ms", self.address)),
                    }
                    .observed(ms, "ms")
                }
                Err(e) => Outcome::fail(format!(
                    "tcp {}: connect failed: {e}; {}",
                    self.address,
                    connect_hint(e.kind())
                )),
            }
        })
    }

    fn target_host(&self) -> Option<String> {
        host_port(&self.address).map(|(h, _)| h.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalis_core::Status;

    fn build(address: &str, max_latency: Option<&str>) -> Arc<dyn Check> {
        let mut t = toml::Table::new();
        t.insert("address".into(), address.into());
        if let Some(m) = max_latency {
            t.insert("max_latency".into(), m.into());
        }
        crate::kind("tcp")
            .unwrap()
            .build(t, &BuildCx::default())
            .unwrap()
    }

    #[tokio::test]
    async fn passes_against_a_listener_and_fails_against_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let o = build(&addr, Some("1s"))
            .run(CheckCx::new(Duration::from_secs(2)))
            .await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed_unit.as_deref(), Some("ms"));
        drop(listener);
        let o = build(&addr, None)
            .run(CheckCx::new(Duration::from_secs(2)))
            .await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains(&addr) && err.contains("nothing listens there"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_connect_slower_than_max_latency_fails_naming_the_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // No connect is faster than a nanosecond: the bound is always exceeded.
        let o = build(&addr, Some("1ns"))
            .run(CheckCx::new(Duration::from_secs(2)))
            .await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains("over max_latency 1ns") && err.contains("slow"),
            "{err}"
        );
        assert!(o.observed_value.unwrap() > 0.0);
    }

    #[test]
    fn refuses_bad_config_naming_the_key() {
        let mut t = toml::Table::new();
        t.insert("address".into(), "no-port".into());
        let e = crate::kind("tcp")
            .unwrap()
            .build(t.clone(), &BuildCx::default())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("address"));
        t.insert("adress".into(), "x:1".into());
        let e = crate::kind("tcp")
            .unwrap()
            .build(t, &BuildCx::default())
            .err()
            .unwrap();
        assert_eq!(e.key.as_deref(), Some("adress"), "{e}");
        assert_eq!(host_port("[::1]:80"), Some(("::1", 80)));
    }
}
