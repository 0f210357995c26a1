//! The publish stage: verified outputs renamed into place, the steps run, the manifest
//! written last, then the original disposed of and on_complete told.

use std::path::Path;

use serde_json::json;

use super::join::Joined;
use super::original::dispose_original;
use super::step_reuse::snapshot;
use super::JobCtx;
use crate::engine::error::{JobError, JobStop, Published};
use crate::engine::manifest::{
    LoudnessEntry, Manifest, OutputEntry, SourceSummary, WorkflowRef, MANIFEST_SCHEMA,
};
use crate::engine::plan::analysis::Source;
use crate::engine::plan::{stem_of, JobPlan};
use crate::engine::publish::{rename_durably, write_atomic};
use crate::engine::steps::{kind_of, StepCtx};
use crate::media::hash::FileDigest;
use crate::store::{now_ms, JobRecord};

impl JobCtx<'_> {
    pub(super) async fn publish(
        &self,
        plan: &JobPlan,
        joined: Joined,
        source: &Source,
        digest: &FileDigest,
        record: &JobRecord,
        loudness: Vec<LoudnessEntry>,
    ) -> Result<Published, JobStop> {
        let mut outputs = Vec::new();
        let keys: Vec<String> = joined.staged.iter().map(|s| s.key.clone()).collect();
        for s in joined.staged {
            if let Err(e) = rename_durably(&s.tmp, &s.dest) {
                remove_temps(&self.out_dir).await;
                let _ = tokio::fs::remove_file(&s.tmp).await;
                return Err(JobError::Io {
                    context: format!("publishing {}", s.dest.display()),
                    source: e,
                }
                .into());
            }
            outputs.push(s.entry);
        }
        let steps = self
            .run_steps(plan, source, &mut outputs, digest, &keys)
            .await?;
        let dir = self.out_dir.clone();
        let files =
            tokio::task::spawn_blocking(move || crate::engine::manifest::published_files(&dir))
                .await
                .map_err(|e| JobError::Internal(e.to_string()))?
                .map_err(JobError::io(format!(
                    "hashing what {} holds",
                    self.out_dir.display()
                )))?;
        // Each file hashed once: a consumer can check what it got, a later job reuse it.
        for o in &mut outputs {
            if let Some(f) = files.iter().find(|f| f.path == o.path) {
                o.sha256 = f.sha256.clone();
            }
        }
        let (w, h) = source.video.display_size();
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            job: self.id.clone(),
            input: self.input.display().to_string(),
            input_md5: digest.md5.clone(),
            workflow: WorkflowRef {
                name: self.workflow.name.clone(),
                hash: self.wf.content_hash.clone(),
            },
            source: SourceSummary {
                duration: source.media.duration,
                width: w,
                height: h,
                fps: source.video.fps.as_f64(),
                frames: source.frames,
                has_audio: source.media.has_audio(),
            },
            outputs,
            steps,
            skipped: plan
                .skipped_rungs
                .iter()
                .chain(&joined.guarded)
                .cloned()
                .collect(),
            fallback_reason: plan.whole_file_reason.clone(),
            chunks: plan.chunks.len(),
            chunking: plan.chunking.clone(),
            reused_chunks: record.reused_chunks as usize,
            original: self.workflow.original.clone(),
            elapsed_s: (now_ms().saturating_sub(record.created_ms)) as f64 / 1000.0,
            dropped: plan.dropped.clone(),
            picture: plan.picture.clone(),
            loudness,
            notes: plan.notes.clone(),
            reused_from: None,
            quality: plan.quality.clone(),
            per_title: plan.per_title.clone(),
            files,
        };
        let path = self.out_dir.join("manifest.json");
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| JobError::Internal(format!("manifest: {e}")))?;
        write_atomic(&path, &bytes).map_err(JobError::io(format!("writing {}", path.display())))?;
        // Only now, with every output and the manifest durable, may the original go.
        if let Err(e) = dispose_original(self.input, &self.workflow.original, &self.wf.base_dir) {
            self.note(format!(
                "outputs are done, but the original was left in place: {e}"
            ));
        }
        self.tell_on_complete(&manifest, &path).await;
        Ok(Published { manifest, path })
    }

    /// Runs the steps in order; returns each step's data, by name.
    async fn run_steps(
        &self,
        plan: &JobPlan,
        source: &Source,
        outputs: &mut Vec<OutputEntry>,
        digest: &FileDigest,
        published: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, JobStop> {
        let mut data = serde_json::Map::new();
        let stem = stem_of(self.input);
        for (step, step_plan) in self.workflow.steps.iter().zip(&plan.steps) {
            let key = self.step_key(step, digest, published, &stem);
            if let Some(key) = &key {
                if let Some((entries, mut kept)) = self.reuse_step(key).await? {
                    if let Some(map) = kept.as_object_mut() {
                        map.insert("cached".into(), true.into());
                    }
                    outputs.extend(entries);
                    data.insert(step.label().to_string(), kept);
                    continue;
                }
            }
            let out = self.out_dir.clone();
            let before = tokio::task::spawn_blocking(move || snapshot(&out))
                .await
                .map_err(|e| JobError::Internal(e.to_string()))?;
            let ctx = StepCtx {
                job: &self.id,
                input: self.input,
                work: &self.work,
                out_dir: &self.out_dir,
                base_dir: &self.wf.base_dir,
                stem: &stem,
                media: &source.media,
                video: &source.video,
                runner: &self.engine.runner,
                repo: &self.engine.repo,
                events: &self.engine.events,
                force: self.force,
                placement: &self.placement,
                cancel: &self.cancel,
                script: &self.script,
                published: outputs,
            };
            let done = kind_of(step)
                .run(&ctx, step_plan)
                .await
                .map_err(|e| e.into_stop(step.label()))?;
            if let Some(key) = &key {
                self.keep_step(key, &before, &done.outputs, &done.data, digest)
                    .await?;
            }
            outputs.extend(done.outputs);
            data.insert(step.label().to_string(), done.data);
        }
        Ok(data)
    }

    /// Outputs are published: a failing on_complete is reported, not a failed job.
    async fn tell_on_complete(&self, manifest: &Manifest, path: &Path) {
        let job = json!({
            "id": self.id, "input": self.input.display().to_string(),
            "out_dir": self.out_dir.display().to_string(), "workflow": self.workflow.name,
            "manifest": path.display().to_string(),
        });
        let manifest = serde_json::to_value(manifest).unwrap_or_default();
        if let Err(e) = self.script.on_complete(job, manifest).await {
            tracing::error!(job = %self.id, error = %e, "on_complete failed");
            self.note(format!("on_complete failed: {e}"));
        }
    }
}

/// Removes leftover temp files of ours from an output directory.
pub(super) async fn remove_temps(dir: &Path) {
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            if e.file_name().to_string_lossy().contains(".spool-tmp") {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
}
