//! Uploaded inputs for platforms on other machines: `PUT /v1/blobs/<sha256>` streams the
//! body to a temporary file, hashing as it goes, and keeps it only if its SHA-256 is the
//! one named. A job then names it (`"input": "blob:<sha256>"`, with a `name` for its
//! outputs); the job reads a hard link under that name.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0:?} is not a SHA-256 (64 lowercase hex digits)")]
    BadDigest(String),
    #[error("the body's SHA-256 is {got}, not {want}: nothing kept")]
    Mismatch { got: String, want: String },
    #[error("the upload broke off: {0}")]
    Body(String),
    #[error("no blob {0} was uploaded")]
    Missing(String),
    #[error("{0:?}: a file name, without '/' and not hidden")]
    BadName(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

pub fn is_digest(s: &str) -> bool {
    crate::engine::queue::is_sha256(s)
}

/// Where blobs live: `<state>/blobs/<sha256>`, and each job's named link under `links/`.
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(state: &Path) -> Blobs {
        Blobs {
            dir: crate::engine::blobs_dir(state),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Stores `body` as blob `sha256` if it hashes to it. Ok(false) when it was there already.
    pub async fn put(&self, sha256: &str, body: axum::body::Body) -> Result<bool, BlobError> {
        if !is_digest(sha256) {
            return Err(BlobError::BadDigest(sha256.to_string()));
        }
        let dest = self.path(sha256);
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(self.dir.display().to_string()))?;
        // Distinct for every upload in flight (two workers may send the same result at once).
        let partial = tempfile::Builder::new()
            .prefix(&format!(".upload-{sha256}-"))
            .tempfile_in(&self.dir)
            .map_err(io(self.dir.display().to_string()))?
            .into_temp_path();
        let tmp = partial.to_path_buf();
        let kept = self.receive(&tmp, body).await;
        let got = match kept {
            Ok(got) => got,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        if got != sha256 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(BlobError::Mismatch {
                got,
                want: sha256.to_string(),
            });
        }
        let existed = tokio::fs::try_exists(&dest).await.unwrap_or(false);
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(io(dest.display().to_string()))?;
        Ok(!existed)
    }

    /// Writes the body to `tmp` (synced) and returns its SHA-256.
    async fn receive(&self, tmp: &Path, body: axum::body::Body) -> Result<String, BlobError> {
        let mut file = tokio::fs::File::create(tmp)
            .await
            .map_err(io(tmp.display().to_string()))?;
        let mut hasher = Sha256::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(io(tmp.display().to_string()))?;
        }
        file.sync_all()
            .await
            .map_err(io(tmp.display().to_string()))?;
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// The input a job reads for blob `sha256` under `name`: a hard link, so outputs are
    /// named after the upload and the blob stays whole.
    pub fn input_for(&self, sha256: &str, name: &str) -> Result<PathBuf, BlobError> {
        if !is_digest(sha256) {
            return Err(BlobError::BadDigest(sha256.to_string()));
        }
        if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
            return Err(BlobError::BadName(name.to_string()));
        }
        let blob = self.path(sha256);
        if !blob.is_file() {
            return Err(BlobError::Missing(sha256.to_string()));
        }
        let dir = self.dir.join("links").join(sha256);
        std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
        let link = dir.join(name);
        if !link.exists() {
            std::fs::hard_link(&blob, &link).map_err(io(link.display().to_string()))?;
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_name_blobs() {
        assert!(is_digest(&"a".repeat(64)));
        assert!(!is_digest(&"A".repeat(64)));
        assert!(!is_digest("../../etc/passwd"));
        assert!(!is_digest(&"a".repeat(63)));
    }
}
