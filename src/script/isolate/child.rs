//! The hook runner: `spool __hook-runner`, started by the engine for one job (or one
//! validation). It limits its own resources, runs the Lua sandbox, and asks the engine,
//! over its stdin and stdout, for everything a script may do beyond Lua.

use std::io::{BufRead, BufReader, Stdin, Stdout, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{FromRunner, HostCall, Scope, ToRunner};
use crate::script::lua_host::LuaHost;
use crate::script::{HostApi, HttpReply, HttpRequest, JobScope, Limits, ScriptError};

/// Address space for the whole runner: Lua's own limit is far below it, so this only
/// catches what escapes Lua's allocator.
const ADDRESS_SPACE_BYTES: u64 = 2 << 30;
/// CPU seconds for the runner's whole life (one job): far above any honest script.
const CPU_SECONDS: u64 = 600;

struct Io {
    input: BufReader<Stdin>,
    output: Stdout,
}

impl Io {
    fn send(&mut self, message: &FromRunner) -> Result<(), String> {
        let line = serde_json::to_string(message).map_err(|e| e.to_string())?;
        writeln!(self.output, "{line}")
            .and_then(|()| self.output.flush())
            .map_err(|e| format!("writing to the engine: {e}"))
    }

    fn receive(&mut self) -> Result<Option<ToRunner>, String> {
        let mut line = String::new();
        match self.input.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| format!("unreadable message from the engine: {e}")),
            Err(e) => Err(format!("reading from the engine: {e}")),
        }
    }
}

/// Runs until the engine closes stdin. Returns the process exit code.
pub fn run() -> u8 {
    limit_resources();
    let io = Arc::new(Mutex::new(Io {
        input: BufReader::new(std::io::stdin()),
        output: std::io::stdout(),
    }));
    match serve(&io) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("spool hook runner: {e}");
            1
        }
    }
}

fn limit_resources() {
    use nix::sys::resource::{setrlimit, Resource};
    for (resource, limit) in [
        (Resource::RLIMIT_AS, ADDRESS_SPACE_BYTES),
        (Resource::RLIMIT_CPU, CPU_SECONDS),
        // No core dumps of a script's memory.
        (Resource::RLIMIT_CORE, 0),
    ] {
        if let Err(e) = setrlimit(resource, limit, limit) {
            eprintln!("spool hook runner: cannot set {resource:?}: {e}");
        }
    }
}

fn next(io: &Arc<Mutex<Io>>) -> Result<Option<ToRunner>, String> {
    io.lock()
        .map_err(|_| "the runner's channel is poisoned".to_string())?
        .receive()
}

fn reply(io: &Arc<Mutex<Io>>, result: Result<Option<Value>, ScriptError>) -> Result<(), String> {
    io.lock()
        .map_err(|_| "the runner's channel is poisoned".to_string())?
        .send(&FromRunner::Done { result })
}

fn serve(io: &Arc<Mutex<Io>>) -> Result<(), String> {
    let Some(ToRunner::Load {
        script,
        source,
        scripts_dir,
        memory_bytes,
        time_per_call_ms,
        required_hooks,
        scope,
    }) = next(io)?
    else {
        return Err("the first message must be a load".into());
    };
    let limits = Limits {
        memory_bytes,
        time_per_call: Duration::from_millis(time_per_call_ms),
    };
    confine(&scripts_dir, scope.as_ref());
    let host = scope.map(|s: Scope| {
        let api: Arc<dyn HostApi> = Arc::new(RemoteApi { io: io.clone() });
        let scope = JobScope {
            job: s.job,
            params: s.params,
            input: s.input,
            work_dir: s.work_dir,
            out_dir: s.out_dir,
        };
        (api, scope)
    });
    let loaded = LuaHost::load(
        &script,
        &source,
        &scripts_dir,
        limits,
        &required_hooks,
        host,
    );
    let lua = match loaded {
        Ok(lua) => {
            reply(io, Ok(None))?;
            lua
        }
        Err(e) => return reply(io, Err(e)),
    };
    while let Some(message) = next(io)? {
        let ToRunner::Call { hook, args } = message else {
            return Err("expected a call".into());
        };
        reply(io, lua.call_value(&hook, &args))?;
    }
    Ok(())
}

/// The runner may read its scripts and the job's files, and write only where `spool.fs`
/// may: the kernel holds what the path checks in `api.rs` decide, symlink races included.
fn confine(scripts_dir: &std::path::Path, scope: Option<&Scope>) {
    use crate::confine::{restrict_self, Paths};
    let mut paths = Paths {
        read: vec![scripts_dir.to_path_buf()],
        write: Vec::new(),
    };
    if let Some(s) = scope {
        paths
            .read
            .extend([s.input.clone(), s.work_dir.clone(), s.out_dir.clone()]);
        paths.write.extend([s.work_dir.clone(), s.out_dir.clone()]);
    }
    if let Err(e) = restrict_self(&paths) {
        eprintln!("spool hook runner: not confined by the kernel: {e}");
    }
}

/// The script's host calls, done by the engine.
struct RemoteApi {
    io: Arc<Mutex<Io>>,
}

impl RemoteApi {
    /// Sends a host call and waits for its answer, handing progress reports to `progress`.
    /// The channel is not held while the callback runs: it may make host calls of its own.
    fn ask(&self, call: HostCall, progress: &mut dyn FnMut(Value)) -> Result<Value, String> {
        let io = || {
            self.io
                .lock()
                .map_err(|_| "the runner's channel is poisoned".to_string())
        };
        io()?.send(&FromRunner::Host { call })?;
        loop {
            let message = io()?.receive()?;
            match message {
                Some(ToRunner::HostReply { result }) => return result,
                Some(ToRunner::Progress { value }) => {
                    progress(value);
                    io()?.send(&FromRunner::ProgressDone)?;
                }
                Some(_) => return Err("unexpected message during a host call".into()),
                None => return Err("the engine went away".into()),
            }
        }
    }
}

impl HostApi for RemoteApi {
    fn probe(&self, path: &std::path::Path) -> Result<Value, String> {
        self.ask(
            HostCall::Probe {
                path: path.to_path_buf(),
            },
            &mut |_| {},
        )
    }

    fn md5(&self, path: &std::path::Path) -> Result<String, String> {
        let v = self.ask(
            HostCall::Md5 {
                path: path.to_path_buf(),
            },
            &mut |_| {},
        )?;
        v.as_str()
            .map(String::from)
            .ok_or_else(|| "the engine's md5 reply is not a string".into())
    }

    fn ffmpeg(
        &self,
        argv: Vec<String>,
        on_progress: &mut dyn FnMut(Value),
    ) -> Result<Value, String> {
        self.ask(HostCall::Ffmpeg { argv }, on_progress)
    }

    fn http_post(&self, request: HttpRequest) -> Result<HttpReply, String> {
        let v = self.ask(
            HostCall::HttpPost {
                url: request.url,
                body: request.body,
                content_type: request.content_type,
                headers: request.headers,
                timeout_ms: request.timeout.as_millis() as u64,
            },
            &mut |_| {},
        )?;
        serde_json::from_value(v).map_err(|e| format!("the engine's http reply: {e}"))
    }
}
