//! Against a real PostgreSQL server (vitalis-testkit).

use std::time::Duration;

use vitalis_core::{CheckCx, Status};
use vitalis_testkit::postgres::{self as pgkit, Postgres};

use super::*;

fn config(url: &str, rest: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(rest).expect("valid toml");
    t.insert("url".into(), url.into());
    t
}

fn build_with(url: &str, rest: &str, timeout: Duration) -> Arc<dyn Check> {
    let cx = BuildCx {
        timeout,
        ..BuildCx::default()
    };
    crate::kind("postgres")
        .unwrap()
        .build(config(url, rest), &cx)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build(url: &str, rest: &str) -> Arc<dyn Check> {
    build_with(url, rest, Duration::from_secs(5))
}

async fn run(check: &Arc<dyn Check>, timeout: Duration) -> Outcome {
    let o = check.run(CheckCx::new(timeout)).await;
    assert_no_secret(&o);
    o
}

fn assert_no_secret(o: &Outcome) {
    for secret in [pgkit::PASSWORD, pgkit::ADMIN_PASSWORD, "wrong-Pw-123"] {
        assert!(!o.output.contains(secret), "password in output: {o:?}");
        assert!(
            !o.error.as_deref().unwrap_or("").contains(secret),
            "password in error: {o:?}"
        );
    }
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn passes_and_reports_the_first_value_and_latency() {
    let pg = Postgres::start();
    let check = build(&pg.url(), "");
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let shown = format!("postgres postgres://***@127.0.0.1:{}/vitalis", pg.port());
    assert!(
        o.output.starts_with(&format!("{shown}: first value 1 in ")),
        "{}",
        o.output
    );
    assert!(o.output.contains("connect "), "{}", o.output);
    // A number: observed as is (no unit configured).
    assert_eq!(o.observed_value, Some(1.0));
    assert_eq!(o.observed_unit, None);
    assert_eq!(o.perfdata[0].label, "latency");

    // Text: the latency is observed instead.
    let o = run(&build(&pg.url(), "query = \"SELECT current_user\""), T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("first value \"vitalis\""), "{}", o.output);
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
}

#[tokio::test]
async fn asserts_on_numbers_text_booleans_and_null() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE fills (ts timestamptz NOT NULL); \
         INSERT INTO fills VALUES (now() - interval '30 seconds')",
    );
    let cases: &[(&str, &str, Status)] = &[
        (
            "SELECT extract(epoch FROM now() - max(ts)) FROM fills",
            r#"[{ op = "<", value = 60 }, { op = "<", value = 20, impact = "warn" }]"#,
            Status::Warn,
        ),
        (
            "SELECT 2.5::numeric",
            r#"[{ op = "==", value = 2.5 }]"#,
            Status::Pass,
        ),
        (
            "SELECT 9000000000::int8",
            r#"[{ op = ">", value = 8e9 }]"#,
            Status::Pass,
        ),
        (
            "SELECT 0.5::float8",
            r#"[{ op = ">=", value = 1 }]"#,
            Status::Fail,
        ),
        (
            "SELECT 'primary'",
            r#"[{ op = "==", value = "primary" }]"#,
            Status::Pass,
        ),
        (
            "SELECT 'replica'",
            r#"[{ op = "matches", value = "^prim" }]"#,
            Status::Fail,
        ),
        (
            "SELECT pg_is_in_recovery()",
            r#"[{ op = "==", value = false }]"#,
            Status::Pass,
        ),
        (
            "SELECT true",
            r#"[{ op = "==", value = false }]"#,
            Status::Fail,
        ),
        (
            "SELECT NULL",
            r#"[{ op = "exists", value = false }]"#,
            Status::Pass,
        ),
        ("SELECT NULL::int", r#"[{ op = "exists" }]"#, Status::Fail),
        (
            "SELECT 1 WHERE false",
            r#"[{ op = "==", value = 1 }]"#,
            Status::Fail,
        ),
        (
            "SELECT now()",
            r#"[{ op = "matches", value = "^20[0-9]{2}-" }]"#,
            Status::Pass,
        ),
    ];
    for (query, assert, want) in cases {
        let rest = format!("query = {query:?}\nassert = {assert}\nunit = \"s\"");
        let o = run(&build(&pg.url(), &rest), T).await;
        assert_eq!(o.status, *want, "{query}: {o:?}");
    }
    let rest = "query = \"SELECT extract(epoch FROM now() - max(ts)) FROM fills\"\n\
                assert = [{ op = \"<\", value = 10 }]\nunit = \"s\"";
    let o = run(&build(&pg.url(), rest), T).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(err.contains(": value = 3"), "{err}");
    assert!(err.contains(", expected < 10"), "{err}");
    assert!(o.observed_value.unwrap() >= 30.0);
    assert_eq!(o.observed_unit.as_deref(), Some("s"));
    let o = run(
        &build(
            &pg.url(),
            "query = \"SELECT 1 WHERE false\"\nassert = [{ op = \"==\", value = 1 }]",
        ),
        T,
    )
    .await;
    assert!(o.error.unwrap().contains("returned no row"));
}

#[tokio::test]
async fn a_stopped_server_bad_credentials_and_bad_queries_say_what_to_look_at() {
    let mut pg = Postgres::start();
    let o = run(&build(&pg.url_as("vitalis", "wrong-Pw-123"), ""), T).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(err.contains("28P01"), "{err}");
    assert!(err.contains("check the user and password in url"), "{err}");
    assert!(err.contains("postgres://***@127.0.0.1"), "{err}");

    let url = format!("{}/nosuchdb", pg.url().trim_end_matches("/vitalis"));
    let o = run(&build(&url, ""), T).await;
    let err = o.error.unwrap();
    assert!(
        err.contains("3D000") && err.contains("check the database name"),
        "{err}"
    );

    let o = run(
        &build(&pg.url(), "query = \"SELECT * FROM no_such_table\""),
        T,
    )
    .await;
    let err = o.error.unwrap();
    assert!(
        err.contains("the query failed: relation \"no_such_table\" does not exist (42P01)"),
        "{err}"
    );
    assert!(
        err.contains("(query: SELECT * FROM no_such_table)"),
        "{err}"
    );
    assert!(err.contains("fix the query"), "{err}");

    pg.stop();
    let o = run(&build(&pg.url(), ""), T).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("cannot connect: connection refused; nothing listens there; is PostgreSQL running on 127.0.0.1"),
        "{err}"
    );
}

