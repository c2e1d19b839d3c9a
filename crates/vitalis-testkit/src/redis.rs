//! A real Redis server on a free loopback port, in its own temp dir.
//!
//! ```no_run
//! use vitalis_testkit::redis::Redis;
//! let mut redis = Redis::with_password("s3cret");
//! redis.cli(&["SET", "last_tick", "42"]);
//! let url = redis.url();     // redis://:s3cret@127.0.0.1:<port>/0
//! redis.stop();
//! redis.start_again();       // same port, empty data
//! # let _ = url;
//! ```
//!
//! Started as `redis-server --port N --bind 127.0.0.1 --save '' --appendonly no`
//! (nothing is persisted), with `DEBUG` allowed from loopback (Redis 7+) so
//! tests can make it slow (`DEBUG SLEEP 0.5`). Needs Debian's `redis-server`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, Lifecycle, ServerProcess};

const INSTALL: &str = "redis-server";

/// How long a server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// `redis-server` and its major version.
fn program() -> &'static (PathBuf, u32) {
    static PROGRAM: OnceLock<(PathBuf, u32)> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let path = support::require_program(&["/usr/bin/redis-server", "redis-server"], INSTALL);
        let version = support::run(Command::new(&path).arg("--version"));
        // "Redis server v=7.0.15 sha=…"
        let major = version
            .split("v=")
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        (path, major)
    })
}

/// A running (or stopped) Redis server; stopped and removed when dropped.
#[derive(Debug)]
pub struct Redis {
    dir: TempDir,
    port: u16,
    password: Option<String>,
    process: Option<ServerProcess>,
}

impl Redis {
    /// Starts a server without a password.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed (with `apt-get install
    /// redis-server`), or it does not come up (with its log).
    pub fn start() -> Redis {
        Self::launch_new(None)
    }

    /// Starts a server that wants `password` (`--requirepass`).
    pub fn with_password(password: &str) -> Redis {
        Self::launch_new(Some(password.to_string()))
    }

    fn launch_new(password: Option<String>) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("vitalis-testkit-redis-")
            .tempdir()
            .expect("temp dir");
        let mut redis = Redis {
            dir,
            port: 0,
            password,
            process: None,
        };
        let started = support::on_free_port("in use", |port| {
            redis.port = port;
            redis.launch()
        });
        if let Err(log) = started {
            panic!("redis-server did not start on {}: {log}", redis.address());
        }
        redis
    }

    fn launch(&mut self) -> Result<(), String> {
        let (path, major) = program();
        let mut command = Command::new(path);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--unixsocket", "", "--dir"])
            .arg(self.dir.path());
        if *major >= 7 {
            command.args(["--enable-debug-command", "local"]);
        }
        if let Some(pw) = &self.password {
            command.args(["--requirepass", pw]);
        }
        let port = self.port;
        let process = support::spawn_server(
            &mut command,
            &self.dir.path().join("redis.log"),
            Lifecycle {
                polite: Signal::SIGTERM,
                abort: Signal::SIGKILL,
                ready_within: READY_WITHIN,
            },
            || answers_ping(port),
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>/0`, or `redis://:<password>@…` with a password.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => self.url_with_password(pw),
            None => format!("redis://{}/0", self.address()),
        }
    }

    /// A URL with `password` (to test bad credentials).
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@{}/0", self.address())
    }

    /// Runs a command with `redis-cli` (authenticated) and returns its output.
    ///
    /// # Panics
    ///
    /// When `redis-cli` fails or the reply is an error.
    pub fn cli(&self, args: &[&str]) -> String {
        let cli = support::require_program(&["/usr/bin/redis-cli", "redis-cli"], "redis-tools");
        let mut command = Command::new(cli);
        command
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string());
        if let Some(pw) = &self.password {
            command.env("REDISCLI_AUTH", pw);
        }
        let out = support::run(command.args(args).stdin(Stdio::null()));
        assert!(
            !out.starts_with("ERR") && !out.starts_with("WRONGTYPE") && !out.starts_with("NOAUTH"),
            "redis-cli {args:?}: {out}"
        );
        out.trim_end().to_string()
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| !p.has_exited())
    }

    /// Stops the server (`SIGTERM`); clients are disconnected.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the stopped server again on the same port (empty: nothing is persisted).
    ///
    /// # Panics
    ///
    /// When it does not come up.
    pub fn start_again(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(log) = self.launch() {
            panic!(
                "redis-server did not start again on {}: {log}",
                self.address()
            );
        }
    }

    /// The end of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        support::tail(&self.dir.path().join("redis.log"), lines)
    }
}

/// Whether a Redis server answers `PING` on the port (`-NOAUTH` counts:
/// it is up and wants a password; `-LOADING` does not).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    if BufReader::new(stream).read_line(&mut line).is_err() {
        return false;
    }
    line.starts_with("+PONG") || line.starts_with("-NOAUTH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_stops_and_starts_again() {
        let mut r = Redis::start();
        assert_eq!(r.cli(&["PING"]), "PONG");
        r.cli(&["SET", "k", "v"]);
        assert_eq!(r.cli(&["GET", "k"]), "v");
        r.stop();
        assert!(!r.is_running());
        assert!(!support::accepts(r.port()));
        r.start_again();
        assert_eq!(r.cli(&["GET", "k"]), "", "nothing is persisted");
    }

    #[test]
    fn a_password_is_required_when_set() {
        let r = Redis::with_password("t0p-secret");
        assert_eq!(r.cli(&["PING"]), "PONG");
        assert_eq!(r.url(), format!("redis://:t0p-secret@{}/0", r.address()));
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &r.port().to_string(), "PING"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("NOAUTH"),
            "{out:?}"
        );
    }
}
