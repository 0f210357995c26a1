//! The encode stage: every task first looks for its rungs in the cache, submits what is
//! missing to the queue, follows its progress, and retries as the policy (or on_error)
//! says. On the first failure the other tasks are cancelled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::progress::ProgressBook;
use super::JobCtx;
use crate::engine::artifacts::lookup::{lookup, Found};
use crate::engine::artifacts::{artifact_key, settings_print};
use crate::engine::error::{JobError, JobStop};
use crate::engine::metrics::{Metrics, Running};
use crate::engine::plan::{encode_task_commands, JobPlan, PlannedTask};
use crate::engine::queue::TaskEvent;
use crate::engine::task::retry::{decide, Next, RetryPolicy};
use crate::engine::task::spec::{ArgvTemplate, Bindings};
use crate::engine::task::{EncodeTask, LocalPaths, OutputPaths, TaskError, TaskResult, TaskRung};
use crate::engine::Event;
use crate::media::profiles::Rung;
use crate::store::{CacheRecord, StoreError, TaskRecord, TaskStatus};

const PROGRESS_PERSIST_EVERY: Duration = Duration::from_secs(2);

/// Per chunk: the file of each rung (in plan order), and how many came from the cache.
pub struct Encoded {
    pub files: Vec<Vec<PathBuf>>,
    pub reused: Vec<usize>,
}

/// How one submission of a task ended.
enum Attempt {
    Done(TaskResult),
    Failed(TaskError),
}

/// One task's files (in its rung order) and how many were reused.
struct TaskDone {
    files: Vec<PathBuf>,
    reused: usize,
}

