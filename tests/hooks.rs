//! The later hooks and the spool API, end to end with the real binary, ffmpeg and sled:
//! before_task (argv checked, part of the cache key), on_error, on_complete with a webhook
//! and a sidecar, lua steps using spool.ffmpeg/probe/md5/fs, persisted decisions, the
//! original's fate, and `spool plan`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A workflow in `dir` with `script` as hooks.lua; `extra` goes before the profiles.
fn hooked(dir: &Path, name: &str, script: &str, extra: &str) -> Result<PathBuf, std::io::Error> {
    std::fs::write(dir.join(format!("{name}.lua")), script)?;
    let wf = write_workflow(dir, name, extra)?;
    let text = std::fs::read_to_string(&wf)?;
    let hooks = [
        "on_discover",
        "plan",
        "before_task",
        "on_error",
        "on_complete",
    ]
    .into_iter()
    .filter(|h| script.contains(&format!("function M.{h}(")))
    .collect::<Vec<_>>()
    .join(", ");
    std::fs::write(
        &wf,
        format!("{text}script: {{path: {name}.lua, hooks: [{hooks}]}}\n"),
    )?;
    Ok(wf)
}

fn run_in(dir: &Path, wf: &Path, input: &Path, out: &str) -> assert_cmd::assert::Assert {
    spool()
        .args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join(out))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--trace-commands")
        .arg(dir.join(format!("{out}.trace")))
        .arg(input)
        .assert()
}

fn encodes_traced(dir: &Path, out: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("{out}.trace")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""phase":"encode""#))
        .count()
}

const TUNE_AQ: &str = r#"local M = {}
function M.before_task(task, argv)
  assert(task.pass == 1 and task.passes == 1)
  local out = {}
  for i, a in ipairs(argv) do
    out[#out + 1] = a
    if a == "libx264" then
      out[#out + 1] = "-x264-params"
      out[#out + 1] = "aq-mode=3"
    end
  end
  return { argv = out }
end
return M
"#;

#[test]
fn before_task_changes_reach_the_encoder_and_the_cache_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 3, Audio::None)?;
    let plain = write_workflow(dir.path(), "plain", "")?;
    let done = outcomes(
        &run_in(dir.path(), &plain, &src, "a")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(done[0]["status"], "succeeded", "{done:?}");
    assert!(encodes_traced(dir.path(), "a") > 0);

    // Same chunks, same rungs, but the hook changed the argv: nothing may come from the cache.
    let tuned = hooked(dir.path(), "tuned", TUNE_AQ, "")?;
    let done = outcomes(
        &run_in(dir.path(), &tuned, &src, "b")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(done[0]["status"], "succeeded", "{done:?}");
    assert_eq!(done[0]["reused_chunks"], 0, "{done:?}");
    assert!(encodes_traced(dir.path(), "b") > 0);
    // x264 writes its settings into the stream: the hook's option is in the output.
    let bytes = std::fs::read(dir.path().join("b/c/c.p144.mp4"))?;
    let settings = String::from_utf8_lossy(&bytes);
    assert!(settings.contains(" aq=3:"), "aq-mode=3 did not reach x264");
    let plain_bytes = std::fs::read(dir.path().join("a/c/c.p144.mp4"))?;
    assert!(!String::from_utf8_lossy(&plain_bytes).contains(" aq=3:"));

    // Run again with the hook: now its own encodes are in the cache.
    let again = outcomes(
        &run_in(dir.path(), &tuned, &src, "c")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(again[0]["reused_chunks"], again[0]["chunks"], "{again:?}");
    assert_eq!(encodes_traced(dir.path(), "c"), 0);
    Ok(())
}

#[test]
fn before_task_cannot_escape_the_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    for (name, change, words) in [
        (
            "writes_out",
            r#"argv[#argv] = "/tmp/spool-escape.mp4""#,
            "outside the job's work directory",
        ),
        (
            "reads_in",
            r#"table.insert(argv, 1, "/etc/passwd"); table.insert(argv, 1, "-i")"#,
            "not one of the job's files",
        ),
        (
            "bad_option",
            r#"table.insert(argv, 1, "x"); table.insert(argv, 1, "-dump_attachment:t")"#,
            "not on the allow-list",
        ),
    ] {
        let script = format!(
            "local M = {{}}\nfunction M.before_task(task, argv)\n{change}\nreturn {{ argv = argv }}\nend\nreturn M\n"
        );
        let wf = hooked(dir.path(), name, &script, "")?;
        let out = outcomes(
            &run_in(dir.path(), &wf, &src, name)
                .code(1)
                .get_output()
                .stdout,
        );
        let reason = out[0]["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("before_task") && reason.contains(words),
            "{name}: {reason}"
        );
    }
    assert!(!Path::new("/tmp/spool-escape.mp4").exists());
    Ok(())
}

/// An encode that always fails: x264 refuses an unknown parameter.
const BREAK_X264: &str = r#"
function M.before_task(task, argv)
  local out = {}
  for _, a in ipairs(argv) do
    out[#out + 1] = a
    if a == "libx264" then
      out[#out + 1] = "-profile:v"; out[#out + 1] = "nonsense"
    end
  end
  return { argv = out }
end
"#;

fn attempts_of(dir: &Path, job: &str) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let shown = spool()
        .args(["status", "--json", "--state"])
        .arg(dir.join("state"))
        .arg(job)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&shown.get_output().stdout)?;
    Ok(v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["attempts"].as_u64())
        .collect())
}

#[test]
fn on_error_decides_retry_fail_or_skip() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let one = "profiles:\n- {name: p144, codec: h264, height: 144, preset: ultrafast}\n";

    // Retry past retries.max_attempts (2), then fail on the fourth attempt.
    let script = format!(
        "local M = {{}}\n{BREAK_X264}\nfunction M.on_error(job, err)\n\
         assert(err.max_attempts == 2 and err.message ~= '')\n\
         if err.attempt < 4 then return {{ action = 'retry', delay_seconds = 0 }} end\n\
         return {{ action = 'fail' }}\nend\nreturn M\n"
    );
    let wf = hooked(dir.path(), "retry", &script, one)?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "retry")
            .code(1)
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "failed");
    let id = out[0]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(attempts_of(dir.path(), &id)?, vec![4]);

    // Skip: the job ends as skipped with the script's reason, exit 0.
    let script = format!(
        "local M = {{}}\n{BREAK_X264}\nfunction M.on_error(job, err)\n\
         return {{ action = 'skip', reason = 'not worth it: ' .. job.id }}\nend\nreturn M\n"
    );
    let wf = hooked(dir.path(), "skip", &script, one)?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "skip")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "skipped", "{out:?}");
    assert!(out[0]["reason"]
        .as_str()
        .unwrap_or("")
        .starts_with("not worth it: "));

    // A bad reply names the hook and the field.
    let script = format!(
        "local M = {{}}\n{BREAK_X264}\nfunction M.on_error(job, err)\n\
         return {{ action = 'later' }}\nend\nreturn M\n"
    );
    let wf = hooked(dir.path(), "bad", &script, one)?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "bad")
            .code(1)
            .get_output()
            .stdout,
    );
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("hook on_error") && reason.contains("action"),
        "{reason}"
    );
    Ok(())
}

