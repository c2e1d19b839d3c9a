//! `postgres`: connects (or takes a pooled connection), runs a query, and
//! judges the first value of its first row.
//!
//! ```toml
//! type = "postgres"
//! url = "postgres://vitalis:${PG_PASSWORD}@127.0.0.1:5432/trading"
//! query = "SELECT extract(epoch FROM now() - max(ts)) FROM fills"
//! pool = { max = 2 }
//! max_latency = "200ms"
//! assert = [{ op = "<", value = 60 }, { op = "<", value = 20, impact = "warn" }]
//! unit = "s"
//! ```
//!
//! The query goes through PostgreSQL's simple query protocol (no prepared
//! statement is left behind, and every type arrives as text): the first
//! value becomes a number (integer, float and numeric types), a boolean,
//! `null`, or text (everything else: timestamps, intervals, JSON, …). The
//! observed value is that number when it is one (in `unit`, when given),
//! else the run's latency in ms; the latency is always in the perfdata, as
//! are the pool's figures.
//!
//! Without `pool`, every run opens a connection and closes it: the connect
//! path is tested each time. With `pool`, connections are kept
//! between runs (see [`PoolConfig`] and docs/probes.md). The server is asked
//! to cancel the query at the check's timeout (`statement_timeout`), so an
//! abandoned query does not keep running.
//!
//! The password never appears in output or errors: the URL is shown as
//! `postgres://***@host:port/db`, and every report is scrubbed of it.

use std::io::ErrorKind;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgValueRef};
use sqlx::{ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use tokio::time::Instant;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::dburl::{parse_url, shown_url_text};
use crate::secret::Redactor;
use crate::sql::{self, QueryJudge, Ran};
use crate::{BuildCx, BuildError, ProbeConfig};

mod pool;

#[cfg(test)]
mod tests;

use pool::{AcquireError, Pool};

/// A pooled connection is not reused once it is this old (unless
/// `pool.max_lifetime` says otherwise), so the connect path is tested at
/// least this often.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60);

/// Connects to PostgreSQL, runs `query`, and judges its first value.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (query parameters such
    /// as `sslmode=require` as libpq knows them). The password is a secret.
    pub url: String,
    /// The query; its first row's first column is the value. Default `SELECT 1`.
    #[serde(default = "default_query")]
    pub query: String,
    /// Keep connections between runs: `pool = { max = 2 }`.
    #[serde(default)]
    pub pool: Option<PoolConfig>,
    /// Fail when connecting and querying take longer than this (e.g. `200ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Assertions on the first value (no `path`).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// The unit of the first value when it is a number (`s`, `count`,
    /// `bytes`, …), reported as `observed_unit`.
    #[serde(default)]
    pub unit: Option<String>,
}

/// `pool`: connections kept between runs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// At most this many connections, shared by the checks with the same
    /// `url`, `pool` and `timeout`. Default 2.
    #[serde(default = "default_pool_max")]
    pub max: u32,
    /// A connection is not reused once it is this old. Default `60s`.
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_lifetime: Option<Duration>,
}

fn default_query() -> String {
    "SELECT 1".into()
}

fn default_pool_max() -> u32 {
    2
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &shown_url_text(&self.url))
            .field("query", &self.query)
            .field("pool", &self.pool)
            .field("max_latency", &self.max_latency)
            .field("assert", &self.assert)
            .field("unit", &self.unit)
            .finish()
    }
}

impl ProbeConfig for PostgresConfig {
    const NAME: &'static str = "postgres";

    fn build(self, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        let (shown, host, redactor) = parse_url(&self.url, &["postgres", "postgresql"])?;
        let options = PgConnectOptions::from_str(&self.url).map_err(|e| {
            BuildError::key(
                "url",
                format!(
                    "url '{shown}' is not a PostgreSQL URL ({}); write it like postgres://user:password@127.0.0.1:5432/db",
                    redactor.redact(&e.to_string())
                ),
            )
        })?;
        let statement_timeout = cx.timeout.as_millis().max(1);
        let options = options
            .application_name("vitalis")
            .options([("statement_timeout", statement_timeout.to_string())])
            .disable_statement_logging();
        if self.query.trim().is_empty() {
            return Err(BuildError::key(
                "query",
                "query is empty; remove it (SELECT 1) or give a query",
            ));
        }
        let pool = match self.pool {
            None => None,
            Some(p) => {
                if !(1..=100).contains(&p.max) {
                    return Err(BuildError::key(
                        "pool",
                        format!("pool.max = {} must be between 1 and 100", p.max),
                    ));
                }
                let lifetime = p.max_lifetime.unwrap_or(DEFAULT_MAX_LIFETIME);
                let key = format!("{}|{}|{lifetime:?}|{:?}", self.url, p.max, cx.timeout);
                Some(Pool::shared(key, p.max, lifetime))
            }
        };
        let judge = QueryJudge {
            assert: Assertions::compile("assert", self.assert, Subject::Value)?,
            max_latency: self.max_latency,
            unit: self.unit,
        };
        Ok(Arc::new(PostgresCheck {
            options,
            what: format!("postgres {shown}"),
            host,
            query: self.query,
            judge,
            redactor,
            pool,
        }))
    }
}

