//! Hooks in a child process. The Lua sandbox inside limits what a script can reach and
//! stops most runaway code; but a yield cannot leave a C function or a finalizer, a regex
//! backtracks in C with no hook to stop it, and a reply nested deep enough overflows a
//! stack. So each job's script runs in `spool __hook-runner`, a child that limits its own
//! memory and CPU, while the engine keeps the clock: a hook that outlives its time is
//! killed with its process group, and a runner that dies takes nothing else with it.

pub mod child;
mod protocol;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use protocol::{FromRunner, HostCall, Scope, ToRunner};

use super::{HostApi, HttpRequest, JobScope, Limits, ScriptError};

/// The argument that starts the runner.
pub const RUNNER_ARG: &str = "__hook-runner";

/// Beyond a call's own limit, the time the engine waits before it kills the runner: the
/// sandbox's clock (inside) stops ordinary Lua first, with a clearer message.
const KILL_SLACK: Duration = Duration::from_secs(1);
const STDERR_TAIL: usize = 20;

/// Where hooks run.
#[derive(Debug, Clone, PartialEq)]
pub enum Isolation {
    /// In a child process: this program, started with [`RUNNER_ARG`].
    Process(PathBuf),
    /// In this process (the sandbox alone): library tests and embedders.
    InProcess,
}

impl Isolation {
    /// `SPOOL_HOOK_RUNNER` (`inprocess`, or the runner's path) if set; otherwise the
    /// running program if it is spool; otherwise in-process.
    pub fn detect() -> Isolation {
        if let Some(v) = std::env::var_os("SPOOL_HOOK_RUNNER") {
            return match v.to_str() {
                Some("inprocess") => Isolation::InProcess,
                _ => Isolation::Process(PathBuf::from(v)),
            };
        }
        match std::env::current_exe() {
            Ok(exe) if exe.file_stem().is_some_and(|s| s == "spool") => Isolation::Process(exe),
            _ => Isolation::InProcess,
        }
    }
}

struct Runner {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Option<FromRunner>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Set once the runner was killed or died: every later call says why.
    dead: Option<String>,
}

/// A script loaded in a runner.
pub struct RunnerHost {
    runner: Mutex<Runner>,
    api: Option<Arc<dyn HostApi>>,
    limits: Limits,
    script: String,
}

