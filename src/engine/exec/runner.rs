//! The runner: every ffmpeg of a job goes through [`Runner::run`], which waits for a slot
//! (by priority, behind the workflow's gate), records the command line in the trace, and
//! runs it in its own process group, registered under the workflow so a schedule can pause
//! exactly that workflow's processes.

use std::ffi::OsString;
use std::io::Write;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::slots::{Priority, SlotGuard, Slots};
use crate::confine::Paths;
use crate::media::progress::Progress;
use crate::media::run::{
    ffmpeg_command_line, run_ffmpeg_with, ProcessGroups, Registration, RunError, RunOptions,
    RunOutcome,
};
use crate::media::tools::Tools;

/// What a command is for: named in the trace, in `spool plan`, and in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Segment,
    Encode,
    Audio,
    Join,
    Gif,
    Hls,
    Thumbnails,
    Transcribe,
    /// A quality search's probe encode.
    Probe,
    /// Scoring encodes against the source (quality searches and checks).
    Score,
    /// A `spool.ffmpeg` call from a Lua hook or step.
    Lua,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Segment => "segment",
            Phase::Encode => "encode",
            Phase::Audio => "audio",
            Phase::Join => "join",
            Phase::Gif => "gif",
            Phase::Hls => "hls",
            Phase::Thumbnails => "thumbnails",
            Phase::Transcribe => "transcribe",
            Phase::Probe => "probe",
            Phase::Score => "score",
            Phase::Lua => "lua",
        }
    }
}

/// One ffmpeg command: its arguments (without the program and spool's fixed prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub phase: Phase,
    pub label: String,
    pub args: Vec<OsString>,
}

/// Where a command waits (its priority, the gate of its workflow) and what it may touch.
#[derive(Debug, Clone)]
pub struct Placement {
    pub priority: Priority,
    pub gate: Arc<str>,
    /// The files it may read and the directories it may write, once confined.
    pub paths: Arc<Paths>,
}

pub struct Runner {
    tools: Tools,
    slots: Arc<Slots>,
    pub(super) groups: ProcessGroups,
    /// Every command line run, as JSON lines (the benchmark replays it; tests compare it
    /// with `spool plan`).
    trace: Option<Mutex<std::fs::File>>,
    /// How each child starts: the launcher that confines an ffmpeg (spool itself, when the
    /// kernel enforces it), and its niceness.
    pub(super) launch: super::Launch,
}

impl Runner {
    pub fn new(
        tools: Tools,
        concurrency: usize,
        trace: Option<std::fs::File>,
        launch: super::Launch,
    ) -> Runner {
        Runner {
            tools,
            slots: Slots::new(concurrency),
            groups: ProcessGroups::default(),
            trace: trace.map(Mutex::new),
            launch,
        }
    }

    /// Whether each ffmpeg runs confined by the kernel.
    pub fn confines(&self) -> bool {
        self.launch.confine.is_some()
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// The whole command line `run` executes for `args`, program first.
    pub fn command_line(&self, args: &[OsString]) -> Vec<OsString> {
        ffmpeg_command_line(&self.tools, args)
    }

    /// Waits for a slot, then runs the command. Cancelling while waiting gives the place up.
    pub async fn run(
        &self,
        command: &Command,
        at: &Placement,
        cancel: &CancellationToken,
        on_progress: impl FnMut(&Progress) + Send,
    ) -> Result<RunOutcome, RunError> {
        self.run_program(&self.tools, command, at, cancel, on_progress)
            .await
    }

    /// [`Runner::run`] with another ffmpeg (the one that scores); `at` must let it read its
    /// own file when it lies outside the system's directories.
    pub async fn run_program(
        &self,
        tools: &Tools,
        command: &Command,
        at: &Placement,
        cancel: &CancellationToken,
        on_progress: impl FnMut(&Progress) + Send,
    ) -> Result<RunOutcome, RunError> {
        let Some(_slot) = self.slot(at, cancel).await else {
            return Err(RunError::Cancelled);
        };
        self.record(tools, command);
        let options = RunOptions {
            registration: Some(Registration {
                groups: &self.groups,
                tag: &at.gate,
            }),
            confine: self
                .launch
                .confine
                .as_deref()
                .map(|l| (l, at.paths.as_ref())),
            nice: self.launch.nice.as_ref().map(|(p, n)| (p.as_path(), *n)),
        };
        run_ffmpeg_with(tools, &command.args, cancel, options, on_progress)
            .await
            .map_err(|e| match e {
                RunError::Disk {
                    problem,
                    place: None,
                    line,
                    stderr_tail,
                } => RunError::Disk {
                    problem,
                    place: super::disk::fullest(&at.paths.write).map(|(p, _)| p),
                    line,
                    stderr_tail,
                },
                other => other,
            })
    }

    /// A slot for work that is not an ffmpeg process (Whisper takes the CPU like one).
    /// None when cancelled while waiting.
    pub async fn slot(&self, at: &Placement, cancel: &CancellationToken) -> Option<SlotGuard> {
        tokio::select! {
            s = self.slots.acquire(at.priority, &at.gate) => Some(s),
            _ = cancel.cancelled() => None,
        }
    }

    /// Opens or closes a workflow's gate on new ffmpeg starts (its schedule).
    pub fn set_gate(&self, gate: &str, open: bool) {
        self.slots.set_gate(gate, open);
    }

    /// Signals the running processes of one workflow (SIGSTOP, SIGCONT): its ffmpegs and
    /// spool's helpers (Whisper).
    pub fn signal_gate(&self, gate: &str, signal: Signal) -> usize {
        self.groups.signal_tagged(gate, signal)
    }

    /// ffmpeg processes running now.
    pub fn running(&self) -> usize {
        self.groups.count()
    }

    fn record(&self, tools: &Tools, command: &Command) {
        let Some(file) = &self.trace else { return };
        let argv: Vec<String> = ffmpeg_command_line(tools, &command.args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = serde_json::json!({
            "phase": command.phase, "label": command.label, "argv": argv,
        });
        if let Ok(mut f) = file.lock() {
            if let Err(e) = writeln!(f, "{line}") {
                tracing::warn!(error = %e, "cannot write the command trace");
            }
        }
    }
}
