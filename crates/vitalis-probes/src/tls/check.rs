//! Running a `tls` check: connect, handshake while recording the chain and
//! the verifier's verdict, then judge the certificate.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme,
};
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};

use super::roots;
use super::x509::{self, CertInfo};

/// A built `tls` check.
#[derive(Debug)]
pub(crate) struct TlsCheck {
    pub(crate) address: String,
    pub(crate) host: String,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) warn_days: u32,
    pub(crate) fail_days: u32,
    pub(crate) verifier: Arc<WebPkiServerVerifier>,
    pub(crate) private_ca: bool,
}

impl Check for TlsCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match tokio::time::timeout_at(cx.deadline(), self.attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::fail(format!(
                    "{}: no completed TLS handshake within {} (the check's timeout); is the server overloaded, or a firewall dropping packets?",
                    self.what(),
                    vitalis_core::duration::format(cx.timeout())
                )),
            }
        })
    }

    fn target_host(&self) -> Option<String> {
        Some(self.host.clone())
    }
}

/// What the verifier saw during one handshake.
#[derive(Debug)]
struct Seen {
    chain: Vec<CertificateDer<'static>>,
    verdict: Result<(), rustls::Error>,
}

/// Verifies like webpki, but records the chain and the verdict instead of
/// aborting, so that the check can describe an expired or untrusted
/// certificate. Handshake signatures are still verified for real.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(Seen { chain, verdict });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

const DAY: f64 = 86_400.0;

impl TlsCheck {
    /// `tls host:443 (server_name x)`, for diagnostics.
    fn what(&self) -> String {
        let name = server_name_text(&self.server_name);
        if name == self.host {
            format!("tls {}", self.address)
        } else {
            format!("tls {} (server_name {name})", self.address)
        }
    }

