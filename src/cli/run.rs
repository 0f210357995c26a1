//! `spool run` and `spool watch`: the engine in the foreground, or as a service.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use spool::daemon::config::QueueConfig;
use spool::daemon::coordinator::Coordinator;
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
    /// Encode on remote workers through Redis (`--queue`); this process coordinates.
    pub queue: QueueArgs,
}

/// `spool run --queue …`: a one-shot coordinator, for as long as its jobs run.
#[derive(Debug, Default, clap::Args)]
pub struct QueueArgs {
    /// Encode on `spool worker`s through this Redis (`redis://HOST:6379[/DB]`) instead of
    /// here; this process serves their media over HTTP until its jobs end.
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    /// Where the workers reach this coordinator (with --queue).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7300")]
    pub listen: String,
    /// The token workers must present (also read from SPOOL_TOKEN); required with --queue.
    #[arg(long)]
    pub token: Option<String>,
    /// A worker silent this long loses its task to another.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Deliveries of one task (the first included) before it fails.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_deliveries: u32,
    /// A file system the workers mount too (they pass the same `--shared`).
    #[arg(long, value_name = "DIR")]
    pub shared: Option<PathBuf>,
    /// ffmpeg processes this coordinator runs itself beside the workers.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub encode_here: usize,
    /// Redis key prefix (one coordinator per prefix).
    #[arg(long, value_name = "PREFIX")]
    pub queue_prefix: Option<String>,
}

impl QueueArgs {
    /// The queue's configuration and the workers' token, when `--queue` is given.
    fn config(&self) -> Result<Option<(QueueConfig, String)>> {
        let Some(redis) = &self.queue else {
            return Ok(None);
        };
        let token = self
            .token
            .clone()
            .or_else(|| std::env::var("SPOOL_TOKEN").ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--queue needs --token (or SPOOL_TOKEN): workers present it to fetch and upload media"
                )
            })?;
        let config = QueueConfig {
            redis: redis.clone(),
            prefix: self.queue_prefix.clone(),
            lease_seconds: self.lease_seconds,
            max_deliveries: self.max_deliveries,
            shared: self.shared.clone(),
            encode_here: self.encode_here,
        };
        Ok(Some((config, token)))
    }
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
    let queue = opts.queue.config()?;
    let remote = match &queue {
        Some((q, _)) => Some(q.settings(state).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let cfg = EngineConfig {
        state_dir: state.to_path_buf(),
        concurrency,
        trace_commands: debug.trace_commands,
        keep_work: debug.keep_work,
        cache_max_bytes,
        remote,
    };
    let engine = Engine::open(cfg, tx, shutdown.clone()).await?;
    let coordinator = match queue {
        Some((q, token)) => Some(
            Coordinator::start(engine.clone(), &opts.queue.listen, token, &q)
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let outcomes = engine.run_all(inputs, &Arc::new(wf), out, options).await;
    if let Some(c) = coordinator {
        c.stop().await;
    }
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
