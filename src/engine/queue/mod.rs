//! Where encode tasks wait and who runs them. The coordinator submits a task and reads its
//! events (progress, then one result); workers claim tasks, renew their lease while they
//! run, and complete or fail them. [`LocalQueue`] does both in-process (the default); a
//! distributed backend implements the same two traits.

mod local;
pub mod remote;

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use local::LocalQueue;

use super::task::{execute, EncodeTask, ExecEnv, TaskError, TaskProgress, TaskResult};
use crate::store::TaskId;

/// What the coordinator hears about a submitted task: progress, then exactly one result.
#[derive(Debug)]
pub enum TaskEvent {
    Progress(TaskProgress),
    Finished(Result<TaskResult, TaskError>),
}

pub type TaskEvents = mpsc::UnboundedReceiver<TaskEvent>;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the task queue is closed")]
    Closed,
    #[error("task {0} is not claimed by this worker")]
    NotClaimed(TaskId),
}

/// The coordinator's side.
pub trait TaskQueue: Send + Sync {
    /// Queues a task; its events arrive on the returned channel.
    fn submit(&self, task: EncodeTask) -> Result<TaskEvents, QueueError>;
    /// Stops a task: dropped if it waits, killed if it runs (it then fails as cancelled).
    fn cancel(&self, task: &TaskId);
    /// The file of an input a remote worker may download, by SHA-256 (none for a local queue).
    fn offered(&self, _sha256: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// A workflow's schedule opened or closed: a distributed queue holds back (and tells its
    /// workers); the local queue needs nothing, the runner's gates do it.
    fn set_gate(&self, _gate: &str, _open: bool) {}
    /// A closed schedule pauses (or resumes) the workflow's running encodes: a distributed
    /// queue tells its workers to SIGSTOP (SIGCONT) theirs; locally the runner does it.
    fn pause_gate(&self, _gate: &str, _paused: bool) {}
}

/// 64 lowercase hex digits: how blobs and uploads are named.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A task a worker holds.
pub struct Claim {
    pub task: EncodeTask,
    /// Cancelled when the coordinator cancels the task or the lease is lost.
    pub cancel: CancellationToken,
}

/// The worker's side.
pub trait WorkSource: Send + Sync {
    /// The next task by priority; waits for one. None once the queue is closed.
    fn claim(&self) -> BoxFuture<'_, Result<Option<Claim>, QueueError>>;
    /// Keeps the lease while the task runs, and reports its progress.
    fn renew(&self, claim: &Claim, progress: TaskProgress) -> Result<(), QueueError>;
    fn complete(&self, claim: Claim, result: TaskResult) -> Result<(), QueueError>;
    fn fail(&self, claim: Claim, error: TaskError) -> Result<(), QueueError>;
}

/// One worker: claims, executes and reports tasks until the source closes.
pub async fn work(source: Arc<dyn WorkSource>, env: Arc<ExecEnv>) {
    loop {
        let claim = match source.claim().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "claiming a task failed; the worker stops");
                return;
            }
        };
        let cancel = claim.cancel.clone();
        let outcome = execute(&env, &claim.task, &cancel, |p| {
            if let Err(e) = source.renew(&claim, p) {
                tracing::warn!(error = %e, "renewing a task's lease failed");
            }
        })
        .await;
        let reported = match outcome {
            Ok(result) => source.complete(claim, result),
            Err(error) => source.fail(claim, error),
        };
        if let Err(e) = reported {
            tracing::warn!(error = %e, "reporting a task's end failed");
        }
    }
}
