//! What every server module needs: finding its program, a free loopback
//! port, starting it and waiting until it is ready, and a child process
//! that is stopped when dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Whether this is a CI run (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The first of `candidates` that exists (absolute paths are tried as they
/// are, bare names on `PATH`).
///
/// # Panics
///
/// When none exists, with what to install (`apt-get install {package}`):
/// under `CI=true` and elsewhere alike, so that no test passes silently
/// for lack of a server.
pub fn require_program(candidates: &[&str], package: &str) -> PathBuf {
    find_program(candidates).unwrap_or_else(|| {
        panic!(
            "{} not found; this test starts a real server: apt-get install {package}{}",
            candidates.join(" or "),
            if in_ci() { " (CI=true)" } else { "" }
        )
    })
}

/// The first of `candidates` that exists, or `None`.
pub fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let path = Path::new(c);
        if path.is_absolute() {
            if path.is_file() {
                return Some(path.to_path_buf());
            }
            continue;
        }
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path_var) {
            let full = dir.join(c);
            if full.is_file() {
                return Some(full);
            }
        }
    }
    None
}

/// A loopback port nothing listens on right now (the OS picks it; another
/// process could still take it before the server binds, so server modules
/// retry with a new port when binding fails).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Launches a server on a free port: calls `launch` with a new port up to
/// three times, again only while the failure's log says the port was taken
/// meanwhile (contains `port_taken`, e.g. `"in use"`). `Err` is the last
/// failure's log.
pub fn on_free_port(
    port_taken: &str,
    mut launch: impl FnMut(u16) -> Result<(), String>,
) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match launch(free_port()) {
            Err(log) if attempt < 3 && log.contains(port_taken) => attempt += 1,
            done => return done,
        }
    }
}

/// How a server started by [`spawn_server`] is stopped, and how long it
/// may take to be ready.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// The signal that stops it when it is dropped (e.g. `SIGTERM`).
    pub polite: Signal,
    /// The signal that ends it when it does not get ready (e.g. `SIGKILL`).
    pub abort: Signal,
    /// How long it may take to be ready.
    pub ready_within: Duration,
}

/// Spawns a server: `command` with stdin closed and stdout and stderr
/// appended to `log`, then polls `ready` (while the process runs) for at
/// most `lifecycle.ready_within`. Ready: the running process, stopped
/// with `lifecycle.polite` when dropped. Exited or not ready in time: it
/// is ended with `lifecycle.abort`, and `Err` holds the last 20 lines of
/// `log`.
///
/// # Panics
///
/// When the log cannot be opened or the program cannot be started.
pub fn spawn_server(
    command: &mut Command,
    log: &Path,
    lifecycle: Lifecycle,
    mut ready: impl FnMut() -> bool,
) -> Result<ServerProcess, String> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log fd"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", command.get_program().display()));
    let mut process = ServerProcess::new(child, lifecycle.polite);
    let ready = wait_until(lifecycle.ready_within, || {
        if process.has_exited() {
            return Some(false);
        }
        ready().then_some(true)
    });
    if ready == Some(true) {
        Ok(process)
    } else {
        process.stop_with(lifecycle.abort);
        Err(tail(log, 20))
    }
}

/// A tiny HTTP/1.0 GET on `127.0.0.1:port`: `(status, body)`, or `None`
/// when it does not answer.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `ready` every 20 ms until it returns `Some`, for at most `within`.
/// `None` when it never did.
pub fn wait_until<T>(within: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(t) = ready() {
            return Some(t);
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The last `lines` lines of a (log) file, for panic messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command to its end and returns its stdout.
///
/// # Panics
///
/// When it cannot start or exits non-zero, with its stderr.
pub fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server process that is stopped when dropped: first `polite` (e.g.
/// `SIGTERM`), then `SIGKILL` when it has not exited within 5 s.
#[derive(Debug)]
pub struct ServerProcess {
    child: Option<Child>,
    polite: Signal,
}

impl ServerProcess {
    /// Wraps a started child.
    pub fn new(child: Child, polite: Signal) -> Self {
        ServerProcess {
            child: Some(child),
            polite,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has exited (and is reaped).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => !matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Sends `signal` and waits for the exit (at most 5 s, then `SIGKILL`).
    pub fn stop_with(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        let exited = wait_until(Duration::from_secs(5), || {
            (!matches!(child.try_wait(), Ok(None))).then_some(())
        });
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with its polite signal.
    pub fn stop(&mut self) {
        let polite = self.polite;
        self.stop_with(polite);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_panics_with_what_to_install() {
        let e = std::panic::catch_unwind(|| {
            require_program(&["/nonexistent/vitalis-no-such-server"], "no-such-package")
        })
        .unwrap_err();
        let text = e.downcast_ref::<String>().unwrap();
        assert!(text.contains("apt-get install no-such-package"), "{text}");
        assert!(find_program(&["sh"]).is_some());
    }

    #[test]
    fn free_ports_are_free_and_processes_stop_on_drop() {
        let port = free_port();
        assert!(!accepts(port));
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let mut p = ServerProcess::new(child, Signal::SIGTERM);
        assert_eq!(p.pid(), Some(pid));
        assert!(!p.has_exited());
        drop(p);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
