//! Who the input is: a regular, non-empty file, hashed (unless the caller just did) while it
//! is probed; and what spool already knows of it: done already, a stopped job to resume
//! (with the workflow version it started with), or a new job. The decisions are pure.

use std::path::Path;

use crate::engine::error::JobError;
use crate::engine::plan::analysis::{probe_source, Source};
use crate::media::hash::{digest_file, FileDigest};
use crate::media::tools::Tools;
use crate::store::{JobId, JobRecord, JobStatus};

/// Refuses what is not a regular, non-empty file before anything reads it.
pub fn check_input(input: &Path) -> Result<(), String> {
    let shown = input.display();
    match std::fs::metadata(input) {
        Ok(m) if m.is_file() && m.len() == 0 => {
            Err(format!("{shown}: the file is empty (0 bytes)"))
        }
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{shown}: not a regular file")),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// Hashes and probes at once: the probe's verdict waits for the job record, a digest
/// failure ends the job before it has one.
pub async fn identify(
    tools: &Tools,
    input: &Path,
    known: Option<FileDigest>,
) -> Result<(FileDigest, Result<Source, JobError>), String> {
    let owned = input.to_path_buf();
    let hashing = async move {
        match known {
            Some(d) => Ok(Ok(d)),
            None => tokio::task::spawn_blocking(move || digest_file(&owned)).await,
        }
    };
    let (digest, probed) = tokio::join!(hashing, probe_source(tools, input));
    match digest {
        Ok(Ok(d)) => Ok((d, probed)),
        Ok(Err(e)) => Err(format!("{}: cannot read: {e}", input.display())),
        Err(e) => Err(format!("internal error while hashing: {e}")),
    }
}

/// The workflow version a stopped job of this input started with, when it differs from
/// `current`: a job stopped midway resumes with its own version.
pub fn pinned_version(jobs: &[JobRecord], current: &str) -> Option<String> {
    jobs.iter()
        .filter(|j| matches!(j.status, JobStatus::Interrupted | JobStatus::Running))
        .max_by_key(|j| j.created_ms)
        .filter(|j| j.workflow_hash != current)
        .map(|j| j.workflow_hash.clone())
}

/// What to do with an input given its earlier jobs (same content, same output directory).
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// It already succeeded with this workflow and its manifest is still there.
    Done(Box<JobRecord>),
    /// An unfinished job resumes under its own id.
    Resume(JobId),
    New,
}

pub fn admit(
    jobs: Vec<JobRecord>,
    workflow_hash: &str,
    force: bool,
    manifest_exists: impl Fn(&str) -> bool,
) -> Admission {
    let Some(latest) = jobs
        .into_iter()
        .filter(|j| j.workflow_hash == workflow_hash)
        .max_by_key(|j| j.created_ms)
    else {
        return Admission::New;
    };
    match latest.status {
        JobStatus::Succeeded if force => Admission::New,
        JobStatus::Succeeded if latest.manifest.as_deref().is_some_and(&manifest_exists) => {
            Admission::Done(Box::new(latest))
        }
        JobStatus::Succeeded => Admission::New,
        _ => Admission::Resume(latest.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, status: JobStatus, hash: &str, created: u64) -> JobRecord {
        JobRecord {
            id: id.into(),
            input: "in.mp4".into(),
            input_md5: "m".into(),
            input_size: 1,
            workflow_name: "w".into(),
            workflow_hash: hash.into(),
            out_dir: "o".into(),
            status,
            created_ms: created,
            updated_ms: created,
            fallback_reason: None,
            error: None,
            stderr_tail: vec![],
            manifest: Some("o/manifest.json".into()),
            chunks: 1,
            reused_chunks: 0,
            progress: 0.0,
            analysis: None,
            priority: 0,
        }
    }

    #[test]
    fn a_stopped_job_pins_its_workflow_version() {
        let jobs = vec![
            job("a", JobStatus::Succeeded, "v0", 1),
            job("b", JobStatus::Interrupted, "v1", 2),
        ];
        assert_eq!(pinned_version(&jobs, "v2").as_deref(), Some("v1"));
        assert_eq!(
            pinned_version(&jobs, "v1"),
            None,
            "same version: nothing to pin"
        );
        let finished = vec![job("a", JobStatus::Failed, "v1", 1)];
        assert_eq!(
            pinned_version(&finished, "v2"),
            None,
            "only stopped jobs pin"
        );
    }

    #[test]
    fn done_resume_or_new() {
        let exists = |_: &str| true;
        let gone = |_: &str| false;
        let done = vec![job("a", JobStatus::Succeeded, "v1", 1)];
        assert!(
            matches!(admit(done.clone(), "v1", false, exists), Admission::Done(j) if j.id.0 == "a")
        );
        assert_eq!(
            admit(done.clone(), "v1", true, exists),
            Admission::New,
            "--force"
        );
        assert_eq!(
            admit(done.clone(), "v1", false, gone),
            Admission::New,
            "manifest deleted"
        );
        assert_eq!(
            admit(done, "v2", false, exists),
            Admission::New,
            "another workflow"
        );
        for status in [
            JobStatus::Interrupted,
            JobStatus::Failed,
            JobStatus::Cancelled,
            JobStatus::Skipped,
        ] {
            let stopped = vec![
                job("old", JobStatus::Succeeded, "v1", 1),
                job("b", status, "v1", 2),
            ];
            assert_eq!(
                admit(stopped, "v1", false, exists),
                Admission::Resume("b".into()),
                "{status:?}"
            );
        }
        assert_eq!(admit(Vec::new(), "v1", false, exists), Admission::New);
    }
}
