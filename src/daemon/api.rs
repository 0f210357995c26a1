//! The daemon's local HTTP API (sled allows one process, so the CLI asks the daemon):
//! jobs and tasks, cancel, retry, folder pause/resume, Prometheus metrics.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::engine::metrics::Metrics;
use crate::store::watch::RetryTarget;
use crate::store::{JobId, JobStatus, JobSummary, TaskCounts};

type Shared = State<Arc<Daemon>>;

pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/v1/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/retry", post(retry))
        .route("/v1/files", get(files))
        .route("/v1/folders", get(folders))
        .route("/v1/folders/pause", post(pause))
        .route("/v1/folders/resume", post(resume))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(daemon.clone(), auth))
        .with_state(daemon);
    let shutdown = async move { stop.cancelled().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}

async fn auth(
    State(d): Shared,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &d.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "a valid bearer token is required" })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Store reads run on the blocking pool: sled may touch the disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /v1/jobs?state=&cursor=&limit=`: a page of jobs, newest first.
#[derive(Deserialize)]
struct JobsQuery {
    state: Option<JobStatus>,
    cursor: Option<String>,
    limit: Option<usize>,
}

const PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

async fn jobs(State(d): Shared, query: Result<Query<JobsQuery>, QueryRejection>) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let repo = d.repo.clone();
    let page = blocking(move || {
        let cursor = q.cursor.map(JobId);
        let jobs = repo.recent_jobs(cursor.as_ref(), limit, q.state)?;
        jobs.into_iter()
            .map(|job| {
                let tasks = TaskCounts::of(&repo.tasks_of(&job.id)?);
                Ok(JobSummary { job, tasks })
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()
    })
    .await;
    match page {
        Ok(Ok(jobs)) => {
            // A full page may have more behind it: its last id is the next cursor.
            let next = (jobs.len() == limit).then(|| jobs.last().map(|j| j.job.id.clone()));
            Json(json!({ "jobs": jobs, "next": next.flatten() })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

async fn job(State(d): Shared, UrlPath(id): UrlPath<String>) -> Response {
    let repo = d.repo.clone();
    let id = JobId(id);
    let found = blocking(move || {
        Ok::<_, crate::store::StoreError>((repo.get_job(&id)?, repo.tasks_of(&id)?))
    })
    .await;
    match found {
        Ok(Ok((Some(job), tasks))) => Json(json!({ "job": job, "tasks": tasks })).into_response(),
        Ok(Ok((None, _))) => error(StatusCode::NOT_FOUND, "no such job"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

async fn cancel(State(d): Shared, UrlPath(id): UrlPath<String>) -> Response {
    if d.engine.cancel_job(&JobId(id.clone())) {
        Json(json!({ "cancelled": id })).into_response()
    } else {
        error(StatusCode::CONFLICT, format!("job {id} is not running"))
    }
}

#[derive(Deserialize)]
struct RetryBody {
    job: Option<String>,
    path: Option<String>,
}

async fn retry(State(d): Shared, Json(body): Json<RetryBody>) -> Response {
    if body.job.is_none() && body.path.is_none() {
        return error(StatusCode::BAD_REQUEST, "give a job id or a path");
    }
    let daemon = d.clone();
    let retried = blocking(move || match (&body.job, &body.path) {
        (Some(job), _) => daemon.retry(RetryTarget::Job(&JobId(job.clone()))),
        (None, Some(path)) => daemon.retry(RetryTarget::Path(path)),
        (None, None) => Ok(0),
    })
    .await;
    match retried {
        Ok(Ok(0)) => error(StatusCode::NOT_FOUND, "no parked or failed file matches"),
        Ok(Ok(n)) => Json(json!({ "retrying": n })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

async fn files(State(d): Shared) -> Response {
    let repo = d.repo.clone();
    match blocking(move || repo.list_files()).await {
        Ok(Ok(files)) => Json(json!({ "files": files })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

async fn folders(State(d): Shared) -> Response {
    Json(json!({ "folders": d.folders() })).into_response()
}

#[derive(Deserialize)]
struct FolderBody {
    folder: String,
}

async fn pause(State(d): Shared, Json(body): Json<FolderBody>) -> Response {
    set_paused(&d, &body.folder, true)
}

async fn resume(State(d): Shared, Json(body): Json<FolderBody>) -> Response {
    set_paused(&d, &body.folder, false)
}

fn set_paused(d: &Daemon, folder: &str, pause: bool) -> Response {
    if d.set_paused(std::path::Path::new(folder), pause) {
        Json(json!({ "folder": folder, "paused": pause })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("{folder} is not a watched folder"),
        )
    }
}

async fn metrics(State(d): Shared) -> Response {
    let repo = d.repo.clone();
    let counts = blocking(move || {
        let mut jobs = std::collections::BTreeMap::new();
        for j in repo.list_jobs()? {
            *jobs.entry(j.status).or_insert(0u64) += 1;
        }
        Ok::<_, crate::store::StoreError>((jobs, super::file_counts(repo.as_ref())?))
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
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    gauge(
        "spool_cache_hits_total",
        "Encoded chunks reused from the cache.",
        Metrics::get(&m.cache_hits),
    );
    gauge(
        "spool_jobs_finished_total",
        "Jobs finished since start.",
        Metrics::get(&m.jobs_finished),
    );
    gauge(
        "spool_files_admitted_total",
        "Files taken from watched folders since start.",
        d.admitted(),
    );
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
