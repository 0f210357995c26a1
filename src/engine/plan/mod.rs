//! The one planner: (workflow, probed media, hook decisions, chunks) → a typed [`JobPlan`]
//! with every ffmpeg command a job runs. `spool run` executes it; `spool plan` prints it.
//! Pure: nothing here runs a process or touches the store.

pub mod analysis;
pub mod chunks;
pub mod ladder;
pub mod picture;
pub mod preview;
pub mod quality;
pub mod rungs;
pub mod streams;

use std::path::{Path, PathBuf};

use chunks::ChunkRef;
use rungs::{output_name, plan_rungs, RungError};

use super::exec::{Command, Phase};
use super::publish::temp_name;
use super::steps::{self, RungFile, StepPlan};
use super::task::OutputPaths;
use crate::media::command::{audio_args, encode_commands, gif_args, AudioEncode, RungOutput};
use crate::media::join::{join_args, Join};
use crate::media::probe::{MediaInfo, VideoStream};
use crate::media::profiles::{Container, Rung};
use crate::media::verify::{ExpectedColour, ExpectedStreams};
use crate::workflow::{EncodeMode, Workflow};
use streams::Kept;

/// Everything a plan is made from.
pub struct PlanInputs<'a> {
    /// The workflow as the hooks left it.
    pub workflow: &'a Workflow,
    pub media: &'a MediaInfo,
    pub video: &'a VideoStream,
    pub input: &'a Path,
    pub work: &'a Path,
    pub out_dir: &'a Path,
    /// The workflow file's directory (paths in steps are relative to it).
    pub base_dir: &'a Path,
    /// Measurements made before planning (see [`analysis`]).
    pub analysis: &'a analysis::Analysis,
}

impl PlanInputs<'_> {
    pub fn stem(&self) -> String {
        stem_of(self.input)
    }
}

#[derive(Debug, Clone)]
pub struct JobPlan {
    /// In scheduling order: always-encode rungs first, then low to high.
    pub rungs: Vec<Rung>,
    /// Profiles left out, each with the reason.
    pub skipped_rungs: Vec<String>,
    /// Why the source is encoded whole, if it is.
    pub whole_file_reason: Option<String>,
    /// How the source is chunked, and why.
    pub chunking: chunks::ChunkingSummary,
    pub chunks: Vec<ChunkRef>,
    pub tasks: Vec<PlannedTask>,
    pub audio: Vec<PlannedAudio>,
    pub joins: Vec<PlannedJoin>,
    pub gif: Option<PlannedGif>,
    pub steps: Vec<StepPlan>,
    /// Source streams left out of some or every output, with why.
    pub dropped: Vec<streams::Dropped>,
    /// What is done to the picture (the same in every rung).
    pub picture: crate::media::picture::Picture,
    /// Each kept audio track's measured loudness (source track, measurement).
    pub loudness: Vec<(usize, crate::media::measure::Loudness)>,
    /// What could not be measured before planning.
    pub notes: Vec<String>,
    /// The CRF searches of rungs with a quality target.
    pub searches: Vec<quality::SearchPlan>,
    /// Their results, once run (the job fills them in before encoding).
    pub quality: Vec<quality::SearchResult>,
    /// `ladder: per_title`: the sampling to run; the rungs above are its candidates.
    pub ladder: Option<ladder::LadderPlan>,
    /// Once run: the hull and the rungs taken from it (the rungs above are those).
    pub per_title: Option<ladder::LadderResult>,
}

/// One encode task: a chunk into one or more rungs.
#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub index: u32,
    /// Index into `JobPlan::chunks`.
    pub chunk: usize,
    /// Indexes into `JobPlan::rungs`.
    pub rungs: Vec<usize>,
    /// Orders tasks: low rungs first (per-rung mode).
    pub rank: u32,
    pub label: String,
    pub outputs: Vec<OutputPaths>,
    /// After before_task (run in order; two for 2-pass).
    pub commands: Vec<Command>,
    /// A fingerprint of what before_task changed, if anything (part of the cache key).
    pub hook_change: Option<String>,
    /// Per rung of the task: the CRF its quality search chose for this chunk, if any.
    pub crf: Vec<Option<u32>>,
}

