//! spool's children run at a lower CPU priority than spool itself: every ffmpeg of a job
//! (and Whisper, tests/whisper_rules.rs) at niceness 10 by default, so the encodes take the
//! CPU that is free and spool's own threads answer promptly; `SPOOL_NICE=0` runs them at
//! spool's own. Read from the running ffmpeg's /proc entry.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// A process's niceness (field 19 of its stat; after the parenthesised name, the 17th).
fn nice_of(stat: &str) -> Option<i64> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

/// The pid and niceness of the first running ffmpeg whose arguments mention `needle`.
fn ffmpeg_nice(needle: &str) -> Option<(String, i64)> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let program = cmdline.split(|b| *b == 0).next()?;
        let text = String::from_utf8_lossy(&cmdline);
        if !program.ends_with(b"ffmpeg") || !text.contains(needle) {
            return None;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        Some((
            e.file_name().to_string_lossy().into_owned(),
            nice_of(&stat)?,
        ))
    })
}

/// This test's own niceness: the children's is counted from it.
fn own_nice() -> i64 {
    nice_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()).unwrap_or(0)
}

/// Starts a slow encode with `nice` as SPOOL_NICE (None: unset) and reads its ffmpeg's
/// niceness.
fn niceness_of_a_running_encode(dir: &Path, nice: Option<&str>) -> Result<i64, String> {
    let src = dir.join("clip.mp4");
    make_clip(&src, "1280x720", 25, 8, Audio::None)?;
    let wf = write_workflow(
        dir,
        "slow",
        "profiles:\n- {name: p720, codec: h264, height: 720, preset: veryslow, always_encode: true}\n",
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(spool_path());
    cmd.args(["run", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(n) = nice {
        cmd.env("SPOOL_NICE", n);
    }
    let mut run = cmd.spawn().map_err(|e| e.to_string())?;
    let needle = dir.join("state").display().to_string();
    let mut found = None;
    let waited = wait_until("an encode", Duration::from_secs(30), || {
        found = ffmpeg_nice(&needle);
        found.is_some()
    });
    let _ = run.kill();
    let _ = run.wait();
    // The encode has its own process group: it outlives a killed `spool run`.
    if let Some((pid, _)) = &found {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
    waited?;
    found.map(|(_, n)| n).ok_or_else(|| "no ffmpeg".to_string())
}

#[test]
fn ffmpeg_runs_at_niceness_10_unless_told_otherwise() -> TestResult {
    let own = own_nice();
    let dir = tempfile::tempdir()?;
    assert_eq!(
        niceness_of_a_running_encode(dir.path(), None)?,
        (own + 10).min(19)
    );
    let dir = tempfile::tempdir()?;
    assert_eq!(niceness_of_a_running_encode(dir.path(), Some("0"))?, own);
    let dir = tempfile::tempdir()?;
    assert_eq!(
        niceness_of_a_running_encode(dir.path(), Some("15"))?,
        (own + 15).min(19)
    );
    Ok(())
}
