//! A real DNS server (dnsmasq) on a free loopback port, in its own temp
//! dir, answering only from the records given to it.
//!
//! ```no_run
//! use vitalis_testkit::dnsmasq::Dnsmasq;
//! let dns = Dnsmasq::start(&[
//!     "--address=/ok.test/10.1.2.3",
//!     "--txt-record=ok.test,v=spf1 -all",
//!     "--address=/gone.test/", // NXDOMAIN
//! ]);
//! let server = dns.address(); // 127.0.0.1:<port>, UDP and TCP
//! # let _ = server;
//! ```
//!
//! * Program: Debian's `dnsmasq-base` (`/usr/sbin/dnsmasq`).
//! * No upstream servers, no `/etc/hosts`, no config file: a name it was not
//!   given is answered `REFUSED`.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, Lifecycle, ServerProcess};

const INSTALL: &str = "dnsmasq-base";

/// How long the server may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running dnsmasq; stopped and removed when dropped.
#[derive(Debug)]
pub struct Dnsmasq {
    dir: TempDir,
    port: u16,
    records: Vec<String>,
    process: Option<ServerProcess>,
}

impl Dnsmasq {
    /// Starts a server answering from `records` (dnsmasq options such as
    /// `--address=/name/ip`, `--txt-record=name,text`,
    /// `--mx-host=name,host,pref`, `--host-record=name,ip`,
    /// `--cname=alias,target`).
    ///
    /// # Panics
    ///
    /// When dnsmasq is not installed (with `apt-get install dnsmasq-base`),
    /// or it does not come up (with its log).
    pub fn start(records: &[&str]) -> Dnsmasq {
        let dir = tempfile::Builder::new()
            .prefix("vitalis-testkit-dnsmasq-")
            .tempdir()
            .expect("temp dir");
        let mut dns = Dnsmasq {
            dir,
            port: 0,
            records: records.iter().map(|r| r.to_string()).collect(),
            process: None,
        };
        let started = support::on_free_port("in use", |port| {
            dns.port = port;
            dns.launch()
        });
        if let Err(log) = started {
            panic!("dnsmasq did not start on {}: {log}", dns.address());
        }
        dns
    }

    fn launch(&mut self) -> Result<(), String> {
        let program = support::require_program(&["/usr/sbin/dnsmasq", "dnsmasq"], INSTALL);
        let port = self.port;
        let process = support::spawn_server(
            Command::new(program)
                .current_dir(self.dir.path())
                .args(["--no-daemon", "--conf-file=/dev/null", "--log-queries"])
                .arg(format!(
                    "--pid-file={}",
                    self.dir.path().join("dnsmasq.pid").display()
                ))
                .arg(format!("--port={port}"))
                .args([
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                ])
                .args(&self.records),
            &self.dir.path().join("dnsmasq.log"),
            Lifecycle {
                polite: Signal::SIGTERM,
                abort: Signal::SIGKILL,
                ready_within: READY_WITHIN,
            },
            || support::accepts(port),
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// `127.0.0.1:<port>` (UDP and TCP).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (the port then answers nothing).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// The last lines of its log (queries are logged).
    pub fn log_tail(&self, lines: usize) -> String {
        support::tail(&self.dir.path().join("dnsmasq.log"), lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_listens_and_stops() {
        let mut dns = Dnsmasq::start(&["--address=/ok.test/10.1.2.3"]);
        assert!(support::accepts(dns.port()));
        dns.stop();
        assert!(!support::accepts(dns.port()));
    }
}
