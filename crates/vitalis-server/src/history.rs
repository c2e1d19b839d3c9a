//! `/health/history`, `/health/uptime` and `/health/rollups`: recorded
//! history, served from a [`HistoryReader`] (the daemon's store).
//!
//! Same access rule as `/health/components` (they reveal component names):
//! open with `details = "always"`, else a `read` token. Bad parameters are
//! a 400 naming the parameter; an id that is neither registered nor
//! recorded is a 404; without a store every endpoint answers 404 "history
//! is not enabled"; a store that is down answers 503.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jiff::Timestamp;
use serde_json::{Value, json};
use vitalis_core::spec::is_valid_id;
use vitalis_store::{
    Availability, DEFAULT_LIMIT, Granularity, HistoryQuery, HistoryReader, MAX_LIMIT, QueryError,
    RollupQuery, UptimeQuery,
};

use crate::api::ApiState;
use crate::error::ApiError;

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

/// The longest uptime window accepted.
const MAX_WINDOW: Duration = Duration::from_secs(3660 * 86_400);
/// The uptime window when none is given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(86_400);

pub(crate) fn routes(router: Router<Arc<ApiState>>) -> Router<Arc<ApiState>> {
    use axum::routing::get;
    router
        .route("/health/history", get(history))
        .route("/health/uptime", get(uptime))
        .route("/health/rollups", get(rollups))
}

/// 400 naming the parameter.
fn bad(param: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("bad parameter '{param}'"), detail)
}

fn unavailable(e: QueryError) -> ApiError {
    let error = match e {
        QueryError::Unavailable(_) => "history store unavailable",
        _ => "history query failed",
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        error,
        Some(format!(
            "{e}; the vitalis.store component shows the store's state"
        )),
    )
}

/// Checks access and that a store is configured.
fn reader(st: &ApiState, headers: &HeaderMap) -> Result<Arc<dyn HistoryReader>, ApiError> {
    let auth = st.auth.load();
    auth.require_read(&auth.identify(headers)?)?;
    st.history.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "history is not enabled",
            Some(
                "this Vitalis records no history: add a [history] section to its config (url = \"sqlite://vitalis.db\") and restart"
                    .into(),
            ),
        )
    })
}

/// The parameters the history endpoints share.
#[derive(Debug, Default)]
struct Common {
    component: Option<String>,
    check: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    limit: Option<usize>,
    window: Option<Duration>,
    granularity: Option<Granularity>,
}

fn id(param: &str, v: String) -> Result<Option<String>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    if !is_valid_id(&v) {
        return Err(bad(
            param,
            format!("'{v}' is not an id ([a-z0-9][a-z0-9_.-]*)"),
        ));
    }
    Ok(Some(v))
}

fn time(param: &str, v: &str) -> Result<Option<Timestamp>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<Timestamp>().map(Some).map_err(|_| {
        bad(
            param,
            format!("'{v}' is not an RFC 3339 time; write it like 2026-03-01T09:30:00Z"),
        )
    })
}

impl Common {
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut c = Common::default();
        for (k, v) in pairs {
            match k.as_str() {
                "component" => c.component = id("component", v)?,
                "check" => c.check = id("check", v)?,
                "since" => c.since = time("since", &v)?,
                "until" => c.until = time("until", &v)?,
                "limit" => {
                    let n: usize = v.parse().map_err(|_| {
                        bad(
                            "limit",
                            format!("'{v}' is not a whole number (1 to {MAX_LIMIT})"),
                        )
                    })?;
                    if !(1..=MAX_LIMIT).contains(&n) {
                        return Err(bad(
                            "limit",
                            format!("{n} is not between 1 and {MAX_LIMIT}"),
                        ));
                    }
                    c.limit = Some(n);
                }
                "window" => {
                    let d = vitalis_core::duration::parse(&v).map_err(|e| bad("window", e))?;
                    if d.is_zero() || d > MAX_WINDOW {
                        return Err(bad(
                            "window",
                            format!("'{v}' must be longer than 0 and at most 3660d"),
                        ));
                    }
                    c.window = Some(d);
                }
                "granularity" => {
                    c.granularity = Some(v.parse().map_err(|e: String| bad("granularity", e))?)
                }
                _ => {} // unknown parameters (cache busters) are ignored
            }
        }
        if c.check.is_some() && c.component.is_none() {
            return Err(bad(
                "check",
                "a check is named within a component: add component=ID",
            ));
        }
        if let (Some(s), Some(u)) = (c.since, c.until)
            && s > u
        {
            return Err(bad("since", format!("{s} is after until ({u})")));
        }
        Ok(c)
    }
}

