//! `spool watch`: folders in, finished outputs out. Files are admitted only when complete,
//! known by content so renames and duplicates are not encoded again, retried a bounded
//! number of times and then parked, with every loop supervised and a local HTTP API.

pub mod admission;
mod api;
mod blobs;
pub mod config;
pub mod coordinator;
mod files;
mod folders;
pub mod live;
pub mod schedule;
mod submit;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::exec::{SlotGuard, Slots};
use crate::engine::{job_order, Engine};
use crate::store::watch::{retry_files, RetryTarget};
use crate::store::{Repo, StoreError};
use crate::workflow::reload::{Reload, WatchedWorkflow};
use crate::workflow::schema::Watch;
use admission::Fingerprint;

/// One watched workflow.
pub struct Entry {
    pub name: String,
    pub workflow: WatchedWorkflow,
    pub watch: Watch,
    pub folders: Vec<PathBuf>,
    pub output: PathBuf,
    settling: AtomicU64,
    rescan: AtomicBool,
}

/// Written to `<state>/daemon.json` so the CLI finds the API of the daemon holding the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub pid: u32,
    pub token: Option<String>,
}

pub struct Daemon {
    pub engine: Arc<Engine>,
    pub repo: Arc<dyn Repo>,
    pub entries: Vec<Entry>,
    /// Cancelled on shutdown: no file is admitted after it.
    pub admitting: CancellationToken,
    /// Jobs at once (`max_jobs`), taken in [`job_order`] (folder and API jobs alike).
    jobs: Arc<Slots>,
    /// Arrival numbers for that order.
    arrivals: AtomicU64,
    /// What API submissions may read and write.
    pub api: config::ApiConfig,
    /// Inputs uploaded through the API.
    blobs: blobs::Blobs,
    /// Files admitted whose job has not finished, by fingerprint (never admitted twice).
    in_flight: Mutex<HashSet<Fingerprint>>,
    /// One lock per content being handled (`<workflow>/<content>`): twins dropped at once
    /// under two names wait for each other instead of both being encoded.
    contents: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// A directory whose disk filled up, and its free bytes then: no file is taken until
    /// it has room again.
    full_disk: Mutex<Option<(PathBuf, u64)>>,
    queued: AtomicU64,
    admitted: AtomicU64,
    paused: Mutex<HashSet<PathBuf>>,
    unavailable: Mutex<HashSet<PathBuf>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub token: Option<String>,
    /// Running jobs' progress, for the dashboard's push stream.
    pub board: live::LiveBoard,
    /// Finished jobs' manifest summaries, read from disk once (manifests never change).
    manifests: Mutex<HashMap<crate::store::JobId, serde_json::Value>>,
}

pub fn endpoint_file(state: &Path) -> PathBuf {
    state.join("daemon.json")
}

fn fingerprint_key(p: &Fingerprint) -> String {
    format!("{}-{}-{}-{}", p.dev, p.inode, p.size, p.mtime_ns)
}

impl Daemon {
    pub fn new(
        engine: Arc<Engine>,
        workflows: Vec<(PathBuf, crate::workflow::LoadedWorkflow)>,
        max_jobs: usize,
        token: Option<String>,
        api: config::ApiConfig,
    ) -> Result<Arc<Daemon>, String> {
        let mut entries = Vec::new();
        for (file, wf) in workflows {
            let name = wf.workflow.name.clone();
            let watch = wf.workflow.watch.clone().ok_or("no watch section")?;
            let folders = config::folders_of(&wf);
            let output = wf.base_dir.join(&watch.output);
            std::fs::create_dir_all(&output)
                .map_err(|e| format!("output {}: {e}", output.display()))?;
            let output = output.canonicalize().unwrap_or(output);
            let wf_name = name.clone();
            let watched = WatchedWorkflow::watch(&file, move |r| match r {
                Reload::Replaced { hash } => {
                    tracing::info!(workflow = %wf_name, %hash, "workflow changed; new jobs use it")
                }
                Reload::Rejected { error } => {
                    tracing::error!(workflow = %wf_name, %error, "workflow change rejected; the previous version stays")
                }
            })
            .map_err(|e| e.to_string())?;
            entries.push(Entry {
                name,
                workflow: watched,
                watch,
                folders,
                output,
                settling: AtomicU64::new(0),
                rescan: AtomicBool::new(false),
            });
        }
        let blobs = blobs::Blobs::new(engine.state_dir());
        Ok(Arc::new(Daemon {
            repo: engine.repo().clone(),
            engine,
            entries,
            admitting: CancellationToken::new(),
            jobs: Slots::new(max_jobs.max(1)),
            arrivals: AtomicU64::new(0),
            api,
            blobs,
            in_flight: Mutex::new(HashSet::new()),
            contents: Mutex::new(HashMap::new()),
            full_disk: Mutex::new(None),
            queued: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            paused: Mutex::new(HashSet::new()),
            unavailable: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
            token,
            board: live::LiveBoard::default(),
            manifests: Mutex::new(HashMap::new()),
        }))
    }

