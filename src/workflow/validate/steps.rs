//! Steps after the ladder: Lua, HLS, thumbnails, transcription.

use std::collections::HashSet;

use super::Problems;
use crate::media::profiles::Codec;
use crate::workflow::schema::{HlsStep, Step, ThumbnailsStep, TranscribeStep, Workflow};

pub const MAX_STEPS: usize = 32;

pub(super) fn check(w: &Workflow, p: &mut Problems) {
    if w.steps.len() > MAX_STEPS {
        p.err(
            "steps",
            format!("{} steps; at most {MAX_STEPS}", w.steps.len()),
        );
    }
    let mut names = HashSet::new();
    for (i, step) in w.steps.iter().enumerate() {
        if !names.insert(step.label().to_string()) {
            p.err(
                &format!("steps[{i}]"),
                format!("{:?} names an earlier step too", step.label()),
            );
        }
        match step {
            Step::Lua(_) if w.script.is_none() => p.err(
                &format!("steps[{i}].lua"),
                "a lua step needs the workflow's script section".into(),
            ),
            Step::Lua(_) => {}
            Step::Hls(h) => {
                for (path, message) in hls_problems(w, h) {
                    p.err(&format!("steps[{i}].hls{path}"), message);
                }
            }
            Step::Thumbnails(t) => thumbnails(i, t, p),
            Step::Transcribe(t) => transcribe(i, t, p),
        }
    }
}

fn thumbnails(i: usize, t: &ThumbnailsStep, p: &mut Problems) {
    let at = |f: &str| format!("steps[{i}].thumbnails.{f}");
    if !(16..=3840).contains(&t.poster_width) {
        p.err(&at("poster_width"), "must be 16 to 3840".into());
    }
    if !(t.interval_seconds.is_finite() && t.interval_seconds >= 0.5) {
        p.err(&at("interval_seconds"), "must be at least 0.5".into());
    }
    if !(16..=640).contains(&t.thumb_width) {
        p.err(&at("thumb_width"), "must be 16 to 640".into());
    }
    if !(1..=50).contains(&t.columns) || !(1..=50).contains(&t.rows) {
        p.err(&at("columns"), "columns and rows must be 1 to 50".into());
    }
}

fn transcribe(i: usize, t: &TranscribeStep, p: &mut Problems) {
    let at = |f: &str| format!("steps[{i}].transcribe.{f}");
    if !cfg!(feature = "whisper") {
        p.err(
            &format!("steps[{i}].transcribe"),
            "this spool was built without the whisper feature".into(),
        );
    }
    if !(1..=10).contains(&t.beam_size) {
        p.err(&at("beam_size"), "must be 1 to 10".into());
    }
    if t.threads > 256 {
        p.err(&at("threads"), "must be 0 (one per core) to 256".into());
    }
    if let Some(l) = &t.language {
        if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_lowercase()) {
            p.err(
                &at("language"),
                format!("{l:?}: use an ISO 639-1 code such as en or de"),
            );
        }
    }
}

fn hls_problems(w: &Workflow, h: &HlsStep) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let k = w.encode.keyframe_interval_seconds;
    let s = h.segment_seconds;
    if !(s.is_finite() && s > 0.0 && s <= 60.0) {
        problems.push((
            ".segment_seconds".into(),
            format!("must be > 0 and ≤ 60, got {s}"),
        ));
    } else if k > 0.0 && ((s / k).round() * k - s).abs() > 1e-6 {
        problems.push((
            ".segment_seconds".into(),
            format!("{s} is not a multiple of encode.keyframe_interval_seconds ({k}), so segments would not start on keyframes"),
        ));
    }
    for (i, p) in w.profiles.iter().enumerate() {
        if crate::media::hls::is_rendition_dir(&p.name) {
            problems.push((
                String::new(),
                format!(
                    "profiles[{i}] is named {:?}, which HLS uses for an audio or subtitle rendition",
                    p.name
                ),
            ));
        }
        if !matches!(p.codec, Codec::H264 | Codec::H265) {
            problems.push((
                String::new(),
                format!(
                    "profiles[{i}] is {}; HLS here packages h264 and h265 rungs only",
                    p.codec.name()
                ),
            ));
        }
    }
    problems
}
