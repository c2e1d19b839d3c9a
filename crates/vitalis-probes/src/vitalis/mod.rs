//! `vitalis`: federation. Reads another Vitalis instance's `/health`
//! (`application/health+json`) and imports it as one component: the
//! remote system's status becomes this check's status, and the output
//! lists its root causes and failing checks.
//!
//! ```toml
//! type = "vitalis"
//! url = "https://vitalis.eu-west.internal:8080/health"   # a base URL gets /health
//! token = "${EU_VITALIS_READ_TOKEN}"                      # a token with the read scope
//! ```
//!
//! * `pass`/`warn`/`fail` as the remote says; `"vitalis:status": "unknown"`
//!   (written as `warn` by the remote) becomes `unknown` here.
//! * Without a `read` token the remote shows no details: the status is
//!   still imported, and the output says how to see more.
//! * The observed value is the number of remote checks that are not
//!   passing (`count`), when details are shown.
//!
//! The token is a secret: it never appears in output.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::scrape::{self, Endpoint};
use crate::secret::Secret;
use crate::{BuildCx, BuildError, ProbeConfig};

#[cfg(test)]
mod tests;

/// The largest answer read.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// How many root causes and checks the output lists.
const SHOWN: usize = 5;

/// Imports another Vitalis instance's `/health` as one component.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalisConfig {
    /// The other instance's `/health` URL (or its base URL).
    pub url: String,
    /// A bearer token with the `read` scope there (for details).
    #[serde(default)]
    pub token: Option<Secret>,
}

impl std::fmt::Debug for VitalisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VitalisConfig")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ProbeConfig for VitalisConfig {
    const NAME: &'static str = "vitalis";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let mut endpoint = Endpoint::new(
            &self.url,
            &Default::default(),
            &Default::default(),
            self.token.as_ref(),
        )?;
        if matches!(endpoint.url.path(), "" | "/") {
            endpoint.url.set_path("/health");
            endpoint.shown = crate::secret::redact_url(&endpoint.url);
        }
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            return Err(BuildError::key(
                "token",
                "token is empty (is the environment variable set?); remove it or give a token with the read scope",
            ));
        }
        Ok(Arc::new(VitalisCheck {
            endpoint,
            has_token: self.token.is_some(),
        }))
    }
}

/// A built `vitalis` check.
#[derive(Debug)]
struct VitalisCheck {
    endpoint: Endpoint,
    has_token: bool,
}

impl Check for VitalisCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let o = self.attempt(&cx).await;
            self.endpoint.scrub(o)
        })
    }

    fn target_host(&self) -> Option<String> {
        self.endpoint.host()
    }
}

impl VitalisCheck {
    fn what(&self) -> String {
        format!("vitalis {}", self.endpoint.shown)
    }

    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let what = self.what();
        let fetched = match self
            .endpoint
            .get(
                None,
                "application/health+json, application/json",
                MAX_BODY,
                cx.deadline(),
                cx.timeout(),
            )
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return Outcome::fail(format!("{what}: the remote Vitalis cannot be read: {e}"));
            }
        };
        let code = fetched.status.as_u16();
        match code {
            401 => {
                return Outcome::fail(format!(
                    "{what}: the remote refused the token (401); {}",
                    if self.has_token {
                        "check token (is it one of the remote's [[server.token]] values?)"
                    } else {
                        "it wants a token: set token"
                    }
                ));
            }
            403 => {
                return Outcome::fail(format!(
                    "{what}: the token lacks the scope needed (403); give it the read scope on the remote"
                ));
            }
            // 503 is how /health says fail: the body tells.
            200 | 503 => {}
            _ => {
                return Outcome::fail(format!(
                    "{what}: answered {code}; {}; is url the /health endpoint of a Vitalis instance? {}",
                    scrape::status_hint(fetched.status),
                    scrape::preview(&fetched.body)
                ));
            }
        }
        let doc: Value = match serde_json::from_slice(&fetched.body) {
            Ok(d) if !fetched.truncated => d,
            _ => {
                return Outcome::fail(format!(
                    "{what}: answered {code} but not with a health document; is url the /health endpoint of a Vitalis instance? {}",
                    scrape::preview(&fetched.body)
                ));
            }
        };
        judge(&what, &doc, self.has_token)
    }
}

