//! `GET /v1/blobs/<sha256>`: what remote workers download (the chunks of tasks in flight,
//! and uploaded blobs), whole or from an offset (`Range: bytes=N-` or `bytes=N-M`), so a
//! broken download resumes. Bytes sent are counted for `/metrics`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{error, Shared};
use crate::engine::metrics::Metrics;

pub(super) async fn get_blob(
    State(d): Shared,
    UrlPath(sha256): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !crate::engine::queue::is_sha256(&sha256) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{sha256:?} is not a SHA-256"),
        );
    }
    let path = d
        .engine
        .offered_blob(&sha256)
        .unwrap_or_else(|| crate::engine::blobs_dir(d.engine.state_dir()).join(&sha256));
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return error(StatusCode::NOT_FOUND, format!("no blob {sha256} here"));
    };
    let total = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return error(StatusCode::NOT_FOUND, format!("no blob {sha256} here")),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, total));
    let (start, end) = match range {
        None => (0, total),
        Some(Some(r)) => r,
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
            )
                .into_response()
        }
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot seek in the blob");
    }
    let length = end - start;
    let metrics = Arc::clone(&d.engine.metrics);
    let stream = tokio_util::io::ReaderStream::new(file.take(length)).inspect(move |chunk| {
        if let Ok(c) = chunk {
            Metrics::add(&metrics.blob_bytes_sent, c.len() as u64);
        }
    });
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes");
    if range.is_some() {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", end.saturating_sub(1)),
        );
    }
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `bytes=N-` or `bytes=N-M` (inclusive) → [start, end); None when it cannot be served.
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => total,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(total),
    };
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_resume_downloads_and_bad_ones_are_refused() {
        assert_eq!(parse_range("bytes=10-", 100), Some((10, 100)));
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-500", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(
            parse_range("bytes=-5", 100),
            None,
            "suffix ranges are not used"
        );
        assert_eq!(parse_range("items=1-2", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
    }
}