impl RunnerHost {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        program: &Path,
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
        host: Option<(Arc<dyn HostApi>, JobScope)>,
    ) -> Result<RunnerHost, ScriptError> {
        let name = script.display().to_string();
        let spawn_error = |e: std::io::Error| ScriptError::Host {
            context: format!("starting the hook runner {}", program.display()),
            message: e.to_string(),
        };
        let mut child = Command::new(program)
            .arg(RUNNER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(std::io::Error::other("pipes not captured")));
        };
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // A line that does not parse ends the conversation like an exit would.
                let parsed = serde_json::from_str::<FromRunner>(&line).ok();
                let stop = parsed.is_none();
                if tx.send(parsed).is_err() || stop {
                    break;
                }
            }
        });
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let kept = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Ok(mut t) = kept.lock() {
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
        let (api, scope) = match host {
            Some((api, s)) => (
                Some(api),
                Some(Scope {
                    job: s.job,
                    params: s.params,
                    input: s.input,
                    work_dir: s.work_dir,
                    out_dir: s.out_dir,
                }),
            ),
            None => (None, None),
        };
        let host = RunnerHost {
            runner: Mutex::new(Runner {
                child,
                stdin,
                replies,
                stderr: tail,
                dead: None,
            }),
            api,
            limits,
            script: name,
        };
        let load = ToRunner::Load {
            script: script.to_path_buf(),
            source: source.to_string(),
            scripts_dir: scripts_dir.to_path_buf(),
            memory_bytes: limits.memory_bytes,
            time_per_call_ms: limits.time_per_call.as_millis() as u64,
            required_hooks: required_hooks.to_vec(),
            scope,
        };
        host.exchange(load, "(top level)")?;
        Ok(host)
    }

    pub fn script(&self) -> &str {
        &self.script
    }

    /// Calls `hook(args...)`; Ok(None) when the script does not define it.
    pub fn call(&self, hook: &str, args: Vec<Value>) -> Result<Option<Value>, ScriptError> {
        self.exchange(
            ToRunner::Call {
                hook: hook.to_string(),
                args,
            },
            hook,
        )
    }

    /// Sends `first` and serves the runner's host calls until it answers, on the clock.
    fn exchange(&self, first: ToRunner, hook: &str) -> Result<Option<Value>, ScriptError> {
        let mut runner = self.runner.lock().map_err(|_| ScriptError::Host {
            context: "the hook runner".into(),
            message: "poisoned by an earlier panic".into(),
        })?;
        if let Some(why) = &runner.dead {
            return Err(self.stopped(hook, why));
        }
        let mut clock = Clock::new(self.limits.time_per_call + KILL_SLACK);
        runner
            .send(&first)
            .map_err(|e| self.died(&mut runner, hook, &e))?;
        loop {
            match clock.wait(&runner.replies) {
                Waited::Message(FromRunner::Done { result }) => return result,
                Waited::Message(FromRunner::Host { call }) => {
                    let answer = self.serve(&mut runner, &mut clock, hook, call)?;
                    runner
                        .send(&ToRunner::HostReply { result: answer })
                        .map_err(|e| self.died(&mut runner, hook, &e))?;
                }
                Waited::Message(FromRunner::ProgressDone) => {}
                Waited::TimedOut => return Err(self.overran(&mut runner, hook)),
                Waited::Closed => return Err(self.died(&mut runner, hook, "it exited")),
            }
        }
    }

    /// Does a host call for the script, off its clock (ffmpeg's progress callbacks are on it).
    fn serve(
        &self,
        runner: &mut Runner,
        clock: &mut Clock,
        hook: &str,
        call: HostCall,
    ) -> Result<Result<Value, String>, ScriptError> {
        let Some(api) = &self.api else {
            return Ok(Err("no job is in scope".into()));
        };
        Ok(match call {
            HostCall::Probe { path } => api.probe(&path),
            HostCall::Md5 { path } => api.md5(&path).map(Value::String),
            HostCall::HttpPost {
                url,
                body,
                content_type,
                headers,
                timeout_ms,
            } => api
                .http_post(HttpRequest {
                    url,
                    body,
                    content_type,
                    headers,
                    timeout: Duration::from_millis(timeout_ms),
                })
                .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string())),
            HostCall::Ffmpeg { argv } => {
                let mut failure: Option<ScriptError> = None;
                let done = api.ffmpeg(argv, &mut |value| {
                    if failure.is_none() {
                        failure = self.progress(runner, clock, hook, value).err();
                    }
                });
                if let Some(e) = failure {
                    return Err(e);
                }
                done
            }
        })
    }

    /// Hands one progress report to the script's callback and waits for it, on the clock.
    /// Host calls the callback makes are served (not ffmpeg: one runs already).
    fn progress(
        &self,
        runner: &mut Runner,
        clock: &mut Clock,
        hook: &str,
        value: Value,
    ) -> Result<(), ScriptError> {
        runner
            .send(&ToRunner::Progress { value })
            .map_err(|e| self.died(runner, hook, &e))?;
        loop {
            match clock.wait(&runner.replies) {
                Waited::Message(FromRunner::ProgressDone) => return Ok(()),
                Waited::Message(FromRunner::Host { call }) => {
                    let answer = match call {
                        HostCall::Ffmpeg { .. } => {
                            Err("spool.ffmpeg cannot be called from on_progress".into())
                        }
                        other => self.serve(runner, clock, hook, other)?,
                    };
                    runner
                        .send(&ToRunner::HostReply { result: answer })
                        .map_err(|e| self.died(runner, hook, &e))?;
                }
                Waited::Message(FromRunner::Done { .. }) => {
                    return Err(self.died(runner, hook, "it answered out of turn"))
                }
                Waited::TimedOut => return Err(self.overran(runner, hook)),
                Waited::Closed => return Err(self.died(runner, hook, "it exited")),
            }
        }
    }

    /// The hook outlived its time (and the slack): the runner is killed.
    fn overran(&self, runner: &mut Runner, hook: &str) -> ScriptError {
        runner.kill();
        runner.dead = Some(format!("hook {hook} ran past its time limit"));
        ScriptError::TimeLimit {
            script: self.script.clone(),
            hook: hook.into(),
            limit_s: self.limits.time_per_call.as_secs_f64(),
        }
    }

    /// The runner went away mid-call: how it ended, and its last words.
    fn died(&self, runner: &mut Runner, hook: &str, what: &str) -> ScriptError {
        runner.kill();
        let status = runner.status();
        let last = runner
            .stderr
            .lock()
            .map(|t| t.iter().rev().find(|l| !l.trim().is_empty()).cloned())
            .ok()
            .flatten()
            .map(|l| format!("; it said: {l}"))
            .unwrap_or_default();
        let detail = format!("{what}, {status}{last}");
        runner.dead = Some(format!("the hook runner died in hook {hook}"));
        ScriptError::Crashed {
            script: self.script.clone(),
            hook: hook.into(),
            detail,
        }
    }

    fn stopped(&self, hook: &str, why: &str) -> ScriptError {
        ScriptError::Crashed {
            script: self.script.clone(),
            hook: hook.into(),
            detail: format!("the script was stopped earlier: {why}"),
        }
    }
}

impl Runner {
    fn send(&mut self, message: &ToRunner) -> Result<(), String> {
        let line = serde_json::to_string(message).map_err(|e| e.to_string())?;
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("cannot talk to it ({e})"))
    }

    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }

    /// How the runner ended, waiting briefly for it to be reaped.
    fn status(&mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    return match (s.code(), s.signal()) {
                        (_, Some(9)) => "killed".into(),
                        (_, Some(sig)) => format!(
                            "killed by signal {sig} ({}; a memory, CPU or stack limit?)",
                            Signal::try_from(sig).map_or("?", |s| s.as_str())
                        ),
                        (Some(code), _) => format!("exit code {code}"),
                        _ => "ended".into(),
                    }
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return "still running".into(),
            }
        }
    }
}

impl Drop for Runner {
    /// The job is over: whatever the script still runs (a finalizer at close) goes with it.
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.wait();
    }
}

/// A call's time budget: it runs only while the runner runs Lua.
struct Clock {
    left: Duration,
}

enum Waited {
    Message(FromRunner),
    TimedOut,
    Closed,
}

impl Clock {
    fn new(limit: Duration) -> Clock {
        Clock { left: limit }
    }

    fn wait(&mut self, replies: &Receiver<Option<FromRunner>>) -> Waited {
        let started = Instant::now();
        let got = replies.recv_timeout(self.left);
        self.left = self.left.saturating_sub(started.elapsed());
        match got {
            Ok(Some(m)) => Waited::Message(m),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => Waited::Closed,
            Err(RecvTimeoutError::Timeout) => Waited::TimedOut,
        }
    }
}
