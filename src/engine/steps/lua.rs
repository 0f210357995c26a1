//! The lua step: calls a function of the workflow's script with the job's context and
//! publishes the files it names from the work directory.

use std::path::Path;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::{
    publish_step_file, RungFile, StepCtx, StepDetail, StepDone, StepError, StepKind, StepPlan,
};
use crate::engine::manifest::{OutputEntry, OutputKind};
use crate::engine::plan::PlanInputs;
use crate::workflow::LuaStep;

impl StepKind for LuaStep {
    fn validate(&self, _inputs: &PlanInputs<'_>) -> Result<(), String> {
        // The function's presence is checked when the workflow loads.
        Ok(())
    }

    fn plan(&self, _inputs: &PlanInputs<'_>, _rungs: &[RungFile]) -> StepPlan {
        StepPlan {
            label: self.label().to_string(),
            commands: Vec::new(),
            outputs: Vec::new(),
            detail: StepDetail::Lua {
                function: self.function.clone(),
            },
        }
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        _plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>> {
        Box::pin(async move {
            let context = json!({
                "job": ctx.job, "input": ctx.input.display().to_string(),
                "work_dir": ctx.work.display().to_string(),
                "out_dir": ctx.out_dir.display().to_string(),
                "media": ctx.media, "outputs": ctx.published,
            });
            let reply = ctx
                .script
                .step(&self.function, context)
                .await
                .map_err(|e| StepError::Failed(e.0))?;
            let mut outputs = Vec::new();
            for o in reply.outputs {
                // A step adds files; it never replaces what was verified and published.
                let taken = Path::new(&o.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| ctx.published.iter().any(|p| &p.path == n));
                if let Some(name) = taken {
                    return Err(StepError::Failed(format!(
                        "output {:?}: {name} is already published by this job; a step may only add new files",
                        o.path
                    )));
                }
                let (name, bytes) = publish_step_file(ctx.work, ctx.out_dir, &o.path)?;
                let kind: OutputKind = serde_json::from_value(Value::String(o.kind.clone()))
                    .unwrap_or(OutputKind::Other(o.kind));
                outputs.push(OutputEntry::file(self.label(), kind, name, bytes));
            }
            Ok(StepDone {
                outputs,
                data: reply.data.unwrap_or(Value::Null),
            })
        })
    }
}
