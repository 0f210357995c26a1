//! `spool run` and `spool watch`: the engine in the foreground, or as a service.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use spool::engine::{Engine, EngineConfig, JobOptions};
use spool::store::JobStatus;
use spool::workflow::LoadedWorkflow;

use super::{EXIT_FAILED, EXIT_INTERRUPTED};

/// Hidden options the benchmark uses.
#[derive(Default)]
pub struct DebugOpts {
    pub trace_commands: Option<PathBuf>,
    pub keep_work: bool,
}

/// How `spool run` reports and what it may use.
pub struct RunOpts {
    /// One JSON result per job on stdout (and no progress display).
    pub json: bool,
    pub progress: Progress,
    /// ffmpeg processes at once (default: the workflow's, else one per core).
    pub concurrency: Option<usize>,
    pub cache_max_bytes: Option<u64>,
}

/// How progress is shown on stderr while jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Bars on a terminal, log lines elsewhere.
    Auto,
    Bar,
    Plain,
    None,
}

pub async fn run(
    inputs: &[PathBuf],
    wf: LoadedWorkflow,
    out: &Path,
    state: &Path,
    opts: RunOpts,
    options: JobOptions,
    debug: DebugOpts,
) -> Result<u8> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let concurrency = opts
        .concurrency
        .or(wf.workflow.encode.concurrency)
        .unwrap_or(cores)
        .max(1);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // With --json, stdout is for results: progress stays log lines on stderr.
    let display = match (opts.json, opts.progress) {
        (_, Progress::None) => super::ui::Display::None,
        (true, _) | (_, Progress::Plain) => super::ui::Display::Lines,
        (_, Progress::Bar) => super::ui::Display::Bars,
        (_, Progress::Auto) if std::io::stderr().is_terminal() => super::ui::Display::Bars,
        (_, Progress::Auto) => super::ui::Display::Lines,
    };
    let ui = tokio::spawn(super::ui::render(rx, display));
    let cache_max_bytes = opts.cache_max_bytes;
    let cfg = EngineConfig {
        state_dir: state.to_path_buf(),
        concurrency,
        trace_commands: debug.trace_commands,
        keep_work: debug.keep_work,
        cache_max_bytes,
        remote: None,
    };
    let engine = Engine::open(cfg, tx, shutdown.clone()).await?;
    let outcomes = engine.run_all(inputs, &Arc::new(wf), out, options).await;
    drop(engine);
    let _ = ui.await;
    for o in &outcomes {
        match opts.json {
            true => println!("{}", serde_json::to_string(o)?),
            false => println!("{}", super::ui::summary(o)),
        }
    }
    Ok(
        if outcomes
            .iter()
            .all(|o| matches!(o.status, JobStatus::Succeeded | JobStatus::Skipped))
        {
            0
        } else if shutdown.is_cancelled() {
            EXIT_INTERRUPTED
        } else {
            EXIT_FAILED
        },
    )
}

pub async fn watch(config: &Path) -> Result<u8> {
    let loaded = spool::daemon::config::load(config).map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = EngineConfig {
        state_dir: loaded.config.state.clone(),
        concurrency: loaded.config.concurrency.unwrap_or(cores).max(1),
        trace_commands: None,
        keep_work: false,
        cache_max_bytes: loaded
            .config
            .cache
            .max_bytes()
            .map_err(anyhow::Error::msg)?,
        remote: loaded
            .config
            .queue
            .as_ref()
            .map(|q| q.settings(&loaded.config.state))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    // The daemon stops admitting on a signal; the engine's own token interrupts jobs only
    // after the grace period.
    let signals = CancellationToken::new();
    spawn_signal_handler_saying(
        signals.clone(),
        "signal received: finishing running jobs within the grace period",
    );
    // The daemon's dashboard follows the engine's events.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::open(cfg, tx, CancellationToken::new()).await?;
    let clock = std::env::var_os("SPOOL_CLOCK_FILE").map(PathBuf::from);
    spool::daemon::run(loaded, engine, rx, signals, clock)
        .await
        .map_err(anyhow::Error::msg)
}

/// Ctrl-C and SIGTERM stop cleanly: ffmpeg groups are killed, jobs stay resumable.
pub fn spawn_signal_handler(shutdown: CancellationToken) {
    spawn_signal_handler_saying(
        shutdown,
        "stopping: killing running ffmpeg processes; run the same command again to resume",
    );
}

fn spawn_signal_handler_saying(shutdown: CancellationToken, message: &'static str) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("{message}");
        shutdown.cancel();
    });
}
