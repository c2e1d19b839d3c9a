//! The HTTP handlers. Every read answers from the engine's snapshot; only
//! `?refresh=true` waits, and only up to its deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use vitalis_core::{BoxFuture, Engine, Status, View};

use crate::auth::{Auth, Caller, Scope};
use crate::error::{ApiError, PlainText};
use crate::render::{self, Selection};

/// What the daemon lets the API change: reload and run-time registration.
/// Implemented by the program that owns the config (the `vitalis` binary).
pub trait Control: Send + Sync + 'static {
    /// Re-reads the configuration. `Ok` carries a summary; `Err` the error
    /// (file, line, field) — the running config is kept then.
    fn reload(&self) -> BoxFuture<'_, Result<Value, String>>;
    /// Registers or replaces a component from its JSON declaration; `Ok(true)` when created.
    fn register(&self, id: String, body: Value) -> BoxFuture<'_, Result<bool, ApiError>>;
    /// Removes a run-time registered component.
    fn deregister(&self, id: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// Records a pushed heartbeat for a component (the raw request body:
    /// empty, or `{"status": "fail", "output": "…"}`).
    fn heartbeat(&self, id: String, body: Vec<u8>) -> BoxFuture<'_, Result<(), ApiError>>;
}

/// The server's own lifecycle, for `/livez` and `/readyz`.
#[derive(Debug, Default)]
pub struct Lifecycle {
    ready: AtomicBool,
    draining: AtomicBool,
}

impl Lifecycle {
    /// Marks the server ready (config loaded, listeners up).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Marks the server draining (after SIGTERM): `/readyz` answers 503.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }
}

/// Everything handlers share.
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    pub(crate) auth: Arc<ArcSwap<Auth>>,
    pub(crate) control: Option<Arc<dyn Control>>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) refresh_deadline: Duration,
    /// The history store, when one is configured.
    pub(crate) history: Option<Arc<dyn vitalis_store::HistoryReader>>,
}

type St = State<Arc<ApiState>>;

pub(crate) fn router(state: Arc<ApiState>) -> Router {
    crate::history::routes(Router::new())
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health_all))
        .route("/health/live", get(health_live))
        .route("/health/ready", get(health_ready))
        .route("/health/components", get(components))
        .route("/health/components/{id}", get(component))
        .route("/health/groups", get(groups))
        .route("/health/groups/{id}", get(group))
        .route("/v1/reload", post(reload))
        .route("/v1/components/{id}", put(register).delete(deregister))
        .route("/v1/components/{id}/heartbeat", post(heartbeat))
        .with_state(state)
}

fn audit(caller: &Caller, action: &str, target: &str, outcome: &str) {
    tracing::info!(target: "vitalis::audit", token = caller.name(), action, target, outcome, "audit");
}

// === self health ===

async fn livez(State(st): St) -> Response {
    let since = st.engine.since_last_tick();
    if since < Duration::from_secs(5) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Extension(PlainText),
            format!("scheduler has not ticked for {:.1}s\n", since.as_secs_f64()),
        )
            .into_response()
    }
}

async fn readyz(State(st): St) -> Response {
    if st.lifecycle.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Extension(PlainText),
            "not ready (starting or draining)\n",
        )
            .into_response()
    }
}

// === status endpoints ===

/// Query of status endpoints: `verbose`, repeatable `exclude`, `refresh`.
struct StatusQuery {
    verbose: bool,
    exclude: Vec<String>,
    refresh: bool,
}

impl StatusQuery {
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut q = StatusQuery {
            verbose: false,
            exclude: Vec::new(),
            refresh: false,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "verbose" => q.verbose = !matches!(v.as_str(), "false" | "0"),
                "exclude" => q.exclude.push(v),
                "refresh" => {
                    q.refresh = match v.as_str() {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(ApiError::bad_request(
                                "bad refresh value",
                                "use refresh=true or refresh=false",
                            ));
                        }
                    }
                }
                _ => {} // unknown parameters (cache busters) are ignored
            }
        }
        Ok(q)
    }
}

async fn health_all(
    st: St,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    status(st, headers, q, View::All).await
}

async fn health_live(
    st: St,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    status(st, headers, q, View::Live).await
}

async fn health_ready(
    st: St,
    headers: HeaderMap,
    q: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    status(st, headers, q, View::Ready).await
}

