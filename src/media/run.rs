//! Runs one ffmpeg in its own process group: progress from `-progress pipe:1`,
//! stderr kept as a tail, both drained concurrently so neither pipe can fill and block.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, ProgressParser};
use super::tools::Tools;

/// Messages that mean retrying cannot help (the seed's ERRORS_LIST, and kin).
const FATAL_MESSAGES: &[&str] = &[
    "Invalid data found when processing input",
    "Output file is empty, nothing was encoded",
    "Unknown encoder",
    "Unrecognized option",
    "Invalid argument",
    "No such file or directory",
    "Permission denied",
    "moov atom not found",
    "does not contain any stream",
    "Error while opening encoder",
];

const STDERR_TAIL_LINES: usize = 25;

/// The storage failures ffmpeg reports, wherever they appear in its output.
const DISK_MESSAGES: &[(&str, DiskProblem)] = &[
    ("No space left on device", DiskProblem::Full),
    ("Disk quota exceeded", DiskProblem::Quota),
    ("Read-only file system", DiskProblem::ReadOnly),
    ("Input/output error", DiskProblem::Io),
];

/// Why a disk refused a write. Retrying does not help until an operator acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskProblem {
    Full,
    Quota,
    ReadOnly,
    Io,
}

impl DiskProblem {
    /// By the OS error number, or by the kind alone: sled re-wraps the OS error as a custom
    /// one of the same kind, without its number.
    pub fn of(e: &std::io::Error) -> Option<DiskProblem> {
        use std::io::ErrorKind;
        match (e.raw_os_error(), e.kind()) {
            (Some(nix::libc::ENOSPC), _) | (None, ErrorKind::StorageFull) => {
                Some(DiskProblem::Full)
            }
            (Some(nix::libc::EDQUOT), _) | (None, ErrorKind::QuotaExceeded) => {
                Some(DiskProblem::Quota)
            }
            (Some(nix::libc::EROFS), _) | (None, ErrorKind::ReadOnlyFilesystem) => {
                Some(DiskProblem::ReadOnly)
            }
            (Some(nix::libc::EIO), _) => Some(DiskProblem::Io),
            _ => None,
        }
    }
}

impl std::fmt::Display for DiskProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiskProblem::Full => "the disk is full",
            DiskProblem::Quota => "the disk quota is exceeded",
            DiskProblem::ReadOnly => "the file system is read-only",
            DiskProblem::Io => "the disk reports an I/O error",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("ffmpeg failed: {message}")]
    Fatal {
        message: String,
        stderr_tail: Vec<String>,
    },
    #[error("ffmpeg exited with {code}: {message}")]
    Failed {
        code: String,
        message: String,
        stderr_tail: Vec<String>,
    },
    /// A disk refused ffmpeg's writes; `place` is the directory whose disk it is, when known.
    #[error("{}{}: {line}", .problem, .place.as_ref().map(|p| format!(" (holding {})", p.display())).unwrap_or_default())]
    Disk {
        problem: DiskProblem,
        place: Option<std::path::PathBuf>,
        line: String,
        stderr_tail: Vec<String>,
    },
    #[error("ffmpeg was cancelled")]
    Cancelled,
    #[error("could not start ffmpeg: {0}")]
    Spawn(#[source] std::io::Error),
}

impl RunError {
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RunError::Fatal { .. }
                | RunError::Disk { .. }
                | RunError::Cancelled
                | RunError::Spawn(_)
        )
    }
    pub fn stderr_tail(&self) -> &[String] {
        match self {
            RunError::Fatal { stderr_tail, .. }
            | RunError::Failed { stderr_tail, .. }
            | RunError::Disk { stderr_tail, .. } => stderr_tail,
            _ => &[],
        }
    }
}

/// The process groups of the ffmpeg runs in progress, each tagged (a workflow's name), so
/// that one workflow's schedule can pause its own processes and no one else's.
#[derive(Debug, Default)]
pub struct ProcessGroups {
    groups: std::sync::Mutex<std::collections::HashMap<i32, String>>,
}

