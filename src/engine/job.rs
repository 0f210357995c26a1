//! One input's life: identity → probe → chunk (or whole file) → tasks → join → verify → publish.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::hooks::{script_params, JobScript};
use super::plan::{output_name, plan_rungs, rung_cost, whole_file_reason};
use super::publish::{rename_durably, temp_name, write_atomic};
use super::queue::trace_command;
use super::task::{run_task, ChunkInfo, TaskSpec};
use super::webhooks::MILESTONES;
use super::{Engine, Event, JobOutcome};
use crate::media::chunk::{concat_list, parse_segment_list};
use crate::media::command::{audio_args, gif_args, join_args, segment_args, AudioEncode};
use crate::media::hash::{digest_file, FileDigest};
use crate::media::probe::{
    count_video_frames, probe, probe_counting_frames, MediaInfo, VideoStream,
};
use crate::media::profiles::Rung;
use crate::media::run::{run_ffmpeg, RunError};
use crate::media::tools::Tools;
use crate::media::verify::{verify_output, Expected};
use crate::script::JobScope;
use crate::store::{now_ms, JobRecord, JobStatus, TaskRecord, TaskStatus};
use crate::workflow::schema::WebhookEvent;
use crate::workflow::{EncodeMode, LoadedWorkflow, Original, Workflow};

/// Why a job stopped short.
#[derive(Debug)]
pub(super) struct JobFailure {
    pub message: String,
    pub stderr_tail: Vec<String>,
    pub cancelled: bool,
    /// A hook chose to skip the file: the job ends as skipped, not failed.
    pub skipped: bool,
}

impl JobFailure {
    pub fn new(message: impl Into<String>) -> JobFailure {
        JobFailure {
            message: message.into(),
            stderr_tail: Vec::new(),
            cancelled: false,
            skipped: false,
        }
    }
    pub fn skipped(reason: impl Into<String>) -> JobFailure {
        JobFailure {
            skipped: true,
            ..JobFailure::new(reason)
        }
    }
    pub fn from_run(context: &str, e: RunError) -> JobFailure {
        JobFailure {
            cancelled: matches!(e, RunError::Cancelled),
            stderr_tail: e.stderr_tail().to_vec(),
            message: format!("{context}: {e}"),
            skipped: false,
        }
    }
}

/// A verified output waiting in its temp file to be renamed into place.
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    entry: serde_json::Value,
}

pub(super) struct JobCtx<'a> {
    pub engine: &'a Engine,
    pub wf: &'a LoadedWorkflow,
    /// The workflow this job runs: the file's, as changed by the plan hook.
    pub workflow: Workflow,
    pub input: &'a Path,
    pub id: String,
    pub seq: u64,
    pub work: PathBuf,
    pub cancel: CancellationToken,
    pub force: bool,
    pub script: JobScript,
}

