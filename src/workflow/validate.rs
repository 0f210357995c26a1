//! Semantic checks after parsing. Gathers every problem before reporting.

use std::collections::HashSet;
use std::path::Path;

use super::picture::Rotation;
use super::schema::{HlsStep, Script, Step, Workflow};
use crate::media::colour::{BitDepth, HdrPolicy};
use crate::media::profiles::{Codec, RateControl, MAX_HEIGHT, MIN_HEIGHT};
use crate::script::{check_syntax, scripts_dir_of, Limits, ScriptHost};

/// One problem, named by its field path and, once located, its line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
    pub at: Option<(usize, usize)>,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
            at: None,
        }
    }
}

const NAMING_PLACEHOLDERS: &[&str] = &["stem", "profile", "codec", "height", "ext"];

/// A ladder of more rungs than this is a mistake (a plan hook once returned 100,000).
pub const MAX_PROFILES: usize = 32;
pub const MAX_STEPS: usize = 32;

pub fn validate(w: &Workflow) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |path: &str, message: String| errors.push(FieldError::new(path, message));
    if w.version != 1 {
        err(
            "version",
            format!(
                "unsupported workflow version {}; this spool reads version 1",
                w.version
            ),
        );
    }
    if w.name.trim().is_empty() {
        err("name", "must not be empty".into());
    }
    let c = &w.chunking;
    if !(c.segment_seconds.is_finite() && c.segment_seconds > 0.0 && c.segment_seconds <= 600.0) {
        err(
            "chunking.segment_seconds",
            format!("must be > 0 and ≤ 600, got {}", c.segment_seconds),
        );
    }
    if !(c.min_duration_seconds.is_finite() && c.min_duration_seconds >= 0.0) {
        err(
            "chunking.min_duration_seconds",
            format!("must be ≥ 0, got {}", c.min_duration_seconds),
        );
    }
    let k = w.encode.keyframe_interval_seconds;
    if !(k.is_finite() && k > 0.0 && k <= 20.0) {
        err(
            "encode.keyframe_interval_seconds",
            format!("must be > 0 and ≤ 20, got {k}"),
        );
    }
    if w.encode.concurrency == Some(0) {
        err("encode.concurrency", "must be at least 1".into());
    }
    if w.retries.max_attempts == 0 || w.retries.max_attempts > 20 {
        err(
            "retries.max_attempts",
            format!("must be 1 to 20, got {}", w.retries.max_attempts),
        );
    }
    if !(w.retries.backoff_seconds.is_finite()
        && (0.0..=3600.0).contains(&w.retries.backoff_seconds))
    {
        err("retries.backoff_seconds", "must be 0 to 3600".into());
    }
    for message in naming_problems(&w.output.naming) {
        err("output.naming", message);
    }
    if w.gif.enabled {
        if !(16..=1920).contains(&w.gif.width) {
            err(
                "gif.width",
                format!("must be 16 to 1920, got {}", w.gif.width),
            );
        }
        if !(1..=30).contains(&w.gif.fps) {
            err("gif.fps", format!("must be 1 to 30, got {}", w.gif.fps));
        }
        if !(w.gif.duration_seconds.is_finite()
            && w.gif.duration_seconds > 0.0
            && w.gif.duration_seconds <= 120.0)
        {
            err("gif.duration_seconds", "must be > 0 and ≤ 120".into());
        }
        if !(w.gif.start_seconds.is_finite() && w.gif.start_seconds >= 0.0) {
            err("gif.start_seconds", "must be ≥ 0".into());
        }
    }
    if w.profiles.is_empty() {
        err("profiles", "at least one profile is needed".into());
    }
    if w.profiles.len() > MAX_PROFILES {
        err(
            "profiles",
            format!("{} profiles; at most {MAX_PROFILES}", w.profiles.len()),
        );
    }
    if w.steps.len() > MAX_STEPS {
        err(
            "steps",
            format!("{} steps; at most {MAX_STEPS}", w.steps.len()),
        );
    }
    let mut names = HashSet::new();
    for (i, p) in w.profiles.iter().enumerate() {
        let at = |field: &str| format!("profiles[{i}].{field}");
        if p.name.is_empty()
            || !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            err(
                &at("name"),
                format!("{:?}: use letters, digits, '-', '_' and '.' only", p.name),
            );
        } else if !names.insert(p.name.as_str()) {
            err(
                &at("name"),
                format!("{:?} is used by an earlier profile", p.name),
            );
        }
        if !(MIN_HEIGHT..=MAX_HEIGHT).contains(&p.height) || p.height % 2 != 0 {
            err(
                &at("height"),
                format!(
                    "must be an even number from {MIN_HEIGHT} to {MAX_HEIGHT}, got {}",
                    p.height
                ),
            );
        }
        if let Some(crf) = p.crf.filter(|c| !p.codec.crf_range().contains(c)) {
            err(
                &at("crf"),
                format!(
                    "{crf} is outside {:?} for {}",
                    p.codec.crf_range(),
                    p.codec.name()
                ),
            );
        }
        if p.rate_control == RateControl::TwoPass && p.crf.is_some() {
            err(
                &at("crf"),
                "a two_pass profile targets a bitrate; remove crf".into(),
            );
        }
        if let Some(preset) = p.preset.as_deref().filter(|s| !p.codec.preset_is_valid(s)) {
            err(
                &at("preset"),
                format!("{preset:?} is not a {} preset", p.codec.encoder()),
            );
        }
        if p.rate_control == RateControl::TwoPass && !p.codec.supports_two_pass() {
            err(
                &at("rate_control"),
                format!(
                    "two_pass is not available for {} in ffmpeg 5.1; use crf",
                    p.codec.name()
                ),
            );
        }
        if p.bitrate_kbps.is_some_and(|b| !(50..=200_000).contains(&b)) {
            err(&at("bitrate_kbps"), "must be 50 to 200000".into());
        }
        if p.audio_kbps.is_some_and(|b| !(16..=512).contains(&b)) {
            err(&at("audio_kbps"), "must be 16 to 512".into());
        }
        if let Some(c) = p.container.filter(|c| !c.takes(p.codec)) {
            err(
                &at("container"),
                format!(
                    "{} cannot hold {} video; use mp4 or mkv",
                    c.ext(),
                    p.codec.name()
                ),
            );
        }
        let container = p.container.unwrap_or_else(|| p.codec.default_container());
        if w.picture.rotation == Rotation::Keep && !container.is_mp4() {
            err(
                &at("container"),
                format!(
                    "picture.rotation: keep needs mp4 outputs ({} has no rotation flag in ffmpeg 5.1)",
                    container.ext()
                ),
            );
        }
        if p.hdr == Some(HdrPolicy::Keep) && p.bit_depth == Some(BitDepth::Eight) {
            err(
                &at("bit_depth"),
                "hdr: keep needs 10 bits (an 8-bit output tagged PQ or HLG shows wrong everywhere)"
                    .into(),
            );
        }
    }
    let mut step_names = HashSet::new();
    for (i, step) in w.steps.iter().enumerate() {
        if !step_names.insert(step.label().to_string()) {
            err(
                &format!("steps[{i}]"),
                format!("{:?} names an earlier step too", step.label()),
            );
        }
        match step {
            Step::Lua(_) if w.script.is_none() => err(
                &format!("steps[{i}].lua"),
                "a lua step needs the workflow's script section".into(),
            ),
            Step::Lua(_) => {}
            Step::Hls(h) => {
                for (path, message) in hls_problems(w, h) {
                    err(&format!("steps[{i}].hls{path}"), message);
                }
            }
            Step::Thumbnails(t) => {
                let at = |f: &str| format!("steps[{i}].thumbnails.{f}");
                if !(16..=3840).contains(&t.poster_width) {
                    err(&at("poster_width"), "must be 16 to 3840".into());
                }
                if !(t.interval_seconds.is_finite() && t.interval_seconds >= 0.5) {
                    err(&at("interval_seconds"), "must be at least 0.5".into());
                }
                if !(16..=640).contains(&t.thumb_width) {
                    err(&at("thumb_width"), "must be 16 to 640".into());
                }
                if !(1..=50).contains(&t.columns) || !(1..=50).contains(&t.rows) {
                    err(&at("columns"), "columns and rows must be 1 to 50".into());
                }
            }
            Step::Transcribe(t) => {
                let at = |f: &str| format!("steps[{i}].transcribe.{f}");
                if !cfg!(feature = "whisper") {
                    err(
                        &format!("steps[{i}].transcribe"),
                        "this spool was built without the whisper feature".into(),
                    );
                }
                if !(1..=10).contains(&t.beam_size) {
                    err(&at("beam_size"), "must be 1 to 10".into());
                }
                if t.threads > 256 {
                    err(&at("threads"), "must be 0 (one per core) to 256".into());
                }
                if let Some(l) = &t.language {
                    if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_lowercase()) {
                        err(
                            &at("language"),
                            format!("{l:?}: use an ISO 639-1 code such as en or de"),
                        );
                    }
                }
            }
        }
    }
    if let Some(watch) = &w.watch {
        if watch.folders.is_empty() {
            err("watch.folders", "name at least one folder".into());
        }
        if !(watch.settle_seconds.is_finite() && (0.0..=3600.0).contains(&watch.settle_seconds)) {
            err("watch.settle_seconds", "must be 0 to 3600".into());
        }
        if !(watch.rescan_seconds.is_finite() && watch.rescan_seconds >= 1.0) {
            err("watch.rescan_seconds", "must be at least 1".into());
        }
        if !(1..=100).contains(&watch.max_attempts) {
            err("watch.max_attempts", "must be 1 to 100".into());
        }
        if watch
            .marker
            .as_ref()
            .is_some_and(|m| m.len() < 2 || !m.starts_with('.'))
        {
            err("watch.marker", "a suffix such as .done".into());
        }
        for (field, list) in [("include", &watch.include), ("exclude", &watch.exclude)] {
            for (j, g) in list.iter().enumerate() {
                if let Err(e) = globset::Glob::new(g) {
                    err(&format!("watch.{field}[{j}]"), e.to_string());
                }
            }
        }
    }
    if let Some(schedule) = &w.schedule {
        if schedule.windows.is_empty() {
            err("schedule.windows", "name at least one window".into());
        }
        for (j, win) in schedule.windows.iter().enumerate() {
            for (field, value) in [("from", &win.from), ("to", &win.to)] {
                if super::schedule::parse_hhmm(value).is_none() {
                    err(
                        &format!("schedule.windows[{j}].{field}"),
                        format!("{value:?}: use HH:MM, 00:00 to 23:59"),
                    );
                }
            }
        }
    }
    for (i, hook) in w.webhooks.iter().enumerate() {
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            err(
                &format!("webhooks[{i}].url"),
                format!("{:?}: use an http:// or https:// URL", hook.url),
            );
        }
        if hook.events.is_empty() {
            err(
                &format!("webhooks[{i}].events"),
                "name at least one event, or leave it out for all".into(),
            );
        }
    }
    for (field, select) in [
        ("audio", &w.streams.audio),
        ("subtitles", &w.streams.subtitles),
    ] {
        if let super::streams::Select::Languages(langs) = select {
            if langs.is_empty() {
                err(
                    &format!("streams.{field}.languages"),
                    "name at least one language, or use none".into(),
                );
            }
            for (j, l) in langs.iter().enumerate() {
                if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_alphabetic()) {
                    err(
                        &format!("streams.{field}.languages[{j}]"),
                        format!("{l:?}: an ISO 639 code such as eng or fra"),
                    );
                }
            }
        }
    }
    if let Some(l) = &w.loudness {
        if !(-70.0..=-5.0).contains(&l.target_lufs) {
            err(
                "loudness.target_lufs",
                "must be -70 to -5 LUFS (-16 for the web, -23 for broadcast)".into(),
            );
        }
        if !(-9.0..=0.0).contains(&l.true_peak_db) {
            err("loudness.true_peak_db", "must be -9 to 0 dBTP".into());
        }
        if !(1.0..=50.0).contains(&l.range_lu) {
            err("loudness.range_lu", "must be 1 to 50 LU".into());
        }
    }
    if let super::schema::Original::MoveTo(dir) = &w.original {
        if dir.as_os_str().is_empty() {
            err("original.move_to", "must name a directory".into());
        }
    }
    if w.profiles.len() > 1 && !w.output.naming.contains("{profile}") {
        err(
            "output.naming",
            "must contain {profile} when there is more than one profile".into(),
        );
    }
    errors
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

