//! The event log: every transition of a check, component, group or the
//! system, in order, with a `seq` and the instance's `epoch`.
//!
//! The log is bounded: it holds the last `capacity` events. Nothing is
//! coalesced; a reader that falls further behind than the log holds learns
//! so ([`Replay::Gap`]) and starts again from a snapshot, as a WebSocket
//! client whose resume point is gone does. A `watch` signal wakes readers;
//! it is never the record.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::watch;

use crate::model::{CheckResult, Status};

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// One check of one component.
    Check {
        /// Component id.
        component: Arc<str>,
        /// Check name.
        check: Arc<str>,
    },
    /// A component.
    Component {
        /// Its id.
        id: Arc<str>,
    },
    /// A group.
    Group {
        /// Its id.
        id: Arc<str>,
    },
    /// The whole monitored system.
    System,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The status changed (for checks: the reported status, after damping and staleness).
    Status {
        /// Before.
        from: Status,
        /// After.
        to: Status,
        /// For checks: the result that caused it (absent when time caused it, e.g. staleness).
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Arc<CheckResult>>,
    },
    /// The subject was added (registration, reload, discovery).
    Added,
    /// The subject was removed.
    Removed,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the log (increasing, starting at 1 for each epoch).
    pub seq: u64,
    /// The instance's epoch (new at every start).
    pub epoch: u64,
    /// When it happened.
    pub time: Timestamp,
    /// What it is about.
    pub subject: Subject,
    /// What happened.
    #[serde(flatten)]
    pub change: Change,
}

/// What [`EventLog::since`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every event after the given seq (possibly none).
    Events(Vec<Arc<Event>>),
    /// Events after the given seq are no longer held: start from a snapshot.
    Gap,
}

/// The bounded, ordered log. Appended to by the engine only.
#[derive(Debug)]
pub struct EventLog {
    epoch: u64,
    capacity: usize,
    inner: Mutex<VecDeque<Arc<Event>>>,
    last: watch::Sender<u64>,
    /// Set when the engine stopped: readers end after the last event.
    closed: AtomicBool,
}

impl EventLog {
    /// An empty log holding at most `capacity` events.
    pub fn new(epoch: u64, capacity: usize) -> Self {
        EventLog {
            epoch,
            capacity: capacity.max(1),
            inner: Mutex::new(VecDeque::new()),
            last: watch::Sender::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Event>>> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The seq of the newest event (0 when none yet).
    pub fn last_seq(&self) -> u64 {
        *self.last.borrow()
    }

    /// Appends events, numbering them; returns the last seq.
    pub(crate) fn append(
        &self,
        time: Timestamp,
        items: impl IntoIterator<Item = (Subject, Change)>,
    ) -> u64 {
        let mut log = self.lock();
        let mut seq = self.last_seq();
        let before = seq;
        for (subject, change) in items {
            seq += 1;
            if log.len() == self.capacity {
                log.pop_front();
            }
            log.push_back(Arc::new(Event {
                seq,
                epoch: self.epoch,
                time,
                subject,
                change,
            }));
        }
        drop(log);
        if seq != before {
            self.last.send_replace(seq);
        }
        seq
    }

    /// Events after `seq`, or [`Replay::Gap`] when some are no longer held.
    pub fn since(&self, seq: u64) -> Replay {
        let log = self.lock();
        let last = log.back().map_or(0, |e| e.seq);
        if seq >= last {
            return Replay::Events(Vec::new());
        }
        let first = log.front().map_or(1, |e| e.seq);
        if seq + 1 < first {
            return Replay::Gap;
        }
        let skip = (seq + 1 - first) as usize;
        Replay::Events(log.iter().skip(skip).cloned().collect())
    }

    /// Marks the log as ended (the engine stopped): readers return `None`
    /// once they have read every event.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.last.send_modify(|_| {});
    }

    /// Whether the engine that appends to this log stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever events are appended (its value: the last seq).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// A reader positioned after `seq`.
    pub fn reader(self: &Arc<Self>, seq: u64) -> EventReader {
        EventReader {
            log: self.clone(),
            next_after: seq,
            wake: self.watch(),
        }
    }
}

/// Reads the log in order from a position, waiting for new events.
#[derive(Debug)]
pub struct EventReader {
    log: Arc<EventLog>,
    next_after: u64,
    wake: watch::Receiver<u64>,
}

impl EventReader {
    /// The next batch of events (waits until there is one), or `Gap` when the
    /// reader fell behind what the log holds. `None` when the engine stopped.
    pub async fn next_batch(&mut self) -> Option<Replay> {
        loop {
            match self.log.since(self.next_after) {
                Replay::Events(ev) if ev.is_empty() => {
                    if self.log.is_closed() {
                        return None;
                    }
                    self.wake.changed().await.ok()?;
                }
                Replay::Events(ev) => {
                    self.next_after = ev.last().map_or(self.next_after, |e| e.seq);
                    return Some(Replay::Events(ev));
                }
                Replay::Gap => return Some(Replay::Gap),
            }
        }
    }

    /// Moves the reader to just after `seq` (after resyncing from a snapshot).
    pub fn seek(&mut self, seq: u64) {
        self.next_after = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(n: usize) -> Vec<(Subject, Change)> {
        (0..n).map(|_| (Subject::System, Change::Added)).collect()
    }

    #[test]
    fn keeps_order_and_reports_gaps() {
        let log = EventLog::new(7, 3);
        assert_eq!(log.append(Timestamp::UNIX_EPOCH, sys(2)), 2);
        let Replay::Events(ev) = log.since(0) else {
            panic!()
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(ev[0].epoch, 7);
        log.append(Timestamp::UNIX_EPOCH, sys(3)); // holds 3, 4, 5
        assert_eq!(log.since(1), Replay::Gap);
        let Replay::Events(ev) = log.since(2) else {
            panic!()
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(log.since(5), Replay::Events(vec![]));
        assert_eq!(log.since(99), Replay::Events(vec![]));
    }

    #[tokio::test]
    async fn readers_wake_on_append() {
        let log = Arc::new(EventLog::new(1, 100));
        let mut r = log.reader(0);
        let l2 = log.clone();
        tokio::spawn(async move { l2.append(Timestamp::UNIX_EPOCH, sys(2)) });
        let Some(Replay::Events(ev)) = r.next_batch().await else {
            panic!()
        };
        assert_eq!(ev.len(), 2);
    }

    #[tokio::test]
    async fn readers_end_after_the_last_event_once_closed() {
        let log = Arc::new(EventLog::new(1, 100));
        let mut r = log.reader(0);
        log.append(Timestamp::UNIX_EPOCH, sys(1));
        let waiting = tokio::spawn(async move {
            let first = r.next_batch().await;
            (first, r.next_batch().await)
        });
        tokio::task::yield_now().await;
        log.close();
        let (first, second) = waiting.await.unwrap();
        assert!(matches!(first, Some(Replay::Events(ev)) if ev.len() == 1));
        assert_eq!(second, None);
    }
}
