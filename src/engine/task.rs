//! One encode task: take what the cache holds, encode the rest, verify each chunk, retry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use std::ffi::OsString;

use serde_json::json;

use super::cache::{cache_key, fingerprint, Miss};
use super::hooks::{ErrorAction, ErrorReply, JobScript};
use super::job::{JobCtx, JobFailure};
use super::queue::{EncodeOutput, EncodeTask};
use super::Event;
use crate::media::command::{encode_commands, RungOutput};
use crate::media::hash::{sha256_hex, FileDigest};
use crate::media::profiles::Rung;
use crate::media::run::RunError;
use crate::media::verify::{verify_chunk, Expected};
use crate::store::{TaskRecord, TaskStatus};
use crate::workflow::Hook;

/// A chunk of the source's video (or the whole source, index None).
#[derive(Debug, Clone)]
pub(super) struct ChunkInfo {
    pub index: Option<u32>,
    pub path: PathBuf,
    pub digest: FileDigest,
    pub frames: u64,
    pub duration: f64,
}

/// Which chunk and rungs a task covers. `rank` orders tasks: low rungs first.
#[derive(Debug, Clone)]
pub(super) struct TaskSpec {
    pub chunk: usize,
    pub rungs: Vec<usize>,
    pub rank: u32,
}

pub(super) struct TaskDone {
    /// The encoded file of each of the task's rungs, in the spec's order.
    pub paths: Vec<PathBuf>,
    pub reused: usize,
}

const PROGRESS_PERSIST_EVERY: Duration = Duration::from_secs(2);
/// However often on_error says retry, a task stops after this many attempts.
const MAX_SCRIPTED_ATTEMPTS: u32 = 20;

fn rung_outputs(outputs: &[EncodeOutput]) -> Vec<RungOutput<'_>> {
    outputs
        .iter()
        .map(|o| RungOutput {
            rung: &o.rung,
            path: &o.path,
            passlog: &o.passlog,
            scale: o.scale,
        })
        .collect()
}

/// Where a task's encoder writes one rung: named by task and rung inside the work dir.
pub(super) fn encode_output(work: &Path, task: u32, rung: &Rung) -> EncodeOutput {
    let stem = format!("t{task:05}");
    EncodeOutput {
        rung: rung.clone(),
        path: work.join("enc").join(format!(
            "{stem}-{}.{}",
            rung.name,
            rung.codec.container_ext()
        )),
        passlog: work.join("enc").join(format!("{stem}-{}-pass", rung.name)),
        // Always through scale: -2 keeps the width even for odd-sized sources.
        scale: true,
    }
}

/// Which job and task a command belongs to, as before_task is told.
pub(super) struct TaskAt<'a> {
    pub job: &'a str,
    pub work: &'a Path,
    pub record: &'a TaskRecord,
}

/// spool's commands for the task, passed through before_task. Also returns, when the hook
/// changed them, a fingerprint of the change with the job's own paths taken out.
pub(super) async fn hooked_commands(
    script: &JobScript,
    at: &TaskAt<'_>,
    input: &Path,
    outputs: &[EncodeOutput],
) -> Result<(Vec<Vec<OsString>>, Option<String>), JobFailure> {
    let record = at.record;
    let commands = encode_commands(input, &rung_outputs(outputs));
    let passes = commands.len();
    let mut hooked = Vec::with_capacity(passes);
    for (pass, argv) in commands.iter().enumerate() {
        let task = json!({
            "job": at.job, "index": record.index, "chunk": record.chunk,
            "rungs": record.rungs, "pass": pass + 1, "passes": passes,
            "input": input.display().to_string(),
            "work_dir": at.work.display().to_string(),
        });
        let shown: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let key = format!(
            "{}/{pass}/{}",
            record.index,
            &sha256_hex(shown.join("\0").as_bytes())[..16]
        );
        hooked.push(script.before_task(task, key, argv.clone()).await?);
    }
    if hooked == commands {
        return Ok((hooked, None));
    }
    let work = at.work.display().to_string();
    let input = input.display().to_string();
    let normal: Vec<Vec<String>> = hooked
        .iter()
        .map(|argv| {
            argv.iter()
                .map(|a| {
                    a.to_string_lossy()
                        .replace(&input, "{input}")
                        .replace(&work, "{work}")
                })
                .collect()
        })
        .collect();
    let print = sha256_hex(
        serde_json::to_string(&normal)
            .unwrap_or_default()
            .as_bytes(),
    );
    Ok((hooked, Some(print)))
}

