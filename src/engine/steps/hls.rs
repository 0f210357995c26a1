//! The hls step: packages every published rung (and the first rung's audio as the shared
//! rendition) with no re-encode, checks each playlist, writes master.m3u8 with measured
//! bandwidth and real codec strings, and publishes the tree as `<out>/hls`.

use std::path::Path;

use futures::future::BoxFuture;
use serde_json::json;

use super::{
    ffmpeg, publish_dir, RungFile, StepCtx, StepDetail, StepDone, StepError, StepKind, StepPlan,
};
use crate::engine::exec::{Command, Phase};
use crate::engine::manifest::{OutputEntry, OutputKind};
use crate::engine::plan::PlanInputs;
use crate::media::hls::{
    master_playlist, measured_bitrates, package_ladder_args, parse_media_playlist, AudioRendition,
    MediaPlaylist, SegmentType, Variant, AUDIO_RENDITION,
};
use crate::media::mp4::read_video_track;
use crate::media::profiles::Codec;
use crate::workflow::schema::HlsStep;

impl StepKind for HlsStep {
    fn validate(&self, inputs: &PlanInputs<'_>) -> Result<(), String> {
        match inputs
            .workflow
            .profiles
            .iter()
            .find(|p| !matches!(p.codec, Codec::H264 | Codec::H265))
        {
            Some(p) => Err(format!(
                "profile {} is {}; HLS here packages h264 and h265 rungs only",
                p.name,
                p.codec.name()
            )),
            None => Ok(()),
        }
    }

    fn plan(&self, inputs: &PlanInputs<'_>, rungs: &[RungFile]) -> StepPlan {
        let root = inputs.work.join("hls");
        let audio = inputs.media.has_audio() && !rungs.is_empty();
        let files: Vec<(String, &Path)> = rungs
            .iter()
            .map(|r| (r.name.clone(), r.path.as_path()))
            .collect();
        let command = Command {
            phase: Phase::Hls,
            label: "package every rung".into(),
            args: package_ladder_args(
                &files,
                audio,
                self.segment_seconds,
                self.segment_type,
                &root,
            ),
        };
        StepPlan {
            label: "hls".into(),
            commands: vec![command],
            outputs: vec!["hls/master.m3u8".into()],
            detail: StepDetail::Hls {
                rungs: rungs
                    .iter()
                    .map(|r| (r.name.clone(), root.join(&r.name)))
                    .collect(),
                audio: audio.then(|| root.join(AUDIO_RENDITION)),
            },
        }
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>> {
        Box::pin(async move {
            let StepDetail::Hls { rungs, audio } = &plan.detail else {
                return Err(StepError::Failed("internal error: not an HLS plan".into()));
            };
            let root = ctx.work.join("hls");
            let _ = tokio::fs::remove_dir_all(&root).await;
            let Some(command) = plan.commands.first().filter(|_| !rungs.is_empty()) else {
                return Err("there are no video outputs to package".to_string().into());
            };
            for dir in rungs.iter().map(|r| &r.1).chain(audio) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            ffmpeg(ctx, command).await.map_err(|e| match e {
                StepError::Failed(m) => StepError::Failed(format!("packaging: {m}")),
                other => other,
            })?;
            let mut packaged = Vec::new();
            for (name, dir) in rungs {
                packaged.push((name, dir, checked(ctx, self, dir)?));
            }
            let audio = match audio {
                Some(dir) => {
                    let playlist = checked(ctx, self, dir)?;
                    let (peak, _) = measured_bitrates(dir, &playlist)
                        .map_err(|e| format!("audio segments: {e}"))?;
                    Some(peak)
                }
                None => None,
            };
            let mut variants = Vec::new();
            for (name, dir, playlist) in &packaged {
                variants.push(variant(ctx, name, dir, playlist, audio.unwrap_or(0))?);
            }
            let rendition = audio.map(|_| AudioRendition {
                uri: "audio/index.m3u8".into(),
                codecs: "mp4a.40.2".into(),
            });
            let master = master_playlist(&variants, rendition.as_ref());
            tokio::fs::write(root.join("master.m3u8"), master)
                .await
                .map_err(|e| format!("master.m3u8: {e}"))?;
            let bytes = publish_dir(&root, ctx.out_dir, "hls")
                .map_err(|e| format!("publishing hls/: {e}"))?;
            let segments: usize = packaged.iter().map(|p| p.2.segments.len()).sum();
            let data = json!({
                "master": "hls/master.m3u8", "variants": variants, "segments": segments,
                "segment_type": self.segment_type, "audio": rendition.is_some(),
            });
            Ok(StepDone {
                outputs: vec![OutputEntry::file(
                    "hls",
                    OutputKind::Hls,
                    "hls/master.m3u8".into(),
                    bytes,
                )],
                data,
            })
        })
    }
}

/// A rung's master-playlist entry: measured bandwidth, its published size and codec.
fn variant(
    ctx: &StepCtx<'_>,
    name: &str,
    dir: &Path,
    playlist: &MediaPlaylist,
    audio_peak: u64,
) -> Result<Variant, StepError> {
    let (peak, average) =
        measured_bitrates(dir, playlist).map_err(|e| format!("{name} segments: {e}"))?;
    let entry = ctx
        .published
        .iter()
        .find(|e| e.kind == OutputKind::Video && e.profile == name)
        .ok_or_else(|| format!("{name}: not among the published outputs"))?;
    let codecs = read_video_track(&ctx.out_dir.join(&entry.path))
        .ok()
        .flatten()
        .and_then(|t| t.codec_string)
        .ok_or_else(|| format!("{name}: no H.264/H.265 codec string"))?;
    Ok(Variant {
        uri: format!("{name}/index.m3u8"),
        bandwidth: peak + audio_peak,
        average_bandwidth: average + audio_peak,
        width: entry.width.unwrap_or(0),
        height: entry.height.unwrap_or(0),
        frame_rate: ctx.video.fps.as_f64(),
        codecs,
    })
}

/// One packaged playlist, checked: segments present and non-empty, the end marked, the
/// whole source covered, an init segment for fMP4.
fn checked(ctx: &StepCtx<'_>, step: &HlsStep, dir: &Path) -> Result<MediaPlaylist, StepError> {
    let what = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(dir.join("index.m3u8"))
        .map_err(|e| format!("{what}/index.m3u8: {e}"))?;
    let playlist = parse_media_playlist(&text).map_err(|e| format!("{what}/index.m3u8: {e}"))?;
    let missing = playlist
        .segments
        .iter()
        .map(|s| &s.1)
        .chain(&playlist.init)
        .find(|uri| std::fs::metadata(dir.join(uri)).map_or(true, |m| m.len() == 0));
    if let Some(uri) = missing {
        return Err(format!("{what}: {uri} is missing or empty").into());
    }
    let duration = ctx.media.duration;
    if !playlist.ended || (playlist.duration() - duration).abs() > 0.1 {
        return Err(format!(
            "{what}: the playlist covers {:.3}s of a {duration:.3}s source",
            playlist.duration()
        )
        .into());
    }
    if step.segment_type == SegmentType::Fmp4 && playlist.init.is_none() {
        return Err(format!("{what}: no init segment").into());
    }
    Ok(playlist)
}
