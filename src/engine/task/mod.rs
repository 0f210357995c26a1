//! Encode tasks: the serialisable spec, the one `execute` every queue backend calls, and
//! the coordinator's retry policy.

pub mod execute;
pub mod retry;
pub mod spec;

pub use execute::{execute, verify_rung, ExecEnv};
pub use spec::{EncodeTask, LocalPaths, OutputPaths, TaskRung};

use serde::{Deserialize, Serialize};

use crate::media::progress::Progress;
use crate::media::run::RunError;
use crate::media::verify::VerifyError;
use crate::store::CacheRecord;

/// How far a running task is: which of its commands, and that command's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskProgress {
    pub pass: usize,
    pub passes: usize,
    pub progress: Progress,
    /// The remote worker running it (None on this machine).
    #[serde(default)]
    pub worker: Option<String>,
}

impl TaskProgress {
    /// The task's fraction done, given its input's duration.
    pub fn fraction(&self, duration: f64) -> f64 {
        (self.pass as f64 + self.progress.fraction_of(duration)) / self.passes.max(1) as f64
    }
}

/// A finished task: one verified artifact per rung, in the task's rung order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    pub artifacts: Vec<CacheRecord>,
}

/// Why one attempt at a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Run(RunError),
    /// The encoder ran, but what it wrote is not what the task asked for.
    #[error("encoded {rung} is wrong: {source}")]
    Verify {
        rung: String,
        #[source]
        source: VerifyError,
    },
    #[error("the task's input is unusable: {0}")]
    Input(String),
    #[error("storing the result: {0}")]
    Artifact(#[source] std::io::Error),
    #[error(transparent)]
    Render(#[from] spec::RenderError),
    /// A remote worker's attempt failed, or what it sent back was refused.
    #[error("on worker {worker}: {message}")]
    Remote {
        worker: String,
        message: String,
        fatal: bool,
    },
    /// Every attempt failed; each one's reason, in order.
    #[error("failed {} times: {}", .0.len(), numbered(.0))]
    Attempts(Vec<String>),
    #[error("cancelled")]
    Cancelled,
}

fn numbered(reasons: &[String]) -> String {
    reasons
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{}) {r}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl TaskError {
    /// Retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        match self {
            TaskError::Run(e) => e.is_fatal(),
            TaskError::Input(_) | TaskError::Render(_) | TaskError::Cancelled => true,
            // Decoding is deterministic: the same input gives the same frames again.
            TaskError::Verify {
                source: crate::media::verify::VerifyError::Frames { .. },
                ..
            } => true,
            TaskError::Remote { fatal, .. } => *fatal,
            TaskError::Attempts(_) => true,
            TaskError::Verify { .. } | TaskError::Artifact(_) => false,
        }
    }

    /// What kind of failure it is, as on_error hooks see it.
    pub fn class(&self) -> &'static str {
        match self {
            TaskError::Run(_) => "run",
            TaskError::Verify { .. } => "verify",
            TaskError::Input(_) => "input",
            TaskError::Artifact(_) => "artifact",
            TaskError::Render(_) => "render",
            TaskError::Remote { .. } => "remote",
            TaskError::Attempts(_) => "attempts",
            TaskError::Cancelled => "cancelled",
        }
    }

    pub fn stderr_tail(&self) -> &[String] {
        match self {
            TaskError::Run(e) => e.stderr_tail(),
            _ => &[],
        }
    }
}

impl From<RunError> for TaskError {
    fn from(e: RunError) -> TaskError {
        match e {
            RunError::Cancelled => TaskError::Cancelled,
            e => TaskError::Run(e),
        }
    }
}
