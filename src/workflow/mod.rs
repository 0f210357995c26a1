//! Workflow files: parse strictly, validate everything, report every error at once.

pub mod chunking;
mod locate;
mod parse;
pub mod picture;
pub mod reload;
pub mod schedule;
pub mod schema;
pub mod steps;
pub mod streams;
pub mod validate;

use std::path::{Path, PathBuf};

pub use schema::{EncodeMode, Hook, LuaStep, Original, Profile, Script, Step, Workflow};
pub use validate::FieldError;

use crate::media::hash::sha256_hex;

/// The built-in default workflow, compiled in.
pub const DEFAULT_WORKFLOW: &str = include_str!("../../workflows/default.yaml");

/// A validated workflow with the hash of the exact text it came from.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    pub workflow: Workflow,
    /// SHA-256 of the file's bytes; jobs record it.
    pub content_hash: String,
    pub source: String,
    /// The exact YAML text, stored with jobs so a resumed job runs the same version.
    pub text: String,
    /// The exact Lua text validated, which is also the text that runs.
    pub script_source: Option<String>,
    /// The workflow file's directory: script paths are relative to it.
    pub base_dir: PathBuf,
}

impl LoadedWorkflow {
    /// The script's absolute location, if the workflow has one.
    pub fn script_path(&self) -> Option<PathBuf> {
        self.workflow
            .script
            .as_ref()
            .map(|s| self.base_dir.join(&s.path))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{source_name}: cannot read: {error}")]
    Read {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name}:{}", describe_yaml(.error))]
    Parse {
        source_name: String,
        error: serde_yaml::Error,
    },
    #[error("{source_name}: {} problem(s):{}", .errors.len(), list(.source_name, .errors))]
    Invalid {
        source_name: String,
        errors: Vec<FieldError>,
    },
}

fn describe_yaml(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(l) => format!("{}:{}: {e}", l.line(), l.column()),
        None => format!(" {e}"),
    }
}

fn list(source_name: &str, errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            let place = match e.at {
                Some((line, col)) => format!("{source_name}:{line}:{col}: "),
                None => String::new(),
            };
            let path = if e.path.is_empty() {
                "(top level)"
            } else {
                &e.path
            };
            format!("\n  - {place}{path}: {}", e.message)
        })
        .collect()
}

/// Parses and validates workflow text. `source_name` names it in errors; script paths are
/// resolved against `base_dir`, and the script is compiled and its hooks checked.
pub fn load_str(
    text: &str,
    source_name: &str,
    base_dir: &Path,
) -> Result<LoadedWorkflow, WorkflowError> {
    load_inner(text, source_name, base_dir, None)
}

/// Loads a stored version again: the same YAML and the same script text, whatever the
/// files hold today.
pub fn load_version(v: &crate::store::WorkflowVersion) -> Result<LoadedWorkflow, WorkflowError> {
    load_inner(
        &v.text,
        &v.source,
        Path::new(&v.base_dir),
        v.script_source.clone(),
    )
}

impl LoadedWorkflow {
    pub fn version(&self) -> crate::store::WorkflowVersion {
        crate::store::WorkflowVersion {
            hash: self.content_hash.clone(),
            source: self.source.clone(),
            text: self.text.clone(),
            script_source: self.script_source.clone(),
            base_dir: self.base_dir.display().to_string(),
        }
    }
}

