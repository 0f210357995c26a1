//! A job's Lua: one fresh sandbox per job, hooks called with typed payloads, replies checked
//! into Rust types, and every decision persisted so a resumed job does not ask again.

mod api;
mod replies;
mod tasks;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use replies::{DiscoverAction, DiscoverReply, TaskReply};
pub use replies::{ErrorAction, ErrorReply, PlanDoc, StepReply};

use super::exec::{Placement, Runner};
use crate::media::argv_guard::{check_argv, ArgvRules};
use crate::media::edits::{apply as apply_edits, Edits};
use crate::media::probe::MediaInfo;
use crate::script::{describe_reply_error, JobScope, Limits, ScriptHost};
use crate::store::{HookLog, JobId};
use crate::workflow::{validate::validate, Hook, LoadedWorkflow, Workflow};

/// A hook failed, replied badly, or its script could not load.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// The outcome of a job's first hooks: the workflow to run, or a reason to skip the file.
pub struct Decision {
    pub workflow: Workflow,
    pub skip: Option<String>,
}

/// The workflow's `script.params`, handed to Lua as `spool.params`.
pub fn script_params(wf: &LoadedWorkflow) -> Value {
    wf.workflow
        .script
        .as_ref()
        .map_or(Value::Null, |s| Value::Object(s.params.clone()))
}

/// What a job's script needs from the engine.
pub struct ScriptDeps {
    pub runner: Arc<Runner>,
    /// Where replies are persisted; None for `spool plan`, which keeps nothing.
    pub log: Option<Arc<dyn HookLog>>,
    pub cancel: CancellationToken,
    /// Where the script's `spool.ffmpeg` calls wait.
    pub placement: Placement,
}

pub struct JobScript {
    host: Option<Arc<Mutex<ScriptHost>>>,
    hooks: Vec<Hook>,
    job: JobId,
    script: String,
    log: Option<Arc<dyn HookLog>>,
    pub rules: ArgvRules,
}

impl JobScript {
    /// A fresh sandbox for the job, with the `spool` API confined to its directories.
    pub async fn load(
        deps: ScriptDeps,
        wf: &LoadedWorkflow,
        scope: JobScope,
    ) -> Result<JobScript, HookError> {
        let rules = ArgvRules {
            readable: vec![scope.input.clone(), scope.work_dir.clone()],
            writable: scope.work_dir.clone(),
        };
        let hooks = wf
            .workflow
            .script
            .iter()
            .flat_map(|s| s.hooks.clone())
            .collect();
        let mut loaded = JobScript {
            host: None,
            hooks,
            job: JobId(scope.job.clone()),
            script: String::new(),
            log: deps.log.clone(),
            rules: rules.clone(),
        };
        let (Some(path), Some(source)) = (wf.script_path(), wf.script_source.clone()) else {
            return Ok(loaded);
        };
        loaded.script = path.display().to_string();
        let api = Arc::new(api::EngineApi {
            runner: deps.runner,
            runtime: tokio::runtime::Handle::current(),
            cancel: deps.cancel,
            rules,
            placement: deps.placement,
        });
        let host = tokio::task::spawn_blocking(move || {
            ScriptHost::load_for_job(&path, &source, Limits::default(), api, scope)
        })
        .await
        .map_err(|e| HookError(format!("internal error loading the script: {e}")))?
        .map_err(|e| HookError(e.to_string()))?;
        loaded.host = Some(Arc::new(Mutex::new(host)));
        Ok(loaded)
    }

    /// A job with no script (or whose script failed to load: the job fails on that).
    pub fn none(job: &JobId, work: &Path, input: &Path) -> JobScript {
        JobScript {
            host: None,
            hooks: Vec::new(),
            job: job.clone(),
            script: String::new(),
            log: None,
            rules: ArgvRules {
                readable: vec![input.to_path_buf()],
                writable: work.to_path_buf(),
            },
        }
    }

    pub fn has(&self, hook: Hook) -> bool {
        self.host.is_some() && self.hooks.contains(&hook)
    }

    /// The reply persisted for `key`, if this job asked before.
    async fn persisted(&self, key: &str) -> Result<Option<Value>, HookError> {
        let Some(log) = self.log.clone() else {
            return Ok(None);
        };
        let (job, key) = (self.job.clone(), key.to_string());
        tokio::task::spawn_blocking(move || log.hook_result(&job, &key))
            .await
            .map_err(|e| HookError(e.to_string()))?
            .map_err(|e| HookError(format!("reading a persisted hook reply: {e}")))
    }

    async fn persist(&self, key: String, reply: Value) -> Result<(), HookError> {
        let Some(log) = self.log.clone() else {
            return Ok(());
        };
        let job = self.job.clone();
        tokio::task::spawn_blocking(move || log.put_hook_result(&job, &key, &reply))
            .await
            .map_err(|e| HookError(e.to_string()))?
            .map_err(|e| HookError(format!("persisting a hook reply: {e}")))
    }

    /// Calls `function` unless a reply for `key` is already persisted; persists the reply.
    async fn ask<R: DeserializeOwned>(
        &self,
        function: &str,
        key: Option<String>,
        args: Vec<Value>,
    ) -> Result<Option<R>, HookError> {
        let Some(host) = self.host.clone() else {
            return Ok(None);
        };
        let stored = match &key {
            Some(k) => self.persisted(k).await?,
            None => None,
        };
        let reply = match stored {
            Some(v) => v,
            None => {
                let name = function.to_string();
                let reply = tokio::task::spawn_blocking(move || -> Result<Value, HookError> {
                    let host = host
                        .lock()
                        .map_err(|_| HookError("the script host is poisoned".into()))?;
                    host.call::<Value, Value>(&name, &args)
                        .map(Option::unwrap_or_default)
                        .map_err(|e| HookError(e.to_string()))
                })
                .await
                .map_err(|e| HookError(format!("internal error in a hook: {e}")))??;
                if let Some(k) = key {
                    self.persist(k, reply.clone()).await?;
                }
                reply
            }
        };
        if reply.is_null() {
            return Ok(None);
        }
        serde_path_to_error::deserialize(reply)
            .map(Some)
            .map_err(|e| {
                let detail = describe_reply_error(e.path().to_string(), e.inner().to_string());
                HookError(format!(
                    "{}: hook {function} returned a bad reply: {detail}",
                    self.script
                ))
            })
    }

