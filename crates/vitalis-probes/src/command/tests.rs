use std::path::PathBuf;
use std::time::Duration;

use vitalis_core::{CheckCx, Status};

use super::*;

/// A monitoring-plugins binary; `None` (skip) when missing, except under
/// `CI=true`, where a missing plugin fails the test with what to install.
fn plugin(name: &str) -> Option<PathBuf> {
    let path = Path::new(PLUGIN_DIR).join(name);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: apt-get install monitoring-plugins-basic monitoring-plugins-standard",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

fn build(argv: &[&str]) -> Arc<dyn Check> {
    let mut t = toml::Table::new();
    t.insert(
        "command".into(),
        toml::Value::Array(argv.iter().map(|a| (*a).into()).collect()),
    );
    crate::kind("command")
        .unwrap()
        .build(t, &BuildCx::default())
        .unwrap()
}

async fn run(argv: &[&str], timeout: Duration) -> Outcome {
    build(argv).run(CheckCx::new(timeout)).await
}

#[tokio::test]
async fn nagios_exit_codes_map_to_statuses() {
    let Some(dummy) = plugin("check_dummy") else {
        return;
    };
    let dummy = dummy.to_str().unwrap();
    for (code, status) in [
        ("0", Status::Pass),
        ("1", Status::Warn),
        ("2", Status::Fail),
        ("3", Status::Unknown),
    ] {
        let o = run(&[dummy, code, "from the test"], Duration::from_secs(5)).await;
        assert_eq!(o.status, status, "{code}: {o:?}");
        assert!(o.output.contains("from the test"), "{o:?}");
        assert_eq!(o.error.is_some(), status != Status::Pass, "{o:?}");
    }
    let o = run(&[dummy, "2", "disk on fire"], Duration::from_secs(5)).await;
    assert_eq!(o.output, "CRITICAL: disk on fire");
    assert_eq!(
        o.error.as_deref(),
        Some(format!("command {dummy} exited 2 (critical): CRITICAL: disk on fire").as_str())
    );
}

#[tokio::test]
async fn other_exit_codes_and_signals_are_unknown() {
    let o = run(&["sh", "-c", "echo weird; exit 7"], Duration::from_secs(5)).await;
    assert_eq!(o.status, Status::Unknown);
    let err = o.error.unwrap();
    assert!(err.contains("exited 7, not a Nagios plugin code"), "{err}");
    assert!(err.contains("weird"), "{err}");
    let o = run(&["sh", "-c", "kill -TERM $$"], Duration::from_secs(5)).await;
    assert_eq!(o.status, Status::Unknown);
    assert!(o.error.unwrap().contains("killed by signal 15"));
    let o = run(
        &["sh", "-c", "echo oops >&2; exit 2"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(o.status, Status::Fail);
    assert_eq!(o.output, "(no output; stderr: oops)");
}

#[tokio::test]
async fn check_tcp_perfdata_becomes_the_observed_value() {
    let Some(check_tcp) = plugin("check_tcp") else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accept = tokio::spawn(async move {
        // Accept whatever check_tcp opens, and hold it until the test ends.
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let o = run(
        &[check_tcp.to_str().unwrap(), "-H", "127.0.0.1", "-p", &port],
        Duration::from_secs(10),
    )
    .await;
    accept.abort();
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.starts_with("TCP OK"), "{o:?}");
    let time = &o.perfdata[0];
    assert_eq!((time.label.as_str(), time.unit.as_str()), ("time", "s"));
    assert!(time.value >= 0.0 && time.value < 10.0, "{time:?}");
    assert_eq!(time.max, Some(10.0));
    assert_eq!(o.observed_value, Some(time.value));
    assert_eq!(o.observed_unit.as_deref(), Some("s"));
}

#[tokio::test]
async fn check_disk_perfdata_and_critical() {
    let Some(check_disk) = plugin("check_disk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = check_disk.to_str().unwrap();
    let path = dir.path().to_str().unwrap();
    let o = run(
        &[disk, "-w", "0%", "-c", "0%", "-p", path],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(o.output.starts_with("DISK OK"), "{o:?}");
    let used = &o.perfdata[0];
    assert!(used.value > 0.0, "{used:?}");
    assert!(used.max.is_some_and(|m| m >= used.value), "{used:?}");
    assert!(used.warn.is_some() && used.crit.is_some(), "{used:?}");
    assert_eq!(o.observed_value, Some(used.value));
    // Demanding more free space than any disk has is critical.
    let o = run(
        &[disk, "-w", "100%", "-c", "100%", "-p", path],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(o.status, Status::Fail, "{o:?}");
    assert!(
        o.error
            .unwrap()
            .contains("exited 2 (critical): DISK CRITICAL")
    );
}

#[tokio::test]
async fn a_missing_program_fails_naming_it() {
    let o = run(
        &[
            "/usr/lib/nagios/plugins/check_nonexistent_xyz",
            "-H",
            "secret-arg",
        ],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("check_nonexistent_xyz") && err.contains("not found"),
        "{err}"
    );
    assert!(err.contains("apt-get install monitoring-plugins"), "{err}");
    assert!(!err.contains("secret-arg"), "arguments never show: {err}");
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("check_plain_file");
    std::fs::write(&not_executable, "#!/bin/sh\necho OK\n").unwrap();
    let o = run(&[not_executable.to_str().unwrap()], Duration::from_secs(5)).await;
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(err.contains("permission denied"), "{err}");
}

/// Processes of a process group that are still alive (not zombies).
fn live_members(pgid: i32) -> Vec<i32> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z" {
            alive.push(pid);
        }
    }
    alive
}

async fn assert_group_gone(pid_file: &Path) {
    let pgid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is immediate, but give the kernel a moment to tear processes down.
    for _ in 0..50 {
        if live_members(pgid).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("processes of group {pgid} leaked: {:?}", live_members(pgid));
}

#[tokio::test]
async fn the_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The shell starts a background `sleep 30` (same group) and waits on another.
    let script = format!("echo $$ > {}; sleep 30 & sleep 30", pid_file.display());
    let start = std::time::Instant::now();
    let o = run(&["sh", "-c", &script], Duration::from_secs(1)).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(o.status, Status::Fail);
    let err = o.error.unwrap();
    assert!(
        err.contains("no result within 1s") && err.contains("killed its process group"),
        "{err}"
    );
    assert_group_gone(&pid_file).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; sleep 30 & sleep 30", pid_file.display());
    let check = build(&["sh", "-c", &script]);
    // The engine drops the future at its timeout; do the same, long before
    // the check's own deadline, once the shell has started.
    let started = async {
        while !std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::select! {
        o = check.run(CheckCx::new(Duration::from_secs(60))) => panic!("finished: {o:?}"),
        () = started => {} // the run's future is dropped here
    }
    assert_group_gone(&pid_file).await;
}

#[tokio::test]
async fn leftover_children_holding_stdout_are_killed_after_exit() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The plugin answers and exits, but its background child keeps stdout open.
    let script = format!(
        "echo $$ > {}; echo 'OK - done | x=1'; sleep 30 & exit 0",
        pid_file.display()
    );
    let start = std::time::Instant::now();
    let o = run(&["sh", "-c", &script], Duration::from_secs(10)).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.output, "OK - done");
    assert_eq!(o.observed_value, Some(1.0));
    assert_group_gone(&pid_file).await;
}

#[test]
fn refuses_an_empty_command() {
    let mut t = toml::Table::new();
    t.insert("command".into(), toml::Value::Array(Vec::new()));
    let e = crate::kind("command")
        .unwrap()
        .build(t, &BuildCx::default())
        .err()
        .unwrap();
    assert_eq!(e.key.as_deref(), Some("command"));
    let mut t = toml::Table::new();
    t.insert("command".into(), "check_disk -w 10%".into());
    let e = crate::kind("command")
        .unwrap()
        .build(t, &BuildCx::default())
        .err()
        .unwrap();
    assert!(e.message.contains("expected a sequence"), "{e}");
    // A wrong type names no (bogus) key: the loader points at the line.
    assert_eq!(e.key, None, "{e}");
}
