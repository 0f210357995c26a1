//! `execute(task)`: render the task's argv with this executor's paths, run it, check every
//! output, and put each into the content-addressed artifact store. The local queue's
//! workers call it; a remote worker calls the same function.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::spec::{Bindings, EncodeTask, OutputPaths, TaskRung};
use super::{TaskError, TaskProgress, TaskResult};
use crate::confine::Paths;
use crate::engine::artifacts::{artifact_key, ArtifactStore};
use crate::engine::exec::{Command, Phase, Placement, Runner};
use crate::media::verify::{verify_chunk, Expected};
use crate::store::CacheRecord;

/// What an executor works with.
pub struct ExecEnv {
    pub runner: Arc<Runner>,
    pub artifacts: Arc<ArtifactStore>,
}

pub async fn execute(
    env: &ExecEnv,
    task: &EncodeTask,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(TaskProgress) + Send,
) -> Result<TaskResult, TaskError> {
    let work = &task.local.work;
    let input = &task.local.input;
    check_input(input, task.input.size).await?;
    let outputs: Vec<OutputPaths> = task
        .rungs
        .iter()
        .map(|r| OutputPaths::of(work, task.id.index, &r.rung))
        .collect();
    let bound = Bindings {
        input,
        work,
        outputs: &outputs,
    };
    let at = Placement {
        priority: task.priority,
        gate: Arc::from(task.gate.as_str()),
        paths: Arc::new(Paths {
            read: vec![input.clone(), work.clone()],
            write: vec![work.clone()],
        }),
    };
    let passes = task.commands.len();
    let ran = async {
        for (pass, template) in task.commands.iter().enumerate() {
            let command = Command {
                phase: Phase::Encode,
                label: task.label.clone(),
                args: template.render(&bound)?,
            };
            env.runner
                .run(&command, &at, cancel, |p| {
                    on_progress(TaskProgress {
                        pass,
                        passes,
                        progress: p.clone(),
                        worker: None,
                    })
                })
                .await?;
        }
        verify_outputs(env, task, &outputs).await
    }
    .await;
    if let Err(e) = ran {
        for o in &outputs {
            let _ = tokio::fs::remove_file(&o.path).await;
        }
        return Err(disk_first(e, work));
    }
    let mut artifacts: Vec<CacheRecord> = Vec::with_capacity(outputs.len());
    for (r, o) in task.rungs.iter().zip(&outputs) {
        let key = artifact_key(&task.input, &r.settings, &env.runner.tools().version);
        let ext = r.rung.chunk_ext();
        let record = env
            .artifacts
            .admit(&key, &o.path, &task.input, task.expected_frames, ext)
            .await
            .map_err(TaskError::Artifact)?;
        artifacts.push(record);
    }
    Ok(TaskResult { artifacts })
}

/// A broken output on a full disk is the disk's fault: said so, and not retried.
fn disk_first(e: TaskError, work: &Path) -> TaskError {
    let TaskError::Verify { rung, source } = &e else {
        return e;
    };
    match crate::engine::exec::disk::full_disk(&[work.to_path_buf()]) {
        Some((place, free)) => TaskError::Run(crate::media::run::RunError::Disk {
            problem: crate::media::run::DiskProblem::Full,
            place: Some(place),
            line: format!("{rung} came out broken with {free} bytes free: {source}"),
            stderr_tail: Vec::new(),
        }),
        None => e,
    }
}

async fn check_input(input: &Path, size: u64) -> Result<(), TaskError> {
    match tokio::fs::metadata(input).await {
        Ok(m) if m.len() == size => Ok(()),
        Ok(m) => Err(TaskError::Input(format!(
            "{} holds {} bytes, the task names {size}",
            input.display(),
            m.len()
        ))),
        Err(e) => Err(TaskError::Input(format!("{}: {e}", input.display()))),
    }
}

/// Each output must hold exactly the task's frames, in the right codec and height
/// (in-process for MP4, see `verify_chunk`); all are checked at once.
async fn verify_outputs(
    env: &ExecEnv,
    task: &EncodeTask,
    outputs: &[OutputPaths],
) -> Result<(), TaskError> {
    let tools = env.runner.tools();
    let checks = task
        .rungs
        .iter()
        .zip(outputs)
        .map(|(r, o)| verify_rung(tools, r, task.expected_frames, &o.path));
    futures::future::join_all(checks)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
}

/// One rung's encode against what the task asked for: codec, height, frames. A coordinator
/// checks a remote worker's upload with the same function.
pub async fn verify_rung(
    tools: &crate::media::tools::Tools,
    rung: &TaskRung,
    task_frames: u64,
    path: &Path,
) -> Result<(), TaskError> {
    let want = Expected {
        codec: rung.rung.codec.probe_name(),
        height: rung.rung.coded_height(),
        frames: Some(rung.rung.frames_from(task_frames)),
        duration: None,
        has_audio: false,
        max_av_start_gap_s: 0.0,
        streams: None,
    };
    verify_chunk(tools, path, &want)
        .await
        .map_err(|source| TaskError::Verify {
            rung: rung.rung.name.clone(),
            source,
        })
}