/// A compiled `postgres` check.
struct PostgresCheck {
    options: PgConnectOptions,
    /// `postgres postgres://***@host:port/db`: how every message starts.
    what: String,
    host: Option<String>,
    query: String,
    judge: QueryJudge,
    redactor: Redactor,
    pool: Option<Arc<Pool>>,
}

/// A connection for one run.
enum Conn {
    Own(PgConnection),
    Leased(pool::Lease),
}

impl Conn {
    fn get(&mut self) -> &mut PgConnection {
        match self {
            Conn::Own(c) => c,
            Conn::Leased(l) => l.conn(),
        }
    }
}

/// Where a run failed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Connect,
    Query,
}

impl Check for PostgresCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut o = self.attempt(&cx).await;
            o.output = self.redactor.redact(&o.output);
            o.error = o.error.map(|e| self.redactor.redact(&e));
            o
        })
    }

    fn target_host(&self) -> Option<String> {
        self.host.clone()
    }
}

impl PostgresCheck {
    async fn attempt(&self, cx: &CheckCx) -> Outcome {
        let deadline = cx.deadline();
        let start = Instant::now();
        let connect = PgConnection::connect_with(&self.options);
        let (mut conn, fresh) = match &self.pool {
            None => match tokio::time::timeout_at(deadline, connect).await {
                Err(_) => return self.too_slow(Stage::Connect, cx),
                Ok(Err(e)) => return self.failure(Stage::Connect, &e, None),
                Ok(Ok(c)) => (Conn::Own(c), true),
            },
            Some(pool) => {
                match tokio::time::timeout_at(deadline, pool.acquire(deadline, connect)).await {
                    Err(_) => return self.too_slow(Stage::Connect, cx),
                    Ok(Err(AcquireError::Exhausted)) => {
                        return Outcome::fail(format!(
                            "{}: all {} pooled connections stayed in use for {} (the check's timeout); the checks sharing this pool are slow: raise pool.max or look at their queries",
                            self.what,
                            pool.max,
                            vitalis_core::duration::format(cx.timeout())
                        ));
                    }
                    Ok(Err(AcquireError::Connect(e))) => {
                        return self.failure(Stage::Connect, &e, None);
                    }
                    Ok(Ok((lease, fresh))) => (Conn::Leased(lease), fresh),
                }
            }
        };
        let connected = start.elapsed();
        let reused_age = match (&conn, fresh) {
            (Conn::Leased(l), false) => Some(l.opened.elapsed()),
            _ => None,
        };
        let query = sqlx::raw_sql(sqlx::AssertSqlSafe(self.query.clone()));
        let row = match tokio::time::timeout_at(deadline, query.fetch_optional(conn.get())).await {
            // Dropping the connection (a lease: unreturned) resets the pool.
            Err(_) => return self.too_slow(Stage::Query, cx),
            Ok(Err(e)) => return self.failure(Stage::Query, &e, reused_age),
            Ok(Ok(row)) => row,
        };
        let elapsed = start.elapsed();
        let first = row.as_ref().and_then(first_value);
        let mut detail = match reused_age {
            Some(age) => format!(
                "pooled connection opened {} ago, query {}",
                vitalis_core::duration::format(Duration::from_secs(age.as_secs())),
                sql::ms(elapsed - connected)
            ),
            None => format!(
                "connect {}, query {}",
                sql::ms(connected),
                sql::ms(elapsed - connected)
            ),
        };
        let mut perfdata = Vec::new();
        match conn {
            Conn::Own(c) => {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), c.close()).await;
                });
            }
            Conn::Leased(lease) => {
                lease.release();
                if let Some(pool) = &self.pool {
                    let (size, idle) = pool.stats();
                    detail.push_str(&format!(
                        "; pool {size} open, {idle} idle, max {}",
                        pool.max
                    ));
                    let max = Some(f64::from(pool.max));
                    perfdata.push(sql::count("pool_size", size as f64, max));
                    perfdata.push(sql::count("pool_idle", idle as f64, max));
                }
            }
        }
        self.judge.judge(
            &self.what,
            Ran {
                first,
                elapsed,
                detail,
                perfdata,
            },
        )
    }

    /// The run hit the check's timeout.
    fn too_slow(&self, stage: Stage, cx: &CheckCx) -> Outcome {
        let timeout = vitalis_core::duration::format(cx.timeout());
        Outcome::fail(match stage {
            Stage::Connect => format!(
                "{}: no connection within {timeout} (the check's timeout); is the host up, or a firewall dropping packets? is the server overloaded?",
                self.what
            ),
            Stage::Query => format!(
                "{}: the query did not finish within {timeout} (the check's timeout): {}; look at locks and load on the server (pg_stat_activity), or raise timeout",
                self.what,
                sql::show_query(&self.query)
            ),
        })
    }

    /// A failure, in words, with what to look at.
    fn failure(&self, stage: Stage, e: &sqlx::Error, reused_age: Option<Duration>) -> Outcome {
        let (what, hint) = describe(stage, e, self.host.as_deref().unwrap_or("the host"));
        let mut message = format!("{}: {what}", self.what);
        if stage == Stage::Query && matches!(e, sqlx::Error::Database(_)) {
            message.push_str(&format!(" (query: {})", sql::show_query(&self.query)));
        }
        message.push_str("; ");
        message.push_str(&hint);
        if let Some(age) = reused_age {
            message.push_str(&format!(
                " (on a pooled connection opened {} ago; the next run connects fresh)",
                vitalis_core::duration::format(Duration::from_secs(age.as_secs()))
            ));
        }
        Outcome::fail(message)
    }
}

