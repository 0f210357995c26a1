//! `GET /v1/events`: the dashboard's push stream (Server-Sent Events). Two kinds of event:
//! `live` (running jobs and their tasks' progress, from memory, at most a few per second) and
//! `state` (recent jobs with their outputs, files needing attention, folders, totals, from the
//! store), sent on connect, when a job starts or ends, on a retry or pause, and every few
//! seconds so files that arrive in the folders show up.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use super::{blocking, downloads, Shared};
use crate::daemon::live::Changes;
use crate::daemon::Daemon;
use crate::engine::manifest::Manifest;
use crate::engine::metrics::Metrics;
use crate::store::{FileRecord, FileStatus, JobId, JobRecord, JobStatus, StoreError, TaskCounts};

/// Recent jobs the dashboard lists.
const RECENT: usize = 40;
/// Least time between two `live` events on one stream.
const LIVE_EVERY: Duration = Duration::from_millis(250);
/// A `state` event at least this often.
const STATE_EVERY: Duration = Duration::from_secs(3);
/// The last ffmpeg lines shown for a failed job.
const STDERR_LINES: usize = 8;

pub(super) async fn events(State(d): Shared) -> Response {
    let stream = futures::stream::unfold(Stream::new(d), |mut s| async move {
        let event = s.next().await;
        Some((Ok::<_, Infallible>(event), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One client's stream: what it has been sent, and when.
struct Stream {
    daemon: Arc<Daemon>,
    changes: tokio::sync::watch::Receiver<Changes>,
    sent: Option<Changes>,
    last_state: tokio::time::Instant,
    pending_live: bool,
}

impl Stream {
    fn new(daemon: Arc<Daemon>) -> Stream {
        let changes = daemon.board.subscribe();
        Stream {
            daemon,
            changes,
            sent: None,
            last_state: tokio::time::Instant::now(),
            pending_live: true,
        }
    }

    /// The next event to send: the state first, then whatever changed, paced.
    async fn next(&mut self) -> SseEvent {
        loop {
            let now = *self.changes.borrow_and_update();
            let state_due = match self.sent {
                None => true,
                Some(sent) => sent.state != now.state || self.last_state.elapsed() >= STATE_EVERY,
            };
            if state_due {
                self.sent = Some(Changes {
                    state: now.state,
                    live: self.sent.map_or(0, |s| s.live),
                });
                self.last_state = tokio::time::Instant::now();
                self.pending_live = true;
                return state_event(&self.daemon).await;
            }
            if self.pending_live || self.sent.is_some_and(|s| s.live != now.live) {
                self.pending_live = false;
                if let Some(s) = &mut self.sent {
                    s.live = now.live;
                }
                tokio::time::sleep(LIVE_EVERY).await;
                return live_event(&self.daemon);
            }
            let wait = STATE_EVERY.saturating_sub(self.last_state.elapsed());
            let _ = tokio::time::timeout(wait, self.changes.changed()).await;
        }
    }
}

fn live_event(d: &Daemon) -> SseEvent {
    let body = json!({ "running": d.board.running(), "now_ms": crate::store::now_ms() });
    SseEvent::default().event("live").data(body.to_string())
}

async fn state_event(d: &Arc<Daemon>) -> SseEvent {
    let body = match snapshot(d).await {
        Ok(v) => v,
        Err(e) => json!({ "error": format!("the state store could not be read: {e}") }),
    };
    SseEvent::default().event("state").data(body.to_string())
}

/// A recent job as the dashboard lists it.
#[derive(Serialize)]
struct JobRow {
    id: JobId,
    input: String,
    workflow: String,
    status: JobStatus,
    created_ms: u64,
    updated_ms: u64,
    input_size: u64,
    chunks: u32,
    reused_chunks: u32,
    tasks: TaskCounts,
    error: Option<String>,
    stderr_tail: Vec<String>,
    /// From the manifest, for finished jobs.
    result: Option<Value>,
}

async fn snapshot(d: &Arc<Daemon>) -> Result<Value, String> {
    let daemon = d.clone();
    let read = blocking(move || read_store(&daemon)).await;
    let (jobs, files, by_state) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("the store read was interrupted".into()),
    };
    let m = &d.engine.metrics;
    let (bytes_in, bytes_out) = (Metrics::get(&m.bytes_in), Metrics::get(&m.bytes_out));
    let totals = json!({
        "jobs": by_state,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "bytes_saved": bytes_in.saturating_sub(bytes_out),
        "encode_seconds": Metrics::get(&m.encode_ms) as f64 / 1000.0,
        "cache_hits": Metrics::get(&m.cache_hits),
        "cache_bytes": Metrics::get(&m.cache_bytes),
        "cache_entries": Metrics::get(&m.cache_entries),
        "files_queued": d.queued(),
        "files_settling": d.settling(),
    });
    Ok(json!({
        "jobs": jobs,
        "attention": files,
        "folders": d.folders(),
        "totals": totals,
        "token_required": d.token.is_some(),
    }))
}

type StoreRead = (Vec<JobRow>, Vec<Value>, BTreeMap<String, u64>);

fn read_store(d: &Daemon) -> Result<StoreRead, StoreError> {
    let repo = d.repo.as_ref();
    let mut rows = Vec::new();
    for job in repo.recent_jobs(None, RECENT, None)? {
        let tasks = TaskCounts::of(&repo.tasks_of(&job.id)?);
        rows.push(job_row(d, job, tasks));
    }
    let mut by_state = BTreeMap::new();
    for j in repo.list_jobs()? {
        *by_state.entry(j.status.as_str().to_string()).or_insert(0) += 1;
    }
    let jobs: HashMap<JobId, &JobRow> = rows.iter().map(|r| (r.id.clone(), r)).collect();
    let attention = repo
        .list_files()?
        .into_iter()
        .filter(|f| matches!(f.status, FileStatus::Failed | FileStatus::Parked))
        .map(|f| attention_row(repo, &jobs, f))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((rows, attention, by_state))
}

fn job_row(d: &Daemon, job: JobRecord, tasks: TaskCounts) -> JobRow {
    let result = (job.status == JobStatus::Succeeded)
        .then(|| {
            job.manifest
                .as_deref()
                .and_then(|m| manifest_brief(d, &job.id, m))
        })
        .flatten();
    let keep = job.stderr_tail.len().saturating_sub(STDERR_LINES);
    JobRow {
        result,
        stderr_tail: job.stderr_tail[keep..].to_vec(),
        id: job.id,
        input: job.input,
        workflow: job.workflow_name,
        status: job.status,
        created_ms: job.created_ms,
        updated_ms: job.updated_ms,
        input_size: job.input_size,
        chunks: job.chunks,
        reused_chunks: job.reused_chunks,
        tasks,
        error: job.error,
    }
}

/// A failed or parked file with its reason and its last job's ffmpeg lines.
fn attention_row(
    repo: &dyn crate::store::Repo,
    shown: &HashMap<JobId, &JobRow>,
    f: FileRecord,
) -> Result<Value, StoreError> {
    let tail = match &f.job {
        Some(id) => match shown.get(id) {
            Some(row) => row.stderr_tail.clone(),
            None => repo.get_job(id)?.map_or_else(Vec::new, |j| {
                let keep = j.stderr_tail.len().saturating_sub(STDERR_LINES);
                j.stderr_tail[keep..].to_vec()
            }),
        },
        None => Vec::new(),
    };
    Ok(json!({
        "path": f.paths.last(),
        "workflow": f.workflow,
        "status": f.status,
        "attempts": f.attempts,
        "reason": f.reason,
        "job": f.job,
        "stderr_tail": tail,
        "updated_ms": f.updated_ms,
    }))
}

/// Outputs, sizes and time of a finished job, with signed links to the manifest and files.
/// Manifests of finished jobs never change, so each is read from disk once.
fn manifest_brief(d: &Daemon, id: &JobId, path: &str) -> Option<Value> {
    if let Some(hit) = d.manifests.lock().ok()?.get(id) {
        return Some(hit.clone());
    }
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let outputs: Vec<Value> = manifest
        .outputs
        .iter()
        .enumerate()
        .map(|(n, o)| {
            json!({
                "profile": o.profile,
                "kind": o.kind,
                "path": o.path,
                "bytes": o.bytes,
                "codec": o.codec,
                "height": o.height,
                "href": downloads::signed(d, &format!("/v1/jobs/{id}/outputs/{n}")),
            })
        })
        .collect();
    let bytes_out: u64 = if manifest.files.is_empty() {
        manifest.outputs.iter().map(|o| o.bytes).sum()
    } else {
        manifest.files.iter().map(|f| f.bytes).sum()
    };
    let brief = json!({
        "elapsed_s": manifest.elapsed_s,
        "bytes_out": bytes_out,
        "outputs": outputs,
        "reused_from": manifest.reused_from,
        "manifest_href": downloads::signed(d, &format!("/v1/jobs/{id}/manifest")),
    });
    let mut cache = d.manifests.lock().ok()?;
    if cache.len() >= RECENT * 4 {
        cache.clear();
    }
    cache.insert(id.clone(), brief.clone());
    Some(brief)
}
