//! What makes a process a coordinator of remote workers, shared by `spool watch` and the
//! one-shot `spool run --queue`: the API the workers download chunks from and upload results
//! to (which `spool status` and `spool cancel` also reach while it runs), and, with
//! `encode_here`, a worker inside the coordinator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{ApiConfig, QueueConfig};
use super::{api, endpoint_file, restrict, Daemon, Endpoint};
use crate::engine::queue::remote::worker::{self, WorkerConfig};
use crate::engine::Engine;

/// A coordinator without watched folders, for as long as a `spool run --queue` lasts.
pub struct Coordinator {
    pub url: String,
    stop: CancellationToken,
    api: JoinHandle<()>,
    here: Option<JoinHandle<()>>,
    endpoint: PathBuf,
}

impl Coordinator {
    /// Listens on `listen` and starts the coordinator's own encodes, if any. A token is
    /// required: the workers' calls move media.
    pub async fn start(
        engine: Arc<Engine>,
        listen: &str,
        token: String,
        queue: &QueueConfig,
    ) -> Result<Coordinator, String> {
        let state = engine.state_dir().to_path_buf();
        let daemon = Daemon::new(
            engine,
            Vec::new(),
            1,
            Some(token.clone()),
            ApiConfig::default(),
        )?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let url = format!("http://{addr}");
        let endpoint = announce(&state, &url, Some(token.clone()))?;
        let stop = CancellationToken::new();
        let api = tokio::spawn(api::serve(listener, daemon, stop.clone()));
        let here = encode_here(Some(queue), &state, Some(token), &url, &stop)?;
        tracing::info!(api = %url, "coordinating remote workers");
        Ok(Coordinator {
            url,
            stop,
            api,
            here,
            endpoint,
        })
    }

    /// Stops its own encodes, then the API (the jobs are over: nothing is in flight).
    pub async fn stop(self) {
        self.stop.cancel();
        if let Some(h) = self.here {
            let _ = h.await;
        }
        let _ = self.api.await;
        let _ = std::fs::remove_file(&self.endpoint);
    }
}

/// Writes `<state>/daemon.json` (owner-only: it holds the token) so the CLI finds this API.
pub(super) fn announce(state: &Path, url: &str, token: Option<String>) -> Result<PathBuf, String> {
    let endpoint = Endpoint {
        url: url.to_string(),
        pid: std::process::id(),
        token,
    };
    let file = endpoint_file(state);
    let bytes = serde_json::to_vec_pretty(&endpoint).map_err(|e| e.to_string())?;
    crate::engine::publish::write_atomic(&file, &bytes)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    restrict(&file);
    Ok(file)
}

/// With `queue.encode_here: N`, this coordinator encodes too: a worker inside it, with N
/// slots, takes tasks from the same queue as every other worker, reading chunks and placing
/// results through the shared root (its own files: nothing crosses the network).
pub(super) fn encode_here(
    queue: Option<&QueueConfig>,
    state: &Path,
    token: Option<String>,
    api: &str,
    stop: &CancellationToken,
) -> Result<Option<JoinHandle<()>>, String> {
    let Some(q) = queue.filter(|q| q.encode_here > 0) else {
        return Ok(None);
    };
    let settings = q.settings(state)?;
    let wcfg = WorkerConfig {
        shared: settings.shared.clone(),
        settings,
        coordinator: api.to_string(),
        token,
        concurrency: q.encode_here,
        work: state.join("worker"),
        name: format!("{}-here", worker::default_name()),
        // Its inputs are its own files, read in place through the shared root.
        keep_inputs: 0,
    };
    let stop = stop.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = worker::run(wcfg, stop).await {
            tracing::error!(error = %e, "this coordinator's own encodes could not start");
        }
    })))
}
