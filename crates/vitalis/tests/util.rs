//! Test support: temp dirs, the binary, a daemon process, local targets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A temp dir holding a test's config files.
pub(crate) struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub(crate) fn new() -> Self {
        TestDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Runs `vitalis ARGS` in this dir to completion.
    pub(crate) fn vitalis(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_vitalis"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run vitalis")
    }
}

/// The Nagios plugin directory; fails under CI when missing.
pub(crate) fn plugin(name: &str) -> String {
    let p = format!("/usr/lib/nagios/plugins/{name}");
    if !Path::new(&p).exists() {
        panic!(
            "{p} is missing: apt-get install monitoring-plugins-basic monitoring-plugins-standard (scripts/test does this)"
        );
    }
    p
}

/// A running `vitalis serve`.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Daemon {
    pub(crate) fn start(dir: &TestDir, config: &str) -> Self {
        Self::spawn(
            dir,
            &[
                "serve", "--config", config, "--drain", "1s", "--log", "info",
            ],
        )
        .0
    }

    /// Starts `vitalis demo --listen 127.0.0.1:0 --data-dir <dir>/demo ARGS`;
    /// returns it and its stdout lines (the URLs) up to "Ctrl-C …".
    pub(crate) fn start_demo(dir: &TestDir, args: &[&str]) -> (Self, Vec<String>) {
        let data = dir.path("demo").display().to_string();
        let mut all = vec!["demo", "--listen", "127.0.0.1:0", "--data-dir", &data];
        all.extend_from_slice(args);
        let (mut d, mut stdout) = Self::spawn(dir, &all);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read stdout");
            assert!(n > 0, "vitalis demo closed stdout; log: {}", d.log());
            if line.starts_with("Ctrl-C") {
                break;
            }
            lines.push(line.trim().to_string());
        }
        d.stdout = Some(stdout);
        (d, lines)
    }

    fn spawn(dir: &TestDir, args: &[&str]) -> (Self, BufReader<std::process::ChildStdout>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitalis"))
            .args(args)
            .current_dir(dir.dir.path())
            .env("VITALIS_TEST_TOKEN", "ops-token")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vitalis serve");
        let log = Arc::new(Mutex::new(String::new()));
        let l2 = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "vitalis did not start: {line:?}; log: {}",
                    log.lock().unwrap()
                )
            })
            .to_string();
        (
            Daemon {
                child,
                base,
                log,
                stdout: None,
            },
            stdout,
        )
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the daemon's log holds `text`.
    pub(crate) async fn logged(&self, text: &str) {
        eventually(Duration::from_secs(5), text, async || {
            self.log().contains(text).then_some(())
        })
        .await;
    }

    /// GET `path` on the daemon without a token, like [`get_json`].
    pub(crate) async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&format!("{}{path}", self.base), None).await
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub(crate) fn wait(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP server on 127.0.0.1:0 answering `GET /status` with the code the
/// test sets and a JSON body `{"positions":{"age_ms": N}}`.
pub(crate) struct HttpTarget {
    pub(crate) addr: String,
    pub(crate) code: Arc<AtomicU16>,
}

impl HttpTarget {
    pub(crate) async fn start() -> Self {
        let code = Arc::new(AtomicU16::new(200));
        let c2 = code.clone();
        let app = axum::Router::new().route(
            "/status",
            axum::routing::get(move || {
                let c = c2.load(Ordering::SeqCst);
                async move {
                    (
                        axum::http::StatusCode::from_u16(c).unwrap(),
                        axum::Json(serde_json::json!({"positions": {"age_ms": 120}})),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HttpTarget { addr, code }
    }
}

/// Polls `f` until it returns `Some`, or panics after `within`.
pub(crate) async fn eventually<T>(
    within: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// GET `url` with an optional token: (status, JSON body or Null).
pub(crate) async fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}
