//! The outcome stage: how the job ended, recorded (tasks left running put back), told to
//! webhooks and metrics, and returned.

use std::time::Instant;

use serde_json::json;

use super::JobCtx;
use crate::engine::error::{JobEnd, JobError, JobStop, Published};
use crate::engine::metrics::Metrics;
use crate::engine::{Engine, Event, JobOutcome};
use crate::media::hash::FileDigest;
use crate::store::{now_ms, JobRecord, JobStatus, StoreError, TaskStatus};
use crate::workflow::schema::WebhookEvent;

impl Engine {
    pub(super) async fn conclude(
        &self,
        ctx: &JobCtx<'_>,
        mut record: JobRecord,
        result: Result<Published, JobStop>,
        digest: &FileDigest,
        started: Instant,
    ) -> JobOutcome {
        let mut end = JobEnd::from_result(result, self.shutdown.is_cancelled());
        apply(&end, &mut record, &self.state_dir);
        if let Err(e) = self.record_end(record.clone()).await {
            tracing::error!(job = %record.id, error = %e, "the job's end could not be recorded");
            // A job that failed keeps its own cause (often the same full disk).
            if !matches!(end, JobEnd::Failed(_)) {
                end = JobEnd::Failed(JobError::Store(e));
            }
            apply(&end, &mut record, &self.state_dir);
        }
        if let JobEnd::Succeeded(p) = &end {
            Metrics::add(&self.metrics.bytes_in, digest.size);
            Metrics::add(&self.metrics.bytes_out, p.manifest.bytes_out());
        }
        let mut body = ctx.event_body();
        if let serde_json::Value::Object(m) = &mut body {
            m.insert("status".into(), json!(record.status));
            m.insert("reason".into(), json!(record.error));
            m.insert("manifest".into(), json!(record.manifest));
            if let JobEnd::Succeeded(p) = &end {
                // The manifest itself, for a receiver that cannot read the daemon's disk.
                m.insert("manifest_json".into(), json!(p.manifest));
            }
        }
        let waiting_for_space = match &end {
            JobEnd::Failed(e) if store_disk_problem(e).is_some() => Some(self.state_dir.clone()),
            JobEnd::Failed(e) => e.disk_trouble(&ctx.out_dir),
            _ => None,
        };
        let event = match end {
            JobEnd::Succeeded(_) => WebhookEvent::Succeeded,
            JobEnd::Skipped(_) => WebhookEvent::Skipped,
            _ => WebhookEvent::Failed,
        };
        self.notify(&ctx.workflow.webhooks, event, body);
        Metrics::add(&self.metrics.jobs_finished, 1);
        let outcome = JobOutcome {
            id: Some(record.id.clone()),
            input: record.input.clone(),
            status: record.status,
            reason: record.error.clone(),
            manifest: record.manifest.as_ref().map(Into::into),
            chunks: record.chunks,
            reused_chunks: record.reused_chunks,
            elapsed_s: started.elapsed().as_secs_f64(),
            waiting_for_space,
        };
        self.emit(Event::JobFinished(outcome.clone()));
        outcome
    }

    /// The job's final record, with tasks left running put back (pending, to resume) or
    /// cancelled with it; durable at return.
    async fn record_end(&self, record: JobRecord) -> Result<(), StoreError> {
        self.store(move |r| {
            if record.status != JobStatus::Succeeded {
                for mut t in r
                    .tasks_of(&record.id)?
                    .into_iter()
                    .filter(|t| t.status == TaskStatus::Running)
                {
                    t.status = match record.status {
                        JobStatus::Cancelled => TaskStatus::Cancelled,
                        _ => TaskStatus::Pending,
                    };
                    r.save_task(&t)?;
                }
            }
            r.save_job(&record)?;
            r.flush()
        })
        .await
    }
}

/// The disk trouble behind a failed state-store write, if that is what it was: directly, or
/// under the queue or a task that was writing to the store when the disk filled.
fn store_disk_problem(e: &JobError) -> Option<crate::media::run::DiskProblem> {
    if let JobError::Store(StoreError::Sled(sled::Error::Io(io))) = e {
        return crate::media::run::DiskProblem::of(io);
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cause {
        let io = match (
            err.downcast_ref::<StoreError>(),
            err.downcast_ref::<sled::Error>(),
        ) {
            (Some(StoreError::Sled(sled::Error::Io(io))), _) | (_, Some(sled::Error::Io(io))) => {
                Some(io)
            }
            _ => None,
        };
        if let Some(problem) = io.and_then(crate::media::run::DiskProblem::of) {
            return Some(problem);
        }
        cause = err.source();
    }
    None
}

fn apply(end: &JobEnd, record: &mut JobRecord, state_dir: &std::path::Path) {
    record.status = end.status();
    record.error = match end {
        // Said the way every other full disk is: what, and which directory's disk.
        JobEnd::Failed(e) => match store_disk_problem(e) {
            Some(problem) => Some(format!("{problem} (holding {}): {e}", state_dir.display())),
            None => end.reason(),
        },
        _ => end.reason(),
    };
    record.updated_ms = now_ms();
    match end {
        JobEnd::Succeeded(p) => {
            record.manifest = Some(p.path.display().to_string());
            record.progress = 1.0;
        }
        JobEnd::Failed(e) => record.stderr_tail = e.stderr_tail(),
        _ => {}
    }
}