impl Engine {
    pub(super) async fn run_job(
        &self,
        input: &Path,
        wf: &LoadedWorkflow,
        out_root: &Path,
        force: bool,
        known: Option<FileDigest>,
    ) -> JobOutcome {
        let started = Instant::now();
        let input_display = input.display().to_string();
        let fail_early = |reason: String| JobOutcome {
            id: None,
            input: input_display.clone(),
            status: JobStatus::Failed,
            reason: Some(reason),
            manifest: None,
            chunks: 0,
            reused_chunks: 0,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        match std::fs::metadata(input) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                return fail_early(format!("{input_display}: the file is empty (0 bytes)"))
            }
            Ok(m) if m.is_file() => {}
            Ok(_) => return fail_early(format!("{input_display}: not a regular file")),
            Err(e) => return fail_early(format!("{input_display}: {e}")),
        }
        let owned = input.to_path_buf();
        // Probing reads the file while it is hashed (unless the caller hashed it already);
        // its verdict waits for the job record.
        let hashing = async move {
            match known {
                Some(d) => Ok(Ok(d)),
                None => tokio::task::spawn_blocking(move || digest_file(&owned)).await,
            }
        };
        let (digest, probed) = tokio::join!(hashing, probe_source(&self.tools, input));
        let digest = match digest {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return fail_early(format!("{input_display}: cannot read: {e}")),
            Err(e) => return fail_early(format!("internal error while hashing: {e}")),
        };
        let out_dir = out_root.join(stem_of(input));
        let out_dir_s = out_dir.display().to_string();
        let jobs = self.store(|r| r.list_jobs()).await.unwrap_or_default();
        let same_input = |j: &&JobRecord| j.input_md5 == digest.md5 && j.out_dir == out_dir_s;
        // A job stopped midway resumes with the workflow version it started with.
        let stopped = jobs
            .iter()
            .filter(same_input)
            .filter(|j| matches!(j.status, JobStatus::Interrupted | JobStatus::Running))
            .max_by_key(|j| j.created_ms)
            .filter(|j| j.workflow_hash != wf.content_hash)
            .map(|j| j.workflow_hash.clone());
        let resumed_version = match stopped {
            Some(hash) => self.stored_workflow(&hash).await,
            None => None,
        };
        let wf = match &resumed_version {
            Some(old) => old,
            None => wf,
        };
        let earlier = jobs
            .into_iter()
            .filter(|j| j.input_md5 == digest.md5 && j.out_dir == out_dir_s)
            .filter(|j| j.workflow_hash == wf.content_hash)
            .max_by_key(|j| j.created_ms);
        if let Some(done) = earlier
            .as_ref()
            .filter(|j| j.status == JobStatus::Succeeded && !force)
        {
            if done
                .manifest
                .as_deref()
                .is_some_and(|m| Path::new(m).is_file())
            {
                self.emit(Event::Note {
                    job: done.id.clone(),
                    message: "already done; use --force to encode again".into(),
                });
                return JobOutcome {
                    id: Some(done.id.clone()),
                    input: input_display,
                    status: JobStatus::Succeeded,
                    reason: None,
                    manifest: done.manifest.clone().map(PathBuf::from),
                    chunks: done.chunks,
                    reused_chunks: done.chunks,
                    elapsed_s: started.elapsed().as_secs_f64(),
                };
            }
        }
        // An unfinished job for the same input resumes under its own id.
        let id = earlier
            .filter(|j| j.status != JobStatus::Succeeded)
            .map_or_else(|| self.new_job_id(), |j| j.id);
        let mut record = JobRecord {
            id: id.clone(),
            input: input_display.clone(),
            input_md5: digest.md5.clone(),
            input_size: digest.size,
            workflow_name: wf.workflow.name.clone(),
            workflow_hash: wf.content_hash.clone(),
            out_dir: out_dir_s,
            status: JobStatus::Running,
            created_ms: now_ms(),
            updated_ms: now_ms(),
            fallback_reason: None,
            error: None,
            stderr_tail: Vec::new(),
            manifest: None,
            chunks: 0,
            reused_chunks: 0,
            progress: 0.0,
        };
        let first = record.clone();
        let version = wf.version();
        let stored = self
            .store(move |r| {
                r.put_workflow_version(&version)?;
                r.put_job(&first)?;
                // From here on the job exists: a crash must find it and its version.
                r.flush()
            })
            .await;
        if let Err(e) = stored {
            return fail_early(e.to_string());
        }
        let cancel = self.shutdown.child_token();
        if let Ok(mut running) = self.running.lock() {
            running.insert(id.clone(), cancel.clone());
        }
        let work = self.state_dir.join("work").join(&id);
        let seq = self
            .job_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scope = JobScope {
            job: id.clone(),
            params: script_params(wf),
            input: input.to_path_buf(),
            work_dir: work.clone(),
            out_dir: out_dir.clone(),
        };
        // The work dir exists before Lua runs: spool.fs confines paths to it.
        let prepared = match tokio::fs::create_dir_all(work.join("enc")).await {
            Ok(()) => JobScript::load(self.script_deps(), wf, scope, cancel.clone(), seq).await,
            Err(e) => Err(JobFailure::new(format!("work dir {}: {e}", work.display()))),
        };
        // Lua decides (skip, or change the plan) before anything is chunked or encoded.
        let decided = match (probed, &prepared) {
            (Ok(source), Ok(script)) => script
                .decide(&wf.workflow, input, &digest.md5, digest.size, &source.0)
                .await
                .map(|d| (source, d)),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(JobFailure::new(e.message.clone())),
        };
        let workflow = match &decided {
            Ok((_, d)) => d.workflow.clone(),
            Err(_) => wf.workflow.clone(),
        };
        let script = match prepared {
            Ok(s) => s,
            Err(_) => JobScript::none(&id, &work, input),
        };
        let ctx = JobCtx {
            engine: self,
            wf,
            workflow,
            input,
            id: id.clone(),
            seq,
            work,
            cancel,
            force,
            script,
        };
        let result = match decided {
            Ok((
                _,
                super::hooks::Decision {
                    skip: Some(reason), ..
                },
            )) => Ok(Err(reason)),
            Ok((source, _)) => {
                self.notify(
                    &ctx.workflow.webhooks,
                    WebhookEvent::Started,
                    ctx.event_body(),
                );
                ctx.pipeline(&digest, source, &out_dir, &mut record)
                    .await
                    .map(Ok)
            }
            Err(e) => Err(e),
        };
        if !self.keep_work {
            let _ = tokio::fs::remove_dir_all(&ctx.work).await;
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
        let (status, reason) = match result {
            Ok(Ok(manifest)) => {
                super::metrics::Metrics::add(&self.metrics.bytes_in, digest.size);
                super::metrics::Metrics::add(&self.metrics.bytes_out, published_bytes(&manifest));
                record.manifest = Some(manifest.display().to_string());
                record.progress = 1.0;
                (JobStatus::Succeeded, None)
            }
            Ok(Err(skip_reason)) => (JobStatus::Skipped, Some(skip_reason)),
            Err(f) if f.cancelled && self.shutdown.is_cancelled() => {
                (JobStatus::Interrupted, Some(f.message))
            }
            Err(f) if f.cancelled => (JobStatus::Cancelled, Some("cancelled".to_string())),
            Err(f) if f.skipped => (JobStatus::Skipped, Some(f.message)),
            Err(f) => {
                record.stderr_tail = f.stderr_tail;
                (JobStatus::Failed, Some(f.message))
            }
        };
        record.status = status;
        record.error = reason.clone();
        record.updated_ms = now_ms();
        let final_record = record.clone();
        let _ = self
            .store(move |r| {
                if status != JobStatus::Succeeded {
                    let running = r.tasks_of(&final_record.id)?;
                    for mut t in running
                        .into_iter()
                        .filter(|t| t.status == TaskStatus::Running)
                    {
                        t.status = if status == JobStatus::Cancelled {
                            TaskStatus::Cancelled
                        } else {
                            TaskStatus::Pending
                        };
                        r.put_task(&t)?;
                    }
                }
                r.put_job(&final_record)?;
                r.flush()
            })
            .await;
        let mut body = ctx.event_body();
        if let serde_json::Value::Object(m) = &mut body {
            m.insert("status".into(), json!(status));
            m.insert("reason".into(), json!(reason));
            m.insert("manifest".into(), json!(record.manifest));
        }
        let event = match status {
            JobStatus::Succeeded => WebhookEvent::Succeeded,
            JobStatus::Skipped => WebhookEvent::Skipped,
            _ => WebhookEvent::Failed,
        };
        self.notify(&ctx.workflow.webhooks, event, body);
        super::metrics::Metrics::add(&self.metrics.jobs_finished, 1);
        let outcome = JobOutcome {
            id: Some(id),
            input: input_display,
            status,
            reason,
            manifest: record.manifest.map(PathBuf::from),
            chunks: record.chunks,
            reused_chunks: record.reused_chunks,
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        self.emit(Event::JobFinished(outcome.clone()));
        outcome
    }
}

impl Engine {
    /// A workflow version stored by an earlier job, loaded again exactly as it was.
    async fn stored_workflow(&self, hash: &str) -> Option<LoadedWorkflow> {
        let key = hash.to_string();
        let version = self.store(move |r| r.workflow_version(&key)).await.ok()??;
        match crate::workflow::load_version(&version) {
            Ok(wf) => Some(wf),
            Err(e) => {
                tracing::warn!(hash, error = %e, "stored workflow version no longer loads");
                None
            }
        }
    }
}

/// Probes the source and counts its frames by demuxing (nb_frames in a header can lie).
async fn probe_source(
    tools: &Tools,
    input: &Path,
) -> Result<(MediaInfo, VideoStream, u64), JobFailure> {
    let (media, frames) = probe_counting_frames(tools, input)
        .await
        .map_err(|e| JobFailure::new(e.to_string()))?;
    // ffprobe reads a cut-short MP4 whose index comes first without complaint; the box
    // structure shows the cut (a half-uploaded or damaged file).
    if media.format.contains("mp4") || media.format.contains("mov") {
        let owned = input.to_path_buf();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || crate::media::mp4::read_video_track(&owned)).await
        {
            if e.kind() == std::io::ErrorKind::InvalidData {
                return Err(JobFailure::new(format!(
                    "{}: the file is cut short or damaged ({e}); if it is still being copied, it will be taken when complete",
                    input.display()
                )));
            }
        }
    }
    let Some(video) = media.video.clone() else {
        return Err(JobFailure::new(format!(
            "{}: no video stream to encode (streams: {})",
            input.display(),
            media.stream_types.join(", ")
        )));
    };
    if frames == 0 {
        return Err(JobFailure::new(format!(
            "{}: the video stream holds no frames",
            input.display()
        )));
    }
    const STILL: &[&str] = &[
        "png", "mjpeg", "bmp", "tiff", "webp", "jpeg2000", "jpegls", "pam", "ppm", "qoi",
    ];
    if frames <= 1 && STILL.contains(&video.codec.as_str()) {
        return Err(JobFailure::new(format!(
            "{}: a still image ({}), not a video",
            input.display(),
            video.codec
        )));
    }
    Ok((media, video, frames))
}

