//! Semantic checks after parsing. Gathers every problem before reporting: one function per
//! section, each adding to the same list.

mod ladder;
mod profiles;
mod quality;
mod sections;
mod steps;

use std::path::Path;

use super::schema::{Script, Step, Workflow};
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

pub use profiles::MAX_PROFILES;
pub use steps::MAX_STEPS;

/// Every problem a parsed workflow has, each named by its field path.
pub fn validate(w: &Workflow) -> Vec<FieldError> {
    let mut p = Problems::default();
    top_level(w, &mut p);
    sections::chunking(w, &mut p);
    sections::gif(w, &mut p);
    profiles::check(w, &mut p);
    quality::check(w, &mut p);
    ladder::check(w, &mut p);
    steps::check(w, &mut p);
    sections::watch(w, &mut p);
    sections::schedule(w, &mut p);
    sections::webhooks(w, &mut p);
    sections::streams(w, &mut p);
    sections::loudness(w, &mut p);
    p.0
}

/// Collects problems; `err` keeps the call sites short.
#[derive(Default)]
pub(super) struct Problems(Vec<FieldError>);

impl Problems {
    pub(super) fn err(&mut self, path: &str, message: String) {
        self.0.push(FieldError::new(path, message));
    }
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

/// Checks the files a workflow names (besides its script), relative to its directory, and
/// the tools it needs beyond the encoding ffmpeg (a metric's filter).
pub fn validate_paths(w: &Workflow, base_dir: &Path) -> Vec<FieldError> {
    let mut errors = quality::environment(w);
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

fn top_level(w: &Workflow, p: &mut Problems) {
    if w.version != 1 {
        p.err(
            "version",
            format!(
                "unsupported workflow version {}; this spool reads version 1",
                w.version
            ),
        );
    }
    if w.name.trim().is_empty() {
        p.err("name", "must not be empty".into());
    }
    let k = w.encode.keyframe_interval_seconds;
    if !(k.is_finite() && k > 0.0 && k <= 20.0) {
        p.err(
            "encode.keyframe_interval_seconds",
            format!("must be > 0 and ≤ 20, got {k}"),
        );
    }
    if w.encode.concurrency == Some(0) {
        p.err("encode.concurrency", "must be at least 1".into());
    }
    if w.retries.max_attempts == 0 || w.retries.max_attempts > 20 {
        p.err(
            "retries.max_attempts",
            format!("must be 1 to 20, got {}", w.retries.max_attempts),
        );
    }
    if !(w.retries.backoff_seconds.is_finite()
        && (0.0..=3600.0).contains(&w.retries.backoff_seconds))
    {
        p.err("retries.backoff_seconds", "must be 0 to 3600".into());
    }
    for message in sections::naming_problems(&w.output.naming) {
        p.err("output.naming", message);
    }
    if w.profiles.len() > 1 && !w.output.naming.contains("{profile}") {
        p.err(
            "output.naming",
            "must contain {profile} when there is more than one profile".into(),
        );
    }
    if let super::schema::Original::MoveTo(dir) = &w.original {
        if dir.as_os_str().is_empty() {
            p.err("original.move_to", "must name a directory".into());
        }
    }
}
