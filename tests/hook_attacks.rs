//! Hooks that try to hang or crash the engine, each in its own way: endless loops inside C
//! functions (a gsub callback, a sort comparator), a finalizer that never returns (during a
//! call, and at the end of a job after its outputs are published), regex backtracking, a
//! required module that loops at its top level, replies nested 200,000 deep, memory bombs.
//! Each must end its own job with a reason that names the limit, in bounded time, while the
//! other jobs finish and the process survives (the hooks run in `spool __hook-runner`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// `on_discover` runs the attack named by the file; a plain name is accepted.
const ATTACKS: &str = r#"local M = {}
local attacks = {}
attacks["gsub"] = function()
  string.gsub(string.rep("a", 10), "a", function() while true do end end)
end
attacks["sort"] = function()
  table.sort({ 3, 2, 1, 5, 4 }, function(a, b) while true do end end)
end
attacks["gc"] = function()
  setmetatable({}, { __gc = function() while true do end end })
  for i = 1, 10000000 do local t = { i } end
end
attacks["regex"] = function()
  return string.find(string.rep("a", 4000), ".-.-.-.-b")
end
attacks["require"] = function()
  return require("loops")
end
attacks["pcall"] = function()
  while true do pcall(function() while true do end end) end
end
attacks["deep"] = function()
  local t = {}
  local c = t
  for i = 1, 200000 do c.x = {} c = c.x end
  return t
end
attacks["json"] = function()
  local t = {}
  local c = t
  for i = 1, 200000 do c[1] = {} c = c[1] end
  return { action = "skip", reason = spool.json.encode(t) }
end
attacks["cycle"] = function()
  local t = { action = "accept" }
  t.self = t
  return t
end
attacks["memory"] = function()
  local t = {}
  for i = 1, 100000000 do t[i] = string.rep("x", 1000) .. i end
end
attacks["recursion"] = function()
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end
attacks["coroutine"] = function()
  return coroutine.wrap(function()
    return string.find(string.rep("a", 4000), ".-.-.-.-b")
  end)()
end
attacks["exitgc"] = function()
  -- Accepted, but the state's close runs a finalizer that never returns.
  KEEP = setmetatable({}, { __gc = function() while true do end end })
  return nil
end
function M.on_discover(file)
  local kind = file.name:match("^(%a+)")
  local attack = attacks[kind]
  if attack then return attack() end
  return nil
end
return M
"#;

#[test]
fn no_hook_can_hang_or_crash_the_engine() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("attacks.lua"), ATTACKS)?;
    std::fs::write(
        dir.path().join("loops.lua"),
        "while true do end\nreturn {}\n",
    )?;
    let wf = write_workflow(
        dir.path(),
        "attacked",
        "script: {path: attacks.lua, hooks: [on_discover]}\n",
    )?;
    let clip = dir.path().join("source.mkv");
    make_clip(&clip, "256x144", 25, 2, Audio::None)?;
    // (file, the words its failure must contain); None: it must succeed.
    let cases: [(&str, Option<&str>); 14] = [
        ("good.mp4", None),
        ("exitgc.mp4", None),
        ("gsub.mp4", Some("time limit")),
        ("sort.mp4", Some("time limit")),
        ("gc.mp4", Some("time limit")),
        ("regex.mp4", Some("time limit")),
        ("require.mp4", Some("hook on_discover")),
        ("pcall.mp4", Some("time limit")),
        ("deep.mp4", Some("nested more than 100 levels")),
        ("json.mp4", Some("nested more than 100 levels")),
        ("cycle.mp4", Some("nested more than 100 levels")),
        ("memory.mp4", Some("memory")),
        ("recursion.mp4", Some("stack overflow")),
        ("coroutine.mp4", Some("time limit")),
    ];
    let inputs: Vec<std::path::PathBuf> = cases
        .iter()
        .map(|(name, _)| {
            let p = dir.path().join(name);
            std::fs::copy(&clip, &p).map(|_| p)
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let run = spool()
        .args(["run", "--json", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .args(&inputs)
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let results = outcomes(&run.get_output().stdout);
    assert_eq!(results.len(), cases.len(), "every job reported: {stderr}");
    let mut wrong = Vec::new();
    for ((name, expect), r) in cases.iter().zip(&results) {
        let status = r["status"].as_str().unwrap_or("");
        let reason = r["reason"].as_str().unwrap_or("");
        eprintln!("{name}: {status} {reason}");
        match expect {
            None if status != "succeeded" => wrong.push(format!("{name}: {status} {reason}")),
            Some(words) if status != "failed" || !reason.contains(words) => wrong.push(format!(
                "{name}: expected a failure naming {words:?}, got {status} {reason:?}"
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Every hook stopped within its limit (2 s) plus the kill's slack, all at once.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // No runner is left behind: each was killed with its job.
    assert_eq!(runners_alive(dir.path()), 0);
    Ok(())
}

/// Hook runners still alive whose script lives in `dir`.
fn runners_alive(dir: &Path) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let needle = spool::script::RUNNER_ARG;
    procs
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .filter(|c| String::from_utf8_lossy(c).contains(&dir.display().to_string()))
        .count()
}

#[test]
fn sigterm_stops_a_run_whose_hook_hangs_in_c() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("attacks.lua"), ATTACKS)?;
    std::fs::write(dir.path().join("loops.lua"), "while true do end\n")?;
    let wf = write_workflow(
        dir.path(),
        "attacked",
        "script: {path: attacks.lua, hooks: [on_discover]}\n",
    )?;
    let src = dir.path().join("regex.mp4");
    make_clip(&src, "256x144", 25, 2, Audio::None)?;
    let mut child = std::process::Command::new(spool_path())
        .args(["run", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(800));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let started = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err("spool did not stop within 10 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(matches!(code, Some(130) | Some(1)), "exit {code:?}");
    Ok(())
}
