//! `spool transcribe`: Whisper subtitles for one file, outside any workflow.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use spool::media::command::speech_audio_args;
use spool::media::run::run_ffmpeg;
use spool::media::tools::Tools;
use spool::speech::{find_model, to_srt, to_vtt, Compute, Options, Transcriber};

pub struct Args {
    pub input: PathBuf,
    pub model: Option<PathBuf>,
    pub options: Options,
    /// .vtt or .srt; the format follows the extension.
    pub out: Option<PathBuf>,
    pub json: bool,
}

pub fn compute_from(name: &str) -> Result<Compute> {
    Ok(match name {
        "int8" => Compute::Int8,
        "int8_float32" => Compute::Int8Float32,
        "float32" => Compute::Float32,
        "default" => Compute::Default,
        other => {
            anyhow::bail!("unknown compute type {other:?}: int8, int8_float32, float32 or default")
        }
    })
}

/// Exit 0 with the subtitles written; 1 when the input cannot be transcribed.
pub async fn transcribe(args: Args) -> Result<u8> {
    let model = find_model(args.model.as_deref())?;
    // The model loads while ffmpeg extracts the audio.
    let (options, model_dir) = (args.options.clone(), model.clone());
    let loading = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        Transcriber::open(&model_dir, options).map(|t| (t, started.elapsed().as_secs_f64()))
    });
    let tools = Tools::locate().await?;
    let scratch = tempfile::Builder::new()
        .prefix("spool-transcribe-")
        .tempdir()?;
    let pcm = scratch.path().join("speech.f32");
    let argv = speech_audio_args(&args.input, &pcm);
    if let Err(e) = run_ffmpeg(&tools, &argv, &CancellationToken::new(), |_| {}).await {
        eprintln!(
            "spool transcribe: {}: no audio to transcribe: {e}",
            args.input.display()
        );
        return Ok(1);
    }
    let bytes = std::fs::read(&pcm).with_context(|| pcm.display().to_string())?;
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let outcome = match loading.await? {
        Ok((t, load_s)) => {
            tokio::task::spawn_blocking(move || {
                t.transcribe(&samples, &spool::speech::Control::default())
                    .map(|r| (r, load_s))
            })
            .await?
        }
        Err(e) => Err(e),
    };
    let (transcript, load_s) = match outcome {
        Ok(t) => t,
        Err(e) => {
            eprintln!("spool transcribe: {e}");
            return Ok(1);
        }
    };
    if let Some(out) = &args.out {
        let text = match out.extension().and_then(|e| e.to_str()) {
            Some("srt") => to_srt(&transcript.cues),
            _ => to_vtt(&transcript.cues),
        };
        std::fs::write(out, text).with_context(|| out.display().to_string())?;
    }
    if args.json {
        let report = json!({
            "input": args.input, "model": model, "language": transcript.language,
            "text": transcript.text, "cues": transcript.cues,
            "audio_seconds": transcript.audio_seconds, "load_s": load_s,
            "transcribe_s": transcript.elapsed_s,
            "realtime_factor": transcript.audio_seconds / transcript.elapsed_s.max(1e-6),
            "windows": transcript.windows, "fallbacks": transcript.fallbacks,
            "silent_windows": transcript.silent_windows,
            "silence_skipped_s": transcript.silence_skipped_s, "dropped_cues": transcript.dropped_cues,
        "music": transcript.music,
        });
        println!("{report}");
    } else if args.out.is_none() {
        print!("{}", to_vtt(&transcript.cues));
    }
    Ok(0)
}