impl JobCtx<'_> {
    pub(super) async fn run_tasks(
        &self,
        plan: &JobPlan,
        records: Vec<TaskRecord>,
    ) -> Result<Encoded, JobStop> {
        let book = ProgressBook::new(self, plan);
        let tasks_cancel = self.cancel.child_token();
        let runs = plan.tasks.iter().zip(records).map(|(task, record)| {
            let (book, cancel) = (&book, tasks_cancel.clone());
            async move {
                let r = self.run_task(plan, task, record, book, &cancel).await;
                if r.is_err() {
                    cancel.cancel();
                }
                r
            }
        });
        let results = futures::future::join_all(runs).await;
        let mut files: Vec<Vec<Option<PathBuf>>> =
            vec![vec![None; plan.rungs.len()]; plan.chunks.len()];
        let mut reused = vec![0; plan.chunks.len()];
        let mut first_error: Option<JobStop> = None;
        for (task, result) in plan.tasks.iter().zip(results) {
            match result {
                Ok(done) => {
                    for (rung, path) in task.rungs.iter().zip(done.files) {
                        files[task.chunk][*rung] = Some(path);
                    }
                    reused[task.chunk] += done.reused;
                }
                // Keep the root cause, not the cancellations it caused.
                Err(e) => match &first_error {
                    Some(JobStop::Failed(_) | JobStop::Skipped(_)) => {}
                    _ if matches!(e, JobStop::Cancelled) && first_error.is_some() => {}
                    _ => first_error = Some(e),
                },
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let files = files
            .into_iter()
            .map(|chunk| chunk.into_iter().collect::<Option<Vec<PathBuf>>>())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| JobError::Internal("a rung has no encoded chunk".into()))?;
        Ok(Encoded { files, reused })
    }

    async fn run_task(
        &self,
        plan: &JobPlan,
        task: &PlannedTask,
        mut record: TaskRecord,
        book: &ProgressBook,
        cancel: &CancellationToken,
    ) -> Result<TaskDone, JobStop> {
        let chunk = &plan.chunks[task.chunk];
        let content = chunk
            .content
            .as_ref()
            .ok_or_else(|| JobError::Internal("a chunk was planned but never inspected".into()))?;
        // Each with the CRF its quality search chose for this chunk, if it has a target.
        let owned = plan.task_rungs(task);
        let rungs: Vec<&Rung> = owned.iter().collect();
        let settings: Vec<String> = rungs
            .iter()
            .map(|r| settings_print(r, task.hook_change.as_deref(), chunk.cache_part()))
            .collect();
        let mut files = self.cached(task, &rungs, &settings, content).await?;
        let reused = files.iter().filter(|f| f.is_some()).count();
        Metrics::add(&self.engine.metrics.cache_hits, reused as u64);
        let mut admitted = self
            .adopt_probes(plan, task, &rungs, &settings, &mut files)
            .await;
        let missing: Vec<usize> = (0..rungs.len()).filter(|i| files[*i].is_none()).collect();
        if !missing.is_empty() {
            let spec = self.task_spec(plan, task, &record, &rungs, &settings, &missing)?;
            let result = self
                .attempts(&spec, &mut record, book, chunk.duration, cancel)
                .await?;
            for (slot, artifact) in missing.iter().zip(&result.artifacts) {
                files[*slot] = Some(self.engine.artifacts.path_of(artifact));
            }
            admitted = result.artifacts;
        }
        self.finish_task(record, &task.label, reused, admitted, book)
            .await?;
        Ok(TaskDone {
            files: files.into_iter().flatten().collect(),
            reused,
        })
    }

    /// Missing rungs whose chosen quality probe is exactly their encode: admitted as this
    /// task's encode (not counted as reused). A task a hook changed encodes as usual.
    async fn adopt_probes(
        &self,
        plan: &JobPlan,
        task: &PlannedTask,
        rungs: &[&Rung],
        settings: &[String],
        files: &mut [Option<PathBuf>],
    ) -> Vec<CacheRecord> {
        let mut admitted = Vec::new();
        let Some(content) = plan.chunks[task.chunk].content.as_ref() else {
            return admitted;
        };
        if task.hook_change.is_some() {
            return admitted;
        }
        for (slot, r) in task.rungs.iter().enumerate() {
            let Some(probe) = plan
                .final_probe(task.chunk, *r)
                .filter(|_| files[slot].is_none())
            else {
                continue;
            };
            let rung = TaskRung {
                rung: rungs[slot].clone(),
                settings: settings[slot].clone(),
            };
            if let Some(record) = self.adopt_probe(probe, &rung, content).await {
                files[slot] = Some(self.engine.artifacts.path_of(&record));
                admitted.push(record);
            }
        }
        admitted
    }

    /// Each rung's cached file, if the cache holds a sound one. A task a hook changed is
    /// taken from the cache whole or not at all: its rungs are encoded together.
    async fn cached(
        &self,
        task: &PlannedTask,
        rungs: &[&Rung],
        settings: &[String],
        content: &crate::engine::plan::chunks::ChunkContent,
    ) -> Result<Vec<Option<PathBuf>>, JobStop> {
        if self.force {
            return Ok(vec![None; rungs.len()]);
        }
        let tools = self.engine.runner.tools();
        let lookups = rungs.iter().zip(settings).map(|(rung, s)| {
            let key = artifact_key(&content.digest, s, &tools.version);
            let index: Arc<dyn crate::store::CacheIndex> = self.engine.repo.clone();
            async move {
                let found = lookup(
                    index,
                    &self.engine.artifacts,
                    tools,
                    &key,
                    &content.digest,
                    rung,
                    content.frames,
                )
                .await;
                (key, found)
            }
        });
        let mut files = Vec::new();
        for (key, found) in futures::future::join_all(lookups).await {
            files.push(match found? {
                Found::Hit(path) => Some(path),
                Found::Collision => {
                    tracing::warn!(job = %self.id, %key, "MD5 collision: same MD5, different SHA-256; encoding");
                    None
                }
                Found::Invalid(why) => {
                    tracing::info!(job = %self.id, %key, %why, "cached chunk no longer valid; encoding again");
                    None
                }
                Found::Absent => None,
            });
        }
        if task.hook_change.is_some() && files.iter().any(Option::is_none) {
            files = vec![None; rungs.len()];
        }
        Ok(files)
    }

    /// The task as the queue carries it: the missing rungs only, commands as templates.
    fn task_spec(
        &self,
        plan: &JobPlan,
        task: &PlannedTask,
        record: &TaskRecord,
        rungs: &[&Rung],
        settings: &[String],
        missing: &[usize],
    ) -> Result<EncodeTask, JobStop> {
        let chunk = &plan.chunks[task.chunk];
        let content = chunk
            .content
            .as_ref()
            .ok_or_else(|| JobError::Internal("a chunk was planned but never inspected".into()))?;
        let (commands, outputs): (Vec<_>, Vec<OutputPaths>) = if missing.len() == rungs.len() {
            (task.commands.clone(), task.outputs.clone())
        } else {
            // Some rungs came from the cache: spool's own commands for the rest.
            let rs: Vec<&Rung> = missing.iter().map(|i| rungs[*i]).collect();
            let outs: Vec<OutputPaths> = missing.iter().map(|i| task.outputs[*i].clone()).collect();
            (encode_task_commands(chunk, &rs, &outs), outs)
        };
        let bound = Bindings {
            input: &chunk.path,
            work: &self.work,
            outputs: &outputs,
        };
        Ok(EncodeTask {
            id: record.id(),
            label: task.label.clone(),
            input: content.digest.clone(),
            rungs: missing
                .iter()
                .map(|i| TaskRung {
                    rung: rungs[*i].clone(),
                    settings: settings[*i].clone(),
                })
                .collect(),
            expected_frames: content.frames,
            commands: commands
                .iter()
                .map(|c| ArgvTemplate::from_argv(&c.args, &bound))
                .collect(),
            priority: (self.seq, task.rank, chunk.index.unwrap_or(0)),
            gate: self.gate().to_string(),
            local: LocalPaths {
                input: chunk.path.clone(),
                work: self.work.clone(),
            },
        })
    }

    /// Submits the task until it succeeds, or the policy (or on_error) gives up.
    async fn attempts(
        &self,
        spec: &EncodeTask,
        record: &mut TaskRecord,
        book: &ProgressBook,
        duration: f64,
        cancel: &CancellationToken,
    ) -> Result<TaskResult, JobStop> {
        let policy = RetryPolicy {
            max_attempts: self.workflow.retries.max_attempts,
            backoff_seconds: self.workflow.retries.backoff_seconds,
        };
        let mut attempt = 0;
        let mut reasons: Vec<String> = Vec::new();
        let error = loop {
            attempt += 1;
            record.attempts += 1;
            let e = match self.attempt(spec, record, book, duration, cancel).await? {
                Attempt::Done(result) => return Ok(result),
                Attempt::Failed(e) => e,
            };
            if matches!(e, TaskError::Cancelled) {
                break e;
            }
            reasons.push(e.to_string());
            let reply = self.ask_on_error(record, &spec.label, attempt, &e).await?;
            match decide(policy, attempt, &e, reply.as_ref(), &spec.label) {
                // One reason per attempt when there were several (on several workers).
                Next::Fail if reasons.len() > 1 => break TaskError::Attempts(reasons),
                Next::Fail => break e,
                Next::Skip(reason) => return Err(JobStop::Skipped(reason)),
                Next::Retry { after } => {
                    tracing::warn!(job = %self.id, task = %spec.label, attempt, error = %e, "retrying in {:.1}s", after.as_secs_f64());
                    tokio::select! {
                        _ = tokio::time::sleep(after) => {}
                        _ = cancel.cancelled() => break TaskError::Cancelled,
                    }
                }
            }
        };
        let cancelled = matches!(error, TaskError::Cancelled);
        record.status = if cancelled {
            TaskStatus::Pending
        } else {
            TaskStatus::Failed
        };
        record.error = Some(error.to_string());
        let failed = record.clone();
        self.engine.store(move |r| r.save_task(&failed)).await?;
        Err(match error {
            TaskError::Cancelled => JobStop::Cancelled,
            source => JobStop::Failed(JobError::Task {
                label: spec.label.clone(),
                source,
            }),
        })
    }

    /// One submission, followed to its end. A cancellation is passed to the queue, which
    /// answers with the task's end.
    async fn attempt(
        &self,
        spec: &EncodeTask,
        record: &mut TaskRecord,
        book: &ProgressBook,
        duration: f64,
        cancel: &CancellationToken,
    ) -> Result<Attempt, JobStop> {
        let _running = Running::start(&self.engine.metrics.tasks_running);
        let started = Instant::now();
        let mut events = self.engine.queue.submit(spec.clone())?;
        let mut persisted: Option<Instant> = None;
        let mut cancel_sent = false;
        let outcome = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(TaskEvent::Progress(p)) => {
                        let fraction = p.fraction(duration);
                        let moved = p.worker.is_some() && p.worker != record.worker;
                        if moved {
                            record.worker = p.worker.clone();
                            persisted = None;
                        }
                        self.engine.emit(Event::TaskProgress {
                            job: self.id.clone(),
                            task: spec.label.clone(),
                            fraction,
                            fps: p.progress.fps,
                            speed: p.progress.speed,
                        });
                        book.report(self, record.index as usize, fraction);
                        // Running from ffmpeg's first report; then sled sees progress
                        // at a throttled rate.
                        if persisted.is_none_or(|t| t.elapsed() >= PROGRESS_PERSIST_EVERY) {
                            persisted = Some(Instant::now());
                            self.persist_progress(record, fraction).await;
                        }
                    }
                    Some(TaskEvent::Finished(result)) => break result,
                    None => break Err(TaskError::Cancelled),
                },
                _ = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    self.engine.queue.cancel(&spec.id);
                }
            }
        };
        Metrics::add(
            &self.engine.metrics.encode_ms,
            started.elapsed().as_millis() as u64,
        );
        Ok(match outcome {
            Ok(result) => Attempt::Done(result),
            Err(e) => Attempt::Failed(e),
        })
    }

    async fn persist_progress(&self, record: &TaskRecord, fraction: f64) {
        let mut running = record.clone();
        running.status = TaskStatus::Running;
        running.progress = fraction;
        match self.engine.store(move |r| r.save_task(&running)).await {
            Ok(()) => {}
            // The task finished (or was cancelled) meanwhile: its end stands.
            Err(StoreError::IllegalTransition { .. }) => {}
            Err(e) => tracing::warn!(job = %self.id, error = %e, "task progress not saved"),
        }
    }

    /// Asks on_error (if the workflow has it) what to do about a failed attempt.
    async fn ask_on_error(
        &self,
        record: &TaskRecord,
        label: &str,
        attempt: u32,
        e: &TaskError,
    ) -> Result<Option<crate::engine::hooks::ErrorReply>, JobStop> {
        let job = json!({
            "id": self.id, "input": self.input.display().to_string(),
            "workflow": self.workflow.name,
        });
        let error = json!({
            "task": label, "index": record.index, "attempt": attempt,
            "max_attempts": self.workflow.retries.max_attempts,
            "message": e.to_string(), "fatal": e.is_fatal(), "class": e.class(),
            "stderr_tail": e.stderr_tail(),
        });
        Ok(self
            .script
            .on_error(job, error, format!("{}/{attempt}", record.index))
            .await?)
    }

    /// Marks the task done together with its new cache entries (one durable transaction),
    /// then reports it.
    async fn finish_task(
        &self,
        mut record: TaskRecord,
        label: &str,
        reused: usize,
        admitted: Vec<CacheRecord>,
        book: &ProgressBook,
    ) -> Result<(), JobStop> {
        record.status = TaskStatus::Done;
        record.progress = 1.0;
        record.reused_rungs = reused as u32;
        record.error = None;
        let index = record.index as usize;
        self.engine
            .store(move |r| r.finish_task(&record, &admitted))
            .await?;
        book.report(self, index, 1.0);
        self.engine.emit(Event::TaskFinished {
            job: self.id.clone(),
            task: label.to_string(),
            reused,
        });
        Ok(())
    }
}
