//! Against a real Redis server (vitalis-testkit), plus the reply mapping.

use std::time::Duration;

use serde_json::json;
use vitalis_core::{CheckCx, Status};
use vitalis_testkit::redis::Redis;

use super::*;

const PASSWORD: &str = "rd-S3cret-vitalis";
const T: Duration = Duration::from_secs(5);

fn config(url: &str, rest: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(rest).expect("valid toml");
    t.insert("url".into(), url.into());
    t
}

fn build(url: &str, rest: &str) -> Arc<dyn Check> {
    crate::kind("redis")
        .unwrap()
        .build(config(url, rest), &BuildCx::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn run(check: &Arc<dyn Check>, timeout: Duration) -> Outcome {
    let o = check.run(CheckCx::new(timeout)).await;
    for secret in [PASSWORD, "wrong-Pw-123"] {
        assert!(!o.output.contains(secret), "password in output: {o:?}");
        assert!(!o.error.as_deref().unwrap_or("").contains(secret), "{o:?}");
    }
    o
}

#[tokio::test]
async fn ping_passes_with_the_latency_observed() {
    let r = Redis::with_password(PASSWORD);
    let check = build(&r.url(), "");
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
    let o = run(&check, T).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let shown = format!("redis redis://***@127.0.0.1:{}/0", r.port());
    assert!(
        o.output
            .starts_with(&format!("{shown}: PING → \"PONG\" in ")),
        "{}",
        o.output
    );
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    assert!(o.observed_value.unwrap() > 0.0);
}

#[tokio::test]
async fn asserts_on_replies_info_fields_and_json_values() {
    let r = Redis::start();
    r.cli(&["SET", "last_tick", "1733240000"]);
    r.cli(&["RPUSH", "orders", "a", "b", "c"]);
    r.cli(&["SET", "feed", r#"{"lag_ms": 12, "ok": true}"#]);
    let cases: &[(&str, &str, Status)] = &[
        (
            r#"["GET", "last_tick"]"#,
            r#"[{ op = ">", value = 1700000000 }]"#,
            Status::Pass,
        ),
        (
            r#""LLEN orders""#,
            r#"[{ op = "<", value = 2 }]"#,
            Status::Fail,
        ),
        (
            r#""LLEN orders""#,
            r#"[{ op = "<", value = 2, impact = "warn" }]"#,
            Status::Warn,
        ),
        (
            r#"["GET", "missing"]"#,
            r#"[{ op = "exists", value = false }]"#,
            Status::Pass,
        ),
        (
            r#"["GET", "feed"]"#,
            r#"[{ path = "$.lag_ms", op = "<", value = 100 }]"#,
            Status::Pass,
        ),
        (
            r#"["GET", "feed"]"#,
            r#"[{ path = "ok", op = "==", value = true }]"#,
            Status::Pass,
        ),
        (
            r#"["LRANGE", "orders", "0", "-1"]"#,
            r#"[{ path = "$[0]", op = "==", value = "a" }]"#,
            Status::Pass,
        ),
        (
            r#"["INFO", "replication"]"#,
            r#"[{ path = "role", op = "==", value = "master" }]"#,
            Status::Pass,
        ),
        (
            r#"["INFO", "replication"]"#,
            r#"[{ path = "connected_slaves", op = ">=", value = 1 }]"#,
            Status::Fail,
        ),
        (
            r#""INFO keyspace""#,
            r#"[{ path = "$.db0.keys", op = "==", value = 3 }]"#,
            Status::Pass,
        ),
        (
            r#""PING""#,
            r#"[{ op = "==", value = "PONG" }]"#,
            Status::Pass,
        ),
    ];
    for (command, assert, want) in cases {
        let rest = format!("command = {command}\nassert = {assert}");
        let o = run(&build(&r.url(), &rest), T).await;
        assert_eq!(o.status, *want, "{command} {assert}: {o:?}");
    }
    let o = run(
        &build(&r.url(), "command = [\"INFO\", \"replication\"]\nassert = [{ path = \"role\", op = \"==\", value = \"slave\" }]"),
        T,
    )
    .await;
    assert_eq!(
        o.error.as_deref(),
        Some(
            format!(
                "redis redis://127.0.0.1:{}/0: $.role = \"master\", expected == \"slave\"",
                r.port()
            )
            .as_str()
        )
    );
    assert!(o.output.contains("INFO replication → "), "{}", o.output);
    let o = run(&build(&r.url(), "command = \"INFO replication\""), T).await;
    assert!(
        o.output.contains("INFO replication → ") && o.output.contains(" fields in "),
        "{}",
        o.output
    );
}

#[tokio::test]
async fn down_bad_password_command_errors_and_slow_replies() {
    let mut r = Redis::with_password(PASSWORD);
    let o = run(&build(&r.url_with_password("wrong-Pw-123"), ""), T).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("authentication failed: the server rejected the user or password"),
        "{err}"
    );
    assert!(err.contains("check the user and password in url"), "{err}");

    let no_pw = format!("redis://{}/0", r.address());
    let o = run(&build(&no_pw, ""), T).await;
    let err = o.error.unwrap();
    assert!(err.contains("authentication failed: NOAUTH"), "{err}");

    let o = run(&build(&r.url(), "command = [\"NOSUCHCMD\", \"x\"]"), T).await;
    let err = o.error.unwrap();
    assert!(
        err.contains("NOSUCHCMD x answered an error: ERR unknown command"),
        "{err}"
    );
    assert!(err.contains("check command"), "{err}");

    r.cli(&["SET", "s", "text"]);
    let o = run(&build(&r.url(), "command = [\"LLEN\", \"s\"]"), T).await;
    assert!(o.error.unwrap().contains("WRONGTYPE"));

    // WAIT for a replica that does not exist blocks for its timeout (ms).
    let o = run(
        &build(
            &r.url(),
            "command = [\"WAIT\", \"1\", \"300\"]\nmax_latency = \"100ms\"",
        ),
        T,
    )
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    let err = o.error.unwrap();
    assert!(err.contains("WAIT 1 300 answered in "), "{err}");
    assert!(
        err.contains("over max_latency 100ms; the server or the network is slow"),
        "{err}"
    );
    assert!(o.observed_value.unwrap() >= 300.0);

    let o = run(
        &build(&r.url(), "command = [\"WAIT\", \"1\", \"3000\"]"),
        Duration::from_millis(400),
    )
    .await;
    let err = o.error.unwrap();
    assert!(
        err.contains("no reply to WAIT 1 3000 within 400ms (the check's timeout)"),
        "{err}"
    );

    r.stop();
    let o = run(&build(&r.url(), ""), T).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("cannot connect: connection refused; nothing listens there; is Redis running on 127.0.0.1"),
        "{err}"
    );
    assert!(err.starts_with("redis redis://***@127.0.0.1:"), "{err}");
}

// Two threads: the test blocks one while it stops the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_vanishes_mid_command_is_reported() {
    let mut r = Redis::start();
    let check = build(&r.url(), "command = [\"BLPOP\", \"never\", \"5\"]");
    let c = check.clone();
    let running = tokio::spawn(async move { c.run(CheckCx::new(Duration::from_secs(8))).await });
    let blocked = vitalis_testkit::support::wait_until(Duration::from_secs(5), || {
        r.cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
            .then_some(())
    });
    assert!(blocked.is_some());
    r.stop();
    let o = running.await.unwrap();
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("the connection was lost during the command"),
        "{err}"
    );
    assert!(err.contains("did the server restart or crash"), "{err}");
}

