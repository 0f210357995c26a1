//! Encoding windows as plain arithmetic: `HH:MM` parsing and whether a moment is inside a
//! schedule. Validation and the daemon's enforcement both use it.

use super::schema::{Day, Schedule};

/// A moment in local time, as schedules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMoment {
    pub day: Day,
    /// Minutes since midnight.
    pub minute: u32,
}

pub const DAYS: [Day; 7] = [
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];

/// "HH:MM" → minutes since midnight.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

fn previous(day: Day) -> Day {
    let i = DAYS.iter().position(|d| *d == day).unwrap_or(0);
    DAYS[(i + 6) % 7]
}

/// Whether `now` is inside any window. A window crossing midnight belongs to the day it
/// starts on; `from == to` is the whole day.
pub fn in_window(schedule: &Schedule, now: LocalMoment) -> bool {
    schedule.windows.iter().any(|w| {
        let (Some(from), Some(to)) = (parse_hhmm(&w.from), parse_hhmm(&w.to)) else {
            return false;
        };
        let on = |d: Day| w.days.is_empty() || w.days.contains(&d);
        if from == to {
            on(now.day)
        } else if from < to {
            on(now.day) && (from..to).contains(&now.minute)
        } else {
            (on(now.day) && now.minute >= from) || (on(previous(now.day)) && now.minute < to)
        }
    })
}

/// "mon 23:10" → a moment (the test clock's format).
pub fn parse_moment(text: &str) -> Option<LocalMoment> {
    let (day, hhmm) = text.split_once(' ')?;
    let day = serde_json::from_value(serde_json::Value::String(day.to_string())).ok()?;
    Some(LocalMoment {
        day,
        minute: parse_hhmm(hhmm)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::schema::{Outside, Window};

    fn at(day: Day, hhmm: &str) -> LocalMoment {
        LocalMoment {
            day,
            minute: parse_hhmm(hhmm).unwrap_or(0),
        }
    }

    #[test]
    fn windows_cross_midnight_and_respect_weekdays() {
        let s = Schedule {
            windows: vec![Window {
                days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                from: "22:00".into(),
                to: "07:00".into(),
            }],
            outside: Outside::Pause,
        };
        assert!(in_window(&s, at(Day::Mon, "23:30")));
        assert!(in_window(&s, at(Day::Tue, "06:59")));
        assert!(!in_window(&s, at(Day::Tue, "07:00")));
        assert!(!in_window(&s, at(Day::Mon, "12:00")));
        // Friday night runs into Saturday morning; Saturday night does not start.
        assert!(in_window(&s, at(Day::Sat, "03:00")));
        assert!(!in_window(&s, at(Day::Sat, "23:00")));
        assert!(
            !in_window(&s, at(Day::Mon, "03:00")),
            "Sunday night is not a window"
        );
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("7:00"), None);
        assert_eq!(parse_moment("sun 13:05"), Some(at(Day::Sun, "13:05")));
    }
}
