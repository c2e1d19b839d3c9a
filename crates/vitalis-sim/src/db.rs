//! The trading database (PostgreSQL behind a TCP proxy the simulator can cut,
//! or an SQLite file), the fills writer, the feature pipeline that reads it,
//! and the backup job.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::Mutex;

use crate::faults::{Faults, Mode};
use crate::model::Features;
use crate::serve::{now_ms, now_secs};

const ID: &str = "trading-db";
const PIPELINE: &str = "feature-pipeline";
const BACKUPS: &str = "backups";

/// Where the trading database lives.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A PostgreSQL URL (reached through the simulator's proxy).
    Postgres { url: String, proxy: SocketAddr },
    /// An SQLite file.
    Sqlite(PathBuf),
}

#[derive(Clone)]
enum Pool {
    Pg(PgPool),
    Lite(SqlitePool),
}

/// The database handle the writer, pipeline and backup job share; `None`
/// while the database is down.
pub(crate) struct Db {
    target: Target,
    pool: Mutex<Option<Pool>>,
    faults: Faults,
    /// Pool gauges for the trading app's metrics: (size, idle).
    pub(crate) pool_size: std::sync::atomic::AtomicU64,
    pub(crate) pool_idle: std::sync::atomic::AtomicU64,
}

const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS fills (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT now(), symbol text NOT NULL, side text NOT NULL, qty double precision NOT NULL, price double precision NOT NULL);
CREATE INDEX IF NOT EXISTS fills_ts ON fills (ts);
CREATE TABLE IF NOT EXISTS backup_runs (id bigserial PRIMARY KEY, started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(), ok boolean NOT NULL, bytes bigint NOT NULL, file text NOT NULL, error text)";

const LITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS fills (id INTEGER PRIMARY KEY, ts REAL NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL);
CREATE INDEX IF NOT EXISTS fills_ts ON fills (ts);
CREATE TABLE IF NOT EXISTS backup_runs (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL NOT NULL, ok INTEGER NOT NULL, bytes INTEGER NOT NULL, file TEXT NOT NULL, error TEXT)";

impl Db {
    pub(crate) async fn open(target: Target, faults: Faults) -> anyhow::Result<Arc<Db>> {
        let db = Arc::new(Db {
            target,
            pool: Mutex::new(None),
            faults,
            pool_size: Default::default(),
            pool_idle: Default::default(),
        });
        let pool = db.connect().await?;
        match &pool {
            Pool::Pg(p) => {
                sqlx::raw_sql(PG_SCHEMA).execute(p).await?;
            }
            Pool::Lite(p) => {
                sqlx::raw_sql(LITE_SCHEMA).execute(p).await?;
            }
        }
        *db.pool.lock().await = Some(pool);
        Ok(db)
    }

