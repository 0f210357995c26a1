//! The Lua host: a sandboxed state per job, hooks called with typed tables and replies
//! checked into Rust types. Knows nothing of ffmpeg: hooks see plain data.

mod api;
pub mod isolate;
mod lua_host;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mlua::{ChunkMode, Lua};

#[cfg(test)]
mod tests;
use serde::{de::DeserializeOwned, Serialize};

pub use api::{HostApi, HttpReply, HttpRequest, JobScope};
use isolate::RunnerHost;
pub use isolate::{Isolation, RUNNER_ARG};
use lua_host::LuaHost;
pub use lua_host::MAX_NESTING;
pub use sandbox::Limits;

#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ScriptError {
    #[error("{script}: cannot read: {error}")]
    Read { script: String, error: String },
    #[error("{0}")]
    Compile(String),
    #[error("{script}: {context}: {message}")]
    Runtime {
        script: String,
        context: String,
        message: String,
    },
    #[error("{script}: hook {hook} ran past its time limit of {limit_s:.1}s")]
    TimeLimit {
        script: String,
        hook: String,
        limit_s: f64,
    },
    #[error("{script}: hook {hook} returned a bad reply: {message}")]
    BadReply {
        script: String,
        hook: String,
        message: String,
    },
    #[error("{script}: the workflow names hook {hook}, but the script's returned table has no such function")]
    MissingHook { script: String, hook: String },
    #[error("Lua: {context}: {message}")]
    Host { context: String, message: String },
    /// The runner died (a memory, CPU or stack limit, or an abort) or was stopped earlier.
    #[error("{script}: hook {hook} stopped the hook runner: {detail}")]
    Crashed {
        script: String,
        hook: String,
        detail: String,
    },
}

impl ScriptError {
    fn lua(context: &'static str) -> impl Fn(mlua::Error) -> ScriptError {
        move |e| ScriptError::Host {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Compiles a script without running it: syntax errors come back with file:line.
pub fn check_syntax(path: &Path, source: &str) -> Result<(), ScriptError> {
    let lua = Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::new())
        .map_err(ScriptError::lua("creating the Lua state"))?;
    lua.load(source)
        .set_name(format!("@{}", path.display()))
        .set_mode(ChunkMode::Text)
        .into_function()
        .map(|_| ())
        .map_err(|e| ScriptError::Compile(first_line(&e)))
}

pub(crate) fn first_line(e: &mlua::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A loaded script, wherever it runs (see [`Isolation`]). Calls take and give JSON values;
/// typed replies are checked with the field named when they do not fit.
pub struct ScriptHost {
    inner: Inner,
}

enum Inner {
    Local(Mutex<LuaHost>),
    Runner(RunnerHost),
}

impl ScriptHost {
    /// Loads `source` (the text of `script`) with no job in scope: the `spool` calls that
    /// touch files, ffmpeg or the network raise an error. Every name in `required_hooks`
    /// must be a function in the table the script returns.
    pub fn load(
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
    ) -> Result<ScriptHost, ScriptError> {
        Self::load_in(
            &Isolation::detect(),
            script,
            source,
            scripts_dir,
            limits,
            required_hooks,
            None,
        )
    }

    /// Loads a script for a job: the whole `spool` API is there, confined to `scope`.
    pub fn load_for_job(
        script: &Path,
        source: &str,
        limits: Limits,
        host: Arc<dyn HostApi>,
        scope: JobScope,
    ) -> Result<ScriptHost, ScriptError> {
        let dir = scripts_dir_of(script);
        Self::load_in(
            &Isolation::detect(),
            script,
            source,
            &dir,
            limits,
            &[],
            Some((host, scope)),
        )
    }

    /// Loads a script where `isolation` says.
    pub fn load_in(
        isolation: &Isolation,
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
        host: Option<(Arc<dyn HostApi>, JobScope)>,
    ) -> Result<ScriptHost, ScriptError> {
        let inner = match isolation {
            Isolation::InProcess => Inner::Local(Mutex::new(LuaHost::load(
                script,
                source,
                scripts_dir,
                limits,
                required_hooks,
                host,
            )?)),
            Isolation::Process(program) => Inner::Runner(RunnerHost::load(
                program,
                script,
                source,
                scripts_dir,
                limits,
                required_hooks,
                host,
            )?),
        };
        Ok(ScriptHost { inner })
    }

    /// Calls `hook(args...)` and checks its reply into `R`. Ok(None) when the script does
    /// not define the hook.
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        hook: &str,
        args: &[A],
    ) -> Result<Option<R>, ScriptError> {
        let bad = |message: String| ScriptError::BadReply {
            script: self.script_name(),
            hook: hook.into(),
            message,
        };
        let args: Vec<serde_json::Value> = args
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("arguments: {e}")))?;
        let reply = match &self.inner {
            Inner::Local(host) => host
                .lock()
                .map_err(|_| ScriptError::Host {
                    context: "the Lua state".into(),
                    message: "poisoned by an earlier panic".into(),
                })?
                .call_value(hook, &args)?,
            Inner::Runner(host) => host.call(hook, args)?,
        };
        let Some(reply) = reply else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(reply)
            .map(Some)
            .map_err(|e| {
                bad(describe_reply_error(
                    e.path().to_string(),
                    e.inner().to_string(),
                ))
            })
    }

    fn script_name(&self) -> String {
        match &self.inner {
            Inner::Local(h) => h.lock().map(|h| h.script().to_string()).unwrap_or_default(),
            Inner::Runner(h) => h.script().to_string(),
        }
    }
}

/// "field profiles[2].crf: invalid type …": serde_path_to_error names the field that was wrong.
pub fn describe_reply_error(path: String, error: String) -> String {
    if path == "." {
        error
    } else {
        format!("field {path}: {error}")
    }
}

/// Where a workflow's scripts live: the directory of the script, used to confine `require`.
pub fn scripts_dir_of(script: &Path) -> PathBuf {
    script
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