#[tokio::test]
async fn slow_queries_fail_past_max_latency_and_at_the_timeout() {
    let pg = Postgres::start();
    let check = build(
        &pg.url(),
        "query = \"SELECT pg_sleep(0.3)\"\nmax_latency = \"100ms\"",
    );
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    let err = o.error.unwrap();
    assert!(err.contains("over max_latency 100ms"), "{err}");
    assert!(err.contains("look at the server's load"), "{err}");
    assert!(o.observed_value.unwrap() >= 300.0);

    let timeout = Duration::from_millis(700);
    let check = build_with(&pg.url(), "query = \"SELECT pg_sleep(5)\"", timeout);
    let started = std::time::Instant::now();
    let o = run(&check, timeout).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains(
            "the query did not finish within 700ms (the check's timeout): SELECT pg_sleep(5)"
        ),
        "{err}"
    );
    // statement_timeout: the server cancels the abandoned query itself.
    let cancelled = vitalis_testkit::support::wait_until(Duration::from_secs(5), || {
        (pg.psql_admin("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%' AND state = 'active'") == "0")
            .then_some(())
    });
    assert!(cancelled.is_some(), "the abandoned query still runs");
}

// Two threads: the test blocks one while it stops the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_mid_query_is_reported() {
    let mut pg = Postgres::start();
    let check = build(&pg.url(), "query = \"SELECT pg_sleep(5)\"");
    let c = check.clone();
    let running = tokio::spawn(async move { c.run(CheckCx::new(Duration::from_secs(8))).await });
    // Wait until the query runs, then stop the server under it.
    let started = vitalis_testkit::support::wait_until(Duration::from_secs(5), || {
        (pg.psql_admin(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%'",
        ) == "1")
            .then_some(())
    });
    assert!(started.is_some());
    pg.stop();
    let o = running.await.unwrap();
    assert_no_secret(&o);
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("the server ended the session: terminating connection due to administrator command (57P01)")
            || err.contains("the connection was lost during the query"),
        "{err}"
    );
    assert!(
        err.contains("restarting") || err.contains("restart"),
        "{err}"
    );

    // Killed outright: no goodbye message, the socket just closes.
    pg.start_again();
    let c = check.clone();
    let running = tokio::spawn(async move { c.run(CheckCx::new(Duration::from_secs(8))).await });
    let started = vitalis_testkit::support::wait_until(Duration::from_secs(5), || {
        (pg.psql_admin(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%'",
        ) == "1")
            .then_some(())
    });
    assert!(started.is_some());
    pg.kill();
    let err = running.await.unwrap().error.unwrap();
    assert!(
        err.contains("the connection was lost during the query: the connection closed"),
        "{err}"
    );
    assert!(
        err.contains("did the server restart or crash? look at its log"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pool_reuses_connections_and_connects_fresh_after_a_failure() {
    let mut pg = Postgres::start();
    let check = build(&pg.url(), "pool = { max = 2 }");
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("connect "), "{}", o.output);
    assert!(
        o.output.contains("pool 1 open, 1 idle, max 2"),
        "{}",
        o.output
    );
    let labels: Vec<_> = o
        .perfdata
        .iter()
        .map(|p| (p.label.as_str(), p.value))
        .collect();
    assert!(
        labels.contains(&("pool_size", 1.0)) && labels.contains(&("pool_idle", 1.0)),
        "{labels:?}"
    );

    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(
        o.output.contains("pooled connection opened"),
        "{}",
        o.output
    );
    assert_eq!(
        pg.psql_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vitalis'"),
        "1",
        "one connection, reused"
    );

    // The server restarts: the pooled connection is dead. That run fails
    // and says so; the next one connects fresh and passes.
    pg.stop();
    pg.start_again();
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    let err = o.error.unwrap();
    assert!(err.contains("on a pooled connection opened"), "{err}");
    assert!(err.contains("the next run connects fresh"), "{err}");
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("connect "), "{}", o.output);

    // A connect failure through the pool still says why.
    pg.stop();
    let o = run(&check, T).await;
    let err = o.error.unwrap();
    assert!(err.contains("connect"), "{err}");
    let o = run(&check, T).await;
    assert!(o.error.unwrap().contains("connection refused"));
}