    /// Waits for a job slot, in line by `priority` and arrival.
    async fn job_slot(&self, priority: i32) -> SlotGuard {
        let arrival = self.arrivals.fetch_add(1, Ordering::Relaxed);
        let gate: Arc<str> = Arc::from("jobs");
        self.jobs
            .acquire((job_order(arrival, priority), 0, 0), &gate)
            .await
    }

    fn take_rescan(&self, index: usize) -> bool {
        self.entries[index].rescan.swap(false, Ordering::Relaxed)
    }

    /// Asks every folder loop for a full rescan (after `retry`, for example).
    pub fn rescan_all(&self) {
        for e in &self.entries {
            e.rescan.store(true, Ordering::Relaxed);
        }
    }

    fn set_settling(&self, index: usize, n: usize) {
        self.entries[index]
            .settling
            .store(n as u64, Ordering::Relaxed);
    }

    fn set_unavailable(&self, folder: &Path, missing: bool) {
        if let Ok(mut u) = self.unavailable.lock() {
            if missing {
                u.insert(folder.to_path_buf());
            } else {
                u.remove(folder);
            }
        }
    }

    /// Holds every new file until the disk holding `place` has room again.
    fn wait_for_space(&self, place: &Path) {
        let free = crate::engine::exec::disk::free_bytes(place).unwrap_or(0);
        tracing::warn!(place = %place.display(), free, "a disk is full: no new file is taken until it has room again");
        if let Ok(mut f) = self.full_disk.lock() {
            *f = Some((place.to_path_buf(), free));
        }
    }

    /// Whether admission waits for space; clears the wait once the disk has room.
    fn waiting_for_space(&self) -> bool {
        let Ok(mut f) = self.full_disk.lock() else {
            return false;
        };
        let Some((place, free_then)) = f.clone() else {
            return false;
        };
        if !crate::engine::exec::disk::has_room_again(&place, free_then) {
            return true;
        }
        tracing::info!(place = %place.display(), "the disk has room again: taking files");
        *f = None;
        false
    }

    pub fn is_paused(&self, folder: &Path) -> bool {
        self.paused.lock().is_ok_and(|p| p.contains(folder))
    }

    /// Pauses or resumes admission from a watched folder; false if no workflow watches it.
    pub fn set_paused(&self, folder: &Path, pause: bool) -> bool {
        let folder = folder
            .canonicalize()
            .unwrap_or_else(|_| folder.to_path_buf());
        if !self.entries.iter().any(|e| e.folders.contains(&folder)) {
            return false;
        }
        if let Ok(mut p) = self.paused.lock() {
            if pause {
                p.insert(folder);
            } else {
                p.remove(&folder);
            }
        }
        true
    }

    /// Clears a parked or failed file (by job id or path) so the next scan takes it again.
    pub fn retry(&self, target: RetryTarget<'_>) -> Result<usize, StoreError> {
        let n = retry_files(self.repo.as_ref(), target)?;
        self.rescan_all();
        Ok(n)
    }