impl ProcessGroups {
    fn add(&self, pgid: i32, tag: &str) {
        if let Ok(mut g) = self.groups.lock() {
            g.insert(pgid, tag.to_string());
        }
    }
    fn remove(&self, pgid: i32) {
        if let Ok(mut g) = self.groups.lock() {
            g.remove(&pgid);
        }
    }
    /// Sends `signal` (SIGSTOP to pause, SIGCONT to resume) to every running ffmpeg with
    /// this tag. Returns how many got it.
    pub fn signal_tagged(&self, tag: &str, signal: Signal) -> usize {
        let groups: Vec<i32> = match self.groups.lock() {
            Ok(g) => g
                .iter()
                .filter(|(_, t)| t.as_str() == tag)
                .map(|(g, _)| *g)
                .collect(),
            Err(_) => return 0,
        };
        groups
            .into_iter()
            .filter(|g| killpg(Pid::from_raw(*g), signal).is_ok())
            .count()
    }
    pub fn count(&self) -> usize {
        self.groups.lock().map_or(0, |g| g.len())
    }
}

/// Where a run registers its process group while it lives.
#[derive(Clone, Copy)]
pub struct Registration<'a> {
    pub groups: &'a ProcessGroups,
    pub tag: &'a str,
}

/// How a run is started beyond its arguments.
#[derive(Clone, Copy, Default)]
pub struct RunOptions<'a> {
    pub registration: Option<Registration<'a>>,
    /// Started through this launcher, confined to these paths (see [`super::confine`]).
    pub confine: Option<(&'a Path, &'a crate::confine::Paths)>,
    /// Started through this `nice` program at this niceness.
    pub nice: Option<(&'a Path, i32)>,
}

/// Takes a process group out of the registry however the run ends.
struct Registered<'a>(Option<&'a ProcessGroups>, Option<i32>);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let (Some(groups), Some(g)) = (self.0, self.1) {
            groups.remove(g);
        }
    }
}

/// Options spool puts before every argv: quiet, no stdin, progress as key=value on stdout.
const PREFIX: [&str; 5] = [
    "-hide_banner",
    "-nostdin",
    "-nostats",
    "-progress",
    "pipe:1",
];

/// The whole command line of a run, program first: what is executed, traced and planned.
pub fn ffmpeg_command_line(tools: &Tools, args: &[OsString]) -> Vec<OsString> {
    let mut argv = Vec::with_capacity(args.len() + PREFIX.len() + 1);
    argv.push(tools.ffmpeg.as_os_str().to_owned());
    argv.extend(PREFIX.iter().map(OsString::from));
    argv.extend(args.iter().cloned());
    argv
}

/// `argv` run through `nice -n N` when a niceness is given.
pub fn niced(nice: Option<(&Path, i32)>, argv: Vec<OsString>) -> Vec<OsString> {
    match nice {
        Some((program, n)) => {
            let mut out: Vec<OsString> = vec![program.into(), "-n".into(), n.to_string().into()];
            out.extend(argv);
            out
        }
        None => argv,
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    pub elapsed_s: f64,
    pub last_progress: Option<Progress>,
}

/// Runs `ffmpeg <args>` with progress reporting. `args` must not contain `-progress`.
/// On cancel the whole process group gets SIGKILL and the child is reaped.
pub async fn run_ffmpeg(
    tools: &Tools,
    args: &[OsString],
    cancel: &CancellationToken,
    on_progress: impl FnMut(&Progress) + Send,
) -> Result<RunOutcome, RunError> {
    run_ffmpeg_with(tools, args, cancel, RunOptions::default(), on_progress).await
}

/// [`run_ffmpeg`], with the process group registered (for pausing) while it runs, and
/// confined by the kernel when a launcher is given.
pub async fn run_ffmpeg_with(
    tools: &Tools,
    args: &[OsString],
    cancel: &CancellationToken,
    options: RunOptions<'_>,
    mut on_progress: impl FnMut(&Progress) + Send,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let registration = options.registration;
    let argv = match options.confine {
        Some((launcher, paths)) => crate::confine::confined_command_line(
            launcher,
            paths,
            &ffmpeg_command_line(tools, args),
        ),
        None => ffmpeg_command_line(tools, args),
    };
    let argv = niced(options.nice, argv);
    let mut parser = ProgressParser::default();
    let mut last_progress = None;
    let ended = run_grouped(&argv, cancel, registration, |line| {
        if let Some(p) = parser.feed_line(line) {
            on_progress(&p);
            last_progress = Some(p);
        }
    })
    .await?;
    let (status, stderr_tail, disk) = (ended.status, ended.stderr_tail, ended.disk);
    if status.success() {
        return Ok(RunOutcome {
            elapsed_s: started.elapsed().as_secs_f64(),
            last_progress,
        });
    }
    if let Some((problem, line)) = disk {
        return Err(RunError::Disk {
            problem,
            place: None,
            line,
            stderr_tail,
        });
    }
    let message = stderr_tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "no error output".into());
    if let Some(fatal) = FATAL_MESSAGES
        .iter()
        .find(|m| stderr_tail.iter().any(|l| l.contains(*m)))
    {
        let line = stderr_tail
            .iter()
            .find(|l| l.contains(fatal))
            .cloned()
            .unwrap_or(message);
        return Err(RunError::Fatal {
            message: line,
            stderr_tail,
        });
    }
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
    Err(RunError::Failed {
        code,
        message,
        stderr_tail,
    })
}

