//! The transcribe step: Whisper subtitles (<stem>.<lang>.vtt and .srt) in-process, and the
//! transcript in the manifest.

use futures::future::BoxFuture;

use super::{RungFile, StepCtx, StepDetail, StepDone, StepError, StepKind, StepPlan};
use crate::engine::exec::{Command, Phase};
use crate::engine::plan::PlanInputs;
use crate::media::command::speech_audio_args;
use crate::workflow::schema::TranscribeStep;

impl StepKind for TranscribeStep {
    fn validate(&self, inputs: &PlanInputs<'_>) -> Result<(), String> {
        model_dir(self, inputs.base_dir).map(|_| ())
    }

    fn plan(&self, inputs: &PlanInputs<'_>, _rungs: &[RungFile]) -> StepPlan {
        let dir = inputs.work.join("transcribe");
        let (commands, pcm) = match inputs.media.has_audio() {
            true => {
                let pcm = dir.join("speech.f32");
                let command = Command {
                    phase: Phase::Transcribe,
                    label: "16 kHz mono audio for Whisper".into(),
                    args: speech_audio_args(inputs.input, &pcm),
                };
                (vec![command], Some(pcm))
            }
            false => (Vec::new(), None),
        };
        StepPlan {
            label: "transcribe".into(),
            commands,
            // The language (part of the names) is known once Whisper has heard it.
            outputs: Vec::new(),
            detail: StepDetail::Transcribe { dir, pcm },
        }
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>> {
        Box::pin(run(self, ctx, plan))
    }
}

#[cfg(feature = "whisper")]
fn model_dir(step: &TranscribeStep, base: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let model = step.model.as_ref().map(|m| base.join(m));
    crate::speech::find_model(model.as_deref()).map_err(|e| e.to_string())
}

#[cfg(not(feature = "whisper"))]
fn model_dir(
    _step: &TranscribeStep,
    _base: &std::path::Path,
) -> Result<std::path::PathBuf, String> {
    Err("this spool was built without the whisper feature".into())
}

#[cfg(feature = "whisper")]
async fn run(
    step: &TranscribeStep,
    ctx: &StepCtx<'_>,
    plan: &StepPlan,
) -> Result<StepDone, StepError> {
    use serde_json::json;

    use super::{ffmpeg, publish_step_file};
    use crate::engine::manifest::{OutputEntry, OutputKind};
    use crate::speech::{to_srt, to_vtt, Compute, Options};
    use crate::workflow::schema::ComputeType;

    let (StepDetail::Transcribe { dir, pcm }, commands) = (&plan.detail, &plan.commands) else {
        return Err(StepError::Failed(
            "internal error: not a transcribe plan".into(),
        ));
    };
    let (Some(pcm), Some(speech)) = (pcm, commands.first()) else {
        return Ok(StepDone {
            outputs: Vec::new(),
            data: json!({ "skipped": "the source has no audio" }),
        });
    };
    let model = model_dir(step, ctx.base_dir)?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    ffmpeg(ctx, speech).await?;
    // The audio's identity, hashed as it streams: the samples themselves are read by the
    // Whisper child, not held here.
    let file = pcm.clone();
    let audio = tokio::task::spawn_blocking(move || crate::media::hash::sha256_file(&file))
        .await
        .map_err(|e| format!("internal error hashing the audio: {e}"))?
        .map_err(|e| format!("{}: {e}", pcm.display()))?;
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
        word_timestamps: step.word_timestamps,
    };
    let key = kept::key(&audio, &model, &options)?;
    let (transcript, cached) = match kept::find(ctx, &key).await? {
        Some(t) => (t, true),
        None => {
            let program = crate::speech::child::detect_program().ok_or_else(|| {
                StepError::Failed(
                    "Whisper runs in a child process, and this program is not spool: set \
                     SPOOL_WHISPER_RUNNER to the spool program"
                        .into(),
                )
            })?;
            let t = whisper_child(ctx, &program, &model, options, pcm, dir).await?;
            kept::keep(ctx, &key, &t).await?;
            (t, false)
        }
    };
    let lang = transcript.language.clone();
    let vtt = format!("{}.{lang}.vtt", ctx.stem);
    let srt = format!("{}.{lang}.srt", ctx.stem);
    for (name, text) in [
        (&vtt, to_vtt(&transcript.cues)),
        (&srt, to_srt(&transcript.cues)),
    ] {
        tokio::fs::write(dir.join(name), text)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let _ = tokio::fs::remove_file(pcm).await;
    let mut outputs = Vec::new();
    for name in [&vtt, &srt] {
        let (name, bytes) = publish_step_file(dir, ctx.out_dir, name)?;
        outputs.push(OutputEntry::file(
            "transcribe",
            OutputKind::Subtitles,
            name,
            bytes,
        ));
    }
    let realtime = transcript.audio_seconds / transcript.elapsed_s.max(1e-6);
    let data = json!({
        "language": lang, "text": transcript.text, "cues": transcript.cues,
        "vtt": vtt, "srt": srt, "model": model.display().to_string(),
        "audio_seconds": transcript.audio_seconds, "elapsed_s": transcript.elapsed_s,
        "realtime_factor": realtime, "translate": step.translate,
        "windows": transcript.windows, "fallbacks": transcript.fallbacks,
        "silent_windows": transcript.silent_windows,
        "silence_skipped_s": transcript.silence_skipped_s, "dropped_cues": transcript.dropped_cues,
        "music": transcript.music,
        "cached": cached,
    });
    Ok(StepDone { outputs, data })
}

/// Whisper in a child process (`spool __whisper`, see speech::child), run like an ffmpeg: a
/// slot, its process group paused by the schedule's SIGSTOP and killed on cancel, at once.
#[cfg(feature = "whisper")]
async fn whisper_child(
    ctx: &StepCtx<'_>,
    program: &std::path::Path,
    model: &std::path::Path,
    options: crate::speech::Options,
    pcm: &std::path::Path,
    dir: &std::path::Path,
) -> Result<crate::speech::Transcript, StepError> {
    use crate::engine::exec::HelperError;
    use crate::speech::child;
    let out = dir.join("transcript.json");
    let argv = child::command_line(program, model, pcm, &out, &options)
        .map_err(|e| StepError::Failed(e.to_string()))?;
    let total = tokio::fs::metadata(pcm)
        .await
        .map_or(0, |m| m.len() as usize / 4);
    let started = std::time::Instant::now();
    let (events, job) = (ctx.events.clone(), ctx.job.clone());
    let on_line = |line: &str| {
        let Some(at) = child::parse_progress(line) else {
            return;
        };
        let seconds = at as f64 / crate::speech::SAMPLE_RATE as f64;
        let _ = events.send(crate::engine::Event::TaskProgress {
            job: job.clone(),
            task: PROGRESS_LABEL.into(),
            fraction: at as f64 / total.max(1) as f64,
            fps: None,
            speed: Some(seconds / started.elapsed().as_secs_f64().max(1e-3)),
        });
    };
    match ctx
        .runner
        .run_helper(&argv, ctx.placement, ctx.cancel, on_line)
        .await
    {
        Ok(()) => {}
        Err(HelperError::Cancelled) => return Err(StepError::Cancelled),
        Err(e) => return Err(format!("Whisper: {e}").into()),
    }
    let text = tokio::fs::read(&out)
        .await
        .map_err(|e| format!("Whisper's transcript {}: {e}", out.display()))?;
    let _ = tokio::fs::remove_file(&out).await;
    let _ = ctx.events.send(crate::engine::Event::TaskFinished {
        job: ctx.job.clone(),
        task: PROGRESS_LABEL.into(),
        reused: 0,
    });
    serde_json::from_slice(&text)
        .map_err(|e| format!("Whisper's transcript {}: {e}", out.display()).into())
}

/// The task name transcription shows under in progress displays.
#[cfg(feature = "whisper")]
const PROGRESS_LABEL: &str = "transcribe";

/// Transcripts kept in the store by (the audio as Whisper hears it + the model's content +
/// the decoding settings): the same speech is never transcribed twice, whatever file or
/// container it comes in.
#[cfg(feature = "whisper")]
mod kept {
    use super::{StepCtx, StepError};
    use crate::speech::{model_fingerprint, Options, Transcript, DECODER_VERSION};
    use crate::store::{now_ms, ResultRecord, StoreError};

