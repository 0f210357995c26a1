//! The engine: composes media, store and workflow into jobs, under one scheduler.

pub mod cache;
mod dry_run;
mod hooks;
mod job;
pub mod metrics;
pub mod plan;
mod previews;
pub mod publish;
pub mod queue;
mod recovery;
mod script_api;
mod steps;
mod task;
mod webhooks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::media::tools::{FfmpegError, Tools};
use crate::store::{now_ms, JobStatus, Repo, SledRepo, StoreError};
use crate::workflow::LoadedWorkflow;
use cache::Cache;
pub use dry_run::{plan_input, PlanReport, PlannedCommand};
use queue::{LocalQueue, Slots, TaskQueue};

/// What the engine reports while it works; the CLI renders these.
#[derive(Debug, Clone)]
pub enum Event {
    JobStarted {
        job: String,
        input: String,
        tasks: usize,
        rungs: Vec<String>,
    },
    Note {
        job: String,
        message: String,
    },
    TaskProgress {
        job: String,
        task: String,
        fraction: f64,
        fps: Option<f64>,
        speed: Option<f64>,
    },
    TaskFinished {
        job: String,
        task: String,
        reused: usize,
    },
    JobProgress {
        job: String,
        fraction: f64,
    },
    JobFinished(JobOutcome),
}

/// The result of one input, as `spool run --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub id: Option<String>,
    pub input: String,
    pub status: JobStatus,
    pub reason: Option<String>,
    pub manifest: Option<PathBuf>,
    pub chunks: u32,
    pub reused_chunks: u32,
    pub elapsed_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Tools(#[from] FfmpegError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// Append every ffmpeg argv as a JSON line here (used by the benchmark's replay).
    pub trace_commands: Option<PathBuf>,
    /// Leave work directories in place after a job (the benchmark replays against them).
    pub keep_work: bool,
}

pub struct Engine {
    tools: Tools,
    repo: Arc<dyn Repo>,
    cache: Cache,
    queue: Arc<dyn TaskQueue>,
    slots: Arc<Slots>,
    state_dir: PathBuf,
    events: UnboundedSender<Event>,
    /// Cancelled on Ctrl-C / SIGTERM: jobs stop as interrupted (resumable).
    shutdown: CancellationToken,
    running: Mutex<HashMap<String, CancellationToken>>,
    trace: Option<Arc<Mutex<std::fs::File>>>,
    job_seq: AtomicU64,
    keep_work: bool,
    /// Webhook deliveries in flight; drained (bounded) at the end of a run.
    deliveries: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    webhook_seq: webhooks::Sequence,
    pub metrics: metrics::Metrics,
}

fn ensure_dir(path: &Path) -> Result<(), EngineError> {
    std::fs::create_dir_all(path).map_err(|source| EngineError::Dir {
        path: path.display().to_string(),
        source,
    })
}

/// Where `spool cancel` drops requests for a running spool to pick up.
pub fn cancel_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cancel")
}

