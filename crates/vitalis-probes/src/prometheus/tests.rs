//! Against the real Prometheus server (Debian's `prometheus`), scraping a
//! small metrics server started here.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use vitalis_core::{CheckCx, Outcome, Status};
use vitalis_testkit::prometheus::Prometheus;

use super::*;

/// Serves the app's metrics; returns `127.0.0.1:port`.
async fn app() -> String {
    let app = Router::new().route(
        "/metrics",
        get(|| async {
            "# TYPE app_queue_depth gauge\n\
             app_queue_depth 7\n\
             # TYPE model_accuracy gauge\n\
             model_accuracy{model=\"fraud\"} 0.93\n\
             model_accuracy{model=\"churn\"} 0.71\n"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

fn build(url: &str, rest: &str) -> Result<Arc<dyn Check>, BuildError> {
    let table: toml::Table =
        toml::from_str(&format!("url = \"{url}\"\n{rest}")).expect("valid toml");
    crate::kind("prometheus")
        .unwrap()
        .build(table, &BuildCx::default())
}

async fn run(url: &str, rest: &str) -> Outcome {
    build(url, rest)
        .unwrap()
        .run(CheckCx::new(Duration::from_secs(5)))
        .await
}

use crate::testing::error;

#[tokio::test]
async fn instant_queries_against_a_real_prometheus() {
    let target = app().await;
    // Starting blocks (it waits for the first scrape): keep the app serving.
    let mut prom = tokio::task::spawn_blocking(move || {
        let prom = Prometheus::start(&[&target]);
        prom.wait_for_samples("app_queue_depth");
        prom
    })
    .await
    .unwrap();
    let url = prom.url();

    // A vector with one series.
    let o = run(
        &url,
        "query = 'app_queue_depth'\nassert = [{ op = \"<\", value = 10 }]",
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_value, Some(7.0));
    assert!(o.output.contains("app_queue_depth{"), "{}", o.output);
    let o = run(
        &url,
        "query = 'app_queue_depth'\nassert = [{ op = \"<\", value = 5 }]",
    )
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("value = 7.0, expected < 5"),
        "{}",
        error(&o)
    );

    // Several series: the failing one is named; thresholds by impact.
    let o = run(
        &url,
        "query = 'model_accuracy'\nassert = [{ op = \">\", value = 0.6 }, { op = \">\", value = 0.8, impact = \"warn\" }]",
    )
    .await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(
        error(&o).contains("model=\"churn\"") && error(&o).contains("expected > 0.8 (impact warn)"),
        "{}",
        error(&o)
    );
    assert!(!error(&o).contains("fraud"), "{}", error(&o));

    // A scalar.
    let o = run(
        &url,
        "query = 'scalar(app_queue_depth) * 2'\nassert = [{ op = \"==\", value = 14 }]",
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    // Alert style: passes while the expression returns something.
    let o = run(&url, "query = 'up{job=\"app\"} == 1'").await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&url, "query = 'up{job=\"app\"} == 0'").await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("returned no series (empty result)"),
        "{}",
        error(&o)
    );
    let o = run(&url, "query = 'no_such_metric'").await;
    assert!(error(&o).contains("is the metric scraped"), "{}", error(&o));

    // Errors Prometheus reports, and a range vector.
    let o = run(&url, "query = 'up{'").await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("Prometheus rejected the query (bad_data:")
            && error(&o).contains("fix the PromQL"),
        "{}",
        error(&o)
    );
    let o = run(&url, "query = 'app_queue_depth[1m]'").await;
    assert!(error(&o).contains("range vector"), "{}", error(&o));

    // A full API URL works as well.
    let o = run(&format!("{url}/api/v1/query"), "query = 'app_queue_depth'").await;
    assert_eq!(o.status, Status::Pass, "{o:?}");

    prom.stop();
    let o = run(&url, "query = 'up'").await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("connection refused"), "{}", error(&o));
}

#[tokio::test]
async fn a_server_that_is_not_prometheus_is_named() {
    let target = app().await;
    let o = run(&format!("http://{target}"), "query = 'up'").await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("answered 404 without a Prometheus API document")
            && error(&o).contains("is url the Prometheus server?"),
        "{}",
        error(&o)
    );
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |url: &str, rest: &str| build(url, rest).err().unwrap().key;
    assert_eq!(
        key("prometheus:9090", "query = 'up'").as_deref(),
        Some("url")
    );
    assert_eq!(
        key("http://p:9090/?x=1", "query = 'up'").as_deref(),
        Some("url")
    );
    assert_eq!(
        key("http://p:9090", "query = ' '").as_deref(),
        Some("query")
    );
    assert_eq!(key("http://p:9090", "").as_deref(), Some("query"));
    assert_eq!(
        key(
            "http://p:9090",
            "query = 'up'\nassert = [{ path = \"$\", op = \"==\", value = 1 }]"
        )
        .as_deref(),
        Some("assert")
    );
    let check = build("http://p:9090", "query = 'up'").unwrap();
    assert_eq!(check.target_host().as_deref(), Some("p"));
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("prometheus").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in ["url", "query", "assert", "headers", "secret_headers"] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table = toml::from_str("url = \"http://p:9090\"\nquery = \"up\"").unwrap();
    assert!(
        crate::kind("prometheus")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}
