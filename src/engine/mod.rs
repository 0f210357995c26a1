//! The engine: composes media, store, script and workflow into jobs. It is built from its
//! parts (store, runner, queue, artifact store), so each can be replaced or tested alone.
//!
//! - `plan/`: the one planner (`spool plan` prints it, `spool run` executes it)
//! - `job/`: the coordinator, one stage per file
//! - `task/`: the serialisable encode task, `execute`, the retry policy
//! - `queue/`: submit/events/cancel and claim/renew/complete/fail; the local queue
//! - `exec/`: the runner every ffmpeg goes through (slots, gates, trace, process groups)
//! - `artifacts/`: the content-addressed store of encoded chunks
//! - `hooks/`, `steps/`, `notify/`: Lua, workflow steps, webhooks

pub mod artifacts;
mod cache;
pub mod error;
pub mod exec;
mod hooks;
mod job;
pub mod manifest;
pub mod metrics;
mod notify;
pub mod plan;
pub mod publish;
pub mod queue;
mod recovery;
mod steps;
pub mod task;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use artifacts::ArtifactStore;
use exec::Runner;
pub use plan::preview::{plan_input, PlanReport, PlannedCommand};
use queue::{LocalQueue, TaskQueue, WorkSource};
use task::ExecEnv;

use crate::media::tools::{FfmpegError, Tools};
use crate::store::{now_ms, JobId, JobStatus, Repo, SledRepo, StoreError};
use crate::workflow::LoadedWorkflow;

/// What the engine reports while it works; the CLI renders these.
#[derive(Debug, Clone)]
pub enum Event {
    JobStarted {
        job: JobId,
        input: String,
        tasks: usize,
        rungs: Vec<String>,
    },
    Note {
        job: JobId,
        message: String,
    },
    TaskProgress {
        job: JobId,
        task: String,
        fraction: f64,
        fps: Option<f64>,
        speed: Option<f64>,
    },
    TaskFinished {
        job: JobId,
        task: String,
        reused: usize,
    },
    JobProgress {
        job: JobId,
        fraction: f64,
    },
    JobFinished(JobOutcome),
}

/// The result of one input, as `spool run --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub id: Option<JobId>,
    pub input: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub manifest: Option<PathBuf>,
    pub chunks: u32,
    pub reused_chunks: u32,
    pub elapsed_s: f64,
    /// A job failed on a full disk: that directory (retrying before space returns fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for_space: Option<PathBuf>,
}

