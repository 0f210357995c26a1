//! Files derived from the source by one ffmpeg command (an audio encode, the GIF preview),
//! kept in the artifact cache by the source's content, the command with every path taken
//! out, and the ffmpeg that ran it: the same file is never made twice, and a cached one is
//! used only after its size and SHA-256 are checked.

use std::ffi::OsString;
use std::path::Path;

use super::JobCtx;
use crate::engine::artifacts::artifact_key;
use crate::engine::error::JobStop;
use crate::engine::task::spec::{ArgvTemplate, Bindings};
use crate::engine::task::OutputPaths;
use crate::media::hash::{digest_file, sha256_hex, FileDigest};
use crate::store::now_ms;

impl JobCtx<'_> {
    /// The cache key of `command` writing `out` from the source.
    pub(super) fn derived_key(
        &self,
        source: &FileDigest,
        command: &[OsString],
        out: &Path,
    ) -> String {
        self.derived_key_of(source, command, out, &[])
    }

    /// The same for a command that also reads files made before it, each named by what
    /// identifies its content (its cache key).
    pub(super) fn derived_key_of(
        &self,
        source: &FileDigest,
        command: &[OsString],
        out: &Path,
        inputs: &[String],
    ) -> String {
        let outputs = [OutputPaths {
            path: out.to_path_buf(),
            passlog: out.to_path_buf(),
        }];
        let bound = Bindings {
            input: self.input,
            work: &self.work,
            outputs: &outputs,
        };
        let template =
            serde_json::to_string(&ArgvTemplate::from_argv(command, &bound)).unwrap_or_default();
        let settings =
            sha256_hex(format!("derived-v1\n{template}\n{}", inputs.join("\n")).as_bytes());
        artifact_key(source, &settings, &self.engine.runner.tools().version)
    }
}

impl JobCtx<'_> {
    /// Puts the cached file for `key` at `out`, if the cache holds a sound one (its file
    /// of the recorded size and SHA-256).
    pub(super) async fn take_cached(&self, key: &str, out: &Path) -> Result<bool, JobStop> {
        if self.force {
            return Ok(false);
        }
        let store = &self.engine.artifacts;
        // Shared with other lookups, exclusive of eviction (see ArtifactStore::guard).
        let _reading = store.guard.read().await;
        let k = key.to_string();
        let Some(record) = self.engine.store(move |r| r.cache_get(&k)).await? else {
            return Ok(false);
        };
        let path = store.path_of(&record);
        let owned = path.clone();
        let sound = match tokio::task::spawn_blocking(move || digest_file(&owned)).await {
            Ok(Ok(d)) => d.size == record.bytes && d.sha256 == record.sha256,
            _ => false,
        };
        if !sound {
            let k = key.to_string();
            self.engine.store(move |r| r.cache_remove(&k)).await?;
            return Ok(false);
        }
        let _ = tokio::fs::remove_file(out).await;
        if tokio::fs::hard_link(&path, out).await.is_err()
            && tokio::fs::copy(&path, out).await.is_err()
        {
            return Ok(false);
        }
        let k = key.to_string();
        self.engine
            .store(move |r| r.cache_touch(&k, now_ms()))
            .await?;
        Ok(true)
    }

    /// Keeps a fresh file in the cache (a link stays at `out`); says whether it is kept.
    /// Failing to is not the job's failure: the next job just makes it again.
    pub(super) async fn keep_derived(&self, key: &str, out: &Path, source: &FileDigest) -> bool {
        let ext = out
            .extension()
            .map_or("bin".to_string(), |e| e.to_string_lossy().into_owned());
        let store = &self.engine.artifacts;
        let kept = async {
            let record = store.admit(key, out, source, 0, &ext).await?;
            let cached = store.path_of(&record);
            if tokio::fs::hard_link(&cached, out).await.is_err() {
                tokio::fs::copy(&cached, out).await?;
            }
            Ok::<_, std::io::Error>(record)
        }
        .await;
        match kept {
            Ok(record) => match self.engine.store(move |r| r.cache_put(&record)).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(job = %self.id, error = %e, "derived file not recorded in the cache");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(job = %self.id, error = %e, "derived file not kept in the cache");
                false
            }
        }
    }
}