#[test]
fn lua_step_and_on_complete_use_the_spool_api() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 2, Audio::Bursts)?;
    let server = capture_server()?;
    let script = format!(
        r#"local M = {{}}
function M.contact_sheet(ctx)
  local reports = 0
  local thumb = ctx.work_dir .. "/thumb.jpg"
  spool.ffmpeg({{"-y", "-i", ctx.input, "-frames:v", "1", "-vf", "scale=128:-2", thumb}},
    {{ on_progress = function(p) reports = reports + 1 end }})
  local info = spool.probe(thumb)
  local ok, err = pcall(spool.fs.read, "/etc/passwd")
  local ok2, err2 = pcall(spool.ffmpeg, {{"-y", "-i", "/etc/passwd", thumb}})
  spool.fs.write("notes.txt", "made by lua")
  return {{
    outputs = {{ {{ path = "thumb.jpg", kind = "image" }}, {{ path = "notes.txt" }} }},
    data = {{ md5 = spool.md5(thumb), width = info.video.width, reports = reports,
             fs_refused = (not ok) and tostring(err) or "allowed",
             ffmpeg_refused = (not ok2) and tostring(err2) or "allowed",
             profiles = #ctx.outputs }},
  }}
end
function M.on_complete(job, manifest)
  spool.fs.write(job.out_dir .. "/sidecar.json", spool.json.encode({{ job = job.id, n = #manifest.outputs }}))
  local reply = spool.http.post("{url}", {{ event = "done", job = job.id, outputs = #manifest.outputs }})
  spool.log.info("webhook answered", reply.status)
  assert(reply.status == 200 and reply.body == "ok")
end
return M
"#,
        url = server.url
    );
    let wf = hooked(
        dir.path(),
        "steps",
        &script,
        "steps:\n- lua: {function: contact_sheet, name: contact}\n",
    )?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "o")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "succeeded", "{out:?}");
    let out_dir = dir.path().join("o/c");
    let manifest = read_json(&out_dir.join("manifest.json"))?;
    let data = &manifest["steps"]["contact"];
    assert_eq!(data["width"], 128);
    assert_eq!(
        data["profiles"], 1,
        "the step saw the published ladder (144p only)"
    );
    let thumb = out_dir.join("thumb.jpg");
    let md5 = std::process::Command::new("md5sum").arg(&thumb).output()?;
    assert!(String::from_utf8_lossy(&md5.stdout).starts_with(data["md5"].as_str().unwrap_or("-")));
    assert!(
        data["fs_refused"]
            .as_str()
            .unwrap_or("")
            .contains("outside the job's"),
        "{data}"
    );
    assert!(
        data["ffmpeg_refused"]
            .as_str()
            .unwrap_or("")
            .contains("not one of the job's files"),
        "{data}"
    );
    let kinds: Vec<&str> = manifest["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["profile"] == "contact")
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["image", "file"]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("notes.txt"))?,
        "made by lua"
    );
    let sidecar = read_json(&out_dir.join("sidecar.json"))?;
    assert_eq!(sidecar["n"], 3, "1 rung + 2 step files");
    wait_until("the webhook", Duration::from_secs(5), || {
        !server.received().is_empty()
    })?;
    let hook: serde_json::Value = serde_json::from_str(&server.received()[0])?;
    assert_eq!(hook["event"], "done");
    assert_eq!(hook["job"], out[0]["id"]);
    Ok(())
}

/// Starts a run and SIGKILLs it once an ffmpeg of its job is encoding and `ready` holds.
fn kill_mid_encode(
    dir: &Path,
    wf: &Path,
    src: &Path,
    mut ready: impl FnMut() -> bool,
) -> TestResult {
    let mut child = std::process::Command::new(spool_path())
        .args(["run", "--json", "--concurrency", "1", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg(src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let work = dir.join("state/work").display().to_string();
    let seen = wait_until("an encode", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&work) > 0
            && ffmpeg_processes_mentioning("/enc/t0") > 0
            && ready()
    });
    child.kill()?;
    child.wait()?;
    Ok(seen?)
}

#[test]
fn a_resumed_job_keeps_the_workflow_version_it_started_with() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("long.mp4");
    make_clip(&src, "426x240", 25, 8, Audio::None)?;
    let wf = write_workflow(dir.path(), "versioned", "")?;
    kill_mid_encode(dir.path(), &wf, &src, || true)?;
    let first = std::fs::read_to_string(&wf)?;
    // The file changes while the job is stopped: one rung, another name.
    let edited = first.replace(
        "- {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
        "",
    );
    assert_ne!(edited, first);
    std::fs::write(&wf, &edited)?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "out")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "succeeded", "{out:?}");
    let manifest = read_json(&dir.path().join("out/long/manifest.json"))?;
    let names: Vec<&str> = manifest["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["profile"].as_str())
        .collect();
    assert_eq!(names, ["p144", "p180", "p240"], "the old version's rungs");

    // A new job for other content uses the file as it is now.
    let other = dir.path().join("other.mp4");
    make_clip(&other, "426x240", 25, 1, Audio::None)?;
    run_in(dir.path(), &wf, &other, "out").success();
    let manifest = read_json(&dir.path().join("out/other/manifest.json"))?;
    assert_eq!(manifest["outputs"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[test]
fn decisions_are_persisted_and_not_asked_again_on_resume() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("long.mp4");
    make_clip(&src, "426x240", 25, 8, Audio::None)?;
    let server = capture_server()?;
    let script = format!(
        r#"local M = {{}}
function M.plan(media, plan)
  spool.http.post("{url}", {{ hook = "plan" }})
  for _, p in ipairs(plan.profiles) do p.preset = "medium" end
  return plan
end
return M
"#,
        url = server.url
    );
    let wf = hooked(dir.path(), "slow", &script, "")?;
    kill_mid_encode(dir.path(), &wf, &src, || !server.received().is_empty())?;
    assert_eq!(server.received().len(), 1);
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "out")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "succeeded", "{out:?}");
    assert_eq!(server.received().len(), 1, "the plan hook was asked again");
    Ok(())
}

#[test]
fn the_original_is_moved_or_deleted_only_after_success() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("keepme.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let wf = write_workflow(dir.path(), "mover", "original: {move_to: done}\n")?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "o")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["status"], "succeeded");
    assert!(!src.exists());
    assert!(dir.path().join("done/keepme.mp4").is_file());

    let doomed = dir.path().join("doomed.mp4");
    make_clip(&doomed, "256x144", 25, 1, Audio::None)?;
    let wf = write_workflow(dir.path(), "deleter", "original: delete\n")?;
    run_in(dir.path(), &wf, &doomed, "d").success();
    assert!(!doomed.exists());
    assert!(dir.path().join("d/doomed/manifest.json").is_file());

    // A failure never touches it.
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, b"not a video")?;
    run_in(dir.path(), &wf, &broken, "d").code(1);
    assert!(broken.is_file());
    Ok(())
}

#[test]
fn plan_shows_the_hooked_argv_and_predicts_the_chunks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 4, Audio::Bursts)?;
    let wf = hooked(dir.path(), "tuned", TUNE_AQ, "")?;
    let planned = spool()
        .env("SPOOL_STATE", dir.path().join("state"))
        .current_dir(dir.path())
        .args(["plan", "--json", "--workflow"])
        .arg(&wf)
        .arg(&src)
        .assert()
        .success();
    let plan: serde_json::Value = serde_json::from_slice(&planned.get_output().stdout)?;
    // Nothing written: no state, no outputs, and its scratch work directory is gone.
    assert!(!dir.path().join("state").exists(), "plan wrote state");
    assert!(!dir.path().join("spool-out").exists(), "plan wrote outputs");
    let scratch = plan["work_dir"].as_str().unwrap_or("/");
    assert!(!Path::new(scratch).exists(), "{scratch} left behind");
    let commands = plan["commands"].as_array().cloned().unwrap_or_default();
    let encodes: Vec<&serde_json::Value> =
        commands.iter().filter(|c| c["phase"] == "encode").collect();
    assert!(encodes
        .iter()
        .all(|c| c["argv"].to_string().contains("aq-mode=3")));

    let run = outcomes(
        &run_in(dir.path(), &wf, &src, "o")
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(
        encodes.len() as u64,
        run[0]["chunks"].as_u64().unwrap_or(0),
        "one ladder task per predicted chunk"
    );

    // Non-media: a clear error and exit 1.
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, "hello")?;
    let e = spool().arg("plan").arg(&junk).assert().code(1);
    assert!(String::from_utf8_lossy(&e.get_output().stderr).contains("junk.mp4"));
    Ok(())
}

#[test]
fn webhooks_get_every_event_and_are_retried() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 4, Audio::None)?;
    // The receiver is down for the first two requests.
    let server = capture_server_failing(2)?;
    let wf = write_workflow(
        dir.path(),
        "hooked",
        &format!(
            "webhooks:\n- url: {}\n  headers: {{Authorization: Bearer t0k}}\n",
            server.url
        ),
    )?;
    let out = outcomes(
        &run_in(dir.path(), &wf, &src, "o")
            .success()
            .get_output()
            .stdout,
    );
    // `spool run` waits for deliveries in flight before it exits.
    let events: Vec<serde_json::Value> = server
        .received()
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let mut names: Vec<(u64, String)> = events
        .iter()
        .map(|e| {
            let name = match e["progress"].as_u64() {
                Some(p) => format!("progress {p}"),
                None => e["event"].as_str().unwrap_or("").to_string(),
            };
            (e["seq"].as_u64().unwrap_or(0), name)
        })
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(|n| n.1.as_str()).collect();
    assert_eq!(
        names,
        [
            "started",
            "progress 25",
            "progress 50",
            "progress 75",
            "succeeded"
        ]
    );
    let done = events.iter().find(|e| e["event"] == "succeeded");
    assert_eq!(done.map(|e| &e["job"]), Some(&out[0]["id"]));
    assert!(done.is_some_and(|e| e["manifest"]
        .as_str()
        .is_some_and(|m| m.ends_with("manifest.json"))));

    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, "not media")?;
    run_in(dir.path(), &wf, &junk, "o").code(1);
    let failed: Vec<serde_json::Value> = server
        .received()
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter(|e| e["event"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("junk.mp4"));
    Ok(())
}
