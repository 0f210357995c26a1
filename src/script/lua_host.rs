//! The Lua state of one script, in this process: the sandbox, the limits it can enforce
//! from inside (memory, and a clock that yields out of Lua code), and replies converted
//! with a depth limit. The hook runner hosts one of these; so do library tests.

use std::path::Path;
use std::sync::Arc;

use mlua::{ChunkMode, Lua, LuaSerdeExt, Value};

use super::api::{self, HostApi, JobScope};
use super::sandbox::{self, Limits, Watchdog};
use super::{first_line, ScriptError};

/// Replies and values passed to `spool.json.encode` may nest this deep, no deeper: a table
/// nested 200,000 deep would overflow the stack while it is converted.
pub const MAX_NESTING: usize = 100;

/// One job's Lua: the script has run and returned its table of hooks.
pub struct LuaHost {
    lua: Lua,
    hooks: mlua::Table,
    watchdog: Arc<Watchdog>,
    limits: Limits,
    script: String,
}

impl LuaHost {
    /// Loads `source` (the text of `script`) into a fresh sandbox. With a job in scope the
    /// whole `spool` API is there; without, the calls that touch files, ffmpeg or the
    /// network raise an error. Every name in `required_hooks` must be a function in the
    /// table the script returns.
    pub fn load(
        script: &Path,
        source: &str,
        scripts_dir: &Path,
        limits: Limits,
        required_hooks: &[String],
        host: Option<(Arc<dyn HostApi>, JobScope)>,
    ) -> Result<LuaHost, ScriptError> {
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
        Ok(LuaHost {
            lua,
            hooks,
            watchdog,
            limits,
            script: name,
        })
    }

    pub fn script(&self) -> &str {
        &self.script
    }

    /// Calls `hook(args...)` under the limits; its reply as JSON. Ok(None) when the
    /// script does not define the hook.
    pub fn call_value(
        &self,
        hook: &str,
        args: &[serde_json::Value],
    ) -> Result<Option<serde_json::Value>, ScriptError> {
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
        check_nesting(&value, MAX_NESTING).map_err(bad)?;
        let json: serde_json::Value = self.lua.from_value(value).map_err(|e| bad(e.to_string()))?;
        Ok(Some(json))
    }
}

/// Refuses a value nested deeper than `limit` (a table that contains itself is nested
/// without end), or with too many tables in all; without recursion, so it cannot overflow
/// the stack it protects.
pub fn check_nesting(value: &Value, limit: usize) -> Result<(), String> {
    const MAX_TABLES: usize = 1_000_000;
    let mut stack: Vec<(mlua::Table, usize)> = match value {
        Value::Table(t) => vec![(t.clone(), 1)],
        _ => return Ok(()),
    };
    let mut visited = 0;
    while let Some((table, depth)) = stack.pop() {
        if depth > limit {
            return Err(format!(
                "the value is nested more than {limit} levels deep (or a table contains itself)"
            ));
        }
        visited += 1;
        if visited > MAX_TABLES {
            return Err(format!("the value holds more than {MAX_TABLES} tables"));
        }
        for pair in table.pairs::<Value, Value>() {
            let (k, v) = pair.map_err(|e| e.to_string())?;
            for inner in [k, v] {
                if let Value::Table(t) = inner {
                    stack.push((t, depth + 1));
                }
            }
        }
    }
    Ok(())
}
