//! Counters the daemon exports at /metrics. Relaxed atomics: they are statistics.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub encode_ms: AtomicU64,
    pub cache_hits: AtomicU64,
    pub tasks_running: AtomicU64,
    pub jobs_finished: AtomicU64,
    /// Cache entries evicted to keep the cache under its limit.
    pub cache_evictions: AtomicU64,
    /// The cache's size and entries after the last eviction pass.
    pub cache_bytes: AtomicU64,
    pub cache_entries: AtomicU64,
    /// Remote workers that sent a heartbeat lately (Redis queue only).
    pub workers_alive: AtomicU64,
    /// Tasks remote workers claimed, and deliveries taken back from a worker that went quiet.
    pub remote_claimed: AtomicU64,
    pub remote_redelivered: AtomicU64,
    /// Blob bytes served to workers and received from them.
    pub blob_bytes_sent: AtomicU64,
    pub blob_bytes_received: AtomicU64,
    /// Coordinator time spent checking and admitting remote results, and how many.
    pub remote_intake_ms: AtomicU64,
    pub remote_intakes: AtomicU64,
    /// Probe encodes of quality searches run (cached probes not counted), their encode and
    /// scoring time, and probes answered from the store.
    pub probe_encodes: AtomicU64,
    pub probe_ms: AtomicU64,
    pub probe_cache_hits: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Decrements `tasks_running` however a task ends.
pub(super) struct Running<'a>(pub &'a AtomicU64);

impl<'a> Running<'a> {
    pub fn start(counter: &'a AtomicU64) -> Running<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Running(counter)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
