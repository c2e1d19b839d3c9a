//! Active windows: when a check runs (market hours, say).
//!
//! Outside every window of a check, the check is not run and is left out of
//! aggregation: a silent feed on Sunday is not an outage.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

/// One weekly window, such as `mon-fri 09:30–16:00 America/New_York`.
///
/// A window whose `to` is earlier than `from` runs past midnight and belongs
/// to the day it starts; `from == to` means the whole day.
#[derive(Clone, PartialEq)]
pub struct ActiveWindow {
    days: u8,
    from: Time,
    to: Time,
    tz: TimeZone,
    text: String,
}

/// Why a window declaration was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    /// A day word that is not a weekday.
    #[error(
        "'{0}' is not a day (use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, or lists like sat,sun)"
    )]
    Day(String),
    /// A time that is not `HH:MM`.
    #[error("'{0}' is not a time of day (use HH:MM, e.g. 09:30)")]
    Time(String),
    /// An unknown time zone.
    #[error("'{0}' is not a known time zone (use an IANA name such as America/New_York or UTC)")]
    TimeZone(String),
}

fn weekday_index(word: &str) -> Option<u8> {
    Some(match word {
        "mon" => 0,
        "tue" => 1,
        "wed" => 2,
        "thu" => 3,
        "fri" => 4,
        "sat" => 5,
        "sun" => 6,
        _ => return None,
    })
}

fn parse_days(text: &str) -> Result<u8, WindowError> {
    let text = text.trim().to_ascii_lowercase();
    if text == "daily" || text == "*" || text == "mon-sun" {
        return Ok(0x7f);
    }
    let mut mask = 0u8;
    for part in text.split(',').map(str::trim) {
        let bad = || WindowError::Day(part.to_string());
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    weekday_index(a).ok_or_else(bad)?,
                    weekday_index(b).ok_or_else(bad)?,
                );
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << weekday_index(part).ok_or_else(bad)?,
        }
    }
    Ok(mask)
}

fn parse_time(text: &str) -> Result<Time, WindowError> {
    let bad = || WindowError::Time(text.to_string());
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 {
        return Ok(Time::MAX);
    }
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn day_index(w: Weekday) -> u8 {
    w.to_monday_zero_offset() as u8
}

impl ActiveWindow {
    /// Parses a window: `days` like `mon-fri`, `from`/`to` as `HH:MM`, `tz` an IANA name.
    pub fn parse(days: &str, from: &str, to: &str, tz: &str) -> Result<Self, WindowError> {
        let zone = TimeZone::get(tz).map_err(|_| WindowError::TimeZone(tz.to_string()))?;
        Ok(ActiveWindow {
            days: parse_days(days)?,
            from: parse_time(from)?,
            to: parse_time(to)?,
            tz: zone,
            text: format!("{days} {from}-{to} {tz}"),
        })
    }

    /// Whether the window is open at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.tz.clone());
        let day = day_index(local.weekday());
        let t = local.time();
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.from == self.to {
            on(day)
        } else if self.from < self.to {
            on(day) && t >= self.from && t < self.to
        } else {
            (on(day) && t >= self.from) || (on((day + 6) % 7) && t < self.to)
        }
    }
}

impl fmt::Debug for ActiveWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActiveWindow({})", self.text)
    }
}

impl fmt::Display for ActiveWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether any of `windows` is open at `at`; no windows means always active.
pub fn is_active(windows: &[ActiveWindow], at: Timestamp) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn market_hours_in_new_york() {
        let w = ActiveWindow::parse("mon-fri", "09:30", "16:00", "America/New_York").unwrap();
        // Wednesday 2026-12-02, 10:00 EST = 15:00 UTC.
        assert!(w.contains(at("2026-12-02T15:00:00Z")));
        // 09:29 EST: closed.
        assert!(!w.contains(at("2026-12-02T14:29:00Z")));
        // 16:00 EST: closed (end exclusive).
        assert!(!w.contains(at("2026-12-02T21:00:00Z")));
        // Sunday noon: closed.
        assert!(!w.contains(at("2026-12-06T17:00:00Z")));
    }

    #[test]
    fn overnight_windows_belong_to_their_start_day() {
        let w = ActiveWindow::parse("fri", "22:00", "02:00", "UTC").unwrap();
        assert!(w.contains(at("2026-12-04T23:00:00Z"))); // Friday 23:00
        assert!(w.contains(at("2026-12-05T01:00:00Z"))); // Saturday 01:00
        assert!(!w.contains(at("2026-12-05T23:00:00Z"))); // Saturday 23:00
        assert!(!w.contains(at("2026-12-04T01:00:00Z"))); // Friday 01:00 (Thursday's night)
    }

    #[test]
    fn day_lists_ranges_and_errors() {
        assert_eq!(parse_days("mon-fri").unwrap(), 0b0011111);
        assert_eq!(parse_days("sat,sun").unwrap(), 0b1100000);
        assert_eq!(parse_days("fri-mon").unwrap(), 0b1110001);
        assert_eq!(parse_days("daily").unwrap(), 0x7f);
        assert!(matches!(parse_days("funday"), Err(WindowError::Day(_))));
        assert!(matches!(
            ActiveWindow::parse("mon", "9h", "10:00", "UTC"),
            Err(WindowError::Time(_))
        ));
        assert!(matches!(
            ActiveWindow::parse("mon", "09:00", "10:00", "Mars/Olympus"),
            Err(WindowError::TimeZone(_))
        ));
        assert!(is_active(&[], at("2026-12-06T17:00:00Z")));
    }
}