pub(super) fn stem_of(input: &Path) -> String {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.trim_start_matches('.').replace(['/', '\n', '\r'], "_");
    if stem.is_empty() {
        "output".into()
    } else {
        stem
    }
}

impl JobCtx<'_> {
    /// What every webhook event of this job carries.
    fn event_body(&self) -> serde_json::Value {
        json!({
            "job": self.id,
            "input": self.input.display().to_string(),
            "workflow": { "name": self.workflow.name, "hash": self.wf.content_hash },
        })
    }

    async fn pipeline(
        &self,
        digest: &FileDigest,
        (media, video, source_frames): (MediaInfo, VideoStream, u64),
        out_dir: &Path,
        record: &mut JobRecord,
    ) -> Result<PathBuf, JobFailure> {
        let engine = self.engine;
        let plan =
            plan_rungs(&self.workflow, &video).map_err(|e| JobFailure::new(e.to_string()))?;
        for s in &plan.skipped {
            engine.emit(Event::Note {
                job: self.id.clone(),
                message: format!("skipped {s}"),
            });
        }
        tokio::fs::create_dir_all(self.work.join("enc"))
            .await
            .map_err(|e| JobFailure::new(format!("work dir: {e}")))?;
        let chunks = match self.chunk(&media, &video, source_frames).await? {
            Ok(chunks) => chunks,
            Err(reason) => {
                engine.emit(Event::Note {
                    job: self.id.clone(),
                    message: format!("encoding whole file: {reason}"),
                });
                record.fallback_reason = Some(reason);
                vec![ChunkInfo {
                    index: None,
                    path: self.input.to_path_buf(),
                    digest: digest.clone(),
                    frames: source_frames,
                    duration: media.duration,
                }]
            }
        };
        let specs = build_tasks(self.workflow.encode.mode, &plan.rungs, chunks.len());
        record.chunks = chunks.len() as u32;
        let task_records: Vec<TaskRecord> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let rungs = s
                    .rungs
                    .iter()
                    .map(|r| plan.rungs[*r].name.clone())
                    .collect();
                TaskRecord::pending(&self.id, i as u32, chunks[s.chunk].index, rungs)
            })
            .collect();
        let (job, planned) = (record.clone(), task_records.clone());
        engine
            .store(move |r| r.create_job(&job, &planned))
            .await
            .map_err(|e| JobFailure::new(e.to_string()))?;
        engine.emit(Event::JobStarted {
            job: self.id.clone(),
            input: self.input.display().to_string(),
            tasks: specs.len(),
            rungs: plan.rungs.iter().map(|r| r.name.clone()).collect(),
        });

        // Audio is encoded once per distinct setting, alongside the video tasks.
        let audio_plan = audio_encodes(&plan.rungs, &media, &video);
        let (encoded, audio) = tokio::try_join!(
            self.run_tasks(&specs, task_records, &chunks, &plan.rungs),
            self.encode_audio(&audio_plan),
        )?;
        let reused_chunks = encoded
            .iter()
            .filter(|(_, reused)| *reused == plan.rungs.len())
            .count();
        record.reused_chunks = reused_chunks as u32;

        tokio::fs::create_dir_all(out_dir)
            .await
            .map_err(|e| JobFailure::new(format!("{}: {e}", out_dir.display())))?;
        let staged = self
            .join_and_verify(
                &audio,
                &encoded,
                &plan.rungs,
                &media,
                &video,
                source_frames,
                out_dir,
            )
            .await;
        let staged = match staged {
            Ok(s) => s,
            Err(e) => {
                remove_temps(out_dir).await;
                return Err(e);
            }
        };
        let mut entries = Vec::new();
        for s in staged {
            if let Err(e) = rename_durably(&s.tmp, &s.dest) {
                remove_temps(out_dir).await;
                let _ = tokio::fs::remove_file(&s.tmp).await;
                return Err(JobFailure::new(format!(
                    "publishing {}: {e}",
                    s.dest.display()
                )));
            }
            entries.push(s.entry);
        }
        let steps = self
            .run_steps(&media, &video, out_dir, &mut entries)
            .await?;
        let manifest = json!({
            "job": self.id,
            "input": self.input.display().to_string(),
            "input_md5": digest.md5,
            "workflow": { "name": self.workflow.name, "hash": self.wf.content_hash },
            "source": {
                "duration": media.duration,
                "width": video.display_size().0,
                "height": video.display_size().1,
                "fps": video.fps.as_f64(),
                "frames": source_frames,
                "has_audio": media.has_audio(),
            },
            "outputs": entries,
            "steps": steps,
            "skipped": plan.skipped,
            "fallback_reason": record.fallback_reason,
            "chunks": chunks.len(),
            "reused_chunks": reused_chunks,
            "original": self.workflow.original,
            "elapsed_s": (now_ms().saturating_sub(record.created_ms)) as f64 / 1000.0,
        });
        let path = out_dir.join("manifest.json");
        let bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| JobFailure::new(e.to_string()))?;
        write_atomic(&path, &bytes)
            .map_err(|e| JobFailure::new(format!("writing {}: {e}", path.display())))?;
        // Only now, with every output and the manifest durable, may the original go.
        if let Err(e) = dispose_original(self.input, &self.workflow.original, &self.wf.base_dir) {
            self.engine.emit(Event::Note {
                job: self.id.clone(),
                message: format!("outputs are done, but the original was left in place: {e}"),
            });
        }
        let job = json!({
            "id": self.id, "input": self.input.display().to_string(),
            "out_dir": out_dir.display().to_string(), "workflow": self.workflow.name,
            "manifest": path.display().to_string(),
        });
        // Outputs are published: a failing on_complete is reported, not a failed job.
        if let Err(e) = self.script.on_complete(job, manifest).await {
            tracing::error!(job = %self.id, error = %e.message, "on_complete failed");
            self.engine.emit(Event::Note {
                job: self.id.clone(),
                message: format!("on_complete failed: {}", e.message),
            });
        }
        Ok(path)
    }

    /// Segments the video stream. Ok(Err(reason)) means: encode the whole file instead.
    async fn chunk(
        &self,
        media: &MediaInfo,
        video: &VideoStream,
        source_frames: u64,
    ) -> Result<Result<Vec<ChunkInfo>, String>, JobFailure> {
        let c = &self.workflow.chunking;
        if let Some(reason) = whole_file_reason(c, media, video) {
            return Ok(Err(reason));
        }
        let dir = self.work.join("chunks");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| JobFailure::new(format!("work dir: {e}")))?;
        let list = dir.join("chunks.csv");
        let argv = segment_args(
            self.input,
            c.segment_seconds,
            &list,
            &dir.join("chunk-%05d.mkv"),
        );
        let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
        trace_command(self.engine.trace.as_deref(), "segment", &argv);
        let run = run_ffmpeg(&self.engine.tools, &argv, &self.cancel, |_| {}).await;
        drop(slot);
        match run {
            Err(RunError::Cancelled) => {
                return Err(JobFailure::from_run("chunking", RunError::Cancelled))
            }
            Err(e) => return Ok(Err(format!("segmenting failed: {e}"))),
            Ok(_) => {}
        }
        let text = tokio::fs::read_to_string(&list).await.unwrap_or_default();
        let segments = match parse_segment_list(&text, &dir) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return Ok(Err("the segment muxer wrote no chunks".into())),
            Err(e) => return Ok(Err(format!("unreadable segment list: {e}"))),
        };
        // Hash and count every chunk at once: each count is an ffprobe start (~80 ms).
        let inspected = futures::future::join_all(segments.iter().map(|seg| async move {
            let path = seg.path.clone();
            let digest = tokio::task::spawn_blocking(move || digest_file(&path)).await;
            let frames = count_video_frames(&self.engine.tools, &seg.path).await;
            (digest, frames)
        }))
        .await;
        let mut chunks = Vec::new();
        for (i, (seg, (digest, frames))) in segments.iter().zip(inspected).enumerate() {
            let Ok(Ok(digest)) = digest else {
                return Ok(Err(format!("chunk {i} could not be hashed")));
            };
            let frames = match frames {
                Ok(n) => n,
                Err(e) => return Ok(Err(format!("chunk {i} is unreadable: {e}"))),
            };
            if frames == 0 {
                continue;
            }
            chunks.push(ChunkInfo {
                index: Some(i as u32),
                path: seg.path.clone(),
                digest,
                frames,
                duration: (seg.end_s - seg.start_s).max(0.001),
            });
        }
        let total: u64 = chunks.iter().map(|c| c.frames).sum();
        if total != source_frames {
            return Ok(Err(format!(
                "chunks hold {total} frames but the source has {source_frames}"
            )));
        }
        Ok(Ok(chunks))
    }

    /// Runs every task; on the first failure the rest are cancelled.
    /// Returns, per chunk, the encoded file of each rung and how many rungs came from the cache.
    async fn run_tasks(
        &self,
        specs: &[TaskSpec],
        records: Vec<TaskRecord>,
        chunks: &[ChunkInfo],
        rungs: &[Rung],
    ) -> Result<Vec<(Vec<PathBuf>, usize)>, JobFailure> {
        let weights: Vec<f64> = specs
            .iter()
            .map(|s| {
                chunks[s.chunk].duration
                    * s.rungs.iter().map(|r| rung_cost(&rungs[*r])).sum::<f64>()
            })
            .collect();
        let total_weight: f64 = weights.iter().sum::<f64>().max(1e-9);
        let fractions = Arc::new(Mutex::new(vec![0.0; specs.len()]));
        let milestones_sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks_cancel = self.cancel.child_token();
        let mut futures = Vec::new();
        for ((spec, record), weight) in specs.iter().zip(records).zip(weights) {
            let fractions = fractions.clone();
            let sent = milestones_sent.clone();
            let report = move |engine: &Engine, job: &str, index: usize, f: f64| {
                if let Ok(mut fr) = fractions.lock() {
                    fr[index] = f * weight;
                    let fraction = fr.iter().sum::<f64>() / total_weight;
                    engine.emit(Event::JobProgress {
                        job: job.to_string(),
                        fraction,
                    });
                    let due = MILESTONES
                        .iter()
                        .filter(|m| fraction * 100.0 >= f64::from(**m))
                        .count();
                    let before = sent.fetch_max(due, std::sync::atomic::Ordering::Relaxed);
                    for m in &MILESTONES[before.min(due)..due] {
                        let mut body = self.event_body();
                        if let serde_json::Value::Object(b) = &mut body {
                            b.insert("progress".into(), json!(m));
                        }
                        engine.notify(&self.workflow.webhooks, WebhookEvent::Progress, body);
                    }
                }
            };
            let tasks_cancel = tasks_cancel.clone();
            futures.push(async move {
                let r = run_task(
                    self,
                    spec,
                    record,
                    &chunks[spec.chunk],
                    rungs,
                    &tasks_cancel,
                    &report,
                )
                .await;
                if r.is_err() {
                    tasks_cancel.cancel();
                }
                r
            });
        }
        let results = futures::future::join_all(futures).await;
        let mut per_chunk: Vec<(Vec<Option<PathBuf>>, usize)> =
            vec![(vec![None; rungs.len()], 0); chunks.len()];
        let mut first_error: Option<JobFailure> = None;
        for (spec, result) in specs.iter().zip(results) {
            match result {
                Ok(done) => {
                    for (rung, path) in spec.rungs.iter().zip(done.paths) {
                        per_chunk[spec.chunk].0[*rung] = Some(path);
                    }
                    per_chunk[spec.chunk].1 += done.reused;
                }
                // Keep the root cause, not the cancellations it caused.
                Err(e) => match &first_error {
                    Some(f) if !f.cancelled => {}
                    _ if e.cancelled && first_error.is_some() => {}
                    _ => first_error = Some(e),
                },
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        per_chunk
            .into_iter()
            .map(|(paths, reused)| {
                let paths: Option<Vec<PathBuf>> = paths.into_iter().collect();
                paths
                    .map(|p| (p, reused))
                    .ok_or_else(|| JobFailure::new("internal error: a rung has no encoded chunk"))
            })
            .collect()
    }

    /// Encodes each distinct audio setting once, from the source.
    async fn encode_audio(
        &self,
        plan: &[AudioEncode],
    ) -> Result<Vec<(AudioEncode, PathBuf)>, JobFailure> {
        let runs = plan.iter().map(|a| async move {
            let out = self.work.join(format!(
                "audio-{}-{}k.{}",
                a.encoder,
                a.kbps,
                a.container().0
            ));
            let argv = audio_args(self.input, a, &out);
            let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
            trace_command(self.engine.trace.as_deref(), "audio", &argv);
            let run = run_ffmpeg(&self.engine.tools, &argv, &self.cancel, |_| {}).await;
            drop(slot);
            run.map_err(|e| JobFailure::from_run("encoding the audio", e))?;
            match probe(&self.engine.tools, &out).await {
                Ok(info) if info.has_audio() => Ok((a.clone(), out)),
                Ok(_) => Err(JobFailure::new("the encoded audio has no audio stream")),
                Err(e) => Err(JobFailure::new(format!(
                    "the encoded audio is unreadable: {e}"
                ))),
            }
        });
        futures::future::join_all(runs).await.into_iter().collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn join_and_verify(
        &self,
        audio: &[(AudioEncode, PathBuf)],
        encoded: &[(Vec<PathBuf>, usize)],
        rungs: &[Rung],
        media: &MediaInfo,
        video: &VideoStream,
        source_frames: u64,
        out_dir: &Path,
    ) -> Result<Vec<Staged>, JobFailure> {
        let stem = stem_of(self.input);
        let naming = &self.workflow.output.naming;
        let lead_in = audio.first().map_or(0.0, |(a, _)| a.lead_in_s);
        let first_audio = media.audio.first();
        let frame_s = 1.0 / video.fps.as_f64();
        let mut joins = Vec::new();
        for (r, rung) in rungs.iter().enumerate() {
            let paths: Vec<PathBuf> = encoded.iter().map(|(p, _)| p[r].clone()).collect();
            let final_name = output_name(naming, &stem, rung);
            let tmp = out_dir.join(temp_name(&final_name, rung.codec.container_ext()));
            let dest = out_dir.join(&final_name);
            let list = self.work.join(format!("join-{}.txt", rung.name));
            joins.push(async move {
                tokio::fs::write(&list, concat_list(&paths))
                    .await
                    .map_err(|e| JobFailure::new(format!("join list: {e}")))?;
                let audio_file = audio
                    .iter()
                    .find(|(a, _)| {
                        a.encoder == rung.codec.audio_encoder() && a.kbps == rung.audio_kbps
                    })
                    .map(|(_, p)| p.as_path());
                let argv = join_args(&list, audio_file, &tmp);
                let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
                trace_command(self.engine.trace.as_deref(), "join", &argv);
                let run = run_ffmpeg(&self.engine.tools, &argv, &self.cancel, |_| {}).await;
                drop(slot);
                run.map_err(|e| JobFailure::from_run(&format!("joining {}", rung.name), e))?;
                let source_gap =
                    first_audio.map_or(0.0, |a| (a.start_time - video.start_time).max(0.0));
                let want = Expected {
                    codec: rung.codec.probe_name(),
                    height: Some(rung.height),
                    frames: Some(source_frames),
                    duration: Some((media.duration - lead_in, frame_s)),
                    has_audio: first_audio.is_some(),
                    max_av_start_gap_s: source_gap + 1024.0 / 48000.0,
                };
                let info = verify_output(&self.engine.tools, &tmp, &want)
                    .await
                    .map_err(|e| {
                        JobFailure::new(format!("{} failed verification: {e}", rung.name))
                    })?;
                let bytes = tokio::fs::metadata(&tmp)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                let (w, h) = info.video.as_ref().map_or((0, 0), |v| (v.width, v.height));
                Ok::<Staged, JobFailure>(Staged {
                    entry: json!({
                        "profile": rung.name, "kind": "video", "path": final_name,
                        "codec": rung.codec.name(), "width": w, "height": h,
                        "duration": info.duration, "bytes": bytes, "frames": source_frames,
                    }),
                    tmp,
                    dest,
                })
            });
        }
        let mut staged = Vec::new();
        for r in futures::future::join_all(joins).await {
            staged.push(r?);
        }
        let gif = &self.workflow.gif;
        if gif.enabled {
            staged.push(self.gif(media, &stem, out_dir).await?);
        }
        Ok(staged)
    }

    async fn gif(
        &self,
        media: &MediaInfo,
        stem: &str,
        out_dir: &Path,
    ) -> Result<Staged, JobFailure> {
        let g = &self.workflow.gif;
        let start = g.start_seconds.min(media.duration * 0.2);
        let length = g.duration_seconds.min(media.duration - start).max(0.1);
        let final_name = format!("{stem}.gif");
        // Written in the work dir, so recovery can tell its ffmpeg is ours.
        let tmp = self.work.join(temp_name(&final_name, "gif"));
        let argv = gif_args(self.input, start, length, g.width, g.fps, &tmp);
        let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
        trace_command(self.engine.trace.as_deref(), "gif", &argv);
        let run = run_ffmpeg(&self.engine.tools, &argv, &self.cancel, |_| {}).await;
        drop(slot);
        run.map_err(|e| JobFailure::from_run("gif preview", e))?;
        let want = Expected {
            codec: "gif",
            height: None,
            frames: None,
            duration: None,
            has_audio: false,
            max_av_start_gap_s: 0.0,
        };
        let info = verify_output(&self.engine.tools, &tmp, &want)
            .await
            .map_err(|e| JobFailure::new(format!("gif preview failed verification: {e}")))?;
        let bytes = tokio::fs::metadata(&tmp)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let (w, h) = info.video.as_ref().map_or((0, 0), |v| (v.width, v.height));
        Ok(Staged {
            entry: json!({
                "profile": "gif", "kind": "gif", "path": final_name, "codec": "gif",
                "width": w, "height": h, "duration": length, "bytes": bytes,
            }),
            tmp,
            dest: out_dir.join(final_name),
        })
    }
}

/// The distinct audio encodes the rungs need; none when the source has no audio.
pub(super) fn audio_encodes(
    rungs: &[Rung],
    media: &MediaInfo,
    video: &VideoStream,
) -> Vec<AudioEncode> {
    let Some(first) = media.audio.first() else {
        return Vec::new();
    };
    let mut plan: Vec<AudioEncode> = Vec::new();
    for rung in rungs {
        let a = AudioEncode {
            encoder: rung.codec.audio_encoder(),
            kbps: rung.audio_kbps,
            channels: first.channels,
            // Audio starts where the first video frame does: trim any audio before it.
            lead_in_s: (video.start_time - media.start_time).max(0.0),
        };
        if !plan.contains(&a) {
            plan.push(a);
        }
    }
    plan
}

/// Tasks in scheduling order: ladder = one per chunk; per-rung = rung-major, low rungs first.
pub(super) fn build_tasks(mode: EncodeMode, rungs: &[Rung], chunks: usize) -> Vec<TaskSpec> {
    match mode {
        EncodeMode::Ladder => (0..chunks)
            .map(|c| TaskSpec {
                chunk: c,
                rungs: (0..rungs.len()).collect(),
                rank: 0,
            })
            .collect(),
        EncodeMode::PerRung => (0..rungs.len())
            .flat_map(|r| {
                (0..chunks).map(move |c| TaskSpec {
                    chunk: c,
                    rungs: vec![r],
                    rank: r as u32,
                })
            })
            .collect(),
    }
}

/// Keeps, moves or deletes the input as the workflow says. Called only after success.
fn dispose_original(input: &Path, policy: &Original, base_dir: &Path) -> std::io::Result<()> {
    match policy {
        Original::Keep => Ok(()),
        Original::Delete => {
            std::fs::remove_file(input)?;
            sync_parent(input)
        }
        Original::MoveTo(dir) => {
            let dir = base_dir.join(dir);
            std::fs::create_dir_all(&dir)?;
            let name = input
                .file_name()
                .ok_or_else(|| std::io::Error::other("the input has no file name"))?;
            let dest = dir.join(name);
            if dest.exists() {
                return Err(std::io::Error::other(format!(
                    "{} already exists",
                    dest.display()
                )));
            }
            match std::fs::rename(input, &dest) {
                Ok(()) => {}
                // Another file system: copy, make it durable, then remove the source.
                Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                    std::fs::copy(input, &dest)?;
                    std::fs::File::open(&dest)?.sync_all()?;
                    std::fs::remove_file(input)?;
                }
                Err(e) => return Err(e),
            }
            sync_parent(&dest)?;
            sync_parent(input)
        }
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::File::open(p)?.sync_all(),
        _ => Ok(()),
    }
}

/// The bytes a manifest lists as published.
fn published_bytes(manifest: &Path) -> u64 {
    std::fs::read(manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map_or(0, |m| {
            m["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["bytes"].as_u64())
                .sum()
        })
}

/// Removes leftover temp files of ours from an output directory.
async fn remove_temps(dir: &Path) {
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            if e.file_name().to_string_lossy().contains(".spool-tmp") {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
}
