//! `spool cache stats | gc | verify`: the encoded-chunk cache, read and trimmed directly in
//! the state directory (sled allows one process: a running daemon holds it).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use spool::engine::artifacts::evict::{evict, usage, verify};
use spool::engine::artifacts::ArtifactStore;
use spool::store::{now_ms, CacheIndex, SledRepo};

use super::EXIT_FAILED;

#[derive(clap::Args)]
pub struct CacheArgs {
    /// State directory (sled store, work files, chunk cache). Default: $SPOOL_STATE or ~/.local/state/spool
    #[arg(long, value_name = "DIR")]
    pub state: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// Entries, bytes, and the oldest and newest use.
    Stats {
        #[command(flatten)]
        args: CacheArgs,
    },
    /// Evict least recently used entries until the cache fits SIZE (e.g. 20GiB).
    Gc {
        #[arg(long, value_name = "SIZE", value_parser = spool::engine::artifacts::evict::parse_size)]
        max_size: u64,
        #[command(flatten)]
        args: CacheArgs,
    },
    /// Check every entry's file (present, size, SHA-256); drop the bad ones.
    Verify {
        #[command(flatten)]
        args: CacheArgs,
    },
}

impl CacheCommand {
    /// What to do, and the options every action shares.
    pub fn split(self) -> (Action, CacheArgs) {
        match self {
            CacheCommand::Stats { args } => (Action::Stats, args),
            CacheCommand::Gc { max_size, args } => (Action::Gc(max_size), args),
            CacheCommand::Verify { args } => (Action::Verify, args),
        }
    }
}

pub enum Action {
    Stats,
    /// Evict least recently used entries down to this many bytes.
    Gc(u64),
    Verify,
}

pub async fn cache(state: &Path, action: Action, json: bool) -> Result<u8> {
    let repo = SledRepo::open_existing(state)?;
    let index: Arc<dyn CacheIndex> = Arc::new(repo);
    let store = ArtifactStore::new(state.join("cache"));
    match action {
        Action::Stats => {
            let entries = index.cache_entries()?;
            let u = usage(&entries);
            let last = |pick: fn(u64, u64) -> u64| {
                entries
                    .iter()
                    .map(|e| e.last_used_ms.max(e.created_ms))
                    .reduce(pick)
            };
            let (oldest, newest) = (last(u64::min), last(u64::max));
            if json {
                let v = serde_json::json!({ "entries": u.entries, "bytes": u.bytes,
                    "oldest_use_ms": oldest, "newest_use_ms": newest });
                println!("{v}");
            } else {
                println!("{} entries, {}", u.entries, human(u.bytes));
                if let (Some(o), Some(n)) = (oldest, newest) {
                    let ago = |t: u64| (now_ms().saturating_sub(t)) / 1000;
                    println!(
                        "least recently used {} s ago, most recently {} s ago",
                        ago(o),
                        ago(n)
                    );
                }
            }
            Ok(0)
        }
        Action::Gc(max) => {
            // Nothing runs while this process holds the store: nothing needs sparing.
            let done = evict(index, &store, max, now_ms() + 1).await?;
            if json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                println!(
                    "evicted {} entries ({}); {} entries, {} left",
                    done.removed,
                    human(done.freed_bytes),
                    done.left.entries,
                    human(done.left.bytes)
                );
            }
            Ok(0)
        }
        Action::Verify => {
            let (kept, dropped) = verify(index, &store).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "kept": kept, "dropped": dropped })
                );
            } else {
                for d in &dropped {
                    println!("dropped {}: {}", d.key, d.reason);
                }
                println!(
                    "{} entries sound ({}), {} dropped",
                    kept.entries,
                    human(kept.bytes),
                    dropped.len()
                );
            }
            Ok(if dropped.is_empty() { 0 } else { EXIT_FAILED })
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
