//! One input's life, one stage per file: identity → admission → hooks → plan → chunks →
//! encode (+ audio) → join → publish → outcome. This file wires the stages together.

mod audio;
mod chunking;
mod derived;
mod encode;
mod finish;
mod identity;
mod join;
mod ladder;
mod original;
mod outcome;
mod planning;
mod probe;
mod progress;
mod quality;
mod quality_check;
mod reuse;
mod step_reuse;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use identity::{admit, check_input, identify, pinned_version, Admission};

use super::error::{JobError, JobStop, Published};
use super::exec::Placement;
use super::hooks::{script_params, Decision, JobScript, ScriptDeps};
use super::plan::analysis::{analyse, Analysis, Source};
use super::plan::{stem_of, PlanInputs};
use super::steps::kind_of;
use super::{job_order, Engine, Event, JobOptions, JobOutcome};
use crate::confine::Paths;
use crate::media::hash::FileDigest;
use crate::script::JobScope;
use crate::store::{now_ms, JobId, JobRecord, JobStart, JobStatus, StoreError};
use crate::workflow::schema::WebhookEvent;
use crate::workflow::{LoadedWorkflow, Workflow};

pub(super) struct JobCtx<'a> {
    pub engine: &'a Engine,
    pub wf: &'a LoadedWorkflow,
    /// The workflow this job runs: the file's, as changed by the plan hook.
    pub workflow: Workflow,
    pub input: &'a Path,
    pub id: JobId,
    pub seq: u64,
    pub work: PathBuf,
    pub out_dir: PathBuf,
    pub cancel: CancellationToken,
    pub force: bool,
    pub script: JobScript,
    /// Where the job's own commands wait: first among its tasks, behind its workflow's gate.
    pub placement: Placement,
    /// The scoring ffmpeg, found at the first need (searches, per-title sampling, checks).
    pub metrics: tokio::sync::OnceCell<crate::media::quality::MetricsTool>,
}

