//! `spool plan`: the same analysis, hooks and planner a run uses, printed instead of run.
//! Chunks are predicted from the source's keyframes; nothing is encoded and no state is
//! written.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::analysis::{analyse, probe_source};
use super::chunks::{plan_chunking, predicted_chunks, ChunkRef, ChunkingPlan};
use super::{plan_job, stem_of, JobPlan, PlanInputs};
use crate::engine::error::JobError;
use crate::engine::exec::{Command, Placement, Runner};
use crate::engine::hooks::{script_params, JobScript, ScriptDeps};
use crate::media::hash::digest_file;
use crate::media::probe::keyframe_times;
use crate::media::tools::Tools;
use crate::script::JobScope;
use crate::store::JobId;
use crate::workflow::LoadedWorkflow;

#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub input: String,
    pub workflow: String,
    pub workflow_hash: String,
    /// Set when on_discover would skip the file; nothing else is planned then.
    pub skip: Option<String>,
    pub rungs: Vec<String>,
    pub skipped_rungs: Vec<String>,
    /// None when the file is chunked; otherwise why it is encoded whole.
    pub whole_file_reason: Option<String>,
    /// How the source is chunked, and why.
    pub chunking: super::chunks::ChunkingSummary,
    /// Chunks predicted from the source's keyframes (1 when encoded whole).
    pub chunks: usize,
    /// Every command in the order the run starts them (tasks and audio run side by side).
    pub commands: Vec<PlannedCommand>,
    /// The files the job publishes, relative to its output directory.
    pub outputs: Vec<String>,
    /// Source streams left out, with why.
    pub dropped: Vec<super::streams::Dropped>,
    /// The picture decision: deinterlace, crop, rotation.
    pub picture: crate::media::picture::Picture,
    /// Each measured audio track's loudness (source track, measurement).
    pub loudness: Vec<(usize, crate::media::measure::Loudness)>,
    /// What could not be measured.
    pub notes: Vec<String>,
    /// The CRF search each quality rung runs before encoding (its probe and score commands
    /// depend on what the probes measure, so only the search is shown; the encode commands
    /// below carry the search's starting CRF, which the run replaces with the chosen one).
    pub quality: Vec<super::quality::SearchPlan>,
    /// `ladder: per_title`: the sampling it runs before encoding (the rungs listed are its
    /// candidates; a run encodes those the hull chooses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<super::ladder::LadderPlan>,
    /// The work directory the paths above use; a run uses `<state>/work/<job id>`.
    pub work_dir: String,
}

#[derive(Debug, Serialize)]
pub struct PlannedCommand {
    pub phase: String,
    pub label: String,
    /// The whole command line, program first.
    pub argv: Vec<String>,
}

/// Every command of a plan, in order: segment, encodes, audio, joins, GIF, steps.
pub fn commands_of<'a>(segment: Option<&'a Command>, plan: &'a JobPlan) -> Vec<&'a Command> {
    segment
        .into_iter()
        .chain(plan.tasks.iter().flat_map(|t| &t.commands))
        .chain(plan.audio.iter().map(|a| &a.command))
        .chain(plan.joins.iter().map(|j| &j.command))
        .chain(plan.gif.iter().map(|g| &g.command))
        .chain(plan.steps.iter().flat_map(|s| &s.commands))
        .collect()
}

