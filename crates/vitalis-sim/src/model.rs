//! The model server: the KServe v2 inference protocol (REST), plus its own
//! `/metrics` (feature freshness, drift detection, accuracy monitor).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{Faults, Mode};
use crate::serve::now_ms;

const ID: &str = "model-server";
/// The model's name.
pub const MODEL: &str = "price-direction";
const VERSION: &str = "3";
/// Feature vector width.
const WIDTH: usize = 4;
const WEIGHTS: [f64; WIDTH] = [0.8, -0.4, 0.25, 0.1];

/// State the feature pipeline writes and the model server exposes.
#[derive(Debug, Default)]
pub(crate) struct Features {
    /// ms since the epoch of the pipeline's last successful run.
    pub(crate) last_update_ms: AtomicU64,
    /// Rows read by the last run.
    pub(crate) rows: AtomicU64,
}

struct Model {
    faults: Faults,
    features: Arc<Features>,
    drift_last_run_ms: AtomicU64,
    accuracy_last_eval_ms: AtomicU64,
    /// Accuracy × 10⁴.
    accuracy: AtomicU64,
    inferences: AtomicU64,
}

pub(crate) async fn start(
    faults: Faults,
    features: Arc<Features>,
) -> anyhow::Result<std::net::SocketAddr> {
    let m = Arc::new(Model {
        faults: faults.clone(),
        features,
        drift_last_run_ms: AtomicU64::new(now_ms()),
        accuracy_last_eval_ms: AtomicU64::new(now_ms()),
        accuracy: AtomicU64::new(9_120),
        inferences: AtomicU64::new(0),
    });
    // Drift detector and accuracy monitor: jobs that run every 500 ms.
    let m2 = m.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if m2.faults.is(ID, Mode::Down) {
                continue;
            }
            if !m2.faults.is(ID, Mode::DriftStalled) {
                m2.drift_last_run_ms.store(now_ms(), Ordering::Relaxed);
            }
            // Accuracy of the last window of predictions against outcomes.
            let acc = if m2.faults.is(ID, Mode::AccuracyDegraded) {
                5_400
            } else {
                9_050 + now_ms() % 150
            };
            m2.accuracy.store(acc, Ordering::Relaxed);
            m2.accuracy_last_eval_ms.store(now_ms(), Ordering::Relaxed);
        }
    });
    let router = Router::new()
        .route("/v2", get(metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/metrics", get(metrics))
        .with_state(m);
    let router = crate::serve::generic_faults(router, faults.clone(), ID);
    Ok(crate::serve::spawn(
        crate::serve::bind().await?,
        router,
        faults,
        ID,
        crate::serve::down,
    ))
}

fn error(code: StatusCode, msg: String) -> axum::response::Response {
    (code, Json(json!({"error": msg}))).into_response()
}

fn loaded(m: &Model) -> bool {
    !m.faults.is(ID, Mode::ModelUnloaded)
}

async fn metadata() -> Json<Value> {
    Json(json!({"name": "vitalis-sim-model-server", "version": "2", "extensions": []}))
}

async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

async fn ready(State(m): State<Arc<Model>>) -> axum::response::Response {
    if loaded(&m) {
        Json(json!({"ready": true})).into_response()
    } else {
        (StatusCode::BAD_REQUEST, Json(json!({"ready": false}))).into_response()
    }
}

fn unknown_model(name: &str) -> axum::response::Response {
    error(
        StatusCode::NOT_FOUND,
        format!("Model with name {name} does not exist."),
    )
}

async fn model_metadata(
    State(m): State<Arc<Model>>,
    Path(name): Path<String>,
) -> axum::response::Response {
    if name != MODEL {
        return unknown_model(&name);
    }
    let _ = m;
    Json(json!({
        "name": MODEL, "versions": [VERSION], "platform": "vitalis-sim",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, WIDTH]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
    }))
    .into_response()
}

async fn model_ready(
    State(m): State<Arc<Model>>,
    Path(name): Path<String>,
) -> axum::response::Response {
    if name != MODEL {
        return unknown_model(&name);
    }
    if loaded(&m) {
        Json(json!({"name": MODEL, "ready": true})).into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"name": MODEL, "ready": false, "error": format!("Model with name {MODEL} is not ready.")})),
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<Tensor>,
}