/// How a child run by [`run_grouped`] ended.
pub struct Ended {
    pub status: std::process::ExitStatus,
    pub stderr_tail: Vec<String>,
    /// The first storage failure its stderr reported, wherever it appeared.
    pub disk: Option<(DiskProblem, String)>,
}

/// Runs `argv` (program first) in its own process group, registered while it lives, with
/// each stdout line handed to `on_line` and stderr kept as a tail, both drained at once so
/// neither pipe can fill; on cancel the whole group gets SIGKILL and the child is reaped.
pub async fn run_grouped(
    argv: &[OsString],
    cancel: &CancellationToken,
    registration: Option<Registration<'_>>,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<Ended, RunError> {
    let program = argv
        .first()
        .ok_or_else(|| RunError::Spawn(std::io::Error::other("no program")))?;
    let mut child = tokio::process::Command::new(program)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(RunError::Spawn)?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    if let (Some(g), Some(r)) = (pgid, registration) {
        r.groups.add(g.as_raw(), r.tag);
    }
    let _registered = Registered(registration.map(|r| r.groups), pgid.map(|g| g.as_raw()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Spawn(std::io::Error::other(
            "the child's pipes were not captured",
        )));
    };
    // The tail, and the first storage failure wherever it appears: a full disk makes ffmpeg
    // print many more lines after it, which would push it out of the tail.
    let stderr_task = tokio::spawn(async move {
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        let mut disk: Option<(DiskProblem, String)> = None;
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if disk.is_none() {
                disk = DISK_MESSAGES
                    .iter()
                    .find(|(m, _)| line.contains(m))
                    .map(|(_, p)| (*p, line.clone()));
            }
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        (Vec::from(tail), disk)
    });
    let mut stdout_lines = BufReader::new(stdout).lines();
    let mut stdout_open = true;
    let status = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                let _ = child.wait().await;
                stderr_task.abort();
                return Err(RunError::Cancelled);
            }
            line = stdout_lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => on_line(&line),
                _ => stdout_open = false,
            },
            status = child.wait() => break status.map_err(RunError::Spawn)?,
        }
    };
    // Drain whatever is left after exit.
    while let Ok(Some(line)) = stdout_lines.next_line().await {
        on_line(&line);
    }
    let (stderr_tail, disk) = stderr_task.await.unwrap_or_default();
    Ok(Ended {
        status,
        stderr_tail,
        disk,
    })
}

#[cfg(test)]
mod tests {
    use super::DiskProblem;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_full_disk_is_known_by_its_number_or_its_kind() {
        let os = Error::from_raw_os_error(nix::libc::ENOSPC);
        assert!(matches!(DiskProblem::of(&os), Some(DiskProblem::Full)));
        // As sled hands it on: the same kind, the number gone.
        let rewrapped = Error::new(ErrorKind::StorageFull, format!("{os:?}"));
        assert!(matches!(
            DiskProblem::of(&rewrapped),
            Some(DiskProblem::Full)
        ));
        assert!(DiskProblem::of(&Error::other("x")).is_none());
    }
}
