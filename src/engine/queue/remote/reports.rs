//! Worker reports, read from the events stream: claims and progress become task events;
//! a result is checked (size and SHA-256 of each upload, then codec, height and frames)
//! before its files enter the cache, and each task is answered once.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::StreamReadReply;
use tokio_util::sync::CancellationToken;

use super::coordinator::{Flight, Shared};
use super::shared::SharedRoot;
use super::{connect_patiently, Report, Uploaded};
use crate::engine::artifacts::artifact_key;
use crate::engine::metrics::Metrics;
use crate::engine::queue::TaskEvent;
use crate::engine::task::{verify_rung, TaskError, TaskProgress, TaskResult};
use crate::store::CacheRecord;

const BLOCK: Duration = Duration::from_secs(2);

pub(super) async fn run(s: Arc<Shared>, stop: CancellationToken) {
    let Some(mut conn) = connect_patiently(&s.settings, BLOCK, &stop).await else {
        return;
    };
    // From the start: reports that came while this coordinator was down are read too
    // (those of tasks nobody waits for are dropped).
    let mut last = "0-0".to_string();
    loop {
        if s.reread.swap(false, Ordering::Relaxed) {
            last = "0-0".into();
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(256)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(s.keys.events())
            .arg(&last);
        let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
        let reply = tokio::select! {
            r = read => r,
            _ = stop.cancelled() => return,
        };
        match reply {
            Ok(Some(reply)) => {
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    last = entry.id.clone();
                    match entry
                        .get::<String>("report")
                        .map(|j| serde_json::from_str(&j))
                    {
                        // Results are checked side by side: one slow intake holds up no other.
                        Some(Ok(report @ Report::Done { .. })) => {
                            let s = s.clone();
                            tokio::spawn(async move { handle(&s, report).await });
                        }
                        Some(Ok(report)) => handle(&s, report).await,
                        _ => {
                            tracing::warn!(entry = %entry.id, "a malformed worker report was ignored")
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Acts on one report.
pub(super) async fn handle(s: &Shared, report: Report) {
    match report {
        Report::Claimed { task, worker } => {
            if forward(s, &task, worker, None) {
                Metrics::add(&s.metrics.remote_claimed, 1);
            }
        }
        Report::Progress {
            task,
            worker,
            progress,
        } => {
            forward(s, &task, worker, Some(progress));
        }
        Report::Failed {
            task,
            worker,
            message,
            fatal,
        } => {
            if let Some(flight) = s.land(&task) {
                let error = TaskError::Remote {
                    worker,
                    message,
                    fatal,
                };
                let _ = flight.events.send(TaskEvent::Finished(Err(error)));
            }
        }
        Report::Done {
            task,
            worker,
            ffmpeg,
            outputs,
        } => match s.land(&task) {
            Some(flight) => {
                let started = Instant::now();
                let result = intake(s, &flight, &ffmpeg, &outputs).await;
                Metrics::add(
                    &s.metrics.remote_intake_ms,
                    started.elapsed().as_millis() as u64,
                );
                Metrics::add(&s.metrics.remote_intakes, 1);
                let result = result.map_err(|message| TaskError::Remote {
                    worker,
                    message,
                    fatal: false,
                });
                let _ = flight.events.send(TaskEvent::Finished(result));
            }
            None => discard_orphan(s, &outputs).await,
        },
    }
}

/// Passes a claim or progress report on, with the worker's name; false when no task of
/// this coordinator's waits for it.
fn forward(
    s: &Shared,
    task: &crate::store::TaskId,
    worker: String,
    p: Option<TaskProgress>,
) -> bool {
    let Ok(mut flights) = s.flights.lock() else {
        return false;
    };
    let Some(f) = flights.get_mut(task) else {
        return false;
    };
    f.worker = Some(worker.clone());
    let progress = p.unwrap_or(TaskProgress {
        pass: 0,
        passes: f.task.commands.len(),
        progress: Default::default(),
        worker: None,
    });
    let _ = f.events.send(TaskEvent::Progress(TaskProgress {
        worker: Some(worker),
        ..progress
    }));
    true
}

/// Checks each uploaded output and moves it into the cache, keyed with the worker's ffmpeg.
async fn intake(
    s: &Shared,
    flight: &Flight,
    ffmpeg: &str,
    outputs: &[Uploaded],
) -> Result<TaskResult, String> {
    let task = &flight.task;
    if outputs.len() != task.rungs.len() {
        return Err(format!(
            "sent {} outputs for {} rungs",
            outputs.len(),
            task.rungs.len()
        ));
    }
    let mut taken: Vec<PathBuf> = Vec::new();
    let mut artifacts: Vec<CacheRecord> = Vec::new();
    let mut failure = None;
    for up in outputs {
        match take_blob(&s.intake.blobs, s.root.as_ref(), up).await {
            Ok(path) => taken.push(path),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() {
        // Every rung at once (ffprobe for other containers than MP4).
        let checks = task
            .rungs
            .iter()
            .zip(&taken)
            .map(|(rung, path)| verify_rung(&s.intake.tools, rung, task.expected_frames, path));
        failure = futures::future::join_all(checks)
            .await
            .into_iter()
            .zip(outputs)
            .find_map(|(r, up)| {
                r.err()
                    .map(|e| format!("its upload {} was refused: {e}", up.sha256))
            });
    }
    if failure.is_none() {
        for ((rung, up), path) in task.rungs.iter().zip(outputs).zip(&taken) {
            let key = artifact_key(&task.input, &rung.settings, ffmpeg);
            let ext = rung.rung.chunk_ext();
            match s
                .intake
                .artifacts
                .admit(&key, path, &task.input, task.expected_frames, ext)
                .await
            {
                Ok(record) if record.sha256 == up.sha256 => artifacts.push(record),
                Ok(record) => {
                    let _ = tokio::fs::remove_file(s.intake.artifacts.path_of(&record)).await;
                    failure = Some(format!("upload {} changed on the way in", up.sha256));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("storing its upload {}: {e}", up.sha256));
                    break;
                }
            }
        }
    }
    for path in &taken {
        let _ = tokio::fs::remove_file(path).await;
    }
    match failure {
        None => Ok(TaskResult { artifacts }),
        Some(why) => {
            for a in &artifacts {
                let _ = tokio::fs::remove_file(s.intake.artifacts.path_of(a)).await;
            }
            Err(why)
        }
    }
}

/// Moves an uploaded blob (or a result placed in the shared root) out of its directory,
/// under a name of its own (so no other task takes the same file), after checking its
/// size. An upload's SHA-256 was checked as it was received; every result's is checked
/// again as it enters the cache.
async fn take_blob(
    blobs: &Path,
    root: Option<&SharedRoot>,
    up: &Uploaded,
) -> Result<PathBuf, String> {
    if !crate::engine::queue::is_sha256(&up.sha256) {
        return Err(format!("{:?} is not a SHA-256", up.sha256));
    }
    let mut blob = blobs.join(&up.sha256);
    if let Some(placed) = root.map(|r| r.result(&up.sha256)) {
        if !blob.exists() && placed.exists() {
            blob = placed;
        }
    }
    let taken = blob.with_file_name(format!(".intake-{}-{}", up.sha256, super::now_ms()));
    tokio::fs::rename(&blob, &taken)
        .await
        .map_err(|e| format!("its upload {} is not here: {e}", up.sha256))?;
    let size = tokio::fs::metadata(&taken).await.map(|m| m.len()).ok();
    if size != Some(up.size) {
        let _ = tokio::fs::remove_file(&taken).await;
        return Err(format!(
            "its upload {} holds {size:?} bytes, not {}",
            up.sha256, up.size
        ));
    }
    Ok(taken)
}

/// A result for a task nobody waits for (cancelled, or its job ended): its uploads go.
async fn discard_orphan(s: &Shared, outputs: &[Uploaded]) {
    if s.started.elapsed() < ORPHAN_GRACE {
        // Just restarted: the job it belongs to may not have been resumed yet.
        return;
    }
    for up in outputs {
        if crate::engine::queue::is_sha256(&up.sha256) {
            let _ = tokio::fs::remove_file(s.intake.blobs.join(&up.sha256)).await;
            if let Some(root) = &s.root {
                let _ = tokio::fs::remove_file(root.result(&up.sha256)).await;
            }
        }
    }
}

/// How long after its start a coordinator keeps results no task waits for yet.
const ORPHAN_GRACE: Duration = Duration::from_secs(120);
