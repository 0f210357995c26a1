//! Encoding windows: pure window arithmetic, and the loop that closes the gate on new
//! ffmpeg starts outside them and pauses (SIGSTOP) or lets finish the running ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use nix::sys::signal::Signal;

use crate::engine::Engine;
use crate::workflow::schema::{Day, Outside, Schedule};

/// A moment in local time, as schedules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMoment {
    pub day: Day,
    /// Minutes since midnight.
    pub minute: u32,
}

const DAYS: [Day; 7] = [
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

/// The local time now, or, for tests, the moment written in `clock_file` ("mon 23:10").
pub fn now(clock_file: Option<&PathBuf>) -> LocalMoment {
    if let Some(m) = clock_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| parse_moment(t.trim()))
    {
        return m;
    }
    let t = chrono::Local::now();
    LocalMoment {
        day: DAYS[t.weekday().num_days_from_monday() as usize],
        minute: t.hour() * 60 + t.minute(),
    }
}

fn parse_moment(text: &str) -> Option<LocalMoment> {
    let (day, hhmm) = text.split_once(' ')?;
    let day = serde_json::from_value(serde_json::Value::String(day.to_string())).ok()?;
    Some(LocalMoment {
        day,
        minute: parse_hhmm(hhmm)?,
    })
}

/// Applies the schedule every few seconds until `stop`.
pub async fn enforce(
    engine: Arc<Engine>,
    schedule: Schedule,
    clock_file: Option<PathBuf>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut open = true;
    loop {
        let inside = in_window(&schedule, now(clock_file.as_ref()));
        if inside != open {
            open = inside;
            engine.set_encoding_allowed(open);
            let running = &engine.tools().running;
            match (open, schedule.outside) {
                (false, Outside::Pause) => {
                    let n = running.signal_all(Signal::SIGSTOP);
                    tracing::info!(
                        paused = n,
                        "outside the encoding window: no new tasks, running ffmpeg paused"
                    );
                }
                (false, Outside::Finish) => {
                    tracing::info!("outside the encoding window: no new tasks, running ones finish")
                }
                (true, _) => {
                    let n = running.signal_all(Signal::SIGCONT);
                    tracing::info!(resumed = n, "encoding window open");
                }
            }
        } else if !open && schedule.outside == Outside::Pause {
            // ffmpeg started just before the gate closed: pause it too.
            engine.tools().running.signal_all(Signal::SIGSTOP);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Never leave anything stopped behind.
    engine.set_encoding_allowed(true);
    engine.tools().running.signal_all(Signal::SIGCONT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::schema::Window;

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
