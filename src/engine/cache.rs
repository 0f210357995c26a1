//! The content-addressed cache of encoded chunks: keyed by chunk MD5 + size + settings
//! fingerprint, confirmed by SHA-256, and checked on disk before any hit is trusted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::media::hash::{sha256_hex, FileDigest};
use crate::media::profiles::Rung;
use crate::media::tools::Tools;
use crate::media::verify::{verify_chunk, Expected};
use crate::store::{now_ms, CacheRecord, Repo, StoreError};

/// Hash of everything that decides an encoded chunk's bytes, bar the chunk itself.
pub fn fingerprint(tools: &Tools, rung: &Rung) -> String {
    let settings = serde_json::to_string(rung).unwrap_or_default();
    sha256_hex(format!("spool-cache-v1\n{}\n{settings}", tools.version).as_bytes())
}

pub fn cache_key(chunk: &FileDigest, fingerprint: &str) -> String {
    format!(
        "{}-{}-{}",
        chunk.md5,
        chunk.size,
        &fingerprint[..fingerprint.len().min(24)]
    )
}

pub struct Cache {
    dir: PathBuf,
    repo: Arc<dyn Repo>,
}

/// Why a cache entry was not used.
#[derive(Debug, PartialEq)]
pub enum Miss {
    Absent,
    /// Same MD5 and size but a different SHA-256: an MD5 collision.
    Collision,
    /// The record exists but its file is gone or damaged.
    Invalid(String),
}

impl Cache {
    pub fn new(dir: PathBuf, repo: Arc<dyn Repo>) -> Cache {
        Cache { dir, repo }
    }

    pub fn path_for(&self, key: &str, ext: &str) -> PathBuf {
        self.dir
            .join(&key[..2.min(key.len())])
            .join(format!("{key}.{ext}"))
    }

    /// Returns the cached file for `key` if it is really this chunk's encode and still sound.
    pub async fn lookup(
        &self,
        tools: &Tools,
        key: &str,
        chunk: &FileDigest,
        rung: &Rung,
        frames: u64,
    ) -> Result<Result<PathBuf, Miss>, StoreError> {
        let repo = self.repo.clone();
        let k = key.to_string();
        let record = tokio::task::spawn_blocking(move || repo.cache_get(&k))
            .await
            .map_err(|e| StoreError::Open {
                dir: "cache".into(),
                reason: e.to_string(),
            })??;
        let Some(record) = record else {
            return Ok(Err(Miss::Absent));
        };
        if record.chunk_sha256 != chunk.sha256 || record.chunk_size != chunk.size {
            return Ok(Err(Miss::Collision));
        }
        let path = self.dir.join(&record.path);
        let invalid = match tokio::fs::metadata(&path).await {
            Err(e) => Some(format!("{}: {e}", path.display())),
            Ok(m) if m.len() != record.bytes => {
                Some(format!("size {} != recorded {}", m.len(), record.bytes))
            }
            Ok(_) if record.frames != frames => Some(format!(
                "recorded {} frames, expected {frames}",
                record.frames
            )),
            Ok(_) => {
                let want = Expected {
                    codec: rung.codec.probe_name(),
                    height: Some(rung.height),
                    frames: Some(frames),
                    duration: None,
                    has_audio: false,
                    max_av_start_gap_s: 0.0,
                };
                verify_chunk(tools, &path, &want)
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        };
        if let Some(reason) = invalid {
            let repo = self.repo.clone();
            let k = key.to_string();
            let _ = tokio::task::spawn_blocking(move || repo.cache_remove(&k)).await;
            return Ok(Err(Miss::Invalid(reason)));
        }
        Ok(Ok(path))
    }

    /// Moves a verified encode into the cache; returns the record to commit with the task.
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
        let bytes = tokio::fs::metadata(encoded).await?.len();
        tokio::fs::rename(encoded, &dest).await?;
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledRepo;

    #[tokio::test]
    async fn an_md5_collision_is_refused_by_sha256() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo: Arc<dyn Repo> = Arc::new(SledRepo::open(dir.path())?);
        let cache = Cache::new(dir.path().join("cache"), repo.clone());
        let tools = Tools {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            version: "test".into(),
            running: Default::default(),
        };
        let rung = Rung {
            name: "r".into(),
            codec: crate::media::profiles::Codec::H264,
            height: 144,
            rate_control: crate::media::profiles::RateControl::Crf,
            crf: 23,
            preset: "fast".into(),
            bitrate_kbps: 150,
            maxrate_kbps: 225,
            bufsize_kbps: 300,
            audio_kbps: 128,
            gop: 25,
        };
        let genuine = FileDigest {
            md5: "aa".repeat(16),
            sha256: "11".repeat(32),
            size: 10,
        };
        let record = CacheRecord {
            key: "k".into(),
            chunk_md5: genuine.md5.clone(),
            chunk_sha256: genuine.sha256.clone(),
            chunk_size: 10,
            path: "k.mp4".into(),
            bytes: 1,
            frames: 1,
            created_ms: 0,
        };
        repo.finish_task(
            &crate::store::TaskRecord {
                job: "j".into(),
                index: 0,
                chunk: None,
                rungs: vec![],
                status: crate::store::TaskStatus::Done,
                attempts: 1,
                progress: 1.0,
                reused_rungs: 0,
                error: None,
            },
            &[record],
        )?;
        // Same MD5 and size, different content.
        let forged = FileDigest {
            sha256: "22".repeat(32),
            ..genuine.clone()
        };
        assert_eq!(
            cache.lookup(&tools, "k", &forged, &rung, 1).await?,
            Err(Miss::Collision)
        );
        // The genuine chunk gets past the digest check, then fails on the missing file.
        assert!(matches!(
            cache.lookup(&tools, "k", &genuine, &rung, 1).await?,
            Err(Miss::Invalid(_))
        ));
        assert_eq!(
            cache.lookup(&tools, "absent", &genuine, &rung, 1).await?,
            Err(Miss::Absent)
        );
        Ok(())
    }
}