    async fn connect(&self) -> anyhow::Result<Pool> {
        Ok(match &self.target {
            Target::Postgres { url, proxy } => {
                let opts: PgConnectOptions = url.parse()?;
                let opts = opts.host(&proxy.ip().to_string()).port(proxy.port());
                Pool::Pg(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(Duration::from_secs(1))
                        .connect_with(opts)
                        .await?,
                )
            }
            Target::Sqlite(path) => Pool::Lite(
                SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(1))
                    .connect_with(
                        SqliteConnectOptions::new()
                            .filename(path)
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .busy_timeout(Duration::from_secs(1)),
                    )
                    .await?,
            ),
        })
    }

    async fn pool(&self) -> Option<Pool> {
        self.pool.lock().await.clone()
    }

    /// Follows the `down` fault: an SQLite file is moved away (and back);
    /// PostgreSQL is cut at the proxy, and the pool reconnects after.
    async fn follow_down(&self) {
        let down = self.faults.is(ID, Mode::Down);
        let mut guard = self.pool.lock().await;
        match (&self.target, down, guard.is_some()) {
            (Target::Sqlite(path), true, true) => {
                if let Some(Pool::Lite(p)) = guard.take() {
                    p.close().await;
                }
                let _ = std::fs::rename(path, offline(path));
            }
            (Target::Sqlite(path), false, false) => {
                let _ = std::fs::rename(offline(path), path);
                drop(guard);
                match self.connect().await {
                    Ok(p) => *self.pool.lock().await = Some(p),
                    Err(e) => tracing::warn!("trading-db: cannot reopen: {e}"),
                }
            }
            (Target::Postgres { .. }, _, false) => {
                drop(guard);
                if let Ok(p) = self.connect().await {
                    *self.pool.lock().await = Some(p);
                }
            }
            _ => {}
        }
    }

    async fn insert_fill(&self, seq: u64) -> anyhow::Result<()> {
        let side = if seq.is_multiple_of(2) { "buy" } else { "sell" };
        let price = 64_000.0 + (seq % 50) as f64;
        let qty = 0.01 * (1 + seq % 5) as f64;
        match self.pool().await {
            Some(Pool::Pg(p)) => {
                sqlx::query(
                    "INSERT INTO fills (symbol, side, qty, price) VALUES ('BTCUSDT', $1, $2, $3)",
                )
                .bind(side)
                .bind(qty)
                .bind(price)
                .execute(&p)
                .await?;
                if seq.is_multiple_of(100) {
                    sqlx::query("DELETE FROM fills WHERE ts < now() - interval '10 minutes'")
                        .execute(&p)
                        .await?;
                }
                self.gauges(p.size(), p.num_idle());
            }
            Some(Pool::Lite(p)) => {
                sqlx::query("INSERT INTO fills (ts, symbol, side, qty, price) VALUES (?, 'BTCUSDT', ?, ?, ?)")
                    .bind(now_secs())
                    .bind(side)
                    .bind(qty)
                    .bind(price)
                    .execute(&p)
                    .await?;
                if seq.is_multiple_of(100) {
                    sqlx::query("DELETE FROM fills WHERE ts < ?")
                        .bind(now_secs() - 600.0)
                        .execute(&p)
                        .await?;
                }
                self.gauges(p.size(), p.num_idle());
            }
            None => anyhow::bail!("the database is down"),
        }
        Ok(())
    }

    fn gauges(&self, size: u32, idle: usize) {
        self.pool_size.store(u64::from(size), Ordering::Relaxed);
        self.pool_idle.store(idle as u64, Ordering::Relaxed);
    }

    /// The feature pipeline's read: fills of the last minute.
    async fn recent_fills(&self) -> anyhow::Result<i64> {
        Ok(match self.pool().await {
            Some(Pool::Pg(p)) => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM fills WHERE ts > now() - interval '60 seconds'",
                )
                .fetch_one(&p)
                .await?
            }
            Some(Pool::Lite(p)) => {
                sqlx::query_scalar("SELECT count(*) FROM fills WHERE ts > ?")
                    .bind(now_secs() - 60.0)
                    .fetch_one(&p)
                    .await?
            }
            None => anyhow::bail!("the database is down"),
        })
    }

    /// One backup run into `dir`; records the outcome in `backup_runs`.
    async fn backup(&self, dir: &Path, seq: u64) -> anyhow::Result<()> {
        let started = now_secs();
        let file = dir.join(format!("trading-{}-{seq:06}.sql", now_ms() / 1000));
        let failing = self.faults.is(BACKUPS, Mode::Erroring);
        let Some(pool) = self.pool().await else {
            anyhow::bail!("the database is down");
        };
        let rows: Vec<(f64, String, f64, f64)> = if failing {
            Vec::new()
        } else {
            match &pool {
                Pool::Pg(p) => sqlx::query_as("SELECT extract(epoch FROM ts)::float8, side, qty, price FROM fills ORDER BY id")
                    .fetch_all(p)
                    .await?,
                Pool::Lite(p) => sqlx::query_as("SELECT ts, side, qty, price FROM fills ORDER BY id")
                    .fetch_all(p)
                    .await?,
            }
        };
        let mut dump = String::from("-- vitalis-sim trading database backup\nBEGIN;\n");
        for (ts, side, qty, price) in &rows {
            dump.push_str(&format!(
                "INSERT INTO fills (ts, symbol, side, qty, price) VALUES ({ts}, 'BTCUSDT', '{side}', {qty}, {price});\n"
            ));
        }
        dump.push_str("COMMIT;\n");
        let (ok, error, bytes) = if failing {
            // The job dies half-way: an empty file and a failed run.
            tokio::fs::write(&file, b"").await?;
            (
                false,
                Some("pg_dump: error: connection to server lost (simulated fault)"),
                0,
            )
        } else {
            tokio::fs::write(&file, dump.as_bytes()).await?;
            (true, None, dump.len() as i64)
        };
        let name = file.display().to_string();
        match &pool {
            Pool::Pg(p) => {
                sqlx::query("INSERT INTO backup_runs (started_at, ok, bytes, file, error) VALUES (to_timestamp($1), $2, $3, $4, $5)")
                    .bind(started).bind(ok).bind(bytes).bind(&name).bind(error)
                    .execute(p).await?;
            }
            Pool::Lite(p) => {
                sqlx::query("INSERT INTO backup_runs (started_at, finished_at, ok, bytes, file, error) VALUES (?, ?, ?, ?, ?, ?)")
                    .bind(started).bind(now_secs()).bind(ok).bind(bytes).bind(&name).bind(error)
                    .execute(p).await?;
            }
        }
        // Keep the newest five backups.
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        let excess = files.len().saturating_sub(5);
        for f in files.into_iter().take(excess) {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }
}