impl JobOutcome {
    /// A job that ended before it had a record (the input could not even be read).
    fn failed_early(input: &Path, reason: String, started: Instant) -> JobOutcome {
        JobOutcome {
            id: None,
            input: input.display().to_string(),
            status: JobStatus::Failed,
            reason: Some(reason),
            manifest: None,
            chunks: 0,
            reused_chunks: 0,
            elapsed_s: started.elapsed().as_secs_f64(),
            waiting_for_space: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Tools(#[from] FfmpegError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the Redis queue: {0}")]
    Remote(#[from] queue::remote::RemoteError),
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub state_dir: PathBuf,
    pub concurrency: usize,
    /// Append every ffmpeg command line as a JSON line here (the benchmark replays it).
    pub trace_commands: Option<PathBuf>,
    /// Leave work directories in place after a job (the benchmark replays against them).
    pub keep_work: bool,
    /// The chunk cache's limit; by default its size plus half its disk's free space at start.
    pub cache_max_bytes: Option<u64>,
    /// Encode through Redis on `spool worker`s instead of this machine's own workers.
    pub remote: Option<queue::remote::RedisSettings>,
}

/// The parts an engine is built from.
pub struct EngineParts {
    pub repo: Arc<dyn Repo>,
    pub runner: Arc<Runner>,
    pub queue: Arc<dyn TaskQueue>,
    pub artifacts: Arc<ArtifactStore>,
    pub metrics: Arc<metrics::Metrics>,
}

/// How one job runs, besides its input and workflow.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Encode again even where the cache or an earlier job holds the result.
    pub force: bool,
    /// The input's digest when the caller just computed it, so it is read once.
    pub known: Option<crate::media::hash::FileDigest>,
    /// The id to run under (an API submission already answered with it).
    pub id: Option<JobId>,
    /// -100 (last) to 100 (first); see [`job_order`].
    pub priority: i32,
}

/// Highest and lowest job priority.
pub const MAX_PRIORITY: i32 = 100;

/// Where a job goes in line (lower first): its arrival number, moved ahead by ten places
/// per priority point. A job is passed only by jobs that arrived fewer than
/// 10 × (their priority − its priority) places after it, so none waits for ever.
pub fn job_order(arrival: u64, priority: i32) -> u64 {
    let p = i64::from(priority.clamp(-MAX_PRIORITY, MAX_PRIORITY));
    (arrival as i64 + 10 * i64::from(MAX_PRIORITY) - 10 * p).max(0) as u64
}

pub struct Engine {
    repo: Arc<dyn Repo>,
    runner: Arc<Runner>,
    queue: Arc<dyn TaskQueue>,
    artifacts: Arc<ArtifactStore>,
    /// The local queue, closed when the engine goes (its workers then stop).
    local: Option<Arc<LocalQueue>>,
    state_dir: PathBuf,
    events: UnboundedSender<Event>,
    /// Cancelled on Ctrl-C / SIGTERM: jobs stop as interrupted (resumable).
    shutdown: CancellationToken,
    /// Each running job's cancel token and start time (eviction spares what they use).
    running: Mutex<HashMap<JobId, (CancellationToken, u64)>>,
    /// The cache's limit in bytes (see [`EngineConfig::cache_max_bytes`]).
    cache_limit: std::sync::atomic::AtomicU64,
    job_seq: AtomicU64,
    keep_work: bool,
    /// Webhook deliveries in flight; drained (bounded) at the end of a run.
    deliveries: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    webhook_seq: notify::Sequence,
    pub metrics: Arc<metrics::Metrics>,
}

fn ensure_dir(path: &Path) -> Result<(), EngineError> {
    std::fs::create_dir_all(path).map_err(|source| EngineError::Dir {
        path: path.display().to_string(),
        source,
    })
}

/// Where uploads (`PUT /v1/blobs/<sha256>`) are kept.
pub fn blobs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("blobs")
}

/// Where `spool cancel` drops requests for a running spool to pick up.
pub fn cancel_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cancel")
}

impl Engine {
    /// The default engine: sled state, the local queue with one worker per slot.
    pub async fn open(
        cfg: EngineConfig,
        events: UnboundedSender<Event>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Engine>, EngineError> {
        let tools = Tools::locate().await?;
        ensure_dir(&cfg.state_dir)?;
        // Absolute, so every ffmpeg argv names the work dir in full (see recovery).
        let state_dir =
            std::fs::canonicalize(&cfg.state_dir).map_err(|source| EngineError::Dir {
                path: cfg.state_dir.display().to_string(),
                source,
            })?;
        for sub in ["work", "cache", "cancel"] {
            ensure_dir(&state_dir.join(sub))?;
        }
        let repo: Arc<dyn Repo> = Arc::new(SledRepo::open(&state_dir)?);
        let recovered = repo.recover()?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "jobs left running by an earlier spool are marked interrupted"
            );
        }
        recovery::clean_work_dir(&state_dir.join("work"));
        recovery::clean_blobs_dir(&blobs_dir(&state_dir));
        let trace = match &cfg.trace_commands {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| EngineError::Dir {
                        path: p.display().to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        let launch = exec::launch();
        let runner = Arc::new(Runner::new(tools, cfg.concurrency, trace, launch));
        let artifacts = Arc::new(ArtifactStore::new(state_dir.join("cache")));
        let metrics = Arc::new(metrics::Metrics::default());
        let (queue, local): (Arc<dyn TaskQueue>, _) = match cfg.remote {
            Some(settings) => {
                let intake = queue::remote::Intake {
                    tools: runner.tools().clone(),
                    artifacts: artifacts.clone(),
                    blobs: blobs_dir(&state_dir),
                };
                let remote = queue::remote::RedisQueue::start(
                    settings,
                    intake,
                    metrics.clone(),
                    shutdown.clone(),
                )
                .await?;
                (Arc::new(remote), None)
            }
            None => {
                let local = Arc::new(LocalQueue::new());
                let env = Arc::new(ExecEnv {
                    runner: runner.clone(),
                    artifacts: artifacts.clone(),
                });
                for _ in 0..cfg.concurrency.max(1) {
                    let source: Arc<dyn WorkSource> = local.clone();
                    tokio::spawn(queue::work(source, env.clone()));
                }
                (local.clone() as Arc<dyn TaskQueue>, Some(local))
            }
        };
        let parts = EngineParts {
            repo,
            runner,
            queue,
            artifacts,
            metrics,
        };
        let mut engine = Engine::new(parts, state_dir, cfg.keep_work, events, shutdown);
        engine.local = local;
        let engine = Arc::new(engine);
        engine.set_cache_limit(cfg.cache_max_bytes)?;
        Ok(engine)
    }

    /// An engine from given parts.
    pub fn new(
        parts: EngineParts,
        state_dir: PathBuf,
        keep_work: bool,
        events: UnboundedSender<Event>,
        shutdown: CancellationToken,
    ) -> Engine {
        Engine {
            repo: parts.repo,
            runner: parts.runner,
            queue: parts.queue,
            artifacts: parts.artifacts,
            local: None,
            state_dir,
            events,
            shutdown,
            running: Mutex::new(HashMap::new()),
            cache_limit: AtomicU64::new(u64::MAX),
            job_seq: AtomicU64::new(0),
            keep_work,
            deliveries: Mutex::new(Vec::new()),
            webhook_seq: notify::Sequence::default(),
            metrics: parts.metrics,
        }
    }

    /// The state directory (absolute).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn repo(&self) -> &Arc<dyn Repo> {
        &self.repo
    }

