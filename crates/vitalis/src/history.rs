//! `[history]` in the daemon: the store (`vitalis-store`), its observer,
//! event consumer and `vitalis.store` component, the HTTP endpoints, and
//! the session's stop at shutdown.
//!
//! A store that is unreachable or unusable at start never keeps Vitalis
//! from serving: the error is logged, `vitalis.store` fails, results and
//! transitions wait in memory, and the store catches up when it returns.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use vitalis_config::Config;
use vitalis_core::{Engine, EngineBuilder};
use vitalis_server::Api;
use vitalis_store::{History, STORE_COMPONENT};

/// How long start-up waits for the store before serving without it.
const READY_WITHIN: Duration = Duration::from_secs(3);

/// Starts the store of `[history]`; `None` without that section.
pub(crate) async fn open(cfg: &Config) -> Option<History> {
    let h = cfg.history.as_ref()?;
    let history = History::builder(&h.url)
        .raw_retention(h.raw_retention)
        .retention(h.retention)
        // A first attempt that fails does so within READY_WITHIN, so the
        // start-up log says why.
        .connect_timeout(Duration::from_secs(2))
        .start();
    match history.ready(READY_WITHIN).await {
        Ok(()) => tracing::info!(
            instance = history.instance(),
            "recording history in {} ({})",
            history.url(),
            history.backend().unwrap_or("?")
        ),
        Err(e) => tracing::error!(
            "{e}; Vitalis serves anyway: results and transitions wait in memory, \
             the component {STORE_COMPONENT} fails until the store is reachable, then history catches up"
        ),
    }
    Some(history)
}

/// Starts the engine from `builder`, recorded by `history` when set.
pub(crate) fn start_engine(
    mut builder: EngineBuilder,
    history: Option<&History>,
) -> anyhow::Result<Engine> {
    if let Some(h) = history {
        builder = builder.observer(h.observer()).component(h.component());
    }
    let engine = builder
        .start()
        .context("the component registry is invalid")?;
    if let Some(h) = history {
        h.attach(&engine);
    }
    Ok(engine)
}

/// Serves `/health/history`, `/health/uptime` and `/health/rollups` from
/// `history` (without it they answer 404 "history is not enabled").
pub(crate) fn serve(api: Api, history: Option<&History>) -> Api {
    match history {
        Some(h) => api.history(Arc::new(h.clone())),
        None => api,
    }
}

/// Records the session's stop and writes what is left (after the engine
/// stopped).
pub(crate) async fn close(history: Option<History>) {
    if let Some(h) = history {
        h.close().await;
        tracing::info!(
            results = h.stats().results_written(),
            transitions = h.stats().transitions_written(),
            "history store {} closed",
            h.url()
        );
    }
}

/// A reload cannot move the store: say so when `[history]` changed.
pub(crate) fn reloaded(prev: &Config, next: &Config) {
    if prev.history != next.history {
        tracing::warn!(
            "[history] changed; the running store keeps its settings until the next restart"
        );
    }
}

/// Ids the daemon keeps for itself (run-time registration refuses them).
pub(crate) fn is_reserved(id: &str) -> bool {
    id == STORE_COMPONENT
}
