//! `spool status` and `spool cancel`, straight from the state store.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::json;

use spool::engine::cancel_dir;
use spool::store::watch::{retry_files, RetryTarget};
use spool::store::{
    now_ms, JobId, JobRecord, JobStatus, JobStore, JobSummary, Maintenance, SledRepo, StoreError,
    TaskCounts, TaskRecord, TaskStatus, TaskStore,
};

use super::client::Client;

/// What `spool status` shows: a page of jobs (newest first), or one job with its tasks.
enum Shown {
    Page(Vec<JobSummary>),
    Full(Vec<(JobRecord, Vec<TaskRecord>)>),
}

/// `spool status [JOB]`: from the daemon's API when one holds the state, else from sled.
/// A list shows the newest `limit` jobs with their tasks counted (with `--json`, every task).
pub fn status(state: &Path, job: Option<&str>, as_json: bool, limit: usize) -> Result<()> {
    let shown = match (Client::find(state), job, as_json) {
        (Some(client), Some(id), _) => Shown::Full(vec![daemon_job(&client, id)?]),
        (Some(client), None, false) => Shown::Page(daemon_page(&client, limit)?),
        (Some(client), None, true) => Shown::Full(
            daemon_page(&client, limit)?
                .into_iter()
                .map(|s| daemon_job(&client, s.job.id.as_str()))
                .collect::<Result<_>>()?,
        ),
        (None, _, _) => from_store(state, job, as_json, limit)?,
    };
    render(&shown, as_json, state);
    Ok(())
}

fn daemon_page(client: &Client, limit: usize) -> Result<Vec<JobSummary>> {
    let listed = client.get(&format!("/v1/jobs?limit={limit}"))?;
    Ok(serde_json::from_value(listed["jobs"].clone())?)
}

fn daemon_job(client: &Client, id: &str) -> Result<(JobRecord, Vec<TaskRecord>)> {
    let v = client.get(&format!("/v1/jobs/{id}"))?;
    Ok((
        serde_json::from_value(v["job"].clone())?,
        serde_json::from_value(v["tasks"].clone())?,
    ))
}

fn from_store(state: &Path, job: Option<&str>, as_json: bool, limit: usize) -> Result<Shown> {
    let repo = match SledRepo::open_existing(state) {
        Ok(r) => r,
        Err(StoreError::Locked { dir }) => {
            bail!("state directory {dir} is held by a running `spool run`; wait for it to finish")
        }
        // Nothing was ever run with this state: no jobs, and nothing is created.
        Err(StoreError::NoState { dir }) => match job {
            Some(id) => bail!("no job {id}: there is no spool state in {dir}"),
            None => return Ok(Shown::Page(Vec::new())),
        },
        Err(e) => return Err(e.into()),
    };
    // We hold the lock, so nothing is running: show a crashed run's jobs as interrupted.
    repo.recover()?;
    let jobs = match job {
        Some(id) => vec![repo
            .get_job(&JobId(id.to_string()))?
            .with_context(|| format!("no job {id} in {}", state.display()))?],
        None => repo.recent_jobs(None, limit, None)?,
    };
    if job.is_none() && !as_json {
        return Ok(Shown::Page(
            jobs.into_iter()
                .map(|j| {
                    let tasks = TaskCounts::of(&repo.tasks_of(&j.id)?);
                    Ok(JobSummary { job: j, tasks })
                })
                .collect::<Result<_, StoreError>>()?,
        ));
    }
    let mut full = Vec::new();
    for j in jobs {
        let tasks = repo.tasks_of(&j.id)?;
        full.push((j, tasks));
    }
    Ok(Shown::Full(full))
}

fn render(shown: &Shown, as_json: bool, state: &Path) {
    match shown {
        Shown::Page(page) if page.is_empty() => {
            if state.join("db").exists() {
                println!("no jobs in {}", state.display());
            } else {
                println!("no jobs: there is no spool state in {}", state.display());
            }
        }
        Shown::Page(page) => {
            for s in page {
                if as_json {
                    println!("{}", json!(s));
                } else {
                    print_job(&s.job, &s.tasks);
                }
            }
        }
        Shown::Full(jobs) => {
            for (j, tasks) in jobs {
                if as_json {
                    println!("{}", json!({ "job": j, "tasks": tasks }));
                    continue;
                }
                print_job(j, &TaskCounts::of(tasks));
                for t in tasks {
                    println!(
                        "    task {:>4}  {:<9} chunk {:<6} {:>3.0}%  attempts {}  reused {}  [{}]{}{}",
                        t.index,
                        t.status.as_str(),
                        t.chunk.map_or("whole".into(), |c| c.to_string()),
                        t.progress * 100.0,
                        t.attempts,
                        t.reused_rungs,
                        t.rungs.join(","),
                        t.worker
                            .as_ref()
                            .map(|w| format!("  on {w}"))
                            .unwrap_or_default(),
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
}

fn print_job(j: &JobRecord, c: &TaskCounts) {
    println!(
        "{}  {:<11} {:>3.0}%  {}  tasks: {} done, {} running, {} pending, {} failed{}",
        j.id,
        j.status.as_str(),
        j.progress * 100.0,
        j.input,
        c.done,
        c.running,
        c.pending,
        c.failed,
        j.error
            .as_ref()
            .map(|e| format!("\n    error: {e}"))
            .unwrap_or_default()
    );
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
