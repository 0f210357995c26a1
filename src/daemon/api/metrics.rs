//! `GET /metrics`: the Prometheus text format.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{blocking, error, Shared};
use crate::engine::metrics::Metrics;
use crate::store::JobStatus;

pub(super) async fn metrics(State(d): Shared) -> Response {
    let repo = d.repo.clone();
    let counts = blocking(move || {
        let mut jobs = std::collections::BTreeMap::new();
        for j in repo.list_jobs()? {
            *jobs.entry(j.status).or_insert(0u64) += 1;
        }
        Ok::<_, crate::store::StoreError>((jobs, crate::daemon::file_counts(repo.as_ref())?))
    })
    .await;
    let (jobs, files) = match counts {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => return r,
    };
    let m = &d.engine.metrics;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let all = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Interrupted,
        JobStatus::Skipped,
    ];
    gauge(
        "spool_jobs",
        "Jobs in the store by state.",
        "gauge",
        all.iter()
            .map(|s| {
                let name = serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                (
                    format!("{{state=\"{name}\"}}"),
                    jobs.get(s).copied().unwrap_or(0),
                )
            })
            .collect(),
    );
    gauge(
        "spool_files",
        "Watched files by state.",
        "gauge",
        files
            .into_iter()
            .map(|(k, v)| (format!("{{state=\"{k}\"}}"), v))
            .collect(),
    );
    let plain = |v: u64| vec![(String::new(), v)];
    gauge(
        "spool_tasks_running",
        "Encode tasks running now.",
        "gauge",
        plain(Metrics::get(&m.tasks_running)),
    );
    gauge(
        "spool_cache_bytes",
        "Bytes the encoded-chunk cache holds (after the last eviction pass).",
        "gauge",
        plain(Metrics::get(&m.cache_bytes)),
    );
    gauge(
        "spool_cache_entries",
        "Entries in the encoded-chunk cache.",
        "gauge",
        plain(Metrics::get(&m.cache_entries)),
    );
    gauge(
        "spool_cache_limit_bytes",
        "The cache's limit.",
        "gauge",
        plain(d.engine.cache_limit()),
    );
    gauge(
        "spool_workers_alive",
        "Remote workers heard from in the last 6 seconds (Redis queue).",
        "gauge",
        plain(Metrics::get(&m.workers_alive)),
    );
    gauge(
        "spool_files_queued",
        "Admitted files waiting for a job slot.",
        "gauge",
        plain(d.queued()),
    );
    gauge(
        "spool_files_settling",
        "Files seen and waiting to settle.",
        "gauge",
        plain(d.settling()),
    );
    gauge(
        "spool_bytes_in_total",
        "Bytes of inputs processed.",
        "counter",
        plain(Metrics::get(&m.bytes_in)),
    );
    gauge(
        "spool_bytes_out_total",
        "Bytes of outputs published.",
        "counter",
        plain(Metrics::get(&m.bytes_out)),
    );
    let _ = writeln!(
        out,
        "# HELP spool_encode_seconds_total Seconds spent in encode tasks.\n# TYPE spool_encode_seconds_total counter\nspool_encode_seconds_total {:.3}",
        Metrics::get(&m.encode_ms) as f64 / 1000.0
    );
    let counters: [(&str, &str, u64); 13] = [
        (
            "spool_cache_hits_total",
            "Encoded chunks reused from the cache.",
            Metrics::get(&m.cache_hits),
        ),
        (
            "spool_cache_evictions_total",
            "Cache entries evicted to keep the cache under its limit.",
            Metrics::get(&m.cache_evictions),
        ),
        (
            "spool_jobs_finished_total",
            "Jobs finished since start.",
            Metrics::get(&m.jobs_finished),
        ),
        (
            "spool_remote_tasks_claimed_total",
            "Tasks remote workers claimed.",
            Metrics::get(&m.remote_claimed),
        ),
        (
            "spool_remote_tasks_redelivered_total",
            "Deliveries taken back from a worker whose lease ran out, and sent again.",
            Metrics::get(&m.remote_redelivered),
        ),
        (
            "spool_blob_bytes_sent_total",
            "Bytes remote workers downloaded.",
            Metrics::get(&m.blob_bytes_sent),
        ),
        (
            "spool_blob_bytes_received_total",
            "Bytes uploaded (remote results and API inputs).",
            Metrics::get(&m.blob_bytes_received),
        ),
        (
            "spool_remote_intakes_total",
            "Remote results checked and admitted (or refused).",
            Metrics::get(&m.remote_intakes),
        ),
        (
            "spool_remote_intake_milliseconds_total",
            "Coordinator time spent checking and admitting remote results.",
            Metrics::get(&m.remote_intake_ms),
        ),
        (
            "spool_probe_encodes_total",
            "Probe encodes run by quality searches (each scored once).",
            Metrics::get(&m.probe_encodes),
        ),
        (
            "spool_probe_seconds_total",
            "Seconds of probe encoding and scoring.",
            Metrics::get(&m.probe_ms) / 1000,
        ),
        (
            "spool_probe_cache_hits_total",
            "Probes answered from the store instead of encoding again.",
            Metrics::get(&m.probe_cache_hits),
        ),
        (
            "spool_files_admitted_total",
            "Files taken from watched folders since start.",
            d.admitted(),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
