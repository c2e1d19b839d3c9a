//! Snapshot reads and full aggregation at 10, 1 000 and 10 000 checks, each
//! beside a baseline measured in the same run:
//! - snapshot read vs a bare `Arc::clone` (the floor of any shared read);
//! - aggregation vs a bare worst-of scan over the same statuses (the floor of
//!   any pass over every check);
//! - one change made visible: a refresh of one check in an engine of N
//!   checks, from request to the published snapshot that includes it (a
//!   run, the incremental fold, root causes and the snapshot swap), against
//!   the same in an engine of 10 checks.
//!
//! Run with `cargo bench -p vitalis-core --bench engine`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vitalis_core::aggregate::aggregate;
use vitalis_core::{
    CheckSettings, CheckSpec, Component, Engine, Group, Outcome, Status, Topology, check_fn,
};

/// `n` checks: 5 per component, components in 10 groups (one a redundancy
/// set), each depending on the previous component of its group.
fn registry(n: usize) -> (Vec<Group>, Vec<Component>) {
    let per = 5.min(n);
    let comps = n / per;
    let groups = vec![Group::new("g0").min_passing(1).critical(true)];
    let components = (0..comps)
        .map(|c| {
            let mut comp = Component::new(format!("c{c}"))
                .group(format!("g{}", c % 10))
                .critical(c % 3 == 0);
            if c >= 10 {
                comp = comp.depends_on(format!("c{}", c - 10));
            }
            for k in 0..per {
                comp = comp.check(
                    CheckSpec::live(format!("k{k}"), check_fn(|_| async { Outcome::pass("ok") }))
                        .settings(CheckSettings {
                            interval: Some(Duration::from_secs(3600)),
                            ..CheckSettings::default()
                        }),
                );
            }
            comp
        })
        .collect();
    (groups, components)
}

fn statuses(n: usize) -> Vec<Status> {
    (0..n)
        .map(|i| match i % 97 {
            0 => Status::Fail,
            1 => Status::Warn,
            _ => Status::Pass,
        })
        .collect()
}

fn snapshot_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("snapshot_read");
    let floor = Arc::new(vec![0u8; 16]);
    g.bench_function("baseline_arc_clone", |b| {
        b.iter(|| black_box(Arc::clone(black_box(&floor))))
    });
    for n in [10usize, 1_000, 10_000] {
        let (groups, comps) = registry(n);
        let engine = rt.block_on(async {
            let mut b = Engine::builder();
            for grp in groups {
                b = b.group(grp);
            }
            for comp in comps {
                b = b.component(comp);
            }
            b.start().unwrap()
        });
        g.bench_with_input(BenchmarkId::new("engine_snapshot", n), &n, |b, _| {
            b.iter(|| black_box(engine.snapshot()))
        });
        engine.shutdown();
    }
    g.finish();
}

fn full_aggregation(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate");
    for n in [10usize, 1_000, 10_000] {
        let (groups, comps) = registry(n);
        let topo = Topology::build(&groups, &comps).unwrap();
        let st = statuses(topo.checks.len());
        g.bench_with_input(BenchmarkId::new("baseline_worst_scan", n), &n, |b, _| {
            b.iter(|| black_box(Status::worst_of(st.iter().copied())))
        });
        g.bench_with_input(BenchmarkId::new("full", n), &n, |b, _| {
            b.iter(|| black_box(aggregate(&topo, |k| Some(st[k]))))
        });
    }
    g.finish();
}

fn one_change(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("one_change_published");
    for n in [10usize, 1_000, 10_000] {
        let (groups, comps) = registry(n);
        let engine = rt.block_on(async {
            let mut b = Engine::builder();
            for grp in groups {
                b = b.group(grp);
            }
            for mut comp in comps {
                for k in &mut comp.checks {
                    k.settings.cache_ttl = Some(Duration::ZERO);
                }
                b = b.component(comp);
            }
            let e = b.start().unwrap();
            // Let the first runs settle.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            e
        });
        g.bench_with_input(BenchmarkId::new("refresh_one", n), &n, |b, _| {
            b.iter(|| {
                let r = rt.block_on(engine.refresh(|k| k == 0, Duration::from_secs(1)));
                assert!(r.running.is_empty());
                black_box(r)
            })
        });
        engine.shutdown();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = snapshot_read, full_aggregation, one_change
}
criterion_main!(benches);