fn offline(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".offline");
    PathBuf::from(s)
}

/// Starts the fills writer (every 100 ms), the feature pipeline (every
/// 250 ms) and the backup job (every `backup_every`).
pub(crate) fn spawn_jobs(
    db: Arc<Db>,
    features: Arc<Features>,
    backups: PathBuf,
    backup_every: Duration,
) {
    let d = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut seq = 0u64;
        loop {
            tick.tick().await;
            d.follow_down().await;
            if d.faults.is(ID, Mode::Stale) {
                continue;
            }
            seq += 1;
            if let Err(e) = d.insert_fill(seq).await {
                tracing::debug!("fills writer: {e}");
            }
        }
    });
    let d = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if d.faults.is(PIPELINE, Mode::Stale) {
                continue;
            }
            match d.recent_fills().await {
                Ok(n) => {
                    features.rows.store(n.max(0) as u64, Ordering::Relaxed);
                    features.last_update_ms.store(now_ms(), Ordering::Relaxed);
                }
                Err(e) => tracing::debug!("feature pipeline: {e}"),
            }
        }
    });
    tokio::spawn(async move {
        let _ = std::fs::create_dir_all(&backups);
        let mut tick = tokio::time::interval(backup_every);
        let mut seq = 0u64;
        loop {
            tick.tick().await;
            if db.faults.is(BACKUPS, Mode::Down) {
                continue;
            }
            seq += 1;
            if let Err(e) = db.backup(&backups, seq).await {
                tracing::debug!("backup job: {e}");
            }
        }
    });
}

/// The feature pipeline's own `/metrics`.
pub(crate) async fn start_pipeline_metrics(
    features: Arc<Features>,
    db: Arc<Db>,
) -> anyhow::Result<SocketAddr> {
    async fn metrics(State((f, db)): State<(Arc<Features>, Arc<Db>)>) -> impl IntoResponse {
        let text = format!(
            "# HELP feature_store_last_update_timestamp_seconds When the feature pipeline last wrote features.\n\
             # TYPE feature_store_last_update_timestamp_seconds gauge\n\
             feature_store_last_update_timestamp_seconds {:.3}\n\
             # HELP feature_store_rows Fills read by the last run.\n\
             # TYPE feature_store_rows gauge\n\
             feature_store_rows {}\n\
             # HELP db_pool_connections Open connections of the trading app's database pool.\n\
             # TYPE db_pool_connections gauge\n\
             db_pool_connections{{pool=\"trading\"}} {}\n\
             db_pool_idle_connections{{pool=\"trading\"}} {}\n",
            f.last_update_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            f.rows.load(Ordering::Relaxed),
            db.pool_size.load(Ordering::Relaxed),
            db.pool_idle.load(Ordering::Relaxed),
        );
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            text,
        )
    }
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state((features, db));
    let listener = crate::serve::bind().await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

/// A TCP proxy in front of PostgreSQL: `down` refuses and cuts connections,
/// `slow` delays each connection's first bytes.
pub(crate) async fn start_proxy(
    upstream: SocketAddr,
    faults: Faults,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => loop {
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                },
            };
            let mut conns = tokio::task::JoinSet::new();
            let f = faults.clone();
            let down = f.wait_for(ID, |m| m == Some(Mode::Down));
            tokio::pin!(down);
            loop {
                tokio::select! {
                    () = &mut down => break,
                    r = l.accept() => if let Ok((inbound, _)) = r {
                        let f = faults.clone();
                        conns.spawn(async move {
                            if let Ok(out) = tokio::net::TcpStream::connect(upstream).await {
                                let (ur, uw) = out.into_split();
                                let (ir, iw) = inbound.into_split();
                                // `slow` delays every request on the way in.
                                tokio::select! {
                                    () = pipe(ir, uw, Some(f)) => {}
                                    () = pipe(ur, iw, None) => {}
                                }
                            }
                        });
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            drop(l);
            conns.abort_all();
            faults.wait_for(ID, |m| m != Some(Mode::Down)).await;
        }
    });
    Ok(addr)
}

/// Copies `from` to `to`; with `slow`, each chunk waits while the database is `slow`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    slow: Option<Faults>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if slow.as_ref().is_some_and(|f| f.is(ID, Mode::Slow)) {
            tokio::time::sleep(crate::serve::SLOW).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
