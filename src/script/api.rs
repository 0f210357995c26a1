//! The `spool` table scripts see: logging and JSON always; probe, md5, ffmpeg, http and a
//! file system confined to the job's own directories when a job is in scope.
//! The engine does the work through [`HostApi`]; this module only checks and converts.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::sandbox::Watchdog;

/// What a job's script may ask the engine to do. Errors are messages for the script.
pub trait HostApi: Send + Sync {
    /// The probed media of a file, as plain data.
    fn probe(&self, path: &Path) -> Result<serde_json::Value, String>;
    fn md5(&self, path: &Path) -> Result<String, String>;
    /// Runs ffmpeg with `argv` (checked by the engine); progress reports go to `on_progress`.
    fn ffmpeg(
        &self,
        argv: Vec<String>,
        on_progress: &mut dyn FnMut(serde_json::Value),
    ) -> Result<serde_json::Value, String>;
    fn http_post(&self, request: HttpRequest) -> Result<HttpReply, String>;
}

pub struct HttpRequest {
    pub url: String,
    pub body: Vec<u8>,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

/// The job a script works for: the only places its `spool.fs` calls may reach.
#[derive(Debug, Clone)]
pub struct JobScope {
    pub job: String,
    /// The workflow's `script.params`, as `spool.params`.
    pub params: serde_json::Value,
    pub input: PathBuf,
    pub work_dir: PathBuf,
    pub out_dir: PathBuf,
}

pub(super) fn install(
    lua: &Lua,
    watchdog: &Arc<Watchdog>,
    script: &str,
    host: Option<(Arc<dyn HostApi>, JobScope)>,
) -> mlua::Result<()> {
    let spool = lua.create_table()?;
    spool.raw_set("log", log_table(lua, script, host.as_ref().map(|h| &h.1))?)?;
    spool.raw_set("json", json_table(lua)?)?;
    let params = host
        .as_ref()
        .map_or(serde_json::Value::Null, |h| h.1.params.clone());
    let params = match params {
        serde_json::Value::Null => Value::Table(lua.create_table()?),
        p => lua.to_value(&p)?,
    };
    spool.raw_set("params", params)?;
    match host {
        Some((api, scope)) => {
            let job = lua.create_table()?;
            job.raw_set("id", scope.job.as_str())?;
            job.raw_set("input", scope.input.display().to_string())?;
            job.raw_set("work_dir", scope.work_dir.display().to_string())?;
            job.raw_set("out_dir", scope.out_dir.display().to_string())?;
            spool.raw_set("job", job)?;
            install_host_calls(lua, &spool, watchdog, api, Arc::new(scope))?;
        }
        None => {
            for name in ["probe", "md5", "ffmpeg"] {
                spool.raw_set(name, unavailable(lua, name)?)?;
            }
            let http = lua.create_table()?;
            http.raw_set("post", unavailable(lua, "http.post")?)?;
            spool.raw_set("http", http)?;
            let fs = lua.create_table()?;
            for name in ["read", "write", "exists", "list", "remove", "mkdir"] {
                fs.raw_set(name, unavailable(lua, &format!("fs.{name}"))?)?;
            }
            spool.raw_set("fs", fs)?;
        }
    }
    lua.globals().raw_set("spool", spool)
}

fn unavailable(lua: &Lua, name: &str) -> mlua::Result<mlua::Function> {
    let message = format!("spool.{name} is only available while a job runs");
    lua.create_function(move |_, _: mlua::MultiValue| -> mlua::Result<()> {
        Err(mlua::Error::runtime(message.clone()))
    })
}

fn log_table(lua: &Lua, script: &str, scope: Option<&JobScope>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let job = scope.map(|s| s.job.clone()).unwrap_or_default();
    for level in ["debug", "info", "warn", "error"] {
        let (script, job) = (script.to_string(), job.clone());
        let f = lua.create_function(move |_, parts: mlua::Variadic<Value>| {
            let message: Vec<String> = parts
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_string()))
                .collect();
            let message = message.join(" ");
            match level {
                "debug" => tracing::debug!(%job, %script, "{message}"),
                "info" => tracing::info!(%job, %script, "{message}"),
                "warn" => tracing::warn!(%job, %script, "{message}"),
                _ => tracing::error!(%job, %script, "{message}"),
            }
            Ok(())
        })?;
        t.raw_set(level, f)?;
    }
    Ok(t)
}

