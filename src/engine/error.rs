//! Typed outcomes: why a job stopped ([`JobError`], with its sources), how a stage stops a
//! job ([`JobStop`]), and how a job ended ([`JobEnd`]).

use std::path::PathBuf;

use super::hooks::HookError;
use super::manifest::Manifest;
use super::queue::QueueError;
use super::task::TaskError;
use crate::media::run::RunError;
use crate::media::verify::VerifyError;
use crate::store::{JobStatus, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The input cannot be used: missing, empty, not media, a still image, cut short.
    #[error("{0}")]
    Input(String),
    /// Nothing to encode: every rung is taller than the source, and none is always_encode.
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Hook(#[from] HookError),
    /// One of the job's own ffmpeg runs (chunking, audio, a join, a preview) failed.
    #[error("{context}: {source}")]
    Run {
        context: String,
        #[source]
        source: RunError,
    },
    /// An encode task failed for good (after its retries).
    #[error("{label}: {source}")]
    Task {
        label: String,
        #[source]
        source: TaskError,
    },
    /// A joined output is not what the plan said it would be.
    #[error("{what} failed verification: {source}")]
    Verify {
        what: String,
        #[source]
        source: VerifyError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("quality of {rung}: {message}")]
    Quality { rung: String, message: String },
    #[error("step {step}: {message}")]
    Step { step: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> JobError {
        let context = context.into();
        move |source| JobError::Io { context, source }
    }

    /// The directory whose disk refused a write, when that is why the job failed (the
    /// output directory when an error of ours does not say). A state-store write the disk
    /// refused is the state directory's, which the engine names (`job::outcome`).
    pub fn disk_trouble(&self, fallback: &std::path::Path) -> Option<PathBuf> {
        let from_run = |e: &RunError| match e {
            RunError::Disk { place, .. } => Some(place.clone().unwrap_or_else(|| fallback.into())),
            _ => None,
        };
        match self {
            JobError::Run { source, .. } => from_run(source),
            JobError::Task {
                source: TaskError::Run(e),
                ..
            } => from_run(e),
            JobError::Task {
                source: TaskError::Artifact(e),
                ..
            }
            | JobError::Io { source: e, .. } => {
                crate::media::run::DiskProblem::of(e).map(|_| fallback.to_path_buf())
            }
            _ => None,
        }
    }

    /// The last lines ffmpeg wrote, when an ffmpeg run is the cause.
    pub fn stderr_tail(&self) -> Vec<String> {
        match self {
            JobError::Run { source, .. } => source.stderr_tail().to_vec(),
            JobError::Task { source, .. } => source.stderr_tail().to_vec(),
            _ => Vec::new(),
        }
    }
}

/// How a stage stops a job short of success.
#[derive(Debug)]
pub enum JobStop {
    Cancelled,
    /// A hook chose to skip the file.
    Skipped(String),
    Failed(JobError),
}

impl<E: Into<JobError>> From<E> for JobStop {
    fn from(e: E) -> JobStop {
        JobStop::Failed(e.into())
    }
}

impl JobStop {
    /// An ffmpeg run of the job's own: a cancellation stops, anything else fails.
    pub fn run(context: impl Into<String>) -> impl FnOnce(RunError) -> JobStop {
        let context = context.into();
        move |source| match source {
            RunError::Cancelled => JobStop::Cancelled,
            source => JobStop::Failed(JobError::Run { context, source }),
        }
    }
}

/// A job that succeeded: its manifest, and where it was written.
#[derive(Debug, Clone)]
pub struct Published {
    pub manifest: Manifest,
    pub path: PathBuf,
}

/// How a job ended.
#[derive(Debug)]
pub enum JobEnd {
    Succeeded(Box<Published>),
    Skipped(String),
    Cancelled,
    /// Stopped by a signal (or the daemon's grace period); the same input resumes it.
    Interrupted,
    Failed(JobError),
}

impl JobEnd {
    /// A stage's result, with cancellations told apart by whether the process is stopping.
    pub fn from_result(result: Result<Published, JobStop>, shutting_down: bool) -> JobEnd {
        match result {
            Ok(p) => JobEnd::Succeeded(Box::new(p)),
            Err(JobStop::Cancelled) if shutting_down => JobEnd::Interrupted,
            Err(JobStop::Cancelled) => JobEnd::Cancelled,
            Err(JobStop::Skipped(reason)) => JobEnd::Skipped(reason),
            Err(JobStop::Failed(e)) => JobEnd::Failed(e),
        }
    }

    pub fn status(&self) -> JobStatus {
        match self {
            JobEnd::Succeeded(_) => JobStatus::Succeeded,
            JobEnd::Skipped(_) => JobStatus::Skipped,
            JobEnd::Cancelled => JobStatus::Cancelled,
            JobEnd::Interrupted => JobStatus::Interrupted,
            JobEnd::Failed(_) => JobStatus::Failed,
        }
    }

    /// The reason shown to the user (None on success).
    pub fn reason(&self) -> Option<String> {
        match self {
            JobEnd::Succeeded(_) => None,
            JobEnd::Skipped(r) => Some(r.clone()),
            JobEnd::Cancelled => Some("cancelled".into()),
            JobEnd::Interrupted => Some("interrupted: run the same command again to resume".into()),
            JobEnd::Failed(e) => Some(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_is_an_interruption_only_while_shutting_down() {
        let stop = || Err(JobStop::Cancelled);
        assert_eq!(
            JobEnd::from_result(stop(), true).status(),
            JobStatus::Interrupted
        );
        assert_eq!(
            JobEnd::from_result(stop(), false).status(),
            JobStatus::Cancelled
        );
        let skipped = JobEnd::from_result(Err(JobStop::Skipped("hevc already".into())), true);
        assert_eq!(skipped.status(), JobStatus::Skipped);
        assert_eq!(skipped.reason().as_deref(), Some("hevc already"));
        let failed = JobEnd::from_result(
            Err(JobStop::run("joining p240")(RunError::Fatal {
                message: "No space left on device".into(),
                stderr_tail: vec!["a".into(), "No space left on device".into()],
            })),
            true,
        );
        assert_eq!(
            failed.status(),
            JobStatus::Failed,
            "a failure is not an interruption"
        );
        let JobEnd::Failed(e) = failed else {
            unreachable!()
        };
        assert!(e.to_string().starts_with("joining p240: "));
        assert_eq!(e.stderr_tail().len(), 2);
        let cancelled = JobStop::run("x")(RunError::Cancelled);
        assert!(matches!(cancelled, JobStop::Cancelled));
    }
}