/// A 404 for an id that is neither registered nor recorded.
fn unknown(st: &ApiState, component: &str, check: Option<&str>) -> Option<ApiError> {
    let snap = st.engine.snapshot();
    let Some(ci) = snap.topology.component(component) else {
        return Some(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no component '{component}'"),
            Some("it is not registered and has no recorded history".into()),
        ));
    };
    let check = check?;
    let known = snap.topology.components[ci]
        .checks
        .clone()
        .any(|k| &*snap.topology.checks[k].name == check);
    (!known).then(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no check '{check}' in component '{component}'"),
            Some("it is not registered and has no recorded history".into()),
        )
    })
}

async fn history(
    State(st): St,
    headers: HeaderMap,
    Query(pairs): Params,
) -> Result<Response, ApiError> {
    let reader = reader(&st, &headers)?;
    let c = Common::parse(pairs)?;
    let limit = c.limit.unwrap_or(DEFAULT_LIMIT);
    let q = HistoryQuery {
        component: c.component.clone(),
        check: c.check.clone(),
        since: c.since,
        until: c.until,
        limit,
    };
    let page = reader.history(q).await.map_err(unavailable)?;
    if let Some(component) = &c.component
        && page.results.is_empty()
        && page.transitions.is_empty()
        && let Some(e) = unknown(&st, component, c.check.as_deref())
    {
        return Err(e);
    }
    Ok(Json(json!({
        "component": c.component,
        "check": c.check,
        "since": c.since,
        "until": c.until,
        "limit": limit,
        "results": page.results,
        "transitions": page.transitions,
    }))
    .into_response())
}

async fn uptime(
    State(st): St,
    headers: HeaderMap,
    Query(pairs): Params,
) -> Result<Response, ApiError> {
    let reader = reader(&st, &headers)?;
    let c = Common::parse(pairs)?;
    let window = c.window.unwrap_or(DEFAULT_WINDOW);
    let until = c.until.unwrap_or_else(Timestamp::now);
    let since = jiff::SignedDuration::try_from(window)
        .ok()
        .and_then(|w| until.checked_sub(w).ok())
        .unwrap_or(Timestamp::MIN);
    let mut report = reader
        .uptime(UptimeQuery { since, until })
        .await
        .map_err(unavailable)?;
    // Registered components without recorded time are listed too.
    let snap = st.engine.snapshot();
    for node in &snap.topology.components {
        if !report
            .components
            .iter()
            .any(|a| a.id.as_deref() == Some(&*node.info.id))
        {
            report.components.push(Availability::no_data(
                Some(node.info.id.to_string()),
                report.window_ms,
            ));
        }
    }
    report.components.sort_by(|a, b| a.id.cmp(&b.id));
    let mut body = serde_json::to_value(&report).unwrap_or(Value::Null);
    body["window"] = vitalis_core::duration::format(window).into();
    Ok(Json(body).into_response())
}

async fn rollups(
    State(st): St,
    headers: HeaderMap,
    Query(pairs): Params,
) -> Result<Response, ApiError> {
    let reader = reader(&st, &headers)?;
    let c = Common::parse(pairs)?;
    let Some(component) = c.component.clone() else {
        return Err(bad(
            "component",
            "rollups are per component: add component=ID",
        ));
    };
    let granularity = c.granularity.unwrap_or(Granularity::Minute);
    let limit = c.limit.unwrap_or(DEFAULT_LIMIT);
    let rows = reader
        .rollups(RollupQuery {
            component: component.clone(),
            check: c.check.clone(),
            granularity,
            since: c.since,
            until: c.until,
            limit,
        })
        .await
        .map_err(unavailable)?;
    if rows.is_empty()
        && let Some(e) = unknown(&st, &component, c.check.as_deref())
    {
        return Err(e);
    }
    Ok(Json(json!({
        "component": component,
        "check": c.check,
        "granularity": granularity,
        "limit": limit,
        "rollups": rows,
    }))
    .into_response())
}
