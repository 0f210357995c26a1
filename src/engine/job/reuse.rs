//! The same content again, under another name or into another output directory: an earlier
//! job of the same workflow version already made every output. Each is checked against the
//! SHA-256 its manifest recorded, linked (or copied) here under this input's name, and a
//! manifest written that says where they came from. Nothing is decoded or encoded.
//!
//! Only for workflows whose outputs depend on nothing but the content and the workflow: no
//! script (hooks may decide per file), no steps (HLS, thumbnails and transcripts are not
//! recorded file by file yet), and every output hashed.

use std::path::{Path, PathBuf};

use super::JobCtx;
use crate::engine::error::{JobError, JobStop, Published};
use crate::engine::manifest::Manifest;
use crate::engine::plan::stem_of;
use crate::engine::publish::{rename_durably, temp_name, write_atomic};
use crate::media::hash::{digest_file, FileDigest};
use crate::store::{now_ms, JobRecord, JobStatus};

impl JobCtx<'_> {
    /// Publishes an earlier job's outputs for this content, if one can be trusted whole.
    pub(super) async fn reuse_whole(
        &self,
        digest: &FileDigest,
        record: &JobRecord,
    ) -> Result<Option<Published>, JobStop> {
        if self.force || self.workflow.script.is_some() || !self.workflow.steps.is_empty() {
            return Ok(None);
        }
        let md5 = digest.md5.clone();
        let mut earlier = self.engine.store(move |r| r.jobs_for_content(&md5)).await?;
        earlier.retain(|j| {
            j.status == JobStatus::Succeeded
                && j.workflow_hash == self.wf.content_hash
                && Path::new(&j.out_dir) != self.out_dir
                && j.manifest.is_some()
        });
        earlier.sort_by_key(|j| std::cmp::Reverse(j.updated_ms));
        for job in earlier {
            let Some(manifest) = read_manifest(job.manifest.as_deref()).await else {
                continue;
            };
            if manifest.input_md5 != digest.md5 || !manifest.steps.is_empty() {
                continue;
            }
            match self.link_outputs(&manifest, &job, record).await? {
                Some(p) => return Ok(Some(p)),
                None => continue,
            }
        }
        Ok(None)
    }

    /// Checks and links every output of `earlier`; None (and nothing left behind) if any
    /// one is missing or not what its manifest says.
    async fn link_outputs(
        &self,
        earlier: &Manifest,
        job: &JobRecord,
        record: &JobRecord,
    ) -> Result<Option<Published>, JobStop> {
        let (from, to) = (PathBuf::from(&job.out_dir), self.out_dir.clone());
        let (old_stem, new_stem) = (stem_of(Path::new(&earlier.input)), stem_of(self.input));
        tokio::fs::create_dir_all(&to)
            .await
            .map_err(JobError::io(to.display().to_string()))?;
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut outputs = Vec::new();
        for entry in &earlier.outputs {
            let name = renamed(&entry.path, &old_stem, &new_stem);
            let (src, dest) = (from.join(&entry.path), to.join(&name));
            let sound = !entry.sha256.is_empty()
                && !name.contains('/')
                && same_file(&src, entry.bytes, &entry.sha256).await;
            let tmp = to.join(temp_name(&name, "reuse"));
            if !sound || link_or_copy(&src, &tmp).await.is_err() {
                for (t, _) in &staged {
                    let _ = tokio::fs::remove_file(t).await;
                }
                let _ = tokio::fs::remove_file(&tmp).await;
                return Ok(None);
            }
            staged.push((tmp, dest));
            let mut e = entry.clone();
            e.path = name;
            outputs.push(e);
        }
        for (tmp, dest) in &staged {
            rename_durably(tmp, dest).map_err(JobError::io(dest.display().to_string()))?;
        }
        let mut manifest = earlier.clone();
        manifest.job = self.id.clone();
        manifest.input = self.input.display().to_string();
        manifest.outputs = outputs;
        manifest.reused_from = Some(job.id.clone());
        manifest.original = self.workflow.original.clone();
        manifest.elapsed_s = now_ms().saturating_sub(record.created_ms) as f64 / 1000.0;
        let path = to.join("manifest.json");
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| JobError::Internal(format!("manifest: {e}")))?;
        write_atomic(&path, &bytes).map_err(JobError::io(path.display().to_string()))?;
        self.note(format!(
            "every output reused from job {} (same content and workflow; each checked by SHA-256)",
            job.id
        ));
        if let Err(e) = super::original::dispose_original(
            self.input,
            &self.workflow.original,
            &self.wf.base_dir,
        ) {
            self.note(format!(
                "outputs are done, but the original was left in place: {e}"
            ));
        }
        Ok(Some(Published { manifest, path }))
    }
}

async fn read_manifest(path: Option<&str>) -> Option<Manifest> {
    let bytes = tokio::fs::read(path?).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `name` with the earlier input's stem replaced by this one's where it leads the name.
fn renamed(name: &str, old_stem: &str, new_stem: &str) -> String {
    match name.strip_prefix(old_stem) {
        Some(rest) if rest.starts_with('.') => format!("{new_stem}{rest}"),
        _ => name.to_string(),
    }
}

async fn same_file(path: &Path, bytes: u64, sha256: &str) -> bool {
    let owned = path.to_path_buf();
    match tokio::task::spawn_blocking(move || digest_file(&owned)).await {
        Ok(Ok(d)) => d.size == bytes && d.sha256 == sha256,
        _ => false,
    }
}

/// A hard link where the file system allows (same disk), else a copy.
async fn link_or_copy(src: &Path, dest: &Path) -> std::io::Result<()> {
    let _ = tokio::fs::remove_file(dest).await;
    match tokio::fs::hard_link(src, dest).await {
        Ok(()) => Ok(()),
        Err(_) => tokio::fs::copy(src, dest).await.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::renamed;

    #[test]
    fn outputs_take_the_new_inputs_name() {
        assert_eq!(
            renamed("talk.h264-240p.mp4", "talk", "lecture"),
            "lecture.h264-240p.mp4"
        );
        assert_eq!(renamed("talk.gif", "talk", "lecture"), "lecture.gif");
        assert_eq!(renamed("talkshow.gif", "talk", "x"), "talkshow.gif");
        assert_eq!(renamed("poster.jpg", "talk", "x"), "poster.jpg");
    }
}
