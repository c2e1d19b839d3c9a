//! The `slack` sink: a Slack-compatible incoming webhook (`{"text": …}` with
//! mrkdwn), retried like the webhook sink. The URL is a credential: logs
//! show only its host.

use serde_json::{Value, json};

use super::DeliveryOptions;
use crate::model::{Notification, Severity, State};

/// The message for one notification.
pub fn body(n: &Notification, opts: &DeliveryOptions) -> Value {
    let a = &n.alert;
    let icon = match (n.state, a.severity) {
        (State::Resolved | State::Settled, _) => ":white_check_mark:",
        (State::Flapping, _) => ":repeat:",
        (_, Severity::Critical) => ":rotating_light:",
        (_, Severity::Warning) => ":warning:",
        (_, Severity::Info) => ":information_source:",
    };
    let mut text = format!(
        "{icon} *{}* [{}] {}",
        match n.state {
            State::Firing => "FIRING",
            State::Update => "UPDATE",
            State::Resolved => "RESOLVED",
            State::Flapping => "FLAPPING",
            State::Settled => "SETTLED",
        },
        a.severity,
        a.summary
    );
    if n.state == State::Resolved {
        text.push_str(&format!(" — now {}", a.status));
    }
    for c in a.checks.iter().take(5) {
        text.push_str(&format!(
            "\n• `{}:{}` {}: {}",
            c.component,
            c.check,
            c.status,
            c.error.as_deref().unwrap_or("")
        ));
    }
    if let Some(owner) = &a.owner {
        text.push_str(&format!("\nowner: {owner}"));
    }
    if let Some(r) = &a.runbook_url {
        text.push_str(&format!("\n<{r}|runbook>"));
    }
    if let Some(link) = opts.link(n) {
        text.push_str(&format!("\n<{link}|details>"));
    }
    json!({ "text": text })
}
