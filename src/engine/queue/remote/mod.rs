//! The distributed queue on Redis Streams. The coordinator ([`RedisQueue`]) publishes each
//! encode task to one stream read by a consumer group; workers ([`worker`]) claim with
//! `XREADGROUP`, keep their lease with `XCLAIM … JUSTID` while they encode, and report
//! progress and results on a second stream. sled on the coordinator stays the source of
//! truth: Redis holds only work in flight, and everything in it can be published again.
//!
//! Keys, under a prefix (`spool` by default):
//! - `P:tasks`: the task stream, group `workers`; field `task` (JSON [`Envelope`])
//! - `P:events`: worker reports ([`Report`]), read by the coordinator with `XREAD`
//! - `P:result:<job>/<n>`: a finished task's report, kept a day (a coordinator that restarts
//!   finds results that arrived while it was down)
//! - `P:cancel:<job>/<n>`: set when the coordinator cancels; workers check it with the lease
//! - `P:workers`: sorted set, worker name → last heartbeat (ms)
//! - `P:epoch`: set by the coordinator; gone means Redis lost its data and all is republished
//! - `P:gates`: hash, workflow → `closed` while its schedule is closed (no new encodes), or
//!   `paused` (and the running ones SIGSTOPped until it opens)

mod coordinator;
mod hand;
mod inputs;
mod lease;
mod reports;
pub mod shared;
pub mod transfer;
mod upkeep;
pub mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use coordinator::{Intake, RedisQueue};

use crate::engine::task::{EncodeTask, TaskProgress};
use crate::store::TaskId;

pub const GROUP: &str = "workers";
/// Worker reports kept in the events stream (approximate trim).
const EVENTS_KEPT: usize = 20_000;
/// A finished task's report waits this long for its coordinator.
const RESULT_TTL_S: u64 = 86_400;
/// How often a worker says it is alive; it counts as gone after three missed beats.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0} is not a redis:// URL")]
    BadUrl(String),
    #[error("a message on the queue is malformed: {0}")]
    Malformed(String),
}

/// How the coordinator and workers reach Redis, and how long a lease lasts.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    /// A claimed task whose lease was not renewed for this long goes to another worker.
    pub lease: Duration,
    /// Deliveries (first one included) before a task fails instead of going out again.
    pub max_deliveries: u32,
    /// A file system the workers mount too: chunks and results move through it
    /// (`shared::SharedRoot`); workers without it, or that find a file wrong, use HTTP.
    pub shared: Option<std::path::PathBuf>,
    /// The shared root is this coordinator's own (no other machine writes it): chunks are
    /// hard-linked into it instead of copied.
    pub shared_private: bool,
}

impl RedisSettings {
    pub fn new(url: &str) -> Result<RedisSettings, RemoteError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(RemoteError::BadUrl(url.to_string()));
        }
        Ok(RedisSettings {
            url: url.to_string(),
            prefix: "spool".into(),
            lease: Duration::from_secs(30),
            max_deliveries: 5,
            shared: None,
            shared_private: false,
        })
    }

    pub fn keys(&self) -> Keys {
        Keys {
            prefix: self.prefix.clone(),
        }
    }

    /// The shared root's directory for this prefix, if there is one.
    pub fn shared_root(&self) -> Option<shared::SharedRoot> {
        self.shared
            .as_deref()
            .map(|root| shared::SharedRoot::new(root, &self.prefix))
    }

    pub fn client(&self) -> Result<redis::Client, RemoteError> {
        Ok(redis::Client::open(self.url.as_str())?)
    }
}

/// Every key name in one place.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }
    pub fn result(&self, task: &TaskId) -> String {
        format!("{}:result:{task}", self.prefix)
    }
    pub fn cancel(&self, task: &TaskId) -> String {
        format!("{}:cancel:{task}", self.prefix)
    }
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
    /// Task → its stream entry, so a restarted coordinator adopts entries workers still hold.
    pub fn entries(&self) -> String {
        format!("{}:entries", self.prefix)
    }
    pub fn gates(&self) -> String {
        format!("{}:gates", self.prefix)
    }
}

/// A task as the stream carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub task: EncodeTask,
    /// 1 for the first delivery; the coordinator counts the ones after a lost lease.
    pub delivery: u32,
    /// The coordinator's lease (ms): a worker that cannot renew for this long knows the task
    /// has gone to another worker and stops its encode (0 from an older coordinator: 30 s).
    #[serde(default)]
    pub lease_ms: u64,
}

impl Envelope {
    pub fn lease(&self) -> Duration {
        match self.lease_ms {
            0 => Duration::from_secs(30),
            ms => Duration::from_millis(ms),
        }
    }
}

/// One encoded output a worker uploaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uploaded {
    pub sha256: String,
    pub size: u64,
}

/// What a worker tells the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Claimed {
        task: TaskId,
        worker: String,
    },
    Progress {
        task: TaskId,
        worker: String,
        progress: TaskProgress,
    },
    Done {
        task: TaskId,
        worker: String,
        /// The worker's `ffmpeg -version` first line: part of each output's cache key.
        ffmpeg: String,
        outputs: Vec<Uploaded>,
    },
    Failed {
        task: TaskId,
        worker: String,
        message: String,
        /// Retrying cannot help (the input itself is at fault).
        fatal: bool,
    },
}

impl Report {
    pub fn task(&self) -> &TaskId {
        match self {
            Report::Claimed { task, .. }
            | Report::Progress { task, .. }
            | Report::Done { task, .. }
            | Report::Failed { task, .. } => task,
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Appends a report to the events stream (and, for an end, keeps it under the result key).
pub async fn send_report(
    conn: &mut redis::aio::ConnectionManager,
    keys: &Keys,
    report: &Report,
) -> Result<(), RemoteError> {
    let json = report.to_json();
    let mut pipe = redis::pipe();
    if matches!(report, Report::Done { .. } | Report::Failed { .. }) {
        pipe.cmd("SET")
            .arg(keys.result(report.task()))
            .arg(&json)
            .arg("EX")
            .arg(RESULT_TTL_S)
            .ignore();
    }
    pipe.cmd("XADD")
        .arg(keys.events())
        .arg("MAXLEN")
        .arg("~")
        .arg(EVENTS_KEPT)
        .arg("*")
        .arg("report")
        .arg(&json)
        .ignore();
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// Creates the task stream's consumer group (and the stream) unless it exists.
pub async fn ensure_group(
    conn: &mut redis::aio::ConnectionManager,
    keys: &Keys,
) -> Result<(), RemoteError> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.tasks())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A connection that reconnects by itself; `block` is the longest blocking read it serves.
pub async fn connect(
    settings: &RedisSettings,
    block: Duration,
) -> Result<redis::aio::ConnectionManager, RemoteError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(block + Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    Ok(settings
        .client()?
        .get_connection_manager_with_config(config)
        .await?)
}

/// Like [`connect`], but waits (and says so) until Redis answers or `stop` is cancelled.
pub async fn connect_patiently(
    settings: &RedisSettings,
    block: Duration,
    stop: &tokio_util::sync::CancellationToken,
) -> Option<redis::aio::ConnectionManager> {
    let mut said = false;
    loop {
        match connect(settings, block).await {
            Ok(c) => return Some(c),
            Err(e) if !said => {
                tracing::warn!(url = %settings.url, error = %e, "Redis does not answer; trying again every second");
                said = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return None,
        }
    }
}

pub fn now_ms() -> u64 {
    crate::store::now_ms()
}
