//! before_task over a plan's tasks: each command may be changed by the hook (and checked);
//! what it changed becomes part of the task's cache key.

use std::path::Path;

use serde_json::json;

use super::{HookError, JobScript};
use crate::engine::plan::JobPlan;
use crate::media::hash::sha256_hex;
use crate::store::JobId;
use crate::workflow::Hook;

impl JobScript {
    /// Passes every task command of `plan` through before_task. Both `spool run` and
    /// `spool plan` call it, so the plan shows exactly the argv the run starts.
    pub async fn hook_tasks(
        &self,
        job: &JobId,
        work: &Path,
        plan: &mut JobPlan,
    ) -> Result<(), HookError> {
        if !self.has(Hook::BeforeTask) {
            return Ok(());
        }
        for task in &mut plan.tasks {
            let chunk = &plan.chunks[task.chunk];
            let rungs: Vec<&str> = task
                .rungs
                .iter()
                .map(|r| plan.rungs[*r].name.as_str())
                .collect();
            let passes = task.commands.len();
            let mut changed = false;
            for (pass, command) in task.commands.iter_mut().enumerate() {
                let payload = json!({
                    "job": job, "index": task.index, "chunk": chunk.index,
                    "rungs": rungs, "pass": pass + 1, "passes": passes,
                    "input": chunk.path.display().to_string(),
                    "frames": chunk.range.map(|r| [r.start, r.end]),
                    "work_dir": work.display().to_string(),
                });
                let shown: Vec<String> = command
                    .args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                let key = format!(
                    "{}/{pass}/{}",
                    task.index,
                    &sha256_hex(shown.join("\0").as_bytes())[..16]
                );
                let hooked = self.before_task(payload, key, command.args.clone()).await?;
                if hooked != command.args {
                    changed = true;
                    command.args = hooked;
                }
            }
            if changed {
                task.hook_change = Some(change_print(task, &chunk.path, work));
            }
        }
        Ok(())
    }
}

/// A fingerprint of the hooked commands with the job's own paths taken out, so the same
/// change on another job (or a resumed one) gives the same cache key.
fn change_print(task: &crate::engine::plan::PlannedTask, input: &Path, work: &Path) -> String {
    let work = work.display().to_string();
    let input = input.display().to_string();
    let normal: Vec<Vec<String>> = task
        .commands
        .iter()
        .map(|c| {
            c.args
                .iter()
                .map(|a| {
                    a.to_string_lossy()
                        .replace(&input, "{input}")
                        .replace(&work, "{work}")
                })
                .collect()
        })
        .collect();
    sha256_hex(
        serde_json::to_string(&normal)
            .unwrap_or_default()
            .as_bytes(),
    )
}
