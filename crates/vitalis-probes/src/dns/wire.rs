//! One DNS exchange with one server: a query over UDP (re-sent once a
//! second while unanswered), retried over TCP when the answer is truncated.
//! No cache: every run asks the server.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// The UDP payload size announced with EDNS (the DNS flag day value).
const UDP_PAYLOAD: u16 = 1232;

/// How often an unanswered UDP query is sent again.
const RESEND_EVERY: Duration = Duration::from_secs(1);

/// Why an exchange brought no answer.
#[derive(Debug)]
pub(crate) enum WireError {
    /// Nothing came back before the deadline.
    Timeout,
    /// The server's host refused (ICMP port unreachable, TCP RST).
    Refused,
    /// A socket error.
    Io(std::io::Error),
    /// The answer is not a DNS message for this query.
    Garbled(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Timeout => f.write_str("no answer"),
            WireError::Refused => f.write_str("connection refused (nothing listens on that port)"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Garbled(why) => write!(f, "a malformed answer ({why})"),
        }
    }
}

/// A query message for `name`/`record` with a fresh id.
pub(crate) fn query(name: &Name, record: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(fastrand::u16(..))
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), record));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    m.set_edns(edns);
    m
}

/// Asks `server`, giving up at `deadline`.
pub(crate) async fn exchange(
    server: SocketAddr,
    query: &Message,
    deadline: Instant,
) -> Result<Message, WireError> {
    let bytes = query
        .to_vec()
        .map_err(|e| WireError::Garbled(format!("cannot encode the query: {e}")))?;
    let answer = match tokio::time::timeout_at(deadline, udp(server, &bytes, query)).await {
        Ok(r) => r?,
        Err(_) => return Err(WireError::Timeout),
    };
    if !answer.truncated() {
        return Ok(answer);
    }
    match tokio::time::timeout_at(deadline, tcp(server, &bytes, query)).await {
        Ok(r) => r,
        Err(_) => Err(WireError::Timeout),
    }
}

async fn udp(server: SocketAddr, bytes: &[u8], query: &Message) -> Result<Message, WireError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(WireError::Io)?;
    socket.connect(server).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD) + 512];
    loop {
        socket.send(bytes).await.map_err(io)?;
        let resend_at = Instant::now() + RESEND_EVERY;
        loop {
            let n = match tokio::time::timeout_at(resend_at, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(r) => r.map_err(io)?,
            };
            // Not ours (a late answer to an earlier query): keep waiting.
            if let Some(answer) = matching(&buf[..n], query)? {
                return Ok(answer);
            }
        }
    }
}

async fn tcp(server: SocketAddr, bytes: &[u8], query: &Message) -> Result<Message, WireError> {
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| WireError::Garbled("the query is too long".into()))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(io)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.map_err(io)?;
        if let Some(answer) = matching(&buf, query)? {
            return Ok(answer);
        }
    }
}

/// The answer in `bytes` when it answers `query`; `None` for another id.
fn matching(bytes: &[u8], query: &Message) -> Result<Option<Message>, WireError> {
    let answer = match Message::from_vec(bytes) {
        Ok(m) => m,
        // A packet too broken to read its id: not necessarily ours.
        Err(_) if bytes.len() < 12 => return Ok(None),
        Err(e) => {
            let id = u16::from_be_bytes([bytes[0], bytes[1]]);
            if id != query.id() {
                return Ok(None);
            }
            return Err(WireError::Garbled(e.to_string()));
        }
    };
    if answer.id() != query.id() || answer.message_type() != MessageType::Response {
        return Ok(None);
    }
    if !answer.queries().is_empty() && answer.queries() != query.queries() {
        return Err(WireError::Garbled("it answers a different question".into()));
    }
    Ok(Some(answer))
}

fn io(e: std::io::Error) -> WireError {
    if e.kind() == ErrorKind::ConnectionRefused {
        WireError::Refused
    } else {
        WireError::Io(e)
    }
}
