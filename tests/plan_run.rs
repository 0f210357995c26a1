//! One planner: what `spool plan --json` prints is exactly what `spool run` starts. For
//! several workflows, the plan's command lines (program included) equal the command lines a
//! real run records with --trace-commands, once the work directory is normalised.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// (phase, command line) of each command.
type Commands = Vec<(String, Vec<String>)>;

/// (phase, argv) of every planned command, work dir replaced by {work}, sorted.
fn planned(wf: &Path, src: &Path, out: &Path) -> Result<Commands, Box<dyn std::error::Error>> {
    let shown = spool()
        .args(["plan", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(out)
        .arg(src)
        .assert()
        .success();
    let plan: serde_json::Value = serde_json::from_slice(&shown.get_output().stdout)?;
    let work = plan["work_dir"].as_str().unwrap_or_default().to_string();
    let mut commands: Commands = plan["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let argv = c["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.as_str().unwrap_or_default().replace(&work, "{work}"))
                .collect();
            (c["phase"].as_str().unwrap_or_default().to_string(), argv)
        })
        .collect();
    commands.sort();
    Ok(commands)
}

/// (phase, argv) of every command a real run started, normalised the same way.
fn ran(
    wf: &Path,
    src: &Path,
    out: &Path,
    state: &Path,
) -> Result<Commands, Box<dyn std::error::Error>> {
    let trace = state.with_extension("trace");
    let done = spool()
        .args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(out)
        .arg("--state")
        .arg(state)
        .arg("--trace-commands")
        .arg(&trace)
        .arg(src)
        .assert()
        .success();
    let result = &outcomes(&done.get_output().stdout)[0];
    assert_eq!(result["status"], "succeeded", "{result}");
    let id = result["id"].as_str().unwrap_or_default();
    let work = state
        .canonicalize()?
        .join("work")
        .join(id)
        .display()
        .to_string();
    let mut commands: Commands = std::fs::read_to_string(&trace)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|c| {
            let argv = c["argv"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a.as_str().unwrap_or_default().replace(&work, "{work}"))
                .collect();
            (c["phase"].as_str().unwrap_or_default().to_string(), argv)
        })
        .collect();
    commands.sort();
    Ok(commands)
}

fn assert_same(name: &str, plan: &[(String, Vec<String>)], run: &[(String, Vec<String>)]) {
    let only_plan: Vec<_> = plan.iter().filter(|c| !run.contains(c)).collect();
    let only_run: Vec<_> = run.iter().filter(|c| !plan.contains(c)).collect();
    assert!(
        only_plan.is_empty() && only_run.is_empty() && plan.len() == run.len(),
        "{name}: plan and run differ\nonly planned: {only_plan:#?}\nonly run: {only_run:#?}"
    );
    assert!(
        plan.iter().any(|c| c.0 == "encode"),
        "{name}: no encode planned"
    );
    // Full command lines: the program comes first.
    assert!(plan.iter().all(|c| c.1[0].ends_with("ffmpeg")), "{name}");
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workflows")
        .join(name)
}

#[test]
fn plan_equals_run_for_the_shipped_default_and_web_hls_workflows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("talk.mp4");
    // Over the default's 20 s minimum, so it is chunked (6 s segments), with audio.
    make_clip(&src, "320x180", 25, 21, Audio::Bursts)?;
    // The default cuts frame ranges; copy cuts plan the segment muxer's command.
    let copy = dir.path().join("copy.yaml");
    std::fs::write(
        &copy,
        std::fs::read_to_string(shipped("default.yaml"))?.replace("cut: frames", "cut: copy"),
    )?;
    for (i, wf) in [
        shipped("default.yaml"),
        shipped("web-hls.yaml"),
        copy.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.path().join(format!("out{i}"));
        let plan = planned(&wf, &src, &out)?;
        let run = ran(&wf, &src, &out, &dir.path().join(format!("state{i}")))?;
        assert_same(&wf.display().to_string(), &plan, &run);
        assert!(
            plan.iter().filter(|c| c.0 == "encode").count() >= 3,
            "chunked"
        );
        let segments = plan.iter().any(|c| c.0 == "segment");
        let seeks = plan
            .iter()
            .any(|c| c.1.iter().any(|a| a == "-seek_timestamp"));
        assert_eq!(
            (segments, seeks),
            (wf == copy, wf != copy),
            "{}",
            wf.display()
        );
        assert!(plan.iter().any(|c| c.0 == "audio"));
    }
    Ok(())
}

const TUNE_AQ: &str = r#"local M = {}
function M.before_task(task, argv)
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
fn plan_equals_run_for_per_rung_two_pass_and_a_before_task_hook() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "256x144", 25, 3, Audio::Bursts)?;
    let two_pass = write_workflow(
        dir.path(),
        "twopass",
        "encode: {mode: per_rung, keyframe_interval_seconds: 1, concurrency: 2}\nprofiles:\n\
         - {name: p144, codec: h264, height: 144, rate_control: two_pass, bitrate_kbps: 200, preset: ultrafast}\n\
         - {name: p180, codec: h264, height: 180, rate_control: two_pass, bitrate_kbps: 300, preset: ultrafast}\n",
    )?;
    // The helper writes a ladder encode section; this workflow needs its own.
    let text = std::fs::read_to_string(&two_pass)?;
    let text = text.replace(
        "encode: {mode: ladder, keyframe_interval_seconds: 1, concurrency: 2}\n",
        "",
    );
    std::fs::write(&two_pass, text)?;
    std::fs::write(dir.path().join("hooks.lua"), TUNE_AQ)?;
    let hooked = write_workflow(
        dir.path(),
        "hooked",
        "script: {path: hooks.lua, hooks: [before_task]}\n",
    )?;
    for wf in [two_pass, hooked] {
        let out = dir.path().join("out");
        let state = dir.path().join(wf.file_stem().unwrap_or_default());
        let plan = planned(&wf, &src, &out)?;
        let run = ran(&wf, &src, &out, &state)?;
        assert_same(&wf.display().to_string(), &plan, &run);
    }
    Ok(())
}