    async fn attempt(&self) -> Outcome {
        let tcp = match TcpStream::connect(&self.address).await {
            Ok(s) => s,
            Err(e) => {
                return Outcome::fail(format!(
                    "{}: connect failed: {e}; {}",
                    self.what(),
                    crate::tcp::connect_hint(e.kind())
                ));
            }
        };
        let recorder = Arc::new(Recorder {
            inner: self.verifier.clone(),
            seen: Mutex::new(None),
        });
        let config = match ClientConfig::builder_with_provider(roots::provider())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(recorder.clone())
                .with_no_client_auth(),
            Err(e) => return Outcome::fail(format!("{}: cannot set up TLS: {e}", self.what())),
        };
        let connector = TlsConnector::from(Arc::new(config));
        let handshake = connector.connect(self.server_name.clone(), tcp).await;
        let seen = recorder
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut stream = match handshake {
            Ok(s) => s,
            Err(e) => return Outcome::fail(self.handshake_failure(&e, seen.as_ref())),
        };
        let version = stream
            .get_ref()
            .1
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        // Be polite: close_notify. The outcome does not depend on it.
        let _ = stream.shutdown().await;
        let Some(seen) = seen else {
            return Outcome::fail(format!(
                "{}: the handshake completed without a certificate to verify; is this a TLS server?",
                self.what()
            ));
        };
        self.judge(&seen, &version)
    }

    fn judge(&self, seen: &Seen, version: &str) -> Outcome {
        let leaf = seen
            .chain
            .first()
            .and_then(|c| x509::parse(c))
            .unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let days = leaf
            .not_after
            .map(|t| ((t - now) as f64 / DAY * 10.0).floor() / 10.0);
        let cert = describe(&leaf);
        let observe = |o: Outcome| match days {
            Some(d) => o.observed(d, "days"),
            None => o,
        };
        if let Err(e) = &seen.verdict {
            return observe(Outcome::fail(format!(
                "{}: {}",
                self.what(),
                self.verdict_failure(e, &leaf, seen.chain.len(), now)
            )));
        }
        let Some(days) = days else {
            return Outcome::fail(format!(
                "{}: the certificate was accepted but its expiry date cannot be read ({cert})",
                self.what()
            ));
        };
        let until = leaf.not_after.map(date).unwrap_or_default();
        let left = format!("expires {until}, in {days:.1} days");
        let outcome = if days < f64::from(self.fail_days) {
            Outcome::fail(format!(
                "{}: certificate {cert} {left}: under fail_days {}; renew it now and reload the server (is automatic renewal broken?)",
                self.what(),
                self.fail_days
            ))
        } else if days < f64::from(self.warn_days) {
            Outcome::warn(format!(
                "{}: certificate {cert} {left}: under warn_days {}; renew it (is automatic renewal running?)",
                self.what(),
                self.warn_days
            ))
        } else {
            Outcome::pass(format!(
                "{}: {version}, certificate {cert} valid, {left}",
                self.what()
            ))
        };
        outcome.observed(days, "days")
    }

    /// What the verifier objected to, in words.
    fn verdict_failure(
        &self,
        e: &rustls::Error,
        leaf: &CertInfo,
        chain_len: usize,
        now: i64,
    ) -> String {
        let cert = describe(leaf);
        let name = server_name_text(&self.server_name);
        let rustls::Error::InvalidCertificate(ce) = e else {
            return format!(
                "certificate {cert} rejected: {e}; check the server's certificate setup"
            );
        };
        match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let not_after = match ce {
                    CertificateError::ExpiredContext { not_after, .. } => {
                        Some(not_after.as_secs() as i64)
                    }
                    _ => leaf.not_after,
                };
                match not_after {
                    Some(t) => format!(
                        "certificate {cert} expired on {} ({:.1} days ago); renew it and reload the server that serves {}",
                        date(t),
                        (now - t) as f64 / DAY,
                        self.address
                    ),
                    None => format!(
                        "certificate {cert} has expired; renew it and reload the server that serves {}",
                        self.address
                    ),
                }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                let not_before = match ce {
                    CertificateError::NotValidYetContext { not_before, .. } => {
                        Some(not_before.as_secs() as i64)
                    }
                    _ => leaf.not_before,
                };
                let from = not_before
                    .map(|t| format!(" until {} (in {:.1} days)", date(t), (t - now) as f64 / DAY))
                    .unwrap_or_default();
                format!(
                    "certificate {cert} is not valid yet{from}; is this host's clock wrong, or was the certificate deployed before its start date?"
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let presented = match ce {
                    _ if !leaf.names.is_empty() => leaf.names.clone(),
                    CertificateError::NotValidForNameContext { presented, .. } => presented.clone(),
                    _ => Vec::new(),
                };
                let names = if presented.is_empty() {
                    "no DNS name or IP address".to_string()
                } else {
                    presented.join(", ")
                };
                format!(
                    "certificate {cert} is for {names}, not for '{name}'; set server_name to a name the certificate holds, or reissue it to include '{name}' (is the right certificate served for this name, SNI?)"
                )
            }
            CertificateError::UnknownIssuer => {
                let issuer = if leaf.issuer.is_empty() {
                    "its issuer".to_string()
                } else {
                    leaf.issuer.clone()
                };
                let mut text = format!(
                    "certificate {cert} is not trusted: {issuer} does not lead to a CA this host trusts (the server sent {chain_len} certificate{}); ",
                    if chain_len == 1 { "" } else { "s" }
                );
                if self.private_ca {
                    text.push_str("it is not signed by the CA in `ca` either; check that `ca` holds the CA that issued it, and that the server sends its intermediate certificates");
                } else {
                    text.push_str("if it comes from a public CA, the server is probably not sending its intermediate certificates; for a private CA, set ca to that CA's PEM file");
                }
                if roots::system_has_no_roots() {
                    text.push_str(
                        " (this host has no system CA certificates: install ca-certificates)",
                    );
                }
                text
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!(
                    "certificate {cert} is not meant for TLS servers (its extended key usage lacks serverAuth); reissue it for server authentication"
                )
            }
            CertificateError::BadSignature => format!(
                "certificate {cert} has a bad signature: the trusted or sent certificate named {} has a different key than the one that signed it; was that CA regenerated (is `ca` an old copy?), or is the chain assembled from mismatched certificates?",
                if leaf.issuer.is_empty() {
                    "as its issuer"
                } else {
                    &leaf.issuer
                }
            ),
            CertificateError::Revoked => format!("certificate {cert} has been revoked; replace it"),
            other => format!(
                "certificate {cert} rejected: {}; check the server's certificate chain",
                rustls::Error::InvalidCertificate(other.clone())
            ),
        }
    }

    /// A handshake that did not complete, in words.
    fn handshake_failure(&self, e: &std::io::Error, seen: Option<&Seen>) -> String {
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        let hint = match inner {
            Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. })
            | Some(rustls::Error::InappropriateHandshakeMessage { .. }) => {
                "the server did not answer with TLS; is this a plain-text port (HTTP, or a protocol that needs STARTTLS)?"
            }
            Some(rustls::Error::AlertReceived(_)) => {
                "the server refused the handshake; does it serve this server_name (SNI), and does it want a client certificate or an old TLS version?"
            }
            Some(rustls::Error::PeerIncompatible(_)) => {
                "no TLS version or cipher in common (this host speaks TLS 1.2 and 1.3 with current ciphers); update the server's TLS settings"
            }
            Some(rustls::Error::InvalidCertificate(_)) => {
                "the certificate's key does not match the handshake signature; is the key the one for this certificate?"
            }
            _ if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                "the server closed the connection during the handshake; is this port serving TLS, and does it accept this server_name?"
            }
            _ => "check the server's TLS setup and logs",
        };
        let cert = seen
            .and_then(|s| s.chain.first())
            .and_then(|c| x509::parse(c))
            .map(|leaf| format!(" (it presented {})", describe(&leaf)))
            .unwrap_or_default();
        let text = inner.map_or_else(|| e.to_string(), ToString::to_string);
        format!(
            "{}: TLS handshake failed: {text}{cert}; {hint}",
            self.what()
        )
    }
}

/// `CN=x (issued by CN=y)`, or what is known.
fn describe(leaf: &CertInfo) -> String {
    let subject = if leaf.subject.is_empty() {
        match leaf.names.first() {
            Some(n) => n.clone(),
            None => "(no subject)".into(),
        }
    } else {
        leaf.subject.clone()
    };
    if leaf.issuer.is_empty() || leaf.issuer == leaf.subject {
        if leaf.issuer == leaf.subject && !leaf.issuer.is_empty() {
            return format!("'{subject}' (self-signed)");
        }
        return format!("'{subject}'");
    }
    format!("'{subject}' (issued by {})", leaf.issuer)
}

/// `2026-01-31 12:00:00 UTC`.
fn date(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{unix} (unix time)"),
    }
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}
