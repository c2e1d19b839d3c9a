//! `sqlite`: opens a database file read-only, runs a query, and judges the
//! first value of its first row.
//!
//! ```toml
//! type = "sqlite"
//! path = "/var/lib/app/state.db"
//! query = "SELECT (julianday('now') - julianday(max(ts))) * 86400 FROM events"
//! assert = [{ op = "<", value = 300 }]
//! unit = "s"
//! ```
//!
//! The file is opened read-only and never created: a missing file fails
//! with a clear message instead of leaving an empty database behind. The
//! first value is a number (`INTEGER`, `REAL`), text, `null`, or for a
//! `BLOB` its size (`"(12 bytes)"`). The observed value is that number
//! when it is one (in `unit`, when given), else the latency in ms. A query
//! still running at the check's timeout is interrupted (a progress handler),
//! so it does not go on in the background; a database locked by a writer is
//! waited for until then.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row, TypeInfo, ValueRef};
use tokio::time::Instant;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome};

use crate::assertion::{AssertionConfig, Assertions, Subject};
use crate::sql::{self, QueryJudge, Ran};
use crate::{BuildCx, BuildError, ProbeConfig};

#[cfg(test)]
mod tests;

/// Opens an SQLite database read-only, runs `query`, and judges its first value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (relative paths: from Vitalis' working directory).
    pub path: PathBuf,
    /// The query; its first row's first column is the value. Default
    /// `SELECT count(*) FROM sqlite_schema` (reads the file's schema, so a
    /// file that is not a database fails).
    #[serde(default = "default_query")]
    pub query: String,
    /// Fail when opening and querying take longer than this (e.g. `100ms`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Duration>,
    /// Assertions on the first value (no `path`).
    #[serde(default)]
    pub assert: Vec<AssertionConfig>,
    /// The unit of the first value when it is a number (`s`, `count`, …).
    #[serde(default)]
    pub unit: Option<String>,
}

fn default_query() -> String {
    "SELECT count(*) FROM sqlite_schema".into()
}

impl ProbeConfig for SqliteConfig {
    const NAME: &'static str = "sqlite";

    fn build(self, cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(self.compile(cx)?))
    }
}

impl SqliteConfig {
    fn compile(self, cx: &BuildCx) -> Result<SqliteCheck, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::key(
                "path",
                "path is empty; give the database file",
            ));
        }
        if self.query.trim().is_empty() {
            return Err(BuildError::key(
                "query",
                "query is empty; remove it (the default reads the schema) or give a query",
            ));
        }
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(cx.timeout)
            .disable_statement_logging();
        Ok(SqliteCheck {
            what: format!("sqlite {}", self.path.display()),
            path: self.path,
            options,
            query: self.query,
            judge: QueryJudge {
                assert: Assertions::compile("assert", self.assert, Subject::Value)?,
                max_latency: self.max_latency,
                unit: self.unit,
            },
        })
    }
}

/// A compiled `sqlite` check.
struct SqliteCheck {
    /// `sqlite /path/to.db`: how every message starts.
    what: String,
    path: PathBuf,
    options: SqliteConnectOptions,
    query: String,
    judge: QueryJudge,
}

impl Check for SqliteCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(self.attempt(cx))
    }
}

