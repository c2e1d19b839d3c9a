//! Against a real in-process vitalis-server (its axum router on 127.0.0.1:0).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use vitalis_core::{CheckCx, CheckSpec, Component, Engine, Outcome, Status, check_fn};
use vitalis_server::{Api, Auth, Details, Scope, Token};

use super::*;

const READ_TOKEN: &str = "fed-R3ad-token-abc";
const HEARTBEAT_TOKEN: &str = "fed-Hb-token-xyz";

/// A remote Vitalis: `db` (critical) fails, `api` depends on it and fails,
/// `cache` passes; `reports` (not critical) warns.
async fn remote(db_ok: bool) -> (String, Engine) {
    let engine =
        Engine::builder()
            .component(Component::new("db").critical(true).check(CheckSpec::live(
                "ping",
                check_fn(move |_| async move {
                    if db_ok {
                        Outcome::pass("SELECT 1 in 1ms")
                    } else {
                        Outcome::fail("postgres db:5432: connection refused; is postgres running?")
                    }
                }),
            )))
            .component(Component::new("api").critical(true).depends_on("db").check(
                CheckSpec::live(
                    "http",
                    check_fn(move |_| async move {
                        if db_ok {
                            Outcome::pass("200")
                        } else {
                            Outcome::fail("GET /health answered 503")
                        }
                    }),
                ),
            ))
            .component(Component::new("cache").check(CheckSpec::live(
                "ping",
                check_fn(|_| async { Outcome::pass("PONG") }),
            )))
            .start()
            .unwrap();
    engine.refresh(|_| true, Duration::from_secs(2)).await;
    let auth = Auth {
        details: Details::WhenAuthorized,
        tokens: vec![
            Token {
                name: "federation".into(),
                value: READ_TOKEN.into(),
                scopes: vec![Scope::Read],
            },
            Token {
                name: "jobs".into(),
                value: HEARTBEAT_TOKEN.into(),
                scopes: vec![Scope::Heartbeat],
            },
        ],
        metrics_auth: false,
    };
    let router = Api::new(engine.clone())
        .auth(Arc::new(ArcSwap::from_pointee(auth)))
        .router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), engine)
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    crate::testing::build("vitalis", toml_text)
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("vitalis", toml_text, Duration::from_secs(3)).await
}

use crate::testing::error;

#[tokio::test]
async fn a_failing_remote_is_imported_with_its_root_causes() {
    let (base, _engine) = remote(false).await;
    let o = run(&format!("url = \"{base}\"\ntoken = \"{READ_TOKEN}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    let e = error(&o);
    assert!(
        e.contains(&format!("vitalis {base}/health: remote status fail")),
        "{e}"
    );
    assert!(
        e.contains("root causes: db (ping: postgres db:5432: connection refused; is postgres running?), impacting api"),
        "{e}"
    );
    assert!(
        e.contains("2 of 3 checks not passing: ")
            && e.contains("db:ping fail: postgres db:5432")
            && e.contains("api:http fail: GET /health answered 503"),
        "{e}"
    );
    assert_eq!(o.observed_value, Some(2.0));
    assert_eq!(o.observed_unit.as_deref(), Some("count"));
    assert!(!format!("{o:?}").contains(READ_TOKEN));
}

#[tokio::test]
async fn a_passing_remote_passes() {
    let (base, _engine) = remote(true).await;
    let o = run(&format!(
        "url = \"{base}/health\"\ntoken = \"{READ_TOKEN}\""
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(
        o.output.contains("remote status pass (3 checks passing)"),
        "{}",
        o.output
    );
    assert_eq!(o.observed_value, Some(0.0));
}

#[tokio::test]
async fn without_details_the_status_is_still_imported() {
    let (base, _engine) = remote(false).await;
    let o = run(&format!("url = \"{base}/health\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o)
            .contains("remote status fail; no details (set token to a token with the read scope"),
        "{}",
        error(&o)
    );
    // A valid token without read: status only, and the message says why.
    let o = run(&format!(
        "url = \"{base}/health\"\ntoken = \"{HEARTBEAT_TOKEN}\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("the token lacks the read scope there"),
        "{}",
        error(&o)
    );
    assert!(!format!("{o:?}").contains(HEARTBEAT_TOKEN));
}

#[tokio::test]
async fn a_wrong_token_and_wrong_urls_say_what_to_fix() {
    let (base, _engine) = remote(true).await;
    let o = run(&format!(
        "url = \"{base}/health\"\ntoken = \"not-{READ_TOKEN}\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("refused the token (401); check token"),
        "{}",
        error(&o)
    );
    assert!(!format!("{o:?}").contains(READ_TOKEN));

    let o = run(&format!("url = \"{base}/livez\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("not with a health document"),
        "{}",
        error(&o)
    );

    let o = run(&format!("url = \"{base}/nowhere\"")).await;
    assert!(error(&o).contains("answered 404"), "{}", error(&o));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let check = build(&format!("url = \"http://{addr}\"")).unwrap();
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
    let o = check.run(CheckCx::new(Duration::from_secs(2))).await;
    assert!(
        error(&o).contains("cannot be read: connection refused"),
        "{}",
        error(&o)
    );
}

#[test]
fn documents_map_to_statuses() {
    let o = judge(
        "vitalis x",
        &serde_json::json!({"status": "warn", "vitalis:status": "unknown"}),
        false,
    );
    assert_eq!(o.status, Status::Unknown);
    let o = judge(
        "vitalis x",
        &serde_json::json!({"status": "warn", "checks": {
            "reports:size": [{"status": "warn", "output": "db size 91%\nmore"}],
            "feed:age": [{"status": "warn", "vitalis:status": "unknown", "output": "not run yet"}],
            "db:ping": [{"status": "pass", "output": "ok"}]
        }, "root_causes": []}),
        true,
    );
    assert_eq!(o.status, Status::Warn);
    let e = error(&o);
    assert!(
        e.contains("2 of 3 checks not passing: reports:size warn: db size 91%; feed:age unknown: not run yet"),
        "{e}"
    );
    let o = judge("vitalis x", &serde_json::json!({"up": true}), true);
    assert!(error(&o).contains("has no `status`"));
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build(text).err().unwrap().key;
    assert_eq!(key("url = \"vitalis:8080\"").as_deref(), Some("url"));
    assert_eq!(
        key("url = \"http://v:8080\"\ntoken = \" \"").as_deref(),
        Some("token")
    );
    assert_eq!(
        key("url = \"http://v:8080\"\nview = \"ready\"").as_deref(),
        Some("view")
    );
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("vitalis").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in ["url", "token"] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table = toml::from_str("url = \"https://v:8080\"\ntoken = \"t\"").unwrap();
    assert!(
        crate::kind("vitalis")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