/// Asks on_error (if the workflow has it) what to do about a failed attempt.
async fn ask_on_error(
    ctx: &JobCtx<'_>,
    record: &TaskRecord,
    label: &str,
    attempt: u32,
    e: &RunError,
) -> Result<Option<ErrorReply>, JobFailure> {
    if !ctx.script.has(Hook::OnError) {
        return Ok(None);
    }
    let job = json!({
        "id": ctx.id, "input": ctx.input.display().to_string(),
        "workflow": ctx.workflow.name,
    });
    let error = json!({
        "task": label, "index": record.index, "attempt": attempt,
        "max_attempts": ctx.workflow.retries.max_attempts,
        "message": e.to_string(), "fatal": e.is_fatal(), "stderr_tail": e.stderr_tail(),
    });
    ctx.script
        .on_error(job, error, format!("{}/{attempt}", record.index))
        .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_task(
    ctx: &JobCtx<'_>,
    spec: &TaskSpec,
    mut record: TaskRecord,
    chunk: &ChunkInfo,
    rungs: &[Rung],
    cancel: &CancellationToken,
    report: &(dyn Fn(&super::Engine, &str, usize, f64) + Sync),
) -> Result<TaskDone, JobFailure> {
    let engine = ctx.engine;
    let label = match chunk.index {
        Some(i) => format!("chunk {i} [{}]", record.rungs.join(",")),
        None => format!("whole file [{}]", record.rungs.join(",")),
    };
    let task_index = record.index as usize;
    let output_of = |r: usize| encode_output(&ctx.work, record.index, &rungs[r]);
    // A before_task hook may change the argv, so what it changed is part of the cache key,
    // and the task's rungs are then encoded together or taken from the cache together.
    let hooked = match ctx.script.has(Hook::BeforeTask) {
        true => {
            let all: Vec<EncodeOutput> = spec.rungs.iter().map(|r| output_of(*r)).collect();
            let at = TaskAt {
                job: &ctx.id,
                work: &ctx.work,
                record: &record,
            };
            Some(hooked_commands(&ctx.script, &at, &chunk.path, &all).await?)
        }
        false => None,
    };
    let tweak = hooked
        .as_ref()
        .and_then(|h| h.1.clone())
        .unwrap_or_default();
    let mut paths: Vec<Option<PathBuf>> = vec![None; spec.rungs.len()];
    let keys: Vec<String> = spec
        .rungs
        .iter()
        .map(|r| {
            let print = fingerprint(&engine.tools, &rungs[*r]);
            cache_key(&chunk.digest, &format!("{print}{tweak}"))
        })
        .collect();
    let keys: Vec<String> = match tweak.is_empty() {
        true => keys,
        // Re-hash so the tweak reaches the key's shortened fingerprint.
        false => keys
            .iter()
            .map(|k| format!("{k}-{}", &sha256_hex(k.as_bytes())[..12]))
            .collect(),
    };
    if !ctx.force {
        // Every rung's cache check at once.
        let lookups = keys.iter().zip(&spec.rungs).map(|(key, r)| {
            let rung = &rungs[*r];
            engine
                .cache
                .lookup(&engine.tools, key, &chunk.digest, rung, chunk.frames)
        });
        let found = futures::future::join_all(lookups).await;
        for ((slot, key), hit) in keys.iter().enumerate().zip(found) {
            match hit {
                Ok(Ok(path)) => paths[slot] = Some(path),
                Ok(Err(Miss::Collision)) => {
                    tracing::warn!(job = %ctx.id, %key, "MD5 collision: same MD5, different SHA-256; encoding")
                }
                Ok(Err(Miss::Invalid(why))) => {
                    tracing::info!(job = %ctx.id, %key, %why, "cached chunk no longer valid; encoding again")
                }
                Ok(Err(Miss::Absent)) => {}
                Err(e) => return Err(JobFailure::new(e.to_string())),
            }
        }
        if hooked.is_some() && paths.iter().any(Option::is_none) {
            paths = vec![None; spec.rungs.len()];
        }
    }
    let reused = paths.iter().filter(|p| p.is_some()).count();
    super::metrics::Metrics::add(&engine.metrics.cache_hits, reused as u64);
    let missing: Vec<usize> = (0..spec.rungs.len())
        .filter(|s| paths[*s].is_none())
        .collect();
    if missing.is_empty() {
        let done = Finished {
            record,
            reused,
            label,
            paths,
        };
        return finish(ctx, done, Vec::new(), task_index, report).await;
    }

    let outputs: Vec<EncodeOutput> = missing.iter().map(|s| output_of(spec.rungs[*s])).collect();
    let commands = match hooked {
        Some((commands, _)) => commands,
        None => encode_commands(&chunk.path, &rung_outputs(&outputs)),
    };
    let max_attempts = ctx.workflow.retries.max_attempts;
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        record.attempts += 1;
        let task = EncodeTask {
            label: label.clone(),
            commands: commands.clone(),
            priority: (ctx.seq, spec.rank, chunk.index.unwrap_or(0)),
        };
        let (job, repo) = (ctx.id.clone(), engine.repo.clone());
        let mut persisted = Instant::now();
        let mut progress_record = record.clone();
        let mut started = false;
        let events = engine.events.clone();
        let duration = chunk.duration;
        let task_label = label.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
        let sink = Box::new(
            move |pass: usize, passes: usize, p: &crate::media::progress::Progress| {
                let fraction = (pass as f64 + p.fraction_of(duration)) / passes as f64;
                let _ = events.send(Event::TaskProgress {
                    job: job.clone(),
                    task: task_label.clone(),
                    fraction,
                    fps: p.fps,
                    speed: p.speed,
                });
                let _ = tx.send(fraction);
                // Running from ffmpeg's first report (not while waiting for a slot);
                // after that, sled sees progress at a throttled rate.
                if !started || persisted.elapsed() >= PROGRESS_PERSIST_EVERY {
                    started = true;
                    progress_record.status = TaskStatus::Running;
                    persisted = Instant::now();
                    progress_record.progress = fraction;
                    let (repo, rec) = (repo.clone(), progress_record.clone());
                    tokio::task::spawn_blocking(move || repo.put_task(&rec));
                }
            },
        );
        let _running = super::metrics::Running::start(&engine.metrics.tasks_running);
        let encode_started = Instant::now();
        let run = engine.queue.submit(task, cancel.clone(), sink);
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(f) = rx.recv() => report(engine, &ctx.id, task_index, f),
            }
        };
        super::metrics::Metrics::add(
            &engine.metrics.encode_ms,
            encode_started.elapsed().as_millis() as u64,
        );
        let checked = match outcome {
            Ok(()) => verify_chunks(ctx, &outputs, chunk.frames).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => break Ok(()),
            Err(e) => {
                for o in &outputs {
                    let _ = tokio::fs::remove_file(&o.path).await;
                }
                if matches!(e, RunError::Cancelled) {
                    break Err(e);
                }
                let decision = ask_on_error(ctx, &record, &label, attempt, &e).await?;
                let backoff = match decision {
                    Some(d) if d.action == ErrorAction::Skip => {
                        return Err(JobFailure::skipped(d.reason.unwrap_or_else(|| {
                            format!("on_error skipped the job after {label} failed: {e}")
                        })))
                    }
                    Some(d) if d.action == ErrorAction::Fail => break Err(e),
                    // A script may retry past max_attempts, but not forever.
                    Some(_) if attempt >= MAX_SCRIPTED_ATTEMPTS => break Err(e),
                    Some(d) => d.delay_seconds.unwrap_or(0.0),
                    None if e.is_fatal() || attempt >= max_attempts => break Err(e),
                    None => ctx.workflow.retries.backoff_seconds * 2f64.powi(attempt as i32 - 1),
                };
                tracing::warn!(job = %ctx.id, task = %label, attempt, error = %e, "retrying in {backoff:.1}s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(backoff)) => {}
                    _ = cancel.cancelled() => break Err(RunError::Cancelled),
                }
            }
        }
    };
    if let Err(e) = result {
        record.status = if matches!(e, RunError::Cancelled) {
            TaskStatus::Pending
        } else {
            TaskStatus::Failed
        };
        record.error = Some(e.to_string());
        let failed = record.clone();
        let _ = engine.store(move |r| r.put_task(&failed)).await;
        return Err(JobFailure::from_run(&label, e));
    }
    let mut admitted = Vec::new();
    for (o, s) in outputs.iter().zip(&missing) {
        let ext = o.rung.codec.container_ext();
        let rec = engine
            .cache
            .admit(&keys[*s], &o.path, &chunk.digest, chunk.frames, ext)
            .await
            .map_err(|e| JobFailure::new(format!("storing {label} in the cache: {e}")))?;
        paths[*s] = Some(engine.cache.path_for(&keys[*s], ext));
        admitted.push(rec);
    }
    let done = Finished {
        record,
        reused,
        label,
        paths,
    };
    finish(ctx, done, admitted, task_index, report).await
}

