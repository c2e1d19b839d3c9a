//! The bounded buffer between the check path and the writer.
//!
//! The engine's observer and the event consumer push rows here (a short
//! lock, no I/O); the writer takes batches from the front and puts a batch
//! back at the front when its transaction fails, so rows are written in
//! order once the store returns. Each kind has its own bound: past it the
//! oldest rows of that kind are dropped and counted. Raw results are the
//! first to go (they have a generous bound and are summarised by
//! transitions); transitions are dropped only past their own bound.

use std::collections::VecDeque;
use std::sync::Arc;

use vitalis_core::{CheckResult, Level, Status};

use crate::model::{ChangeKind, SubjectKind};

/// One run's result, waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct ResultRow {
    /// Numbering of this instance's results (makes a retried insert idempotent).
    pub(crate) rseq: u64,
    pub(crate) component: Box<str>,
    pub(crate) check: Box<str>,
    pub(crate) kind: Box<str>,
    pub(crate) level: Level,
    pub(crate) result: Arc<CheckResult>,
}

impl ResultRow {
    pub(crate) fn time_ms(&self) -> i64 {
        self.result.time.as_millisecond()
    }
}

/// One transition, waiting to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TransitionRow {
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    /// 0 for a logged event; 1.. for the rows of a resync at `seq`.
    pub(crate) part: u32,
    pub(crate) time_ms: i64,
    pub(crate) subject: SubjectKind,
    /// Component or group id (`None` for the system).
    pub(crate) subject_id: Option<Arc<str>>,
    pub(crate) check: Option<Arc<str>>,
    pub(crate) change: ChangeKind,
    pub(crate) from: Option<Status>,
    pub(crate) to: Option<Status>,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
}

/// A batch taken for one transaction.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) transitions: Vec<TransitionRow>,
    pub(crate) results: Vec<ResultRow>,
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.transitions.len() + self.results.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows dropped by one operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) results: u64,
    pub(crate) transitions: u64,
}

/// The buffer.
#[derive(Debug)]
pub(crate) struct Pending {
    results: VecDeque<ResultRow>,
    transitions: VecDeque<TransitionRow>,
    max_results: usize,
    max_transitions: usize,
}

impl Pending {
    pub(crate) fn new(max_results: usize, max_transitions: usize) -> Self {
        Pending {
            results: VecDeque::new(),
            transitions: VecDeque::new(),
            max_results: max_results.max(1),
            max_transitions: max_transitions.max(1),
        }
    }

    /// Appends a result; drops the oldest one when over the bound.
    pub(crate) fn push_result(&mut self, row: ResultRow) -> Dropped {
        let mut d = Dropped::default();
        if self.results.len() >= self.max_results {
            self.results.pop_front();
            d.results = 1;
        }
        self.results.push_back(row);
        d
    }

    /// Appends a transition; drops the oldest one when over its bound.
    pub(crate) fn push_transition(&mut self, row: TransitionRow) -> Dropped {
        let mut d = Dropped::default();
        if self.transitions.len() >= self.max_transitions {
            self.transitions.pop_front();
            d.transitions = 1;
        }
        self.transitions.push_back(row);
        d
    }

    /// Takes up to `max_rows` from the front, transitions first.
    pub(crate) fn take(&mut self, max_rows: usize) -> Batch {
        let t = self.transitions.len().min(max_rows);
        let transitions: Vec<TransitionRow> = self.transitions.drain(..t).collect();
        let r = self.results.len().min(max_rows - t);
        let results: Vec<ResultRow> = self.results.drain(..r).collect();
        Batch {
            transitions,
            results,
        }
    }

