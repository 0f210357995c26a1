//! Durable state: jobs, tasks and the dedupe cache, behind the [`Repo`] trait.

pub mod records;
mod sled_repo;

use std::path::Path;

pub use records::*;
pub use sled_repo::SledRepo;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {dir} is in use by another spool process (only one may hold it; stop the other or use --state)")]
    Locked { dir: String },
    #[error("cannot open state directory {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state record unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("state store call did not complete: {0}")]
    Blocking(String),
    #[error(
        "state record has version {0}, this spool reads version {RECORD_VERSION}; upgrade spool"
    )]
    Version(u32),
}

impl StoreError {
    fn open(dir: &Path, e: sled::Error) -> StoreError {
        let dir = dir.display().to_string();
        match e {
            // sled wraps the flock failure in its own message, so match on both.
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("acquire lock") =>
            {
                StoreError::Locked { dir }
            }
            other => StoreError::Open {
                dir,
                reason: other.to_string(),
            },
        }
    }
}

/// What the engine needs from storage. sled implements it; tests and other backends may too.
pub trait Repo: Send + Sync {
    /// Writes a job and its task plan in one transaction, replacing any earlier plan.
    fn create_job(&self, job: &JobRecord, tasks: &[TaskRecord]) -> Result<(), StoreError>;
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    fn list_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError>;
    fn tasks_of(&self, job: &str) -> Result<Vec<TaskRecord>, StoreError>;
    /// Marks a task finished and records its cache entries in one transaction, durably.
    fn finish_task(&self, task: &TaskRecord, cached: &[CacheRecord]) -> Result<(), StoreError>;
    fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>, StoreError>;
    fn cache_remove(&self, key: &str) -> Result<(), StoreError>;
    fn cache_entries(&self) -> Result<Vec<CacheRecord>, StoreError>;
    /// A Lua hook's reply for a job, so a resumed job does not ask again. Durable at return.
    fn put_hook_result(
        &self,
        job: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError>;
    fn hook_result(&self, job: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// The exact workflow text a job ran with, by content hash.
    fn put_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError>;
    fn workflow_version(&self, hash: &str) -> Result<Option<WorkflowVersion>, StoreError>;
    /// `spool watch`: a file's content record, by `<workflow>/<content>`.
    fn put_file(&self, file: &FileRecord) -> Result<(), StoreError>;
    fn get_file(&self, workflow: &str, content: &str) -> Result<Option<FileRecord>, StoreError>;
    fn list_files(&self) -> Result<Vec<FileRecord>, StoreError>;
    /// The content last hashed for a (device, inode, size, mtime) fingerprint, so a file
    /// renamed or moved inside a watched folder is known without hashing it again.
    fn put_seen(&self, fingerprint: &str, content: &str) -> Result<(), StoreError>;
    fn seen(&self, fingerprint: &str) -> Result<Option<String>, StoreError>;
    /// After a crash: running jobs become interrupted, running tasks pending. Returns jobs fixed.
    fn recover(&self) -> Result<u32, StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            input: "in.mp4".into(),
            input_md5: "m".into(),
            input_size: 1,
            workflow_name: "w".into(),
            workflow_hash: "h".into(),
            out_dir: "o".into(),
            status: JobStatus::Running,
            created_ms: 1,
            updated_ms: 1,
            fallback_reason: None,
            error: None,
            stderr_tail: vec![],
            manifest: None,
            chunks: 2,
            reused_chunks: 0,
            progress: 0.0,
        }
    }

    fn task(job: &str, index: u32, status: TaskStatus) -> TaskRecord {
        TaskRecord {
            job: job.into(),
            index,
            chunk: Some(index),
            rungs: vec!["a".into()],
            status,
            attempts: 0,
            progress: 0.0,
            reused_rungs: 0,
            error: None,
        }
    }

    #[test]
    fn jobs_tasks_cache_survive_reopen_and_recovery() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Open {
            dir: "tmp".into(),
            reason: e.to_string(),
        })?;
        {
            let repo = SledRepo::open(dir.path())?;
            repo.create_job(
                &job("j1"),
                &[
                    task("j1", 0, TaskStatus::Running),
                    task("j1", 1, TaskStatus::Pending),
                ],
            )?;
            let cache = CacheRecord {
                key: "k".into(),
                chunk_md5: "m".into(),
                chunk_sha256: "s".into(),
                chunk_size: 1,
                path: "p".into(),
                bytes: 1,
                frames: 1,
                created_ms: 1,
            };
            repo.finish_task(&task("j1", 1, TaskStatus::Done), &[cache])?;
            // A second open of the same directory is refused while the first holds it.
            let second = SledRepo::open(dir.path()).err().map(|e| e.to_string());
            assert!(
                second.as_deref().is_some_and(|e| e.contains("in use")),
                "{second:?}"
            );
            repo.flush()?;
        }
        let repo = SledRepo::open(dir.path())?;
        assert_eq!(repo.recover()?, 1);
        let j = repo.get_job("j1")?.map(|j| j.status);
        assert_eq!(j, Some(JobStatus::Interrupted));
        let statuses: Vec<_> = repo.tasks_of("j1")?.iter().map(|t| t.status).collect();
        assert_eq!(statuses, [TaskStatus::Pending, TaskStatus::Done]);
        assert!(repo.cache_get("k")?.is_some());
        // A new plan for the same job replaces the old tasks atomically.
        repo.create_job(&job("j1"), &[task("j1", 0, TaskStatus::Pending)])?;
        assert_eq!(repo.tasks_of("j1")?.len(), 1);
        Ok(())
    }
}