fn json_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            super::lua_host::check_nesting(&v, super::MAX_NESTING).map_err(mlua::Error::runtime)?;
            let json: serde_json::Value = lua.from_value(v)?;
            serde_json::to_string(&json).map_err(mlua::Error::external)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, text: String| {
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(mlua::Error::external)?;
            lua.to_value(&json)
        })?,
    )?;
    Ok(t)
}

/// Runs `work` with the script's clock stopped, so waiting on ffmpeg is not Lua time.
fn off_the_clock<T>(watchdog: &Watchdog, work: impl FnOnce() -> T) -> T {
    let left = watchdog.pause();
    let out = work();
    watchdog.resume(left);
    out
}

fn install_host_calls(
    lua: &Lua,
    spool: &Table,
    watchdog: &Arc<Watchdog>,
    api: Arc<dyn HostApi>,
    scope: Arc<JobScope>,
) -> mlua::Result<()> {
    let (a, s, w) = (api.clone(), scope.clone(), watchdog.clone());
    spool.raw_set(
        "probe",
        lua.create_function(move |lua, path: String| {
            let path = confine(&s, &path, Access::ReadOrInput).map_err(mlua::Error::runtime)?;
            let info = off_the_clock(&w, || a.probe(&path)).map_err(mlua::Error::runtime)?;
            lua.to_value(&info)
        })?,
    )?;
    let (a, s, w) = (api.clone(), scope.clone(), watchdog.clone());
    spool.raw_set(
        "md5",
        lua.create_function(move |_, path: String| {
            let path = confine(&s, &path, Access::ReadOrInput).map_err(mlua::Error::runtime)?;
            off_the_clock(&w, || a.md5(&path)).map_err(mlua::Error::runtime)
        })?,
    )?;
    let (a, w) = (api.clone(), watchdog.clone());
    spool.raw_set(
        "ffmpeg",
        lua.create_function(move |lua, (argv, options): (Vec<String>, Option<Table>)| {
            let on_progress: Option<mlua::Function> = match &options {
                Some(o) => o.get("on_progress")?,
                None => None,
            };
            let mut callback_error = None;
            let result = {
                let left = w.pause();
                let mut report = |p: serde_json::Value| {
                    let Some(f) = &on_progress else { return };
                    if callback_error.is_some() {
                        return;
                    }
                    // The callback is Lua time again.
                    w.resume(left);
                    let called = lua.to_value(&p).and_then(|v| f.call::<()>(v));
                    let _ = w.pause();
                    if let Err(e) = called {
                        callback_error = Some(e);
                    }
                };
                let r = a.ffmpeg(argv, &mut report);
                w.resume(left);
                r
            };
            if let Some(e) = callback_error {
                return Err(e);
            }
            lua.to_value(&result.map_err(mlua::Error::runtime)?)
        })?,
    )?;
    let http = lua.create_table()?;
    let (a, w) = (api, watchdog.clone());
    http.raw_set(
        "post",
        lua.create_function(
            move |lua, (url, body, options): (String, Value, Option<Table>)| {
                let request = http_request(lua, url, body, options)?;
                let reply =
                    off_the_clock(&w, || a.http_post(request)).map_err(mlua::Error::runtime)?;
                let t = lua.create_table()?;
                t.raw_set("status", reply.status)?;
                t.raw_set("body", reply.body)?;
                Ok(t)
            },
        )?,
    )?;
    spool.raw_set("http", http)?;
    spool.raw_set("fs", fs_table(lua, scope)?)
}

