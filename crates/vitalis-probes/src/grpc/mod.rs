//! `grpc`: the standard `grpc.health.v1.Health/Check` call against a
//! service.
//!
//! ```toml
//! type = "grpc"
//! address = "risk-engine:50051"       # or http://…, or https://… for TLS
//! service = "risk.v1.RiskEngine"     # default "": the server as a whole
//! ca = "/etc/vitalis/private-ca.pem"  # https only: a private CA
//! server_name = "risk.internal"       # https only: the name to verify
//! ```
//!
//! `SERVING` passes; `NOT_SERVING` fails; an unknown service
//! (`NOT_FOUND`, or `SERVICE_UNKNOWN`) fails saying the name is unknown. A
//! server without the health service, and connection failures, fail with
//! what to look at. Every run opens a new connection (a kept one could
//! hide a broken connect path). The observed value is the time of the
//! whole exchange, in ms.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};

use crate::http::client::chain;
use crate::tcp::host_port;
use crate::{BuildCx, BuildError, ProbeConfig};

#[cfg(test)]
mod tests;

/// Calls `grpc.health.v1.Health/Check` for `service` at `address`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// `host:port` (plaintext), `http://host:port`, or `https://host:port` (TLS).
    pub address: String,
    /// The service name to ask about (e.g. `risk.v1.RiskEngine`). Default
    /// `""`: the server as a whole.
    #[serde(default)]
    pub service: String,
    /// https only: CA certificates (PEM) to trust besides the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// https only: the name to verify the certificate against (default: the host).
    #[serde(default)]
    pub server_name: Option<String>,
}

impl ProbeConfig for GrpcConfig {
    const NAME: &'static str = "grpc";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let text = self.address.trim();
        let (uri, tls) = match text.split_once("://") {
            Some(("http", _)) => (text.to_string(), false),
            Some(("https", _)) => (text.to_string(), true),
            Some((scheme, _)) => {
                return Err(BuildError::key(
                    "address",
                    format!(
                        "address scheme '{scheme}' is not http or https; write host:port, http://host:port or https://host:port"
                    ),
                ));
            }
            None => (format!("http://{text}"), false),
        };
        let authority = uri
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
            .unwrap_or_default();
        let host = host_port(authority)
            .map(|(h, _)| h.to_string())
            .ok_or_else(|| {
                BuildError::key(
                    "address",
                    format!(
                        "address '{}' is not host:port (e.g. 127.0.0.1:50051)",
                        self.address
                    ),
                )
            })?;
        let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| {
            BuildError::key(
                "address",
                format!("address '{}' is not a URI ({e})", self.address),
            )
        })?;
        if tls {
            let mut config = ClientTlsConfig::new().with_native_roots();
            if let Some(path) = &self.ca {
                let pem = std::fs::read(path).map_err(|e| {
                    BuildError::key("ca", format!("ca {}: cannot read it: {e}", path.display()))
                })?;
                crate::tls::roots::read_ca("ca", path)?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some(name) = &self.server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| BuildError::key("ca", format!("cannot set up TLS: {}", chain(&e))))?;
        } else if self.ca.is_some() || self.server_name.is_some() {
            return Err(BuildError::key(
                if self.ca.is_some() {
                    "ca"
                } else {
                    "server_name"
                },
                "ca and server_name apply to TLS: write the address as https://host:port",
            ));
        }
        Ok(Arc::new(GrpcCheck {
            endpoint,
            shown: uri,
            host,
            service: self.service,
            tls,
        }))
    }
}

/// A built `grpc` check.
#[derive(Debug)]
struct GrpcCheck {
    endpoint: Endpoint,
    shown: String,
    host: String,
    service: String,
    tls: bool,
}

impl Check for GrpcCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let start = Instant::now();
            let outcome = match tokio::time::timeout_at(cx.deadline(), self.attempt(cx.remaining()))
                .await
            {
                Ok(o) => o,
                Err(_) => Outcome::fail(format!(
                    "{}: no answer within {} (the check's timeout); is the server overloaded, or a firewall dropping packets?",
                    self.what(),
                    vitalis_core::duration::format(cx.timeout())
                )),
            };
            outcome.observed(start.elapsed().as_secs_f64() * 1000.0, "ms")
        })
    }

    fn target_host(&self) -> Option<String> {
        Some(self.host.clone())
    }
}

