//! The engine's side of the bounded cache: its limit, and eviction after every job, sparing
//! whatever a running job has used or made since it started.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::artifacts::evict::{evict, usage};
use super::exec::disk::free_bytes;
use super::metrics::Metrics;
use super::{Engine, EngineError};
use crate::store::{now_ms, CacheIndex};

/// Without a configured limit, the cache may take this share of the free space it finds.
const DEFAULT_SHARE_OF_FREE: f64 = 0.5;

impl Engine {
    /// Sets the limit: `max` bytes, or what the cache holds plus half its disk's free space.
    pub(super) fn set_cache_limit(&self, max: Option<u64>) -> Result<(), EngineError> {
        let held = usage(&self.repo.cache_entries()?);
        let limit = max.unwrap_or_else(|| {
            let free = free_bytes(self.artifacts.dir()).unwrap_or(0) as f64;
            held.bytes + (free * DEFAULT_SHARE_OF_FREE) as u64
        });
        self.cache_limit.store(limit, Ordering::Relaxed);
        Metrics::set(&self.metrics.cache_bytes, held.bytes);
        Metrics::set(&self.metrics.cache_entries, held.entries);
        Ok(())
    }

    pub fn cache_limit(&self) -> u64 {
        self.cache_limit.load(Ordering::Relaxed)
    }

    /// Evicts least-recently-used entries down to the limit. Everything used since the
    /// oldest running job started stays (it may be in that job's join still).
    pub(super) async fn keep_cache_bounded(&self) {
        let oldest = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.values().map(|(_, started)| *started).min());
        let protect_from = oldest.unwrap_or_else(now_ms);
        let index: Arc<dyn CacheIndex> = self.repo.clone();
        match evict(index, &self.artifacts, self.cache_limit(), protect_from).await {
            Ok(done) => {
                Metrics::add(&self.metrics.cache_evictions, done.removed);
                Metrics::set(&self.metrics.cache_bytes, done.left.bytes);
                Metrics::set(&self.metrics.cache_entries, done.left.entries);
                if done.removed > 0 {
                    tracing::info!(
                        removed = done.removed,
                        freed_bytes = done.freed_bytes,
                        left_bytes = done.left.bytes,
                        "cache over its limit: least recently used entries evicted"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache eviction failed; the cache may stay over its limit")
            }
        }
    }
}
