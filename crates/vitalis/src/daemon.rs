//! `vitalis serve`: config → engine → HTTP API, with reload, run-time
//! registration and graceful shutdown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use vitalis_config::{Config, LoadOptions};
use vitalis_core::{BoxFuture, Changes, CheckRuntime, Engine, EngineBuilder, Source};
use vitalis_probes::ProbeConfig as _;
use vitalis_probes::heartbeat::HeartbeatConfig;
use vitalis_server::{Api, ApiError, Auth, Control, Lifecycle};

/// Builds the engine for a config.
pub(crate) fn engine_for(cfg: &Config) -> anyhow::Result<Engine> {
    builder_for(cfg)
        .start()
        .context("the component registry is invalid")
}

/// The engine builder for a config (checks, groups, limits).
pub(crate) fn builder_for(cfg: &Config) -> EngineBuilder {
    let mut b = Engine::builder()
        .defaults(cfg.defaults.clone())
        .check_runtime(CheckRuntime::Dedicated(2));
    if let Some(n) = cfg.max_concurrency.global {
        b = b.max_concurrency(n);
    }
    if let Some(n) = cfg.max_concurrency.per_host {
        b = b.max_concurrency_per_host(n);
    }
    for g in &cfg.groups {
        b = b.group(g.clone());
    }
    for c in cfg.declarations() {
        b = b.component(c.clone());
    }
    b
}

/// The server's access policy from `[server]`.
pub(crate) fn auth_for(cfg: &Config) -> Auth {
    use vitalis_server::{Details, Scope, Token};
    let scope = |s: vitalis_config::Scope| match s {
        vitalis_config::Scope::Read => Scope::Read,
        vitalis_config::Scope::Heartbeat => Scope::Heartbeat,
        vitalis_config::Scope::Write => Scope::Write,
        vitalis_config::Scope::Admin => Scope::Admin,
    };
    Auth {
        details: match cfg.server.details {
            vitalis_config::Details::Never => Details::Never,
            vitalis_config::Details::WhenAuthorized => Details::WhenAuthorized,
            vitalis_config::Details::Always => Details::Always,
        },
        tokens: cfg
            .server
            .tokens
            .iter()
            .map(|t| Token {
                name: t.name.clone(),
                value: t.value.expose().to_string(),
                scopes: t.scopes.iter().copied().map(scope).collect(),
            })
            .collect(),
        metrics_auth: cfg.server.metrics_auth,
    }
}

/// Reload and registration for the API, over the config file.
struct Daemon {
    path: PathBuf,
    opts: LoadOptions,
    engine: Engine,
    auth: Arc<ArcSwap<Auth>>,
    config: Mutex<Arc<Config>>,
    /// Serialises reloads and registrations.
    writes: tokio::sync::Mutex<()>,
    /// Alert evaluation and delivery (`crate::alerts`).
    alerts: vitalis_alert::Alerting,
}

impl Daemon {
    fn current(&self) -> Arc<Config> {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn reload_now(&self) -> Result<Value, String> {
        let _w = self.writes.lock().await;
        let next = vitalis_config::load(&self.path, &self.opts).map_err(|e| e.to_string())?;
        let prev = self.current();
        let diff = next.diff(&prev);
        let upsert = next
            .components
            .iter()
            .filter(|c| {
                diff.added.contains(&c.component.id) || diff.changed.contains(&c.component.id)
            })
            .map(|c| c.component.clone())
            .collect();
        let changes = Changes {
            groups: Some(next.groups.clone()),
            upsert,
            remove: diff.removed.clone(),
        };
        self.engine
            .apply(changes)
            .await
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        if next.server.listen != prev.server.listen
            || next.server.grpc_listen != prev.server.grpc_listen
        {
            tracing::warn!(
                "listen addresses changed in {}; they take effect at the next restart",
                self.path.display()
            );
        }
        self.auth.store(Arc::new(auth_for(&next)));
        crate::history::reloaded(&prev, &next);
        crate::alerts::reload(&self.alerts, &next);
        log_inactive(&next);
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        tracing::info!(added = ?diff.added, changed = ?diff.changed, removed = ?diff.removed, unchanged = diff.unchanged.len(), "configuration reloaded");
        Ok(
            json!({"added": diff.added, "changed": diff.changed, "removed": diff.removed, "unchanged": diff.unchanged.len()}),
        )
    }
}

fn conflict(error: String, detail: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, error, Some(detail.to_string()))
}

