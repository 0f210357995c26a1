//! A fresh, locked-down Lua state: only safe libraries, text chunks only, confined `require`,
//! a memory limit, and a per-call time limit that `pcall` cannot swallow.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{ChunkMode, HookTriggers, Lua, LuaOptions, StdLib, Value, VmState};

use super::ScriptError;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub time_per_call: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            time_per_call: Duration::from_secs(2),
        }
    }
}

/// The deadline of the call in progress, shared with the instruction hook.
pub(super) struct Watchdog {
    started: Instant,
    /// Deadline in microseconds since `started`; 0 = no call running.
    deadline_us: AtomicU64,
    tripped: AtomicBool,
}

impl Watchdog {
    pub fn arm(&self, limit: Duration) {
        self.tripped.store(false, Ordering::SeqCst);
        let deadline = self.started.elapsed() + limit;
        self.deadline_us
            .store(deadline.as_micros() as u64, Ordering::SeqCst);
    }
    pub fn disarm(&self) -> bool {
        self.deadline_us.store(0, Ordering::SeqCst);
        self.tripped.load(Ordering::SeqCst)
    }
    /// Stops the clock while Rust works for the script (an ffmpeg run, an HTTP post):
    /// the limit is on Lua's own time. Returns the time left, to give back to `resume`.
    pub fn pause(&self) -> Option<Duration> {
        let deadline = self.deadline_us.swap(0, Ordering::SeqCst);
        (deadline != 0)
            .then(|| Duration::from_micros(deadline).saturating_sub(self.started.elapsed()))
    }
    pub fn resume(&self, left: Option<Duration>) {
        if let Some(left) = left {
            let deadline = self.started.elapsed() + left;
            self.deadline_us
                .store(deadline.as_micros().max(1) as u64, Ordering::SeqCst);
        }
    }
}

fn safe_libs() -> StdLib {
    StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE
}

/// Globals from the base library that reach the file system or load bytecode.
const REMOVED_GLOBALS: &[&str] = &["dofile", "loadfile", "collectgarbage"];

pub(super) fn new_state(
    scripts_dir: &Path,
    limits: Limits,
) -> Result<(Lua, Arc<Watchdog>), ScriptError> {
    let lua = Lua::new_with(safe_libs(), LuaOptions::new())
        .map_err(ScriptError::lua("creating the Lua state"))?;
    lua.set_memory_limit(limits.memory_bytes)
        .map_err(ScriptError::lua("setting the memory limit"))?;
    let watchdog = Arc::new(Watchdog {
        started: Instant::now(),
        deadline_us: AtomicU64::new(0),
        tripped: AtomicBool::new(false),
    });
    let dog = watchdog.clone();
    // Hooks run in a coroutine; past the deadline the hook yields out of it. A yield is not
    // an error, so no pcall inside the script can catch it: control returns to Rust.
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(1000),
        move |_, _| {
            let deadline = dog.deadline_us.load(Ordering::SeqCst);
            let expired = deadline != 0 && dog.started.elapsed().as_micros() as u64 > deadline;
            if expired || dog.tripped.load(Ordering::SeqCst) {
                dog.tripped.store(true, Ordering::SeqCst);
                return Ok(VmState::Yield);
            }
            Ok(VmState::Continue)
        },
    )
    .map_err(ScriptError::lua("installing the time limit"))?;
    install_globals(&lua, scripts_dir).map_err(ScriptError::lua("building the sandbox"))?;
    Ok((lua, watchdog))
}

fn install_globals(lua: &Lua, scripts_dir: &Path) -> mlua::Result<()> {
    let g = lua.globals();
    for name in REMOVED_GLOBALS {
        g.raw_set(*name, Value::Nil)?;
    }
    let string: mlua::Table = g.get("string")?;
    string.raw_set("dump", Value::Nil)?;
    // load() compiles text only: bytecode can break the VM's safety.
    let raw_load: mlua::Function = g.get("load")?;
    let text_load = lua.create_function(
        move |_, (chunk, name, _mode, env): (Value, Option<String>, Value, Value)| {
            raw_load.call::<mlua::MultiValue>((chunk, name, "t", env))
        },
    )?;
    g.raw_set("load", text_load)?;
    // os: only the clock.
    let os = lua.create_table()?;
    os.raw_set(
        "time",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()))
        })?,
    )?;
    let clock_start = Instant::now();
    os.raw_set(
        "clock",
        lua.create_function(move |_, ()| Ok(clock_start.elapsed().as_secs_f64()))?,
    )?;
    g.raw_set("os", os)?;
    g.raw_set("require", require_fn(lua, scripts_dir.to_path_buf())?)?;
    Ok(())
}

/// `require "a.b"` loads `<scripts dir>/a/b.lua` as text, once; nothing outside that directory.
fn require_fn(lua: &Lua, dir: PathBuf) -> mlua::Result<mlua::Function> {
    let loaded = lua.create_table()?;
    lua.create_function(move |lua, name: String| {
        if let Some(v) = loaded.raw_get::<Option<Value>>(name.as_str())? {
            return Ok(v);
        }
        let valid = !name.is_empty() && name.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        if !valid {
            return Err(mlua::Error::runtime(format!(
                "require {name:?} refused: module names are letters, digits and '_' separated by '.'"
            )));
        }
        let path = dir.join(format!("{}.lua", name.replace('.', "/")));
        let confined = match (path.canonicalize(), dir.canonicalize()) {
            (Ok(p), Ok(d)) => p.starts_with(&d),
            _ => false,
        };
        if !confined {
            return Err(mlua::Error::runtime(format!(
                "require {name:?} refused: no {} inside the scripts directory {}",
                path.display(),
                dir.display()
            )));
        }
        let source = std::fs::read_to_string(&path).map_err(mlua::Error::external)?;
        let value: Value = lua
            .load(source)
            .set_name(format!("@{}", path.display()))
            .set_mode(ChunkMode::Text)
            .call(())?;
        let value = if value.is_nil() { Value::Boolean(true) } else { value };
        loaded.raw_set(name.as_str(), value.clone())?;
        Ok(value)
    })
}
