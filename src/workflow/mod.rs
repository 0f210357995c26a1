//! Workflow files: parse strictly, validate everything, report every error at once.

pub mod schema;
pub mod validate;

use std::path::{Path, PathBuf};

pub use schema::{EncodeMode, Hook, Profile, Script, Workflow};
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
    #[error("{source_name}: {} problem(s):{}", .errors.len(), list(.errors))]
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

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("\n  - {}: {}", e.path, e.message))
        .collect()
}

/// Parses and validates workflow text. `source_name` names it in errors; script paths are
/// resolved against `base_dir`, and the script is compiled and its hooks checked.
pub fn load_str(
    text: &str,
    source_name: &str,
    base_dir: &Path,
) -> Result<LoadedWorkflow, WorkflowError> {
    let workflow: Workflow = serde_yaml::from_str(text).map_err(|error| WorkflowError::Parse {
        source_name: source_name.into(),
        error,
    })?;
    let mut errors = validate::validate(&workflow);
    if let Some(script) = &workflow.script {
        errors.extend(validate::validate_script(script, base_dir));
    }
    if !errors.is_empty() {
        return Err(WorkflowError::Invalid {
            source_name: source_name.into(),
            errors,
        });
    }
    Ok(LoadedWorkflow {
        workflow,
        content_hash: sha256_hex(text.as_bytes()),
        source: source_name.into(),
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
            e.contains("w.yaml:4:1") && e.contains("unknown field `chunkin`"),
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
