//! The join stage: each rung's encoded chunks and its audio copied into one file under a
//! temp name, verified against the source (codec, height, frames, duration, A/V start);
//! then the GIF preview, verified too. Nothing is published here.

use std::path::PathBuf;

use super::encode::Encoded;
use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::manifest::{OutputEntry, OutputKind, StreamEntry};
use crate::engine::plan::analysis::Source;
use crate::engine::plan::{JobPlan, PlannedGif, PlannedJoin};
use crate::media::chunk::concat_list;
use crate::media::hash::FileDigest;
use crate::media::verify::{verify_output, Expected};

/// The joined rungs to publish, and those a size guard held back (with why).
pub(super) struct Joined {
    pub staged: Vec<Staged>,
    pub guarded: Vec<String>,
}

/// A verified output waiting in its temp file to be renamed into place.
pub(super) struct Staged {
    pub tmp: PathBuf,
    pub dest: PathBuf,
    pub entry: OutputEntry,
    /// What identifies its content: its cache key (steps after it are keyed by it).
    pub key: String,
}

impl JobCtx<'_> {
    /// A broken output on a full disk is the disk's fault: said so (and which disk).
    fn disk_or(&self, e: JobError) -> JobError {
        match crate::engine::exec::disk::full_disk(&[self.out_dir.clone(), self.work.clone()]) {
            Some((place, free)) => JobError::Run {
                context: "verifying the output".into(),
                source: crate::media::run::RunError::Disk {
                    problem: crate::media::run::DiskProblem::Full,
                    place: Some(place),
                    line: format!("{free} bytes free; {e}"),
                    stderr_tail: Vec::new(),
                },
            },
            None => e,
        }
    }

    pub(super) async fn join_and_verify(
        &self,
        plan: &JobPlan,
        encoded: &Encoded,
        source: &Source,
        digest: &FileDigest,
    ) -> Result<Joined, JobStop> {
        let joins = plan
            .joins
            .iter()
            .map(|j| self.join(plan, j, encoded, source, digest));
        let mut staged = Vec::new();
        let mut guarded = Vec::new();
        for r in futures::future::join_all(joins).await {
            let s = r?;
            match self.size_guard(&s, digest.size) {
                None => staged.push(s),
                Some(reason) => {
                    let _ = tokio::fs::remove_file(&s.tmp).await;
                    self.note(format!("not published: {reason}"));
                    guarded.push(reason);
                }
            }
        }
        self.verify_quality(plan, &mut staged).await?;
        if staged.is_empty() {
            return Err(JobStop::Skipped(format!(
                "no rung is small enough to publish: {}",
                guarded.join("; ")
            )));
        }
        if let Some(gif) = &plan.gif {
            staged.push(self.gif(gif, digest).await?);
        }
        Ok(Joined { staged, guarded })
    }

    /// Why a joined rung must not be published: bigger than its size guard allows.
    fn size_guard(&self, s: &Staged, source_bytes: u64) -> Option<String> {
        let profile = self
            .workflow
            .profiles
            .iter()
            .find(|p| p.name == s.entry.profile);
        let guard = profile
            .and_then(|p| p.size_guard)
            .or(self.workflow.size_guard)?;
        let limit = source_bytes as f64 * guard.max_ratio;
        (s.entry.bytes as f64 > limit).then(|| {
            format!(
                "{}: {} bytes is {:.0} % of the source's {source_bytes} (size_guard max_ratio {})",
                s.entry.profile,
                s.entry.bytes,
                s.entry.bytes as f64 * 100.0 / source_bytes.max(1) as f64,
                guard.max_ratio
            )
        })
    }

    async fn join(
        &self,
        plan: &JobPlan,
        join: &PlannedJoin,
        encoded: &Encoded,
        source: &Source,
        digest: &FileDigest,
    ) -> Result<Staged, JobStop> {
        let rung = &plan.rungs[join.rung];
        let files: Vec<(PathBuf, Option<f64>)> = encoded
            .files
            .iter()
            .zip(&plan.chunks)
            .map(|(c, chunk)| (c[join.rung].clone(), chunk.range.map(|r| r.seconds())))
            .collect();
        tokio::fs::write(&join.list, concat_list(&files))
            .await
            .map_err(JobError::io("join list"))?;
        // The same chunks and audio joined the same way make the same file: kept by what its
        // inputs are (cached chunks are named by their keys; audio by its own key).
        let inputs: Vec<String> = files
            .iter()
            .map(|(p, _)| {
                p.file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())
            })
            .chain(join.audio.iter().filter_map(|i| {
                let a = plan.audio.get(*i)?;
                Some(self.derived_key(digest, &a.command.args, &a.out))
            }))
            .collect();
        let key = self.derived_key_of(digest, &join.command.args, &join.tmp, &inputs);
        if !self.take_cached(&key, &join.tmp).await? {
            self.engine
                .runner
                .run(&join.command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run(format!("joining {}", rung.name)))?;
            self.keep_derived(&key, &join.tmp, digest).await;
        }
        let (media, video) = (&source.media, &source.video);
        let lead_in = plan.audio.first().map_or(0.0, |a| a.encode.lead_in_s);
        let first_audio = media.audio.first();
        let source_gap = first_audio.map_or(0.0, |a| (a.start_time - video.start_time).max(0.0));
        let want = Expected {
            codec: rung.codec.probe_name(),
            height: Some(rung.height),
            frames: Some(rung.frames_from(source.frames)),
            duration: Some((media.duration - lead_in, 1.0 / video.fps.as_f64())),
            has_audio: !join.audio.is_empty(),
            max_av_start_gap_s: source_gap + 1024.0 / 48000.0,
            streams: Some(&join.expect),
        };
        let info = verify_output(self.engine.runner.tools(), &join.tmp, &want)
            .await
            .map_err(|source| {
                self.disk_or(JobError::Verify {
                    what: rung.name.clone(),
                    source,
                })
            })?;
        let bytes = tokio::fs::metadata(&join.tmp)
            .await
            .map_err(JobError::io(join.tmp.display().to_string()))?
            .len();
        let (w, h) = info.video.as_ref().map_or((0, 0), |v| v.display_size());
        Ok(Staged {
            entry: OutputEntry {
                profile: rung.name.clone(),
                kind: OutputKind::Video,
                path: join.final_name.clone(),
                codec: Some(rung.codec.name().into()),
                width: Some(w),
                height: Some(h),
                duration: Some(info.duration),
                frames: Some(rung.frames_from(source.frames)),
                bytes,
                sha256: String::new(),
                streams: StreamEntry::all_of(&info),
                quality: None,
            },
            tmp: join.tmp.clone(),
            dest: join.dest.clone(),
            key,
        })
    }

    async fn gif(&self, gif: &PlannedGif, digest: &FileDigest) -> Result<Staged, JobStop> {
        // A preview of the same source in the same setting is made once (see `derived`).
        let key = self.derived_key(digest, &gif.command.args, &gif.tmp);
        if !self.take_cached(&key, &gif.tmp).await? {
            self.engine
                .runner
                .run(&gif.command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run("gif preview"))?;
            self.keep_derived(&key, &gif.tmp, digest).await;
        }
        let want = Expected {
            codec: "gif",
            height: None,
            frames: None,
            duration: None,
            has_audio: false,
            max_av_start_gap_s: 0.0,
            streams: None,
        };
        let info = verify_output(self.engine.runner.tools(), &gif.tmp, &want)
            .await
            .map_err(|source| JobError::Verify {
                what: "gif preview".into(),
                source,
            })?;
        let bytes = tokio::fs::metadata(&gif.tmp)
            .await
            .map_err(JobError::io(gif.tmp.display().to_string()))?
            .len();
        let (w, h) = info.video.as_ref().map_or((0, 0), |v| (v.width, v.height));
        Ok(Staged {
            entry: OutputEntry {
                profile: "gif".into(),
                kind: OutputKind::Gif,
                path: gif.final_name.clone(),
                codec: Some("gif".into()),
                width: Some(w),
                height: Some(h),
                duration: Some(gif.length),
                frames: None,
                bytes,
                sha256: String::new(),
                streams: Vec::new(),
                quality: None,
            },
            tmp: gif.tmp.clone(),
            dest: gif.dest.clone(),
            key,
        })
    }
}