fn naming_problems(template: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if template.contains('/') || template.contains('\\') || template.starts_with('.') {
        problems.push(format!(
            "{template:?}: a file name, not a path, and not hidden"
        ));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            problems.push(format!("{template:?}: unclosed '{{'"));
            break;
        };
        let key = &rest[open + 1..open + close];
        if !NAMING_PLACEHOLDERS.contains(&key) {
            problems.push(format!(
                "unknown placeholder {{{key}}}; known: {}",
                NAMING_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if !template.contains("{ext}") {
        problems.push("must end in {ext} so the file type is right".into());
    }
    problems
}

/// Compiles the script (syntax errors carry file:line) and runs its top level in the sandbox
/// to check that every named hook is a function in the table it returns. Returns its text.
/// `source` replaces the file's text when a stored version is loaded again.
pub fn validate_script(
    script: &Script,
    steps: &[Step],
    base_dir: &Path,
    source: Option<String>,
) -> Result<String, Vec<FieldError>> {
    let path = base_dir.join(&script.path);
    let err = |field: &str, message: String| vec![FieldError::new(field, message)];
    let source = match source {
        Some(s) => s,
        None => std::fs::read_to_string(&path)
            .map_err(|e| err("script.path", format!("{}: {e}", path.display())))?,
    };
    check_syntax(&path, &source).map_err(|e| err("script.path", e.to_string()))?;
    let hooks: Vec<String> = script
        .hooks
        .iter()
        .map(|h| h.name().to_string())
        .chain(steps.iter().filter_map(|s| match s {
            Step::Lua(l) => Some(l.function.clone()),
            _ => None,
        }))
        .collect();
    ScriptHost::load(
        &path,
        &source,
        &scripts_dir_of(&path),
        Limits::default(),
        &hooks,
    )
    .map_err(|e| err("script.hooks", e.to_string()))?;
    Ok(source)
}

/// Checks the files a workflow names (besides its script), relative to its directory.
pub fn validate_paths(w: &Workflow, base_dir: &Path) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, step) in w.steps.iter().enumerate() {
        #[cfg(feature = "whisper")]
        if let Step::Transcribe(super::schema::TranscribeStep {
            model: Some(model), ..
        }) = step
        {
            if let Err(e) = crate::speech::find_model(Some(&base_dir.join(model))) {
                errors.push(FieldError::new(
                    format!("steps[{i}].transcribe.model"),
                    e.to_string(),
                ));
            }
        }
        let _ = (i, step, base_dir);
    }
    errors
}