async fn status(
    State(st): St,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
    view: View,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    let caller = auth.identify(&headers)?;
    let q = StatusQuery::parse(pairs)?;
    let details = auth.shows_details(&caller);
    let (mut snap, _) = st.engine.read();
    let mut running = HashSet::new();
    let mut excluded = Vec::new();
    for id in &q.exclude {
        match snap.topology.component(id) {
            Some(ci) => excluded.push(ci),
            None if details => {
                return Err(ApiError::bad_request(
                    format!("cannot exclude '{id}'"),
                    "no such component",
                ));
            }
            None => {}
        }
    }
    if q.refresh {
        auth.require(&caller, Scope::Admin)?;
        let topo = snap.topology.clone();
        let ex = excluded.clone();
        let refreshed = st
            .engine
            .refresh(
                move |k| {
                    let info = &topo.checks[k];
                    view.counts(info.level) && !ex.contains(&info.component)
                },
                st.refresh_deadline,
            )
            .await;
        audit(
            &caller,
            "refresh",
            view_path(view),
            &format!(
                "{} re-run, {} still running",
                refreshed.expired,
                refreshed.running.len()
            ),
        );
        running.extend(refreshed.running);
        snap = refreshed.snapshot;
    }
    let reaggregated;
    let agg = if excluded.is_empty() {
        snap.view(view)
    } else {
        reaggregated = snap.aggregate_excluding(view, &excluded);
        &reaggregated
    };
    let sel = Selection {
        snap: &snap,
        view,
        agg,
        excluded: &excluded,
        running: &running,
    };
    let code = match agg.system {
        Status::Fail => StatusCode::SERVICE_UNAVAILABLE,
        _ if view == View::Ready && sel.any_unknown() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    if q.verbose {
        let text = render::verbose(&sel, details, code == StatusCode::OK);
        let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        return Ok((code, content_type, Extension(PlainText), text).into_response());
    }
    let body = render::health(&sel, details);
    let mut resp = (code, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn view_path(view: View) -> &'static str {
    match view {
        View::Live => "/health/live",
        View::Ready => "/health/ready",
        View::All => "/health",
    }
}

// === resources ===

async fn components(State(st): St, headers: HeaderMap) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    auth.require_read(&auth.identify(&headers)?)?;
    let (snap, _) = st.engine.read();
    let none = HashSet::new();
    let items: Vec<Value> = (0..snap.topology.components.len())
        .map(|ci| render::component(&snap, ci, &none))
        .collect();
    Ok(Json(json!({ "components": items })).into_response())
}

async fn component(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    auth.require_read(&auth.identify(&headers)?)?;
    let (snap, _) = st.engine.read();
    let ci = snap
        .topology
        .component(&id)
        .ok_or_else(|| ApiError::not_found("component", &id))?;
    Ok(Json(render::component(&snap, ci, &HashSet::new())).into_response())
}

async fn groups(State(st): St, headers: HeaderMap) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    auth.require_read(&auth.identify(&headers)?)?;
    let snap = st.engine.snapshot();
    let items: Vec<Value> = (0..snap.topology.groups.len())
        .map(|gi| render::group(&snap, gi))
        .collect();
    Ok(Json(json!({ "groups": items })).into_response())
}

async fn group(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    auth.require_read(&auth.identify(&headers)?)?;
    let snap = st.engine.snapshot();
    let gi = snap
        .topology
        .group(&id)
        .ok_or_else(|| ApiError::not_found("group", &id))?;
    Ok(Json(render::group(&snap, gi)).into_response())
}

// === writes ===

fn control(st: &ApiState) -> Result<&Arc<dyn Control>, ApiError> {
    st.control.as_ref().ok_or_else(|| {
        ApiError::forbidden(
            "not available",
            "this server was embedded without reload or registration",
        )
    })
}

async fn reload(State(st): St, headers: HeaderMap) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    let caller = auth.identify(&headers)?;
    auth.require(&caller, Scope::Admin)?;
    let control = control(&st)?;
    match control.reload().await {
        Ok(summary) => {
            audit(&caller, "reload", "config", "ok");
            Ok(Json(json!({"status": "reloaded", "changes": summary})).into_response())
        }
        Err(e) => {
            audit(&caller, "reload", "config", "rejected");
            Err(ApiError::bad_request(
                "the new configuration is invalid; the running one is kept",
                e,
            ))
        }
    }
}

async fn register(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    let caller = auth.identify(&headers)?;
    auth.require(&caller, Scope::Write)?;
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "the body is not a JSON component declaration",
            Some(e.body_text()),
        )
    })?;
    let control = control(&st)?;
    match control.register(id.clone(), body).await {
        Ok(created) => {
            audit(
                &caller,
                "register",
                &id,
                if created { "created" } else { "replaced" },
            );
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((
                code,
                Json(json!({"id": id, "status": if created { "created" } else { "replaced" }})),
            )
                .into_response())
        }
        Err(e) => {
            audit(&caller, "register", &id, "rejected");
            Err(e)
        }
    }
}

async fn deregister(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    let caller = auth.identify(&headers)?;
    auth.require(&caller, Scope::Write)?;
    let control = control(&st)?;
    let result = control.deregister(id.clone()).await;
    audit(
        &caller,
        "deregister",
        &id,
        if result.is_ok() {
            "removed"
        } else {
            "rejected"
        },
    );
    result?;
    Ok(Json(json!({"id": id, "status": "removed"})).into_response())
}

async fn heartbeat(
    State(st): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let auth = st.auth.load();
    let caller = auth.identify(&headers)?;
    auth.require(&caller, Scope::Heartbeat)?;
    let control = control(&st)?;
    control.heartbeat(id.clone(), body.to_vec()).await?;
    tracing::debug!(target: "vitalis::audit", token = caller.name(), action = "heartbeat", target = %id, "heartbeat");
    Ok(Json(json!({"id": id, "status": "recorded"})).into_response())
}