fn load_inner(
    text: &str,
    source_name: &str,
    base_dir: &Path,
    stored_script: Option<String>,
) -> Result<LoadedWorkflow, WorkflowError> {
    let tree: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|error| WorkflowError::Parse {
            source_name: source_name.into(),
            error,
        })?;
    let parsed = parse::parse_all::<Workflow>(tree);
    let mut errors = parsed.errors.clone();
    let mut script_source = None;
    if let Some(workflow) = &parsed.value {
        for mut e in validate::validate(workflow) {
            e.path = parsed.original_path(&e.path);
            errors.push(e);
        }
        errors.extend(validate::validate_paths(workflow, base_dir));
        if let Some(script) = &workflow.script {
            match validate::validate_script(script, &workflow.steps, base_dir, stored_script) {
                Ok(source) => script_source = Some(source),
                Err(e) => errors.extend(e),
            }
        }
    }
    let (Some(workflow), true) = (parsed.value, errors.is_empty()) else {
        let places = locate::Locations::of(text);
        for e in &mut errors {
            e.at = places.find(&e.path);
        }
        return Err(WorkflowError::Invalid {
            source_name: source_name.into(),
            errors,
        });
    };
    // The hash covers the script too: a changed hook is a changed workflow.
    let mut hashed = text.as_bytes().to_vec();
    if let Some(s) = &script_source {
        hashed.push(0);
        hashed.extend_from_slice(s.as_bytes());
    }
    Ok(LoadedWorkflow {
        workflow,
        content_hash: sha256_hex(&hashed),
        source: source_name.into(),
        text: text.to_string(),
        script_source,
        base_dir: base_dir.to_path_buf(),
    })
}

pub fn load_file(path: &Path) -> Result<LoadedWorkflow, WorkflowError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| WorkflowError::Read {
        source_name: name.clone(),
        error,
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    load_str(&text, &name, &base)
}

pub fn load_default() -> Result<LoadedWorkflow, WorkflowError> {
    load_str(
        DEFAULT_WORKFLOW,
        "workflows/default.yaml (built in)",
        Path::new("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_errors_are_all_reported_with_places() {
        let text = "version: 1\nname: x\nchunkin: {}\nencode: {mode: lader}\nprofiles:\n\
                    - {name: a, codec: h256, height: 240}\n\
                    - {name: b, codec: h264, height: 240, crf: high, prest: fast}\n";
        let Err(WorkflowError::Invalid { errors, .. }) = load_str(text, "w", Path::new(".")) else {
            unreachable!("expected errors")
        };
        let shown: Vec<String> = errors
            .iter()
            .map(|e| format!("{:?} {} {}", e.at, e.path, e.message))
            .collect();
        let has = |place: (usize, usize), path: &str, words: &str| {
            errors
                .iter()
                .any(|e| e.at == Some(place) && e.path == path && e.message.contains(words))
        };
        assert!(
            has((3, 1), "chunkin", "did you mean `chunking`"),
            "{shown:#?}"
        );
        assert!(
            has((4, 10), "encode.mode", "did you mean `ladder`"),
            "{shown:#?}"
        );
        assert!(
            has((6, 13), "profiles[0].codec", "unknown variant `h256`"),
            "{shown:#?}"
        );
        assert!(
            has((7, 39), "profiles[1].crf", "invalid type"),
            "{shown:#?}"
        );
        assert!(
            has((7, 50), "profiles[1].prest", "did you mean `preset`"),
            "{shown:#?}"
        );
        // Repairs are not reported as errors of their own.
        assert!(
            !shown.iter().any(|s| s.contains("missing field")),
            "{shown:#?}"
        );
    }

    #[test]
    fn the_default_workflow_is_valid() {
        let w = load_default().map_err(|e| e.to_string());
        assert!(w.is_ok(), "{w:?}");
    }

    #[test]
    fn unknown_fields_are_refused_with_a_location() {
        let text = "version: 1\nname: x\nprofiles: []\nchunkin: {}\n";
        let e = load_str(text, "w.yaml", Path::new("."))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("w.yaml:4:1")
                && e.contains("unknown field `chunkin`")
                && e.contains("did you mean `chunking`?"),
            "{e}"
        );
    }

    #[test]
    fn every_semantic_error_is_reported_at_once() {
        let text = "version: 1\nname: x\nchunking: {segment_seconds: 0}\nprofiles:\n\
                    - {name: a, codec: av1, height: 100, rate_control: two_pass}\n\
                    - {name: a, codec: h264, height: 240, crf: 99, preset: warp}\n";
        let Err(WorkflowError::Invalid { errors, .. }) = load_str(text, "w", Path::new(".")) else {
            unreachable!("expected validation errors")
        };
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(errors.iter().all(|e| e.at.is_some()), "{errors:?}");
        for want in [
            "chunking.segment_seconds",
            "profiles[0].height",
            "profiles[0].rate_control",
            "profiles[1].name",
            "profiles[1].crf",
            "profiles[1].preset",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
    }
}
