//! `spool status` and `spool cancel`, straight from the state store.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;

use spool::engine::cancel_dir;
use spool::store::watch::{retry_files, RetryTarget};
use spool::store::{
    now_ms, JobId, JobRecord, JobStatus, JobStore, Maintenance, SledRepo, StoreError, TaskRecord,
    TaskStatus, TaskStore,
};

use super::client::Client;

/// Jobs with their tasks, from the daemon's API when one holds the state.
fn from_daemon(client: &Client, job: Option<&str>) -> Result<Vec<(JobRecord, Vec<TaskRecord>)>> {
    let ids: Vec<String> = match job {
        Some(id) => vec![id.to_string()],
        None => {
            let listed = client.get("/v1/jobs")?;
            let jobs: Vec<JobRecord> = serde_json::from_value(listed["jobs"].clone())?;
            // Many jobs: the list without task details, one request.
            if jobs.len() > 50 {
                return Ok(jobs.into_iter().map(|j| (j, Vec::new())).collect());
            }
            jobs.into_iter().map(|j| j.id.0).collect()
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let v = client.get(&format!("/v1/jobs/{id}"))?;
        out.push((
            serde_json::from_value(v["job"].clone())?,
            serde_json::from_value(v["tasks"].clone())?,
        ));
    }
    Ok(out)
}

pub fn status(state: &Path, job: Option<&str>, as_json: bool) -> Result<()> {
    let listed = match Client::find(state) {
        Some(client) => from_daemon(&client, job)?,
        None => from_store(state, job)?,
    };
    render(&listed, job.is_some(), as_json, state);
    Ok(())
}

fn from_store(state: &Path, job: Option<&str>) -> Result<Vec<(JobRecord, Vec<TaskRecord>)>> {
    let repo = match SledRepo::open_existing(state) {
        Ok(r) => r,
        Err(StoreError::Locked { dir }) => {
            bail!("state directory {dir} is held by a running `spool run`; wait for it to finish")
        }
        // Nothing was ever run with this state: no jobs, and nothing is created.
        Err(StoreError::NoState { dir }) => match job {
            Some(id) => bail!("no job {id}: there is no spool state in {dir}"),
            None => return Ok(Vec::new()),
        },
        Err(e) => return Err(e.into()),
    };
    // We hold the lock, so nothing is running: show a crashed run's jobs as interrupted.
    repo.recover()?;
    let mut jobs = repo.list_jobs()?;
    if let Some(id) = job {
        jobs.retain(|j| j.id.as_str() == id);
        if jobs.is_empty() {
            bail!("no job {id} in {}", state.display());
        }
    }
    let mut listed = Vec::new();
    for j in jobs {
        let tasks = repo.tasks_of(&j.id)?;
        listed.push((j, tasks));
    }
    Ok(listed)
}

fn render(listed: &[(JobRecord, Vec<TaskRecord>)], one: bool, as_json: bool, state: &Path) {
    if as_json {
        for (j, tasks) in listed {
            println!("{}", json!({ "job": j, "tasks": tasks }));
        }
        return;
    }
    if listed.is_empty() {
        if state.join("db").exists() {
            println!("no jobs in {}", state.display());
        } else {
            println!("no jobs: there is no spool state in {}", state.display());
        }
    }
    for (j, tasks) in listed {
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
        if one {
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
}

pub fn cancel(state: &Path, id: &str) -> Result<()> {
    if !JobId::looks_valid(id) {
        bail!("{id:?} is not a job id (see `spool status`)");
    }
    let job_id = JobId(id.to_string());
    if let Some(client) = Client::find(state) {
        client.post(&format!("/v1/jobs/{id}/cancel"), json!({}))?;
        println!("job {id} cancelled");
        return Ok(());
    }
    match SledRepo::open_existing(state) {
        Ok(repo) => {
            let mut job = repo
                .get_job(&job_id)?
                .with_context(|| format!("no job {id} in {}", state.display()))?;
            if job.status.is_final() {
                println!("job {id} is already {}", job.status.as_str());
                return Ok(());
            }
            job.status = JobStatus::Cancelled;
            job.error = Some("cancelled".into());
            job.updated_ms = now_ms();
            repo.save_job(&job)?;
            for mut t in repo
                .tasks_of(&job_id)?
                .into_iter()
                .filter(|t| t.status.may_become(TaskStatus::Cancelled))
            {
                t.status = TaskStatus::Cancelled;
                repo.save_task(&t)?;
            }
            repo.flush()?;
            println!("job {id} cancelled");
        }
        Err(StoreError::NoState { dir }) => bail!("no job {id}: there is no spool state in {dir}"),
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

/// `spool retry JOB|PATH`: a parked or failed watched file is taken again.
pub fn retry(state: &Path, what: &str) -> Result<()> {
    let job = JobId::looks_valid(what).then(|| JobId(what.to_string()));
    let path = match job {
        Some(_) => None,
        None => Some(
            std::fs::canonicalize(what)
                .unwrap_or_else(|_| Path::new(what).to_path_buf())
                .display()
                .to_string(),
        ),
    };
    if let Some(client) = Client::find(state) {
        let v = client.post("/v1/retry", json!({ "job": job, "path": path }))?;
        println!("{} file(s) will be taken again", v["retrying"]);
        return Ok(());
    }
    let repo = SledRepo::open_existing(state)?;
    let target = match (&job, &path) {
        (Some(j), _) => RetryTarget::Job(j),
        (None, Some(p)) => RetryTarget::Path(p),
        (None, None) => bail!("give a job id or a path"),
    };
    let n = retry_files(&repo, target)?;
    repo.flush()?;
    if n == 0 {
        bail!("no parked or failed file matches {what:?}");
    }
    println!("{n} file(s) will be taken again when `spool watch` next scans");
    Ok(())
}

/// `spool pause|resume FOLDER`, through the running daemon.
pub fn pause(state: &Path, folder: &Path, pause: bool) -> Result<()> {
    let Some(client) = Client::find(state) else {
        bail!("no `spool watch` is running on {}", state.display());
    };
    let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    let action = if pause { "pause" } else { "resume" };
    client.post(
        &format!("/v1/folders/{action}"),
        json!({ "folder": folder }),
    )?;
    println!(
        "{}: {}",
        folder.display(),
        if pause { "paused" } else { "watching" }
    );
    Ok(())
}
