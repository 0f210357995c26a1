//! The same content again under another name: every output is reused from the earlier job
//! after a SHA-256 check, and nothing is encoded; a damaged earlier output is never reused.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn manifest(dir: &Path, stem: &str) -> Result<Value, Box<dyn std::error::Error>> {
    read_json(&dir.join(format!("out/{stem}/manifest.json")))
}

#[test]
fn a_renamed_copy_reuses_every_checked_output_and_a_damaged_one_is_not_reused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = write_workflow(
        dir.path(),
        "w",
        "gif: {enabled: true, width: 120, fps: 5}\n",
    )?;
    let first = dir.path().join("talk.mp4");
    make_clip(&first, "426x240", 25, 3, Audio::Bursts)?;
    let done = run_succeeds(&wf, dir.path(), &first)?;
    let before = manifest(dir.path(), "talk")?;
    let outputs = before["outputs"].as_array().cloned().unwrap_or_default();
    assert_eq!(outputs.len(), 4, "three rungs and a GIF: {before}");
    assert!(outputs
        .iter()
        .all(|o| o["sha256"].as_str().is_some_and(|h| h.len() == 64)));

    let copy = dir.path().join("lecture copy.mp4");
    std::fs::copy(&first, &copy)?;
    let again = run_succeeds(&wf, dir.path(), &copy)?;
    let reused = manifest(dir.path(), "lecture copy")?;
    assert_eq!(reused["reused_from"], done["id"], "{reused}");
    assert_eq!(again["chunks"], 0, "nothing was cut or encoded: {again}");
    for (name, old) in [
        ("lecture copy.p144.mp4", "talk.p144.mp4"),
        ("lecture copy.p240.mp4", "talk.p240.mp4"),
        ("lecture copy.gif", "talk.gif"),
    ] {
        let a = std::fs::read(dir.path().join("out/lecture copy").join(name))?;
        let b = std::fs::read(dir.path().join("out/talk").join(old))?;
        assert!(a == b, "{name} is {old}");
    }

    // Damage the 240p output of both earlier jobs: a third copy must encode, not reuse.
    for stem in ["talk", "lecture copy"] {
        let path = dir.path().join(format!("out/{stem}/{stem}.p240.mp4"));
        let mut bytes = std::fs::read(&path)?;
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::remove_file(&path)?; // a hard link: write a new file, not through the link
        std::fs::write(&path, bytes)?;
    }
    let third = dir.path().join("third.mp4");
    std::fs::copy(&first, &third)?;
    let fresh = run_succeeds(&wf, dir.path(), &third)?;
    let m = manifest(dir.path(), "third")?;
    assert!(m["reused_from"].is_null(), "{m}");
    assert!(fresh["chunks"].as_u64() > Some(0), "{fresh}");
    let good = std::fs::read(dir.path().join("out/third/third.p240.mp4"))?;
    let damaged = std::fs::read(dir.path().join("out/talk/talk.p240.mp4"))?;
    assert!(good != damaged);
    Ok(())
}

#[test]
fn an_hls_package_is_reused_whole_and_still_plays() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = write_workflow(dir.path(), "hls", "steps:\n- hls: {segment_seconds: 1}\n")?;
    let first = dir.path().join("show.mp4");
    make_clip(&first, "426x240", 25, 3, Audio::Bursts)?;
    let done = run_succeeds(&wf, dir.path(), &first)?;
    let before = manifest(dir.path(), "show")?;
    let files = before["files"].as_array().map_or(0, Vec::len);
    assert!(files > 8, "playlists and segments are listed: {before}");
    let copy = dir.path().join("episode.mp4");
    std::fs::copy(&first, &copy)?;
    let again = run_succeeds(&wf, dir.path(), &copy)?;
    let m = manifest(dir.path(), "episode")?;
    assert_eq!(m["reused_from"], done["id"], "{m}");
    assert_eq!(again["chunks"], 0);
    assert_eq!(m["files"].as_array().map_or(0, Vec::len), files);
    assert!(m["outputs"].to_string().contains("episode.p240.mp4"), "{m}");
    // The reused package plays through its master playlist: every frame of the top rung.
    let master = dir.path().join("out/episode/hls/master.m3u8");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&master)
        .output()?;
    let frames: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|v| v.trim_end_matches(',').parse().ok())
        .collect();
    assert!(frames.contains(&75), "{frames:?}");
    Ok(())
}
