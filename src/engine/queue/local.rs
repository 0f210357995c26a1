//! The in-process queue: tasks wait in priority order; the engine's own workers claim them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{Claim, QueueError, TaskEvent, TaskEvents, TaskQueue, WorkSource};
use crate::engine::exec::Priority;
use crate::engine::task::{EncodeTask, TaskError, TaskProgress, TaskResult};
use crate::store::TaskId;

struct Entry {
    task: Option<EncodeTask>,
    events: mpsc::UnboundedSender<TaskEvent>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    /// (priority, arrival) → task; the first is claimed next.
    waiting: BTreeMap<(Priority, u64), TaskId>,
    entries: HashMap<TaskId, Entry>,
    arrivals: u64,
    closed: bool,
}

#[derive(Default)]
pub struct LocalQueue {
    state: Mutex<State>,
    wake: Notify,
}

impl LocalQueue {
    pub fn new() -> LocalQueue {
        LocalQueue::default()
    }

    /// No more claims: waiting workers return.
    pub fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
        }
        self.wake.notify_waiters();
    }

    fn send(&self, id: &TaskId, event: TaskEvent, last: bool) -> Result<(), QueueError> {
        let mut st = self.state.lock().map_err(|_| QueueError::Closed)?;
        let entry = match last {
            true => st.entries.remove(id),
            false => st.entries.get(id).map(|e| Entry {
                task: None,
                events: e.events.clone(),
                cancel: e.cancel.clone(),
            }),
        }
        .ok_or_else(|| QueueError::NotClaimed(id.clone()))?;
        // The submitter may have stopped listening (its job ended); that is not an error.
        let _ = entry.events.send(event);
        Ok(())
    }
}

impl TaskQueue for LocalQueue {
    fn submit(&self, task: EncodeTask) -> Result<TaskEvents, QueueError> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut st = self.state.lock().map_err(|_| QueueError::Closed)?;
            if st.closed {
                return Err(QueueError::Closed);
            }
            st.arrivals += 1;
            let key = (task.priority, st.arrivals);
            st.waiting.insert(key, task.id.clone());
            st.entries.insert(
                task.id.clone(),
                Entry {
                    task: Some(task),
                    events: tx,
                    cancel: CancellationToken::new(),
                },
            );
        }
        self.wake.notify_one();
        Ok(rx)
    }

    fn cancel(&self, task: &TaskId) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let waiting = st
            .waiting
            .iter()
            .find(|(_, id)| *id == task)
            .map(|(k, _)| *k);
        if let Some(k) = waiting {
            st.waiting.remove(&k);
            if let Some(e) = st.entries.remove(task) {
                let _ = e
                    .events
                    .send(TaskEvent::Finished(Err(TaskError::Cancelled)));
            }
        } else if let Some(e) = st.entries.get(task) {
            // Claimed: the worker's execute sees the token and kills its ffmpeg.
            e.cancel.cancel();
        }
    }
}

impl WorkSource for LocalQueue {
    fn claim(&self) -> BoxFuture<'_, Result<Option<Claim>, QueueError>> {
        Box::pin(async move {
            loop {
                let woken = self.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                {
                    let mut st = self.state.lock().map_err(|_| QueueError::Closed)?;
                    if st.closed {
                        return Ok(None);
                    }
                    if let Some((_, id)) = st.waiting.pop_first() {
                        if let Some(task) = st
                            .entries
                            .get_mut(&id)
                            .and_then(|e| e.task.take().map(|t| (t, e.cancel.clone())))
                        {
                            return Ok(Some(Claim {
                                task: task.0,
                                cancel: task.1,
                            }));
                        }
                        continue;
                    }
                }
                woken.await;
            }
        })
    }

    fn renew(&self, claim: &Claim, progress: TaskProgress) -> Result<(), QueueError> {
        self.send(&claim.task.id, TaskEvent::Progress(progress), false)
    }

    fn complete(&self, claim: Claim, result: TaskResult) -> Result<(), QueueError> {
        self.send(&claim.task.id, TaskEvent::Finished(Ok(result)), true)
    }

    fn fail(&self, claim: Claim, error: TaskError) -> Result<(), QueueError> {
        self.send(&claim.task.id, TaskEvent::Finished(Err(error)), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::task::{spec::ArgvTemplate, LocalPaths};
    use crate::media::hash::FileDigest;

    fn task(index: u32, priority: Priority) -> EncodeTask {
        EncodeTask {
            id: TaskId {
                job: "j".into(),
                index,
            },
            label: format!("t{index}"),
            input: FileDigest {
                md5: String::new(),
                sha256: String::new(),
                size: 0,
            },
            rungs: vec![],
            expected_frames: 1,
            commands: vec![ArgvTemplate(vec![])],
            priority,
            gate: "w".into(),
            local: LocalPaths {
                input: "/i".into(),
                work: "/w".into(),
            },
        }
    }

    #[tokio::test]
    async fn claims_follow_priority_and_results_reach_the_submitter() -> Result<(), QueueError> {
        let q = LocalQueue::new();
        let mut low = q.submit(task(0, (0, 5, 0)))?;
        let _high = q.submit(task(1, (0, 1, 0)))?;
        let first = q.claim().await?.ok_or(QueueError::Closed)?;
        assert_eq!(first.task.id.index, 1, "the better priority first");
        let second = q.claim().await?.ok_or(QueueError::Closed)?;
        q.complete(second, TaskResult { artifacts: vec![] })?;
        assert!(matches!(low.recv().await, Some(TaskEvent::Finished(Ok(_)))));
        // Cancelling a claimed task trips its token; a waiting one is answered at once.
        q.cancel(&first.task.id);
        assert!(first.cancel.is_cancelled());
        let mut waiting = q.submit(task(2, (0, 0, 0)))?;
        q.cancel(&TaskId {
            job: "j".into(),
            index: 2,
        });
        assert!(matches!(
            waiting.recv().await,
            Some(TaskEvent::Finished(Err(TaskError::Cancelled)))
        ));
        q.close();
        assert!(q.claim().await?.is_none());
        Ok(())
    }
}
