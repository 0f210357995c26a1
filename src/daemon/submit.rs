//! Jobs submitted over HTTP (`POST /v1/jobs`). Everything a platform sends is checked before
//! anything is recorded: the body's shape, the workflow, the paths (confined to the
//! configured roots, symlinks and `..` resolved), the parameters (against the workflow's
//! own); then the idempotency key is claimed, the job recorded as queued, and run when its
//! turn comes (by priority, then arrival).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Daemon;
use crate::engine::plan::stem_of;
use crate::engine::{JobOptions, JobOutcome, MAX_PRIORITY};
use crate::store::{now_ms, JobId, JobRecord, JobStart, JobStatus, StoreError, WorkflowVersion};
use crate::workflow::schema::WebhookEvent;
use crate::workflow::{load_version, LoadedWorkflow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// An absolute path under one of `api.input_roots`, or `blob:<sha256>` of an upload.
    pub input: PathBuf,
    /// The file name an uploaded input's outputs are named after (`<sha256>.bin` when
    /// absent).
    pub name: Option<String>,
    /// The name of a workflow the daemon runs.
    pub workflow: String,
    /// An existing directory under one of `api.output_roots`; the workflow's watch output
    /// when absent. Outputs go to `<output>/<stem>/`.
    pub output: Option<PathBuf>,
    /// Receives the job's events, signed when `api.callback_secret` is set.
    pub callback: Option<String>,
    #[serde(default)]
    pub priority: i32,
    pub idempotency_key: Option<String>,
    /// Over the workflow's `script.params`, each of the same type as its default.
    #[serde(default)]
    pub params: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request that passed every check.
pub struct Checked {
    pub input: PathBuf,
    pub output: PathBuf,
    pub workflow: LoadedWorkflow,
    pub priority: i32,
}

/// What a submission answers.
pub struct Submitted {
    pub id: JobId,
    /// False when the idempotency key named a job submitted before.
    pub created: bool,
    pub status: JobStatus,
}

const MAX_KEY: usize = 200;

impl Daemon {
    /// Checks, records and starts a job; a repeated idempotency key answers its first job.
    pub fn submit(self: &Arc<Self>, req: &JobRequest) -> Result<Submitted, SubmitError> {
        let checked = self.check(req)?;
        let id = self.engine.assign_job_id();
        if let Some(key) = &req.idempotency_key {
            if let Some(first) = self.repo.claim_submission(key, &id)? {
                return self.again(first, checked);
            }
        }
        let out_dir = checked.output.join(stem_of(&checked.input));
        // The job's workflow (with its params and callback) is kept before the job is, so a
        // restart can run it again even if it never started.
        self.repo
            .put_workflow_version(&checked.workflow.version())?;
        self.repo.begin_job(&queued(&id, &checked, &out_dir))?;
        // Durable before the caller hears 201: a crash right after loses no accepted job.
        self.repo.flush()?;
        self.start(id.clone(), checked);
        Ok(Submitted {
            id,
            created: true,
            status: JobStatus::Queued,
        })
    }

    /// The job an idempotency key already names: as it is, or run again if a restart
    /// interrupted it.
    fn again(self: &Arc<Self>, id: JobId, checked: Checked) -> Result<Submitted, SubmitError> {
        let status = self
            .repo
            .get_job(&id)?
            .map_or(JobStatus::Queued, |j| j.status);
        if status == JobStatus::Interrupted {
            self.start(id.clone(), checked);
        }
        Ok(Submitted {
            id,
            created: false,
            status,
        })
    }

    fn check(&self, req: &JobRequest) -> Result<Checked, SubmitError> {
        if self.api.input_roots.is_empty() {
            return Err(SubmitError::Forbidden(
                "this daemon takes no jobs over HTTP: its config names no api.input_roots".into(),
            ));
        }
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&req.priority) {
            return Err(bad("priority: must be -100 to 100"));
        }
        if req
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > MAX_KEY)
        {
            return Err(bad("idempotency_key: 1 to 200 bytes"));
        }
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == req.workflow)
            .ok_or_else(|| {
                let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
                bad(format!(
                    "workflow: no workflow named {:?} (this daemon runs: {})",
                    req.workflow,
                    names.join(", ")
                ))
            })?;
        let input = match req.input.to_str().and_then(|i| i.strip_prefix("blob:")) {
            Some(sha256) => {
                let name = req.name.clone().unwrap_or_else(|| format!("{sha256}.bin"));
                self.blobs
                    .input_for(sha256, &name)
                    .map_err(|e| bad(format!("input: {e}")))?
            }
            None => confine("input", &req.input, &self.api.input_roots)?,
        };
        if !input.is_file() {
            return Err(bad(format!("input: {} is not a file", req.input.display())));
        }
        let output = match &req.output {
            Some(dir) => confine("output", dir, &self.api.output_roots)?,
            None => entry.output.clone(),
        };
        if !output.is_dir() {
            return Err(bad(format!(
                "output: {} is not a directory",
                output.display()
            )));
        }
        if let Some(url) = &req.callback {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!("callback: {url:?} is not an http(s) URL")));
            }
        }
        let wf = entry.workflow.current();
        check_params(&wf, &req.params)?;
        let secret = self.api.callback_secret.as_deref();
        let workflow = derive(&wf, &req.params, req.callback.as_deref(), secret)?;
        Ok(Checked {
            input,
            output,
            workflow,
            priority: req.priority,
        })
    }

    /// Runs the job when a job slot is free for its priority, then makes sure its record
    /// says how it ended (a job that fails before it starts, or whose content was done
    /// already, has no record of its own).
    fn start(self: &Arc<Self>, id: JobId, checked: Checked) {
        let daemon = self.clone();
        let handle = tokio::spawn(async move {
            let _slot = daemon.job_slot(checked.priority).await;
            if daemon.admitting.is_cancelled() {
                return; // Still queued: recovery marks it interrupted at the next start.
            }
            let options = JobOptions {
                id: Some(id.clone()),
                priority: checked.priority,
                ..JobOptions::default()
            };
            let outcome = daemon
                .engine
                .run_file(&checked.input, &checked.workflow, &checked.output, options)
                .await;
            if outcome.id.as_ref() != Some(&id) {
                let repo = daemon.repo.clone();
                let (job, ended) = (id.clone(), outcome.clone());
                let settled =
                    tokio::task::spawn_blocking(move || settle(repo.as_ref(), &job, &ended));
                if let Ok(Err(e)) = settled.await {
                    tracing::error!(error = %e, "recording an API job's end failed");
                }
                let event = match outcome.status {
                    JobStatus::Succeeded => WebhookEvent::Succeeded,
                    JobStatus::Skipped => WebhookEvent::Skipped,
                    _ => WebhookEvent::Failed,
                };
                let body = serde_json::json!({
                    "job": id, "input": outcome.input, "workflow": checked.workflow.workflow.name,
                    "status": outcome.status, "reason": outcome.reason, "manifest": outcome.manifest,
                    "same_content_as": outcome.id,
                });
                let hooks = &checked.workflow.workflow.webhooks;
                daemon.engine.send_event(hooks, event, body);
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
    }
}

/// How an API job's workflow version names its source, so a restart can tell it apart.
const API_SOURCE: &str = " (API job)";

impl Daemon {
    /// Runs again the API jobs a stop interrupted (queued or running): folder jobs come back
    /// with the next scan, API jobs have no folder. Each keeps its id, workflow version
    /// (params, callback) and priority; one whose input is gone is marked failed.
    pub(super) fn resume_api_jobs(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut resumed = 0;
        for mut job in self
            .repo
            .recent_jobs(None, usize::MAX, Some(JobStatus::Interrupted))?
        {
            let Some(version) = self.repo.workflow_version(&job.workflow_hash)? else {
                continue;
            };
            if !version.source.ends_with(API_SOURCE) {
                continue;
            }
            let input = PathBuf::from(&job.input);
            let output = Path::new(&job.out_dir).parent().map(Path::to_path_buf);
            let workflow = load_version(&version);
            match (input.is_file(), output, workflow) {
                (true, Some(output), Ok(workflow)) => {
                    let priority = job.priority;
                    let checked = Checked {
                        input,
                        output,
                        workflow,
                        priority,
                    };
                    tracing::info!(job = %job.id, "resuming a job submitted through the API");
                    self.start(job.id, checked);
                    resumed += 1;
                }
                (input_found, _, workflow) => {
                    job.status = JobStatus::Failed;
                    job.updated_ms = now_ms();
                    job.error = Some(match workflow {
                        Err(e) => {
                            format!("could not be resumed: its workflow no longer loads: {e}")
                        }
                        Ok(_) if !input_found => {
                            format!("could not be resumed: {} is gone", job.input)
                        }
                        Ok(_) => "could not be resumed: no output directory".into(),
                    });
                    self.repo.save_job(&job)?;
                }
            }
        }
        Ok(resumed)
    }
}

fn bad(message: impl Into<String>) -> SubmitError {
    SubmitError::BadRequest(message.into())
}

/// The real path of `path` if it lies under one of `roots`. A path that does not exist is
/// refused as outside unless it lies under a root by its name alone, so nothing outside
/// the roots can be probed for existence.
fn confine(field: &str, path: &Path, roots: &[PathBuf]) -> Result<PathBuf, SubmitError> {
    if !path.is_absolute() {
        return Err(bad(format!("{field}: {} is not absolute", path.display())));
    }
    let outside = || {
        SubmitError::Forbidden(format!(
            "{field}: {} is outside the directories this daemon may use",
            path.display()
        ))
    };
    match path.canonicalize() {
        Ok(real) if roots.iter().any(|r| real.starts_with(r)) => Ok(real),
        Ok(_) => Err(outside()),
        Err(e) if roots.iter().any(|r| lexical(path).starts_with(r)) => {
            Err(bad(format!("{field}: {}: {e}", path.display())))
        }
        Err(_) => Err(outside()),
    }
}

/// `path` with `.` and `..` taken out by name.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Every given parameter must be one the workflow declares, of the type of its default.
fn check_params(wf: &LoadedWorkflow, given: &Map<String, Value>) -> Result<(), SubmitError> {
    if given.is_empty() {
        return Ok(());
    }
    let name = &wf.workflow.name;
    let Some(declared) = wf.workflow.script.as_ref().map(|s| &s.params) else {
        return Err(bad(format!(
            "params: workflow {name:?} has no script, so it takes no parameters"
        )));
    };
    for (key, value) in given {
        let Some(default) = declared.get(key) else {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "params.{key}: not a parameter of workflow {name:?} (it declares: {})",
                known.join(", ")
            )));
        };
        if kind(value) != kind(default) {
            return Err(bad(format!(
                "params.{key}: expected {} (as the workflow's default), got {}",
                kind(default),
                kind(value)
            )));
        }
    }
    Ok(())
}

