//! Flap damping: `failure_threshold` / `success_threshold` consecutive
//! results before a check's reported status changes.

use crate::model::Status;

/// Hysteresis over raw results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damper {
    reported: Status,
    candidate: Status,
    streak: u32,
    failure_threshold: u32,
    success_threshold: u32,
}

impl Damper {
    /// Starts at `unknown` (not run yet). The first result is reported at once:
    /// there is nothing trustworthy to damp.
    pub fn new(failure_threshold: u32, success_threshold: u32) -> Self {
        Damper {
            reported: Status::Unknown,
            candidate: Status::Unknown,
            streak: 0,
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
        }
    }

    /// The status reported now.
    pub fn reported(&self) -> Status {
        self.reported
    }

    /// Records a raw status; returns the reported one.
    pub fn record(&mut self, raw: Status) -> Status {
        if raw == self.reported {
            self.streak = 0;
            return raw;
        }
        if self.reported == Status::Unknown {
            self.reported = raw;
            self.streak = 0;
            return raw;
        }
        if raw == self.candidate {
            self.streak += 1;
        } else {
            self.candidate = raw;
            self.streak = 1;
        }
        let worse = raw.severity() > self.reported.severity();
        let needed = if worse {
            self.failure_threshold
        } else {
            self.success_threshold
        };
        if self.streak >= needed {
            self.reported = raw;
            self.streak = 0;
        }
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn thresholds_damp_both_directions() {
        let mut d = Damper::new(3, 2);
        assert_eq!(d.record(Pass), Pass); // first result at once
        assert_eq!(d.record(Fail), Pass);
        assert_eq!(d.record(Fail), Pass);
        assert_eq!(d.record(Pass), Pass); // streak broken
        assert_eq!(d.record(Fail), Pass);
        assert_eq!(d.record(Fail), Pass);
        assert_eq!(d.record(Fail), Fail);
        assert_eq!(d.record(Pass), Fail);
        assert_eq!(d.record(Pass), Pass);
    }

    #[test]
    fn threshold_one_reports_every_change() {
        let mut d = Damper::new(1, 1);
        for s in [Pass, Warn, Fail, Pass, Unknown, Pass] {
            assert_eq!(d.record(s), s);
        }
    }
}
