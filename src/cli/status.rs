//! `spool status` and `spool cancel`, straight from the state store.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;

use spool::engine::cancel_dir;
use spool::store::{now_ms, JobStatus, Repo, SledRepo, StoreError, TaskStatus};

pub fn status(state: &Path, job: Option<&str>, as_json: bool) -> Result<()> {
    let repo = match SledRepo::open(state) {
        Ok(r) => r,
        Err(StoreError::Locked { dir }) => bail!(
            "state directory {dir} is held by a running spool; wait for it to finish (a live status API comes with `spool watch`)"
        ),
        Err(e) => return Err(e.into()),
    };
    // We hold the lock, so nothing is running: show a crashed run's jobs as interrupted.
    repo.recover()?;
    let mut jobs = repo.list_jobs()?;
    if let Some(id) = job {
        jobs.retain(|j| j.id == id);
        if jobs.is_empty() {
            bail!("no job {id} in {}", state.display());
        }
    }
    let mut listed = Vec::new();
    for j in jobs {
        let tasks = repo.tasks_of(&j.id)?;
        listed.push((j, tasks));
    }
    if as_json {
        for (j, tasks) in &listed {
            println!("{}", json!({ "job": j, "tasks": tasks }));
        }
        return Ok(());
    }
    if listed.is_empty() {
        println!("no jobs in {}", state.display());
    }
    for (j, tasks) in &listed {
        let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count();
        println!(
            "{}  {:<11} {:>3.0}%  {}  tasks: {} done, {} running, {} pending, {} failed{}",
            j.id,
            j.status.as_str(),
            j.progress * 100.0,
            j.input,
            count(TaskStatus::Done),
            count(TaskStatus::Running),
            count(TaskStatus::Pending),
            count(TaskStatus::Failed),
            j.error
                .as_ref()
                .map(|e| format!("\n    error: {e}"))
                .unwrap_or_default()
        );
        if job.is_some() {
            for t in tasks {
                println!(
                    "    task {:>4}  {:<9} chunk {:<6} {:>3.0}%  attempts {}  reused {}  [{}]{}",
                    t.index,
                    t.status.as_str(),
                    t.chunk.map_or("whole".into(), |c| c.to_string()),
                    t.progress * 100.0,
                    t.attempts,
                    t.reused_rungs,
                    t.rungs.join(","),
                    t.error
                        .as_ref()
                        .map(|e| format!("  {e}"))
                        .unwrap_or_default()
                );
            }
            for line in &j.stderr_tail {
                println!("    ffmpeg: {line}");
            }
        }
    }
    Ok(())
}

pub fn cancel(state: &Path, id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{id:?} is not a job id (see `spool status`)");
    }
    match SledRepo::open(state) {
        Ok(repo) => {
            let mut job = repo
                .get_job(id)?
                .with_context(|| format!("no job {id} in {}", state.display()))?;
            if job.status.is_final() {
                println!("job {id} is already {}", job.status.as_str());
                return Ok(());
            }
            job.status = JobStatus::Cancelled;
            job.error = Some("cancelled".into());
            job.updated_ms = now_ms();
            repo.put_job(&job)?;
            for mut t in repo
                .tasks_of(id)?
                .into_iter()
                .filter(|t| t.status != TaskStatus::Done)
            {
                t.status = TaskStatus::Cancelled;
                repo.put_task(&t)?;
            }
            repo.flush()?;
            println!("job {id} cancelled");
        }
        Err(StoreError::Locked { .. }) => {
            let dir = cancel_dir(state);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(id), b"")?;
            println!("cancel of job {id} requested; the running spool stops it within a second");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
