//! The tasks a worker holds, and when it may claim one more. A worker claims a task for
//! each free slot, and one more ahead of time when a running encode is about to end: that
//! task's chunk downloads while the encode finishes, so the slot never waits on the
//! network. "About to end" is measured, not guessed: twice the last download's time (at
//! least half a second), against the running encode's pace. Claiming earlier would let this
//! worker sit on a task another idle worker could run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::engine::task::TaskProgress;

const LEAD_MIN: Duration = Duration::from_millis(500);
const LEAD_MAX: Duration = Duration::from_secs(10);
/// Progress is rechecked this often while waiting for room.
const RECHECK: Duration = Duration::from_millis(200);

pub(super) struct Hand {
    slots: usize,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    next: u64,
    held: Vec<Held>,
    lead: Duration,
}

struct Held {
    id: u64,
    /// When its ffmpeg first reported, and the fraction done by then.
    started: Option<Instant>,
    fraction: f64,
}

impl Held {
    /// Time left, from the pace so far; None before the pace is known.
    fn remaining(&self) -> Option<Duration> {
        let started = self.started?;
        if self.fraction < 0.05 {
            return None;
        }
        let elapsed = started.elapsed().as_secs_f64();
        Some(Duration::from_secs_f64(
            elapsed * (1.0 - self.fraction) / self.fraction,
        ))
    }
}

/// One claimed task's place in the hand, until its encode ends (or it is dropped).
pub(super) struct Ticket {
    hand: Arc<Hand>,
    id: u64,
    expected_frames: u64,
    released: bool,
}

impl Hand {
    pub fn new(slots: usize) -> Arc<Hand> {
        Arc::new(Hand {
            slots: slots.max(1),
            state: Mutex::new(State {
                next: 0,
                held: Vec::new(),
                lead: Duration::from_secs(1),
            }),
            changed: Notify::new(),
        })
    }

    /// Whether a claim now keeps every slot busy without hoarding.
    pub fn has_room(&self) -> bool {
        let Ok(s) = self.state.lock() else {
            return false;
        };
        let held = s.held.len();
        held < self.slots
            || (held == self.slots
                && s.held
                    .iter()
                    .any(|h| h.remaining().is_some_and(|r| r <= s.lead)))
    }

    /// Waits until [`Hand::has_room`].
    pub async fn room(&self) {
        while !self.has_room() {
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    /// Holds one more task (taken as soon as it is claimed, before it is even read).
    pub fn take(self: &Arc<Self>) -> Ticket {
        let id = match self.state.lock() {
            Ok(mut s) => {
                s.next += 1;
                let id = s.next;
                s.held.push(Held {
                    id,
                    started: None,
                    fraction: 0.0,
                });
                id
            }
            Err(_) => 0,
        };
        Ticket {
            hand: self.clone(),
            id,
            expected_frames: 1,
            released: false,
        }
    }

    /// A download took `took`: claim ahead by about twice that.
    pub fn learn_download(&self, took: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.lead = (took * 2).clamp(LEAD_MIN, LEAD_MAX);
        }
    }

    /// Tasks held now (claimed, encode not ended).
    pub fn held(&self) -> usize {
        self.state.lock().map_or(0, |s| s.held.len())
    }
}

impl Ticket {
    /// The task's frames, for its fraction done.
    pub fn expect(&mut self, frames: u64) {
        self.expected_frames = frames.max(1);
    }

    pub fn note(&self, p: &TaskProgress) {
        let frames = p.progress.frame.unwrap_or(0) as f64;
        let within = match p.progress.ended {
            true => 1.0,
            false => (frames / self.expected_frames as f64).clamp(0.0, 1.0),
        };
        let fraction = (p.pass as f64 + within) / p.passes.max(1) as f64;
        if let Ok(mut s) = self.hand.state.lock() {
            if let Some(h) = s.held.iter_mut().find(|h| h.id == self.id) {
                h.started.get_or_insert_with(Instant::now);
                h.fraction = fraction;
            }
        }
    }

    /// The encode ended: its slot can take the next task.
    pub fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if let Ok(mut s) = self.hand.state.lock() {
            s.held.retain(|h| h.id != self.id);
        }
        self.hand.changed.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::progress::Progress;

    fn at(frame: u64) -> TaskProgress {
        TaskProgress {
            pass: 0,
            passes: 1,
            progress: Progress {
                frame: Some(frame),
                ..Progress::default()
            },
            worker: None,
        }
    }

    #[test]
    fn claims_one_ahead_only_near_the_end_of_an_encode() {
        let hand = Hand::new(1);
        assert!(hand.has_room());
        let mut t = hand.take();
        t.expect(100);
        assert!(!hand.has_room(), "the slot is busy and the pace unknown");
        t.note(&at(1));
        std::thread::sleep(Duration::from_millis(50));
        t.note(&at(10));
        // 10 % in ~50 ms: ~0.45 s left, within the 1 s lead.
        assert!(hand.has_room());
        let ahead = hand.take();
        assert!(!hand.has_room(), "never more than one ahead");
        drop(t);
        assert_eq!(hand.held(), 1);
        assert!(!hand.has_room(), "the task ahead has not started yet");
        drop(ahead);
        assert!(hand.has_room());
    }

    #[test]
    fn a_long_encode_keeps_the_next_task_for_other_workers() {
        let hand = Hand::new(1);
        let mut t = hand.take();
        t.expect(1000);
        t.note(&at(1));
        std::thread::sleep(Duration::from_millis(60));
        t.note(&at(60));
        // 6 % in 60 ms: about a second left, over a 0.5 s lead.
        hand.learn_download(Duration::from_millis(10));
        assert!(!hand.has_room());
    }
}
