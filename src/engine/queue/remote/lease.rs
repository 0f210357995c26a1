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
}

impl Lease {
    pub fn keep(
        conn: ConnectionManager,
        keys: Keys,
        cfg: &WorkerConfig,
        entry: &str,
        task: &TaskId,
        stop: &CancellationToken,
    ) -> Lease {
        let (tx, rx) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        let state = Arc::new(AtomicU8::new(HELD));
        let done = CancellationToken::new();
        let keeper = Keeper {
            conn,
            keys,
            worker: cfg.name.clone(),
            entry: entry.to_string(),
            task: task.clone(),
            token: token.clone(),
            state: state.clone(),
        };
        let keeper = tokio::spawn(keeper.run(rx, done.clone(), stop.clone()));
        Lease {
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
            if let Some(p) = latest.take() {
                sent = Instant::now();
                let report = Report::Progress {
                    task: self.task.clone(),
                    worker: self.worker.clone(),
                    progress: p,
                };
                let _ = send_report(&mut self.conn, &self.keys, &report).await;
            }
            match self.renew().await {
                Some(state) => return self.end(state),
                None => continue,
            }
        }
    }

    /// None while the lease holds (or Redis is away: the coordinator decides then).
    async fn renew(&mut self) -> Option<u8> {
        let renewed: redis::RedisResult<(bool, Vec<String>)> = redis::pipe()
            .cmd("EXISTS")
            .arg(self.keys.cancel(&self.task))
            .cmd("XCLAIM")
            .arg(self.keys.tasks())
            .arg(GROUP)
            .arg(&self.worker)
            .arg(0)
            .arg(&self.entry)
            .arg("JUSTID")
            .query_async(&mut self.conn)
            .await;
        match renewed {
            Ok((true, _)) => Some(CANCELLED),
            Ok((false, ids)) if ids.is_empty() => Some(LOST),
            Ok(_) | Err(_) => None,
        }
    }

    fn end(self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
        self.token.cancel();
    }
}