    /// on_discover, then plan. Both replies are persisted with the job.
    pub async fn decide(
        &self,
        workflow: &Workflow,
        input: &Path,
        md5: &str,
        size: u64,
        media: &MediaInfo,
    ) -> Result<Decision, HookError> {
        let keep = || Decision {
            workflow: workflow.clone(),
            skip: None,
        };
        let media = serde_json::to_value(media).map_err(|e| HookError(e.to_string()))?;
        if self.has(Hook::OnDiscover) {
            let file = json!({
                "path": input.display().to_string(),
                "name": input.file_name().map(|n| n.to_string_lossy().into_owned()),
                "size": size,
                "md5": md5,
                "media": media,
            });
            let reply: Option<DiscoverReply> = self
                .ask("on_discover", Some("on_discover".into()), vec![file])
                .await?;
            if let Some(r) = reply.filter(|r| r.action == DiscoverAction::Skip) {
                return Ok(Decision {
                    workflow: workflow.clone(),
                    skip: Some(r.reason.unwrap_or_else(|| "skipped by on_discover".into())),
                });
            }
        }
        if !self.has(Hook::Plan) {
            return Ok(keep());
        }
        let doc = PlanDoc {
            profiles: workflow.profiles.clone(),
            chunking: workflow.chunking.clone(),
            encode: workflow.encode.clone(),
            streams: workflow.streams.clone(),
        };
        let doc = serde_json::to_value(&doc).map_err(|e| HookError(e.to_string()))?;
        let Some(plan) = self
            .ask::<PlanDoc>("plan", Some("plan".into()), vec![media, doc])
            .await?
        else {
            return Ok(keep());
        };
        let mut changed = workflow.clone();
        changed.profiles = plan.profiles;
        changed.chunking = plan.chunking;
        changed.encode = plan.encode;
        changed.streams = plan.streams;
        let problems = validate(&changed);
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            return Err(HookError(format!(
                "hook plan returned an invalid plan: {}",
                list.join("; ")
            )));
        }
        Ok(Decision {
            workflow: changed,
            skip: None,
        })
    }

    /// before_task: the argv to run for one command of a task, checked against the rules.
    pub async fn before_task(
        &self,
        task: Value,
        key: String,
        argv: Vec<std::ffi::OsString>,
    ) -> Result<Vec<std::ffi::OsString>, HookError> {
        if !self.has(Hook::BeforeTask) {
            return Ok(argv);
        }
        let original: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let reply: Option<TaskReply> = self
            .ask(
                "before_task",
                Some(format!("before_task/{key}")),
                vec![task, json!(original)],
            )
            .await?;
        let Some(reply) = reply else {
            return Ok(argv);
        };
        let refuse = |e: String| {
            HookError(format!(
                "{}: hook before_task returned an argv spool will not run: {e}",
                self.script
            ))
        };
        let edits = Edits {
            options: reply.options,
            encoder_params: reply.encoder_params,
            filters: reply.filters,
        };
        let proposed: Vec<String> = match reply.argv {
            Some(_) if edits != Edits::default() => {
                return Err(refuse("give argv or structured edits, not both".into()))
            }
            Some(raw) => raw,
            None => apply_edits(&argv, &edits)
                .map_err(refuse)?
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        };
        // Rendered by spool or written by the script: checked the same way.
        check_argv(&original, &proposed, &self.rules).map_err(refuse)?;
        // Arguments spool wrote keep their exact bytes (names need not be UTF-8).
        Ok(proposed
            .into_iter()
            .map(|a| match original.iter().position(|o| *o == a) {
                Some(i) => argv[i].clone(),
                None => a.into(),
            })
            .collect())
    }

    /// on_error: what to do about a failed task attempt. None: spool's own retry policy.
    pub async fn on_error(
        &self,
        job: Value,
        error: Value,
        key: String,
    ) -> Result<Option<ErrorReply>, HookError> {
        if !self.has(Hook::OnError) {
            return Ok(None);
        }
        let reply: Option<ErrorReply> = self
            .ask(
                "on_error",
                Some(format!("on_error/{key}")),
                vec![job, error],
            )
            .await?;
        if let Some(d) = reply.as_ref().and_then(|r| r.delay_seconds) {
            if !(d.is_finite() && (0.0..=3600.0).contains(&d)) {
                return Err(HookError(format!(
                    "{}: hook on_error returned a bad reply: field delay_seconds: must be 0 to 3600, got {d}",
                    self.script
                )));
            }
        }
        Ok(reply)
    }

    /// A lua step: runs every time (its files live in the work directory).
    pub async fn step(&self, function: &str, context: Value) -> Result<StepReply, HookError> {
        Ok(self
            .ask::<StepReply>(function, None, vec![context])
            .await?
            .unwrap_or_default())
    }

    /// on_complete: side effects after the manifest is durable. Called once per job.
    pub async fn on_complete(&self, job: Value, manifest: Value) -> Result<(), HookError> {
        if !self.has(Hook::OnComplete) {
            return Ok(());
        }
        self.ask::<Value>(
            "on_complete",
            Some("on_complete".into()),
            vec![job, manifest],
        )
        .await
        .map(|_| ())
    }
}
