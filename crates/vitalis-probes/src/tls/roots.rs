//! Trust anchors and client configs for probes that speak TLS through
//! rustls directly (`tls`, `websocket`): the system's CA certificates plus
//! an optional private CA, always on the aws-lc-rs provider.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::crypto::{CryptoProvider, aws_lc_rs};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::BuildError;

/// The aws-lc-rs provider (never the process default, which another crate
/// may have set differently).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(aws_lc_rs::default_provider()))
        .clone()
}

/// The system's CA certificates, loaded once.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "cannot load some system CA certificates");
        }
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(ignored, "some system CA certificates are unusable");
        }
        roots
    })
}

/// The CA certificates of a PEM file, for config key `key`.
pub(crate) fn read_ca(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let pem = std::fs::read(path).map_err(|e| {
        BuildError::key(
            key,
            format!("{key} {}: cannot read it: {e}", path.display()),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            BuildError::key(
                key,
                format!(
                    "{key} {}: is not a PEM certificate bundle ({e})",
                    path.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(BuildError::key(
            key,
            format!(
                "{key} {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The system's roots plus `extra` (a private CA).
pub(crate) fn root_store(
    key: &str,
    extra: &[CertificateDer<'static>],
) -> Result<Arc<RootCertStore>, BuildError> {
    let mut roots = system_roots().clone();
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| {
            BuildError::key(
                key,
                format!("{key}: a certificate cannot be a trust anchor ({e})"),
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// Whether the system has no CA certificates at all (a hint for errors).
pub(crate) fn system_has_no_roots() -> bool {
    system_roots().is_empty()
}

/// A client config that verifies servers against `roots`.
pub(crate) fn client_config(roots: Arc<RootCertStore>) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
