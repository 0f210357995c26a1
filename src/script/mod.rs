//! The Lua host: a sandboxed state per job, hooks called with typed tables and replies
//! checked into Rust types. Knows nothing of ffmpeg: hooks see plain data.

mod api;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::{ChunkMode, Lua, LuaSerdeExt, Value};

#[cfg(test)]
mod tests;
use serde::{de::DeserializeOwned, Serialize};

pub use api::{HostApi, HttpReply, HttpRequest, JobScope};
pub use sandbox::Limits;
use sandbox::Watchdog;

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{script}: cannot read: {error}")]
    Read {
        script: String,
        error: std::io::Error,
    },
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

fn first_line(e: &mlua::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// One job's Lua: the script has run and returned its table of hooks.
pub struct ScriptHost {
    lua: Lua,
    hooks: mlua::Table,
    watchdog: Arc<Watchdog>,
    limits: Limits,
    script: String,
}

impl ScriptHost {
    /// Loads `source` (the text of `script`) into a fresh sandbox with no job in scope:
    /// the `spool` calls that touch files, ffmpeg or the network raise an error.
    /// The script must return a table of hook functions; every name in `required_hooks`
    /// must be one of them.
    pub fn load(
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
    ) -> Result<ScriptHost, ScriptError> {
        Self::load_with(script, source, scripts_dir, limits, required_hooks, None)
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
        Self::load_with(script, source, &dir, limits, &[], Some((host, scope)))
    }

    fn load_with(
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
        host: Option<(Arc<dyn HostApi>, JobScope)>,
    ) -> Result<ScriptHost, ScriptError> {
        let name = script.display().to_string();
        let (lua, watchdog) = sandbox::new_state(scripts_dir, limits)?;
        api::install(&lua, &watchdog, &name, host)
            .map_err(ScriptError::lua("installing the spool API"))?;
        let chunk = lua
            .load(source)
            .set_name(format!("@{name}"))
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| ScriptError::Compile(first_line(&e)))?;
        watchdog.arm(limits.time_per_call);
        let result = lua.create_thread(chunk).and_then(|t| t.resume::<Value>(()));
        if watchdog.disarm() {
            return Err(ScriptError::TimeLimit {
                script: name,
                hook: "(top level)".into(),
                limit_s: limits.time_per_call.as_secs_f64(),
            });
        }
        let value = result.map_err(|e| ScriptError::Runtime {
            script: name.clone(),
            context: "running the script".into(),
            message: first_line(&e),
        })?;
        let Value::Table(hooks) = value else {
            return Err(ScriptError::BadReply {
                script: name,
                hook: "(top level)".into(),
                message: format!(
                    "the script must return a table of hook functions, not {}",
                    value.type_name()
                ),
            });
        };
        for hook in required_hooks {
            if !matches!(
                hooks.raw_get::<Value>(hook.as_str()),
                Ok(Value::Function(_))
            ) {
                return Err(ScriptError::MissingHook {
                    script: name,
                    hook: hook.clone(),
                });
            }
        }
        Ok(ScriptHost {
            lua,
            hooks,
            watchdog,
            limits,
            script: name,
        })
    }

    pub fn has_hook(&self, hook: &str) -> bool {
        matches!(self.hooks.raw_get::<Value>(hook), Ok(Value::Function(_)))
    }

    /// Calls `hook(args...)` under the limits and deserializes its reply.
    /// Ok(None) when the script does not define the hook.
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        hook: &str,
        args: &[A],
    ) -> Result<Option<R>, ScriptError> {
        let Ok(Value::Function(f)) = self.hooks.raw_get::<Value>(hook) else {
            return Ok(None);
        };
        let bad = |message: String| ScriptError::BadReply {
            script: self.script.clone(),
            hook: hook.into(),
            message,
        };
        let mut values = Vec::with_capacity(args.len());
        // Absent values become nil, not a null sentinel, so scripts can test `if x then`.
        let options = mlua::SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false);
        for a in args {
            values.push(
                self.lua
                    .to_value_with(a, options)
                    .map_err(|e| bad(format!("arguments: {e}")))?,
            );
        }
        self.watchdog.arm(self.limits.time_per_call);
        let result = self
            .lua
            .create_thread(f)
            .and_then(|t| t.resume::<Value>(mlua::MultiValue::from_vec(values)));
        if self.watchdog.disarm() {
            return Err(ScriptError::TimeLimit {
                script: self.script.clone(),
                hook: hook.into(),
                limit_s: self.limits.time_per_call.as_secs_f64(),
            });
        }
        let value = result.map_err(|e| ScriptError::Runtime {
            script: self.script.clone(),
            context: format!("hook {hook}"),
            message: first_line(&e),
        })?;
        let reply: R = serde_path_to_error::deserialize(mlua::serde::Deserializer::new(value))
            .map_err(|e| {
                bad(describe_reply_error(
                    e.path().to_string(),
                    e.inner().to_string(),
                ))
            })?;
        Ok(Some(reply))
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