    /// Returns a batch that could not be written to the front, in order.
    /// Within the bounds; the oldest rows go first when they are exceeded.
    pub(crate) fn put_back(&mut self, batch: Batch) -> Dropped {
        let mut d = Dropped::default();
        let room = self.max_results.saturating_sub(self.results.len());
        let skip = batch.results.len().saturating_sub(room);
        d.results = skip as u64;
        for row in batch.results.into_iter().skip(skip).rev() {
            self.results.push_front(row);
        }
        let room = self.max_transitions.saturating_sub(self.transitions.len());
        let skip = batch.transitions.len().saturating_sub(room);
        d.transitions = skip as u64;
        for row in batch.transitions.into_iter().skip(skip).rev() {
            self.transitions.push_front(row);
        }
        d
    }

    pub(crate) fn results(&self) -> usize {
        self.results.len()
    }

    pub(crate) fn transitions(&self) -> usize {
        self.transitions.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.results.len() + self.transitions.len()
    }

    /// The time of the oldest waiting row of either kind.
    pub(crate) fn oldest_ms(&self) -> Option<i64> {
        let r = self.oldest_result_ms();
        let t = self.transitions.front().map(|t| t.time_ms);
        match (r, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time of the oldest waiting result (rollups wait for it).
    pub(crate) fn oldest_result_ms(&self) -> Option<i64> {
        self.results.front().map(ResultRow::time_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use vitalis_core::Outcome;

    use super::*;

    fn result(n: u64) -> ResultRow {
        ResultRow {
            rseq: n,
            component: "db".into(),
            check: "port".into(),
            kind: "tcp".into(),
            level: Level::Live,
            result: Arc::new(CheckResult::from_outcome(
                Outcome::pass("ok"),
                Duration::from_millis(1),
                Timestamp::from_millisecond(n as i64 * 1000).unwrap(),
            )),
        }
    }

    fn transition(n: u64) -> TransitionRow {
        TransitionRow {
            epoch: 1,
            seq: n,
            part: 0,
            time_ms: n as i64 * 1000,
            subject: SubjectKind::System,
            subject_id: None,
            check: None,
            change: ChangeKind::Status,
            from: Some(Status::Pass),
            to: Some(Status::Fail),
            output: None,
            error: None,
        }
    }

    fn seqs(b: &Batch) -> (Vec<u64>, Vec<u64>) {
        (
            b.transitions.iter().map(|t| t.seq).collect(),
            b.results.iter().map(|r| r.rseq).collect(),
        )
    }

    #[test]
    fn drops_the_oldest_results_first_and_transitions_only_past_their_bound() {
        let mut p = Pending::new(3, 2);
        for n in 1..=5 {
            let d = p.push_result(result(n));
            assert_eq!(d.results, u64::from(n > 3));
        }
        assert_eq!(p.push_transition(transition(1)).transitions, 0);
        assert_eq!(p.push_transition(transition(2)).transitions, 0);
        assert_eq!(p.push_transition(transition(3)).transitions, 1);
        assert_eq!((p.results(), p.transitions()), (3, 2));
        assert_eq!(p.oldest_ms(), Some(2000));
        assert_eq!(p.oldest_result_ms(), Some(3000));
        let b = p.take(10);
        assert_eq!(seqs(&b), (vec![2, 3], vec![3, 4, 5]));
    }

    #[test]
    fn a_failed_batch_goes_back_in_front_in_order() {
        let mut p = Pending::new(4, 10);
        for n in 1..=3 {
            p.push_result(result(n));
            p.push_transition(transition(n));
        }
        let b = p.take(4); // 3 transitions and result 1
        assert_eq!(seqs(&b), (vec![1, 2, 3], vec![1]));
        p.push_result(result(4));
        p.push_result(result(5));
        // 4 results waiting (2..=5), bound 4: result 1 is the oldest and goes.
        let d = p.put_back(b);
        assert_eq!(
            d,
            Dropped {
                results: 1,
                transitions: 0
            }
        );
        let b = p.take(100);
        assert_eq!(seqs(&b), (vec![1, 2, 3], vec![2, 3, 4, 5]));
        assert_eq!(p.len(), 0);
        assert!(p.take(10).is_empty());
    }
}
