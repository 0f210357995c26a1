//! From measurements to a recorded plan: cut (or not), plan, pass the tasks through the
//! before_task hook, store the tasks. And the way back when chunks cannot be trusted: a
//! chunk that does not decode to exactly its frames makes the job plan the whole file and
//! encode again, with the reason recorded, instead of failing.

use super::encode::Encoded;
use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::plan::analysis::{Analysis, Source};
use crate::engine::plan::chunks::{plan_chunking, ChunkContent};
use crate::engine::plan::ladder::chosen_workflow;
use crate::engine::plan::{plan_job, JobPlan, PlanInputs};
use crate::engine::task::TaskError;
use crate::engine::Event;
use crate::media::hash::FileDigest;
use crate::media::verify::VerifyError;
use crate::store::{JobRecord, TaskRecord};

impl JobCtx<'_> {
    /// Cuts the source as the analysis says, plans, hooks and stores the plan's tasks.
    pub(super) async fn make_plan(
        &self,
        source: &Source,
        analysis: &Analysis,
        digest: &FileDigest,
        record: &mut JobRecord,
    ) -> Result<(JobPlan, Vec<TaskRecord>), JobStop> {
        let inputs = self.plan_inputs(source, analysis);
        let whole = ChunkContent {
            digest: digest.clone(),
            frames: source.frames,
        };
        let cut = self.cut(&inputs, &plan_chunking(&inputs), whole).await?;
        let reason = cut.whole_file_reason;
        let mut plan = plan_job(&inputs, reason.clone(), cut.chunks)
            .map_err(|e| JobError::Plan(e.to_string()))?;
        // A per-title ladder samples its candidates on the cut chunks, then the plan is made
        // again from the rungs the hull chose.
        if let Some(result) = self.choose_ladder(&plan, source.video.fps.as_f64()).await? {
            let workflow = chosen_workflow(inputs.workflow, &result);
            let chosen = PlanInputs {
                workflow: &workflow,
                ..inputs
            };
            plan = plan_job(&chosen, reason, std::mem::take(&mut plan.chunks))
                .map_err(|e| JobError::Plan(e.to_string()))?;
            plan.per_title = Some(result);
        }
        // Before the hooks: before_task sees the commands with the CRFs the searches chose.
        let searched = self.search_quality(&plan).await?;
        plan.apply_searches(searched);
        self.script
            .hook_tasks(&self.id, &self.work, &mut plan)
            .await?;
        record.fallback_reason = plan.whole_file_reason.clone();
        record.chunks = plan.chunks.len() as u32;
        record.analysis = serde_json::to_value(analysis).ok();
        let tasks: Vec<TaskRecord> = plan
            .tasks
            .iter()
            .map(|t| {
                let rungs = t
                    .rungs
                    .iter()
                    .map(|r| plan.rungs[*r].name.clone())
                    .collect();
                TaskRecord::pending(&self.id, t.index, plan.chunks[t.chunk].index, rungs)
            })
            .collect();
        let (job, planned) = (record.clone(), tasks.clone());
        self.engine
            .store(move |r| r.plan_job(&job, &planned))
            .await?;
        self.engine.emit(Event::JobStarted {
            job: self.id.clone(),
            input: self.input.display().to_string(),
            tasks: plan.tasks.len(),
            rungs: plan.rungs.iter().map(|r| r.name.clone()).collect(),
        });
        Ok((plan, tasks))
    }

    /// Encodes the plan's video tasks. When a chunk comes out with other than its frames,
    /// chunking is abandoned for this job (kept with the job, so a resume does the same):
    /// the whole file is planned and encoded instead.
    pub(super) async fn encode_video(
        &self,
        plan: JobPlan,
        tasks: Vec<TaskRecord>,
        source: &Source,
        mut analysis: Analysis,
        digest: &FileDigest,
        record: &mut JobRecord,
    ) -> Result<(JobPlan, Encoded), JobStop> {
        let err = match self.run_tasks(&plan, tasks).await {
            Ok(encoded) => return Ok((plan, encoded)),
            Err(e) => e,
        };
        let Some(why) = chunk_mismatch(&err).filter(|_| plan.chunks.len() > 1) else {
            return Err(err);
        };
        let reason = format!("a chunk did not decode to exactly its frames ({why})");
        self.note(format!("encoding whole file: {reason}"));
        analysis.abandoned_chunking = Some(reason);
        let (plan, tasks) = self.make_plan(source, &analysis, digest, record).await?;
        let encoded = self.run_tasks(&plan, tasks).await?;
        Ok((plan, encoded))
    }
}

/// The frame-count failure of a chunk's encode, if that is why the tasks failed.
fn chunk_mismatch(stop: &JobStop) -> Option<String> {
    match stop {
        JobStop::Failed(JobError::Task {
            label,
            source:
                TaskError::Verify {
                    source: VerifyError::Frames { got, expected },
                    ..
                },
        }) => Some(format!("{label}: {got} frames, expected {expected}")),
        _ => None,
    }
}
