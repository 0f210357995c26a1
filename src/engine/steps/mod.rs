//! The workflow's extra steps, behind one trait: each kind checks itself against the job,
//! plans its commands (shown by `spool plan`), and runs once the ladder is published. Each
//! step's files are made in the work directory, checked, then published; the manifest
//! (written after) lists them.

mod hls;
mod lua;
mod publish;
mod thumbnails;
mod transcribe;

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use publish::{publish_dir, publish_step_file};

use super::error::{JobError, JobStop};
use super::exec::{Command, Placement, Runner};
use super::hooks::JobScript;
use super::manifest::OutputEntry;
use super::plan::PlanInputs;
use crate::media::probe::{MediaInfo, VideoStream};
use crate::media::thumbs::SpriteLayout;
use crate::store::JobId;
use crate::workflow::Step;

/// A published rung's file, as steps see it in the plan.
#[derive(Debug, Clone)]
pub struct RungFile {
    pub name: String,
    pub path: PathBuf,
}

/// What a step will do.
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub label: String,
    /// Its ffmpeg commands, in the order it runs them.
    pub commands: Vec<Command>,
    /// The files it publishes, as far as they are known before it runs.
    pub outputs: Vec<String>,
    pub detail: StepDetail,
}

#[derive(Debug, Clone)]
pub enum StepDetail {
    Lua {
        function: String,
    },
    /// Each rung's directory; each audio and subtitle rendition's, with its tags.
    Hls {
        rungs: Vec<(String, PathBuf)>,
        audio: Vec<(PathBuf, crate::media::join::TrackTags)>,
        subtitles: Vec<(PathBuf, crate::media::join::TrackTags)>,
    },
    Thumbnails {
        dir: PathBuf,
        poster_time: f64,
        layout: SpriteLayout,
    },
    Transcribe {
        dir: PathBuf,
        pcm: Option<PathBuf>,
    },
}

/// What a step runs with.
pub struct StepCtx<'a> {
    pub job: &'a JobId,
    pub input: &'a Path,
    pub work: &'a Path,
    pub out_dir: &'a Path,
    pub base_dir: &'a Path,
    pub stem: &'a str,
    pub media: &'a MediaInfo,
    pub video: &'a VideoStream,
    pub runner: &'a Runner,
    /// For results kept by content (transcripts).
    pub repo: &'a std::sync::Arc<dyn crate::store::Repo>,
    /// Progress of work that is not an ffmpeg (Whisper), as task events.
    pub events: &'a tokio::sync::mpsc::UnboundedSender<crate::engine::Event>,
    /// Work again even where a kept result exists.
    pub force: bool,
    pub placement: &'a Placement,
    pub cancel: &'a CancellationToken,
    pub script: &'a JobScript,
    /// Everything published before this step.
    pub published: &'a [OutputEntry],
}

/// What a step published, and its data for the manifest.
pub struct StepDone {
    pub outputs: Vec<OutputEntry>,
    pub data: Value,
}

#[derive(Debug)]
pub enum StepError {
    Cancelled,
    Failed(String),
}

impl From<String> for StepError {
    fn from(message: String) -> StepError {
        StepError::Failed(message)
    }
}

impl StepError {
    pub fn into_stop(self, step: &str) -> JobStop {
        match self {
            StepError::Cancelled => JobStop::Cancelled,
            StepError::Failed(message) => JobStop::Failed(JobError::Step {
                step: step.to_string(),
                message,
            }),
        }
    }
}

pub trait StepKind: Send + Sync {
    /// Whether the step can work on this job, checked before anything is encoded.
    fn validate(&self, inputs: &PlanInputs<'_>) -> Result<(), String>;
    fn plan(&self, inputs: &PlanInputs<'_>, rungs: &[RungFile]) -> StepPlan;
    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>>;
}

pub fn kind_of(step: &Step) -> &dyn StepKind {
    match step {
        Step::Lua(s) => s,
        Step::Hls(s) => s,
        Step::Thumbnails(s) => s,
        Step::Transcribe(s) => s,
    }
}

/// Runs one planned command of a step.
async fn ffmpeg(ctx: &StepCtx<'_>, command: &Command) -> Result<(), StepError> {
    match ctx
        .runner
        .run(command, ctx.placement, ctx.cancel, |_| {})
        .await
    {
        Ok(_) => Ok(()),
        Err(crate::media::run::RunError::Cancelled) => Err(StepError::Cancelled),
        Err(e) => Err(StepError::Failed(format!("{}: {e}", command.label))),
    }
}
