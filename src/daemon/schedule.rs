//! Enforcing a workflow's encoding windows (the arithmetic is in `workflow::schedule`): the
//! loop that closes its gate on new ffmpeg starts outside them and pauses (SIGSTOP) or lets
//! finish its running ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use nix::sys::signal::Signal;

use crate::engine::Engine;
use crate::workflow::schedule::{in_window, parse_moment, LocalMoment, DAYS};
use crate::workflow::schema::{Outside, Schedule};

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

/// Applies one workflow's schedule every second until `stop`: only that workflow's new
/// ffmpeg starts are held back, and only its running processes are paused.
pub async fn enforce(
    engine: Arc<Engine>,
    workflow: String,
    schedule: Schedule,
    clock_file: Option<PathBuf>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut open = true;
    loop {
        let inside = in_window(&schedule, now(clock_file.as_ref()));
        if inside != open {
            open = inside;
            engine.set_gate(&workflow, open);
            match (open, schedule.outside) {
                (false, Outside::Pause) => {
                    let n = engine.signal_gate(&workflow, Signal::SIGSTOP);
                    tracing::info!(
                        %workflow,
                        paused = n,
                        "outside the encoding window: no new tasks, running ffmpeg paused"
                    );
                }
                (false, Outside::Finish) => {
                    tracing::info!(%workflow, "outside the encoding window: no new tasks, running ones finish")
                }
                (true, _) => {
                    let n = engine.signal_gate(&workflow, Signal::SIGCONT);
                    tracing::info!(%workflow, resumed = n, "encoding window open");
                }
            }
        } else if !open && schedule.outside == Outside::Pause {
            // ffmpeg started just before the gate closed: pause it too.
            engine.signal_gate(&workflow, Signal::SIGSTOP);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // Never leave anything stopped behind.
    engine.set_gate(&workflow, true);
    engine.signal_gate(&workflow, Signal::SIGCONT);
}
