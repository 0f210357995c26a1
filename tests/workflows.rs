//! Workflows with Lua hooks, end to end: on_discover skips, plan hooks reshape the ladder,
//! bad replies and broken scripts are clear errors.

mod common;

use std::path::Path;

use common::*;

fn make_hevc(path: &Path) -> Result<(), String> {
    run_ok(
        "ffmpeg",
        &[
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=256x144:r=25:d=2",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path.display().to_string()])
        .collect::<Vec<_>>(),
    )
}

#[test]
fn archive_hevc_skips_hevc_sources_and_encodes_others_at_their_height() -> TestResult {
    let dir = tempfile::tempdir()?;
    let hevc = dir.path().join("already.mp4");
    make_hevc(&hevc)?;
    let h264 = dir.path().join("fresh.mp4");
    make_clip(&h264, "256x144", 25, 2, Audio::Bursts)?;
    let wf = Path::new("workflows/archive-hevc.yaml");

    let skipped = outcomes(&run_one(wf, dir.path(), &hevc).success().get_output().stdout);
    assert_eq!(skipped[0]["status"], "skipped");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("already HEVC (256x144)"),
        "{skipped:?}"
    );
    assert!(
        !dir.path().join("out/already").exists(),
        "a skipped file produces nothing"
    );

    let done = outcomes(&run_one(wf, dir.path(), &h264).success().get_output().stdout);
    assert_eq!(done[0]["status"], "succeeded", "{done:?}");
    let out = dir.path().join("out/fresh/fresh.hevc.mp4");
    assert!(ffprobe(&out, "stream=codec_name", "v")?.contains("hevc"));
    assert_eq!(
        probe_value(&out, "v:0", "height"),
        Some(144.0),
        "the plan hook set the source height"
    );
    assert_eq!(probe_value(&out, "v:0", "nb_read_packets"), Some(50.0));
    Ok(())
}

#[test]
fn adaptive_ladder_picks_rungs_from_height_and_bitrate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("small.mp4");
    make_clip(&src, "426x240", 25, 2, Audio::None)?;
    let done = outcomes(
        &run_one(
            Path::new("workflows/adaptive-ladder.yaml"),
            dir.path(),
            &src,
        )
        .success()
        .get_output()
        .stdout,
    );
    assert_eq!(done[0]["status"], "succeeded", "{done:?}");
    let manifest = read_json(&dir.path().join("out/small/manifest.json"))?;
    let names: Vec<&str> = manifest["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["profile"].as_str())
        .collect();
    // 240p source: 144p and 240p, nothing taller; the template profile is gone.
    assert_eq!(names, ["h264-144p", "h264-240p"]);
    Ok(())
}

fn workflow_with_script(
    dir: &Path,
    script: &str,
    hooks: &str,
) -> Result<std::path::PathBuf, std::io::Error> {
    std::fs::write(dir.join("hooks.lua"), script)?;
    let wf = write_workflow(
        dir,
        "hooked",
        &format!("script: {{path: hooks.lua, hooks: [{hooks}]}}\n"),
    )?;
    // The helper appends profiles after the extra text; move the script section to the end.
    let text = std::fs::read_to_string(&wf)?;
    let (head, script_line) = text.split_once("script:").unwrap_or((&text, ""));
    let (script_line, profiles) = script_line.split_once('\n').unwrap_or((script_line, ""));
    std::fs::write(&wf, format!("{head}{profiles}script:{script_line}\n"))?;
    Ok(wf)
}

#[test]
fn a_bad_plan_reply_fails_the_job_naming_hook_and_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 1, Audio::None)?;
    let wf = workflow_with_script(
        dir.path(),
        "return { plan = function(media, plan) plan.profiles[1].height = 'tall'; return plan end }",
        "plan",
    )?;
    let out = outcomes(&run_one(&wf, dir.path(), &src).code(1).get_output().stdout);
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("hook plan") && reason.contains("profiles[0].height"),
        "{reason}"
    );

    // A reply of the right shape with an invalid value is caught by the workflow rules.
    let wf = workflow_with_script(
        dir.path(),
        "return { plan = function(media, plan) plan.profiles[1].height = 4000; return plan end }",
        "plan",
    )?;
    let out = outcomes(&run_one(&wf, dir.path(), &src).code(1).get_output().stdout);
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("invalid plan") && reason.contains("profiles[0].height"),
        "{reason}"
    );
    Ok(())
}

#[test]
fn broken_scripts_fail_validation_with_file_and_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = workflow_with_script(
        dir.path(),
        "local M = {}\nfunction M.plan(\nreturn M\n",
        "plan",
    )?;
    let out = spool().arg("validate").arg(&wf).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("hooks.lua:3"), "{stderr}");

    let wf = workflow_with_script(
        dir.path(),
        "return { plan = function() end }",
        "on_discover",
    )?;
    let out = spool().arg("validate").arg(&wf).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("on_discover") && stderr.contains("no such function"),
        "{stderr}"
    );

    let wf = workflow_with_script(dir.path(), "while true do end", "plan")?;
    let out = spool().arg("validate").arg(&wf).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("time limit"));
    Ok(())
}

#[test]
fn webhook_example_posts_the_finished_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("clip.mp4");
    make_clip(&src, "256x144", 25, 2, Audio::Bursts)?;
    let server = capture_server()?;
    let script = std::fs::canonicalize("scripts/webhook_notify.lua")?;
    let text = std::fs::read_to_string("workflows/webhook-notify.yaml")?
        .replace("http://127.0.0.1:8080/spool-events", &server.url)
        .replace(
            "../scripts/webhook_notify.lua",
            &script.display().to_string(),
        );
    let wf = dir.path().join("webhook.yaml");
    std::fs::write(&wf, text)?;
    let done = outcomes(&run_one(&wf, dir.path(), &src).success().get_output().stdout);
    assert_eq!(done[0]["status"], "succeeded", "{done:?}");
    wait_until("the webhook", std::time::Duration::from_secs(5), || {
        !server.received().is_empty()
    })?;
    let event: serde_json::Value = serde_json::from_str(&server.received()[0])?;
    assert_eq!(event["event"], "succeeded");
    assert_eq!(event["job"], done[0]["id"]);
    let first = event["outputs"][0]["path"].as_str().unwrap_or_default();
    assert!(Path::new(first).is_file(), "{event}");
    Ok(())
}
