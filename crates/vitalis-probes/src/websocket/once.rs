//! One connection per run: connect, subscribe, count and judge messages.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use vitalis_core::{CheckCx, Outcome, Status};

use super::conn::{self, Endpoint};
use super::{Common, preview};
use crate::assertion::Verdict;

/// A built `websocket` check without `stream`.
#[derive(Debug)]
pub(crate) struct OnceCheck {
    pub(super) common: Common,
    pub(super) endpoint: Arc<Endpoint>,
    pub(super) expect_within: Option<Duration>,
    pub(super) min_messages: u32,
}

/// How the reading ended.
enum End {
    /// Enough messages (and one satisfied the assertions).
    Met,
    /// `expect_within` (or the check's deadline) passed.
    Time,
    /// The server closed the connection or it broke.
    Closed(String),
}

impl OnceCheck {
    pub(super) async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let what = self.common.what();
        let start = Instant::now();
        let mut socket = match tokio::time::timeout_at(cx.deadline(), self.endpoint.open()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Outcome::fail(format!("{what}: cannot connect: {e}")),
            Err(_) => {
                return Outcome::fail(format!(
                    "{what}: no WebSocket handshake within {} (the check's timeout); is the server overloaded, or a firewall dropping packets?",
                    vitalis_core::duration::format(cx.timeout())
                ));
            }
        };
        let within = self.expect_within.unwrap_or(cx.timeout());
        // Leave a moment before the deadline to report, rather than be cut off.
        let margin = (cx.timeout() / 10).min(Duration::from_millis(100));
        let until = (start + within).min(cx.deadline() - margin);

        let mut count: u32 = 0;
        let mut best: Option<Verdict> = None;
        let mut last_text = String::new();
        let end = loop {
            let satisfied = best.as_ref().is_none_or(|v| v.status == Status::Pass)
                && (best.is_some() || self.common.assert.is_empty());
            if count >= self.min_messages && satisfied {
                break End::Met;
            }
            let next = match tokio::time::timeout_at(until, socket.next()).await {
                Err(_) => break End::Time,
                Ok(None) => break End::Closed("the server closed the connection".into()),
                Ok(Some(Err(e))) => break End::Closed(conn::describe(&e)),
                Ok(Some(Ok(m))) => m,
            };
            let text = match next {
                Message::Text(t) => t.as_str().to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(frame) => {
                    break End::Closed(match frame {
                        Some(f) if !f.reason.is_empty() => format!(
                            "the server closed the connection (code {}, '{}')",
                            u16::from(f.code),
                            f.reason
                        ),
                        Some(f) => format!(
                            "the server closed the connection (code {})",
                            u16::from(f.code)
                        ),
                        None => "the server closed the connection".into(),
                    });
                }
                _ => continue,
            };
            count += 1;
            if !self.common.assert.is_empty()
                && best.as_ref().is_none_or(|v| v.status != Status::Pass)
            {
                let verdict = self.common.verdict(&text);
                if best.as_ref().is_none_or(|b| rank(&verdict) < rank(b)) {
                    best = Some(verdict);
                }
            }
            last_text = text;
        };
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        // Close politely, but never wait long for it.
        let _ = tokio::time::timeout(Duration::from_millis(200), socket.close(None)).await;

        let counted = format!(
            "{count} message{} in {elapsed_ms:.0}ms",
            if count == 1 { "" } else { "s" }
        );
        match end {
            End::Met => {
                let mut text = format!("{what}: {counted}");
                if let Some(v) = &best {
                    let summary = v.summary();
                    if !summary.is_empty() {
                        text.push_str("; ");
                        text.push_str(&summary);
                    }
                }
                Outcome::pass(text).observed(elapsed_ms, "ms")
            }
            End::Time | End::Closed(_) if count < self.min_messages => {
                let why = match &end {
                    End::Closed(reason) => format!("{reason} after {counted}"),
                    _ => format!(
                        "{counted} within {}",
                        vitalis_core::duration::format(within)
                    ),
                };
                Outcome::fail(format!(
                    "{what}: {why}, expected at least {}; is the feed publishing, and does the subscribe message (send) match what the server expects?",
                    self.min_messages
                ))
            }
            _ => {
                // Enough messages, but none satisfied the assertions.
                let verdict = best.unwrap_or_else(|| self.common.verdict(&last_text));
                let text = format!(
                    "{what}: no message satisfied the assertions ({counted}); closest: {}",
                    verdict.message()
                );
                let o = if verdict.status == Status::Warn {
                    Outcome::warn(text)
                } else {
                    Outcome::fail(format!("{text}; last message: {}", preview(&last_text)))
                };
                o.observed(elapsed_ms, "ms")
            }
        }
    }
}

/// Better verdicts rank lower: pass, then warn, then fail (fewer failures first).
fn rank(v: &Verdict) -> (u8, usize) {
    let s = match v.status {
        Status::Pass => 0,
        Status::Warn => 1,
        _ => 2,
    };
    (s, v.failures.len())
}
