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

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, ServerProcess};

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
        for attempt in 1..=3 {
            dns.port = support::free_port();
            match dns.launch() {
                Ok(()) => return dns,
                Err(log) if attempt < 3 && log.contains("in use") => continue,
                Err(log) => panic!("dnsmasq did not start on {}: {log}", dns.address()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn launch(&mut self) -> Result<(), String> {
        let program = support::require_program(&["/usr/sbin/dnsmasq", "dnsmasq"], INSTALL);
        let log_path = self.dir.path().join("dnsmasq.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("dnsmasq log");
        let child = Command::new(program)
            .current_dir(self.dir.path())
            .args(["--no-daemon", "--conf-file=/dev/null", "--log-queries"])
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("dnsmasq.pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
            ])
            .args(&self.records)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start dnsmasq");
        let mut process = ServerProcess::new(child, Signal::SIGTERM);
        let port = self.port;
        let ready = support::wait_until(READY_WITHIN, || {
            if process.has_exited() {
                return Some(false);
            }
            support::accepts(port).then_some(true)
        });
        match ready {
            Some(true) => {
                self.process = Some(process);
                Ok(())
            }
            _ => {
                process.stop_with(Signal::SIGKILL);
                Err(support::tail(&log_path, 20))
            }
        }
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
