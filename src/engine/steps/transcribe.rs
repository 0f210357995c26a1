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
    use crate::speech::{to_srt, to_vtt, Compute, Options, SpeechError, Transcriber};
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
    let bytes = tokio::fs::read(pcm)
        .await
        .map_err(|e| format!("{}: {e}", pcm.display()))?;
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
    let Some(slot) = ctx.runner.slot(ctx.placement, ctx.cancel).await else {
        return Err(StepError::Cancelled);
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, cancel) = (stop.clone(), ctx.cancel.clone());
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
        Ok(Err(SpeechError::Cancelled)) => return Err(StepError::Cancelled),
        Ok(Err(e)) => return Err(e.to_string().into()),
        Err(e) => return Err(format!("internal error in Whisper: {e}").into()),
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
    });
    Ok(StepDone { outputs, data })
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
