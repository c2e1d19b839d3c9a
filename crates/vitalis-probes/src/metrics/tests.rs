//! Against a real HTTP server (axum on 127.0.0.1:0) serving metrics text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use vitalis_core::{CheckCx, Outcome, Status};

use super::*;

const TOKEN: &str = "metrics-T0ken-xyz";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async {
                let fresh = now() - 30.0;
                let stale = now() - 7200.0;
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    format!(
                        "# HELP db_pool_usage_ratio Share of the pool in use.\n\
                         # TYPE db_pool_usage_ratio gauge\n\
                         db_pool_usage_ratio{{pool=\"orders\",instance=\"a\"}} 0.42\n\
                         db_pool_usage_ratio{{pool=\"reports\",instance=\"a\"}} 0.95\n\
                         # TYPE exchange_rate_limit_used gauge\n\
                         exchange_rate_limit_used{{venue=\"binance\"}} 1200\n\
                         # TYPE drift_last_run_timestamp_seconds gauge\n\
                         drift_last_run_timestamp_seconds{{model=\"a\"}} {fresh}\n\
                         drift_last_run_timestamp_seconds{{model=\"b\"}} {stale:e}\n\
                         model_accuracy NaN\n\
                         this line is broken\n"
                    ),
                )
            }),
        )
        .route(
            "/om",
            get(|| async {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    "# TYPE orders counter\n\
                     # UNIT orders_latency seconds\n\
                     orders_total{venue=\"x\"} 17 1520879607.789\n\
                     orders_latency_sum 2.5\n\
                     # EOF\n",
                )
            }),
        )
        .route(
            "/secured",
            get(|headers: AxumHeaders| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {TOKEN}"))
                {
                    (StatusCode::OK, "up 1\n".to_string()).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        format!("bad token, you sent {headers:?}"),
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/inf",
            get(|| async { "backlog_seconds +Inf\nheadroom_bytes -Inf\n" }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "registry poisoned") }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn build(toml_text: &str) -> Result<Arc<dyn Check>, BuildError> {
    crate::testing::build("metrics", toml_text)
}

async fn run(toml_text: &str) -> Outcome {
    crate::testing::run("metrics", toml_text, Duration::from_secs(3)).await
}

use crate::testing::error;

#[tokio::test]
async fn a_selected_sample_is_asserted_with_warn_and_fail_thresholds() {
    let base = serve().await;
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"db_pool_usage_ratio\"\nlabels = {{ pool = \"orders\" }}\nassert = [{{ op = \"<\", value = 0.9 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_value, Some(0.42));
    assert_eq!(o.observed_unit.as_deref(), Some("ratio"));
    assert!(o.output.contains("value = 0.42 (< 0.9)"), "{}", o.output);

    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"exchange_rate_limit_used\"\nassert = [{{ op = \"<\", value = 1800 }}, {{ op = \"<\", value = 1000, impact = \"warn\" }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Warn, "{o:?}");
    assert!(
        error(&o).contains("value = 1200.0, expected < 1000 (impact warn)"),
        "{}",
        error(&o)
    );

    // Without labels both pools are judged; the failing one is named.
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"db_pool_usage_ratio\"\nassert = [{{ op = \"<\", value = 0.9 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains(
            "db_pool_usage_ratio{pool=\"reports\", instance=\"a\"}: value = 0.95, expected < 0.9"
        ),
        "{}",
        error(&o)
    );
    assert!(!error(&o).contains("orders"), "{}", error(&o));
}

#[tokio::test]
async fn missing_series_and_metrics_say_what_exists() {
    let base = serve().await;
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"db_pool_usage_ratio\"\nlabels = {{ pool = \"billing\" }}"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains(
            "no series has these labels; the endpoint has 2 series of db_pool_usage_ratio"
        ) && error(&o).contains("fix `labels`"),
        "{}",
        error(&o)
    );
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"db_pool_usage\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains(
            "the metric is not exposed (6 samples scraped); similar names: db_pool_usage_ratio"
        ) && error(&o).contains("1 malformed line, first: line 11"),
        "{}",
        error(&o)
    );
    // Presence alone passes, and NaN fails a numeric assertion.
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"model_accuracy\""
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"model_accuracy\"\nassert = [{{ op = \">\", value = 0.8 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("value is NaN"), "{}", error(&o));
}