/// The remote status and what explains it.
fn judge(what: &str, doc: &Value, has_token: bool) -> Outcome {
    let Some(word) = doc.get("status").and_then(Value::as_str) else {
        return Outcome::fail(format!(
            "{what}: the answer has no `status`; is url the /health endpoint of a Vitalis instance?"
        ));
    };
    let status = match (word, doc.get("vitalis:status").and_then(Value::as_str)) {
        (_, Some("unknown")) => Status::Unknown,
        ("pass", _) => Status::Pass,
        ("warn", _) => Status::Warn,
        ("fail", _) => Status::Fail,
        (other, _) => {
            return Outcome::fail(format!(
                "{what}: unknown status '{other}' in the answer; is this a Vitalis (IETF health+json) endpoint?"
            ));
        }
    };
    let Some(checks) = doc.get("checks").and_then(Value::as_object) else {
        let how = if has_token {
            "the token lacks the read scope there, or the remote shows no details (server.details)"
        } else {
            "set token to a token with the read scope there to see its failing checks"
        };
        let text = format!(
            "{what}: remote status {}; no details ({how})",
            status.as_str()
        );
        return outcome(status, text);
    };

    // Checks that are not passing: `component:check: reason`.
    let mut failing: Vec<(Status, String)> = Vec::new();
    for (key, items) in checks {
        for item in items.as_array().into_iter().flatten() {
            let s = match (
                item.get("status").and_then(Value::as_str),
                item.get("vitalis:status").and_then(Value::as_str),
            ) {
                (_, Some("unknown")) => Status::Unknown,
                (Some("pass"), _) => continue,
                (Some("warn"), _) => Status::Warn,
                _ => Status::Fail,
            };
            let reason = item
                .get("output")
                .and_then(Value::as_str)
                .map(one_line)
                .unwrap_or_default();
            failing.push((s, format!("{key} {}: {reason}", s.as_str())));
        }
    }
    // Worst first.
    failing.sort_by_key(|(s, _)| std::cmp::Reverse(rank(*s)));
    let roots: Vec<String> = doc
        .get("root_causes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let component = r.get("component").and_then(Value::as_str).unwrap_or("?");
            let error = r
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(" ({})", one_line(e)))
                .unwrap_or_default();
            let impacts: Vec<&str> = r
                .get("impacts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let impacts = if impacts.is_empty() {
                String::new()
            } else {
                format!(", impacting {}", impacts.join(", "))
            };
            format!("{component}{error}{impacts}")
        })
        .collect();

    let total = checks.len();
    let mut text = format!("{what}: remote status {}", status.as_str());
    if failing.is_empty() {
        text.push_str(&format!(" ({total} checks passing)"));
    } else {
        if !roots.is_empty() {
            text.push_str(&format!("; root causes: {}", list(&roots)));
        }
        let lines: Vec<String> = failing.iter().map(|(_, l)| l.clone()).collect();
        text.push_str(&format!(
            "; {} of {total} checks not passing: {}",
            failing.len(),
            list(&lines)
        ));
    }
    outcome(status, text).observed(failing.len() as f64, "count")
}

fn outcome(status: Status, text: String) -> Outcome {
    match status {
        Status::Pass => Outcome::pass(text),
        Status::Warn => Outcome::warn(text),
        Status::Fail => Outcome::fail(text),
        Status::Unknown => Outcome::unknown(text),
    }
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Fail => 3,
        Status::Warn => 2,
        Status::Unknown => 1,
        Status::Pass => 0,
    }
}

/// `a; b; c and 2 more`.
fn list(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// The first line, at most 200 characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}
