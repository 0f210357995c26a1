//! The workflow's extra steps, run once the ladder is verified and published: Lua steps
//! and HLS packaging. Each step's files are built in the work directory, checked, and then
//! published into the output directory; the manifest (written after) lists them.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::job::{stem_of, JobCtx, JobFailure};
use super::previews::Made;
use super::publish::{fsync_file, rename_durably, temp_name};
use super::queue::trace_command;
use crate::media::hls::{
    master_playlist, measured_bitrates, package_args, parse_media_playlist, AudioRendition,
    MediaPlaylist, SegmentType, Track, Variant,
};
use crate::media::mp4::read_video_track;
use crate::media::probe::{MediaInfo, VideoStream};
use crate::media::run::run_ffmpeg;
use crate::workflow::schema::HlsStep;
use crate::workflow::Step;

impl JobCtx<'_> {
    /// Runs the steps in order; returns each step's data for the manifest, by name.
    pub(super) async fn run_steps(
        &self,
        media: &MediaInfo,
        video: &VideoStream,
        out_dir: &Path,
        entries: &mut Vec<Value>,
    ) -> Result<Value, JobFailure> {
        let mut results = serde_json::Map::new();
        for step in &self.workflow.steps {
            let fail = |e: String| JobFailure::new(format!("step {}: {e}", step.label()));
            let data = match step {
                Step::Lua(lua) => {
                    let context = json!({
                        "job": self.id, "input": self.input.display().to_string(),
                        "work_dir": self.work.display().to_string(),
                        "out_dir": out_dir.display().to_string(),
                        "media": media, "outputs": entries,
                    });
                    let reply = self
                        .script
                        .step(&lua.function, context)
                        .await
                        .map_err(|e| fail(e.message))?;
                    for o in reply.outputs {
                        let (name, bytes) =
                            publish_step_file(&self.work, out_dir, &o.path).map_err(&fail)?;
                        entries.push(json!({
                            "profile": lua.label(), "kind": o.kind, "path": name, "bytes": bytes,
                        }));
                    }
                    reply.data.unwrap_or(Value::Null)
                }
                Step::Hls(hls) => {
                    let (entry, data) = self
                        .hls(hls, media, video, out_dir, entries)
                        .await
                        .map_err(|e| fail(e.message))?;
                    entries.push(entry);
                    data
                }
                Step::Thumbnails(t) => {
                    let (made, data) = self
                        .thumbnails(t, media, video)
                        .await
                        .map_err(|e| fail(e.message))?;
                    self.publish_made(&self.step_dir("thumbs"), out_dir, step, made, entries)
                        .map_err(&fail)?;
                    data
                }
                Step::Transcribe(t) => {
                    let (made, data) = self
                        .transcribe(t, media, &stem_of(self.input))
                        .await
                        .map_err(|e| fail(e.message))?;
                    self.publish_made(&self.step_dir("transcribe"), out_dir, step, made, entries)
                        .map_err(&fail)?;
                    data
                }
            };
            results.insert(step.label().to_string(), data);
        }
        Ok(Value::Object(results))
    }

    fn publish_made(
        &self,
        from: &Path,
        out_dir: &Path,
        step: &Step,
        made: Vec<Made>,
        entries: &mut Vec<Value>,
    ) -> Result<(), String> {
        for m in made {
            let (name, bytes) = publish_step_file(from, out_dir, &m.name)?;
            entries.push(json!({
                "profile": step.label(), "kind": m.kind, "path": name, "bytes": bytes,
            }));
        }
        Ok(())
    }

    /// Packages every published video rung, and the first rung's audio as the shared
    /// rendition, then writes master.m3u8 and publishes the tree as `<out>/hls`.
    async fn hls(
        &self,
        step: &HlsStep,
        media: &MediaInfo,
        video: &VideoStream,
        out_dir: &Path,
        entries: &[Value],
    ) -> Result<(Value, Value), JobFailure> {
        let root = self.work.join("hls");
        let _ = tokio::fs::remove_dir_all(&root).await;
        let rungs: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "video").collect();
        let Some(first) = rungs.first() else {
            return Err(JobFailure::new("there are no video outputs to package"));
        };
        let source = |e: &Value| out_dir.join(e["path"].as_str().unwrap_or_default());
        let mut packaged = Vec::new();
        for rung in &rungs {
            let name = rung["profile"].as_str().unwrap_or("video").to_string();
            let dir = root.join(&name);
            let playlist = self
                .package(&source(rung), Track::Video, step, &dir, media.duration)
                .await?;
            packaged.push((name, dir, playlist, (*rung).clone()));
        }
        let audio = match media.has_audio() {
            true => {
                let dir = root.join("audio");
                let playlist = self
                    .package(&source(first), Track::Audio, step, &dir, media.duration)
                    .await?;
                let (peak, _) = measured_bitrates(&dir, &playlist)
                    .map_err(|e| JobFailure::new(format!("audio segments: {e}")))?;
                Some((playlist, peak))
            }
            false => None,
        };
        let mut variants = Vec::new();
        for (name, dir, playlist, entry) in &packaged {
            let (peak, average) = measured_bitrates(dir, playlist)
                .map_err(|e| JobFailure::new(format!("{name} segments: {e}")))?;
            let track = read_video_track(&source(entry))
                .ok()
                .flatten()
                .and_then(|t| t.codec_string)
                .ok_or_else(|| JobFailure::new(format!("{name}: no H.264/H.265 codec string")))?;
            let audio_peak = audio.as_ref().map_or(0, |a| a.1);
            variants.push(Variant {
                uri: format!("{name}/index.m3u8"),
                bandwidth: peak + audio_peak,
                average_bandwidth: average + audio_peak,
                width: entry["width"].as_u64().unwrap_or(0) as u32,
                height: entry["height"].as_u64().unwrap_or(0) as u32,
                frame_rate: video.fps.as_f64(),
                codecs: track,
            });
        }
        let rendition = audio.as_ref().map(|_| AudioRendition {
            uri: "audio/index.m3u8".into(),
            codecs: "mp4a.40.2".into(),
        });
        let master = master_playlist(&variants, rendition.as_ref());
        tokio::fs::write(root.join("master.m3u8"), master)
            .await
            .map_err(|e| JobFailure::new(format!("master.m3u8: {e}")))?;
        let bytes = publish_dir(&root, out_dir, "hls")
            .map_err(|e| JobFailure::new(format!("publishing hls/: {e}")))?;
        let segments: usize = packaged.iter().map(|p| p.2.segments.len()).sum();
        let entry = json!({
            "profile": "hls", "kind": "hls", "path": "hls/master.m3u8", "bytes": bytes,
        });
        let data = json!({
            "master": "hls/master.m3u8", "variants": variants, "segments": segments,
            "segment_type": step.segment_type, "audio": rendition.is_some(),
        });
        Ok((entry, data))
    }

    /// Copies one track into `dir` as an HLS media playlist and checks what came out.
    async fn package(
        &self,
        input: &Path,
        track: Track,
        step: &HlsStep,
        dir: &Path,
        duration: f64,
    ) -> Result<MediaPlaylist, JobFailure> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| JobFailure::new(format!("{}: {e}", dir.display())))?;
        let argv = package_args(input, track, step.segment_seconds, step.segment_type, dir);
        let slot = self.engine.slots.acquire((self.seq, 0, 0)).await;
        trace_command(self.engine.trace.as_deref(), "hls", &argv);
        let run = run_ffmpeg(&self.engine.tools, &argv, &self.cancel, |_| {}).await;
        drop(slot);
        let what = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        run.map_err(|e| JobFailure::from_run(&format!("packaging {what}"), e))?;
        let text = tokio::fs::read_to_string(dir.join("index.m3u8"))
            .await
            .map_err(|e| JobFailure::new(format!("{what}/index.m3u8: {e}")))?;
        let playlist = parse_media_playlist(&text)
            .map_err(|e| JobFailure::new(format!("{what}/index.m3u8: {e}")))?;
        let missing = playlist
            .segments
            .iter()
            .map(|s| &s.1)
            .chain(&playlist.init)
            .find(|uri| std::fs::metadata(dir.join(uri)).map_or(true, |m| m.len() == 0));
        if let Some(uri) = missing {
            return Err(JobFailure::new(format!(
                "{what}: {uri} is missing or empty"
            )));
        }
        if !playlist.ended || (playlist.duration() - duration).abs() > 0.1 {
            return Err(JobFailure::new(format!(
                "{what}: the playlist covers {:.3}s of a {duration:.3}s source",
                playlist.duration()
            )));
        }
        if step.segment_type == SegmentType::Fmp4 && playlist.init.is_none() {
            return Err(JobFailure::new(format!("{what}: no init segment")));
        }
        Ok(playlist)
    }
}

