//! A simulated trading platform of real network services on loopback, for
//! the Vitalis demo, end-to-end tests and benchmarks.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vitalis_sim::{Mode, SimOptions, Simulator};
//!
//! let dir = std::env::temp_dir().join("sim-example");
//! let sim = Simulator::start(SimOptions::new(&dir)).await?;
//! let vars = sim.pack_vars();            // ${VAR} values for packs/*.toml
//! println!("risk engine at {}", vars["RISK_URL"]);
//! sim.fault("risk-engine", Mode::LimitsOff).map_err(anyhow::Error::msg)?; // the canary now gets through
//! sim.clear("risk-engine");
//! # Ok(()) }
//! ```
//!
//! # Services
//!
//! Every service is a real server on a free `127.0.0.1` port:
//!
//! * **risk engine** (HTTP/JSON): dry-run pre-trade checks, a sandbox
//!   stop-loss test, a sandbox circuit-breaker trip test, the position feed,
//!   the kill switch;
//! * **model server**: the KServe v2 REST protocol (`/v2/health/live`,
//!   `/v2/health/ready`, `/v2/models/{m}/ready`, `POST /v2/models/{m}/infer`)
//!   and `/metrics` (drift detection, accuracy monitor);
//! * **feature pipeline**: reads the trading database; its `/metrics` holds
//!   its freshness;
//! * **exchange**: Binance-style REST (`/api/v3/ping`, signed
//!   `/api/v3/order/test`, `X-MBX-USED-WEIGHT-1M`), a primary and a failover
//!   WebSocket trade feed, and the trading app's `/metrics`;
//! * **trading database**: PostgreSQL (behind a proxy the simulator can cut)
//!   or an SQLite file, with fills written every 100 ms and a backup job;
//! * **fault API**: `GET /faults`, `POST /faults/{component}/{mode}`,
//!   `DELETE /faults/{component}`.
//!
//! See [`Mode`] and [`COMPONENTS`] for the faults.

mod db;
mod exchange;
mod faults;
mod model;
mod risk;
mod serve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

pub use exchange::{API_KEY, API_SECRET};
pub use faults::{COMPONENTS, MODES, Mode, catalogue, parse_fault};
pub use model::MODEL;

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Directory for the SQLite trading database and the backups.
    pub dir: PathBuf,
    /// A PostgreSQL URL for the trading database; SQLite in `dir` when unset.
    pub postgres: Option<String>,
    /// How often the backup job runs (default 2 s).
    pub backup_every: Duration,
}

impl SimOptions {
    /// SQLite in `dir`, backups every 2 s.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        SimOptions {
            dir: dir.as_ref().to_path_buf(),
            postgres: None,
            backup_every: Duration::from_secs(2),
        }
    }

    /// Use this PostgreSQL database for the trading database.
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        self.postgres = Some(url.into());
        self
    }
}

/// The addresses of the simulated services.
#[derive(Debug, Clone)]
pub struct Addrs {
    /// Risk engine.
    pub risk: SocketAddr,
    /// Model server (KServe v2 + `/metrics`).
    pub model: SocketAddr,
    /// Feature pipeline `/metrics`.
    pub pipeline: SocketAddr,
    /// Exchange REST.
    pub exchange: SocketAddr,
    /// Primary market-data WebSocket feed.
    pub feed: SocketAddr,
    /// Failover market-data WebSocket feed.
    pub failover: SocketAddr,
    /// Trading app `/metrics`.
    pub app: SocketAddr,
    /// The PostgreSQL proxy, when the trading database is PostgreSQL.
    pub db_proxy: Option<SocketAddr>,
    /// The fault API.
    pub faults: SocketAddr,
}

