//! The content-addressed artifact store: encoded chunks by key (chunk content + settings
//! fingerprint + the encoding ffmpeg), files under `<state>/cache`. Executors put results
//! in; the coordinator looks them up (and checks them) through [`lookup`].

pub mod evict;
pub mod lookup;

use std::path::{Path, PathBuf};

use crate::media::hash::{sha256_hex, FileDigest};
use crate::media::profiles::Rung;
use crate::store::{now_ms, CacheRecord};

/// Fingerprint of a rung's settings plus any change a hook made to its commands.
pub fn settings_print(rung: &Rung, hook_change: Option<&str>, part: Option<String>) -> String {
    let settings = rung.video_settings().to_string();
    let mut text = format!("{settings}\n{}", hook_change.unwrap_or(""));
    // A frame range of a source is its own chunk; copy cuts and whole files add nothing,
    // so their keys are what they were.
    if let Some(part) = part {
        text.push_str(&format!("\n{part}"));
    }
    sha256_hex(text.as_bytes())
}

/// The key of one encode: the chunk's content, the settings, and the ffmpeg that encoded
/// it (another ffmpeg version is another encode).
pub fn artifact_key(chunk: &FileDigest, settings: &str, ffmpeg_version: &str) -> String {
    let print = sha256_hex(format!("spool-cache-v2\n{ffmpeg_version}\n{settings}").as_bytes());
    format!("{}-{}-{}", chunk.md5, chunk.size, &print[..24])
}

pub struct ArtifactStore {
    dir: PathBuf,
    /// Lookups hold it shared from reading a record until they mark it used; eviction holds
    /// it alone, so it never removes a file a lookup has just handed to a job.
    pub(crate) guard: tokio::sync::RwLock<()>,
}

impl ArtifactStore {
    pub fn new(dir: PathBuf) -> ArtifactStore {
        ArtifactStore {
            dir,
            guard: tokio::sync::RwLock::new(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_for(&self, key: &str, ext: &str) -> PathBuf {
        self.dir
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.{ext}"))
    }

    /// Where a record's file is.
    pub fn path_of(&self, record: &CacheRecord) -> PathBuf {
        self.dir.join(&record.path)
    }

    /// Moves a verified encode into the store; returns the record to commit with the task.
    pub async fn admit(
        &self,
        key: &str,
        encoded: &Path,
        chunk: &FileDigest,
        frames: u64,
        ext: &str,
    ) -> std::io::Result<CacheRecord> {
        let dest = self.path_for(key, ext);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let owned = encoded.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || crate::media::hash::digest_file(&owned))
            .await
            .map_err(std::io::Error::other)??;
        let bytes = digest.size;
        if let Err(e) = tokio::fs::rename(encoded, &dest).await {
            // An output directory on another file system: copied in, then let go.
            if e.kind() != std::io::ErrorKind::CrossesDevices {
                return Err(e);
            }
            tokio::fs::copy(encoded, &dest).await?;
            tokio::fs::remove_file(encoded).await?;
        }
        let rel = dest
            .strip_prefix(&self.dir)
            .unwrap_or(&dest)
            .to_string_lossy()
            .into_owned();
        Ok(CacheRecord {
            key: key.to_string(),
            chunk_md5: chunk.md5.clone(),
            chunk_sha256: chunk.sha256.clone(),
            chunk_size: chunk.size,
            path: rel,
            bytes,
            frames,
            created_ms: now_ms(),
            last_used_ms: now_ms(),
            sha256: digest.sha256,
        })
    }
}
