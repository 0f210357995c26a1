//! spool's own helper processes (Whisper) run as an ffmpeg does: after a slot, in their own
//! process group, registered under the workflow's gate while they run (a schedule's SIGSTOP
//! pauses them), killed with their group on cancel. Each stdout line goes to the caller.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::{Placement, Runner};

const STDERR_TAIL_LINES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cancelled")]
    Cancelled,
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited with {code}: {message}")]
    Failed {
        program: String,
        code: String,
        message: String,
    },
}

impl Runner {
    /// Waits for a slot, then runs `argv` (program first) to its end.
    pub async fn run_helper(
        &self,
        argv: &[OsString],
        at: &Placement,
        cancel: &CancellationToken,
        mut on_line: impl FnMut(&str) + Send,
    ) -> Result<(), HelperError> {
        let program = argv
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(_slot) = self.slot(at, cancel).await else {
            return Err(HelperError::Cancelled);
        };
        let nice = self.launch.nice.as_ref().map(|(p, n)| (p.as_path(), *n));
        let argv = crate::media::run::niced(nice, argv.to_vec());
        let spawn_error = |source| HelperError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = tokio::process::Command::new(
            argv.first()
                .ok_or_else(|| spawn_error(std::io::Error::other("no program")))?,
        )
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let _registered = pgid.map(|g| self.groups.register(g.as_raw(), &at.gate));
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(spawn_error(std::io::Error::other("pipes not captured")));
        };
        let stderr_task = tokio::spawn(async move {
            let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut open = true;
        let status = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    if let Some(g) = pgid {
                        let _ = killpg(g, Signal::SIGKILL);
                    }
                    let _ = child.wait().await;
                    stderr_task.abort();
                    return Err(HelperError::Cancelled);
                }
                line = lines.next_line(), if open => match line {
                    Ok(Some(line)) => on_line(&line),
                    _ => open = false,
                },
                status = child.wait() => break status.map_err(spawn_error)?,
            }
        };
        while let Ok(Some(line)) = lines.next_line().await {
            on_line(&line);
        }
        let tail = stderr_task.await.unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(HelperError::Failed {
            program,
            code: status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("code {c}")),
            message: tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| "no error output".into()),
        })
    }
}
