//! Dedupe, crash/resume, cancel, signals and bad input, against the real binary.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn run_args(cmd: &mut assert_cmd::Command, wf: &Path, dir: &Path) {
    cmd.args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"));
}

#[test]
fn dedupe_second_run_of_the_same_content_encodes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = dir.path().join("a.mp4");
    make_clip(&a, "256x144", 25, 4, Audio::Bursts)?;
    let gif = "gif: {enabled: true, width: 120, fps: 5}\n";
    let wf = write_workflow(dir.path(), "dedupe", gif)?;
    let mut first = spool();
    run_args(&mut first, &wf, dir.path());
    let first = outcomes(&first.arg(&a).assert().success().get_output().stdout);
    assert_eq!(first[0]["reused_chunks"], 0);

    // The same bytes under another name, through another workflow version (its name only
    // differs, so its outputs are not reused whole): every chunk comes from the cache, no
    // encode runs.
    let b = dir.path().join("b copy.mp4");
    std::fs::copy(&a, &b)?;
    let trace = dir.path().join("trace.jsonl");
    let wf = write_workflow(dir.path(), "dedupe-again", gif)?;
    let mut second = spool();
    run_args(&mut second, &wf, dir.path());
    let second = outcomes(
        &second
            .arg("--trace-commands")
            .arg(&trace)
            .arg(&b)
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(second[0]["reused_chunks"], second[0]["chunks"]);
    let traced = std::fs::read_to_string(&trace)?;
    assert!(
        !traced.contains(r#""phase":"encode""#),
        "nothing should be encoded: {traced}"
    );
    assert!(
        !traced.contains(r#""phase":"audio""#) && !traced.contains(r#""phase":"gif""#),
        "the audio and the GIF come from the cache too: {traced}"
    );
    assert!(dir.path().join("out/b copy/b copy.gif").is_file());
    assert!(
        !traced.contains(r#""phase":"join""#),
        "the same chunks and audio joined alike: the join is kept too: {traced}"
    );
    let b_out = dir.path().join("out/b copy/b copy.p144.mp4");
    assert_eq!(probe_value(&b_out, "v:0", "nb_read_packets"), Some(100.0));

    // A cached audio encode that no longer matches its SHA-256 is not used: made again.
    for f in find_files(&dir.path().join("state/cache"), ".m4a") {
        let mut bytes = std::fs::read(&f)?;
        let at = bytes.len() / 2;
        bytes[at] ^= 0x5a;
        std::fs::remove_file(&f)?; // linked into earlier outputs' work: a new file
        std::fs::write(&f, bytes)?;
    }
    let c = dir.path().join("c.mp4");
    std::fs::copy(&a, &c)?;
    std::fs::remove_file(&trace)?;
    let wf3 = write_workflow(dir.path(), "dedupe-third", gif)?;
    let mut third = spool();
    run_args(&mut third, &wf3, dir.path());
    third
        .arg("--trace-commands")
        .arg(&trace)
        .arg(&c)
        .assert()
        .success();
    let traced = std::fs::read_to_string(&trace)?;
    assert!(
        traced.contains(r#""phase":"audio""#) && !traced.contains(r#""phase":"gif""#),
        "the damaged audio is encoded again, the sound GIF reused: {traced}"
    );
    let c_bursts = burst_onsets(&dir.path().join("out/c/c.p144.mp4"))?;
    assert_eq!(c_bursts.len(), 4, "{c_bursts:?}");

    // --force encodes again.
    std::fs::remove_file(&trace)?;
    let mut forced = spool();
    run_args(&mut forced, &wf, dir.path());
    forced
        .args(["--force", "--trace-commands"])
        .arg(&trace)
        .arg(&b)
        .assert()
        .success();
    let forced = std::fs::read_to_string(&trace)?;
    assert!(forced.contains(r#""phase":"encode""#) && forced.contains(r#""phase":"audio""#));
    Ok(())
}

#[test]
fn a_damaged_cache_entry_is_not_trusted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let a = dir.path().join("a.mp4");
    make_clip(&a, "256x144", 25, 3, Audio::None)?;
    let wf = write_workflow(dir.path(), "damaged", "")?;
    let mut first = spool();
    run_args(&mut first, &wf, dir.path());
    first.arg(&a).assert().success();
    // Truncate every cached chunk; a rerun must notice and encode again.
    for f in find_files(&dir.path().join("state/cache"), ".mp4") {
        std::fs::write(&f, b"not video")?;
    }
    let mut again = spool();
    run_args(&mut again, &wf, dir.path());
    let out = outcomes(
        &again
            .arg("--force")
            .arg(&a)
            .assert()
            .success()
            .get_output()
            .stdout,
    );
    assert_eq!(out[0]["reused_chunks"], 0);
    let b = dir.path().join("b.mp4");
    std::fs::copy(&a, &b)?;
    // Another workflow version, so the chunks (not the whole outputs) are what is reused.
    let wf = write_workflow(dir.path(), "damaged-again", "")?;
    for f in find_files(&dir.path().join("state/cache"), ".mp4")
        .iter()
        .take(1)
    {
        std::fs::write(f, b"broken")?;
    }
    let mut third = spool();
    run_args(&mut third, &wf, dir.path());
    let out = outcomes(&third.arg(&b).assert().success().get_output().stdout);
    let chunks = out[0]["chunks"].as_u64().unwrap_or(0);
    assert_eq!(
        out[0]["reused_chunks"].as_u64(),
        Some(chunks - 1),
        "the broken entry is encoded again"
    );
    assert_eq!(
        probe_value(
            &dir.path().join("out/b/b.p144.mp4"),
            "v:0",
            "nb_read_packets"
        ),
        Some(75.0)
    );
    Ok(())
}

/// Starts `spool run` in the background and returns it with the job id from its log.
fn start_run(
    dir: &Path,
    wf: &Path,
    input: &Path,
) -> Result<(Child, String), Box<dyn std::error::Error>> {
    let mut child = Command::new(spool_path())
        .env("SPOOL_LOG", "spool=info")
        .args(["run", "--json", "--workflow"])
        .arg(wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let id = loop {
        let line = lines
            .next()
            .ok_or("spool exited before starting the job")??;
        if line.contains("job started") {
            let id = line
                .split("job=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .ok_or("no job id")?;
            break id.to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, id))
}

fn slow_workflow(dir: &Path) -> Result<std::path::PathBuf, std::io::Error> {
    let wf = write_workflow(
        dir,
        "slow",
        "profiles:\n- {name: p144, codec: h264, height: 144, always_encode: true, preset: veryslow}\n\
         - {name: p240, codec: h264, height: 240, preset: veryslow}\n",
    )?;
    std::fs::write(
        &wf,
        std::fs::read_to_string(&wf)?.replace("concurrency: 2", "concurrency: 1"),
    )?;
    Ok(wf)
}

#[test]
fn resume_after_sigkill_reuses_finished_chunks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("long.mp4");
    make_clip(&src, "426x240", 25, 10, Audio::Bursts)?;
    let wf = slow_workflow(dir.path())?;
    let (mut child, id) = start_run(dir.path(), &wf, &src)?;
    let cache = dir.path().join("state/cache");
    wait_until("two encoded chunks", Duration::from_secs(120), || {
        find_files(&cache, ".mp4").len() >= 4
    })?;
    child.kill()?; // SIGKILL: no chance to clean up
    child.wait()?;
    // What the store says is done is what must be reused.
    let state = dir.path().join("state");
    let listed = spool()
        .args(["status", "--json", "--state"])
        .arg(&state)
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert!(listed.contains(r#""status":"interrupted""#), "{listed}");
    let done_before = listed.matches(r#""status":"done""#).count();
    assert!(done_before >= 1, "{listed}");

    let mut rerun = spool();
    run_args(&mut rerun, &wf, dir.path());
    let out = outcomes(&rerun.arg(&src).assert().success().get_output().stdout);
    assert_eq!(
        out[0]["id"].as_str(),
        Some(id.as_str()),
        "the interrupted job resumes under its id"
    );
    assert!(
        out[0]["reused_chunks"].as_u64().unwrap_or(0) >= done_before as u64,
        "{out:?}, {done_before} done before"
    );
    assert_eq!(
        ffmpeg_processes_mentioning(&state.display().to_string()),
        0,
        "no orphaned ffmpeg"
    );
    assert!(find_files(&dir.path().join("out"), "spool-tmp").is_empty());
    assert!(
        find_files(&state.join("work"), "").is_empty(),
        "work files are cleaned up"
    );
    let file = dir.path().join("out/long/long.p240.mp4");
    assert_eq!(probe_value(&file, "v:0", "nb_read_packets"), Some(250.0));
    Ok(())
}

#[test]
fn cancel_kills_ffmpeg_and_publishes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("c.mp4");
    make_clip(&src, "426x240", 25, 10, Audio::None)?;
    let wf = slow_workflow(dir.path())?;
    let (mut child, id) = start_run(dir.path(), &wf, &src)?;
    let state = dir.path().join("state");
    let needle = std::fs::canonicalize(&state)?.display().to_string();
    wait_until("an ffmpeg to run", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&needle) > 0
    })?;
    spool()
        .args(["cancel", &id, "--state"])
        .arg(&state)
        .assert()
        .success();
    let status = child.wait()?;
    assert_eq!(status.code(), Some(1), "a cancelled job is not a success");
    assert_eq!(ffmpeg_processes_mentioning(&needle), 0);
    assert!(!dir.path().join("out/c/manifest.json").exists());
    assert!(
        find_files(&dir.path().join("out"), "").is_empty(),
        "nothing published"
    );
    let listed = spool()
        .args(["status", "--json", "--state"])
        .arg(&state)
        .assert()
        .success();
    let line = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert!(line.contains(r#""status":"cancelled""#), "{line}");
    Ok(())
}

#[test]
fn sigterm_stops_cleanly_and_the_job_stays_resumable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("t.mp4");
    make_clip(&src, "426x240", 25, 6, Audio::None)?;
    let wf = slow_workflow(dir.path())?;
    let (child, id) = start_run(dir.path(), &wf, &src)?;
    let state = dir.path().join("state");
    let needle = std::fs::canonicalize(&state)?.display().to_string();
    wait_until("an ffmpeg to run", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&needle) > 0
    })?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(
        ffmpeg_processes_mentioning(&needle),
        0,
        "ffmpeg groups are killed"
    );
    assert!(
        find_files(&state.join("work"), "").is_empty(),
        "temp files are removed"
    );
    let listed = spool()
        .args(["status", "--json", "--state"])
        .arg(&state)
        .assert()
        .success();
    assert!(
        String::from_utf8_lossy(&listed.get_output().stdout).contains(r#""status":"interrupted""#)
    );
    let mut rerun = spool();
    run_args(&mut rerun, &wf, dir.path());
    let out = outcomes(&rerun.arg(&src).assert().success().get_output().stdout);
    assert_eq!(out[0]["id"].as_str(), Some(id.as_str()));
    Ok(())
}

#[test]
fn bad_inputs_fail_clearly_while_good_ones_finish() -> TestResult {
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.mp4");
    make_clip(&good, "256x144", 25, 2, Audio::Bursts)?;
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n")?;
    let bytes = std::fs::read(&good)?;
    let truncated = dir.path().join("cut.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"")?;
    let missing = dir.path().join("missing.mp4");
    let wf = write_workflow(dir.path(), "bad", "")?;
    let mut cmd = spool();
    run_args(&mut cmd, &wf, dir.path());
    let assert = cmd
        .args([&good, &text, &truncated, &empty, &missing])
        .assert()
        .code(1);
    let results = outcomes(&assert.get_output().stdout);
    let by_input = |name: &str| {
        results
            .iter()
            .find(|r| r["input"].as_str().is_some_and(|i| i.ends_with(name)))
            .cloned()
    };
    assert_eq!(
        by_input("good.mp4").map(|r| r["status"].clone()),
        Some("succeeded".into())
    );
    for (name, words) in [
        ("notes.mp4", "not a media file"),
        ("cut.mp4", "not a media file"),
        ("empty.mp4", "the file is empty"),
        ("missing.mp4", "No such file"),
    ] {
        let r = by_input(name).ok_or(format!("no result for {name}"))?;
        assert_eq!(r["status"], "failed", "{name}");
        let reason = r["reason"].as_str().unwrap_or("");
        assert!(reason.contains(words), "{name}: {reason}");
    }
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    for stem in ["notes", "cut", "empty"] {
        assert!(!dir
            .path()
            .join("out")
            .join(stem)
            .join("manifest.json")
            .exists());
    }
    assert!(find_files(&dir.path().join("out"), "spool-tmp").is_empty());
    assert_eq!(
        std::fs::read(&text)?,
        b"this is not a video\n",
        "originals are never touched"
    );
    Ok(())
}

#[test]
fn file_names_with_spaces_quotes_and_shell_metacharacters() -> TestResult {
    let dir = tempfile::tempdir()?;
    let name = "it's a \"clip\" $(touch pwned) & ; `x` -y.mp4";
    let src = dir.path().join(name);
    make_clip(
        &dir.path().join("plain.mp4"),
        "256x144",
        25,
        2,
        Audio::Bursts,
    )?;
    std::fs::rename(dir.path().join("plain.mp4"), &src)?;
    let wf = write_workflow(dir.path(), "odd", "")?;
    let mut cmd = spool();
    run_args(&mut cmd, &wf, dir.path());
    cmd.current_dir(dir.path()).arg(&src).assert().success();
    let stem = name.trim_end_matches(".mp4");
    let published = dir
        .path()
        .join("out")
        .join(stem)
        .join(format!("{stem}.p144.mp4"));
    assert_eq!(
        probe_value(&published, "v:0", "nb_read_packets"),
        Some(50.0)
    );
    assert!(!dir.path().join("pwned").exists(), "no shell ever ran");
    Ok(())
}
