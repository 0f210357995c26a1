//! The hls step: packages every published rung and, from the first rung's file, every kept
//! audio track as an alternate rendition, with no re-encode; text subtitles and a transcript
//! (from a transcribe step before it) as WebVTT renditions. Checks each playlist, writes
//! master.m3u8 with measured bandwidth, real codec strings, languages and names, and
//! publishes the tree as `<out>/hls`.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde_json::json;

use super::{
    ffmpeg, publish_dir, RungFile, StepCtx, StepDetail, StepDone, StepError, StepKind, StepPlan,
};
use crate::engine::exec::{Command, Phase};
use crate::engine::manifest::{OutputEntry, OutputKind};
use crate::engine::plan::streams::{kept, text_subtitles};
use crate::engine::plan::PlanInputs;
use crate::media::hls::{
    audio_rendition, master_playlist, measured_bitrates, package_ladder_args, parse_media_playlist,
    subtitle_args, subtitle_playlist, subtitle_rendition, transcript_rendition, with_timestamp_map,
    MediaPlaylist, Rendition, RenditionKind, SegmentType, Variant,
};
use crate::media::join::TrackTags;
use crate::media::mp4::read_video_track;
use crate::media::profiles::Codec;
use crate::media::profiles::Container;
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
        let kept = kept(&inputs.workflow.streams, inputs.media);
        let audio: Vec<(PathBuf, TrackTags)> = match rungs.is_empty() {
            true => Vec::new(),
            false => kept
                .audio
                .iter()
                .enumerate()
                .map(|(k, (_, tags))| (root.join(audio_rendition(k)), tags.clone()))
                .collect(),
        };
        let files: Vec<(String, &Path)> = rungs
            .iter()
            .map(|r| (r.name.clone(), r.path.as_path()))
            .collect();
        let mut commands = vec![Command {
            phase: Phase::Hls,
            label: "package every rung".into(),
            args: package_ladder_args(
                &files,
                audio.len(),
                self.segment_seconds,
                self.segment_type,
                &root,
            ),
        }];
        // Text subtitles from the first rung's file, each as one WebVTT rendition.
        let mut subtitles = Vec::new();
        if let Some(first) = rungs.first() {
            let container = container_of(inputs, &first.name);
            for (k, (track, tags)) in text_subtitles(container, &kept, inputs.media)
                .into_iter()
                .enumerate()
            {
                let dir = root.join(subtitle_rendition(k));
                commands.push(Command {
                    phase: Phase::Hls,
                    label: format!("subtitles {k} as WebVTT"),
                    args: subtitle_args(&first.path, track, &dir.join(SUBTITLE_FILE)),
                });
                subtitles.push((dir, tags));
            }
        }
        StepPlan {
            label: "hls".into(),
            commands,
            outputs: vec!["hls/master.m3u8".into()],
            detail: StepDetail::Hls {
                rungs: rungs
                    .iter()
                    .map(|r| (r.name.clone(), root.join(&r.name)))
                    .collect(),
                audio,
                subtitles,
            },
        }
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>> {
        Box::pin(async move {
            let StepDetail::Hls {
                rungs,
                audio,
                subtitles,
            } = &plan.detail
            else {
                return Err(StepError::Failed("internal error: not an HLS plan".into()));
            };
            let root = ctx.work.join("hls");
            let _ = tokio::fs::remove_dir_all(&root).await;
            if rungs.is_empty() {
                return Err("there are no video outputs to package".to_string().into());
            }
            let dirs = rungs.iter().map(|r| &r.1);
            for dir in dirs
                .chain(audio.iter().map(|a| &a.0))
                .chain(subtitles.iter().map(|s| &s.0))
            {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            for command in &plan.commands {
                ffmpeg(ctx, command).await.map_err(|e| match e {
                    StepError::Failed(m) => StepError::Failed(format!("{}: {m}", command.label)),
                    other => other,
                })?;
            }
            let mut packaged = Vec::new();
            for (name, dir) in rungs {
                packaged.push((name, dir, checked(ctx, self, dir)?));
            }
            let mut audio_peak = 0;
            let mut renditions = Vec::new();
            for (k, (dir, tags)) in audio.iter().enumerate() {
                let playlist = checked(ctx, self, dir)?;
                let (peak, _) = measured_bitrates(dir, &playlist)
                    .map_err(|e| format!("audio segments: {e}"))?;
                audio_peak = audio_peak.max(peak);
                renditions.push(rendition(
                    RenditionKind::Audio,
                    &audio_rendition(k),
                    tags,
                    k,
                ));
            }
            let first_frame = first_frame_s(ctx, &packaged[0].1.join("index.m3u8")).await?;
            for (k, (dir, tags)) in subtitles.iter().enumerate() {
                place_subtitles(ctx, dir, first_frame)?;
                renditions.push(rendition(
                    RenditionKind::Subtitles,
                    &subtitle_rendition(k),
                    tags,
                    k,
                ));
            }
            renditions.extend(transcripts(ctx, &root, first_frame)?);
            unique_names(&mut renditions);
            let mut variants = Vec::new();
            for (name, dir, playlist) in &packaged {
                variants.push(variant(ctx, name, dir, playlist, audio_peak)?);
            }
            let master = master_playlist(&variants, Some("mp4a.40.2"), &renditions);
            tokio::fs::write(root.join("master.m3u8"), master)
                .await
                .map_err(|e| format!("master.m3u8: {e}"))?;
            let bytes = publish_dir(&root, ctx.out_dir, "hls")
                .map_err(|e| format!("publishing hls/: {e}"))?;
            let segments: usize = packaged.iter().map(|p| p.2.segments.len()).sum();
            let data = json!({
                "master": "hls/master.m3u8", "variants": variants, "segments": segments,
                "segment_type": self.segment_type, "audio": !audio.is_empty(),
                "renditions": renditions,
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

const SUBTITLE_FILE: &str = "subtitles.vtt";

/// A rung's container, from its profile.
fn container_of(inputs: &PlanInputs<'_>, rung: &str) -> Container {
    inputs
        .workflow
        .profiles
        .iter()
        .find(|p| p.name == rung)
        .map_or(Container::Mp4, |p| {
            p.container.unwrap_or_else(|| p.codec.default_container())
        })
}

fn rendition(kind: RenditionKind, dir: &str, tags: &TrackTags, k: usize) -> Rendition {
    Rendition {
        kind,
        uri: format!("{dir}/index.m3u8"),
        language: tags.language.clone(),
        name: tags
            .title
            .clone()
            .or_else(|| tags.language.clone())
            .unwrap_or_else(|| format!("Track {}", k + 1)),
        default: tags.default,
        forced: tags.forced,
    }
}

/// NAME must be unique among a group's renditions.
fn unique_names(renditions: &mut [Rendition]) {
    for i in 0..renditions.len() {
        let (before, rest) = renditions.split_at_mut(i);
        let r = &mut rest[0];
        let base = r.name.clone();
        let mut n = 2;
        while before.iter().any(|o| o.kind == r.kind && o.name == r.name) {
            r.name = format!("{base} ({n})");
            n += 1;
        }
    }
}

/// Where the packaged video's first frame is, seconds on the segments' timeline.
async fn first_frame_s(ctx: &StepCtx<'_>, playlist: &Path) -> Result<f64, StepError> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=start_time",
        "-of",
        "csv=p=0",
    ];
    let out = ctx
        .runner
        .tools()
        .ffprobe(&args, playlist)
        .await
        .map_err(|e| format!("reading the packaged video's start: {e}"))?;
    // The stream is listed once per program too: the first line is enough.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|t| t.trim_end_matches(',').parse().ok())
        .ok_or_else(|| format!("{}: no start time", playlist.display()).into())
}

/// The WebVTT in `dir` given its timestamp map and a one-segment playlist.
fn place_subtitles(ctx: &StepCtx<'_>, dir: &Path, first_frame: f64) -> Result<(), StepError> {
    let path = dir.join(SUBTITLE_FILE);
    let vtt = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mapped =
        with_timestamp_map(&vtt, first_frame).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&path, mapped).map_err(|e| format!("{}: {e}", path.display()))?;
    let playlist = subtitle_playlist(ctx.media.duration, SUBTITLE_FILE);
    std::fs::write(dir.join("index.m3u8"), playlist)
        .map_err(|e| format!("{}: {e}", dir.display()).into())
}

/// The transcripts a transcribe step before this one published, as subtitle renditions.
fn transcripts(
    ctx: &StepCtx<'_>,
    root: &Path,
    first_frame: f64,
) -> Result<Vec<Rendition>, StepError> {
    let mut out = Vec::new();
    for e in ctx
        .published
        .iter()
        .filter(|e| e.kind == OutputKind::Subtitles)
    {
        let Some(language) = e
            .path
            .strip_suffix(".vtt")
            .and_then(|p| p.rsplit('.').next())
        else {
            continue;
        };
        let name = transcript_rendition(language);
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        std::fs::copy(ctx.out_dir.join(&e.path), dir.join(SUBTITLE_FILE))
            .map_err(|err| format!("{}: {err}", e.path))?;
        place_subtitles(ctx, &dir, first_frame)?;
        out.push(Rendition {
            kind: RenditionKind::Subtitles,
            uri: format!("{name}/index.m3u8"),
            language: Some(language.to_string()),
            name: format!("{language} (transcript)"),
            default: false,
            forced: false,
        });
    }
    Ok(out)
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