// Two threads: the test blocks one while it waits for the slow query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_with_the_same_url_share_a_pool() {
    let pg = Postgres::start();
    let a = build(
        &pg.url(),
        "pool = { max = 1 }\nquery = \"SELECT pg_sleep(2)\"",
    );
    let b = build(&pg.url(), "pool = { max = 1 }");
    let a2 = a.clone();
    let slow = tokio::spawn(async move { a2.run(CheckCx::new(Duration::from_secs(5))).await });
    // The slow check holds the pool's one connection.
    let holding = vitalis_testkit::support::wait_until(Duration::from_secs(5), || {
        (pg.psql_admin(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%'",
        ) == "1")
            .then_some(())
    });
    assert!(holding.is_some());
    let o = run(&b, Duration::from_millis(500)).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        o.error
            .unwrap()
            .contains("all 1 pooled connections stayed in use for 500ms"),
    );
    assert_eq!(slow.await.unwrap().status, Status::Pass);
    // Free again: b gets the connection a opened.
    let o = run(&b, T).await;
    assert!(
        o.output.contains("pooled connection opened"),
        "{}",
        o.output
    );
}

#[test]
fn config_errors_name_the_key_and_hide_the_password() {
    let build = |url: &str, rest: &str| {
        crate::kind("postgres")
            .unwrap()
            .build(config(url, rest), &BuildCx::default())
            .err()
            .expect("a config error")
    };
    let e = build("mysql://u:hunter2@h/db", "");
    assert_eq!(e.key.as_deref(), Some("url"));
    assert!(e.message.contains("must start with postgres://"), "{e}");
    assert!(!e.message.contains("hunter2"), "{e}");
    let e = build("not a url", "");
    assert_eq!(e.key.as_deref(), Some("url"));
    let e = build("postgres://u:hunter2@h/db", "pool = { max = 0 }");
    assert_eq!(e.key.as_deref(), Some("pool"));
    let e = build(
        "postgres://u:hunter2@h/db",
        "assert = [{ path = \"$.a\", op = \"==\", value = 1 }]",
    );
    assert_eq!(e.key.as_deref(), Some("assert"));
    let e = build("postgres://u:hunter2@h/db", "querry = \"SELECT 2\"");
    assert_eq!(e.key.as_deref(), Some("querry"));
    let e = build("postgres://u:hunter2@h/db", "query = \" \"");
    assert_eq!(e.key.as_deref(), Some("query"));

    let c: PostgresConfig = config("postgres://u:hunter2@h/db", "").try_into().unwrap();
    assert_eq!(c.query, "SELECT 1");
    assert!(!format!("{c:?}").contains("hunter2"));
    let schema = serde_json::to_string(&schemars::schema_for!(PostgresConfig)).unwrap();
    assert!(schema.contains("max_latency") && schema.contains("pool"));
}
