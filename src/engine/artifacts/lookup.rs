//! The coordinator's cache lookup: an index record is trusted only if the chunk's SHA-256
//! matches (MD5 collisions can be crafted) and the file is still sound on disk.

use std::path::PathBuf;
use std::sync::Arc;

use super::ArtifactStore;
use crate::media::hash::FileDigest;
use crate::media::profiles::Rung;
use crate::media::tools::Tools;
use crate::media::verify::{verify_chunk, Expected};
use crate::store::{CacheIndex, StoreError};

/// What the cache holds for a key.
#[derive(Debug, PartialEq)]
pub enum Found {
    Hit(PathBuf),
    Absent,
    /// Same MD5 and size but a different SHA-256: an MD5 collision.
    Collision,
    /// The record existed but its file is gone or damaged; the record was dropped.
    Invalid(String),
}

pub async fn lookup(
    index: Arc<dyn CacheIndex>,
    store: &ArtifactStore,
    tools: &Tools,
    key: &str,
    chunk: &FileDigest,
    rung: &Rung,
    frames: u64,
) -> Result<Found, StoreError> {
    // Held until the entry is marked used: eviction waits for it (see ArtifactStore::guard).
    let _reading = store.guard.read().await;
    let (idx, k) = (index.clone(), key.to_string());
    let record = tokio::task::spawn_blocking(move || idx.cache_get(&k))
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))??;
    let Some(record) = record else {
        return Ok(Found::Absent);
    };
    if record.chunk_sha256 != chunk.sha256 || record.chunk_size != chunk.size {
        return Ok(Found::Collision);
    }
    let path = store.path_of(&record);
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
                height: rung.coded_height(),
                frames: Some(rung.frames_from(frames)),
                duration: None,
                has_audio: false,
                max_av_start_gap_s: 0.0,
                streams: None,
            };
            verify_chunk(tools, &path, &want)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let Some(reason) = invalid else {
        let k = key.to_string();
        tokio::task::spawn_blocking(move || index.cache_touch(&k, crate::store::now_ms()))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))??;
        return Ok(Found::Hit(path));
    };
    let k = key.to_string();
    tokio::task::spawn_blocking(move || index.cache_remove(&k))
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))??;
    Ok(Found::Invalid(reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        CacheRecord, JobRecord, JobStatus, JobStore, SledRepo, TaskRecord, TaskStatus, TaskStore,
    };

    #[tokio::test]
    async fn an_md5_collision_is_refused_by_sha256() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = Arc::new(SledRepo::open(dir.path())?);
        let store = ArtifactStore::new(dir.path().join("cache"));
        let tools = Tools {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            version: "test".into(),
        };
        let rung = crate::media::profiles::sample_rung("r", 144);
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
            last_used_ms: 0,
            sha256: String::new(),
        };
        let job = JobRecord {
            id: "j".into(),
            input: "i".into(),
            input_md5: "m".into(),
            input_size: 1,
            workflow_name: "w".into(),
            workflow_hash: "h".into(),
            out_dir: "o".into(),
            status: JobStatus::Running,
            created_ms: 0,
            updated_ms: 0,
            fallback_reason: None,
            error: None,
            stderr_tail: vec![],
            manifest: None,
            chunks: 1,
            reused_chunks: 0,
            progress: 0.0,
            analysis: None,
            priority: 0,
        };
        repo.begin_job(&job)?;
        let task = TaskRecord {
            status: TaskStatus::Done,
            ..TaskRecord::pending(&job.id, 0, None, vec![])
        };
        repo.finish_task(&task, &[record])?;
        let index: Arc<dyn CacheIndex> = repo;
        // Same MD5 and size, different content.
        let forged = FileDigest {
            sha256: "22".repeat(32),
            ..genuine.clone()
        };
        let found = |d: FileDigest, key: &'static str| {
            let (index, store, tools, rung) = (index.clone(), &store, &tools, &rung);
            async move { lookup(index, store, tools, key, &d, rung, 1).await }
        };
        assert_eq!(found(forged, "k").await?, Found::Collision);
        // The genuine chunk gets past the digest check, then fails on the missing file.
        assert!(matches!(
            found(genuine.clone(), "k").await?,
            Found::Invalid(_)
        ));
        assert_eq!(found(genuine, "absent").await?, Found::Absent);
        Ok(())
    }
}
