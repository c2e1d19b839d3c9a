//! Against real database files.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use vitalis_core::{CheckCx, Status};

use super::*;

const T: Duration = Duration::from_secs(5);

fn build_with(path: &std::path::Path, rest: &str, timeout: Duration) -> Arc<dyn Check> {
    let mut t: toml::Table = toml::from_str(rest).expect("valid toml");
    t.insert("path".into(), path.to_str().unwrap().into());
    let cx = BuildCx {
        timeout,
        ..BuildCx::default()
    };
    crate::kind("sqlite")
        .unwrap()
        .build(t, &cx)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build(path: &std::path::Path, rest: &str) -> Arc<dyn Check> {
    build_with(path, rest, T)
}

/// A database with an `events` table whose newest row is 30 s old.
async fn database(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("state.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE events (ts TEXT NOT NULL, kind TEXT, ok INTEGER, payload BLOB, ratio REAL);
         INSERT INTO events VALUES (datetime('now', '-30 seconds'), 'fill', 1, x'0102', 0.25);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    path
}

#[tokio::test]
async fn passes_and_asserts_on_the_first_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir).await;
    let o = build(&path, "").run(CheckCx::new(T)).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let shown = format!("sqlite {}", path.display());
    assert!(
        o.output.starts_with(&format!("{shown}: first value 1 in ")),
        "{}",
        o.output
    );
    assert!(o.output.contains("open "), "{}", o.output);

    let age = "query = \"SELECT (julianday('now') - julianday(max(ts))) * 86400 FROM events\"\nunit = \"s\"\n";
    let o = build(
        &path,
        &format!("{age}assert = [{{ op = \"<\", value = 300 }}]"),
    )
    .run(CheckCx::new(T))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let seconds = o.observed_value.unwrap();
    assert!((29.0..120.0).contains(&seconds), "{seconds}");
    assert_eq!(o.observed_unit.as_deref(), Some("s"));
    let o = build(
        &path,
        &format!("{age}assert = [{{ op = \"<\", value = 10 }}]"),
    )
    .run(CheckCx::new(T))
    .await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.starts_with(&format!("{shown}: value = ")) && err.ends_with(", expected < 10"),
        "{err}"
    );

    let cases: &[(&str, &str, Status)] = &[
        (
            "SELECT kind FROM events",
            r#"{ op = "==", value = "fill" }"#,
            Status::Pass,
        ),
        (
            "SELECT ok FROM events",
            r#"{ op = "==", value = 1 }"#,
            Status::Pass,
        ),
        (
            "SELECT ratio FROM events",
            r#"{ op = ">", value = 0.5 }"#,
            Status::Fail,
        ),
        (
            "SELECT payload FROM events",
            r#"{ op = "==", value = "(2 bytes)" }"#,
            Status::Pass,
        ),
        (
            "SELECT NULL",
            r#"{ op = "exists", value = false }"#,
            Status::Pass,
        ),
        (
            "SELECT kind FROM events WHERE 0",
            r#"{ op = "exists" }"#,
            Status::Fail,
        ),
    ];
    for (query, assert, want) in cases {
        let o = build(&path, &format!("query = {query:?}\nassert = [{assert}]"))
            .run(CheckCx::new(T))
            .await;
        assert_eq!(o.status, *want, "{query}: {o:?}");
    }
}

#[tokio::test]
async fn missing_files_other_files_bad_queries_and_writes_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let o = build(&missing, "").run(CheckCx::new(T)).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("nope.db: the file does not exist; is the path right"),
        "{err}"
    );
    assert!(!missing.exists(), "a missing database is never created");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough to look like a header",
    )
    .unwrap();
    let err = build(&text, "").run(CheckCx::new(T)).await.error.unwrap();
    assert!(err.contains("not an SQLite database"), "{err}");

    let path = database(&dir).await;
    let err = build(&path, "query = \"SELECT * FROM nosuch\"")
        .run(CheckCx::new(T))
        .await
        .error
        .unwrap();
    assert!(
        err.contains("the query failed: no such table: nosuch"),
        "{err}"
    );
    assert!(err.contains("(query: SELECT * FROM nosuch)"), "{err}");
    assert!(err.contains("fix the query"), "{err}");

    let err = build(&path, "query = \"DELETE FROM events\"")
        .run(CheckCx::new(T))
        .await
        .error
        .unwrap();
    assert!(err.contains("read-only"), "{err}");
    let o = build(&path, "query = \"SELECT count(*) FROM events\"")
        .run(CheckCx::new(T))
        .await;
    assert_eq!(o.observed_value, Some(1.0), "nothing was deleted");

    // The file vanishes between runs.
    let check = build(&path, "");
    assert_eq!(check.run(CheckCx::new(T)).await.status, Status::Pass);
    std::fs::remove_file(&path).unwrap();
    let err = check.run(CheckCx::new(T)).await.error.unwrap();
    assert!(err.contains("the file does not exist"), "{err}");
}

#[tokio::test]
async fn slow_queries_fail_past_max_latency_and_are_interrupted_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir).await;
    let count = |n: u64| {
        format!(
            "query = \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT count(*) FROM c\""
        )
    };
    let o = build(&path, &format!("{}\nmax_latency = \"1ms\"", count(200_000)))
        .run(CheckCx::new(T))
        .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(o.error.unwrap().contains("over max_latency 1ms"));
    assert_eq!(o.observed_value, Some(200_000.0));

    let timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let o = build_with(&path, &count(10_000_000_000), timeout)
        .run(CheckCx::new(timeout))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("the query did not finish within 300ms (the check's timeout)"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let e = crate::kind("sqlite")
        .unwrap()
        .build(
            toml::from_str(
                "path = \"x.db\"\nassert = [{ path = \"$.a\", op = \"==\", value = 1 }]",
            )
            .unwrap(),
            &BuildCx::default(),
        )
        .err()
        .unwrap();
    assert_eq!(e.key.as_deref(), Some("assert"));
    let e = crate::kind("sqlite")
        .unwrap()
        .build(
            toml::from_str("file = \"x.db\"").unwrap(),
            &BuildCx::default(),
        )
        .err()
        .unwrap();
    assert!(e.key.is_some(), "{e}");
    let c: SqliteConfig = toml::from_str("path = \"x.db\"").unwrap();
    assert_eq!(c.query, "SELECT count(*) FROM sqlite_schema");
    let schema = serde_json::to_string(&schemars::schema_for!(SqliteConfig)).unwrap();
    assert!(schema.contains("path"));
}

/// A file that vanishes between the look and the open (the application
/// moved or deleted it meanwhile) is reported as missing, not as SQLite's
/// "unable to open"; one that is still there keeps SQLite's diagnosis.
#[tokio::test]
async fn a_file_vanishing_while_opened_reads_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(&dir).await;
    let config: SqliteConfig =
        toml::from_str(&format!("path = {:?}", path.to_str().unwrap())).unwrap();
    let check = config.compile(&BuildCx::default()).unwrap();
    // SQLite's own answer for a file it cannot open.
    let cant_open = SqliteConnectOptions::new()
        .filename(dir.path().join("no/such/dir.db"))
        .read_only(true)
        .connect()
        .await
        .expect_err("nothing to open there");
    let err = check.open_failed(&cant_open).await.error.unwrap();
    assert!(err.contains("cannot read it: unable to open"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = check.open_failed(&cant_open).await.error.unwrap();
    assert!(err.contains("the file does not exist"), "{err}");
}
