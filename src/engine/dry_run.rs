//! `spool plan`: probe an input, run the workflow's hooks, and list every ffmpeg command
//! a run would start, after before_task. Nothing is encoded and no state is written;
//! chunk boundaries are predicted from the source's keyframes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::hooks::{JobScript, ScriptDeps};
use super::job::{audio_encodes, build_tasks, stem_of};
use super::plan::{output_name, plan_rungs, whole_file_reason};
use super::previews::sprite_layout;
use super::publish::temp_name;
use super::queue::Slots;
use super::task::{encode_output, hooked_commands, TaskAt};
use crate::media::chunk::predict_segments;
use crate::media::command::{audio_args, gif_args, join_args, segment_args, speech_audio_args};
use crate::media::hash::digest_file;
use crate::media::hls::{package_args, Track};
use crate::media::probe::{keyframe_times, probe_counting_frames};
use crate::media::thumbs::{poster_args, sprite_args};
use crate::media::tools::Tools;
use crate::script::JobScope;
use crate::store::TaskRecord;
use crate::workflow::{LoadedWorkflow, Step};

#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub input: String,
    pub workflow: String,
    pub workflow_hash: String,
    /// Set when on_discover would skip the file; nothing else is planned then.
    pub skip: Option<String>,
    pub rungs: Vec<String>,
    pub skipped_rungs: Vec<String>,
    /// None when the file is chunked; otherwise why it is encoded whole.
    pub whole_file_reason: Option<String>,
    pub commands: Vec<PlannedCommand>,
    /// The work directory the paths below use; a run uses `<state>/work/<job id>`.
    pub work_dir: String,
}

#[derive(Debug, Serialize)]
pub struct PlannedCommand {
    pub phase: String,
    pub label: String,
    pub argv: Vec<String>,
}