impl Engine {
    pub(super) async fn run_job(
        &self,
        input: &Path,
        wf: &LoadedWorkflow,
        out_root: &Path,
        options: JobOptions,
    ) -> JobOutcome {
        let JobOptions {
            force,
            known,
            id: given_id,
            priority,
        } = options;
        let started = Instant::now();
        let early = |reason: String| JobOutcome::failed_early(input, reason, started);
        if let Err(reason) = check_input(input) {
            return early(reason);
        }
        let (digest, probed) = match identify(self.runner.tools(), input, known).await {
            Ok(found) => found,
            Err(reason) => return early(reason),
        };
        let out_dir = out_root.join(stem_of(input));
        let (admission, pinned) = match self.admit(&digest, &out_dir, wf, force).await {
            Ok(a) => a,
            Err(e) => return early(e.to_string()),
        };
        let wf = pinned.as_ref().unwrap_or(wf);
        let (id, resumed) = match (admission, given_id) {
            (Admission::Done(done), _) => return self.already_done(*done, input, started),
            // A caller that named the id keeps it: the interrupted job's chunks are reused
            // through the cache all the same.
            (Admission::Resume(id), None) => (id, true),
            (_, Some(id)) => (id, false),
            (Admission::New, None) => (self.new_job_id(), false),
        };
        let mut record = new_record(&id, input, &digest, wf, &out_dir);
        record.priority = priority;
        if resumed {
            // A resumed job plans from what was measured before it stopped.
            let stored = self.store({
                let id = id.clone();
                move |r| r.get_job(&id)
            });
            match stored.await {
                Ok(old) => record.analysis = old.and_then(|o| o.analysis),
                Err(e) => return early(e.to_string()),
            }
        }
        if let Err(e) = self.begin(&record, wf).await {
            return early(e.to_string());
        }
        let cancel = self.shutdown.child_token();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id.clone(), (cancel.clone(), now_ms()));
        }
        let seq = job_order(self.next_seq(), priority);
        let work = self.state_dir.join("work").join(id.as_str());
        let gate: Arc<str> = Arc::from(wf.workflow.name.as_str());
        // The job's own commands read its input, work files and cached chunks, and write
        // only in its work and output directories; a script's ffmpeg less than that.
        let placement = Placement {
            priority: (seq, 0, 0),
            gate: gate.clone(),
            paths: Arc::new(Paths {
                read: vec![
                    input.to_path_buf(),
                    work.clone(),
                    self.artifacts.dir().to_path_buf(),
                    out_dir.clone(),
                ],
                write: vec![work.clone(), out_dir.clone()],
            }),
        };
        let script_placement = Placement {
            paths: Arc::new(Paths {
                read: vec![input.to_path_buf(), work.clone()],
                write: vec![work.clone()],
            }),
            ..placement.clone()
        };
        let (script, loaded) = self
            .load_script(wf, &id, input, &work, &out_dir, &cancel, &script_placement)
            .await;
        let decided = match (probed, loaded) {
            (Err(e), _) => Err(JobStop::from(e)),
            (_, Err(e)) => Err(e),
            (Ok(source), Ok(())) => script
                .decide(&wf.workflow, input, &digest.md5, digest.size, &source.media)
                .await
                .map(|d| (source, d))
                .map_err(JobStop::from),
        };
        let workflow = match &decided {
            Ok((_, d)) => d.workflow.clone(),
            Err(_) => wf.workflow.clone(),
        };
        let ctx = JobCtx {
            engine: self,
            wf,
            workflow,
            input,
            id: id.clone(),
            seq,
            work,
            out_dir,
            cancel,
            force,
            script,
            placement,
            metrics: tokio::sync::OnceCell::new(),
        };
        let result = match decided {
            Ok((
                _,
                Decision {
                    skip: Some(reason), ..
                },
            )) => Err(JobStop::Skipped(reason)),
            Ok((source, _)) => {
                self.notify(
                    &ctx.workflow.webhooks,
                    WebhookEvent::Started,
                    ctx.event_body(),
                );
                match ctx.reuse_whole(&digest, &record).await {
                    Ok(Some(published)) => Ok(published),
                    Ok(None) => ctx.pipeline(&digest, source, &mut record).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if !self.keep_work {
            let _ = tokio::fs::remove_dir_all(&ctx.work).await;
        }
        // An output directory the job made and left empty goes too (remove_dir keeps any
        // that holds something).
        let _ = tokio::fs::remove_dir(&ctx.out_dir).await;
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        let outcome = self.conclude(&ctx, record, result, &digest, started).await;
        self.keep_cache_bounded().await;
        outcome
    }

    /// What spool knows of this input already, and the workflow version a stopped job of
    /// it started with (loaded again exactly), if that differs from `wf`.
    async fn admit(
        &self,
        digest: &FileDigest,
        out_dir: &Path,
        wf: &LoadedWorkflow,
        force: bool,
    ) -> Result<(Admission, Option<LoadedWorkflow>), StoreError> {
        let (md5, out) = (digest.md5.clone(), out_dir.display().to_string());
        let jobs = self.store(move |r| r.jobs_for_input(&md5, &out)).await?;
        let pinned = match pinned_version(&jobs, &wf.content_hash) {
            Some(hash) => self.stored_workflow(&hash).await?,
            None => None,
        };
        let hash = pinned
            .as_ref()
            .map_or(&wf.content_hash, |p| &p.content_hash);
        let admission = admit(jobs, hash, force, |m| Path::new(m).is_file());
        Ok((admission, pinned))
    }

    /// A workflow version stored by an earlier job, loaded again exactly as it was.
    async fn stored_workflow(&self, hash: &str) -> Result<Option<LoadedWorkflow>, StoreError> {
        let key = hash.to_string();
        let Some(version) = self.store(move |r| r.workflow_version(&key)).await? else {
            return Ok(None);
        };
        match crate::workflow::load_version(&version) {
            Ok(wf) => Ok(Some(wf)),
            Err(e) => {
                tracing::warn!(hash, error = %e, "stored workflow version no longer loads; using the current one");
                Ok(None)
            }
        }
    }

    /// From here on the job exists: a crash must find it and its workflow version.
    async fn begin(&self, record: &JobRecord, wf: &LoadedWorkflow) -> Result<(), StoreError> {
        let (first, version) = (record.clone(), wf.version());
        self.store(move |r| {
            r.put_workflow_version(&version)?;
            r.begin_job(&first)?;
            r.flush()
        })
        .await
    }

    /// A fresh sandbox for the job (the work dir exists first: spool.fs confines paths to
    /// it). A script that cannot load gives a job that fails on that.
    #[allow(clippy::too_many_arguments)]
    async fn load_script(
        &self,
        wf: &LoadedWorkflow,
        id: &JobId,
        input: &Path,
        work: &Path,
        out_dir: &Path,
        cancel: &CancellationToken,
        placement: &Placement,
    ) -> (JobScript, Result<(), JobStop>) {
        // Both exist before the script does: its runner is confined to them.
        let dirs = async {
            tokio::fs::create_dir_all(work.join("enc")).await?;
            tokio::fs::create_dir_all(out_dir).await
        };
        if let Err(e) = dirs.await {
            let error = JobError::Io {
                context: format!("work dir {}", work.display()),
                source: e,
            };
            return (JobScript::none(id, work, input), Err(error.into()));
        }
        let deps = ScriptDeps {
            runner: self.runner.clone(),
            log: Some(self.repo.clone()),
            cancel: cancel.clone(),
            placement: placement.clone(),
        };
        let scope = JobScope {
            job: id.to_string(),
            params: script_params(wf),
            input: input.to_path_buf(),
            work_dir: work.to_path_buf(),
            out_dir: out_dir.to_path_buf(),
        };
        match JobScript::load(deps, wf, scope).await {
            Ok(s) => (s, Ok(())),
            Err(e) => (JobScript::none(id, work, input), Err(e.into())),
        }
    }

    fn already_done(&self, done: JobRecord, input: &Path, started: Instant) -> JobOutcome {
        self.emit(Event::Note {
            job: done.id.clone(),
            message: "already done; use --force to encode again".into(),
        });
        JobOutcome {
            id: Some(done.id),
            input: input.display().to_string(),
            status: JobStatus::Succeeded,
            reason: None,
            manifest: done.manifest.map(PathBuf::from),
            chunks: done.chunks,
            reused_chunks: done.chunks,
            elapsed_s: started.elapsed().as_secs_f64(),
            waiting_for_space: None,
        }
    }
}

fn new_record(
    id: &JobId,
    input: &Path,
    digest: &FileDigest,
    wf: &LoadedWorkflow,
    out_dir: &Path,
) -> JobRecord {
    let mut record = JobRecord::start(JobStart {
        id,
        input,
        out_dir,
        workflow_name: &wf.workflow.name,
        workflow_hash: &wf.content_hash,
        status: JobStatus::Running,
        priority: 0,
    });
    record.input_md5 = digest.md5.clone();
    record.input_size = digest.size;
    record
}

impl JobCtx<'_> {
    /// What every webhook event of this job carries.
    fn event_body(&self) -> serde_json::Value {
        json!({
            "job": self.id,
            "input": self.input.display().to_string(),
            "workflow": { "name": self.workflow.name, "hash": self.wf.content_hash },
        })
    }

    fn note(&self, message: String) {
        self.engine.emit(Event::Note {
            job: self.id.clone(),
            message,
        });
    }

    /// The schedule gate this job's work waits behind.
    fn gate(&self) -> &str {
        &self.placement.gate
    }

    fn plan_inputs<'a>(&'a self, source: &'a Source, analysis: &'a Analysis) -> PlanInputs<'a> {
        PlanInputs {
            workflow: &self.workflow,
            media: &source.media,
            video: &source.video,
            input: self.input,
            work: &self.work,
            out_dir: &self.out_dir,
            base_dir: &self.wf.base_dir,
            analysis,
        }
    }

    async fn pipeline(
        &self,
        digest: &FileDigest,
        source: Source,
        record: &mut JobRecord,
    ) -> Result<Published, JobStop> {
        let kept = record
            .analysis
            .as_ref()
            .and_then(|v| serde_json::from_value::<Analysis>(v.clone()).ok());
        let analysis = match kept {
            Some(a) => a,
            None => {
                let tools = self.engine.runner.tools();
                analyse(tools, &self.workflow, &source, self.input).await
            }
        };
        for n in &analysis.notes {
            self.note(n.clone());
        }
        let inputs = self.plan_inputs(&source, &analysis);
        for step in &self.workflow.steps {
            kind_of(step)
                .validate(&inputs)
                .map_err(|message| JobError::Step {
                    step: step.label().to_string(),
                    message,
                })?;
        }
        let (plan, tasks) = self.make_plan(&source, &analysis, digest, record).await?;
        for s in &plan.skipped_rungs {
            self.note(format!("skipped {s}"));
        }
        // Audio is encoded once per distinct setting, alongside the video tasks; it does not
        // depend on how the video is chunked.
        let video = self.encode_video(
            plan.clone(),
            tasks,
            &source,
            analysis.clone(),
            digest,
            record,
        );
        let ((plan, encoded), loudness) =
            tokio::try_join!(video, self.encode_audio(&plan, digest))?;
        record.reused_chunks = encoded
            .reused
            .iter()
            .filter(|r| **r == plan.rungs.len())
            .count() as u32;
        tokio::fs::create_dir_all(&self.out_dir)
            .await
            .map_err(JobError::io(self.out_dir.display().to_string()))?;
        let staged = match self.join_and_verify(&plan, &encoded, &source, digest).await {
            Ok(s) => s,
            Err(e) => {
                finish::remove_temps(&self.out_dir).await;
                return Err(e);
            }
        };
        self.publish(&plan, staged, &source, digest, record, loudness)
            .await
    }
}
