//! `vitalis check`: every check once, a table or JSON, and an exit code.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::json;
use vitalis_config::LoadOptions;
use vitalis_core::aggregate::aggregate;
use vitalis_core::{Snapshot, Status, View};

/// Output format of `vitalis check`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// An aligned table, root causes last.
    Text,
    /// One JSON document.
    Json,
}

/// Whether `vitalis check` skips check `k`: push checks (nothing to run) and
/// checks outside their active windows.
fn skipped(snap: &Snapshot, k: usize) -> Option<&'static str> {
    if &*snap.topology.checks[k].kind == "heartbeat" {
        Some("push check: nothing to run once")
    } else if !snap.checks[k].active {
        Some("outside its active windows")
    } else {
        None
    }
}

pub(crate) async fn run(path: PathBuf, format: Format) -> anyhow::Result<u8> {
    let cfg = vitalis_config::load(&path, &LoadOptions::new())?;
    let engine = crate::daemon::engine_for(&cfg)?;
    // Every check's first run starts within a second; each is bounded by its
    // timeout, and a run that blocks past it is reported by the watchdog.
    let longest = engine
        .snapshot()
        .checks
        .iter()
        .map(|c| c.timeout)
        .max()
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + longest + Duration::from_millis(1500);
    let mut published = engine.watch_snapshots();
    let snap = loop {
        let snap = engine.snapshot();
        let done =
            (0..snap.checks.len()).all(|k| skipped(&snap, k).is_some() || snap.checks[k].runs >= 1);
        if done || tokio::time::Instant::now() >= deadline {
            break snap;
        }
        let _ = tokio::time::timeout_at(deadline, published.changed()).await;
    };
    engine.shutdown();
    let topo = &snap.topology;
    let agg = aggregate(topo, |k| {
        if skipped(&snap, k).is_some() {
            None
        } else {
            snap.checks[k].counted(View::All, topo.checks[k].level)
        }
    });
    let code = match agg.system {
        Status::Pass => 0,
        Status::Warn | Status::Unknown => 1,
        Status::Fail => 2,
    };
    let rows: Vec<_> = (0..topo.checks.len())
        .map(|k| {
            let info = &topo.checks[k];
            let c = &snap.checks[k];
            let r = c.result.as_deref();
            let skip = skipped(&snap, k);
            json!({
                "component": &*topo.components[info.component].info.id,
                "check": &*info.name,
                "level": info.level.as_str(),
                "type": &*info.kind,
                "status": if skip.is_some() { "skipped" } else { c.status.as_str() },
                "duration_ms": r.map(|r| r.duration.as_secs_f64() * 1000.0),
                "observed_value": r.and_then(|r| r.observed_value),
                "observed_unit": r.and_then(|r| r.observed_unit.as_deref()),
                "output": skip.map(str::to_string).or_else(|| r.map(|r| r.output.clone())).unwrap_or_else(|| "no result".into()),
                "error": r.and_then(|r| r.error.as_deref()),
            })
        })
        .collect();
    let roots: Vec<_> = agg
        .root_causes
        .iter()
        .map(|&r| {
            let impacts: Vec<&str> = agg
                .impacts(r)
                .map(|i| &*topo.components[i].info.id)
                .collect();
            json!({"component": &*topo.components[r].info.id, "impacts": impacts})
        })
        .collect();
    match format {
        Format::Json => {
            let doc = json!({"status": agg.system.as_str(), "root_causes": roots, "checks": rows});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => print_table(&rows, &roots, agg.system),
    }
    Ok(code)
}

fn print_table(rows: &[serde_json::Value], roots: &[serde_json::Value], system: Status) {
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let width = |k: &str| {
        rows.iter()
            .map(|r| s(r, k).len())
            .max()
            .unwrap_or(0)
            .max(k.len())
    };
    let (wc, wk) = (width("component"), width("check"));
    println!(
        "{:<8} {:<wc$} {:<wk$} {:<6} {:>9}  OUTPUT",
        "STATUS", "COMPONENT", "CHECK", "LEVEL", "DURATION"
    );
    for r in rows {
        let duration = r["duration_ms"]
            .as_f64()
            .map_or("-".to_string(), |ms| format!("{ms:.1}ms"));
        let text = r["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| s(r, "output"));
        println!(
            "{:<8} {:<wc$} {:<wk$} {:<6} {:>9}  {}",
            s(r, "status"),
            s(r, "component"),
            s(r, "check"),
            s(r, "level"),
            duration,
            text.lines().next().unwrap_or("")
        );
    }
    for root in roots {
        let impacts: Vec<String> = root["impacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if impacts.is_empty() {
            println!("root cause: {}", s(root, "component"));
        } else {
            println!(
                "root cause: {} (impacts {})",
                s(root, "component"),
                impacts.join(", ")
            );
        }
    }
    println!("system: {system}");
}
