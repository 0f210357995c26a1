//! The records spool keeps. Stored as versioned JSON so a newer spool can migrate them.

use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

/// A job's id: time-ordered hex (milliseconds, then a disambiguator), so ids sort by age.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl JobId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether `text` has the shape of a job id (16 hex digits).
    pub fn looks_valid(text: &str) -> bool {
        text.len() == 16 && text.chars().all(|c| c.is_ascii_hexdigit())
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> JobId {
        JobId(s.to_string())
    }
}

/// One task of a job: the job and the task's index in its plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub job: JobId,
    pub index: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.job, self.index)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Stopped by a signal or a crash; `spool run` on the same input resumes it.
    Interrupted,
    /// The on_discover hook declined the file; the reason is in `error`.
    Skipped,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Skipped
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Skipped => "skipped",
        }
    }

    /// The moves the store accepts. A succeeded job is final for good (`--force` makes a new
    /// job); any other stopped job may run again (resume, retry); a running job may be
    /// updated while it runs and then end in any way.
    pub fn may_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        match (self, next) {
            (Succeeded, _) => false,
            (Running, Queued) => false,
            (Running, _) => true,
            (Queued, _) => next != Succeeded,
            (Interrupted | Failed | Cancelled | Skipped, Running | Queued) => true,
            (Interrupted, Cancelled | Interrupted) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub input: String,
    pub input_md5: String,
    pub input_size: u64,
    pub workflow_name: String,
    pub workflow_hash: String,
    pub out_dir: String,
    pub status: JobStatus,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Why the file was encoded whole instead of in chunks.
    pub fallback_reason: Option<String>,
    pub error: Option<String>,
    pub stderr_tail: Vec<String>,
    pub manifest: Option<String>,
    pub chunks: u32,
    pub reused_chunks: u32,
    pub progress: f64,
    /// What was measured before planning (engine `Analysis`), kept so a resumed job plans
    /// from the same numbers.
    #[serde(default)]
    pub analysis: Option<serde_json::Value>,
    /// -100..100; see `engine::job_order`.
    #[serde(default)]
    pub priority: i32,
}

/// Who a job is and where it writes: the fields every new record starts from.
pub struct JobStart<'a> {
    pub id: &'a JobId,
    pub input: &'a std::path::Path,
    pub out_dir: &'a std::path::Path,
    pub workflow_name: &'a str,
    pub workflow_hash: &'a str,
    pub status: JobStatus,
    pub priority: i32,
}

impl JobRecord {
    /// A new job's record: nothing measured, nothing done yet.
    pub fn start(s: JobStart<'_>) -> JobRecord {
        JobRecord {
            id: s.id.clone(),
            input: s.input.display().to_string(),
            input_md5: String::new(),
            input_size: 0,
            workflow_name: s.workflow_name.to_string(),
            workflow_hash: s.workflow_hash.to_string(),
            out_dir: s.out_dir.display().to_string(),
            status: s.status,
            created_ms: now_ms(),
            updated_ms: now_ms(),
            fallback_reason: None,
            error: None,
            stderr_tail: Vec::new(),
            manifest: None,
            chunks: 0,
            reused_chunks: 0,
            progress: 0.0,
            analysis: None,
            priority: s.priority,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// The moves the store accepts: a finished task never runs again (a resumed job gets a
    /// new plan instead), so a late progress report cannot undo a finish.
    pub fn may_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!((self, next), (Pending | Running, _) | (Failed, Cancelled))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub job: JobId,
    pub index: u32,
    /// Chunk number, or None for the whole-file fallback.
    pub chunk: Option<u32>,
    pub rungs: Vec<String>,
    pub status: TaskStatus,
    pub attempts: u32,
    pub progress: f64,
    /// Rungs taken from the dedupe cache instead of encoded.
    pub reused_rungs: u32,
    pub error: Option<String>,
    /// The remote worker that last ran it (None on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl TaskRecord {
    /// A task as planned, before it runs.
    pub fn pending(job: &JobId, index: u32, chunk: Option<u32>, rungs: Vec<String>) -> TaskRecord {
        TaskRecord {
            job: job.clone(),
            index,
            chunk,
            rungs,
            status: TaskStatus::Pending,
            attempts: 0,
            progress: 0.0,
            reused_rungs: 0,
            error: None,
            worker: None,
        }
    }

    pub fn id(&self) -> TaskId {
        TaskId {
            job: self.job.clone(),
            index: self.index,
        }
    }
}

/// How many of a job's tasks are in each state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub done: u32,
    pub running: u32,
    pub pending: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl TaskCounts {
    pub fn of(tasks: &[TaskRecord]) -> TaskCounts {
        let mut c = TaskCounts::default();
        for t in tasks {
            match t.status {
                TaskStatus::Done => c.done += 1,
                TaskStatus::Running => c.running += 1,
                TaskStatus::Pending => c.pending += 1,
                TaskStatus::Failed => c.failed += 1,
                TaskStatus::Cancelled => c.cancelled += 1,
            }
        }
        c
    }
}

/// A job as a list shows it: the record and its tasks counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    #[serde(flatten)]
    pub job: JobRecord,
    pub tasks: TaskCounts,
}

/// One encoded chunk in the content-addressed cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    pub key: String,
    pub chunk_md5: String,
    pub chunk_sha256: String,
    pub chunk_size: u64,
    /// Path relative to the cache directory.
    pub path: String,
    pub bytes: u64,
    pub frames: u64,
    pub created_ms: u64,
    /// When a job last took it from the cache (its admission at first); eviction goes by it.
    #[serde(default)]
    pub last_used_ms: u64,
    /// SHA-256 of the encoded file, checked by `spool cache verify` (empty in older stores).
    #[serde(default)]
    pub sha256: String,
}

/// One probe encode's measurement, by (chunk content + video settings + CRF + scoring
/// settings + both ffmpeg versions): a resumed or repeated job never probes it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub key: String,
    pub crf: u32,
    pub mean: f64,
    pub p5: f64,
    pub min: f64,
    pub frames: u64,
    /// Bytes of the probe encode.
    pub bytes: u64,
    /// Seconds the probe's encode and scoring took.
    pub seconds: f64,
    pub created_ms: u64,
}

/// A result derived from content that is costly to make again (a transcript), by a key of
/// (content + model + settings): the same content is never worked on twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub key: String,
    /// What it is, e.g. `transcript`.
    pub kind: String,
    pub body: serde_json::Value,
    pub created_ms: u64,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A workflow as it was when a job started: resuming runs this text, not the file's today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowVersion {
    pub hash: String,
    pub source: String,
    pub text: String,
    pub script_source: Option<String>,
    pub base_dir: String,
}

/// What `spool watch` knows of a file's content under one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `<size>-<md5>` of the whole file.
    pub content: String,
    pub workflow: String,
    /// Every path this content was seen at, first first.
    pub paths: Vec<String>,
    pub status: FileStatus,
    /// The job that processed it (the first one, for duplicates).
    pub job: Option<JobId>,
    pub attempts: u32,
    pub reason: Option<String>,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Admitted; a job runs or will run.
    Queued,
    Done,
    /// Failed fewer than max_attempts times; tried again at the next scan.
    Failed,
    /// Failed max_attempts times; only `spool retry` brings it back.
    Parked,
    Skipped,
}