    pub fn tools(&self) -> &Tools {
        self.runner.tools()
    }

    /// A store call on the blocking pool: sled may fsync while ffmpeg output must be read.
    async fn store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Repo) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || call(repo.as_ref()))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?
    }

    fn emit(&self, event: Event) {
        // The receiver (a UI) may be gone; the job does not depend on it.
        let _ = self.events.send(event);
    }

    fn next_seq(&self) -> u64 {
        self.job_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn new_job_id(&self) -> JobId {
        let seq = self.next_seq();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        JobId(format!(
            "{:012x}{:04x}",
            now_ms(),
            (u64::from(nanos) ^ (u64::from(std::process::id()) << 4) ^ seq) & 0xffff
        ))
    }

    /// Runs every input as a job; all their tasks share one scheduler.
    pub async fn run_all(
        self: &Arc<Self>,
        inputs: &[PathBuf],
        workflow: &Arc<LoadedWorkflow>,
        out_dir: &Path,
        options: JobOptions,
    ) -> Vec<JobOutcome> {
        let watcher = tokio::spawn(self.clone().watch_cancel_requests());
        let mut handles = Vec::new();
        for input in inputs {
            let (engine, wf, input, out, options) = (
                self.clone(),
                workflow.clone(),
                input.clone(),
                out_dir.to_path_buf(),
                options.clone(),
            );
            handles.push(tokio::spawn(async move {
                engine.run_job(&input, &wf, &out, options).await
            }));
        }
        let mut outcomes = Vec::new();
        for (h, input) in handles.into_iter().zip(inputs) {
            outcomes.push(h.await.unwrap_or_else(|e| {
                JobOutcome::failed_early(input, format!("internal error: {e}"), Instant::now())
            }));
        }
        watcher.abort();
        if let Err(e) = self.repo.flush() {
            tracing::error!(error = %e, "flushing the state store failed");
        }
        self.drain_webhooks(notify::DRAIN).await;
        outcomes
    }

    /// Runs one input as a job (the daemon's entry point; `run_all` for a batch).
    pub async fn run_file(
        self: &Arc<Self>,
        input: &Path,
        workflow: &LoadedWorkflow,
        out_dir: &Path,
        options: JobOptions,
    ) -> JobOutcome {
        self.run_job(input, workflow, out_dir, options).await
    }

    /// A fresh job id, for a caller that must answer with it before the job starts.
    pub fn assign_job_id(&self) -> JobId {
        self.new_job_id()
    }

    /// Cancels a running job; false when no job of that id runs here.
    pub fn cancel_job(&self, id: &JobId) -> bool {
        let token = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(id).map(|(t, _)| t.clone()));
        token.map(|t| t.cancel()).is_some()
    }

    /// Ids of the jobs running now.
    pub fn running_jobs(&self) -> Vec<JobId> {
        self.running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Opens or closes one workflow's gate on new ffmpeg starts (its schedule).
    pub fn set_gate(&self, workflow: &str, open: bool) {
        self.runner.set_gate(workflow, open);
        self.queue.set_gate(workflow, open);
    }

    /// An input a remote worker may download (`GET /v1/blobs/<sha256>`), by SHA-256.
    pub fn offered_blob(&self, sha256: &str) -> Option<PathBuf> {
        self.queue.offered(sha256)
    }

    /// Signals one workflow's running ffmpeg processes (SIGSTOP to pause, SIGCONT).
    pub fn signal_gate(&self, workflow: &str, signal: Signal) -> usize {
        if matches!(signal, Signal::SIGSTOP | Signal::SIGCONT) {
            self.queue.pause_gate(workflow, signal == Signal::SIGSTOP);
        }
        self.runner.signal_gate(workflow, signal)
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Waits (bounded) for webhook deliveries; the daemon calls it on the way out.
    pub async fn finish_deliveries(&self) {
        self.drain_webhooks(notify::DRAIN).await;
    }

    /// Picks up `spool cancel` requests dropped as files while this process holds the state.
    async fn watch_cancel_requests(self: Arc<Self>) {
        let dir = cancel_dir(&self.state_dir);
        loop {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let id = JobId(e.file_name().to_string_lossy().into_owned());
                    if self.cancel_job(&id) {
                        tracing::info!(job = %id, "cancel requested");
                        if let Err(err) = std::fs::remove_file(e.path()) {
                            tracing::warn!(job = %id, error = %err, "cannot remove the cancel request");
                        }
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(local) = &self.local {
            local.close();
        }
    }
}
