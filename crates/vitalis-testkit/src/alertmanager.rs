//! A real Alertmanager on a free loopback port, in its own temp dir, with
//! clustering off and a do-nothing receiver: tests post alerts to its v2 API
//! and read them back.
//!
//! ```no_run
//! use vitalis_testkit::alertmanager::Alertmanager;
//! let am = Alertmanager::start();
//! let url = am.url();          // http://127.0.0.1:<port>
//! let alerts = am.alerts();    // GET /api/v2/alerts, as JSON text
//! # let _ = (url, alerts);
//! ```
//!
//! * Program: Debian's `prometheus-alertmanager` package
//!   (`/usr/bin/prometheus-alertmanager`), started with
//!   `--cluster.listen-address=` (no gossip port).
//! * [`Alertmanager::start`] returns once `/-/ready` answers 200.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, Lifecycle, ServerProcess, http_get};

const INSTALL: &str = "prometheus-alertmanager";

/// How long the server may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running Alertmanager; stopped and removed when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    dir: TempDir,
    port: u16,
    process: Option<ServerProcess>,
}

impl Alertmanager {
    /// Starts a server whose only receiver does nothing.
    ///
    /// # Panics
    ///
    /// When Alertmanager is not installed (with `apt-get install
    /// prometheus-alertmanager`), or it does not come up (with its log).
    pub fn start() -> Alertmanager {
        let dir = tempfile::Builder::new()
            .prefix("vitalis-testkit-alertmanager-")
            .tempdir()
            .expect("temp dir");
        let mut am = Alertmanager {
            dir,
            port: 0,
            process: None,
        };
        let started = support::on_free_port("in use", |port| {
            am.port = port;
            am.launch()
        });
        if let Err(log) = started {
            panic!("alertmanager did not start on {}: {log}", am.url());
        }
        am
    }

    fn launch(&mut self) -> Result<(), String> {
        let program = support::require_program(
            &[
                "/usr/bin/prometheus-alertmanager",
                "prometheus-alertmanager",
                "alertmanager",
            ],
            INSTALL,
        );
        let config = "route:\n  receiver: 'null'\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: 'null'\n";
        let config_path = self.dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("alertmanager config");
        let port = self.port;
        let process = support::spawn_server(
            Command::new(program)
                .current_dir(self.dir.path())
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.path={}",
                    self.dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address="),
            &self.dir.path().join("alertmanager.log"),
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

    /// `GET /api/v2/alerts`: the alerts it holds (not resolved ones), as JSON text.
    ///
    /// # Panics
    ///
    /// When the server does not answer 200.
    pub fn alerts(&self) -> String {
        match http_get(self.port, "/api/v2/alerts") {
            Some((200, body)) => body,
            other => panic!(
                "alertmanager at {} answered {other:?}: {}",
                self.url(),
                self.log_tail(20)
            ),
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
        support::tail(&self.dir.path().join("alertmanager.log"), lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let mut am = Alertmanager::start();
        assert_eq!(am.alerts().trim(), "[]");
        am.stop();
        assert!(!support::accepts(am.port()));
    }
}