#[derive(Debug, Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Vec<Value>,
}

async fn infer(
    State(m): State<Arc<Model>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if name != MODEL {
        return unknown_model(&name);
    }
    if !loaded(&m) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("Model with name {MODEL} is not ready."),
        );
    }
    let req: InferRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid inference request: {e}"),
            );
        }
    };
    let Some(t) = req.inputs.iter().find(|t| t.name == "features") else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing input tensor 'features'".into(),
        );
    };
    if t.datatype != "FP32" && t.datatype != "FP64" {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "input 'features' has datatype {}, expected FP32",
                t.datatype
            ),
        );
    }
    let [rows, cols] = t.shape[..] else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "input 'features' has shape {:?}, expected [N, {WIDTH}]",
                t.shape
            ),
        );
    };
    if cols != WIDTH as i64 || rows < 1 || (rows * cols) as usize != t.data.len() {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "input 'features' has shape {:?} and {} values, expected [N, {WIDTH}] with N×{WIDTH} values",
                t.shape,
                t.data.len()
            ),
        );
    }
    let mut data = Vec::with_capacity(t.data.len());
    for v in &t.data {
        match v.as_f64() {
            Some(x) => data.push(x),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("input 'features' holds a non-number: {v}"),
                );
            }
        }
    }
    let out: Vec<f64> = data
        .chunks(WIDTH)
        .map(|row| {
            let z: f64 = row.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum();
            ((1.0 / (1.0 + (-z).exp())) * 1e6).round() / 1e6
        })
        .collect();
    m.inferences.fetch_add(1, Ordering::Relaxed);
    let mut resp = json!({
        "model_name": MODEL,
        "model_version": VERSION,
        "outputs": [{"name": "probability", "shape": [rows, 1], "datatype": "FP32", "data": out}],
    });
    if let Some(id) = req.id {
        resp["id"] = json!(id);
    }
    Json(resp).into_response()
}

async fn metrics(State(m): State<Arc<Model>>) -> impl IntoResponse {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let text = format!(
        "# HELP feature_store_last_update_timestamp_seconds When the feature pipeline last wrote features.\n\
         # TYPE feature_store_last_update_timestamp_seconds gauge\n\
         feature_store_last_update_timestamp_seconds {:.3}\n\
         # HELP feature_store_rows Rows read by the feature pipeline's last run.\n\
         # TYPE feature_store_rows gauge\n\
         feature_store_rows {}\n\
         # HELP model_drift_last_run_timestamp_seconds When drift detection last ran.\n\
         # TYPE model_drift_last_run_timestamp_seconds gauge\n\
         model_drift_last_run_timestamp_seconds{{model=\"{MODEL}\"}} {:.3}\n\
         # HELP model_accuracy_ratio Accuracy over the last evaluation window.\n\
         # TYPE model_accuracy_ratio gauge\n\
         model_accuracy_ratio{{model=\"{MODEL}\"}} {:.4}\n\
         # HELP model_accuracy_last_evaluation_timestamp_seconds When the accuracy monitor last evaluated.\n\
         # TYPE model_accuracy_last_evaluation_timestamp_seconds gauge\n\
         model_accuracy_last_evaluation_timestamp_seconds{{model=\"{MODEL}\"}} {:.3}\n\
         # HELP model_inference_requests_total Inference requests served.\n\
         # TYPE model_inference_requests_total counter\n\
         model_inference_requests_total{{model=\"{MODEL}\"}} {}\n",
        secs(m.features.last_update_ms.load(Ordering::Relaxed)),
        m.features.rows.load(Ordering::Relaxed),
        secs(m.drift_last_run_ms.load(Ordering::Relaxed)),
        m.accuracy.load(Ordering::Relaxed) as f64 / 10_000.0,
        secs(m.accuracy_last_eval_ms.load(Ordering::Relaxed)),
        m.inferences.load(Ordering::Relaxed),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}