#[test]
fn config_errors_name_the_key_and_hide_the_password() {
    let build = |url: &str, rest: &str| {
        crate::kind("redis")
            .unwrap()
            .build(config(url, rest), &BuildCx::default())
            .err()
            .expect("a config error")
    };
    let e = build("http://:hunter2@h:6379", "");
    assert_eq!(e.key.as_deref(), Some("url"));
    assert!(!e.message.contains("hunter2"), "{e}");
    let e = build("rediss://:hunter2@h:6379", "");
    assert!(
        e.message.contains("only redis://") && !e.message.contains("hunter2"),
        "{e}"
    );
    for bad in [
        "\"FLUSHALL\"",
        "[\"config\", \"set\", \"x\", \"y\"]",
        "\"SHUTDOWN NOSAVE\"",
        "[]",
        "\"  \"",
    ] {
        let e = build("redis://h:6379", &format!("command = {bad}"));
        assert_eq!(e.key.as_deref(), Some("command"), "{bad}: {e}");
    }
    let e = build(
        "redis://h:6379",
        "assert = [{ path = \"$.[\", op = \"==\", value = 1 }]",
    );
    assert_eq!(e.key.as_deref(), Some("assert"));
    let e = build("redis://h:6379", "comand = \"PING\"");
    assert_eq!(e.key.as_deref(), Some("comand"));
    let c: RedisConfig = config("redis://:hunter2@h:6379/0", "").try_into().unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    let schema = serde_json::to_string(&schemars::schema_for!(RedisConfig)).unwrap();
    assert!(schema.contains("command"));
}

#[test]
fn replies_become_json() {
    assert_eq!(reply_json(&Reply::Nil), Value::Null);
    assert_eq!(reply_json(&Reply::Int(3)), json!(3));
    assert_eq!(reply_json(&Reply::Okay), json!("OK"));
    assert_eq!(
        reply_json(&Reply::BulkString(b"[1,2]".to_vec())),
        json!([1, 2])
    );
    assert_eq!(
        reply_json(&Reply::BulkString(b"{bad".to_vec())),
        json!("{bad")
    );
    assert_eq!(
        reply_json(&Reply::Map(vec![(
            Reply::SimpleString("a".into()),
            Reply::Double(1.5)
        )])),
        json!({"a": 1.5})
    );
    let info = Reply::BulkString(
        b"# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=0\r\nexecutable:/usr/bin/redis-server\r\n".to_vec(),
    );
    let doc = info_json(&info);
    assert_eq!(doc["role"], json!("master"));
    assert_eq!(doc["slave0"]["lag"], json!("0"));
    assert_eq!(doc["executable"], json!("/usr/bin/redis-server"));
    assert_eq!(field_path("role"), "$.role");
    assert_eq!(field_path("$.x"), "$.x");
    assert_eq!(field_path("a-b"), "$['a-b']");
    assert_eq!(
        shown_command(&["SET".into(), "k".into(), "v".into(), "EX".into()]),
        "SET k v …"
    );
}
