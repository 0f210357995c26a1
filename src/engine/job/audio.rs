//! The audio stage: each distinct audio setting encoded once, straight from the source,
//! alongside the video tasks (so nothing drifts at chunk boundaries), and kept in the
//! artifact cache by (source content, setting, ffmpeg): the same track in the same setting
//! is never encoded twice. A normalised track is measured again once encoded, so the
//! manifest says what came out.

use std::path::Path;

use super::JobCtx;
use crate::engine::artifacts::artifact_key;
use crate::engine::error::{JobError, JobStop};
use crate::engine::manifest::LoudnessEntry;
use crate::engine::plan::{JobPlan, PlannedAudio};
use crate::media::hash::{digest_file, sha256_hex, FileDigest};
use crate::media::measure::loudness;
use crate::media::probe::probe;
use crate::media::verify::VerifyError;
use crate::store::now_ms;

impl JobCtx<'_> {
    pub(super) async fn encode_audio(
        &self,
        plan: &JobPlan,
        source: &FileDigest,
    ) -> Result<Vec<LoudnessEntry>, JobStop> {
        let runs = plan.audio.iter().map(|a| self.encode_one(plan, a, source));
        let done = futures::future::join_all(runs)
            .await
            .into_iter()
            .collect::<Result<Vec<Option<LoudnessEntry>>, JobStop>>()?;
        Ok(done.into_iter().flatten().collect())
    }

    async fn encode_one(
        &self,
        plan: &JobPlan,
        a: &PlannedAudio,
        source: &FileDigest,
    ) -> Result<Option<LoudnessEntry>, JobStop> {
        let tools = self.engine.runner.tools();
        // The setting decides the command but for paths (which differ by job).
        let settings = sha256_hex(format!("audio-v1\n{:?}", a.encode).as_bytes());
        let key = artifact_key(source, &settings, &tools.version);
        if !self.cached_audio(&key, &a.out).await? {
            self.engine
                .runner
                .run(&a.command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run("encoding the audio"))?;
            self.keep_audio(&key, &a.out, source).await;
        }
        let wrong = |source: VerifyError| JobError::Verify {
            what: "the encoded audio".into(),
            source,
        };
        match probe(tools, &a.out).await {
            Ok(info) if info.has_audio() => {}
            Ok(_) => return Err(wrong(VerifyError::Mismatch("no audio stream".into())).into()),
            Err(e) => return Err(wrong(VerifyError::Probe(e)).into()),
        }
        let (Some(target), Some(measured)) = (
            self.workflow.loudness.as_ref(),
            plan.loudness_of(a.encode.track),
        ) else {
            return Ok(None);
        };
        let result = loudness(tools, &a.out, 0)
            .await
            .map_err(|e| wrong(VerifyError::Mismatch(format!("loudness: {e}"))))?;
        Ok(Some(LoudnessEntry {
            track: a.encode.track,
            encoder: a.encode.encoder.to_string(),
            target_lufs: target.target_lufs,
            measured_lufs: measured.integrated,
            measured_true_peak_db: measured.true_peak,
            result_lufs: result.integrated,
            result_true_peak_db: result.true_peak,
        }))
    }
}

impl JobCtx<'_> {
    /// Puts the cached encode for `key` at `out`, if the cache holds a sound one (its file
    /// of the recorded size and SHA-256).
    async fn cached_audio(&self, key: &str, out: &Path) -> Result<bool, JobStop> {
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

    /// Keeps a fresh encode in the cache (a link stays at `out`). Failing to is not the
    /// job's failure: the next job just encodes again.
    async fn keep_audio(&self, key: &str, out: &Path, source: &FileDigest) {
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
            Ok(record) => {
                if let Err(e) = self.engine.store(move |r| r.cache_put(&record)).await {
                    tracing::warn!(job = %self.id, error = %e, "audio encode not recorded in the cache");
                }
            }
            Err(e) => {
                tracing::warn!(job = %self.id, error = %e, "audio encode not kept in the cache");
            }
        }
    }
}
