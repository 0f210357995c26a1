//! The live board: what the engine is doing right now (running jobs and their tasks'
//! progress), kept from the engine's events for the dashboard's push stream. The store holds
//! everything durable; this holds only what changes many times a second and is lost harmlessly.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::engine::Event;
use crate::store::JobId;

/// Counters bumped on each change; a push stream sends what moved since it last looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Progress of running jobs (memory only).
    pub live: u64,
    /// Something the store shows: a job started or ended, a folder paused, a file retried.
    pub state: u64,
}

/// One running job as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveJob {
    pub id: JobId,
    pub input: String,
    pub rungs: Vec<String>,
    pub tasks_planned: usize,
    pub fraction: f64,
    pub elapsed_s: f64,
    /// Seconds left at the pace so far; absent until there is a pace to go by.
    pub eta_s: Option<f64>,
    pub tasks: BTreeMap<String, LiveTask>,
    pub notes: Vec<String>,
    #[serde(skip)]
    started: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveTask {
    pub fraction: f64,
    pub fps: Option<f64>,
    pub speed: Option<f64>,
    pub eta_s: Option<f64>,
    pub done: bool,
    pub reused: usize,
    #[serde(skip)]
    started: Instant,
}

/// Notes kept per job (the latest ones; a job may log many).
const NOTES_KEPT: usize = 5;

pub struct LiveBoard {
    jobs: Mutex<HashMap<JobId, LiveJob>>,
    changes: watch::Sender<Changes>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        LiveBoard {
            jobs: Mutex::new(HashMap::new()),
            changes: watch::Sender::new(Changes::default()),
        }
    }
}

/// Time left at the pace so far: `elapsed × (1 − f) / f`, once a little progress is made.
fn eta(elapsed_s: f64, fraction: f64) -> Option<f64> {
    (fraction > 0.005 && fraction < 1.0).then(|| elapsed_s * (1.0 - fraction) / fraction)
}

impl LiveBoard {
    /// Applies the engine's events until the engine drops its sender.
    pub async fn follow(&self, mut events: UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.apply(event);
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Changes> {
        self.changes.subscribe()
    }

    /// The store changed in a way the dashboard shows (a retry, a pause).
    pub fn touch_state(&self) {
        self.changes.send_modify(|c| c.state += 1);
    }

    /// Running jobs, oldest first, with their elapsed time and ETA as of now.
    pub fn running(&self) -> Vec<LiveJob> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        let mut list: Vec<LiveJob> = jobs
            .values()
            .map(|j| {
                let mut j = j.clone();
                j.elapsed_s = j.started.elapsed().as_secs_f64();
                j.eta_s = eta(j.elapsed_s, j.fraction);
                for t in j.tasks.values_mut() {
                    if !t.done {
                        t.eta_s = eta(t.started.elapsed().as_secs_f64(), t.fraction);
                    }
                }
                j
            })
            .collect();
        list.sort_by_key(|j| std::cmp::Reverse(j.elapsed_s.to_bits()));
        list
    }

    pub fn apply(&self, event: Event) {
        let state_changed = matches!(event, Event::JobStarted { .. } | Event::JobFinished(_));
        if let Ok(mut jobs) = self.jobs.lock() {
            update(&mut jobs, event);
        }
        self.changes.send_modify(|c| {
            c.live += 1;
            if state_changed {
                c.state += 1;
            }
        });
    }
}

fn update(jobs: &mut HashMap<JobId, LiveJob>, event: Event) {
    match event {
        Event::JobStarted {
            job,
            input,
            tasks,
            rungs,
        } => {
            jobs.insert(
                job.clone(),
                LiveJob {
                    id: job,
                    input,
                    rungs,
                    tasks_planned: tasks,
                    fraction: 0.0,
                    elapsed_s: 0.0,
                    eta_s: None,
                    tasks: BTreeMap::new(),
                    notes: Vec::new(),
                    started: Instant::now(),
                },
            );
        }
        Event::Note { job, message } => {
            if let Some(j) = jobs.get_mut(&job) {
                j.notes.push(message);
                let extra = j.notes.len().saturating_sub(NOTES_KEPT);
                j.notes.drain(..extra);
            }
        }
        Event::TaskProgress {
            job,
            task,
            fraction,
            fps,
            speed,
        } => {
            if let Some(j) = jobs.get_mut(&job) {
                let t = j.tasks.entry(task).or_insert_with(new_task);
                t.fraction = fraction.clamp(0.0, 1.0);
                t.fps = fps;
                t.speed = speed;
            }
        }
        Event::TaskFinished { job, task, reused } => {
            if let Some(j) = jobs.get_mut(&job) {
                let t = j.tasks.entry(task).or_insert_with(new_task);
                t.fraction = 1.0;
                t.done = true;
                t.reused = reused;
                t.eta_s = None;
            }
        }
        Event::JobProgress { job, fraction } => {
            if let Some(j) = jobs.get_mut(&job) {
                j.fraction = fraction.clamp(0.0, 1.0);
            }
        }
        Event::JobFinished(outcome) => {
            if let Some(id) = outcome.id {
                jobs.remove(&id);
            }
        }
    }
}

fn new_task() -> LiveTask {
    LiveTask {
        fraction: 0.0,
        fps: None,
        speed: None,
        eta_s: None,
        done: false,
        reused: 0,
        started: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(id: &str) -> Event {
        Event::JobStarted {
            job: JobId(id.into()),
            input: "in.mp4".into(),
            tasks: 2,
            rungs: vec!["360p".into()],
        }
    }

    #[test]
    fn a_job_is_on_the_board_from_start_to_finish_with_its_tasks_progress() {
        let board = LiveBoard::default();
        let mut changes = board.subscribe();
        board.apply(started("a"));
        board.apply(Event::TaskProgress {
            job: JobId("a".into()),
            task: "chunk 0".into(),
            fraction: 0.5,
            fps: Some(120.0),
            speed: Some(4.0),
        });
        board.apply(Event::JobProgress {
            job: JobId("a".into()),
            fraction: 0.25,
        });
        let running = board.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].fraction, 0.25);
        assert_eq!(running[0].tasks["chunk 0"].fps, Some(120.0));
        assert!(changes.has_changed().unwrap_or(false));
        let seen = *changes.borrow_and_update();
        assert_eq!(seen, Changes { live: 3, state: 1 });
        board.apply(Event::TaskFinished {
            job: JobId("a".into()),
            task: "chunk 0".into(),
            reused: 1,
        });
        assert!(board.running()[0].tasks["chunk 0"].done);
    }

    #[test]
    fn eta_needs_some_progress_and_is_none_when_done() {
        assert_eq!(eta(10.0, 0.0), None);
        assert_eq!(eta(10.0, 1.0), None);
        assert_eq!(eta(10.0, 0.5), Some(10.0));
    }
}
