//! `spool worker`: an extra machine's encoder. It claims a coordinator's tasks from Redis,
//! downloads each chunk from the coordinator, encodes it, and uploads the result.

use std::path::PathBuf;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use spool::engine::queue::remote::worker::{self, WorkerConfig};
use spool::engine::queue::remote::RedisSettings;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The coordinator's Redis: `redis://HOST:6379[/DB]`.
    #[arg(long, value_name = "URL")]
    queue: String,
    /// The coordinator's API, for the media: `http://HOST:7300`.
    #[arg(long, value_name = "URL")]
    coordinator: String,
    /// The coordinator's API token (also read from SPOOL_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Tasks at once (one ffmpeg each); one per core by default.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Scratch directory (emptied at start; nothing in it outlives a task).
    #[arg(long, value_name = "DIR", default_value = "spool-worker")]
    work: PathBuf,
    /// This worker's name in status and metrics; host-pid by default.
    #[arg(long)]
    name: Option<String>,
    /// A file system the coordinator shares (its `queue.shared`, as mounted here): chunks
    /// and results move through it instead of over HTTP, with the same checks.
    #[arg(long, value_name = "DIR")]
    shared: Option<PathBuf>,
    /// Downloaded inputs kept for the next tasks of the same file (a source cut by frame
    /// range is every task's input), in MiB; least recently used go first.
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    keep_inputs_mib: u64,
    /// The coordinator's Redis key prefix.
    #[arg(long, default_value = "spool")]
    prefix: String,
}

pub async fn run(args: WorkerArgs) -> Result<u8> {
    let mut settings = RedisSettings::new(&args.queue)?;
    settings.prefix = args.prefix;
    if !(args.coordinator.starts_with("http://") || args.coordinator.starts_with("https://")) {
        anyhow::bail!(
            "--coordinator is an http:// or https:// URL, not {:?}",
            args.coordinator
        );
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cfg = WorkerConfig {
        settings,
        coordinator: args.coordinator,
        token: args.token.or_else(|| std::env::var("SPOOL_TOKEN").ok()),
        concurrency: args.concurrency.unwrap_or(cores).max(1),
        work: args.work,
        name: args.name.unwrap_or_else(worker::default_name),
        shared: args.shared,
        keep_inputs: args.keep_inputs_mib.saturating_mul(1 << 20),
    };
    let stop = CancellationToken::new();
    super::run::spawn_signal_handler(stop.clone());
    worker::run(cfg, stop).await?;
    Ok(0)
}
