//! A real Prometheus server on a free loopback port, in its own temp dir,
//! scraping itself (and any given targets) every second.
//!
//! ```no_run
//! use vitalis_testkit::prometheus::Prometheus;
//! // Also scrape a test's own metrics server as job "app".
//! let prom = Prometheus::start(&["127.0.0.1:9187"]);
//! let url = prom.url();     // http://127.0.0.1:<port>
//! prom.wait_for_samples("up{job=\"app\"}");
//! # let _ = url;
//! ```
//!
//! * Program: Debian's `prometheus` package (`/usr/bin/prometheus`).
//! * [`Prometheus::start`] returns once the server is ready and its first
//!   scrape of itself has landed (`up{job="prometheus"}` has a sample), so
//!   queries see data.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, Lifecycle, ServerProcess, http_get};

const INSTALL: &str = "prometheus";

/// How long the server may take to be ready, and the first scrape to land.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running Prometheus; stopped and removed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    dir: TempDir,
    port: u16,
    process: Option<ServerProcess>,
}

impl Prometheus {
    /// Starts a server that scrapes itself (job `prometheus`) and `targets`
    /// (`host:port`, path `/metrics`, job `app`) every second, and waits
    /// for its first scrape of itself.
    ///
    /// # Panics
    ///
    /// When Prometheus is not installed (with `apt-get install prometheus`),
    /// or it does not come up (with its log).
    pub fn start(targets: &[&str]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("vitalis-testkit-prometheus-")
            .tempdir()
            .expect("temp dir");
        let mut prom = Prometheus {
            dir,
            port: 0,
            process: None,
        };
        let started = support::on_free_port("in use", |port| {
            prom.port = port;
            prom.launch(targets)
        });
        if let Err(log) = started {
            panic!("prometheus did not start on {}: {log}", prom.url());
        }
        prom.wait_for_samples("up{job=\"prometheus\"}");
        prom
    }

    fn launch(&mut self, targets: &[&str]) -> Result<(), String> {
        let program = support::require_program(&["/usr/bin/prometheus", "prometheus"], INSTALL);
        let quoted = |t: &[&str]| {
            t.iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: [{}]\n",
            quoted(&[&format!("127.0.0.1:{}", self.port)])
        );
        if !targets.is_empty() {
            config.push_str(&format!(
                "  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
                quoted(targets)
            ));
        }
        let config_path = self.dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus config");
        let port = self.port;
        let process = support::spawn_server(
            Command::new(program)
                .current_dir(self.dir.path())
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
            &self.dir.path().join("prometheus.log"),
            Lifecycle {
                polite: Signal::SIGTERM,
                abort: Signal::SIGKILL,
                ready_within: READY_WITHIN,
            },
            || http_get(port, "/-/ready").is_some_and(|(status, _)| status == 200),
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until the instant query `query` returns a sample.
    ///
    /// # Panics
    ///
    /// When it still returns none after a minute (with the server's log).
    pub fn wait_for_samples(&self, query: &str) {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let found = support::wait_until(READY_WITHIN, || {
            http_get(self.port, &path)
                .filter(|(status, body)| *status == 200 && body.contains("\"value\""))
                .map(|_| ())
        });
        if found.is_none() {
            panic!(
                "prometheus at {} has no sample for {query} after {}s: {}",
                self.url(),
                READY_WITHIN.as_secs(),
                self.log_tail(20)
            );
        }
    }

    /// Stops the server (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        support::tail(&self.dir.path().join("prometheus.log"), lines)
    }
}

/// Percent-encodes a query parameter value.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_scrapes_itself_and_stops() {
        let mut prom = Prometheus::start(&[]);
        let (status, body) = http_get(prom.port(), "/api/v1/query?query=up").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("\"job\":\"prometheus\""), "{body}");
        prom.stop();
        assert!(!support::accepts(prom.port()));
        assert_eq!(
            percent_encode("up{job=\"a b\"}"),
            "up%7Bjob%3D%22a%20b%22%7D"
        );
    }
}