/// Plans `input` as a run into `out_root` would, using `work` as the work directory.
pub async fn plan_input(
    tools: &Tools,
    wf: &LoadedWorkflow,
    input: &Path,
    out_root: &Path,
    work: &Path,
) -> Result<PlanReport, JobError> {
    let source = probe_source(tools, input).await?;
    let owned = input.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || digest_file(&owned))
        .await
        .map_err(|e| JobError::Internal(e.to_string()))?
        .map_err(|e| JobError::Input(format!("{}: {e}", input.display())))?;
    let job = JobId("plan".into());
    let out_dir = out_root.join(stem_of(input));
    std::fs::create_dir_all(work.join("enc")).map_err(JobError::io(work.display().to_string()))?;
    let runner = Arc::new(Runner::new(tools.clone(), 1, None, Default::default()));
    let deps = ScriptDeps {
        runner: runner.clone(),
        log: None,
        cancel: CancellationToken::new(),
        placement: Placement {
            priority: (0, 0, 0),
            gate: Arc::from(wf.workflow.name.as_str()),
            paths: Default::default(),
        },
    };
    let scope = JobScope {
        job: job.0.clone(),
        params: script_params(wf),
        input: input.to_path_buf(),
        work_dir: work.to_path_buf(),
        out_dir: out_dir.clone(),
    };
    let script = JobScript::load(deps, wf, scope).await?;
    let decision = script
        .decide(&wf.workflow, input, &digest.md5, digest.size, &source.media)
        .await?;
    let mut report = PlanReport {
        input: input.display().to_string(),
        workflow: wf.workflow.name.clone(),
        workflow_hash: wf.content_hash.clone(),
        skip: decision.skip.clone(),
        rungs: Vec::new(),
        skipped_rungs: Vec::new(),
        quality: Vec::new(),
        ladder: None,
        whole_file_reason: None,
        chunking: Default::default(),
        chunks: 0,
        commands: Vec::new(),
        outputs: Vec::new(),
        dropped: Vec::new(),
        picture: Default::default(),
        loudness: Vec::new(),
        notes: Vec::new(),
        work_dir: work.display().to_string(),
    };
    if decision.skip.is_some() {
        return Ok(report);
    }
    let workflow = decision.workflow;
    let analysis = analyse(tools, &workflow, &source, input).await;
    let inputs = PlanInputs {
        workflow: &workflow,
        media: &source.media,
        video: &source.video,
        input,
        work,
        out_dir: &out_dir,
        base_dir: &wf.base_dir,
        analysis: &analysis,
    };
    let chunking = plan_chunking(&inputs);
    let (reason, chunks, segment) = match &chunking {
        ChunkingPlan::Whole { reason } => (
            Some(reason.clone()),
            vec![ChunkRef::whole(&inputs, None)],
            None,
        ),
        ChunkingPlan::Ranges(ranges) => (None, ChunkRef::ranges(&inputs, ranges, None), None),
        ChunkingPlan::Segment(s) => {
            let keys = keyframe_times(tools, input)
                .await
                .map_err(|e| JobError::Input(e.to_string()))?;
            let end = source.video.start_time + source.media.duration;
            let seconds = workflow.chunking.segment_seconds;
            (
                None,
                predicted_chunks(s, &keys, seconds, end),
                Some(&s.command),
            )
        }
    };
    let mut plan = plan_job(&inputs, reason, chunks).map_err(|e| JobError::Plan(e.to_string()))?;
    script.hook_tasks(&job, work, &mut plan).await?;
    report.rungs = plan.rungs.iter().map(|r| r.name.clone()).collect();
    report.skipped_rungs = plan.skipped_rungs.clone();
    report.whole_file_reason = plan.whole_file_reason.clone();
    report.chunking = plan.chunking.clone();
    report.chunks = plan.chunks.len();
    report.dropped = plan.dropped.clone();
    report.picture = plan.picture.clone();
    report.loudness = plan.loudness.clone();
    report.notes = plan.notes.clone();
    report.quality = plan.searches.clone();
    report.ladder = plan.ladder.clone();
    report.outputs = plan
        .joins
        .iter()
        .map(|j| j.final_name.clone())
        .chain(plan.gif.iter().map(|g| g.final_name.clone()))
        .chain(plan.steps.iter().flat_map(|s| s.outputs.clone()))
        .collect();
    report.commands = commands_of(segment, &plan)
        .into_iter()
        .map(|c| PlannedCommand {
            phase: c.phase.as_str().into(),
            label: c.label.clone(),
            argv: runner
                .command_line(&c.args)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        })
        .collect();
    Ok(report)
}
