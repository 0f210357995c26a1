//! `spool worker`: claims encode tasks from Redis, fetches each input from the coordinator,
//! checks the task's argv with its own guard, runs the same `execute` as a local worker,
//! uploads the verified outputs and reports. It keeps no durable state: its directory is
//! scratch space, emptied at start and after each task, and it runs no Lua.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamReadReply};
use tokio_util::sync::CancellationToken;

use super::hand::{Hand, Ticket};
use super::inputs::{Found, InputHold, Inputs};
use super::lease::{Lease, LeaseEnd};
use super::shared::SharedRoot;
use super::transfer::{Coordinator, TransferError};
use super::{connect_patiently, ensure_group, send_report, Envelope, Keys, RedisSettings};
use super::{Report, Uploaded, GROUP, HEARTBEAT};
use crate::engine::artifacts::ArtifactStore;
use crate::engine::exec::Runner;
use crate::engine::task::spec::Bindings;
use crate::engine::task::{execute, EncodeTask, ExecEnv, LocalPaths, OutputPaths, TaskError};
use crate::media::argv_guard::{check_argv, ArgvRules};
use crate::media::tools::{FfmpegError, Tools};

const BLOCK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub settings: RedisSettings,
    /// The coordinator's API, e.g. `http://10.0.0.5:7300`.
    pub coordinator: String,
    pub token: Option<String>,
    pub concurrency: usize,
    /// Scratch space (emptied at start).
    pub work: PathBuf,
    pub name: String,
    /// The shared root as this machine mounts it (`--shared`), if any.
    pub shared: Option<PathBuf>,
    /// Bytes of downloaded inputs kept for later tasks of the same file.
    pub keep_inputs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Tools(#[from] FfmpegError),
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// A default worker name: host and process.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// What every slot of this worker shares.
struct Ctx {
    cfg: WorkerConfig,
    keys: Keys,
    env: ExecEnv,
    coordinator: Coordinator,
    conn: ConnectionManager,
    hand: Arc<Hand>,
    inputs: Arc<Inputs>,
    root: Option<SharedRoot>,
}

/// Runs until `stop`: a task running then is killed and left to its lease (another worker
/// gets it once the lease runs out).
pub async fn run(cfg: WorkerConfig, stop: CancellationToken) -> Result<(), WorkerError> {
    let tools = Tools::locate().await?;
    // Absolute: ffmpeg's argv and the argv guard need whole paths.
    std::fs::create_dir_all(&cfg.work).map_err(|source| WorkerError::Dir {
        path: cfg.work.display().to_string(),
        source,
    })?;
    let mut cfg = cfg;
    cfg.work = std::fs::canonicalize(&cfg.work).map_err(|source| WorkerError::Dir {
        path: cfg.work.display().to_string(),
        source,
    })?;
    for sub in ["in", "jobs", "cache"] {
        let dir = cfg.work.join(sub);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| WorkerError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let launch = crate::engine::exec::launch();
    let runner = Arc::new(Runner::new(tools, cfg.concurrency.max(1), None, launch));
    let Some(conn) = connect_patiently(&cfg.settings, Duration::from_secs(1), &stop).await else {
        return Ok(());
    };
    let ctx = Arc::new(Ctx {
        keys: cfg.settings.keys(),
        env: ExecEnv {
            runner,
            artifacts: Arc::new(ArtifactStore::new(cfg.work.join("cache"))),
        },
        coordinator: Coordinator::new(&cfg.coordinator, cfg.token.clone()),
        conn,
        hand: Hand::new(cfg.concurrency),
        inputs: Inputs::new(cfg.work.join("in"), cfg.keep_inputs),
        root: cfg
            .shared
            .as_deref()
            .map(|r| SharedRoot::new(r, &cfg.settings.prefix)),
        cfg,
    });
    tracing::info!(worker = %ctx.cfg.name, ffmpeg = %ctx.env.runner.tools().version, "worker ready");
    let beat = tokio::spawn(heartbeat(ctx.clone(), stop.clone()));
    claim(ctx.clone(), stop).await;
    beat.abort();
    let _: redis::RedisResult<()> = redis::cmd("ZREM")
        .arg(ctx.keys.workers())
        .arg(&ctx.cfg.name)
        .query_async(&mut ctx.conn.clone())
        .await;
    Ok(())
}

/// Says this worker is alive, and follows the schedules' gates.
async fn heartbeat(ctx: Arc<Ctx>, stop: CancellationToken) {
    let mut conn = ctx.conn.clone();
    let mut gates: HashMap<String, String> = HashMap::new();
    loop {
        let beat: redis::RedisResult<((), HashMap<String, String>)> = redis::pipe()
            .cmd("ZADD")
            .arg(ctx.keys.workers())
            .arg(super::now_ms())
            .arg(&ctx.cfg.name)
            .cmd("HGETALL")
            .arg(ctx.keys.gates())
            .query_async(&mut conn)
            .await;
        if let Ok((_, now)) = beat {
            follow_gates(&ctx.env.runner, &gates, &now);
            gates = now;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.cancelled() => break,
        }
    }
    // Nothing is left stopped behind.
    follow_gates(&ctx.env.runner, &gates, &HashMap::new());
}

/// Applies the coordinator's gates: `closed` holds back new encodes of that workflow,
/// `paused` also SIGSTOPs its running ones (again at every beat, for any that started
/// just before); an opened or unpaused gate lets them go on (SIGCONT).
fn follow_gates(runner: &Runner, was: &HashMap<String, String>, now: &HashMap<String, String>) {
    for (gate, state) in was {
        if state == "paused" && now.get(gate).is_none_or(|s| s != "paused") {
            let n = runner.signal_gate(gate, Signal::SIGCONT);
            tracing::info!(workflow = %gate, resumed = n, "schedule: paused encodes go on");
        }
        if !now.contains_key(gate) {
            runner.set_gate(gate, true);
            tracing::info!(workflow = %gate, "schedule open: its encodes start again");
        }
    }
    for (gate, state) in now {
        if !was.contains_key(gate) {
            tracing::info!(workflow = %gate, "schedule closed: no new encodes of it start");
            runner.set_gate(gate, false);
        }
        if state == "paused" {
            let n = runner.signal_gate(gate, Signal::SIGSTOP);
            if was.get(gate).is_none_or(|s| s != "paused") {
                tracing::info!(workflow = %gate, paused = n, "schedule: running encodes paused");
            }
        }
    }
}

/// Claims tasks while the hand has room (a free slot, or one about to be) and runs each
/// on its own; on `stop`, waits for the ones in hand (their leases end with it).
async fn claim(ctx: Arc<Ctx>, stop: CancellationToken) {
    let mut running = tokio::task::JoinSet::new();
    if let Some(mut conn) = connect_patiently(&ctx.cfg.settings, BLOCK, &stop).await {
        loop {
            tokio::select! {
                _ = ctx.hand.room() => {}
                _ = stop.cancelled() => break,
            }
            while running.try_join_next().is_some() {}
            let Some(entry) = read_one(&ctx, &mut conn, &stop).await else {
                if stop.is_cancelled() {
                    break;
                }
                continue;
            };
            let ticket = ctx.hand.take();
            let (ctx, stop) = (ctx.clone(), stop.clone());
            running.spawn(async move { take(&ctx, entry, ticket, &stop).await });
        }
    }
    while running.join_next().await.is_some() {}
}

/// One entry from the group, or None after the block time (or on an error, after a pause).
async fn read_one(
    ctx: &Ctx,
    conn: &mut ConnectionManager,
    stop: &CancellationToken,
) -> Option<StreamId> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(&ctx.cfg.name)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(ctx.keys.tasks())
        .arg(">");
    let read = cmd.query_async::<Option<StreamReadReply>>(conn);
    let reply = tokio::select! {
        r = read => r,
        _ = stop.cancelled() => return None,
    };
    match reply {
        Ok(reply) => reply?.keys.into_iter().flat_map(|k| k.ids).next(),
        Err(e) => {
            if e.code() == Some("NOGROUP") {
                let _ = ensure_group(conn, &ctx.keys).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

/// One claimed entry, from the claim to the acknowledgement.
async fn take(ctx: &Ctx, entry: StreamId, mut ticket: Ticket, stop: &CancellationToken) {
    let mut conn = ctx.conn.clone();
    let envelope = entry
        .get::<String>("task")
        .and_then(|j| serde_json::from_str::<Envelope>(&j).ok());
    let Some(envelope) = envelope else {
        tracing::warn!(entry = %entry.id, "a malformed task entry was dropped");
        ack(ctx, &entry.id).await;
        return;
    };
    let (task, delivery, length) = (envelope.task.clone(), envelope.delivery, envelope.lease());
    ticket.expect(task.expected_frames);
    let lease = Lease::keep(
        ctx.conn.clone(),
        ctx.keys.clone(),
        &ctx.cfg,
        (&entry.id, &task.id, length),
        stop,
    );
    let report = Report::Claimed {
        task: task.id.clone(),
        worker: ctx.cfg.name.clone(),
    };
    let _ = send_report(&mut conn, &ctx.keys, &report).await;
    tracing::info!(task = %task.id, label = %task.label, delivery, in_hand = ctx.hand.held(), input = %task.input.sha256, "claimed");
    let scratch = ctx
        .cfg
        .work
        .join("jobs")
        .join(format!("{}-{}-{delivery}", task.id.job, task.id.index));
    let outcome = encode(ctx, task.clone(), &scratch, &lease, &mut ticket).await;
    ticket.release();
    let end = lease.end().await;
    let report = match (outcome, end) {
        (_, LeaseEnd::Lost) | (_, LeaseEnd::Stopped) => {
            tracing::warn!(task = %task.id, "lease lost or worker stopping: the task is left to another worker");
            None
        }
        (_, LeaseEnd::Cancelled) => {
            ack(ctx, &entry.id).await;
            None
        }
        (Ok(outputs), LeaseEnd::Held) => Some(Report::Done {
            task: task.id.clone(),
            worker: ctx.cfg.name.clone(),
            ffmpeg: ctx.env.runner.tools().version.clone(),
            outputs,
        }),
        (Err(error), LeaseEnd::Held) => Some(Report::Failed {
            task: task.id.clone(),
            worker: ctx.cfg.name.clone(),
            fatal: error.is_fatal(),
            message: error.to_string(),
        }),
    };
    if let Some(report) = report {
        deliver(ctx, &report).await;
        ack(ctx, &entry.id).await;
    }
    let _ = tokio::fs::remove_dir_all(&scratch).await;
}

/// Download, check, encode, upload. The outputs' files are gone from here afterwards.
async fn encode(
    ctx: &Ctx,
    mut task: EncodeTask,
    scratch: &Path,
    lease: &Lease,
    ticket: &mut Ticket,
) -> Result<Vec<Uploaded>, TaskError> {
    let hold = ctx.inputs.hold(&task.input.sha256);
    let input = fetch(ctx, &task, &hold).await?;
    tokio::fs::create_dir_all(scratch.join("enc"))
        .await
        .map_err(|e| TaskError::Input(format!("{}: {e}", scratch.display())))?;
    task.local = LocalPaths {
        input,
        work: scratch.to_path_buf(),
    };
    guard(&task)?;
    if lease.cancelled_before_start().await {
        return Err(TaskError::Cancelled);
    }
    let mut forward = lease.progress_sender();
    let result = execute(&ctx.env, &task, lease.token(), |p| {
        ticket.note(&p);
        forward(p)
    })
    .await;
    // The slot is free: the next task (perhaps already downloaded) encodes while this
    // one's outputs upload.
    ticket.release();
    let result = result?;
    let mut uploaded = Vec::new();
    let mut failure = None;
    for record in &result.artifacts {
        let path = ctx.env.artifacts.path_of(record);
        if failure.is_none() {
            match hand_back(ctx, &path, &record.sha256).await {
                Ok(()) => uploaded.push(Uploaded {
                    sha256: record.sha256.clone(),
                    size: record.bytes,
                }),
                Err(e) => failure = Some(e),
            }
        }
        let _ = tokio::fs::remove_file(&path).await;
    }
    match failure {
        None => Ok(uploaded),
        Some(e) => Err(TaskError::Input(format!("uploading the result: {e}"))),
    }
}

async fn fetch(ctx: &Ctx, task: &EncodeTask, hold: &InputHold) -> Result<PathBuf, TaskError> {
    match hold
        .fetch(&ctx.coordinator, ctx.root.as_ref(), task.input.size)
        .await
    {
        Ok((path, found)) => {
            if let Found::Downloaded(took) = found {
                ctx.hand.learn_download(took);
            }
            Ok(path)
        }
        // Not the input's fault: another delivery may succeed.
        Err(e) => Err(TaskError::Remote {
            worker: ctx.cfg.name.clone(),
            message: format!("fetching the input: {e}"),
            fatal: false,
        }),
    }
}

/// Gives a result to the coordinator: placed in the shared root if there is one (an upload
/// when placing fails), else uploaded.
async fn hand_back(ctx: &Ctx, path: &Path, sha256: &str) -> Result<(), TransferError> {
    if let Some(root) = &ctx.root {
        let (src, dest) = (path.to_path_buf(), root.result(sha256));
        match tokio::task::spawn_blocking(move || super::shared::place(&src, &dest, true)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot place the result in the shared root: uploading it")
            }
            Err(e) => tracing::warn!(error = %e, "placing the result failed: uploading it"),
        }
    }
    upload(ctx, path, sha256).await
}

async fn upload(ctx: &Ctx, path: &Path, sha256: &str) -> Result<(), TransferError> {
    let coordinator = ctx.coordinator.clone();
    let (path, sha) = (path.to_path_buf(), sha256.to_string());
    tokio::task::spawn_blocking(move || coordinator.upload(&path, &sha))
        .await
        .map_err(|e| TransferError::Unreachable(e.to_string()))?
        .map(|_| ())
}

/// The coordinator checked this argv before publishing it; this worker checks it again,
/// rendered with its own paths, with the same guard: it may read only its input and
/// scratch directory and write only there. Nothing runs through a shell.
fn guard(task: &EncodeTask) -> Result<(), TaskError> {
    let outputs: Vec<OutputPaths> = task
        .rungs
        .iter()
        .map(|r| OutputPaths::of(&task.local.work, task.id.index, &r.rung))
        .collect();
    let bound = Bindings {
        input: &task.local.input,
        work: &task.local.work,
        outputs: &outputs,
    };
    let rules = ArgvRules {
        readable: vec![task.local.input.clone(), task.local.work.clone()],
        writable: task.local.work.clone(),
    };
    for template in &task.commands {
        let argv: Vec<String> = template
            .render(&bound)?
            .into_iter()
            .map(|a| a.into_string())
            .collect::<Result<_, _>>()
            .map_err(|a| {
                TaskError::Input(format!(
                    "the task's argv holds a non-UTF-8 argument {a:?}: refused"
                ))
            })?;
        check_argv(&[], &argv, &rules).map_err(|why| TaskError::Remote {
            worker: "guard".into(),
            message: format!("this worker's argv guard refused the task: {why}"),
            fatal: true,
        })?;
    }
    Ok(())
}

/// Sends a final report, trying for a while if Redis is away.
async fn deliver(ctx: &Ctx, report: &Report) {
    let mut conn = ctx.conn.clone();
    for _ in 0..60 {
        match send_report(&mut conn, &ctx.keys, report).await {
            Ok(()) => return,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    tracing::error!(task = %report.task(), "the task's report could not be sent; its lease runs out and it goes to another worker");
}

async fn ack(ctx: &Ctx, entry: &str) {
    let acked: redis::RedisResult<()> = redis::cmd("XACK")
        .arg(ctx.keys.tasks())
        .arg(GROUP)
        .arg(entry)
        .query_async(&mut ctx.conn.clone())
        .await;
    if let Err(e) = acked {
        tracing::debug!(%entry, error = %e, "acknowledging failed; the coordinator clears it");
    }
}