    /// Folder states for the API.
    pub fn folders(&self) -> Vec<serde_json::Value> {
        let paused = self.paused.lock().map(|p| p.clone()).unwrap_or_default();
        let missing = self
            .unavailable
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        self.entries
            .iter()
            .flat_map(|e| {
                e.folders.iter().map(|f| {
                    let state = if missing.contains(f) {
                        "unavailable"
                    } else if paused.contains(f) {
                        "paused"
                    } else {
                        "watching"
                    };
                    serde_json::json!({
                        "folder": f, "workflow": e.name, "state": state,
                        "settling": e.settling.load(Ordering::Relaxed),
                    })
                })
            })
            .collect()
    }

    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn settling(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.settling.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits for the jobs in progress, up to `grace`; then interrupts them.
    async fn drain(&self, grace: Duration) {
        let handles: Vec<_> = match self.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let all = futures::future::join_all(handles);
        tokio::pin!(all);
        if tokio::time::timeout(grace, &mut all).await.is_err() {
            tracing::info!(
                "grace period over: interrupting running jobs (they resume at the next start)"
            );
            self.engine.shutdown_token().cancel();
            let _ = all.await;
        }
    }
}

/// Restarts a loop that ended with an error or a panic, with backoff, until `stop`.
async fn supervise<F, Fut>(name: String, stop: CancellationToken, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        let run = tokio::spawn(make());
        match run.await {
            Ok(Ok(())) if stop.is_cancelled() => return,
            Ok(Ok(())) => tracing::warn!(%name, "loop ended; restarting"),
            Ok(Err(e)) => tracing::error!(%name, error = %e, "loop failed; restarting"),
            Err(e) => tracing::error!(%name, error = %e, "loop panicked; restarting"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub async fn run(
    loaded: config::Loaded,
    engine: Arc<Engine>,
    events: tokio::sync::mpsc::UnboundedReceiver<crate::engine::Event>,
    signals: CancellationToken,
    clock_file: Option<PathBuf>,
) -> Result<u8, String> {
    let cfg = loaded.config;
    let daemon = Daemon::new(
        engine.clone(),
        loaded.workflows,
        cfg.max_jobs,
        cfg.token.clone(),
        cfg.api.clone(),
    )?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    let file = coordinator::announce(&cfg.state, &url, cfg.token.clone())?;
    tracing::info!(api = %url, workflows = daemon.entries.len(), "spool watch started");
    match daemon.resume_api_jobs() {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "API jobs interrupted by the last stop run again"),
        Err(e) => {
            tracing::error!(error = %e, "API jobs interrupted by the last stop could not be read")
        }
    }

    let board = daemon.clone();
    tokio::spawn(async move { board.board.follow(events).await });
    let stop = daemon.admitting.clone();
    let mut loops = Vec::new();
    for (i, e) in daemon.entries.iter().enumerate() {
        let d = daemon.clone();
        loops.push(tokio::spawn(supervise(
            format!("watch {}", e.name),
            stop.clone(),
            move || folders::watch_loop(d.clone(), i),
        )));
        if let Some(schedule) = e.workflow.current().workflow.schedule.clone() {
            loops.push(tokio::spawn(schedule::enforce(
                engine.clone(),
                e.name.clone(),
                schedule,
                clock_file.clone(),
                stop.clone(),
            )));
        }
    }
    let api = tokio::spawn(api::serve(listener, daemon.clone(), stop.clone()));
    // Its own encodes stop only after the running jobs had their grace.
    let here_stop = CancellationToken::new();
    let here = coordinator::encode_here(
        cfg.queue.as_ref(),
        &cfg.state,
        cfg.token.clone(),
        &url,
        &here_stop,
    )?;
    signals.cancelled().await;
    tracing::info!("stopping: no new files; waiting for running jobs");
    stop.cancel();
    daemon
        .drain(Duration::from_secs_f64(cfg.grace_seconds))
        .await;
    here_stop.cancel();
    if let Some(h) = here {
        let _ = h.await;
    }
    for l in loops {
        let _ = l.await;
    }
    let _ = api.await;
    engine.finish_deliveries().await;
    log_store("(shutdown)", daemon.repo.flush());
    let _ = std::fs::remove_file(&file);
    tracing::info!("spool watch stopped");
    Ok(0)
}

/// The endpoint file holds the API token: only the owner may read it.
fn restrict(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
}

/// A store write the daemon cannot act on otherwise is at least logged, never dropped.
fn log_store(file: &str, result: Result<(), StoreError>) {
    if let Err(e) = result {
        tracing::error!(%file, error = %e, "state store write failed");
    }
}

/// Files by status, for metrics.
pub fn file_counts(repo: &dyn Repo) -> Result<HashMap<String, u64>, StoreError> {
    let mut counts = HashMap::new();
    for f in repo.list_files()? {
        let key = serde_json::to_value(f.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        *counts.entry(key).or_insert(0) += 1;
    }
    Ok(counts)
}