#[derive(Debug, Clone)]
pub struct PlannedAudio {
    pub encode: AudioEncode,
    pub out: PathBuf,
    pub command: Command,
}

#[derive(Debug, Clone)]
pub struct PlannedJoin {
    /// Index into `JobPlan::rungs`.
    pub rung: usize,
    pub final_name: String,
    /// Written (and verified) under a hidden temp name beside its destination.
    pub tmp: PathBuf,
    pub dest: PathBuf,
    /// The concat list, written once the chunks' files are known.
    pub list: PathBuf,
    /// Indexes into `JobPlan::audio`, in output order.
    pub audio: Vec<usize>,
    pub command: Command,
    /// What the joined file must carry besides the video (checked before it is published).
    pub expect: ExpectedStreams,
}

#[derive(Debug, Clone)]
pub struct PlannedGif {
    pub length: f64,
    pub final_name: String,
    pub tmp: PathBuf,
    pub dest: PathBuf,
    pub command: Command,
}

/// The output directory's name for an input: its stem, made safe.
pub fn stem_of(input: &Path) -> String {
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

/// The whole plan once the chunks are known (predicted or cut).
pub fn plan_job(
    inputs: &PlanInputs<'_>,
    whole_file_reason: Option<String>,
    chunks: Vec<ChunkRef>,
) -> Result<JobPlan, RungError> {
    let picture = picture::plan_picture(&inputs.workflow.picture, inputs.video, inputs.analysis);
    let rung_plan = plan_rungs(
        inputs.workflow,
        inputs.video,
        inputs.analysis.mastering,
        &picture,
    )?;
    let rungs = rung_plan.rungs;
    let upright = picture::upright(inputs.video, &picture);
    let searches = quality::plan_searches(&rungs, upright);
    let ladder = ladder::plan_ladder(inputs.workflow, &rungs, upright);
    let tasks = plan_tasks(inputs, &rungs, &chunks);
    let kept = streams::kept(&inputs.workflow.streams, inputs.media);
    let audio = plan_audio(inputs, &rungs, &kept);
    let (joins, mut dropped) = plan_joins(inputs, &rungs, &audio, &kept);
    dropped.splice(0..0, kept.dropped.clone());
    dropped.extend(
        rung_plan
            .colour_dropped
            .into_iter()
            .map(|(rung, reason)| streams::Dropped {
                stream: inputs.video.index,
                kind: "metadata".into(),
                codec: inputs.video.codec.clone(),
                language: None,
                output: Some(rung),
                reason,
            }),
    );
    let files: Vec<RungFile> = joins
        .iter()
        .map(|j| RungFile {
            name: rungs[j.rung].name.clone(),
            path: j.dest.clone(),
        })
        .collect();
    let steps = inputs
        .workflow
        .steps
        .iter()
        .map(|s| steps::kind_of(s).plan(inputs, &files))
        .collect();
    Ok(JobPlan {
        chunking: chunks::summarise(
            &inputs.workflow.chunking,
            whole_file_reason.as_deref(),
            &chunks,
        ),
        skipped_rungs: rung_plan.skipped,
        whole_file_reason,
        gif: plan_gif(inputs),
        rungs,
        chunks,
        tasks,
        audio,
        joins,
        steps,
        dropped,
        picture,
        loudness: inputs.analysis.loudness.clone(),
        notes: inputs.analysis.notes.clone(),
        searches,
        quality: Vec::new(),
        ladder,
        per_title: None,
    })
}

impl JobPlan {
    /// The measured loudness of source audio track `track`, when it was measured.
    pub fn loudness_of(&self, track: usize) -> Option<&crate::media::measure::Loudness> {
        self.loudness
            .iter()
            .find(|(t, _)| *t == track)
            .map(|(_, l)| l)
    }
}

/// spool's own encode commands for one chunk into some rungs (before any hook).
pub fn encode_task_commands(
    chunk: &ChunkRef,
    rungs: &[&Rung],
    outputs: &[OutputPaths],
) -> Vec<Command> {
    let outs: Vec<RungOutput> = rungs
        .iter()
        .zip(outputs)
        .map(|(rung, o)| RungOutput {
            rung,
            path: &o.path,
            passlog: &o.passlog,
            // Always through scale: -2 keeps the width even for odd-sized sources.
            scale: true,
        })
        .collect();
    encode_commands(&chunk.path, chunk.range.as_ref(), &outs)
        .into_iter()
        .map(|args| Command {
            phase: Phase::Encode,
            label: String::new(),
            args,
        })
        .collect()
}

/// Tasks in scheduling order: ladder = one per chunk; per-rung = rung-major, low rungs first.
fn plan_tasks(inputs: &PlanInputs<'_>, rungs: &[Rung], chunks: &[ChunkRef]) -> Vec<PlannedTask> {
    let shape: Vec<(usize, Vec<usize>, u32)> = match inputs.workflow.encode.mode {
        EncodeMode::Ladder => (0..chunks.len())
            .map(|c| (c, (0..rungs.len()).collect(), 0))
            .collect(),
        EncodeMode::PerRung => (0..rungs.len())
            .flat_map(|r| (0..chunks.len()).map(move |c| (c, vec![r], r as u32)))
            .collect(),
    };
    shape
        .into_iter()
        .enumerate()
        .map(|(i, (chunk, task_rungs, rank))| {
            let index = i as u32;
            let its: Vec<&Rung> = task_rungs.iter().map(|r| &rungs[*r]).collect();
            let outputs: Vec<OutputPaths> = its
                .iter()
                .map(|r| OutputPaths::of(inputs.work, index, r))
                .collect();
            let names: Vec<&str> = its.iter().map(|r| r.name.as_str()).collect();
            let label = match chunks[chunk].index {
                Some(c) => format!("chunk {c} [{}]", names.join(",")),
                None => format!("whole file [{}]", names.join(",")),
            };
            let mut commands = encode_task_commands(&chunks[chunk], &its, &outputs);
            for c in &mut commands {
                c.label = label.clone();
            }
            PlannedTask {
                index,
                chunk,
                crf: vec![None; task_rungs.len()],
                rungs: task_rungs,
                rank,
                label,
                outputs,
                commands,
                hook_change: None,
            }
        })
        .collect()
}

/// Where each kept chapter starts in an output, from its first video frame. MP4's chapter
/// track always starts at zero.
fn chapter_starts(media: &MediaInfo, v_src: f64, container: Container) -> Vec<f64> {
    media
        .chapters
        .iter()
        .enumerate()
        .map(|(i, c)| match (i, container) {
            (0, Container::Mp4) => 0.0,
            _ => (c.start - v_src).max(0.0),
        })
        .collect()
}

/// The audio encodes a rung's join uses: each kept track in the rung's setting.
fn rung_audio(inputs: &PlanInputs<'_>, rung: &Rung, kept: &Kept) -> Vec<AudioEncode> {
    kept.audio
        .iter()
        .map(|(track, _)| AudioEncode {
            track: *track,
            encoder: rung.codec.audio_encoder(),
            kbps: rung.audio_kbps,
            channels: rung
                .audio_channels
                .downmix(inputs.media.audio[*track].channels),
            // Audio starts where the first video frame does: trim any audio before it.
            lead_in_s: (inputs.video.start_time - inputs.media.start_time).max(0.0),
            video_start_s: inputs.video.start_time,
            loudnorm: inputs.workflow.loudness.as_ref().and_then(|l| {
                let measured = inputs.analysis.loudness.iter().find(|(t, _)| t == track)?;
                Some(
                    measured
                        .1
                        .second_pass(l.target_lufs, l.true_peak_db, l.range_lu),
                )
            }),
        })
        .collect()
}

/// Each distinct audio encode the rungs need, once: a track in one setting.
fn plan_audio(inputs: &PlanInputs<'_>, rungs: &[Rung], kept: &Kept) -> Vec<PlannedAudio> {
    let mut planned: Vec<PlannedAudio> = Vec::new();
    for encode in rungs.iter().flat_map(|r| rung_audio(inputs, r, kept)) {
        if planned.iter().any(|p| p.encode == encode) {
            continue;
        }
        let layout = encode
            .channels
            .map_or("src".to_string(), |c| format!("{c}ch"));
        let out = inputs.work.join(format!(
            "audio-{}-{}-{}k-{layout}.{}",
            encode.track,
            encode.encoder,
            encode.kbps,
            encode.container().0
        ));
        let command = Command {
            phase: Phase::Audio,
            label: format!("track {} {} {}k", encode.track, encode.encoder, encode.kbps),
            args: audio_args(inputs.input, &encode, &out),
        };
        planned.push(PlannedAudio {
            encode,
            out,
            command,
        });
    }
    planned
}

fn plan_joins(
    inputs: &PlanInputs<'_>,
    rungs: &[Rung],
    audio: &[PlannedAudio],
    kept: &Kept,
) -> (Vec<PlannedJoin>, Vec<streams::Dropped>) {
    let stem = inputs.stem();
    let media = inputs.media;
    let mut dropped = Vec::new();
    // The output's timeline starts at the source's first video frame; ffmpeg already counts
    // an input's times from its start (the offsets below make up the difference).
    let v_src = inputs.video.start_time;
    let joins = rungs
        .iter()
        .enumerate()
        .map(|(r, rung)| {
            let final_name = output_name(&inputs.workflow.output.naming, &stem, rung);
            let tmp = inputs
                .out_dir
                .join(temp_name(&final_name, rung.container.ext()));
            let list = inputs.work.join(format!("join-{}.txt", rung.name));
            let tracks: Vec<usize> = rung_audio(inputs, rung, kept)
                .iter()
                .filter_map(|e| audio.iter().position(|p| p.encode == *e))
                .collect();
            let (subtitles, missing) = streams::subtitles_for(rung, kept, media);
            dropped.extend(missing);
            let expect = ExpectedStreams {
                audio_languages: kept.audio.iter().map(|(_, t)| t.language.clone()).collect(),
                subtitles: subtitles.len(),
                chapters: match kept.chapters {
                    true => chapter_starts(media, v_src, rung.container),
                    false => Vec::new(),
                },
                title: media.title.clone().filter(|_| kept.metadata),
                colour: Some(ExpectedColour {
                    bit_depth: rung.colour.bit_depth,
                    primaries: rung.colour.primaries.clone(),
                    transfer: rung.colour.transfer.clone(),
                    matrix: rung.colour.matrix.clone(),
                    mastering: rung.colour.mastering.is_some_and(|m| m.display.is_some()),
                }),
            };
            let join = Join {
                list: &list,
                audio: tracks
                    .iter()
                    .zip(&kept.audio)
                    .map(|(i, (_, tags))| (audio[*i].out.as_path(), tags.clone()))
                    .collect(),
                source: inputs.input,
                source_offset_s: media.start_time - v_src,
                chapter_offset_s: media.start_time - v_src
                    + rung
                        .container
                        .packet_shift_s((!tracks.is_empty()).then(|| rung.codec.audio_encoder())),
                subtitles,
                attachments: streams::attachments_for(rung.container, media),
                chapters: kept.chapters,
                metadata: kept.metadata,
                container: rung.container,
                rotation: rung.picture.keep_rotation,
                out: &tmp,
            };
            let command = Command {
                phase: Phase::Join,
                label: rung.name.clone(),
                args: join_args(&join),
            };
            PlannedJoin {
                rung: r,
                command,
                dest: inputs.out_dir.join(&final_name),
                final_name,
                tmp,
                list,
                audio: tracks,
                expect,
            }
        })
        .collect();
    (joins, dropped)
}

fn plan_gif(inputs: &PlanInputs<'_>) -> Option<PlannedGif> {
    let g = &inputs.workflow.gif;
    if !g.enabled {
        return None;
    }
    let duration = inputs.media.duration;
    let start = g.start_seconds.min(duration * 0.2);
    let length = g.duration_seconds.min(duration - start).max(0.1);
    let final_name = format!("{}.gif", inputs.stem());
    // Written in the work dir, so recovery can tell its ffmpeg is ours.
    let tmp = inputs.work.join(temp_name(&final_name, "gif"));
    Some(PlannedGif {
        command: Command {
            phase: Phase::Gif,
            label: "gif".into(),
            args: gif_args(
                inputs.input,
                start,
                length,
                g.width,
                g.fps,
                &tmp,
                &picture::of_inputs(inputs).1,
            ),
        },
        length,
        dest: inputs.out_dir.join(&final_name),
        final_name,
        tmp,
    })
}
