//! The daemon's local HTTP API (sled allows one process, so the CLI asks the daemon):
//! jobs (list, one, submit, cancel, manifest and outputs), workflows, retry, folder
//! pause/resume, the dashboard's event stream, Prometheus metrics, and the OpenAPI description
//! of all of it. [`ROUTES`] is the one list the router is built from and the description is
//! checked against. The dashboard page itself is served from `page`.

mod blob_get;
mod board;
mod downloads;
mod guard;
mod jobs;
mod metrics;
mod page;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::store::watch::RetryTarget;
use crate::store::JobId;

type Shared = State<Arc<Daemon>>;

/// Every route: (method, path). The router is built from it; `/v1/openapi.json` documents
/// exactly these (a unit test compares them).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/jobs"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("get", "/v1/jobs/{id}/manifest"),
    ("get", "/v1/jobs/{id}/outputs/{n}"),
    ("get", "/v1/events"),
    ("get", "/v1/workflows"),
    ("get", "/v1/blobs/{sha256}"),
    ("put", "/v1/blobs/{sha256}"),
    ("post", "/v1/retry"),
    ("get", "/v1/files"),
    ("get", "/v1/folders"),
    ("post", "/v1/folders/pause"),
    ("post", "/v1/folders/resume"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
];

/// The OpenAPI 3 description served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

fn handler(method: &str, path: &str) -> Option<MethodRouter<Arc<Daemon>>> {
    Some(match (method, path) {
        ("get", "/v1/health") => get(|| async { Json(json!({ "ok": true })) }),
        ("get", "/v1/jobs") => get(jobs::jobs),
        ("post", "/v1/jobs") => post(jobs::submit),
        ("get", "/v1/jobs/{id}") => get(jobs::job),
        ("post", "/v1/jobs/{id}/cancel") => post(jobs::cancel),
        ("get", "/v1/jobs/{id}/manifest") => get(downloads::manifest),
        ("get", "/v1/jobs/{id}/outputs/{n}") => get(downloads::output),
        ("get", "/v1/events") => get(board::events),
        ("get", "/v1/workflows") => get(jobs::workflows),
        ("get", "/v1/blobs/{sha256}") => get(blob_get::get_blob),
        // Uploads are media: no body limit (the default is 2 MB).
        ("put", "/v1/blobs/{sha256}") => {
            put(jobs::put_blob).layer(axum::extract::DefaultBodyLimit::disable())
        }
        ("post", "/v1/retry") => post(retry),
        ("get", "/v1/files") => get(files),
        ("get", "/v1/folders") => get(folders),
        ("post", "/v1/folders/pause") => post(pause),
        ("post", "/v1/folders/resume") => post(resume),
        ("get", "/v1/openapi.json") => {
            get(|| async { ([("content-type", "application/json")], OPENAPI).into_response() })
        }
        ("get", "/metrics") => get(metrics::metrics),
        _ => return None,
    })
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    stop: CancellationToken,
) {
    let routes = ROUTES.iter().fold(Router::new(), |router, (method, path)| {
        match handler(method, path) {
            Some(h) => router.route(path, h),
            None => router,
        }
    });
    let routes = page::PAGES.iter().fold(routes, |router, (path, _, _)| {
        router.route(path, get(page::serve))
    });
    let guard = guard::Guard {
        daemon: daemon.clone(),
        loopback: listener.local_addr().is_ok_and(|a| a.ip().is_loopback()),
    };
    let app = routes
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::check,
        ))
        .with_state(daemon);
    let shutdown = async move { stop.cancelled().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
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
    d.board.touch_state();
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
        d.board.touch_state();
        Json(json!({ "folder": folder, "paused": pause })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("{folder} is not a watched folder"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_the_openapi_document_names_exactly_the_routes() {
        for (method, path) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path}");
        }
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(m, _)| (m.clone(), path.clone()))
            })
            .collect();
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
