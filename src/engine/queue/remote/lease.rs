//! A worker's hold on one claimed entry. Every second while the task runs it renews the
//! lease (`XCLAIM … JUSTID` on its own entry resets the idle time the coordinator's
//! `XAUTOCLAIM` looks at), looks for the task's cancel key, and passes the latest progress
//! on. A lost lease or a cancel kills the task's ffmpeg through the token.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::worker::WorkerConfig;
use super::{send_report, Keys, Report, GROUP};
use crate::engine::task::TaskProgress;
use crate::store::TaskId;

const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A renewal unanswered this long counts as failed (a cut link holds requests, not refuses).
const RENEW_WAIT: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How the hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// Held to the end: the result is this worker's to report.
    Held,
    /// The entry is gone or another consumer owns it: someone else answers for the task.
    Lost,
    /// The coordinator cancelled the task.
    Cancelled,
    /// This worker is stopping.
    Stopped,
}

const HELD: u8 = 0;
const LOST: u8 = 1;
const CANCELLED: u8 = 2;
const STOPPED: u8 = 3;

pub struct Lease {
    conn: ConnectionManager,
    cancel_key: String,
    token: CancellationToken,
    state: Arc<AtomicU8>,
    progress: mpsc::UnboundedSender<TaskProgress>,
    done: CancellationToken,
    keeper: tokio::task::JoinHandle<()>,
}

struct Keeper {
    conn: ConnectionManager,
    keys: Keys,
    worker: String,
    entry: String,
    task: TaskId,
    token: CancellationToken,
    state: Arc<AtomicU8>,
    /// The coordinator's lease, and when this worker last renewed it.
    length: Duration,
    renewed: Instant,
}

impl Lease {
    pub fn keep(
        conn: ConnectionManager,
        keys: Keys,
        cfg: &WorkerConfig,
        (entry, task, length): (&str, &TaskId, Duration),
        stop: &CancellationToken,
    ) -> Lease {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        let state = Arc::new(AtomicU8::new(HELD));
        let done = CancellationToken::new();
        let cancel_key = keys.cancel(task);
        let keeper = Keeper {
            conn: conn.clone(),
            keys,
            worker: cfg.name.clone(),
            entry: entry.to_string(),
            task: task.clone(),
            token: token.clone(),
            state: state.clone(),
            length,
            renewed: Instant::now(),
        };
        let keeper = tokio::spawn(keeper.run(rx, done.clone(), stop.clone()));
        Lease {
            conn,
            cancel_key,
            token,
            state,
            progress: tx,
            done,
            keeper,
        }
    }

    /// Cancelled when the lease is lost, the task cancelled or the worker stops.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Asks Redis, right before ffmpeg starts, whether the task was cancelled meanwhile (a
    /// task claimed ahead waits for a slot, and a cancel frees that slot at once): true, and
    /// the hold ends as cancelled, if so. Unreachable Redis leaves it to the lease keeper.
    pub async fn cancelled_before_start(&self) -> bool {
        if self.token.is_cancelled() {
            return true;
        }
        let mut conn = self.conn.clone();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&self.cancel_key);
        let asked = exists.query_async::<bool>(&mut conn);
        if !matches!(tokio::time::timeout(RENEW_WAIT, asked).await, Ok(Ok(true))) {
            return false;
        }
        self.state.store(CANCELLED, Ordering::Relaxed);
        self.token.cancel();
        true
    }

    pub fn progress_sender(&self) -> impl FnMut(TaskProgress) + Send {
        let tx = self.progress.clone();
        move |p| {
            let _ = tx.send(p);
        }
    }

    pub async fn end(self) -> LeaseEnd {
        self.done.cancel();
        let _ = self.keeper.await;
        match self.state.load(Ordering::Relaxed) {
            LOST => LeaseEnd::Lost,
            CANCELLED => LeaseEnd::Cancelled,
            STOPPED => LeaseEnd::Stopped,
            _ => LeaseEnd::Held,
        }
    }
}

impl Keeper {
    async fn run(
        mut self,
        mut progress: mpsc::UnboundedReceiver<TaskProgress>,
        done: CancellationToken,
        stop: CancellationToken,
    ) {
        let mut sent = Instant::now() - PROGRESS_EVERY;
        let mut latest: Option<TaskProgress> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => {}
                p = progress.recv() => {
                    if let Some(p) = p {
                        latest = Some(p);
                    }
                    if sent.elapsed() < PROGRESS_EVERY {
                        continue;
                    }
                }
                _ = done.cancelled() => return,
                _ = stop.cancelled() => return self.end(STOPPED),
            }
            let progress = latest.take();
            if progress.is_some() {
                sent = Instant::now();
            }
            match self.beat(progress).await {
                Some(state) => return self.end(state),
                None => continue,
            }
        }
    }

    /// Passes the progress on and renews. None while the lease holds, or while Redis is out
    /// of reach for less than the lease; past that the coordinator has taken the task back
    /// (or will, as soon as it can), so this worker's encode is wasted and stops. A cut link
    /// answers nothing, so each beat waits at most until the lease would run out.
    async fn beat(&mut self, progress: Option<TaskProgress>) -> Option<u8> {
        let left = self.length.saturating_sub(self.renewed.elapsed());
        let wait = RENEW_WAIT.min(left).max(Duration::from_millis(100));
        match tokio::time::timeout(wait, self.report_and_renew(progress)).await {
            Ok(Ok((true, _))) => Some(CANCELLED),
            Ok(Ok((false, ids))) if ids.is_empty() => Some(LOST),
            Ok(Ok(_)) => {
                self.renewed = Instant::now();
                None
            }
            Ok(Err(_)) | Err(_) if self.renewed.elapsed() >= self.length => {
                tracing::warn!(task = %self.task, silent_s = self.renewed.elapsed().as_secs_f64(),
                    "Redis out of reach for longer than the lease: the task is another worker's now; stopping its encode");
                Some(LOST)
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// (the task's cancel key exists, the entry ids this worker still holds).
    async fn report_and_renew(
        &mut self,
        progress: Option<TaskProgress>,
    ) -> redis::RedisResult<(bool, Vec<String>)> {
        if let Some(progress) = progress {
            let report = Report::Progress {
                task: self.task.clone(),
                worker: self.worker.clone(),
                progress,
            };
            let _ = send_report(&mut self.conn, &self.keys, &report).await;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(self.keys.cancel(&self.task))
            .cmd("XCLAIM")
            .arg(self.keys.tasks())
            .arg(GROUP)
            .arg(&self.worker)
            .arg(0)
            .arg(&self.entry)
            .arg("JUSTID");
        pipe.query_async(&mut self.conn).await
    }

    fn end(self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
        self.token.cancel();
    }
}
