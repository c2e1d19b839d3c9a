//! Bearer tokens with scopes, and who may see what (SPEC section 2, Auth).

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// See details: components, groups, check outputs, history.
    Read,
    /// Push heartbeats.
    Heartbeat,
    /// Register and remove components.
    Write,
    /// Reload, refresh, silences.
    Admin,
}

impl Scope {
    /// The name used in config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Heartbeat => "heartbeat",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a config word.
    pub fn parse(word: &str) -> Option<Scope> {
        Some(match word {
            "read" => Scope::Read,
            "heartbeat" => Scope::Heartbeat,
            "write" => Scope::Write,
            "admin" => Scope::Admin,
            _ => return None,
        })
    }
}

/// When status endpoints show details (`server.details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Details {
    /// Status endpoints never show details; everything else needs `read`.
    Never,
    /// Details with a `read` token (the default).
    #[default]
    WhenAuthorized,
    /// Details for everyone; components, groups and the rest are open.
    Always,
}

impl Details {
    /// Parses `never | when-authorized | always`.
    pub fn parse(word: &str) -> Option<Details> {
        Some(match word {
            "never" => Details::Never,
            "when-authorized" => Details::WhenAuthorized,
            "always" => Details::Always,
            _ => return None,
        })
    }
}

/// A named token. Its value is a secret: `Debug` never prints it.
#[derive(Clone)]
pub struct Token {
    /// Name, written to the audit log.
    pub name: String,
    /// The secret value.
    pub value: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("value", &"<secret>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The access policy of a server.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// When status endpoints show details.
    pub details: Details,
    /// The tokens.
    pub tokens: Vec<Token>,
    /// Whether `/metrics` needs a `read` token.
    pub metrics_auth: bool,
}

/// Who is asking: the token presented, if any (already verified).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The matching token's name and scopes.
    pub token: Option<(String, Vec<Scope>)>,
}

impl Caller {
    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.token.as_ref().is_some_and(|(_, s)| s.contains(&scope))
    }

    /// The token's name for the audit log (`-` when anonymous).
    pub fn name(&self) -> &str {
        self.token.as_ref().map_or("-", |(n, _)| n.as_str())
    }
}

impl Auth {
    /// Identifies the caller from `Authorization: Bearer …` (or, for
    /// WebSocket, `Sec-WebSocket-Protocol: bearer.<token>`). A presented
    /// token that matches none is a 401; no token is an anonymous caller.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let presented = match headers.get(AUTHORIZATION) {
            Some(v) => {
                let v = v.to_str().map_err(|_| {
                    ApiError::unauthorized("the Authorization header is not valid text")
                })?;
                let token = v
                    .strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .ok_or_else(|| ApiError::unauthorized("use `Authorization: Bearer <token>`"))?;
                Some(token.trim().to_string())
            }
            None => headers
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split(',')
                        .map(str::trim)
                        .find_map(|p| p.strip_prefix("bearer."))
                })
                .map(str::to_string),
        };
        let Some(presented) = presented else {
            return Ok(Caller::default());
        };
        // Compare against every token in constant time per comparison, and
        // without stopping at the first match.
        let mut found: Option<&Token> = None;
        for t in &self.tokens {
            if bool::from(t.value.as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
                found = Some(t);
            }
        }
        match found {
            Some(t) => Ok(Caller {
                token: Some((t.name.clone(), t.scopes.clone())),
            }),
            None => Err(ApiError::unauthorized("the token is not valid")),
        }
    }

    /// Whether status endpoints show details to `caller`.
    pub fn shows_details(&self, caller: &Caller) -> bool {
        match self.details {
            Details::Never => false,
            Details::WhenAuthorized => caller.has(Scope::Read),
            Details::Always => true,
        }
    }

    /// Gate for endpoints that reveal component names (components, groups,
    /// history, uptime, WebSocket details).
    pub fn require_read(&self, caller: &Caller) -> Result<(), ApiError> {
        if self.details == Details::Always {
            return Ok(());
        }
        self.require(caller, Scope::Read)
    }

    /// Gate for an action needing `scope`: 401 without a token, 403 with a
    /// token lacking the scope, 403 when no token is configured at all.
    pub fn require(&self, caller: &Caller, scope: Scope) -> Result<(), ApiError> {
        if self.tokens.is_empty() && scope != Scope::Read {
            return Err(ApiError::forbidden(
                "writes are disabled: no token is configured",
                "add a [[server.token]] with the needed scope (value = \"${VITALIS_TOKEN}\") and reload",
            ));
        }
        match &caller.token {
            None => Err(ApiError::unauthorized(&format!(
                "this needs a token with the '{}' scope",
                scope.as_str()
            ))),
            Some(_) if caller.has(scope) => Ok(()),
            Some((name, _)) => Err(ApiError::forbidden(
                &format!("token '{name}' lacks the '{}' scope", scope.as_str()),
                "use a token whose scopes include it",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(details: Details) -> Auth {
        Auth {
            details,
            tokens: vec![
                Token {
                    name: "ops".into(),
                    value: "s3cret".into(),
                    scopes: vec![Scope::Read, Scope::Admin],
                },
                Token {
                    name: "agent".into(),
                    value: "beat".into(),
                    scopes: vec![Scope::Heartbeat],
                },
            ],
            metrics_auth: false,
        }
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn identifies_tokens_and_enforces_scopes() {
        let a = auth(Details::WhenAuthorized);
        let ops = a.identify(&headers("Bearer s3cret")).unwrap();
        assert_eq!(ops.name(), "ops");
        assert!(a.shows_details(&ops));
        assert!(a.require(&ops, Scope::Admin).is_ok());
        let agent = a.identify(&headers("Bearer beat")).unwrap();
        assert!(!a.shows_details(&agent));
        assert_eq!(a.require_read(&agent).unwrap_err().status.as_u16(), 403);
        assert_eq!(
            a.identify(&headers("Bearer nope"))
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
        assert_eq!(
            a.identify(&headers("Basic x")).unwrap_err().status.as_u16(),
            401
        );
        let anon = a.identify(&HeaderMap::new()).unwrap();
        assert_eq!(a.require_read(&anon).unwrap_err().status.as_u16(), 401);
        assert!(auth(Details::Always).require_read(&anon).is_ok());
        assert!(!auth(Details::Never).shows_details(&ops));
        assert!(format!("{:?}", a).contains("<secret>") && !format!("{:?}", a).contains("s3cret"));
    }

    #[test]
    fn no_tokens_means_writes_off() {
        let a = Auth::default();
        let anon = a.identify(&HeaderMap::new()).unwrap();
        let e = a.require(&anon, Scope::Admin).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(e.detail.unwrap().contains("[[server.token]]"));
    }

    #[test]
    fn websocket_protocol_carries_the_token() {
        let a = auth(Details::WhenAuthorized);
        let mut h = HeaderMap::new();
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("vitalis.v1, bearer.s3cret"),
        );
        assert_eq!(a.identify(&h).unwrap().name(), "ops");
    }
}
