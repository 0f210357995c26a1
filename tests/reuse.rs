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

#[test]
fn another_workflow_version_reuses_joins_thumbnails_and_the_hls_package() -> TestResult {
    let dir = tempfile::tempdir()?;
    let steps =
        "steps:\n- thumbnails: {interval_seconds: 1, thumb_width: 64, columns: 2, rows: 2}\n\
                 - hls: {segment_seconds: 1}\n";
    let v1 = write_workflow(dir.path(), "v1", steps)?;
    // Another version of the workflow (its text differs): no whole-output reuse.
    let v2 = write_workflow(
        dir.path(),
        "v2",
        &format!("description: the same work\n{steps}"),
    )?;
    let src = dir.path().join("show.mp4");
    make_clip(&src, "426x240", 25, 3, Audio::Bursts)?;
    let run = |wf: &Path, out: &str, trace: &str| {
        spool()
            .args(["run", "--json", "--workflow"])
            .arg(wf)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--trace-commands")
            .arg(dir.path().join(trace))
            .arg(&src)
            .assert()
            .success()
    };
    run(&v1, "out1", "t1.jsonl");
    run(&v2, "out2", "t2.jsonl");
    let (first, second) = (
        traced_phases(&dir.path().join("t1.jsonl")),
        traced_phases(&dir.path().join("t2.jsonl")),
    );
    for phase in ["join", "thumbnails", "hls"] {
        assert!(first.iter().any(|p| p == phase), "{phase} in {first:?}");
    }
    for phase in ["encode", "audio", "join", "thumbnails", "hls"] {
        assert!(
            !second.iter().any(|p| p == phase),
            "{phase} ran again: {second:?}"
        );
    }
    let m1 = read_json(&dir.path().join("out1/show/manifest.json"))?;
    let m2 = read_json(&dir.path().join("out2/show/manifest.json"))?;
    assert!(m2["reused_from"].is_null(), "not reused whole: {m2}");
    assert_eq!(m2["steps"]["thumbnails"]["cached"], true, "{m2}");
    assert_eq!(m2["steps"]["hls"]["cached"], true, "{m2}");
    // Every file of the package and the sheets, byte for byte, and listed alike.
    let listed = |m: &Value| -> Vec<(String, String)> {
        m["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| (f["path"].to_string(), f["sha256"].to_string()))
            .collect()
    };
    assert_eq!(listed(&m1), listed(&m2));
    assert!(listed(&m2).len() > 8, "{m2}");
    // The package put in place plays through its master playlist: every frame of the top rung.
    let master = dir.path().join("out2/show/hls/master.m3u8");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&master)
        .output()?;
    let frames = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        frames
            .split_whitespace()
            .any(|f| f.trim_end_matches(',') == "75"),
        "{frames}"
    );

    // A damaged kept file is never used: the step runs again and its output is whole.
    let kept_jpgs = find_files(&dir.path().join("state"), ".jpg");
    assert!(!kept_jpgs.is_empty(), "the sheets are kept in the cache");
    for path in &kept_jpgs {
        let mut bytes = std::fs::read(path)?;
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::remove_file(path)?; // linked to the outputs: a new file, not through the link
        std::fs::write(path, bytes)?;
    }
    let v3 = write_workflow(
        dir.path(),
        "v3",
        &format!("description: once more\n{steps}"),
    )?;
    run(&v3, "out3", "t3.jsonl");
    let third = traced_phases(&dir.path().join("t3.jsonl"));
    assert!(third.iter().any(|p| p == "thumbnails"), "{third:?}");
    assert!(
        !third.iter().any(|p| p == "hls"),
        "the package was sound: {third:?}"
    );
    let m3 = read_json(&dir.path().join("out3/show/manifest.json"))?;
    assert_eq!(listed(&m1), listed(&m3));
    Ok(())
}