impl SqliteCheck {
    async fn attempt(&self, cx: CheckCx) -> Outcome {
        let timeout = vitalis_core::duration::format(cx.timeout());
        if let Err(e) = tokio::fs::metadata(&self.path).await {
            return self.unreadable(&e);
        }
        let deadline = cx.deadline();
        let start = Instant::now();
        let mut conn = match tokio::time::timeout_at(
            deadline,
            SqliteConnection::connect_with(&self.options),
        )
        .await
        {
            Err(_) => {
                return Outcome::fail(format!(
                    "{}: could not open it within {timeout} (the check's timeout); is its disk slow or hung?",
                    self.what
                ));
            }
            Ok(Err(e)) => return self.open_failed(&e).await,
            Ok(Ok(c)) => c,
        };
        let opened = start.elapsed();
        // Interrupt the query at the deadline, rather than let it run on in
        // the connection's thread after the run was abandoned.
        let stop_at = deadline.into_std();
        match conn.lock_handle().await {
            Ok(mut handle) => {
                handle.set_progress_handler(1000, move || std::time::Instant::now() < stop_at);
            }
            Err(e) => return self.open_failed(&e).await,
        }
        let query = sqlx::raw_sql(sqlx::AssertSqlSafe(self.query.clone()));
        let result = tokio::time::timeout_at(deadline, query.fetch_optional(&mut conn)).await;
        let elapsed = start.elapsed();
        let row = match result {
            Err(_) => return self.too_slow(&timeout),
            Ok(Err(e)) if is_interrupt(&e) => return self.too_slow(&timeout),
            Ok(Err(e)) => return Outcome::fail(self.failure("the query failed", &e)),
            Ok(Ok(row)) => row,
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        });
        self.judge.judge(
            &self.what,
            Ran {
                first: row.as_ref().and_then(first_value),
                elapsed,
                detail: format!(
                    "open {}, query {}",
                    sql::ms(opened),
                    sql::ms(elapsed - opened)
                ),
                perfdata: Vec::new(),
            },
        )
    }

    /// The file cannot even be looked at.
    fn unreadable(&self, e: &std::io::Error) -> Outcome {
        Outcome::fail(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{}: the file does not exist; is the path right, and has the application created it (or was it moved or deleted)?",
                self.what
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "{}: permission denied; Vitalis' user needs read access to the file and its directories",
                self.what
            ),
            _ => format!("{}: cannot read the file: {e}", self.what),
        })
    }

    /// Opening failed. The file may have vanished since it was looked at
    /// (moved or deleted meanwhile): that is then the diagnosis, not
    /// SQLite's "unable to open".
    async fn open_failed(&self, e: &sqlx::Error) -> Outcome {
        match tokio::fs::metadata(&self.path).await {
            Err(gone) => self.unreadable(&gone),
            Ok(_) => Outcome::fail(self.failure("cannot open it", e)),
        }
    }

    fn too_slow(&self, timeout: &str) -> Outcome {
        Outcome::fail(format!(
            "{}: the query did not finish within {timeout} (the check's timeout): {}; interrupted. Is the database locked by a long write, or the query scanning a large table (an index)?",
            self.what,
            sql::show_query(&self.query)
        ))
    }

    fn failure(&self, what: &str, e: &sqlx::Error) -> String {
        let (text, code) = match e {
            sqlx::Error::Database(db) => (
                db.message().to_string(),
                db.code().map(|c| c.into_owned()).unwrap_or_default(),
            ),
            other => (other.to_string(), String::new()),
        };
        let lower = text.to_ascii_lowercase();
        // (hint, whether the query is the thing to look at)
        let (hint, about_query) = if lower.contains("not a database") {
            (
                "the file is not an SQLite database (or is encrypted or corrupt); is the path right?",
                false,
            )
        } else if lower.contains("locked") || lower.contains("busy") {
            (
                "another process holds a lock on it; look for a long-running writer",
                false,
            )
        } else if lower.contains("readonly") || lower.contains("read-only") {
            (
                "the database is opened read-only: the query must not write",
                true,
            )
        } else if lower.contains("no such table")
            || lower.contains("no such column")
            || lower.contains("syntax error")
        {
            (
                "fix the query (a typo, or the application's schema changed)",
                true,
            )
        } else if lower.contains("unable to open") {
            (
                "Vitalis' user must be able to read the file and its directory (a WAL database also needs its -shm and -wal files)",
                false,
            )
        } else if lower.contains("malformed") || lower.contains("corrupt") {
            (
                "the database file is damaged; restore it from a backup and look at the disk",
                false,
            )
        } else {
            ("look at the file and the application that writes it", true)
        };
        let what = if about_query { what } else { "cannot read it" };
        let mut message = format!("{}: {what}: {text}", self.what);
        if !code.is_empty() {
            message.push_str(&format!(" (code {code})"));
        }
        if about_query && what == "the query failed" {
            message.push_str(&format!(" (query: {})", sql::show_query(&self.query)));
        }
        format!("{message}; {hint}")
    }
}

/// Whether the progress handler interrupted the query (`SQLITE_INTERRUPT`, 9).
fn is_interrupt(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|c| c == "9") || db.message().contains("interrupt")
        }
        _ => false,
    }
}

/// The first column of a row as JSON, by the value's storage class.
fn first_value(row: &SqliteRow) -> Option<Value> {
    if row.is_empty() {
        return None;
    }
    let class = {
        let raw = row.try_get_raw(0).ok()?;
        if raw.is_null() {
            return Some(Value::Null);
        }
        raw.type_info().name().to_ascii_uppercase()
    };
    Some(match class.as_str() {
        "INTEGER" | "BOOLEAN" => row
            .try_get_unchecked::<i64, _>(0)
            .map(Value::from)
            .unwrap_or(Value::Null),
        "REAL" | "NUMERIC" => row
            .try_get_unchecked::<f64, _>(0)
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        "BLOB" => Value::String(format!(
            "({} bytes)",
            row.try_get_unchecked::<Vec<u8>, _>(0)
                .map_or(0, |b| b.len())
        )),
        _ => row
            .try_get_unchecked::<String, _>(0)
            .map_or(Value::Null, Value::String),
    })
}
