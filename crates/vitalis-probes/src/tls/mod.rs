//! `tls`: connects to `address`, completes a TLS handshake, verifies the
//! certificate chain and name, and reports the days left until the
//! certificate expires.
//!
//! ```toml
//! type = "tls"
//! address = "api.example.com:443"
//! server_name = "api.example.com"   # default: the host of `address`
//! warn_days = 30                     # default 30
//! fail_days = 7                      # default 7
//! ca = "/etc/vitalis/private-ca.pem" # a private CA, trusted besides the system's
//! ```
//!
//! The observed value is the days until the leaf certificate's `notAfter`
//! (negative once expired), in `days`. The check fails on an expired or
//! not-yet-valid certificate, a name mismatch, an untrusted chain, or fewer
//! than `fail_days` left; it warns under `warn_days`. Diagnostics name the
//! certificate (subject, issuer, names, dates) and what to look at.
//!
//! Every run opens a new connection with a new TLS session (no resumption,
//! which would skip verifying the certificate).

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::ServerName;
use vitalis_core::Check;

use crate::tcp::host_port;
use crate::{BuildCx, BuildError, ProbeConfig};

mod check;
pub(crate) mod roots;
mod x509;

#[cfg(test)]
mod tests;

/// Default `warn_days`.
pub const DEFAULT_WARN_DAYS: u32 = 30;
/// Default `fail_days`.
pub const DEFAULT_FAIL_DAYS: u32 = 7;

/// Handshakes with `address` and judges its certificate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `host:port` to connect to (e.g. `api.example.com:443`).
    pub address: String,
    /// The name to verify the certificate against (and send as SNI).
    /// Default: the host of `address`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Warn when fewer days than this are left. Default 30.
    #[serde(default)]
    pub warn_days: Option<u32>,
    /// Fail when fewer days than this are left. Default 7.
    #[serde(default)]
    pub fail_days: Option<u32>,
    /// CA certificates (PEM) to trust besides the system's, for a private CA.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

impl ProbeConfig for TlsConfig {
    const NAME: &'static str = "tls";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let (host, _) = host_port(&self.address).ok_or_else(|| {
            BuildError::key(
                "address",
                format!(
                    "address '{}' is not host:port (e.g. api.example.com:443)",
                    self.address
                ),
            )
        })?;
        let host = host.to_string();
        let name_text = self.server_name.clone().unwrap_or_else(|| host.clone());
        let server_name = ServerName::try_from(name_text.clone()).map_err(|_| {
            BuildError::key(
                if self.server_name.is_some() {
                    "server_name"
                } else {
                    "address"
                },
                format!(
                    "'{name_text}' is neither a DNS name nor an IP address; set server_name to the name on the certificate"
                ),
            )
        })?;
        let warn_days = self.warn_days.unwrap_or(DEFAULT_WARN_DAYS);
        let fail_days = self.fail_days.unwrap_or(DEFAULT_FAIL_DAYS);
        if fail_days > warn_days {
            return Err(BuildError::key(
                "fail_days",
                format!(
                    "fail_days ({fail_days}) is more than warn_days ({warn_days}): the check would fail before it warns; make fail_days the smaller"
                ),
            ));
        }
        let extra = match &self.ca {
            Some(path) => roots::read_ca("ca", path)?,
            None => Vec::new(),
        };
        let roots = roots::root_store("ca", &extra)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, roots::provider())
            .build()
            .map_err(|e| {
                BuildError::key("ca", format!("cannot set up certificate verification: {e}"))
            })?;
        Ok(Arc::new(check::TlsCheck {
            address: self.address,
            host,
            server_name,
            warn_days,
            fail_days,
            verifier,
            private_ca: self.ca.is_some(),
        }))
    }
}