/// A task whose every rung has a file, from the cache or just encoded.
struct Finished {
    record: TaskRecord,
    reused: usize,
    label: String,
    paths: Vec<Option<PathBuf>>,
}

/// Marks the task done together with its new cache entries (one durable transaction),
/// then reports it.
async fn finish(
    ctx: &JobCtx<'_>,
    mut done: Finished,
    admitted: Vec<crate::store::CacheRecord>,
    task_index: usize,
    report: &(dyn Fn(&super::Engine, &str, usize, f64) + Sync),
) -> Result<TaskDone, JobFailure> {
    let engine = ctx.engine;
    done.record.status = TaskStatus::Done;
    done.record.progress = 1.0;
    done.record.reused_rungs = done.reused as u32;
    done.record.error = None;
    let record = done.record;
    engine
        .store(move |r| r.finish_task(&record, &admitted))
        .await
        .map_err(|e| JobFailure::new(e.to_string()))?;
    report(engine, &ctx.id, task_index, 1.0);
    engine.emit(Event::TaskFinished {
        job: ctx.id.clone(),
        task: done.label,
        reused: done.reused,
    });
    Ok(TaskDone {
        paths: done.paths.into_iter().flatten().collect(),
        reused: done.reused,
    })
}

/// Each encoded chunk must hold exactly the chunk's frames, in the right codec and height.
/// The outputs are checked at once (in-process for MP4, see `verify_chunk`).
async fn verify_chunks(
    ctx: &JobCtx<'_>,
    outputs: &[EncodeOutput],
    frames: u64,
) -> Result<(), RunError> {
    let checks = outputs.iter().map(|o| async move {
        let want = Expected {
            codec: o.rung.codec.probe_name(),
            height: Some(o.rung.height),
            frames: Some(frames),
            duration: None,
            has_audio: false,
            max_av_start_gap_s: 0.0,
        };
        verify_chunk(&ctx.engine.tools, &o.path, &want)
            .await
            .map_err(|e| format!("encoded {} is wrong: {e}", o.rung.name))
    });
    match futures::future::join_all(checks)
        .await
        .into_iter()
        .find_map(Result::err)
    {
        None => Ok(()),
        Some(message) => Err(RunError::Failed {
            code: "0".into(),
            message,
            stderr_tail: Vec::new(),
        }),
    }
}
