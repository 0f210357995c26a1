//! Jobs: pages of them, one with its tasks, cancel, and submission (`POST /v1/jobs`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{blocking, error, Shared};
use crate::daemon::submit::{JobRequest, SubmitError};
use crate::store::{JobId, JobStatus, JobSummary, TaskCounts};

/// `GET /v1/jobs?state=&cursor=&limit=`: a page of jobs, newest first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsQuery {
    state: Option<JobStatus>,
    cursor: Option<String>,
    limit: Option<usize>,
    /// Only jobs created at or after this time (Unix milliseconds).
    since: Option<u64>,
}

const PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

pub(super) async fn jobs(
    State(d): Shared,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let repo = d.repo.clone();
    let (cursor, state) = (q.cursor.clone(), q.state);
    let page = blocking(move || {
        let cursor = cursor.map(JobId);
        let jobs = repo.recent_jobs(cursor.as_ref(), limit, state)?;
        jobs.into_iter()
            .map(|job| {
                let tasks = TaskCounts::of(&repo.tasks_of(&job.id)?);
                Ok(JobSummary { job, tasks })
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()
    })
    .await;
    match page {
        Ok(Ok(mut jobs)) => {
            // A full page may have more behind it: its last id is the next cursor. Newest
            // first, so once one is older than `since`, all behind it are too.
            let full = jobs.len() == limit;
            let since = q.since.unwrap_or(0);
            jobs.retain(|j| j.job.created_ms >= since);
            let next = (full && jobs.len() == limit).then(|| jobs.last().map(|j| j.job.id.clone()));
            Json(json!({ "jobs": jobs, "next": next.flatten() })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

pub(super) async fn job(State(d): Shared, UrlPath(id): UrlPath<String>) -> Response {
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

pub(super) async fn cancel(State(d): Shared, UrlPath(id): UrlPath<String>) -> Response {
    if d.engine.cancel_job(&JobId(id.clone())) {
        Json(json!({ "cancelled": id })).into_response()
    } else {
        error(StatusCode::CONFLICT, format!("job {id} is not running"))
    }
}

/// `POST /v1/jobs`: 201 with the new job, 200 with the job a repeated idempotency key
/// names, 400 naming what is wrong, 403 for paths outside the configured roots.
pub(super) async fn submit(
    State(d): Shared,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let daemon = d.clone();
    // Paths are resolved and the store written: off the async threads.
    let submitted = blocking(move || daemon.submit(&req)).await;
    match submitted {
        Ok(Ok(s)) => {
            let code = if s.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = json!({ "id": s.id, "status": s.status, "created": s.created });
            (code, Json(body)).into_response()
        }
        Ok(Err(e @ SubmitError::BadRequest(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e @ SubmitError::Forbidden(_))) => error(StatusCode::FORBIDDEN, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// `GET /v1/workflows`: each workflow the daemon runs, its version and its parameters
/// (name → default; a submission's value must have the default's type).
pub(super) async fn workflows(State(d): Shared) -> Response {
    let list: Vec<serde_json::Value> = d
        .entries
        .iter()
        .map(|e| {
            let wf = e.workflow.current();
            let params = wf
                .workflow
                .script
                .as_ref()
                .map(|s| s.params.clone())
                .unwrap_or_default();
            json!({
                "name": e.name,
                "hash": wf.content_hash,
                "source": wf.source,
                "output": e.output,
                "params": params,
            })
        })
        .collect();
    Json(json!({ "workflows": list })).into_response()
}

/// `PUT /v1/blobs/<sha256>`: 201 stored, 200 stored before, 400 when the body's SHA-256 is
/// another (nothing kept).
pub(super) async fn put_blob(
    State(d): Shared,
    UrlPath(sha256): UrlPath<String>,
    body: axum::body::Body,
) -> Response {
    let received = d.blobs.put(&sha256, body).await;
    if received.is_ok() {
        let size =
            tokio::fs::metadata(crate::engine::blobs_dir(d.engine.state_dir()).join(&sha256))
                .await
                .map_or(0, |m| m.len());
        crate::engine::metrics::Metrics::add(&d.engine.metrics.blob_bytes_received, size);
    }
    match received {
        Ok(true) => (StatusCode::CREATED, Json(json!({ "blob": sha256 }))).into_response(),
        Ok(false) => Json(json!({ "blob": sha256 })).into_response(),
        Err(e @ crate::daemon::blobs::BlobError::Io { .. }) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
