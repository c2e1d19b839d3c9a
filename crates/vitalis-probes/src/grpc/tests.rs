//! Against a real tonic server with tonic-health's `HealthReporter`, on
//! 127.0.0.1:0 (served over HTTP/2 through axum).

use std::time::Duration;

use tokio::net::TcpListener;
use tonic_health::ServingStatus as Reported;
use tonic_health::server::HealthReporter;
use vitalis_core::{CheckCx, Outcome, Status};

use super::*;

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr.to_string()
}

/// A health server: `risk.Engine` serving, `ml.Model` not serving.
async fn health_server() -> (String, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("risk.Engine", Reported::Serving)
        .await;
    reporter
        .set_service_status("ml.Model", Reported::NotServing)
        .await;
    let router = tonic::service::Routes::new(service).into_axum_router();
    (serve(router).await, reporter)
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    crate::testing::build("grpc", toml_text)
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("grpc", toml_text, Duration::from_secs(3)).await
}

use crate::testing::error;

#[tokio::test]
async fn serving_passes_and_not_serving_fails() {
    let (addr, reporter) = health_server().await;
    let o = run(&format!("address = \"{addr}\"\nservice = \"risk.Engine\"")).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("ms"));
    assert!(
        o.output.contains("service 'risk.Engine': SERVING"),
        "{}",
        o.output
    );

    // The whole server ("") is serving by default.
    let o = run(&format!("address = \"http://{addr}\"")).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    let o = run(&format!("address = \"{addr}\"\nservice = \"ml.Model\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("NOT_SERVING; the server says it cannot serve"),
        "{}",
        error(&o)
    );

    // A status change is seen on the next run (a new connection every run).
    reporter
        .set_service_status("risk.Engine", Reported::NotServing)
        .await;
    let o = run(&format!("address = \"{addr}\"\nservice = \"risk.Engine\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
}

#[tokio::test]
async fn an_unknown_service_fails_saying_the_name_is_unknown() {
    let (addr, _reporter) = health_server().await;
    let o = run(&format!("address = \"{addr}\"\nservice = \"risk.Engin\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("NotFound")
            && error(&o).contains("the service name 'risk.Engin' is unknown"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn servers_without_health_and_closed_ports_say_what_to_look_at() {
    // A gRPC-capable HTTP/2 server with no health service.
    let addr = serve(axum::Router::new()).await;
    let o = run(&format!("address = \"{addr}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("does not implement grpc.health.v1.Health"),
        "{}",
        error(&o)
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let check = build(&format!("address = \"{closed}\"")).unwrap();
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
    let o = check.run(CheckCx::new(Duration::from_secs(3))).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("cannot connect") && error(&o).contains("nothing listens there"),
        "{}",
        error(&o)
    );

    // TLS against a plaintext server.
    let (addr, _reporter) = health_server().await;
    let o = run(&format!("address = \"https://{addr}\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("TLS handshake failed"), "{}", error(&o));
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build(text).err().unwrap().key;
    assert_eq!(key("address = \"no-port\"").as_deref(), Some("address"));
    assert_eq!(key("address = \"grpc://h:1\"").as_deref(), Some("address"));
    assert_eq!(
        key("address = \"h:1\"\nca = \"/x.pem\"").as_deref(),
        Some("ca")
    );
    assert_eq!(
        key("address = \"https://h:1\"\nca = \"/nonexistent.pem\"").as_deref(),
        Some("ca")
    );
    assert_eq!(
        key("address = \"h:1\"\nsvc = \"x\"").as_deref(),
        Some("svc")
    );
    assert!(build("address = \"https://h:443\"\nserver_name = \"h.internal\"").is_ok());
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("grpc").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in ["address", "service", "ca", "server_name"] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table = toml::from_str("address = \"https://h:443\"").unwrap();
    assert!(
        crate::kind("grpc")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