/// Moves a file a step wrote in the work directory into the output directory, durably.
/// Returns its name there and its size.
fn publish_step_file(work: &Path, out_dir: &Path, given: &str) -> Result<(String, u64), String> {
    let rel = Path::new(given);
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "manifest.json" && n != "hls")
        .ok_or_else(|| format!("output {given:?}: not a publishable file name"))?;
    if rel.is_absolute() || rel.components().count() != 1 {
        return Err(format!(
            "output {given:?}: give a file name in the work directory"
        ));
    }
    let from = work.join(rel);
    let meta = std::fs::symlink_metadata(&from).map_err(|e| format!("output {given:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("output {given:?}: not a regular file"));
    }
    let dest = out_dir.join(&name);
    let tmp = out_dir.join(temp_name(&name, "step"));
    std::fs::copy(&from, &tmp).map_err(|e| format!("output {given:?}: {e}"))?;
    rename_durably(&tmp, &dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("publishing {}: {e}", dest.display())
    })?;
    Ok((name, meta.len()))
}

/// Publishes a directory tree as `out_dir/name`: copied beside it under a temp name,
/// every file synced, then swapped in by rename. Returns the bytes published.
fn publish_dir(from: &Path, out_dir: &Path, name: &str) -> std::io::Result<u64> {
    let tmp = out_dir.join(format!(".{name}.spool-tmp"));
    let old = out_dir.join(format!(".{name}.spool-old"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&old);
    let bytes = copy_tree(from, &tmp).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    let dest = out_dir.join(name);
    if dest.exists() {
        std::fs::rename(&dest, &old)?;
    }
    std::fs::rename(&tmp, &dest)?;
    std::fs::File::open(out_dir)?.sync_all()?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(bytes)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let target = to.join(path.file_name().unwrap_or_default());
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        if kind.is_dir() {
            bytes += copy_tree(&path, &target)?;
        } else if kind.is_file() {
            bytes += std::fs::copy(&path, &target)?;
            fsync_file(&target)?;
        }
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(bytes)
}