impl Engine {
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
        let cfg = EngineConfig { state_dir, ..cfg };
        for sub in ["work", "cache", "cancel"] {
            ensure_dir(&cfg.state_dir.join(sub))?;
        }
        let repo: Arc<dyn Repo> = Arc::new(SledRepo::open(&cfg.state_dir)?);
        let recovered = repo.recover()?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "jobs left running by an earlier spool are marked interrupted"
            );
        }
        let killed = recovery::kill_orphaned_ffmpeg(&cfg.state_dir.join("work"));
        if killed > 0 {
            tracing::warn!(
                killed,
                "killed ffmpeg processes left running by a spool that died"
            );
        }
        // Work directories of earlier runs are orphans now: nothing runs yet.
        if let Ok(entries) = std::fs::read_dir(cfg.state_dir.join("work")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let trace = match &cfg.trace_commands {
            Some(p) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| EngineError::Dir {
                        path: p.display().to_string(),
                        source,
                    })?,
            ))),
            None => None,
        };
        let slots = Slots::new(cfg.concurrency);
        let queue: Arc<dyn TaskQueue> =
            Arc::new(LocalQueue::new(tools.clone(), slots.clone(), trace.clone()));
        Ok(Arc::new(Engine {
            cache: Cache::new(cfg.state_dir.join("cache"), repo.clone()),
            tools,
            repo,
            queue,
            slots,
            state_dir: cfg.state_dir,
            events,
            shutdown,
            running: Mutex::new(HashMap::new()),
            trace,
            job_seq: AtomicU64::new(0),
            keep_work: cfg.keep_work,
            deliveries: Mutex::new(Vec::new()),
            webhook_seq: webhooks::Sequence::default(),
            metrics: metrics::Metrics::default(),
        }))
    }

    pub fn repo(&self) -> &Arc<dyn Repo> {
        &self.repo
    }

    /// Runs a store call on the blocking pool: sled may fsync, and the async code around it
    /// must keep reading ffmpeg output and handing slots to the next ffmpeg meanwhile.
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
        let _ = self.events.send(event);
    }

    fn new_job_id(&self) -> String {
        let seq = self.job_seq.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "{:012x}{:04x}",
            now_ms(),
            (u64::from(nanos) ^ (u64::from(std::process::id()) << 4) ^ seq) & 0xffff
        )
    }

    /// Runs every input as a job; all their tasks share one scheduler.
    pub async fn run_all(
        self: &Arc<Self>,
        inputs: &[PathBuf],
        workflow: &Arc<LoadedWorkflow>,
        out_dir: &Path,
        force: bool,
    ) -> Vec<JobOutcome> {
        let watcher = tokio::spawn(self.clone().watch_cancel_requests());
        let mut handles = Vec::new();
        for input in inputs {
            let (engine, wf, input, out) = (
                self.clone(),
                workflow.clone(),
                input.clone(),
                out_dir.to_path_buf(),
            );
            handles.push(tokio::spawn(async move {
                engine.run_job(&input, &wf, &out, force, None).await
            }));
        }
        let mut outcomes = Vec::new();
        for (h, input) in handles.into_iter().zip(inputs) {
            outcomes.push(h.await.unwrap_or_else(|e| JobOutcome {
                id: None,
                input: input.display().to_string(),
                status: JobStatus::Failed,
                reason: Some(format!("internal error: {e}")),
                manifest: None,
                chunks: 0,
                reused_chunks: 0,
                elapsed_s: 0.0,
            }));
        }
        watcher.abort();
        let _ = self.repo.flush();
        self.drain_webhooks(webhooks::DRAIN).await;
        outcomes
    }

    /// Runs one input as a job (the daemon's entry point; `run_all` for a batch).
    /// `known` is the file's digest when the caller just computed it, so it is read once.
    pub async fn run_file(
        self: &Arc<Self>,
        input: &Path,
        workflow: &LoadedWorkflow,
        out_dir: &Path,
        known: Option<crate::media::hash::FileDigest>,
    ) -> JobOutcome {
        self.run_job(input, workflow, out_dir, false, known).await
    }

    /// Cancels a running job; false when no job of that id runs here.
    pub fn cancel_job(&self, id: &str) -> bool {
        let token = self.running.lock().ok().and_then(|r| r.get(id).cloned());
        token.map(|t| t.cancel()).is_some()
    }

    /// Ids of the jobs running now.
    pub fn running_jobs(&self) -> Vec<String> {
        self.running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Opens or closes the gate on new ffmpeg starts (schedules).
    pub fn set_encoding_allowed(&self, open: bool) {
        self.slots.set_open(open);
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Waits (bounded) for webhook deliveries; the daemon calls it on the way out.
    pub async fn finish_deliveries(&self) {
        self.drain_webhooks(webhooks::DRAIN).await;
    }

    /// Picks up `spool cancel` requests dropped as files while this process holds the state.
    async fn watch_cancel_requests(self: Arc<Self>) {
        let dir = cancel_dir(&self.state_dir);
        loop {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    let token = self.running.lock().ok().and_then(|r| r.get(&id).cloned());
                    if let Some(token) = token {
                        tracing::info!(job = %id, "cancel requested");
                        token.cancel();
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
}
