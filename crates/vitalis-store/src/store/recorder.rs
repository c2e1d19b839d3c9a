//! Feeding the buffer: the engine's observer (every run) and the event
//! consumer (every transition of the engine's log).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use vitalis_core::{
    CancelToken, Change, Engine, Event, EventReader, Observer, Replay, RunRecord, Snapshot, Subject,
};

use super::pending::{ResultRow, TransitionRow};
use super::{Consumer, Shared, StoreStats};
use crate::model::{ChangeKind, SubjectKind};

/// The engine's observer: queues the run, nothing else (it runs on the
/// engine's aggregator task).
pub(super) struct Recorder(pub(super) Arc<Shared>);

impl Observer for Recorder {
    fn on_run(&self, run: &RunRecord<'_>) {
        let s = &self.0;
        let row = ResultRow {
            rseq: s.rseq.fetch_add(1, Ordering::Relaxed) + 1,
            component: run.component.into(),
            check: run.check.into(),
            kind: run.kind.into(),
            level: run.level,
            result: run.result.clone(),
        };
        let (dropped, full) = {
            let mut p = s.pending();
            let d = p.push_result(row);
            (d, p.len() >= s.settings.batch_rows)
        };
        StoreStats::add(&s.stats.results_dropped, dropped.results);
        if full {
            s.wake.notify_one();
        }
    }
}

fn push(shared: &Shared, row: TransitionRow) {
    let d = shared.pending().push_transition(row);
    shared.count_dropped(d);
}

/// The row of one event.
fn row_of(event: &Event) -> TransitionRow {
    let (subject, subject_id, check) = match &event.subject {
        Subject::Check { component, check } => (
            SubjectKind::Check,
            Some(component.clone()),
            Some(check.clone()),
        ),
        Subject::Component { id } => (SubjectKind::Component, Some(id.clone()), None),
        Subject::Group { id } => (SubjectKind::Group, Some(id.clone()), None),
        Subject::System => (SubjectKind::System, None, None),
    };
    let (change, from, to, output, error) = match &event.change {
        Change::Status { from, to, result } => (
            ChangeKind::Status,
            Some(*from),
            Some(*to),
            result.as_ref().map(|r| r.output.clone()),
            result.as_ref().and_then(|r| r.error.clone()),
        ),
        Change::Added => (ChangeKind::Added, None, None, None, None),
        Change::Removed => (ChangeKind::Removed, None, None, None, None),
    };
    TransitionRow {
        epoch: event.epoch,
        seq: event.seq,
        part: 0,
        time_ms: event.time.as_millisecond(),
        subject,
        subject_id,
        check,
        change,
        from,
        to,
        output,
        error,
    }
}

pub(super) fn record_event(shared: &Shared, event: &Event) {
    push(shared, row_of(event));
}

/// Restates every subject's status from a snapshot (after a gap in the log).
fn resync(shared: &Shared, snap: &Snapshot) {
    let time_ms = snap.time.as_millisecond();
    let mut part = 0;
    let mut row = |subject, subject_id, check, to| {
        part += 1;
        push(
            shared,
            TransitionRow {
                epoch: snap.epoch,
                seq: snap.seq,
                part,
                time_ms,
                subject,
                subject_id,
                check,
                change: ChangeKind::Resync,
                from: None,
                to: Some(to),
                output: None,
                error: None,
            },
        );
    };
    let topo = &snap.topology;
    for (k, info) in topo.checks.iter().enumerate() {
        let component = topo.components[info.component].info.id.clone();
        row(
            SubjectKind::Check,
            Some(component),
            Some(info.name.clone()),
            snap.checks[k].status,
        );
    }
    for (ci, node) in topo.components.iter().enumerate() {
        if let Some(s) = snap.components[ci].status {
            row(SubjectKind::Component, Some(node.info.id.clone()), None, s);
        }
    }
    for (gi, g) in topo.groups.iter().enumerate() {
        if let Some(s) = snap.groups[gi].status {
            row(SubjectKind::Group, Some(g.id.clone()), None, s);
        }
    }
    row(SubjectKind::System, None, None, snap.system());
}

/// Follows the engine's event log into the buffer.
struct Follower {
    shared: Arc<Shared>,
    engine: Engine,
    reader: EventReader,
    /// The seq recorded up to.
    last: u64,
    /// The log no longer holds what follows `last` and the published
    /// snapshot is not newer: wait for the next snapshot.
    behind: bool,
}

impl Follower {
    fn take(&mut self, replay: Replay) {
        match replay {
            Replay::Events(events) => {
                for e in &events {
                    record_event(&self.shared, e);
                }
                if let Some(e) = events.last() {
                    self.last = e.seq;
                }
            }
            Replay::Gap => {
                let snap = self.engine.snapshot();
                if snap.seq <= self.last {
                    // Snapshots are published at most every 50 ms: the log
                    // can be ahead of the newest one. Restating it again
                    // would change nothing; wait for a newer one.
                    self.behind = true;
                    return;
                }
                StoreStats::add(&self.shared.stats.gaps, 1);
                tracing::warn!(
                    "history store {}: fell behind the engine's event log after seq {}; the state at seq {} is restated from a snapshot (transitions in between are lost)",
                    self.shared.shown,
                    self.last,
                    snap.seq
                );
                resync(&self.shared, &snap);
                self.last = snap.seq;
                self.reader.seek(snap.seq);
            }
        }
    }

    /// Everything logged after `last`, without waiting.
    fn catch_up(&mut self) {
        let replay = self.engine.events().since(self.last);
        self.take(replay);
        self.reader.seek(self.last);
    }
}

/// Reads the engine's event log in order, from its start, into the buffer.
pub(super) fn spawn_consumer(shared: Arc<Shared>, engine: Engine) -> Consumer {
    let (sync, mut sync_rx) = mpsc::channel::<oneshot::Sender<()>>(16);
    let stop = CancelToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut published = engine.watch_snapshots();
        let mut f = Follower {
            reader: engine.subscribe(0),
            shared: shared.clone(),
            engine,
            last: 0,
            behind: false,
        };
        loop {
            tokio::select! {
                biased;
                _ = shared.cancel.cancelled() => return,
                _ = stopped.cancelled() => break,
                ask = sync_rx.recv() => {
                    let Some(reply) = ask else { break };
                    f.catch_up();
                    let _ = reply.send(());
                }
                _ = published.changed(), if f.behind => f.behind = false,
                batch = f.reader.next_batch(), if !f.behind => match batch {
                    Some(replay) => f.take(replay),
                    None => break,
                },
            }
        }
        // Stopping: the events logged up to now, then done.
        f.catch_up();
    });
    Consumer { sync, stop, task }
}
