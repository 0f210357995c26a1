//! Calls a job's Lua hooks: typed payloads out, checked replies back. A fresh sandbox per job.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::job::JobFailure;
use crate::media::probe::MediaInfo;
use crate::script::{scripts_dir_of, Limits, ScriptHost};
use crate::workflow::schema::{Chunking, EncodeSettings};
use crate::workflow::{validate::validate, LoadedWorkflow, Profile, Workflow};

/// on_discover's reply: `{ action = "accept" }` or `{ action = "skip", reason = "..." }`; nil accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoverReply {
    action: DiscoverAction,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum DiscoverAction {
    Accept,
    Skip,
}

/// What the plan hook receives and must return: the parts of the workflow it may change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDoc {
    pub profiles: Vec<Profile>,
    pub chunking: Chunking,
    pub encode: EncodeSettings,
}

/// The outcome of a job's hooks: the workflow to run, or a reason to skip the file.
pub struct Decision {
    pub workflow: Workflow,
    pub skip: Option<String>,
}

/// Runs on_discover, then plan, in a fresh sandbox. Lua runs on the blocking pool.
pub async fn decide(
    wf: &LoadedWorkflow,
    input: &Path,
    md5: &str,
    size: u64,
    media: &MediaInfo,
) -> Result<Decision, JobFailure> {
    let Some(script) = wf.script_path() else {
        return Ok(Decision {
            workflow: wf.workflow.clone(),
            skip: None,
        });
    };
    let hooks: Vec<String> = wf
        .workflow
        .script
        .iter()
        .flat_map(|s| s.hooks.iter().map(|h| h.name().to_string()))
        .collect();
    let file = json!({
        "path": input.display().to_string(),
        "name": input.file_name().map(|n| n.to_string_lossy().into_owned()),
        "size": size,
        "md5": md5,
        "media": media,
    });
    let media = serde_json::to_value(media).map_err(|e| JobFailure::new(e.to_string()))?;
    let workflow = wf.workflow.clone();
    let work = tokio::task::spawn_blocking(move || -> Result<Decision, JobFailure> {
        let host = Arc::new(
            ScriptHost::load(&script, &scripts_dir_of(&script), Limits::default(), &hooks)
                .map_err(|e| JobFailure::new(e.to_string()))?,
        );
        let fail = |e: crate::script::ScriptError| JobFailure::new(e.to_string());
        if let Some(reply) = host
            .call::<_, Option<DiscoverReply>>("on_discover", &[file])
            .map_err(fail)?
            .flatten()
        {
            if reply.action == DiscoverAction::Skip {
                let reason = reply
                    .reason
                    .unwrap_or_else(|| "skipped by on_discover".into());
                return Ok(Decision {
                    workflow,
                    skip: Some(reason),
                });
            }
        }
        let doc = PlanDoc {
            profiles: workflow.profiles.clone(),
            chunking: workflow.chunking.clone(),
            encode: workflow.encode.clone(),
        };
        let doc = serde_json::to_value(&doc).map_err(|e| JobFailure::new(e.to_string()))?;
        let Some(plan) = host
            .call::<_, PlanDoc>("plan", &[media, doc])
            .map_err(fail)?
        else {
            return Ok(Decision {
                workflow,
                skip: None,
            });
        };
        let mut changed = workflow;
        changed.profiles = plan.profiles;
        changed.chunking = plan.chunking;
        changed.encode = plan.encode;
        let problems = validate(&changed);
        if !problems.is_empty() {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            return Err(JobFailure::new(format!(
                "hook plan returned an invalid plan: {}",
                list.join("; ")
            )));
        }
        Ok(Decision {
            workflow: changed,
            skip: None,
        })
    });
    work.await
        .map_err(|e| JobFailure::new(format!("internal error in a hook: {e}")))?
}
