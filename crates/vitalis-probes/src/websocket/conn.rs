//! Opening a WebSocket (ws:// or wss:// through rustls on aws-lc-rs), and
//! failures in words.

use std::sync::Arc;

use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// An open WebSocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest message accepted (a feed message is small; this bounds memory).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// How to reach the server.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) headers: HeaderMap,
    /// Set for `wss://`.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    pub(crate) send: Option<String>,
}

impl Endpoint {
    /// Connects and sends the subscribe message, if any.
    pub(crate) async fn open(&self) -> Result<Socket, String> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| describe(&e))?;
        for (name, value) in &self.headers {
            request.headers_mut().append(name, value.clone());
        }
        let connector = match &self.tls {
            Some(config) => Connector::Rustls(config.clone()),
            None => Connector::Plain,
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (mut socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            Some(connector),
        )
        .await
        .map_err(|e| describe(&e))?;
        if let Some(text) = &self.send {
            socket
                .send(Message::text(text.clone()))
                .await
                .map_err(|e| format!("sending the subscribe message failed: {}", describe(&e)))?;
        }
        Ok(socket)
    }
}

/// A WebSocket error, with what to look at.
pub(crate) fn describe(e: &tungstenite::Error) -> String {
    use tungstenite::Error;
    match e {
        Error::Io(io) => match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        {
            Some(tls) => tls_failure(&tls.to_string()),
            None => format!("{io}; {}", crate::tcp::connect_hint(io.kind())),
        },
        Error::Tls(tls) => tls_failure(&tls.to_string()),
        Error::Http(response) => {
            let status = response.status();
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    "check the credentials (headers, secret_headers)"
                }
                StatusCode::NOT_FOUND => "check the URL path",
                s if s.is_redirection() => "the endpoint moved; point url at the new location",
                s if s.is_success() => {
                    "a plain HTTP endpoint answered; is this the WebSocket path, or is a proxy dropping the Upgrade header?"
                }
                _ => "look at the server's logs",
            };
            format!("the server answered HTTP {status} instead of switching to WebSocket; {hint}")
        }
        Error::ConnectionClosed | Error::AlreadyClosed => "the connection was closed".into(),
        Error::Protocol(p) => {
            format!("WebSocket protocol error: {p}; is this a WebSocket endpoint?")
        }
        Error::Capacity(c) => format!("{c} (messages over {} MiB are refused)", MAX_MESSAGE >> 20),
        Error::Url(u) => format!("bad url: {u}"),
        other => other.to_string(),
    }
}

/// A failed TLS handshake, with what to look at.
fn tls_failure(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let hint = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        "the server's certificate is not signed by a CA this host trusts; set ca to the CA that signed it"
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        "the certificate does not name this host; use the host name it was issued for"
    } else if lower.contains("expired") {
        "the server's certificate has expired; renew it"
    } else {
        "check the server's TLS setup and ca"
    };
    format!("TLS handshake failed: {text}; {hint}")
}