/// A running simulated platform; its services live as long as the tokio
/// runtime that started them.
#[derive(Clone)]
pub struct Simulator {
    addrs: Addrs,
    faults: faults::Faults,
    sqlite: Option<PathBuf>,
    postgres: Option<String>,
    backups: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts every service on free loopback ports.
    pub async fn start(opts: SimOptions) -> anyhow::Result<Simulator> {
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("cannot create {}", opts.dir.display()))?;
        let faults = faults::Faults::new();
        let features = Arc::new(model::Features::default());
        let exchange = exchange::start_rest(faults.clone()).await?;
        let feed = exchange::start_feed(faults.clone(), "market-data", false).await?;
        let failover = exchange::start_feed(faults.clone(), "market-data-failover", true).await?;
        let app = exchange::start_app(
            faults.clone(),
            format!("http://{exchange}"),
            format!("ws://{feed}/ws"),
            format!("ws://{failover}/ws"),
        )
        .await?;
        let risk = risk::start(faults.clone(), format!("http://{exchange}")).await?;
        let model = model::start(faults.clone(), features.clone()).await?;
        let (target, db_proxy, sqlite) = match &opts.postgres {
            Some(url) => {
                let upstream = pg_addr(url)?;
                let proxy = db::start_proxy(upstream, faults.clone()).await?;
                (
                    db::Target::Postgres {
                        url: url.clone(),
                        proxy,
                    },
                    Some(proxy),
                    None,
                )
            }
            None => {
                let path = opts.dir.join("trading.db");
                (db::Target::Sqlite(path.clone()), None, Some(path))
            }
        };
        let database = db::Db::open(target, faults.clone())
            .await
            .context("cannot open the trading database")?;
        let pipeline = db::start_pipeline_metrics(features.clone(), database.clone()).await?;
        let backups = opts.dir.join("backups");
        db::spawn_jobs(database, features, backups.clone(), opts.backup_every);
        let postgres = match (&opts.postgres, db_proxy) {
            (Some(url), Some(proxy)) => Some(via(url, proxy)?),
            _ => None,
        };
        let mut sim = Simulator {
            addrs: Addrs {
                risk,
                model,
                pipeline,
                exchange,
                feed,
                failover,
                app,
                db_proxy,
                faults: exchange, // replaced below
            },
            faults,
            sqlite,
            postgres,
            backups,
            dir: opts.dir.clone(),
        };
        sim.addrs.faults = fault_api(sim.clone()).await?;
        Ok(sim)
    }

    /// The services' addresses.
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The fault API's base URL (`http://127.0.0.1:PORT`).
    pub fn fault_url(&self) -> String {
        format!("http://{}", self.addrs.faults)
    }

    /// Whether the trading database is PostgreSQL (else SQLite).
    pub fn uses_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Breaks `component` in `mode` (replacing an earlier fault of it).
    pub fn fault(&self, component: &str, mode: Mode) -> Result<(), String> {
        faults::check(component, mode)?;
        if component == "trading-db" && mode == Mode::Slow && self.postgres.is_none() {
            return Err("trading-db: 'slow' needs the PostgreSQL trading database (an SQLite file cannot be slowed from outside)".into());
        }
        tracing::info!(component, %mode, "fault injected");
        self.faults.set(component, mode);
        Ok(())
    }

    /// Repairs `component`; returns whether it had a fault.
    pub fn clear(&self, component: &str) -> bool {
        let had = self.faults.clear(component);
        if had {
            tracing::info!(component, "fault cleared");
        }
        had
    }

    /// The current faults.
    pub fn faults(&self) -> BTreeMap<String, Mode> {
        self.faults.all()
    }

    /// The `${VAR}` values that point `packs/*.toml` at this simulator.
    pub fn pack_vars(&self) -> BTreeMap<String, String> {
        let a = &self.addrs;
        let mut v = BTreeMap::new();
        let mut set = |k: &str, val: String| {
            v.insert(k.to_string(), val);
        };
        set("RISK_URL", format!("http://{}", a.risk));
        set("MODEL_SERVER_URL", format!("http://{}", a.model));
        set("MODEL_NAME", MODEL.to_string());
        set(
            "FEATURE_METRICS_URL",
            format!("http://{}/metrics", a.pipeline),
        );
        set("EXCHANGE_URL", format!("http://{}", a.exchange));
        set("EXCHANGE_API_KEY", API_KEY.to_string());
        set("EXCHANGE_API_SECRET", API_SECRET.to_string());
        set("MARKET_DATA_URL", format!("ws://{}/ws", a.feed));
        set(
            "MARKET_DATA_FAILOVER_URL",
            format!("ws://{}/ws", a.failover),
        );
        set(
            "TRADING_APP_METRICS_URL",
            format!("http://{}/metrics", a.app),
        );
        set("BACKUP_DIR", self.backups.display().to_string());
        set("BACKUP_MAX_AGE", "10s".to_string());
        set("BACKUP_MAX_AGE_SECONDS", "10".to_string());
        set("TRADING_DB_DISK_PATH", self.dir.display().to_string());
        if let Some(p) = &self.sqlite {
            set("TRADING_DB_PATH", p.display().to_string());
        }
        if let (Some(url), Some(proxy)) = (&self.postgres, a.db_proxy) {
            set("TRADING_DB_URL", url.clone());
            set("TRADING_DB_ADDRESS", proxy.to_string());
        }
        v
    }
}

/// The host:port of a `postgres://` URL.
fn pg_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let u = reqwest::Url::parse(url).with_context(|| "the PostgreSQL URL is not a URL")?;
    let host = u.host_str().unwrap_or("127.0.0.1");
    let port = u.port().unwrap_or(5432);
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {host}"))
}

/// `url` with its host and port replaced by the proxy's.
fn via(url: &str, proxy: SocketAddr) -> anyhow::Result<String> {
    let mut u = reqwest::Url::parse(url)?;
    u.set_ip_host(proxy.ip())
        .map_err(|()| anyhow::anyhow!("cannot set the host of the PostgreSQL URL"))?;
    u.set_port(Some(proxy.port()))
        .map_err(|()| anyhow::anyhow!("cannot set the port of the PostgreSQL URL"))?;
    Ok(u.to_string())
}

async fn fault_api(sim: Simulator) -> anyhow::Result<SocketAddr> {
    async fn list(State(sim): State<Simulator>) -> Json<serde_json::Value> {
        let active: BTreeMap<String, String> = sim
            .faults()
            .into_iter()
            .map(|(c, m)| (c, m.to_string()))
            .collect();
        let components: BTreeMap<&str, Vec<&str>> = COMPONENTS
            .iter()
            .map(|(c, m)| (*c, m.iter().map(|m| m.name()).collect()))
            .collect();
        Json(json!({"faults": active, "components": components}))
    }
    async fn inject(
        State(sim): State<Simulator>,
        UrlPath((component, mode)): UrlPath<(String, String)>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        let r = mode.parse::<Mode>().and_then(|m| sim.fault(&component, m));
        match r {
            Ok(()) => (
                StatusCode::OK,
                Json(json!({"component": component, "mode": mode})),
            ),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": e, "detail": "GET /faults lists the components and their modes"}),
                ),
            ),
        }
    }
    async fn repair(
        State(sim): State<Simulator>,
        UrlPath(component): UrlPath<String>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        if sim.clear(&component) {
            (
                StatusCode::OK,
                Json(json!({"component": component, "cleared": true})),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                Json(
                    json!({"error": format!("component '{component}' has no fault"), "detail": "GET /faults lists the active faults"}),
                ),
            )
        }
    }
    let router = Router::new()
        .route("/faults", get(list))
        .route("/faults/{component}/{mode}", post(inject))
        .route("/faults/{component}", delete(repair))
        .with_state(sim);
    let listener = serve::bind().await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}
