//! One shared pair of HTTP clients per distinct TLS setting.
//!
//! Checks with the same `tls` files (or none) share a client, so kept-alive
//! connections are reused across runs and checks. Each pair also has a
//! `fresh` client that never keeps a connection: a run on it proves that a
//! new connection can be opened (see [`super::check`] for when it is used).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use reqwest::redirect::Policy;
use reqwest::{Certificate, Client, ClientBuilder, Identity};

/// The TLS material a client is built with: file contents, not paths, so a
/// rotated certificate gets a new client on reload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsMaterial {
    /// PEM CA certificates trusted in addition to the system's.
    pub(crate) ca: Option<Vec<u8>>,
    /// PEM client certificate chain followed by its private key.
    pub(crate) identity: Option<Vec<u8>>,
}

/// The clients of one TLS setting.
#[derive(Debug)]
pub(crate) struct Clients {
    /// Keeps connections alive between runs.
    pub(crate) pooled: Client,
    /// Opens a new connection for every request.
    pub(crate) fresh: Client,
}

/// The clients for `tls`, shared with every other check that has the same
/// material; built on first use.
pub(crate) fn shared(tls: &TlsMaterial) -> Result<Arc<Clients>, String> {
    static CACHE: OnceLock<Mutex<HashMap<TlsMaterial, Weak<Clients>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(clients) = cache.get(tls).and_then(Weak::upgrade) {
        return Ok(clients);
    }
    cache.retain(|_, w| w.strong_count() > 0);
    let clients = Arc::new(Clients {
        pooled: builder(tls)?.build().map_err(|e| client_error(&e))?,
        fresh: builder(tls)?
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| client_error(&e))?,
    });
    cache.insert(tls.clone(), Arc::downgrade(&clients));
    Ok(clients)
}

fn builder(tls: &TlsMaterial) -> Result<ClientBuilder, String> {
    let mut b = Client::builder()
        // A redirect is reported as the 3xx it is, so a moved endpoint is visible.
        .redirect(Policy::none())
        .user_agent(concat!("vitalis/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca {
        b = b.tls_certs_merge(parse_ca(ca)?);
    }
    if let Some(identity) = &tls.identity {
        b = b.identity(parse_identity(identity)?);
    }
    Ok(b)
}

/// The certificates of a PEM CA bundle; an error when there are none.
pub(crate) fn parse_ca(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    match Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string()),
        Err(e) => Err(format!("is not a PEM certificate bundle ({})", chain(&e))),
    }
}

/// A client identity from a PEM certificate chain followed by its key.
pub(crate) fn parse_identity(pem: &[u8]) -> Result<Identity, String> {
    Identity::from_pem(pem).map_err(|e| {
        format!(
            "is not a usable PEM certificate and private key ({})",
            chain(&e)
        )
    })
}

fn client_error(e: &reqwest::Error) -> String {
    format!("cannot set up the HTTP client: {}", chain(e))
}

/// An error and its sources, `: `-separated.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