impl GrpcCheck {
    /// `grpc http://host:50051 service 'x'`.
    fn what(&self) -> String {
        if self.service.is_empty() {
            format!("grpc {} (server health, service \"\")", self.shown)
        } else {
            format!("grpc {} service '{}'", self.shown, self.service)
        }
    }

    async fn attempt(&self, budget: Duration) -> Outcome {
        let what = self.what();
        let channel = match self
            .endpoint
            .clone()
            .connect_timeout(budget)
            .timeout(budget)
            .connect()
            .await
        {
            Ok(c) => c,
            Err(e) => return Outcome::fail(format!("{what}: {}", self.connect_failure(&e))),
        };
        let request = HealthCheckRequest {
            service: self.service.clone(),
        };
        match HealthClient::new(channel).check(request).await {
            Ok(response) => {
                let raw = response.into_inner().status;
                match ServingStatus::try_from(raw) {
                    Ok(ServingStatus::Serving) => Outcome::pass(format!("{what}: SERVING")),
                    Ok(ServingStatus::NotServing) => Outcome::fail(format!(
                        "{what}: NOT_SERVING; the server says it cannot serve now: look at its logs and its own dependencies"
                    )),
                    Ok(ServingStatus::ServiceUnknown) => Outcome::fail(format!(
                        "{what}: SERVICE_UNKNOWN: the server's health service does not know the service name '{}'; check service (names are usually package.Service)",
                        self.service
                    )),
                    Ok(ServingStatus::Unknown) => Outcome::fail(format!(
                        "{what}: status UNKNOWN: the server has not reported a status for this service yet; is it still starting?"
                    )),
                    Err(_) => Outcome::fail(format!(
                        "{what}: an unknown serving status {raw}; is this a grpc.health.v1 server?"
                    )),
                }
            }
            Err(status) => {
                let message = status.message();
                let hint = match status.code() {
                    Code::NotFound => format!(
                        "the service name '{}' is unknown to the server's health service; check service (names are usually package.Service; \"\" asks about the whole server)",
                        self.service
                    ),
                    Code::Unimplemented => {
                        "the server does not implement grpc.health.v1.Health; register the health service in it".to_string()
                    }
                    Code::Unauthenticated | Code::PermissionDenied => {
                        "the server wants credentials for the health service".to_string()
                    }
                    Code::DeadlineExceeded => {
                        "the health call timed out; is the server overloaded?".to_string()
                    }
                    Code::Unavailable => {
                        "the server is unavailable; is it running, and does it speak gRPC (HTTP/2) on this port?".to_string()
                    }
                    _ => "look at the server's logs".to_string(),
                };
                let detail = if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                };
                Outcome::fail(format!(
                    "{what}: the health check call failed ({:?}{detail}); {hint}",
                    status.code()
                ))
            }
        }
    }

    /// A failed connect, in words.
    fn connect_failure(&self, e: &tonic::transport::Error) -> String {
        let mut io_kind = None;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            source = s.source();
        }
        let text = chain(e);
        let lower = text.to_ascii_lowercase();
        if self.tls
            && (lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake")
                || lower.contains("invalid peer")
                || lower.contains("corrupt message")
                || lower.contains("alert"))
        {
            let hint = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
                "the certificate is not signed by a CA this host trusts; set ca"
            } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
                "the certificate does not name this host; set server_name"
            } else if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
                "the server does not speak TLS here; use http:// for a plaintext server"
            } else {
                "check the server's certificate, ca and server_name"
            };
            return format!("TLS handshake failed ({text}); {hint}");
        }
        let hint = match io_kind {
            Some(kind) => crate::tcp::connect_hint(kind),
            None if lower.contains("timed out") || lower.contains("timeout") => {
                "no answer; is a firewall dropping packets or the host down?"
            }
            None => "check the address and that the server speaks gRPC there",
        };
        format!("cannot connect ({text}); {hint}")
    }
}
