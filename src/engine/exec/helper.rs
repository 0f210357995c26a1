//! spool's own helper processes (Whisper) run as an ffmpeg does: after a slot, niced, in
//! their own process group, registered under the workflow's gate while they run (a
//! schedule's SIGSTOP pauses them), killed with their group on cancel. Each stdout line goes
//! to the caller.

use std::ffi::OsString;

use tokio_util::sync::CancellationToken;

use super::{Placement, Runner};
use crate::media::run::{niced, run_grouped, Registration, RunError};

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
        on_line: impl FnMut(&str) + Send,
    ) -> Result<(), HelperError> {
        let program = argv
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(_slot) = self.slot(at, cancel).await else {
            return Err(HelperError::Cancelled);
        };
        let nice = self.launch.nice.as_ref().map(|(p, n)| (p.as_path(), *n));
        let argv = niced(nice, argv.to_vec());
        let registration = Registration {
            groups: &self.groups,
            tag: &at.gate,
        };
        let ended = match run_grouped(&argv, cancel, Some(registration), on_line).await {
            Ok(ended) => ended,
            Err(RunError::Cancelled) => return Err(HelperError::Cancelled),
            Err(RunError::Spawn(source)) => return Err(HelperError::Spawn { program, source }),
            Err(other) => {
                return Err(HelperError::Spawn {
                    program,
                    source: std::io::Error::other(other.to_string()),
                })
            }
        };
        if ended.status.success() {
            return Ok(());
        }
        Err(HelperError::Failed {
            program,
            code: ended
                .status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("code {c}")),
            message: ended
                .stderr_tail
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_else(|| "no error output".into()),
        })
    }
}
