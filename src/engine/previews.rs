//! The thumbnails step (poster, sprite sheets, sprites.vtt) and the transcribe step
//! (Whisper subtitles). Both make their files in the work directory and return them for
//! publishing with the manifest data.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::job::{JobCtx, JobFailure};
use super::queue::trace_command;
use crate::media::probe::{probe, MediaInfo, VideoStream};
use crate::media::run::run_ffmpeg;
use crate::media::thumbs::{
    frame_stats, pick_poster, poster_args, poster_candidates, sheet_name, sprite_args, sprite_vtt,
    thumb_height, SpriteLayout,
};
use crate::workflow::schema::{ThumbnailsStep, TranscribeStep};

/// A file a step made in the work directory: its name there and its manifest kind.
pub(super) struct Made {
    pub name: String,
    pub kind: &'static str,
}

/// The sheets' layout for a thumbnails step: thumbnails keep the display aspect ratio.
pub(super) fn sprite_layout(step: &ThumbnailsStep, video: &VideoStream) -> SpriteLayout {
    SpriteLayout {
        interval: step.interval_seconds,
        thumb_w: step.thumb_width,
        thumb_h: thumb_height(step.thumb_width, video.display_size()),
        columns: step.columns,
        rows: step.rows,
    }
}

impl JobCtx<'_> {
    async fn ffmpeg(&self, phase: &str, argv: &[std::ffi::OsString]) -> Result<(), JobFailure> {
        let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
        trace_command(self.engine.trace.as_deref(), phase, argv);
        let run = run_ffmpeg(&self.engine.tools, argv, &self.cancel, |_| {}).await;
        drop(slot);
        run.map(|_| ()).map_err(|e| JobFailure::from_run(phase, e))
    }

    /// An image that ffprobe reads, with its size.
    async fn image_size(&self, path: &Path) -> Result<(u32, u32), JobFailure> {
        let info = probe(&self.engine.tools, path)
            .await
            .map_err(|e| JobFailure::new(format!("{} is unreadable: {e}", path.display())))?;
        info.video
            .map(|v| (v.width, v.height))
            .ok_or_else(|| JobFailure::new(format!("{} holds no image", path.display())))
    }

    pub(super) async fn thumbnails(
        &self,
        step: &ThumbnailsStep,
        media: &MediaInfo,
        video: &VideoStream,
    ) -> Result<(Vec<Made>, Value), JobFailure> {
        let dir = self.work.join("thumbs");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| JobFailure::new(format!("{}: {e}", dir.display())))?;
        let mut stats = Vec::new();
        for t in poster_candidates(media.duration) {
            stats.extend(frame_stats(&self.engine.tools, self.input, t).await);
        }
        let at = pick_poster(&stats).unwrap_or(0.0);
        let poster = dir.join("poster.jpg");
        self.ffmpeg(
            "poster",
            &poster_args(self.input, at, step.poster_width, &poster),
        )
        .await?;
        let poster_size = self.image_size(&poster).await?;

        let layout = sprite_layout(step, video);
        self.ffmpeg("sprites", &sprite_args(self.input, &layout, &dir))
            .await?;
        let count = layout.count(media.duration);
        let sheets = count.div_ceil(layout.per_sheet());
        let want = (
            layout.columns * layout.thumb_w,
            layout.rows * layout.thumb_h,
        );
        let mut made = vec![Made {
            name: "poster.jpg".into(),
            kind: "poster",
        }];
        for i in 0..sheets {
            let name = sheet_name(i);
            let size = self.image_size(&dir.join(&name)).await?;
            if size != want {
                return Err(JobFailure::new(format!(
                    "{name} is {}x{}, expected {}x{}",
                    size.0, size.1, want.0, want.1
                )));
            }
            made.push(Made {
                name,
                kind: "sprite",
            });
        }
        if dir.join(sheet_name(sheets)).exists() {
            return Err(JobFailure::new(format!(
                "ffmpeg made more sprite sheets than the {count} thumbnails need"
            )));
        }
        tokio::fs::write(dir.join("sprites.vtt"), sprite_vtt(&layout, media.duration))
            .await
            .map_err(|e| JobFailure::new(format!("sprites.vtt: {e}")))?;
        made.push(Made {
            name: "sprites.vtt".into(),
            kind: "thumbnails_vtt",
        });
        let data = json!({
            "poster": { "path": "poster.jpg", "time": at, "width": poster_size.0, "height": poster_size.1 },
            "sprites": { "vtt": "sprites.vtt", "sheets": sheets, "thumbnails": count,
                         "interval": layout.interval, "width": layout.thumb_w, "height": layout.thumb_h,
                         "columns": layout.columns, "rows": layout.rows },
        });
        Ok((made, data))
    }

    /// Where a step's files are, for publishing.
    pub(super) fn step_dir(&self, step: &str) -> PathBuf {
        self.work.join(step)
    }

    #[cfg(feature = "whisper")]
    pub(super) async fn transcribe(
        &self,
        step: &TranscribeStep,
        media: &MediaInfo,
        stem: &str,
    ) -> Result<(Vec<Made>, Value), JobFailure> {
        use crate::speech::{find_model, to_srt, to_vtt, Compute, Options, Transcriber};
        use crate::workflow::schema::ComputeType;

        if !media.has_audio() {
            return Ok((Vec::new(), json!({ "skipped": "the source has no audio" })));
        }
        let model = step.model.as_ref().map(|m| self.wf.base_dir.join(m));
        let model = find_model(model.as_deref()).map_err(|e| JobFailure::new(e.to_string()))?;
        let dir = self.step_dir("transcribe");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| JobFailure::new(format!("{}: {e}", dir.display())))?;
        let pcm = dir.join("speech.f32");
        let argv = crate::media::command::speech_audio_args(self.input, &pcm);
        self.ffmpeg("speech audio", &argv).await?;
        let bytes = tokio::fs::read(&pcm)
            .await
            .map_err(|e| JobFailure::new(format!("{}: {e}", pcm.display())))?;
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let options = Options {
            language: step.language.clone(),
            translate: step.translate,
            beam_size: step.beam_size as usize,
            compute: match step.compute_type {
                ComputeType::Int8 => Compute::Int8,
                ComputeType::Int8Float32 => Compute::Int8Float32,
                ComputeType::Float32 => Compute::Float32,
                ComputeType::Default => Compute::Default,
            },
            threads: step.threads as usize,
        };
        // Whisper takes the CPU: it holds a slot like an ffmpeg would.
        let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, cancel) = (stop.clone(), self.cancel.clone());
        let watcher = tokio::spawn(async move {
            cancel.cancelled().await;
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let model_dir = model.clone();
        let result = tokio::task::spawn_blocking(move || {
            Transcriber::open(&model_dir, options)?.transcribe(&samples, &stop)
        })
        .await;
        watcher.abort();
        drop(slot);
        let transcript = match result {
            Ok(Ok(t)) => t,
            Ok(Err(crate::speech::SpeechError::Cancelled)) => {
                return Err(JobFailure::from_run(
                    "transcribe",
                    crate::media::run::RunError::Cancelled,
                ))
            }
            Ok(Err(e)) => return Err(JobFailure::new(e.to_string())),
            Err(e) => return Err(JobFailure::new(format!("internal error in Whisper: {e}"))),
        };
        let lang = transcript.language.clone();
        let vtt = format!("{stem}.{lang}.vtt");
        let srt = format!("{stem}.{lang}.srt");
        for (name, text) in [
            (&vtt, to_vtt(&transcript.cues)),
            (&srt, to_srt(&transcript.cues)),
        ] {
            tokio::fs::write(dir.join(name), text)
                .await
                .map_err(|e| JobFailure::new(format!("{name}: {e}")))?;
        }
        let _ = tokio::fs::remove_file(&pcm).await;
        let realtime = transcript.audio_seconds / transcript.elapsed_s.max(1e-6);
        let data = json!({
            "language": lang, "text": transcript.text, "cues": transcript.cues,
            "vtt": vtt, "srt": srt, "model": model.display().to_string(),
            "audio_seconds": transcript.audio_seconds, "elapsed_s": transcript.elapsed_s,
            "realtime_factor": realtime, "translate": step.translate,
        });
        let made = vec![
            Made {
                name: vtt,
                kind: "subtitles",
            },
            Made {
                name: srt,
                kind: "subtitles",
            },
        ];
        Ok((made, data))
    }

    #[cfg(not(feature = "whisper"))]
    pub(super) async fn transcribe(
        &self,
        _step: &TranscribeStep,
        _media: &MediaInfo,
        _stem: &str,
    ) -> Result<(Vec<Made>, Value), JobFailure> {
        Err(JobFailure::new(
            "this spool was built without the whisper feature",
        ))
    }
}
