//! Durable state, behind small traits (one per kind of record) with typed ids. Transitions
//! are checked here, so no caller can move a finished task back to running. sled implements
//! every trait; [`Repo`] is all of them together.

pub mod records;
mod sled;
pub mod watch;

use std::path::Path;

pub use self::sled::SledRepo;
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {dir} is in use by another spool process (only one may hold it; stop the other or use --state)")]
    Locked { dir: String },
    #[error("cannot open state directory {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("there is no spool state in {dir}")]
    NoState { dir: String },
    #[error("state store: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("state record unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("state store call did not complete: {0}")]
    Blocking(String),
    #[error(
        "state record has version {0}, this spool reads version {RECORD_VERSION}; upgrade spool"
    )]
    Version(u32),
    #[error("{what} is {from}; it cannot become {to}")]
    IllegalTransition {
        what: String,
        from: &'static str,
        to: &'static str,
    },
    #[error("{what} does not exist")]
    Missing { what: String },
}

impl StoreError {
    fn open(dir: &Path, e: ::sled::Error) -> StoreError {
        let dir = dir.display().to_string();
        match e {
            // sled wraps the flock failure in its own message, so match on both.
            ::sled::Error::Io(io)
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

/// Jobs, and an index to find the jobs of one input into one output directory.
pub trait JobStore: Send + Sync {
    /// Records a job as it starts or resumes; refused if the stored job may not run again.
    fn begin_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Writes a running job and its task plan in one transaction, replacing any earlier plan.
    fn plan_job(&self, job: &JobRecord, tasks: &[TaskRecord]) -> Result<(), StoreError>;
    /// Writes a job's new state; refused if the stored status may not become the new one.
    fn save_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    fn list_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Every job of this input content (MD5) into this output directory, by index.
    fn jobs_for_input(&self, md5: &str, out_dir: &str) -> Result<Vec<JobRecord>, StoreError>;
    /// Every job of this input content (MD5), whatever its output directory.
    fn jobs_for_content(&self, md5: &str) -> Result<Vec<JobRecord>, StoreError>;
    /// Up to `limit` jobs older than `before` (all when None), newest first, only those in
    /// `status` when given. Ids are time-ordered, so this reads no more than it returns
    /// (plus what the filter skips).
    fn recent_jobs(
        &self,
        before: Option<&JobId>,
        limit: usize,
        status: Option<JobStatus>,
    ) -> Result<Vec<JobRecord>, StoreError>;
}

/// The tasks of each job's plan.
pub trait TaskStore: Send + Sync {
    /// Writes a task's new state; refused if its stored status may not become the new one.
    fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError>;
    fn tasks_of(&self, job: &JobId) -> Result<Vec<TaskRecord>, StoreError>;
    /// Marks a task done and records its cache entries in one transaction, durably.
    fn finish_task(&self, task: &TaskRecord, cached: &[CacheRecord]) -> Result<(), StoreError>;
}

/// The index of the content-addressed cache (the files live beside it).
pub trait CacheIndex: Send + Sync {
    fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>, StoreError>;
    fn cache_remove(&self, key: &str) -> Result<(), StoreError>;
    /// Records an entry made outside an encode task (an audio encode). Durable at return.
    fn cache_put(&self, record: &CacheRecord) -> Result<(), StoreError>;
    /// Marks an entry used now (eviction keeps what was used last).
    fn cache_touch(&self, key: &str, now_ms: u64) -> Result<(), StoreError>;
    fn cache_entries(&self) -> Result<Vec<CacheRecord>, StoreError>;
}

/// Probe encodes' scores, so no job measures the same probe twice.
pub trait ProbeBook: Send + Sync {
    fn probe_get(&self, key: &str) -> Result<Option<ProbeRecord>, StoreError>;
    /// Durable at return.
    fn probe_put(&self, record: &ProbeRecord) -> Result<(), StoreError>;
}

/// Results derived from content (transcripts), so no content is worked on twice.
pub trait ResultBook: Send + Sync {
    fn result_get(&self, key: &str) -> Result<Option<ResultRecord>, StoreError>;
    /// Durable at return.
    fn result_put(&self, record: &ResultRecord) -> Result<(), StoreError>;
}

/// Lua hooks' replies, so a resumed job does not ask again.
pub trait HookLog: Send + Sync {
    /// Durable at return.
    fn put_hook_result(
        &self,
        job: &JobId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError>;
    fn hook_result(&self, job: &JobId, key: &str) -> Result<Option<serde_json::Value>, StoreError>;
}

/// The exact workflow text each job ran with, by content hash.
pub trait WorkflowVersions: Send + Sync {
    fn put_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError>;
    fn workflow_version(&self, hash: &str) -> Result<Option<WorkflowVersion>, StoreError>;
}

/// Jobs submitted through the API, by the caller's idempotency key.
pub trait Submissions: Send + Sync {
    /// Records `key` → `job` unless the key is taken already; returns the job holding it
    /// then. Durable at return.
    fn claim_submission(&self, key: &str, job: &JobId) -> Result<Option<JobId>, StoreError>;
}

/// What `spool watch` knows of files: content records, and content by disk fingerprint.
pub trait WatchRecords: Send + Sync {
    /// A file's content record, by `<workflow>/<content>`.
    fn put_file(&self, file: &FileRecord) -> Result<(), StoreError>;
    fn get_file(&self, workflow: &str, content: &str) -> Result<Option<FileRecord>, StoreError>;
    fn list_files(&self) -> Result<Vec<FileRecord>, StoreError>;
    /// The content last hashed for a (device, inode, size, mtime) fingerprint, so a file
    /// renamed or moved inside a watched folder is known without hashing it again.
    fn put_seen(&self, fingerprint: &str, content: &str) -> Result<(), StoreError>;
    fn seen(&self, fingerprint: &str) -> Result<Option<String>, StoreError>;
}

/// Start-up repair and durability.
pub trait Maintenance: Send + Sync {
    /// After a crash: running jobs become interrupted, running tasks pending. Returns jobs fixed.
    fn recover(&self) -> Result<u32, StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

/// Every store trait at once: what the engine and the daemon are given.
pub trait Repo:
    JobStore
    + TaskStore
    + CacheIndex
    + ProbeBook
    + ResultBook
    + HookLog
    + WorkflowVersions
    + WatchRecords
    + Submissions
    + Maintenance
{
}

impl<T> Repo for T where
    T: JobStore
        + TaskStore
        + CacheIndex
        + ProbeBook
        + ResultBook
        + HookLog
        + WorkflowVersions
        + WatchRecords
        + Submissions
        + Maintenance
{
}

#[cfg(test)]
mod tests;