impl Control for Daemon {
    fn reload(&self) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(self.reload_now())
    }

    fn register(&self, id: String, body: Value) -> BoxFuture<'_, Result<bool, ApiError>> {
        Box::pin(async move {
            let _w = self.writes.lock().await;
            let cfg = self.current();
            if cfg.component(&id).is_some() {
                return Err(conflict(
                    format!("component '{id}' is declared in the config file"),
                    "change it there and reload",
                ));
            }
            if crate::history::is_reserved(&id) {
                return Err(conflict(
                    format!("component '{id}' is Vitalis' own"),
                    "choose another id",
                ));
            }
            let opts = cfg.json_options(Source::Registered, &self.opts.heartbeats);
            let component =
                vitalis_config::component_from_json(&body, &id, &cfg.server.registration, &opts)
                    .map_err(|e| {
                        ApiError::bad_request("invalid component declaration", e.to_string())
                    })?;
            let created = self.engine.snapshot().topology.component(&id).is_none();
            self.engine.upsert(component).await.map_err(|e| {
                ApiError::bad_request("the component does not fit the registry", e.to_string())
            })?;
            Ok(created)
        })
    }

    fn heartbeat(&self, id: String, body: Vec<u8>) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let heartbeats = &self.opts.heartbeats;
            if !heartbeats.is_watched(&id) {
                return Err(ApiError::not_found("heartbeat check for component", &id));
            }
            let (status, output) = vitalis_probes::heartbeat::parse_body(&body)
                .map_err(|e| ApiError::bad_request("invalid heartbeat", e))?;
            heartbeats.record(&id, status, output);
            // Judge the beat now, not at the check's next run: a pushed
            // failure shows (and alerts) at once. Runs in the background.
            let snap = self.engine.snapshot();
            if let Some(ci) = snap.topology.component(&id) {
                let topo = &snap.topology;
                self.engine
                    .rerun(
                        |k| {
                            topo.checks[k].component == ci
                                && *topo.checks[k].kind == *HeartbeatConfig::NAME
                        },
                        Duration::ZERO,
                    )
                    .await;
            }
            Ok(())
        })
    }

    fn deregister(&self, id: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let _w = self.writes.lock().await;
            if self.current().component(&id).is_some() {
                return Err(conflict(
                    format!("component '{id}' is declared in the config file"),
                    "remove it there and reload",
                ));
            }
            let snap = self.engine.snapshot();
            let Some(ci) = snap.topology.component(&id) else {
                return Err(ApiError::not_found("component", &id));
            };
            if snap.topology.components[ci].info.source != Source::Registered {
                return Err(conflict(
                    format!("component '{id}' was not registered through the API"),
                    "it is managed by its source",
                ));
            }
            self.engine
                .remove(&id)
                .await
                .map_err(|e| ApiError::bad_request("cannot remove", e.to_string()))
        })
    }
}

fn log_inactive(cfg: &Config) {
    for s in cfg.inactive_sections() {
        tracing::warn!("section [{s}] is validated but not active yet in this version of Vitalis");
    }
    if cfg.server.tokens.is_empty() {
        tracing::info!(
            "no [[server.token]] configured: details are hidden (unless details = \"always\") and write endpoints are off; \
             add one with value = \"${{VITALIS_TOKEN}}\" and scopes = [\"read\", \"admin\"]"
        );
    }
}

pub(crate) async fn serve(path: PathBuf, drain: Duration) -> anyhow::Result<()> {
    run_server(path, LoadOptions::new(), drain, |_| ()).await
}

/// Loads the config at `path` with `opts`, starts the engine and serves the
/// API until SIGTERM/SIGINT. Prints `listening on http://ADDR` on stdout
/// first, then calls `on_listening` with the bound address (reload re-reads
/// `path` with the same `opts`).
pub(crate) async fn run_server(
    path: PathBuf,
    opts: LoadOptions,
    drain: Duration,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let cfg = vitalis_config::load(&path, &opts)?;
    log_inactive(&cfg);
    let history = crate::history::open(&cfg).await;
    let engine = crate::history::start_engine(builder_for(&cfg), history.as_ref())?;
    let alerts = crate::alerts::start(&engine, &cfg);
    let auth = Arc::new(ArcSwap::from_pointee(auth_for(&cfg)));
    let lifecycle = Arc::new(Lifecycle::default());
    let listen = cfg.server.listen;
    let daemon = Arc::new(Daemon {
        path: path.clone(),
        opts,
        engine: engine.clone(),
        auth: auth.clone(),
        config: Mutex::new(Arc::new(cfg)),
        writes: tokio::sync::Mutex::new(()),
        alerts: alerts.clone(),
    });
    let app = crate::history::serve(Api::new(engine.clone()), history.as_ref())
        .auth(auth)
        .control(daemon.clone())
        .lifecycle(lifecycle.clone())
        .router();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    lifecycle.set_ready();
    tracing::info!(config = %path.display(), "listening on http://{local}");
    // Machine-readable for tests and wrappers: the bound address on stdout.
    println!("listening on http://{local}");
    on_listening(local);

    let mut hup = signal(SignalKind::hangup())?;
    let reloader = daemon.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reloader.reload_now().await {
                Ok(_) => {
                    tracing::info!(target: "vitalis::audit", token = "-", action = "reload", target = "config", outcome = "ok", "SIGHUP")
                }
                Err(e) => tracing::error!(
                    "reload on SIGHUP rejected, keeping the running configuration: {e}"
                ),
            }
        }
    });
    let shutdown = async move {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: /readyz is 503, draining for {drain:?}");
        lifecycle.set_draining();
        tokio::time::sleep(drain).await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    alerts.shutdown();
    engine.shutdown();
    crate::history::close(history).await;
    tracing::info!("stopped");
    Ok(())
}
