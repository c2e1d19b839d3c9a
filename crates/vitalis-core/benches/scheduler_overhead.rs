//! Scheduler overhead: CPU time of an engine running 10 000 no-op checks at a
//! 1 s interval, against a baseline of the same process with an engine of
//! zero checks, both measured in this run over the same wall time.
//!
//! Two kinds of no-op check: an async one (`may_block = false`, how every
//! built-in probe runs: on the shared worker pool) and a closure (the default
//! `may_block = true`: each run on a lane, a thread of the blocking pool).
//!
//! Run with `cargo bench -p vitalis-core --bench scheduler_overhead`.
//! Prints the share of one core each used, and the difference.

use std::time::{Duration, Instant};

use vitalis_core::{
    BoxFuture, Check, CheckCx, CheckRuntime, CheckSettings, CheckSpec, Component, Engine, Outcome,
    check_fn,
};

/// A purely async no-op check.
struct Noop;

impl Check for Noop {
    fn run(&self, _cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async { Outcome::pass("noop") })
    }

    fn may_block(&self) -> bool {
        false
    }
}

/// CPU time of this process's threads (sum of /proc/self/task/*/schedstat,
/// in ns) and its minor page faults (from /proc/self/stat).
fn usage() -> (Duration, u64) {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("linux /proc") {
        let path = task.unwrap().path().join("schedstat");
        // A thread may exit between listing and reading.
        if let Ok(s) = std::fs::read_to_string(path) {
            nanos += s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").expect("linux /proc");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let minflt: u64 = after.split_whitespace().nth(7).unwrap().parse().unwrap();
    (Duration::from_nanos(nanos), minflt)
}

fn measure(checks: usize, closures: bool, wall: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = Engine::builder().check_runtime(CheckRuntime::Dedicated(1));
        for c in 0..checks / 10 {
            let mut comp = Component::new(format!("c{c}"));
            for k in 0..10 {
                let spec = if closures {
                    CheckSpec::live(
                        format!("k{k}"),
                        check_fn(|_| async { Outcome::pass("noop") }),
                    )
                } else {
                    CheckSpec::live(format!("k{k}"), Noop)
                };
                comp = comp.check(spec.settings(CheckSettings {
                    interval: Some(Duration::from_secs(1)),
                    ..CheckSettings::default()
                }));
            }
            b = b.component(comp);
        }
        let engine = b.start().unwrap();
        // Let start-up (first runs spread over 1 s) settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Several windows: the median resists a moment of noise on the host.
        let mut shares = Vec::new();
        let mut faults = 0;
        let mut runs = 0;
        let window = wall / WINDOWS;
        for _ in 0..WINDOWS {
            let ((c0, f0), t0) = (usage(), Instant::now());
            let runs0: u64 = engine.snapshot().checks.iter().map(|c| c.runs).sum();
            tokio::time::sleep(window).await;
            let ((c1, f1), t1) = (usage(), Instant::now());
            let runs1: u64 = engine.snapshot().checks.iter().map(|c| c.runs).sum();
            shares.push((c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64());
            faults += f1 - f0;
            runs += runs1 - runs0;
        }
        let in_order: Vec<String> = shares.iter().map(|s| format!("{:.2}%", s * 100.0)).collect();
        shares.sort_by(f64::total_cmp);
        let share = shares[shares.len() / 2];
        println!(
            "{checks:>6} {} checks: median {:.2}% of one core (windows {}) over {:.1}s; {runs} runs ({:.0}/s), {faults} page faults",
            if closures { "closure" } else { "async" },
            share * 100.0,
            in_order.join(" "),
            wall.as_secs_f64(),
            runs as f64 / wall.as_secs_f64(),
        );
        engine.shutdown();
        share
    })
}

/// Measurement windows per run (each `wall / WINDOWS` long).
const WINDOWS: u32 = 5;

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let wall = if quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(
            std::env::var("VITALIS_BENCH_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20),
        )
    };
    let baseline = measure(0, false, wall);
    let loaded = measure(10_000, false, wall);
    // VITALIS_BENCH_ASYNC_ONLY=1 skips the closure run (for profiling).
    let closures = if std::env::var_os("VITALIS_BENCH_ASYNC_ONLY").is_some() {
        baseline
    } else {
        measure(10_000, true, wall)
    };
    println!(
        "scheduler overhead for 10 000 async checks at 1 s: {:.2}% of one core (baseline {:.2}%)",
        (loaded - baseline) * 100.0,
        baseline * 100.0
    );
    println!(
        "10 000 closure checks (each run on a lane of the blocking pool) at 1 s: {:.2}% of one core",
        (closures - baseline) * 100.0
    );
}
