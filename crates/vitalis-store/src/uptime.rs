//! Uptime from transitions and sessions, as a pure function.
//!
//! A subject's status is a step function of time within one run (epoch) of
//! Vitalis: it starts not observed, becomes `unknown` when added, and takes
//! the `to` status of each transition. Time counts only inside sessions
//! (clipped to the window, and to the next session's start so that
//! overlapping records never count twice); outside them — Vitalis down —
//! there is no data. Uptime is time in `pass` or `warn` ÷ time in `pass`,
//! `warn` or `fail`.

use std::collections::BTreeMap;

use vitalis_core::Status;

use crate::model::{Availability, SubjectKind};

/// The time one run of Vitalis covered: from its start to its clean stop,
/// its last sign of life (after a crash), or now (the running one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The run's epoch.
    pub epoch: u64,
    /// Start (ms since the Unix epoch).
    pub start_ms: i64,
    /// End (ms since the Unix epoch).
    pub end_ms: i64,
}

/// A subject: its kind and id (`None` for the system).
pub type Key = (SubjectKind, Option<String>);

/// One change of a subject's status within a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The run.
    pub epoch: u64,
    /// Order within the run (the event's seq, then the resync part).
    pub order: (u64, u32),
    /// When (ms since the Unix epoch).
    pub time_ms: i64,
    /// About what.
    pub subject: Key,
    /// The status from then on; `None` when the subject stopped existing.
    pub status: Option<Status>,
}

/// Time per status of one subject (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// In `pass`.
    pub pass_ms: f64,
    /// In `warn`.
    pub warn_ms: f64,
    /// In `fail`.
    pub fail_ms: f64,
}

impl Tally {
    fn add(&mut self, status: Option<Status>, ms: i64) {
        let ms = ms.max(0) as f64;
        match status {
            Some(Status::Pass) => self.pass_ms += ms,
            Some(Status::Warn) => self.warn_ms += ms,
            Some(Status::Fail) => self.fail_ms += ms,
            Some(Status::Unknown) | None => {}
        }
    }

    /// This tally as the availability of `id` within a window of `window_ms`.
    pub fn availability(&self, id: Option<String>, window_ms: f64) -> Availability {
        let up = self.pass_ms + self.warn_ms;
        let observed = up + self.fail_ms;
        Availability {
            id,
            uptime: (observed > 0.0).then(|| up / observed),
            up_ms: up,
            observed_ms: observed,
            pass_ms: self.pass_ms,
            warn_ms: self.warn_ms,
            fail_ms: self.fail_ms,
            no_data_ms: (window_ms - observed).max(0.0),
        }
    }
}

/// What [`compute`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Computed {
    /// Time covered by sessions within the window (ms).
    pub monitored_ms: f64,
    /// Per subject that has any mark.
    pub tallies: BTreeMap<Key, Tally>,
}