fn shown(argv: &[OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Plans `input` as a run into `out_root` would, using `work` as the work directory.
pub async fn plan_input(
    tools: &Tools,
    wf: &LoadedWorkflow,
    input: &Path,
    out_root: &Path,
    work: &Path,
) -> Result<PlanReport, String> {
    let (media, _frames) = probe_counting_frames(tools, input)
        .await
        .map_err(|e| e.to_string())?;
    let Some(video) = media.video.clone() else {
        return Err(format!("{}: no video stream to encode", input.display()));
    };
    let owned = input.to_path_buf();
    let digest = tokio::task::spawn_blocking(move || digest_file(&owned))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let job = "plan".to_string();
    let out_dir = out_root.join(stem_of(input));
    let scope = JobScope {
        job: job.clone(),
        params: super::hooks::script_params(wf),
        input: input.to_path_buf(),
        work_dir: work.to_path_buf(),
        out_dir: out_dir.clone(),
    };
    std::fs::create_dir_all(work.join("enc")).map_err(|e| e.to_string())?;
    let deps = ScriptDeps {
        tools: tools.clone(),
        slots: Slots::new(1),
        trace: None,
        repo: None,
    };
    let script = JobScript::load(deps, wf, scope, CancellationToken::new(), 0)
        .await
        .map_err(|e| e.message)?;
    let decision = script
        .decide(&wf.workflow, input, &digest.md5, digest.size, &media)
        .await
        .map_err(|e| e.message)?;
    let mut report = PlanReport {
        input: input.display().to_string(),
        workflow: wf.workflow.name.clone(),
        workflow_hash: wf.content_hash.clone(),
        skip: decision.skip.clone(),
        rungs: Vec::new(),
        skipped_rungs: Vec::new(),
        whole_file_reason: None,
        commands: Vec::new(),
        work_dir: work.display().to_string(),
    };
    if decision.skip.is_some() {
        return Ok(report);
    }
    let workflow = decision.workflow;
    let plan = plan_rungs(&workflow, &video).map_err(|e| e.to_string())?;
    report.rungs = plan.rungs.iter().map(|r| r.name.clone()).collect();
    report.skipped_rungs = plan.skipped.clone();
    let mut commands = Vec::new();
    let mut add = |phase: &str, label: String, argv: &[OsString]| {
        commands.push(PlannedCommand {
            phase: phase.into(),
            label,
            argv: shown(argv),
        })
    };

    let c = &workflow.chunking;
    let whole = whole_file_reason(c, &media, &video);
    let chunk_paths: Vec<PathBuf> = match &whole {
        Some(_) => vec![input.to_path_buf()],
        None => {
            let dir = work.join("chunks");
            let argv = segment_args(
                input,
                c.segment_seconds,
                &dir.join("chunks.csv"),
                &dir.join("chunk-%05d.mkv"),
            );
            add("segment", "segment".into(), &argv);
            let keys = keyframe_times(tools, input)
                .await
                .map_err(|e| e.to_string())?;
            let end = video.start_time + media.duration;
            (0..predict_segments(&keys, c.segment_seconds, end).len().max(1))
                .map(|i| dir.join(format!("chunk-{i:05}.mkv")))
                .collect()
        }
    };
    let chunked = whole.is_none();
    report.whole_file_reason = whole;

    for (index, spec) in build_tasks(workflow.encode.mode, &plan.rungs, chunk_paths.len())
        .iter()
        .enumerate()
    {
        let index = index as u32;
        let rungs = spec
            .rungs
            .iter()
            .map(|r| plan.rungs[*r].name.clone())
            .collect();
        let record = TaskRecord::pending(&job, index, chunked.then_some(spec.chunk as u32), rungs);
        let outputs: Vec<_> = spec
            .rungs
            .iter()
            .map(|r| encode_output(work, index, &plan.rungs[*r]))
            .collect();
        let at = TaskAt {
            job: &job,
            work,
            record: &record,
        };
        let (task_commands, _) = hooked_commands(&script, &at, &chunk_paths[spec.chunk], &outputs)
            .await
            .map_err(|e| e.message)?;
        let label = format!("task {index} [{}]", record.rungs.join(","));
        for argv in &task_commands {
            add("encode", label.clone(), argv);
        }
    }
    let audio = audio_encodes(&plan.rungs, &media, &video);
    for a in &audio {
        let out = work.join(format!(
            "audio-{}-{}k.{}",
            a.encoder,
            a.kbps,
            a.container().0
        ));
        add(
            "audio",
            format!("{} {}k", a.encoder, a.kbps),
            &audio_args(input, a, &out),
        );
    }
    let stem = stem_of(input);
    for rung in &plan.rungs {
        let name = output_name(&workflow.output.naming, &stem, rung);
        let tmp = out_dir.join(temp_name(&name, rung.codec.container_ext()));
        let list = work.join(format!("join-{}.txt", rung.name));
        let audio_file = audio
            .iter()
            .find(|a| a.encoder == rung.codec.audio_encoder() && a.kbps == rung.audio_kbps)
            .map(|a| {
                work.join(format!(
                    "audio-{}-{}k.{}",
                    a.encoder,
                    a.kbps,
                    a.container().0
                ))
            });
        add(
            "join",
            rung.name.clone(),
            &join_args(&list, audio_file.as_deref(), &tmp),
        );
    }
    for step in &workflow.steps {
        match step {
            Step::Thumbnails(t) => {
                let dir = work.join("thumbs");
                let layout = sprite_layout(t, &video);
                // The poster's time is picked at run time, away from black frames.
                add(
                    "thumbnails",
                    "poster (time chosen at run time)".into(),
                    &poster_args(input, 0.0, t.poster_width, &dir.join("poster.jpg")),
                );
                add(
                    "thumbnails",
                    "sprites".into(),
                    &sprite_args(input, &layout, &dir),
                );
            }
            Step::Transcribe(_) if media.has_audio() => {
                let pcm = work.join("transcribe/speech.f32");
                add(
                    "transcribe",
                    "16 kHz mono audio for Whisper".into(),
                    &speech_audio_args(input, &pcm),
                );
            }
            _ => {}
        }
    }
    for step in &workflow.steps {
        let Step::Hls(h) = step else { continue };
        let first = plan
            .rungs
            .first()
            .map(|r| output_name(&workflow.output.naming, &stem, r));
        for rung in &plan.rungs {
            let name = output_name(&workflow.output.naming, &stem, rung);
            let dir = work.join("hls").join(&rung.name);
            let argv = package_args(
                &out_dir.join(name),
                Track::Video,
                h.segment_seconds,
                h.segment_type,
                &dir,
            );
            add("hls", rung.name.clone(), &argv);
        }
        if let (true, Some(first)) = (media.has_audio(), first) {
            let dir = work.join("hls/audio");
            let argv = package_args(
                &out_dir.join(first),
                Track::Audio,
                h.segment_seconds,
                h.segment_type,
                &dir,
            );
            add("hls", "audio".into(), &argv);
        }
    }
    let g = &workflow.gif;
    if g.enabled {
        let start = g.start_seconds.min(media.duration * 0.2);
        let length = g.duration_seconds.min(media.duration - start).max(0.1);
        let tmp = work.join(temp_name(&format!("{stem}.gif"), "gif"));
        add(
            "gif",
            "gif".into(),
            &gif_args(input, start, length, g.width, g.fps, &tmp),
        );
    }
    report.commands = commands;
    Ok(report)
}