/// The workflow with the request's parameters and callback written into its text, loaded
/// and validated again: the job stores that text, so a resumed job runs with them too.
/// Every API job gets such a version (its source marked), even with nothing to add.
fn derive(
    wf: &LoadedWorkflow,
    params: &Map<String, Value>,
    callback: Option<&str>,
    secret: Option<&str>,
) -> Result<LoadedWorkflow, SubmitError> {
    let internal = |e: String| bad(format!("the workflow could not take this request: {e}"));
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&wf.text).map_err(|e| internal(e.to_string()))?;
    if !params.is_empty() {
        let yaml = serde_yaml::to_value(params).map_err(|e| internal(e.to_string()))?;
        let script = doc
            .get_mut("script")
            .and_then(|s| s.as_mapping_mut())
            .ok_or_else(|| internal("no script section".into()))?;
        let slot = script
            .entry("params".into())
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        if let (Some(into), serde_yaml::Value::Mapping(new)) = (slot.as_mapping_mut(), yaml) {
            into.extend(new);
        }
    }
    if let Some(url) = callback {
        let mut hook = serde_yaml::Mapping::new();
        hook.insert("url".into(), url.into());
        if let Some(secret) = secret {
            hook.insert("secret".into(), secret.into());
        }
        let mapping = doc
            .as_mapping_mut()
            .ok_or_else(|| internal("not a mapping".into()))?;
        let hooks = mapping
            .entry("webhooks".into())
            .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
        if let Some(list) = hooks.as_sequence_mut() {
            list.push(serde_yaml::Value::Mapping(hook));
        }
    }
    // Always its own version, marked as an API job's: a restart runs these again itself
    // (folder jobs come back with the next scan).
    let text = format!(
        "# submitted through the API\n{}",
        serde_yaml::to_string(&doc).map_err(|e| internal(e.to_string()))?
    );
    load_version(&WorkflowVersion {
        hash: String::new(),
        source: format!("{}{API_SOURCE}", wf.source.trim_end_matches(API_SOURCE)),
        text,
        script_source: wf.script_source.clone(),
        base_dir: wf.base_dir.display().to_string(),
    })
    .map_err(|e| internal(e.to_string()))
}

