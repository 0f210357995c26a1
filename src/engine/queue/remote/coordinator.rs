//! The coordinator's side of the Redis queue: [`TaskQueue`] over Redis Streams. Tasks in
//! flight live here (sled holds the jobs); `upkeep` publishes and reclaims them, `reports`
//! turns worker reports into task events and admits verified uploads into the cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::shared::SharedRoot;
use super::{connect, ensure_group, Keys, RedisSettings, RemoteError};
use crate::engine::artifacts::ArtifactStore;
use crate::engine::metrics::Metrics;
use crate::engine::queue::{QueueError, TaskEvent, TaskEvents, TaskQueue};
use crate::engine::task::{EncodeTask, TaskError};
use crate::media::tools::Tools;
use crate::store::TaskId;

/// One task handed to Redis and not yet answered.
pub(super) struct Flight {
    pub task: EncodeTask,
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// Its stream entry, once published.
    pub entry: Option<String>,
    pub delivery: u32,
    /// The worker that last reported on it.
    pub worker: Option<String>,
    /// Why earlier deliveries were taken back.
    pub lost: Vec<String>,
}

/// Where uploads arrive and what checks them before they enter the cache.
pub struct Intake {
    pub tools: Tools,
    pub artifacts: Arc<ArtifactStore>,
    /// The directory `PUT /v1/blobs/<sha256>` writes to.
    pub blobs: PathBuf,
}

pub(super) struct Shared {
    pub settings: RedisSettings,
    pub keys: Keys,
    pub conn: redis::aio::ConnectionManager,
    pub flights: Mutex<HashMap<TaskId, Flight>>,
    /// Inputs workers may download: SHA-256 → (path, tasks that need it).
    pub offers: Mutex<HashMap<String, (PathBuf, usize)>>,
    /// Wakes `upkeep` when there is something to publish.
    pub nudge: Notify,
    pub metrics: Arc<Metrics>,
    pub intake: Intake,
    /// The value this coordinator keeps at `P:epoch`; its absence means Redis lost its data.
    pub epoch: String,
    /// Workflows whose schedule is closed: their tasks wait here, unpublished.
    pub closed: Mutex<std::collections::HashSet<String>>,
    /// Closed workflows whose running encodes are paused (their schedule says `pause`).
    pub paused: Mutex<std::collections::HashSet<String>>,
    /// Where chunks and results move when workers share a file system.
    pub root: Option<SharedRoot>,
    /// Gates whose state workers must be told, written one at a time in order.
    gate_writes: mpsc::UnboundedSender<String>,
    pub started: std::time::Instant,
    /// Set when the epoch was found missing: `reports` reads the events stream from the start.
    pub reread: std::sync::atomic::AtomicBool,
}

pub struct RedisQueue {
    shared: Arc<Shared>,
}

impl RedisQueue {
    /// Connects (Redis must answer now: a coordinator does not start blind), makes the
    /// consumer group, and starts publishing, reclaiming and reading reports until `stop`.
    pub async fn start(
        settings: RedisSettings,
        intake: Intake,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<RedisQueue, RemoteError> {
        let mut conn = connect(&settings, std::time::Duration::from_secs(1)).await?;
        let keys = settings.keys();
        ensure_group(&mut conn, &keys).await?;
        let epoch = format!("{:x}-{}", super::now_ms(), std::process::id());
        let _: () = redis::cmd("SET")
            .arg(keys.epoch())
            .arg(&epoch)
            .query_async(&mut conn)
            .await?;
        let (gate_writes, gates_to_write) = mpsc::unbounded_channel();
        let root = settings.shared_root();
        if let Some(root) = &root {
            root.prepare()
                .map_err(|e| RemoteError::Malformed(format!("queue.shared: {e}")))?;
            root.clear_leftovers();
        }
        let shared = Arc::new(Shared {
            gate_writes,
            root,
            settings,
            keys,
            conn,
            flights: Mutex::new(HashMap::new()),
            offers: Mutex::new(HashMap::new()),
            nudge: Notify::new(),
            metrics,
            intake,
            epoch,
            reread: std::sync::atomic::AtomicBool::new(false),
            closed: Mutex::new(Default::default()),
            paused: Mutex::new(Default::default()),
            started: std::time::Instant::now(),
        });
        tokio::spawn(super::upkeep::run(shared.clone(), stop.clone()));
        tokio::spawn(write_gates(shared.clone(), gates_to_write, stop.clone()));
        tokio::spawn(super::reports::run(shared.clone(), stop));
        Ok(RedisQueue { shared })
    }
}

impl Shared {
    /// Takes a flight out (it is answered exactly once) and frees its Redis traces.
    pub fn land(&self, id: &TaskId) -> Option<Flight> {
        let flight = self.flights.lock().ok()?.remove(id)?;
        self.withdraw(&flight.task.input.sha256);
        let (mut conn, keys, entry) = (self.conn.clone(), self.keys.clone(), flight.entry.clone());
        let task = id.clone();
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            if let Some(entry) = entry {
                pipe.cmd("XACK")
                    .arg(keys.tasks())
                    .arg(super::GROUP)
                    .arg(&entry)
                    .ignore();
                pipe.cmd("XDEL").arg(keys.tasks()).arg(&entry).ignore();
            }
            pipe.cmd("DEL").arg(keys.result(&task)).ignore();
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                // Left behind, it is reclaimed later and dropped as an orphan.
                tracing::debug!(task = %task, error = %e, "clearing a finished task from Redis failed");
            }
        });
        Some(flight)
    }

    fn offer(&self, sha256: &str, path: PathBuf) {
        if let Ok(mut offers) = self.offers.lock() {
            offers.entry(sha256.to_string()).or_insert((path, 0)).1 += 1;
        }
    }

    fn withdraw(&self, sha256: &str) {
        if let Ok(mut offers) = self.offers.lock() {
            if let Some(o) = offers.get_mut(sha256) {
                o.1 = o.1.saturating_sub(1);
                if o.1 == 0 {
                    offers.remove(sha256);
                    if let Some(root) = &self.root {
                        let _ = std::fs::remove_file(root.chunk(sha256));
                    }
                }
            }
        }
    }
}

