//! A finished job's manifest and outputs over HTTP: `GET /v1/jobs/<id>/manifest` and
//! `GET /v1/jobs/<id>/outputs/<n>` (the manifest's n-th output). A browser link cannot carry
//! the bearer token, so the dashboard's links carry `?sig=`, an HMAC of the path under the
//! token, handed out only inside the token-protected event stream: it opens that one file
//! and nothing else. Only files the manifest lists, inside the job's output directory, are served.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::Mac;

use super::{blocking, error, Shared};
use crate::daemon::Daemon;
use crate::engine::manifest::Manifest;
use crate::store::JobId;

/// Paths whose GET a valid `sig` opens without the bearer token.
pub(super) fn is_signable(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/jobs/") else {
        return false;
    };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(id), Some("manifest"), None, None) => JobId::looks_valid(id),
        (Some(id), Some("outputs"), Some(n), None) => {
            JobId::looks_valid(id) && n.parse::<usize>().is_ok()
        }
        _ => false,
    }
}

fn signature(token: &str, path: &str) -> String {
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(b"spool-download\n");
    mac.update(path.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// `path?sig=…` (the bare path when no token is configured: nothing to sign with).
pub(super) fn signed(d: &Daemon, path: &str) -> String {
    match &d.token {
        Some(token) => format!("{path}?sig={}", signature(token, path)),
        None => path.to_string(),
    }
}

/// Whether `query` holds the right signature for `path`, compared in constant time.
pub(super) fn signature_valid(token: &str, path: &str, query: Option<&str>) -> bool {
    let Some(given) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("sig="))
    else {
        return false;
    };
    let expected = signature(token, path);
    !expected.is_empty()
        && given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub(super) async fn manifest(State(d): Shared, UrlPath(id): UrlPath<String>) -> Response {
    match locate(&d, id, None).await {
        Ok(path) => send(&path, "application/json").await,
        Err(r) => r,
    }
}

pub(super) async fn output(
    State(d): Shared,
    UrlPath((id, n)): UrlPath<(String, usize)>,
) -> Response {
    match locate(&d, id, Some(n)).await {
        Ok(path) => {
            let kind = content_type(&path);
            send(&path, kind).await
        }
        Err(r) => r,
    }
}

/// The manifest's path, or its n-th output's, checked to lie inside the output directory.
async fn locate(
    d: &std::sync::Arc<Daemon>,
    id: String,
    n: Option<usize>,
) -> Result<PathBuf, Response> {
    let repo = d.repo.clone();
    let job = blocking(move || repo.get_job(&JobId(id)))
        .await?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such job"))?;
    let manifest_path = job
        .manifest
        .map(PathBuf::from)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "this job has no manifest"))?;
    let Some(n) = n else {
        return Ok(manifest_path);
    };
    let bytes = tokio::fs::read(&manifest_path)
        .await
        .map_err(|e| error(StatusCode::NOT_FOUND, format!("the manifest is gone: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("manifest: {e}")))?;
    let entry = manifest
        .outputs
        .get(n)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("the job has no output {n}")))?;
    let dir = manifest_path.parent().unwrap_or(Path::new("/"));
    inside(dir, &entry.path).ok_or_else(|| {
        error(
            StatusCode::FORBIDDEN,
            "that output lies outside the job's directory",
        )
    })
}

/// `dir/relative`, resolved through links, when it is still under `dir`.
fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    let root = dir.canonicalize().ok()?;
    let full = root.join(relative).canonicalize().ok()?;
    full.starts_with(&root).then_some(full)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "m3u8" => "application/vnd.apple.mpegurl",
        "vtt" => "text/vtt",
        "srt" | "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "m4a" => "audio/mp4",
        "opus" | "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

async fn send(path: &Path, kind: &'static str) -> Response {
    match tokio::fs::File::open(path).await {
        Ok(file) => {
            let length = file.metadata().await.map(|m| m.len()).ok();
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            let mut response = (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                body,
            )
                .into_response();
            if let Some(len) = length {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
            }
            response
        }
        Err(e) => error(StatusCode::NOT_FOUND, format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_opens_its_own_path_only() {
        let path = "/v1/jobs/0123456789abcdef/outputs/0";
        let sig = signature("secret", path);
        let query = format!("sig={sig}");
        assert!(signature_valid("secret", path, Some(&query)));
        assert!(!signature_valid("other", path, Some(&query)));
        assert!(!signature_valid(
            "secret",
            "/v1/jobs/0123456789abcdef/outputs/1",
            Some(&query)
        ));
        assert!(!signature_valid("secret", path, None));
        assert!(!signature_valid("secret", path, Some("sig=")));
        assert!(is_signable(path));
        assert!(is_signable("/v1/jobs/0123456789abcdef/manifest"));
        assert!(!is_signable("/v1/jobs/0123456789abcdef/cancel"));
        assert!(!is_signable("/v1/jobs"));
        assert!(!is_signable("/v1/jobs/../../etc/outputs/0"));
    }

    #[test]
    fn outputs_outside_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mp4"), b"x").unwrap();
        assert!(inside(dir.path(), "a.mp4").is_some());
        assert!(inside(dir.path(), "../../etc/passwd").is_none());
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        assert!(inside(dir.path(), "link").is_none());
    }
}
