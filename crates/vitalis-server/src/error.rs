//! Errors as JSON: `{"error": "...", "detail": "..."}` with a proper 4xx
//! code. Responses that other layers produce as plain text (unknown routes,
//! wrong methods, oversized bodies, timeouts) are rewritten into that shape.

use axum::body::to_bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// What went wrong.
    pub error: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ApiError {
    /// An error with a status, message and optional detail.
    pub fn new(status: StatusCode, error: impl Into<String>, detail: Option<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            detail,
        }
    }

    /// 400.
    pub fn bad_request(error: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, Some(detail.into()))
    }

    /// 401: no or invalid token.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some(detail.to_string()),
        )
    }

    /// 403: a valid token without the needed scope, or a disabled action.
    pub fn forbidden(error: &str, detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, error, Some(detail.to_string()))
    }

    /// 404.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no {what} '{id}'"), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(&self)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Marks a deliberate plain-text answer with an error code (a `?verbose`
/// status, `/readyz` while draining) that [`json_errors`] must leave alone.
#[derive(Debug, Clone, Copy)]
pub struct PlainText;

/// Middleware: any 4xx/5xx response that is not JSON becomes a JSON error
/// carrying the original text as detail.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.extensions().get::<PlainText>().is_some()
    {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let detail = match status {
        StatusCode::NOT_FOUND if text.is_empty() => {
            Some("no such endpoint; see /openapi.json for the API".to_string())
        }
        StatusCode::METHOD_NOT_ALLOWED if text.is_empty() => {
            Some("this endpoint does not take that method".to_string())
        }
        _ if text.is_empty() => None,
        _ => Some(text),
    };
    let mut out = ApiError::new(status, error, detail).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *out.status_mut() = status;
    out
}