/// Time per status of every subject within `[since_ms, until_ms]`, counting
/// only time inside `spans`. `marks` must hold, for every run, the subject's
/// last change at or before the window start (or the span start) and every
/// change after it; order does not matter.
pub fn compute(since_ms: i64, until_ms: i64, spans: &[Span], marks: &[Mark]) -> Computed {
    let mut spans: Vec<Span> = spans.to_vec();
    spans.sort_by_key(|s| (s.start_ms, s.epoch));
    let mut clipped: Vec<Span> = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        let next_start = spans.get(i + 1).map_or(i64::MAX, |n| n.start_ms);
        let start = s.start_ms.max(since_ms);
        let end = s.end_ms.min(until_ms).min(next_start);
        if end > start {
            clipped.push(Span {
                epoch: s.epoch,
                start_ms: start,
                end_ms: end,
            });
        }
    }
    // Marks per run and subject, in log order.
    let mut by_run: BTreeMap<(u64, &Key), Vec<&Mark>> = BTreeMap::new();
    for m in marks {
        by_run.entry((m.epoch, &m.subject)).or_default().push(m);
    }
    for list in by_run.values_mut() {
        list.sort_by_key(|m| m.order);
    }
    let mut out = Computed {
        monitored_ms: clipped.iter().map(|s| (s.end_ms - s.start_ms) as f64).sum(),
        tallies: BTreeMap::new(),
    };
    for ((epoch, key), list) in &by_run {
        let tally = out.tallies.entry((*key).clone()).or_default();
        for span in clipped.iter().filter(|s| s.epoch == *epoch) {
            let mut current: Option<Status> = None;
            let mut from = span.start_ms;
            for m in list {
                if m.time_ms <= span.start_ms {
                    current = m.status;
                    continue;
                }
                if m.time_ms >= span.end_ms {
                    break;
                }
                // A wall clock stepping back never makes time negative.
                let at = m.time_ms.max(from);
                tally.add(current, at - from);
                current = m.status;
                from = at;
            }
            tally.add(current, span.end_ms - from);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(id: &str) -> Key {
        (SubjectKind::Component, Some(id.to_string()))
    }

    fn span(epoch: u64, start_ms: i64, end_ms: i64) -> Span {
        Span {
            epoch,
            start_ms,
            end_ms,
        }
    }

    fn mark(epoch: u64, seq: u64, t: i64, id: &str, s: Option<Status>) -> Mark {
        Mark {
            epoch,
            order: (seq, 0),
            time_ms: t,
            subject: comp(id),
            status: s,
        }
    }

    use Status::*;

    #[test]
    fn pass_and_warn_are_up_and_unknown_is_no_data() {
        let spans = [span(1, 0, 100)];
        let marks = [
            mark(1, 1, 0, "db", Some(Unknown)),
            mark(1, 2, 10, "db", Some(Pass)),
            mark(1, 3, 40, "db", Some(Fail)),
            mark(1, 4, 50, "db", Some(Warn)),
            mark(1, 5, 70, "db", Some(Pass)),
        ];
        let c = compute(0, 100, &spans, &marks);
        assert_eq!(c.monitored_ms, 100.0);
        let t = c.tallies[&comp("db")];
        assert_eq!((t.pass_ms, t.warn_ms, t.fail_ms), (60.0, 20.0, 10.0));
        let a = t.availability(Some("db".into()), 100.0);
        assert_eq!(a.uptime, Some(80.0 / 90.0));
        assert_eq!(a.no_data_ms, 10.0);
    }

    #[test]
    fn time_between_sessions_is_no_data() {
        // Run 1 covers 0..100 (passing from 10), Vitalis is down 100..300,
        // run 2 covers 300..400 (failing from 320).
        let spans = [span(2, 300, 400), span(1, 0, 100)];
        let marks = [
            mark(1, 1, 0, "db", Some(Unknown)),
            mark(1, 2, 10, "db", Some(Pass)),
            mark(2, 1, 300, "db", Some(Unknown)),
            mark(2, 2, 320, "db", Some(Fail)),
        ];
        let c = compute(0, 400, &spans, &marks);
        assert_eq!(c.monitored_ms, 200.0);
        let t = c.tallies[&comp("db")];
        assert_eq!((t.pass_ms, t.fail_ms), (90.0, 80.0));
        let a = t.availability(None, 400.0);
        assert_eq!(a.no_data_ms, 230.0);
        assert_eq!(a.uptime, Some(90.0 / 170.0));
    }

    #[test]
    fn the_window_clips_and_earlier_marks_set_the_start_state() {
        let spans = [span(1, 0, 1000)];
        // Failing since 100 (before the window), passing from 600.
        let marks = [
            mark(1, 1, 100, "db", Some(Fail)),
            mark(1, 2, 600, "db", Some(Pass)),
            mark(1, 3, 900, "db", Some(Fail)),
        ];
        let c = compute(500, 800, &spans, &marks);
        assert_eq!(c.monitored_ms, 300.0);
        let t = c.tallies[&comp("db")];
        assert_eq!((t.pass_ms, t.fail_ms), (200.0, 100.0));
    }

    #[test]
    fn removal_stops_observation_and_overlapping_sessions_count_once() {
        let spans = [
            // Run 1's last sign of life overlaps the next run.
            span(1, 0, 150),
            span(2, 100, 200),
        ];
        let marks = [
            mark(1, 1, 0, "db", Some(Pass)),
            mark(1, 2, 50, "db", None),
            mark(2, 1, 100, "db", Some(Pass)),
        ];
        let c = compute(0, 200, &spans, &marks);
        assert_eq!(c.monitored_ms, 200.0);
        assert_eq!(c.tallies[&comp("db")].pass_ms, 150.0);
    }

    #[test]
    fn a_clock_stepping_back_adds_no_negative_time() {
        let spans = [span(1, 0, 100)];
        let marks = [
            mark(1, 1, 0, "db", Some(Pass)),
            mark(1, 2, 60, "db", Some(Fail)),
            mark(1, 3, 40, "db", Some(Pass)),
        ];
        let t = compute(0, 100, &spans, &marks).tallies[&comp("db")];
        assert_eq!((t.pass_ms, t.fail_ms), (100.0, 0.0));
    }
}