fn queued(id: &JobId, c: &Checked, out_dir: &Path) -> JobRecord {
    JobRecord::start(JobStart {
        id,
        input: &c.input,
        out_dir,
        workflow_name: &c.workflow.workflow.name,
        workflow_hash: &c.workflow.content_hash,
        status: JobStatus::Queued,
        priority: c.priority,
    })
}

/// Writes how a job that never ran under its own id ended: failed before it started, or
/// done already by an earlier job (whose manifest it then points to).
fn settle(
    repo: &dyn crate::store::Repo,
    id: &JobId,
    outcome: &JobOutcome,
) -> Result<(), StoreError> {
    let Some(mut record) = repo.get_job(id)? else {
        return Ok(());
    };
    if record.status.is_final() {
        return Ok(());
    }
    record.updated_ms = now_ms();
    record.manifest = outcome.manifest.as_ref().map(|p| p.display().to_string());
    record.chunks = outcome.chunks;
    record.reused_chunks = outcome.reused_chunks;
    match outcome.status {
        JobStatus::Succeeded => {
            record.status = JobStatus::Running;
            repo.save_job(&record)?;
            record.status = JobStatus::Succeeded;
            record.progress = 1.0;
        }
        status => {
            record.status = if status.is_final() {
                status
            } else {
                JobStatus::Failed
            };
            record.error = outcome.reason.clone();
        }
    }
    repo.save_job(&record)?;
    repo.flush()
}