    const KIND: &str = "transcript";

    /// `audio`: the SHA-256 of the 16 kHz samples.
    pub(super) fn key(
        audio: &str,
        model: &std::path::Path,
        o: &Options,
    ) -> Result<String, StepError> {
        use sha2::{Digest, Sha256};
        let model = model_fingerprint(model).map_err(|e| e.to_string())?;
        // Threads are left out: they change the speed, not the words.
        let print = serde_json::json!({
            "kind": KIND, "decoder": DECODER_VERSION, "audio": audio, "model": model,
            "language": o.language, "translate": o.translate, "beam": o.beam_size,
            "compute": o.compute, "words": o.word_timestamps,
        });
        Ok(hex::encode(Sha256::digest(print.to_string().as_bytes())))
    }

    async fn blocking<T: Send + 'static>(
        ctx: &StepCtx<'_>,
        call: impl FnOnce(&dyn crate::store::Repo) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StepError> {
        let repo = ctx.repo.clone();
        match tokio::task::spawn_blocking(move || call(repo.as_ref())).await {
            Ok(r) => r.map_err(|e| StepError::Failed(format!("store: {e}"))),
            Err(e) => Err(StepError::Failed(format!("store: {e}"))),
        }
    }

    pub(super) async fn find(
        ctx: &StepCtx<'_>,
        key: &str,
    ) -> Result<Option<Transcript>, StepError> {
        if ctx.force {
            return Ok(None);
        }
        let k = key.to_string();
        let Some(record) = blocking(ctx, move |r| r.result_get(&k)).await? else {
            return Ok(None);
        };
        // A record this spool cannot read is made again, not trusted.
        Ok(serde_json::from_value(record.body).ok())
    }

    pub(super) async fn keep(
        ctx: &StepCtx<'_>,
        key: &str,
        t: &Transcript,
    ) -> Result<(), StepError> {
        let record = ResultRecord {
            key: key.to_string(),
            kind: KIND.into(),
            body: serde_json::to_value(t).map_err(|e| e.to_string())?,
            created_ms: now_ms(),
        };
        blocking(ctx, move |r| r.result_put(&record)).await
    }
}

#[cfg(not(feature = "whisper"))]
async fn run(
    _step: &TranscribeStep,
    _ctx: &StepCtx<'_>,
    _plan: &StepPlan,
) -> Result<StepDone, StepError> {
    Err(StepError::Failed(
        "this spool was built without the whisper feature".into(),
    ))
}