impl TaskQueue for RedisQueue {
    fn submit(&self, task: EncodeTask) -> Result<TaskEvents, QueueError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = &self.shared;
        s.offer(&task.input.sha256, task.local.input.clone());
        let id = task.id.clone();
        let flight = Flight {
            task,
            events: tx,
            entry: None,
            delivery: 1,
            worker: None,
            lost: Vec::new(),
        };
        s.flights
            .lock()
            .map_err(|_| QueueError::Closed)?
            .insert(id, flight);
        s.nudge.notify_one();
        Ok(rx)
    }

    fn cancel(&self, task: &TaskId) {
        let s = &self.shared;
        let Some(flight) = s.land(task) else {
            return;
        };
        let _ = flight
            .events
            .send(TaskEvent::Finished(Err(TaskError::Cancelled)));
        // A worker running it sees the key at its next lease renewal and kills its ffmpeg.
        let (mut conn, key) = (s.conn.clone(), s.keys.cancel(task));
        tokio::spawn(async move {
            let set: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("EX")
                .arg(3600)
                .query_async(&mut conn)
                .await;
            if let Err(e) = set {
                tracing::warn!(%key, error = %e, "the cancel did not reach Redis; the worker finishes in vain");
            }
        });
    }

    fn offered(&self, sha256: &str) -> Option<PathBuf> {
        let offers = self.shared.offers.lock().ok()?;
        offers.get(sha256).map(|(p, _)| p.clone())
    }

    fn set_gate(&self, gate: &str, open: bool) {
        if let Ok(mut closed) = self.shared.closed.lock() {
            match open {
                true => closed.remove(gate),
                false => closed.insert(gate.to_string()),
            };
        }
        self.shared.nudge.notify_one();
        self.shared.tell_workers(gate);
    }

    fn pause_gate(&self, gate: &str, paused: bool) {
        if let Ok(mut p) = self.shared.paused.lock() {
            match paused {
                true => p.insert(gate.to_string()),
                false => p.remove(gate),
            };
        }
        self.shared.tell_workers(gate);
    }
}

impl Shared {
    /// A gate as workers read it from `P:gates`: absent (open), `closed` (no new encodes)
    /// or `paused` (and the running ones SIGSTOPped).
    pub fn gate_state(&self, gate: &str) -> Option<&'static str> {
        let closed = self.closed.lock().is_ok_and(|c| c.contains(gate));
        let paused = self.paused.lock().is_ok_and(|p| p.contains(gate));
        match (closed, paused) {
            (false, _) => None,
            (true, false) => Some("closed"),
            (true, true) => Some("paused"),
        }
    }

    /// Tells workers the gate's state (the schedule enforcer repeats a pause every second,
    /// and a Redis that lost its data gets every gate again).
    pub fn tell_workers(&self, gate: &str) {
        let _ = self.gate_writes.send(gate.to_string());
    }
}

/// Writes each gate's state as it is when its turn comes, in order: a `closed` and then a
/// `paused` written by two racing tasks could otherwise leave `closed` behind.
async fn write_gates(
    s: Arc<Shared>,
    mut gates: mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) {
    let mut conn = s.conn.clone();
    loop {
        let gate = tokio::select! {
            g = gates.recv() => match g {
                Some(g) => g,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let state = s.gate_state(&gate);
        let mut cmd = match state {
            None => redis::cmd("HDEL"),
            Some(_) => redis::cmd("HSET"),
        };
        cmd.arg(s.keys.gates()).arg(&gate);
        if let Some(state) = state {
            cmd.arg(state);
        }
        if let Err(e) = cmd.query_async::<()>(&mut conn).await {
            tracing::warn!(%gate, error = %e, "workers were not told of the schedule");
        }
    }
}
