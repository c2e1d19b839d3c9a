//! `command`: runs a program (no shell) and reads its verdict with the
//! Nagios plugin protocol.
//!
//! * exit 0/1/2/3 → `pass`/`warn`/`fail`/`unknown`; any other exit code, or
//!   death by a signal, → `unknown` with a diagnostic;
//! * the first line of stdout (its text before `|`) is the output;
//! * perfdata (`'label'=value[UOM];warn;crit;min;max`, on the first line and
//!   after a `|` in the long output) becomes the result's `perfdata`, the
//!   first item its `observed_value`/`observed_unit`.
//!
//! The program runs in its own process group. At the check's deadline —
//! or when the engine drops the run — the whole group is killed with
//! `SIGKILL`, so a plugin and anything it started never outlive the check.
//! The group is also killed when the plugin exits, in case it left children
//! behind.
//!
//! Only the program's path appears in diagnostics, never its arguments
//! (which may carry passwords).

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::Notify;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Status};

use crate::{BuildCx, BuildError, ProbeConfig};

pub mod nagios;

#[cfg(test)]
mod tests;

/// Where Debian's monitoring-plugins live, for hints.
const PLUGIN_DIR: &str = "/usr/lib/nagios/plugins";

/// How long the output pipes may stay open after the plugin exited
/// (held by something it started) before its process group is killed.
const LINGER: Duration = Duration::from_millis(250);

/// At most this much of stdout and of stderr is kept (the rest is read and dropped).
const MAX_CAPTURE: usize = 64 * 1024;

/// Runs a program and judges it by the Nagios plugin protocol.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, e.g.
    /// `["/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-c", "5%", "-p", "/"]`.
    /// No shell is involved: write `["sh", "-c", "…"]` to use one.
    pub command: Vec<String>,
}

impl ProbeConfig for CommandConfig {
    const NAME: &'static str = "command";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        match self.command.first() {
            None => Err(BuildError::key(
                "command",
                "command is empty; give the program and its arguments, e.g. [\"/usr/lib/nagios/plugins/check_dummy\", \"0\"]",
            )),
            Some(p) if p.trim().is_empty() => Err(BuildError::key(
                "command",
                "the program (first element of command) is empty",
            )),
            Some(_) => Ok(Arc::new(self)),
        }
    }
}

impl Check for CommandConfig {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(run(&self.command, cx))
    }
}

/// Kills a process group when dropped: on return, on timeout, and when the
/// engine drops the run's future.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (nothing left in the group) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

async fn run(argv: &[String], cx: CheckCx) -> Outcome {
    let program = argv[0].as_str();
    let mut command = Command::new(program);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return spawn_failure(program, &e),
    };
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let _guard = GroupGuard { pgid };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let done_reading = Notify::new();
    let reads = async {
        let captured = tokio::join!(capture(stdout), capture(stderr));
        done_reading.notify_one();
        captured
    };
    let wait = async {
        let status = child.wait().await;
        if status.is_ok() {
            tokio::select! {
                _ = done_reading.notified() => {}
                // Something the plugin started still holds its stdout: end it.
                _ = tokio::time::sleep(LINGER) => {
                    if let Some(pgid) = pgid {
                        let _ = killpg(pgid, Signal::SIGKILL);
                    }
                }
            }
        }
        status
    };
    let work = async {
        let ((out, err), status) = tokio::join!(reads, wait);
        (out, err, status)
    };
    match tokio::time::timeout_at(cx.deadline(), work).await {
        Err(_) => Outcome::fail(format!(
            "command {program}: no result within {} (the check's timeout); killed its process group. Is it waiting on a slow target, or should `timeout` be raised?",
            vitalis_core::duration::format(cx.timeout())
        )),
        Ok((_, _, Err(e))) => {
            Outcome::unknown(format!("command {program}: could not wait for it: {e}"))
        }
        Ok((out, err, Ok(status))) => judge(program, &out, &err, status),
    }
}

/// Reads a pipe to its end, keeping at most [`MAX_CAPTURE`] bytes.
async fn capture(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn spawn_failure(program: &str, e: &std::io::Error) -> Outcome {
    let message = match e.kind() {
        ErrorKind::NotFound => {
            let bare = !program.contains('/');
            let in_plugin_dir = Path::new(PLUGIN_DIR).join(program);
            if bare && in_plugin_dir.exists() {
                format!(
                    "command {program}: program not found on PATH; use the full path {}",
                    in_plugin_dir.display()
                )
            } else {
                format!(
                    "command {program}: program not found (missing); install it (Nagios plugins: apt-get install monitoring-plugins-basic monitoring-plugins-standard) or fix the path"
                )
            }
        }
        ErrorKind::PermissionDenied => format!(
            "command {program}: permission denied; is it executable (chmod +x) and not on a noexec mount?"
        ),
        _ => format!("command {program}: could not start it: {e}"),
    };
    Outcome::fail(message)
}

/// The plugin's verdict from its exit status and output.
fn judge(program: &str, stdout: &str, stderr: &str, status: std::process::ExitStatus) -> Outcome {
    let parsed = nagios::parse_output(stdout);
    let stderr_line = stderr.lines().find(|l| !l.trim().is_empty()).map(str::trim);
    let text = match (parsed.text.is_empty(), stderr_line) {
        (false, _) => parsed.text.clone(),
        (true, Some(e)) => format!("(no output; stderr: {e})"),
        (true, None) => "(no output)".to_string(),
    };
    let (verdict, word) = match status.code() {
        Some(0) => (Status::Pass, "ok"),
        Some(1) => (Status::Warn, "warning"),
        Some(2) => (Status::Fail, "critical"),
        Some(3) => (Status::Unknown, "unknown"),
        Some(_) | None => (Status::Unknown, ""),
    };
    let mut outcome = match (status.code(), verdict) {
        (Some(_), Status::Pass) => Outcome::pass(text),
        (Some(code), Status::Unknown) if word.is_empty() => Outcome::unknown(format!(
            "command {program} exited {code}, not a Nagios plugin code (0 ok, 1 warning, 2 critical, 3 unknown): {text}"
        )),
        (Some(code), _) => {
            let mut o = Outcome::new(verdict, text.clone());
            o.error = Some(format!("command {program} exited {code} ({word}): {text}"));
            o
        }
        (None, _) => Outcome::unknown(format!(
            "command {program} was killed by signal {}: {text}",
            status.signal().unwrap_or(0)
        )),
    };
    if let Some(first) = parsed.perfdata.first() {
        outcome.observed_value = Some(first.value);
        outcome.observed_unit = nagios::observed_unit(&first.unit);
    }
    outcome.perfdata = parsed.perfdata;
    outcome
}