/// What went wrong and what to look at.
fn describe(stage: Stage, e: &sqlx::Error, host: &str) -> (String, String) {
    let during = match stage {
        Stage::Connect => "cannot connect",
        Stage::Query => "the connection was lost during the query",
    };
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message();
            let hint = match code.as_str() {
                "28P01" | "28000" => {
                    "check the user and password in url (the password is never shown) and pg_hba.conf"
                }
                "3D000" => "check the database name in url",
                "57P01" | "57P02" => {
                    "the server is shutting down or restarting, or an administrator ended the session; look at its log"
                }
                "57P03" => "the server is starting up or in recovery; look at its log",
                "53300" => {
                    "the server has no connection slots left (max_connections); look at who holds connections (pg_stat_activity)"
                }
                "57014" => {
                    "the query was cancelled (statement_timeout is the check's timeout); look at locks and load, or raise timeout"
                }
                "25006" => "the server is read-only (a standby?); point url at the primary",
                c if c.starts_with("42") => {
                    "fix the query (a typo, a missing table or column, or missing privileges)"
                }
                _ => "look at the server's log",
            };
            let prefix = match (stage, code.as_str()) {
                (Stage::Connect, "28P01" | "28000") => "authentication failed",
                (Stage::Connect, _) => "the server refused the connection",
                (Stage::Query, "57P01" | "57P02") => "the server ended the session",
                (Stage::Query, _) => "the query failed",
            };
            (format!("{prefix}: {msg} ({code})"), hint.to_string())
        }
        sqlx::Error::Io(io) => {
            let text = io.to_string();
            match io.kind() {
                ErrorKind::ConnectionRefused => (
                    format!("{during}: connection refused"),
                    format!(
                        "nothing listens there; is PostgreSQL running on {host} and is the port right?"
                    ),
                ),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::BrokenPipe => (
                    format!("{during}: the connection closed ({text})"),
                    "did the server restart or crash? look at its log".into(),
                ),
                _ if text.contains("lookup") || text.contains("resolve") => (
                    format!("{during}: cannot resolve host '{host}' ({text})"),
                    "check DNS and the spelling of the host".into(),
                ),
                kind => (
                    format!("{during}: {text}"),
                    crate::tcp::connect_hint(kind).into(),
                ),
            }
        }
        sqlx::Error::Tls(t) => (
            format!("{during}: TLS failed: {t}"),
            "check sslmode in url and the server's certificate".into(),
        ),
        sqlx::Error::Protocol(p) => (
            format!("{during}: {p}"),
            "did the server restart or crash, or is this not PostgreSQL? look at its log".into(),
        ),
        other => (
            format!("{during}: {other}"),
            "look at the server's log".into(),
        ),
    }
}

/// The first column of a row as JSON (text protocol: every value is text
/// with its SQL type).
fn first_value(row: &PgRow) -> Option<Value> {
    if row.is_empty() {
        return None;
    }
    let v = row.try_get_raw(0).ok()?;
    Some(pg_value(&v))
}

fn pg_value(v: &PgValueRef<'_>) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let text = match v.as_str() {
        Ok(t) => t.to_string(),
        Err(_) => return Value::String(format!("({} bytes)", v.as_bytes().map_or(0, <[u8]>::len))),
    };
    let ty = v.type_info().name().to_ascii_uppercase();
    match ty.as_str() {
        "INT2" | "INT4" | "INT8" | "OID" | "FLOAT4" | "FLOAT8" | "NUMERIC" => {
            sql::number(&text).unwrap_or(Value::String(text))
        }
        "BOOL" => match text.as_str() {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => Value::String(text),
        },
        _ => Value::String(text),
    }
}
