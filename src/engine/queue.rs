//! The task queue: a trait, so a distributed backend can replace the local one,
//! and the local implementation: priority slots that cap concurrent ffmpeg processes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::media::profiles::Rung;
use crate::media::progress::Progress;
use crate::media::run::{run_ffmpeg, RunError};
use crate::media::tools::Tools;

/// Lower runs first: (job sequence, rung rank, chunk).
pub type Priority = (u64, u32, u32);

/// One encode of one input into one or more rungs: its ffmpeg commands, run in order
/// (two for 2-pass). Self-contained and serializable, so a remote worker with the same
/// storage could run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncodeTask {
    pub label: String,
    pub commands: Vec<Vec<std::ffi::OsString>>,
    pub priority: Priority,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncodeOutput {
    pub rung: Rung,
    pub path: PathBuf,
    pub passlog: PathBuf,
    pub scale: bool,
}

/// Receives (pass index, pass count, progress of that pass).
pub type ProgressSink = Box<dyn FnMut(usize, usize, &Progress) + Send>;
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<(), RunError>> + Send>>;

/// Where encode tasks run.
pub trait TaskQueue: Send + Sync {
    /// Runs the task's commands in order; resolves when they finished, failed or were cancelled.
    fn submit(
        &self,
        task: EncodeTask,
        cancel: CancellationToken,
        on_progress: ProgressSink,
    ) -> TaskFuture;
}

/// Runs tasks on this machine, at most `slots` ffmpeg processes at a time.
pub struct LocalQueue {
    tools: Tools,
    slots: Arc<Slots>,
    /// Every ffmpeg argv run, for replay by the benchmark.
    trace: Option<Arc<Mutex<std::fs::File>>>,
}

impl LocalQueue {
    pub fn new(
        tools: Tools,
        slots: Arc<Slots>,
        trace: Option<Arc<Mutex<std::fs::File>>>,
    ) -> LocalQueue {
        LocalQueue {
            tools,
            slots,
            trace,
        }
    }
}

impl TaskQueue for LocalQueue {
    fn submit(
        &self,
        task: EncodeTask,
        cancel: CancellationToken,
        mut on_progress: ProgressSink,
    ) -> TaskFuture {
        let (tools, slots, trace) = (self.tools.clone(), self.slots.clone(), self.trace.clone());
        Box::pin(async move {
            let commands = task.commands;
            let passes = commands.len();
            for (i, argv) in commands.iter().enumerate() {
                let _slot = tokio::select! {
                    s = slots.acquire(task.priority) => s,
                    _ = cancel.cancelled() => return Err(RunError::Cancelled),
                };
                trace_command(trace.as_deref(), "encode", argv);
                run_ffmpeg(&tools, argv, &cancel, |p| on_progress(i, passes, p)).await?;
            }
            Ok(())
        })
    }
}

/// Appends one JSON line {phase, argv} to the command trace.
pub fn trace_command(
    trace: Option<&Mutex<std::fs::File>>,
    phase: &str,
    argv: &[std::ffi::OsString],
) {
    use std::io::Write;
    if let Some(file) = trace {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = serde_json::json!({ "phase": phase, "argv": argv });
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A counting semaphore that wakes the lowest priority value first.
pub struct Slots {
    state: Mutex<SlotState>,
}

struct SlotState {
    free: usize,
    open: bool,
    seq: u64,
    waiting: BinaryHeap<Reverse<(Priority, u64, WaiterTx)>>,
}

struct WaiterTx(oneshot::Sender<()>);
impl PartialEq for WaiterTx {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for WaiterTx {}
impl PartialOrd for WaiterTx {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for WaiterTx {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Holding one means one ffmpeg may run; dropping it wakes the next waiter.
pub struct SlotGuard {
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(SlotState {
                free: count.max(1),
                open: true,
                seq: 0,
                waiting: BinaryHeap::new(),
            }),
        })
    }

    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> SlotGuard {
        let rx = {
            let Ok(mut st) = self.state.lock() else {
                return SlotGuard {
                    slots: self.clone(),
                };
            };
            if st.open && st.free > 0 && st.waiting.is_empty() {
                st.free -= 1;
                return SlotGuard {
                    slots: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            st.seq += 1;
            let seq = st.seq;
            st.waiting.push(Reverse((priority, seq, WaiterTx(tx))));
            rx
        };
        let mut pending = PendingSlot {
            rx: Some(rx),
            slots: self.clone(),
        };
        if let Some(rx) = pending.rx.as_mut() {
            // The sender is only dropped after a slot was handed over; either way we hold one now.
            let _ = rx.await;
        }
        pending.rx = None;
        SlotGuard {
            slots: self.clone(),
        }
    }

    fn release(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.free += 1;
        Self::hand_out(&mut st);
    }

    /// Gives free slots to the best waiters still waiting, unless the gate is closed.
    fn hand_out(st: &mut SlotState) {
        while st.open && st.free > 0 {
            let Some(Reverse((_, _, WaiterTx(tx)))) = st.waiting.pop() else {
                return;
            };
            if tx.send(()).is_ok() {
                st.free -= 1;
            }
        }
    }

    /// Closed: no new ffmpeg starts (a schedule window ended); running ones keep their slots.
    pub fn set_open(&self, open: bool) {
        if let Ok(mut st) = self.state.lock() {
            st.open = open;
            Self::hand_out(&mut st);
        }
    }
}

/// A waiter dropped (cancelled) just after being granted a slot must give it back.
struct PendingSlot {
    rx: Option<oneshot::Receiver<()>>,
    slots: Arc<Slots>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release();
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_cap_concurrency_and_wake_by_priority() {
        let slots = Slots::new(1);
        let first = slots.acquire((0, 0, 0)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for p in [5u32, 1, 3] {
            let (s, o) = (slots.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                let _g = s.acquire((0, p, 0)).await;
                if let Ok(mut o) = o.lock() {
                    o.push(p);
                }
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(first);
        for h in handles {
            let _ = h.await;
        }
        let got = order.lock().map(|o| o.clone()).unwrap_or_default();
        assert_eq!(got, [1, 3, 5]);
    }
}