#[tokio::test]
async fn max_age_judges_a_timestamp_valued_metric() {
    let base = serve().await;
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"drift_last_run_timestamp_seconds\"\nlabels = {{ model = \"a\" }}\nmax_age = \"10m\""
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("s"));
    let age = o.observed_value.unwrap();
    assert!((29.0..40.0).contains(&age), "{age}");

    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"drift_last_run_timestamp_seconds\"\nlabels = {{ model = \"b\" }}\nmax_age = \"1h\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("(2h ago), over max_age 1h; has the job stopped running?"),
        "{}",
        error(&o)
    );
    let o = run(&format!(
        "url = \"{base}/metrics\"\nmetric = \"db_pool_usage_ratio\"\nlabels = {{ pool = \"orders\" }}\nmax_age = \"1h\""
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("value 0.42 is not a Unix timestamp in seconds"),
        "{}",
        error(&o)
    );
}

#[tokio::test]
async fn openmetrics_counters_and_units() {
    let base = serve().await;
    let o = run(&format!(
        "url = \"{base}/om\"\nmetric = \"orders_total\"\nlabels = {{ venue = \"x\" }}\nassert = [{{ op = \">=\", value = 17 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.observed_unit.as_deref(), Some("count"));
    let o = run(&format!(
        "url = \"{base}/om\"\nmetric = \"orders_latency_sum\""
    ))
    .await;
    assert_eq!(o.observed_unit.as_deref(), Some("s"), "{o:?}");
}

#[tokio::test]
async fn http_failures_and_secrets() {
    let base = serve().await;
    let o = run(&format!("url = \"{base}/broken\"\nmetric = \"up\"")).await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("answered 500 (expected 2xx); the server failed: look at its logs; body starts: registry poisoned"),
        "{}",
        error(&o)
    );
    let o = run(&format!(
        "url = \"{base}/secured\"\nmetric = \"up\"\nsecret_headers = {{ Authorization = \"Bearer {TOKEN}\" }}"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    let o = run(&format!(
        "url = \"{base}/secured\"\nmetric = \"up\"\nsecret_headers = {{ Authorization = \"Bearer {TOKEN}-old\" }}"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(error(&o).contains("answered 401"), "{}", error(&o));
    assert!(!format!("{o:?}").contains(TOKEN), "{o:?}");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let check = build(&format!("url = \"http://{addr}/metrics\"\nmetric = \"up\"")).unwrap();
    assert_eq!(check.target_host().as_deref(), Some("127.0.0.1"));
    let o = check.run(CheckCx::new(Duration::from_secs(2))).await;
    assert!(
        error(&o).contains("scrape failed: connection refused; is the server running"),
        "{}",
        error(&o)
    );
}

#[test]
fn refuses_bad_config_naming_the_key() {
    let key = |text: &str| build(text).err().unwrap().key;
    assert_eq!(
        key("url = \"ftp://h/\"\nmetric = \"up\"").as_deref(),
        Some("url")
    );
    assert_eq!(
        key("url = \"http://h/\"\nmetric = \"up{job=\\\"x\\\"}\"").as_deref(),
        Some("metric")
    );
    assert_eq!(
        key("url = \"http://h/\"\nmetric = \"up\"\nassert = [{ path = \"$.x\", op = \"==\", value = 1 }]")
            .as_deref(),
        Some("assert")
    );
    assert_eq!(key("url = \"http://h/\"").as_deref(), Some("metric"));
    assert_eq!(
        key("url = \"http://h/\"\nmetric = \"up\"\nlabel = {}").as_deref(),
        Some("label")
    );
}

#[test]
fn the_schema_lists_every_key_and_a_config_builds_without_a_runtime() {
    let mut generator = schemars::SchemaGenerator::default();
    let schema = crate::kind("metrics").unwrap().schema(&mut generator);
    let text = serde_json::to_string(&schema).unwrap();
    let defs = serde_json::to_string(&generator.definitions()).unwrap();
    for key in [
        "url",
        "metric",
        "labels",
        "assert",
        "max_age",
        "headers",
        "secret_headers",
    ] {
        assert!(text.contains(key) || defs.contains(key), "{key} missing");
    }
    // As `vitalis validate` does: no tokio runtime here.
    let table: toml::Table =
        toml::from_str("url = \"https://h/metrics\"\nmetric = \"up\"").unwrap();
    assert!(
        crate::kind("metrics")
            .unwrap()
            .build(table, &crate::BuildCx::default())
            .is_ok()
    );
}

#[tokio::test]
async fn infinities_compare_beyond_every_number() {
    let base = serve().await;
    let o = run(&format!(
        "url = \"{base}/inf\"\nmetric = \"backlog_seconds\"\nassert = [{{ op = \"<\", value = 10 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        error(&o).contains("value = +Inf, expected < 10"),
        "{}",
        error(&o)
    );
    assert_eq!(
        o.observed_value, None,
        "an infinity is not an observed value"
    );
    let o = run(&format!(
        "url = \"{base}/inf\"\nmetric = \"headroom_bytes\"\nassert = [{{ op = \"<\", value = 0 }}]"
    ))
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.contains("value = -Inf (< 0)"), "{}", o.output);
}
