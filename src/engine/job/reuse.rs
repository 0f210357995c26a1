//! The same content again, under another name or into another output directory: an earlier
//! job of the same workflow version already made every output. Each is checked against the
//! SHA-256 its manifest recorded, linked (or copied) here under this input's name, and a
//! manifest written that says where they came from. Nothing is decoded or encoded.
//!
//! Only for workflows whose outputs depend on nothing but the content and the workflow: no
//! script (hooks may decide per file). Every file of the earlier output directory is taken
//! (HLS trees, sprites, subtitles), each checked; under another name, only if no text file
//! among them names the earlier input's stem (a link that would then point nowhere).

use std::path::{Path, PathBuf};

use super::JobCtx;
use crate::engine::error::{JobError, JobStop, Published};
use crate::engine::manifest::{FileEntry, Manifest};
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
        if self.force || self.workflow.script.is_some() {
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
            let files_known = !manifest.files.is_empty() || manifest.steps.is_empty();
            if manifest.input_md5 != digest.md5 || !files_known {
                continue;
            }
            match self.link_outputs(&manifest, &job, record).await? {
                Some(p) => return Ok(Some(p)),
                None => continue,
            }
        }
        Ok(None)
    }

    /// Checks and links every file of `earlier`; None (and nothing left behind) if any one
    /// is missing or not what its manifest says.
    async fn link_outputs(
        &self,
        earlier: &Manifest,
        job: &JobRecord,
        record: &JobRecord,
    ) -> Result<Option<Published>, JobStop> {
        let (from, to) = (PathBuf::from(&job.out_dir), self.out_dir.clone());
        let (old_stem, new_stem) = (stem_of(Path::new(&earlier.input)), stem_of(self.input));
        let files = files_of(earlier);
        if old_stem != new_stem && mentions(&from, &files, &old_stem).await {
            return Ok(None);
        }
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        for f in &files {
            let dest = to.join(renamed(&f.path, &old_stem, &new_stem));
            let parent = dest.parent().map_or(to.clone(), Path::to_path_buf);
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
            let tmp = parent.join(temp_name(&name.unwrap_or_default(), "reuse"));
            let ok = tokio::fs::create_dir_all(&parent).await.is_ok()
                && same_file(&from.join(&f.path), f.bytes, &f.sha256).await
                && link_or_copy(&from.join(&f.path), &tmp).await.is_ok();
            if !ok {
                for (t, _) in staged.iter().chain([(tmp, dest)].iter()) {
                    let _ = tokio::fs::remove_file(t).await;
                }
                return Ok(None);
            }
            staged.push((tmp, dest));
        }
        for (tmp, dest) in &staged {
            rename_durably(tmp, dest).map_err(JobError::io(dest.display().to_string()))?;
        }
        let manifest = self.reused_manifest(earlier, job, record, &old_stem, &new_stem)?;
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

    /// The earlier manifest, made this job's: its id, input, names, and where it came from.
    fn reused_manifest(
        &self,
        earlier: &Manifest,
        job: &JobRecord,
        record: &JobRecord,
        old_stem: &str,
        new_stem: &str,
    ) -> Result<Manifest, JobStop> {
        let mut m = earlier.clone();
        m.job = self.id.clone();
        m.input = self.input.display().to_string();
        for o in &mut m.outputs {
            o.path = renamed(&o.path, old_stem, new_stem);
        }
        for f in &mut m.files {
            f.path = renamed(&f.path, old_stem, new_stem);
        }
        // Step data names files too (a transcript's <stem>.en.vtt).
        let steps = serde_json::to_string(&m.steps)
            .map_err(|e| JobError::Internal(e.to_string()))?
            .replace(&format!("\"{old_stem}."), &format!("\"{new_stem}."));
        m.steps = serde_json::from_str(&steps).map_err(|e| JobError::Internal(e.to_string()))?;
        m.reused_from = Some(job.id.clone());
        m.original = self.workflow.original.clone();
        m.elapsed_s = now_ms().saturating_sub(record.created_ms) as f64 / 1000.0;
        Ok(m)
    }
}

/// What to take: the recorded files, or (manifests from before they were recorded) the
/// outputs, each with its hash.
fn files_of(m: &Manifest) -> Vec<FileEntry> {
    if !m.files.is_empty() {
        return m.files.clone();
    }
    m.outputs
        .iter()
        .map(|o| FileEntry {
            path: o.path.clone(),
            bytes: o.bytes,
            sha256: o.sha256.clone(),
        })
        .collect()
}

/// Whether a text file among `files` names `stem` (a playlist or caption file pointing at
/// a file that would be renamed).
async fn mentions(dir: &Path, files: &[FileEntry], stem: &str) -> bool {
    const TEXT: [&str; 7] = ["m3u8", "vtt", "srt", "ass", "json", "txt", "xml"];
    for f in files {
        let ext = Path::new(&f.path)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if !ext.is_some_and(|e| TEXT.contains(&e.as_str())) {
            continue;
        }
        match tokio::fs::read(dir.join(&f.path)).await {
            Ok(bytes) if !String::from_utf8_lossy(&bytes).contains(stem) => {}
            _ => return true,
        }
    }
    false
}

async fn read_manifest(path: Option<&str>) -> Option<Manifest> {
    let bytes = tokio::fs::read(path?).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `name` with the earlier input's stem replaced by this one's where it leads the name.
fn renamed(name: &str, old_stem: &str, new_stem: &str) -> String {
    match name.strip_prefix(old_stem) {
        Some(rest) if rest.starts_with('.') && !rest.contains('/') => format!("{new_stem}{rest}"),
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
        assert_eq!(renamed("talk.d/x.m4s", "talk", "x"), "talk.d/x.m4s");
    }
}