fn http_request(
    lua: &Lua,
    url: String,
    body: Value,
    options: Option<Table>,
) -> mlua::Result<HttpRequest> {
    let (body, content_type) = match body {
        Value::String(s) => (s.as_bytes().to_vec(), "text/plain; charset=utf-8"),
        Value::Nil => (Vec::new(), "text/plain; charset=utf-8"),
        other => {
            super::lua_host::check_nesting(&other, super::MAX_NESTING)
                .map_err(mlua::Error::runtime)?;
            let json: serde_json::Value = lua.from_value(other)?;
            (
                serde_json::to_vec(&json).map_err(mlua::Error::external)?,
                "application/json",
            )
        }
    };
    let mut headers = Vec::new();
    let mut timeout = Duration::from_secs(10);
    if let Some(o) = options {
        if let Some(h) = o.get::<Option<Table>>("headers")? {
            for pair in h.pairs::<String, String>() {
                headers.push(pair?);
            }
        }
        if let Some(t) = o.get::<Option<f64>>("timeout")? {
            if !(t.is_finite() && t > 0.0 && t <= 120.0) {
                return Err(mlua::Error::runtime(
                    "spool.http.post: timeout must be > 0 and ≤ 120 seconds",
                ));
            }
            timeout = Duration::from_secs_f64(t);
        }
    }
    Ok(HttpRequest {
        url,
        body,
        content_type: content_type.into(),
        headers,
        timeout,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    /// Reading the job's input file is allowed too.
    ReadOrInput,
    Write,
}

fn fs_table(lua: &Lua, scope: Arc<JobScope>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let io = |e: std::io::Error| mlua::Error::runtime(e.to_string());
    let s = scope.clone();
    t.raw_set(
        "read",
        lua.create_function(move |_, path: String| {
            let p = confine(&s, &path, Access::Read).map_err(mlua::Error::runtime)?;
            std::fs::read_to_string(&p).map_err(io)
        })?,
    )?;
    let s = scope.clone();
    t.raw_set(
        "write",
        lua.create_function(move |_, (path, text): (String, mlua::String)| {
            let p = confine(&s, &path, Access::Write).map_err(mlua::Error::runtime)?;
            std::fs::write(&p, text.as_bytes()).map_err(io)
        })?,
    )?;
    let s = scope.clone();
    t.raw_set(
        "exists",
        lua.create_function(move |_, path: String| {
            let p = confine(&s, &path, Access::Read).map_err(mlua::Error::runtime)?;
            Ok(p.exists())
        })?,
    )?;
    let s = scope.clone();
    t.raw_set(
        "list",
        lua.create_function(move |_, path: String| {
            let p = confine(&s, &path, Access::Read).map_err(mlua::Error::runtime)?;
            let mut names = Vec::new();
            for e in std::fs::read_dir(&p).map_err(io)? {
                names.push(e.map_err(io)?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names)
        })?,
    )?;
    let s = scope.clone();
    t.raw_set(
        "remove",
        lua.create_function(move |_, path: String| {
            let p = confine(&s, &path, Access::Write).map_err(mlua::Error::runtime)?;
            std::fs::remove_file(&p).map_err(io)
        })?,
    )?;
    let s = scope;
    t.raw_set(
        "mkdir",
        lua.create_function(move |_, path: String| {
            let p = confine(&s, &path, Access::Write).map_err(mlua::Error::runtime)?;
            std::fs::create_dir_all(&p).map_err(io)
        })?,
    )?;
    Ok(t)
}

/// Resolves a script's path: relative paths are in the work directory; the result must lie
/// in the work or output directory once symlinks are resolved (or be the input, for reads).
fn confine(scope: &JobScope, path: &str, access: Access) -> Result<PathBuf, String> {
    let refuse = |why: &str| Err(format!("path {path:?} refused: {why}"));
    if path.is_empty() || path.contains('\0') {
        return refuse("empty or contains NUL");
    }
    let given = Path::new(path);
    if given.components().any(|c| c == Component::ParentDir) {
        return refuse("'..' is not allowed");
    }
    let full = if given.is_absolute() {
        given.to_path_buf()
    } else {
        scope.work_dir.join(given)
    };
    let resolved = crate::paths::resolve_existing_prefix(&full);
    if access == Access::ReadOrInput {
        if let (Ok(a), Ok(b)) = (full.canonicalize(), scope.input.canonicalize()) {
            if a == b {
                return Ok(full);
            }
        }
    }
    let inside = [&scope.work_dir, &scope.out_dir]
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .any(|root| resolved.starts_with(&root));
    if !inside {
        return refuse("outside the job's work and output directories");
    }
    if access == Access::Write
        && std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink())
    {
        return refuse("it is a symbolic link");
    }
    Ok(full)
}
