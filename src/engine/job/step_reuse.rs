//! Steps whose files follow from the source and the outputs before them (thumbnails, HLS),
//! kept by (the step's settings + the source's content + the keys of the outputs published
//! before it + the stem + ffmpeg): the same step again is put in place from the cache, every
//! file's size and SHA-256 checked, instead of being run. Lua steps (a script may do
//! anything) and transcription (kept by its audio, see steps/transcribe.rs) are not.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::manifest::OutputEntry;
use crate::engine::publish::rename_durably;
use crate::media::hash::{sha256_hex, FileDigest};
use crate::store::{now_ms, ResultRecord};
use crate::workflow::schema::Step;

const KIND: &str = "step";

/// What a kept step published: its files (each kept under its own key), its output
/// entries and its manifest data.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeptStep {
    files: Vec<KeptFile>,
    outputs: Vec<OutputEntry>,
    data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeptFile {
    /// Relative to the output directory.
    path: PathBuf,
    key: String,
}

/// The output directory's files: relative path → (size, mtime, inode).
pub(super) type Snapshot = BTreeMap<PathBuf, (u64, i64, u64)>;

/// Every file under `dir` (hidden temp entries left out).
pub(super) fn snapshot(dir: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() && !hidden => stack.push(path),
                Ok(m) if m.is_file() && !hidden => {
                    if let Ok(rel) = path.strip_prefix(dir) {
                        files.insert(rel.to_path_buf(), (m.len(), m.mtime(), m.ino()));
                    }
                }
                _ => {}
            }
        }
    }
    files
}

/// A relative path that stays inside the directory it is joined to.
fn inside(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_))) && !rel.as_os_str().is_empty()
}

impl JobCtx<'_> {
    /// The key of a step's result, or None for steps that are not kept this way.
    pub(super) fn step_key(
        &self,
        step: &Step,
        digest: &FileDigest,
        published: &[String],
        stem: &str,
    ) -> Option<String> {
        if !matches!(step, Step::Thumbnails(_) | Step::Hls(_)) {
            return None;
        }
        let print = serde_json::json!({
            "kind": "step-v1", "step": step, "source": digest.sha256, "published": published,
            "stem": stem, "ffmpeg": self.engine.runner.tools().version,
            "spool": env!("CARGO_PKG_VERSION"),
        });
        Some(sha256_hex(print.to_string().as_bytes()))
    }

    /// Puts a kept step's files in place (swapped in whole, like a fresh step's); None when
    /// nothing is kept or a file does not check out (the step then runs).
    pub(super) async fn reuse_step(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<OutputEntry>, serde_json::Value)>, JobStop> {
        if self.force {
            return Ok(None);
        }
        let k = key.to_string();
        let Some(record) = self.engine.store(move |r| r.result_get(&k)).await? else {
            return Ok(None);
        };
        let Ok(kept) = serde_json::from_value::<KeptStep>(record.body) else {
            return Ok(None);
        };
        // Beside the outputs, so every file is swapped in by a rename on one file system.
        let staging = self.out_dir.join(".step-reuse.spool-tmp");
        let _ = tokio::fs::remove_dir_all(&staging).await;
        for f in &kept.files {
            let dest = staging.join(&f.path);
            let ready = match dest.parent() {
                Some(parent) if inside(&f.path) => tokio::fs::create_dir_all(parent).await.is_ok(),
                _ => false,
            };
            if !ready || !self.take_cached(&f.key, &dest).await? {
                let _ = tokio::fs::remove_dir_all(&staging).await;
                return Ok(None);
            }
        }
        let (staged, out) = (staging.clone(), self.out_dir.clone());
        tokio::task::spawn_blocking(move || swap_in(&staged, &out))
            .await
            .map_err(|e| JobError::Internal(e.to_string()))?
            .map_err(JobError::io("putting a kept step's files in place"))?;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        Ok(Some((kept.outputs, kept.data)))
    }

    /// Keeps what a step just published: every file that is new or changed since `before`.
    pub(super) async fn keep_step(
        &self,
        key: &str,
        before: &Snapshot,
        outputs: &[OutputEntry],
        data: &serde_json::Value,
        digest: &FileDigest,
    ) -> Result<(), JobStop> {
        let out = self.out_dir.clone();
        let after = tokio::task::spawn_blocking(move || snapshot(&out))
            .await
            .map_err(|e| JobError::Internal(e.to_string()))?;
        let mut files = Vec::new();
        for (rel, seen) in &after {
            if before.get(rel) == Some(seen) {
                continue;
            }
            let file_key = sha256_hex(format!("{key}\n{}", rel.display()).as_bytes());
            if !self
                .keep_derived(&file_key, &self.out_dir.join(rel), digest)
                .await
            {
                // Not all of it could be kept: keep none of it.
                return Ok(());
            }
            files.push(KeptFile {
                path: rel.clone(),
                key: file_key,
            });
        }
        let body = serde_json::to_value(KeptStep {
            files,
            outputs: outputs.to_vec(),
            data: data.clone(),
        })
        .map_err(|e| JobError::Internal(e.to_string()))?;
        let record = ResultRecord {
            key: key.to_string(),
            kind: KIND.into(),
            body,
            created_ms: now_ms(),
        };
        self.engine.store(move |r| r.result_put(&record)).await?;
        Ok(())
    }
}

/// Moves every top-level entry of `staged` into `out`, replacing what is there.
fn swap_in(staged: &Path, out: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(staged)? {
        let entry = entry?;
        let dest = out.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            let old = out.join(format!(
                ".{}.spool-old",
                entry.file_name().to_string_lossy()
            ));
            let _ = std::fs::remove_dir_all(&old);
            if dest.exists() {
                std::fs::rename(&dest, &old)?;
            }
            std::fs::rename(entry.path(), &dest)?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            rename_durably(&entry.path(), &dest)?;
        }
    }
    std::fs::File::open(out)?.sync_all()
}
