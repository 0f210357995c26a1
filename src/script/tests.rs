//! Every sandbox escape the issue lists, refused; limits that pcall cannot defeat.

use super::*;
use serde::Deserialize;
use std::time::Duration;

fn host_with(body: &str) -> Result<(tempfile::TempDir, ScriptHost), ScriptError> {
    let io = |error: std::io::Error| ScriptError::Read {
        script: "tmp".into(),
        error: error.to_string(),
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let path = dir.path().join("hooks.lua");
    std::fs::write(
        &path,
        format!("local M = {{}}\nfunction M.run(arg)\n{body}\nend\nreturn M\n"),
    )
    .map_err(io)?;
    let limits = Limits {
        memory_bytes: 16 << 20,
        time_per_call: Duration::from_millis(300),
    };
    let source = std::fs::read_to_string(&path).map_err(io)?;
    let host = ScriptHost::load(&path, &source, dir.path(), limits, &["run".to_string()])?;
    Ok((dir, host))
}

fn run(body: &str) -> Result<serde_json::Value, ScriptError> {
    let (_dir, host) = host_with(body)?;
    host.call::<i32, serde_json::Value>("run", &[0])
        .map(|v| v.unwrap_or_default())
}

fn refused(body: &str, words: &str) {
    let e = run(body).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains(words),
        "{body:?} should fail with {words:?}, got {e:?}"
    );
}

#[test]
fn escapes_are_refused() {
    refused("return os.execute('touch /tmp/spool-pwned')", "execute");
    refused("return io.open('/etc/passwd')", "io");
    refused("return debug.getinfo(1)", "debug");
    refused("return dofile('/etc/passwd')", "dofile");
    refused("return loadfile('/etc/passwd')", "loadfile");
    refused("return string.dump(function() end)", "dump");
    refused("return package.loadlib('libc.so.6', 'system')", "package");
    refused("return require('socket.core')", "refused");
    refused("return require('../../etc/passwd')", "refused");
    // Bytecode: load() is text-only whatever mode is asked for.
    refused("return load('\\27Lua\\84\\0', 'x', 'b')", "");
    assert!(!std::path::Path::new("/tmp/spool-pwned").exists());
}

#[test]
fn bytecode_load_returns_an_error_not_a_function() -> Result<(), ScriptError> {
    let v = run("local f, err = load('\\27LuaT\\0', 'x', 'b'); return {f = f == nil, err = err}")?;
    assert_eq!(v["f"], true);
    assert!(v["err"].as_str().unwrap_or("").contains("binary"), "{v}");
    Ok(())
}

#[test]
fn an_infinite_loop_inside_pcall_still_hits_the_time_limit() {
    let e = run("while true do pcall(function() while true do end end) end").err();
    assert!(matches!(e, Some(ScriptError::TimeLimit { .. })), "{e:?}");
}

#[test]
fn a_memory_bomb_is_stopped() {
    let e = run("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end").err();
    let text = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("memory"), "{text}");
}

#[test]
fn the_host_stays_usable_after_a_refusal_and_require_works_inside_the_dir(
) -> Result<(), ScriptError> {
    let (dir, host) = host_with("return require('lib.util').double(arg)")?;
    std::fs::create_dir_all(dir.path().join("lib")).map_err(|error| ScriptError::Read {
        script: "lib".into(),
        error: error.to_string(),
    })?;
    std::fs::write(
        dir.path().join("lib/util.lua"),
        "return { double = function(x) return x * 2 end }",
    )
    .map_err(|error| ScriptError::Read {
        script: "lib".into(),
        error: error.to_string(),
    })?;
    assert_eq!(host.call::<i32, i32>("run", &[21])?, Some(42));
    assert!(run("while true do end").is_err());
    assert_eq!(host.call::<i32, i32>("run", &[5])?, Some(10));
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[allow(dead_code)]
    crf: u32,
}

#[test]
fn a_bad_reply_names_the_hook_and_the_field() -> Result<(), ScriptError> {
    let (_dir, host) = host_with("return { crf = 'high' }")?;
    let e = host
        .call::<i32, Reply>("run", &[0])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("hook run") && e.contains("crf"), "{e}");
    Ok(())
}

#[test]
fn syntax_errors_carry_file_and_line() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broken.lua");
    let source = "local x = 1\nfunction f(\nreturn {}\n";
    let e = check_syntax(&path, source)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("broken.lua:3"), "{e}");
    Ok(())
}
