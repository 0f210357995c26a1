//! Chunking that holds on every source: open GOPs (x265's default, x264 open-gop, MPEG-2 in a
//! transport stream), long GOPs and a single keyframe, variable frame rate, boundaries on
//! scene cuts. Every output is encoded losslessly at the source's size, so each of its
//! frames must be bit-identical to the source frame at the same index: a chunk one frame
//! short, long or shifted shows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::sources::bursts_from_picture;
use common::*;
use serde_json::Value;

/// A lossless rung at the source's size: the output decodes to the source's frames.
fn lossless_workflow(dir: &Path, name: &str, chunking: &str) -> std::io::Result<PathBuf> {
    let wf = write_workflow(
        dir,
        name,
        "profiles:\n- {name: p, codec: h264, height: 180, always_encode: true, preset: ultrafast, crf: 0, bitrate_kbps: 200000}\n",
    )?;
    let text = std::fs::read_to_string(&wf)?.replace(
        "chunking: {segment_seconds: 1, min_duration_seconds: 0}",
        &format!("chunking: {{min_duration_seconds: 0, {chunking}}}"),
    );
    std::fs::write(&wf, text)?;
    Ok(wf)
}

/// 12 s of testsrc2 at 320x180, 25 fps, with a tone burst every second, encoded by
/// `video` (ffmpeg options) into `name`.
fn source(dir: &Path, name: &str, video: &[&str]) -> Result<PathBuf, String> {
    let path = dir.join(name);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=12",
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.1):s=48000:d=12",
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(video);
    let audio = if name.ends_with(".ts") { "mp2" } else { "aac" };
    args.extend(["-c:a", audio]);
    let p = path.display().to_string();
    args.push(&p);
    ffmpeg(&args)?;
    Ok(path)
}

/// Every decoded frame's MD5, in order.
fn frame_md5s(media: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(media)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|s| s.trim().to_string()))
        .collect())
}

/// Presentation times of every frame, from the first.
fn frame_times(media: &Path) -> Result<Vec<f64>, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(media)
        .output()
        .map_err(|e| e.to_string())?;
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    let first = t.first().copied().unwrap_or(0.0);
    Ok(t.into_iter().map(|x| x - first).collect())
}

/// Runs the job and checks what every chunking must give: success, chunks really used,
/// every frame the source's, every burst where the source has it. Returns the manifest.
fn chunked_exactly(dir: &Path, wf: &Path, src: &Path, method: &str) -> Result<Value, String> {
    let fail = |e: Box<dyn std::error::Error>| e.to_string();
    let outcome = run_succeeds(wf, dir, src).map_err(fail)?;
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = read_json(&dir.join(format!("out/{stem}/manifest.json"))).map_err(fail)?;
    let chunks = manifest["chunks"].as_u64().unwrap_or(0);
    if chunks < 2 || manifest["chunking"]["method"] != method {
        return Err(format!(
            "{stem}: {chunks} chunks by {}: {outcome}",
            manifest["chunking"]
        ));
    }
    let out = dir.join(format!("out/{stem}/{stem}.p.mp4"));
    let (want, got) = (frame_md5s(src)?, frame_md5s(&out)?);
    if got.len() != want.len() {
        return Err(format!(
            "{stem}: {} frames, the source has {}",
            got.len(),
            want.len()
        ));
    }
    if let Some(i) = (0..want.len()).find(|i| got[*i] != want[*i]) {
        return Err(format!("{stem}: frame {i} is not the source's frame {i}"));
    }
    let (want, got) = (bursts_from_picture(src, 0)?, bursts_from_picture(&out, 0)?);
    let in_sync =
        want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| (w - g).abs() <= 0.002);
    if !in_sync {
        return Err(format!("{stem}: bursts {got:?}, source {want:?}"));
    }
    Ok(manifest)
}

#[test]
fn open_gop_sources_are_chunked_into_exactly_their_frames() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = lossless_workflow(dir.path(), "ranges", "segment_seconds: 2")?;
    let x265 = ["-c:v", "libx265", "-x265-params", "log-level=error"];
    let x264 = ["-c:v", "libx264", "-x264-params", "open-gop=1:keyint=100"];
    let mpeg2 = [
        "-c:v",
        "mpeg2video",
        "-flags",
        "-cgop",
        "-bf",
        "2",
        "-g",
        "15",
        "-b:v",
        "2M",
    ];
    let sources = [
        source(dir.path(), "x265.mkv", &x265)?,
        source(
            dir.path(),
            "x265.mp4",
            &[&x265[..], &["-tag:v", "hvc1"]].concat(),
        )?,
        source(dir.path(), "x264og.mp4", &x264)?,
        source(dir.path(), "x264og.mkv", &x264)?,
        source(dir.path(), "mpeg2.ts", &mpeg2)?,
    ];
    let mut failures = Vec::new();
    for src in &sources {
        if let Err(e) = chunked_exactly(dir.path(), &wf, src, "frames") {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn requested_chunk_lengths_hold_on_long_gops_and_a_single_keyframe() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = lossless_workflow(dir.path(), "ranges", "segment_seconds: 4")?;
    let ten_second_gop = [
        "-c:v",
        "libx264",
        "-g",
        "250",
        "-keyint_min",
        "250",
        "-sc_threshold",
        "0",
    ];
    let one_key = [
        "-c:v",
        "libx264",
        "-g",
        "1000",
        "-keyint_min",
        "1000",
        "-sc_threshold",
        "0",
    ];
    for (name, video) in [("gop10.mp4", &ten_second_gop), ("onekey.mkv", &one_key)] {
        let src = source(dir.path(), name, video)?;
        let manifest = chunked_exactly(dir.path(), &wf, &src, "frames")?;
        let starts: Vec<f64> = manifest["chunking"]["starts"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        assert_eq!(starts.len(), 3, "{name}: {starts:?}");
        for pair in starts.windows(2) {
            let length = pair[1] - pair[0];
            assert!((length - 4.0).abs() <= 0.4, "{name}: a chunk of {length}s");
        }
        assert!(
            manifest["chunking"]["preroll_frames"].as_u64() > Some(0),
            "{name}: chunks after the first decode from the keyframe before them"
        );
    }
    Ok(())
}

#[test]
fn a_variable_frame_rate_source_keeps_every_frame_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("vfr.mkv");
    // 25 fps, then 10 fps, then 25 fps again; Matroska keeps each frame's own time.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=4",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=10:d=4",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=4",
        "-filter_complex",
        "[0][1][2]concat=n=3:v=1:a=0,format=yuv420p",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-g",
        "25",
        &src.display().to_string(),
    ])?;
    let wf = lossless_workflow(dir.path(), "ranges", "segment_seconds: 3")?;
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/vfr/vfr.p.mp4");
    let (want, got) = (frame_times(&src)?, frame_times(&out)?);
    assert_eq!(got.len(), want.len(), "every frame kept");
    let worst = want
        .iter()
        .zip(&got)
        .map(|(w, g)| (w - g).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 0.001, "frame times moved by up to {worst}s");
    assert_eq!(frame_md5s(&out)?, frame_md5s(&src)?);
    Ok(())
}

#[test]
fn scene_boundaries_land_on_the_cuts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("shots.mp4");
    // Four shots of different sources: hard cuts at 3.0, 5.6 and 7.8 s.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=3",
        "-f",
        "lavfi",
        "-i",
        "smptebars=s=320x180:r=25:d=2.6",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=s=320x180:r=25",
        "-f",
        "lavfi",
        "-i",
        "rgbtestsrc=s=320x180:r=25:d=4.2",
        "-filter_complex",
        "[2]trim=duration=2.2[m];[0][1][m][3]concat=n=4:v=1:a=0,format=yuv420p[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-g",
        "250",
        &src.display().to_string(),
    ])?;
    let wf = lossless_workflow(
        dir.path(),
        "scenes",
        "segment_seconds: 2.5, boundaries: scenes, min_seconds: 1.5, max_seconds: 4",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let manifest = read_json(&dir.path().join("out/shots/manifest.json"))?;
    assert_eq!(manifest["chunking"]["method"], "scenes", "{manifest}");
    let starts: Vec<f64> = manifest["chunking"]["starts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    for cut in [3.0, 5.6, 7.8] {
        assert!(
            starts.iter().any(|s| (s - cut).abs() <= 0.04 + 1e-6),
            "a boundary on the cut at {cut}s: {starts:?}"
        );
    }
    let out = dir.path().join("out/shots/shots.p.mp4");
    assert_eq!(frame_md5s(&out)?, frame_md5s(&src)?);
    // spool plan shows the same boundaries.
    let shown = spool()
        .args(["plan", "--workflow"])
        .arg(&wf)
        .arg(&src)
        .assert()
        .success();
    let shown = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    assert!(shown.contains("by scenes"), "{shown}");
    assert!(shown.contains("3.000 5.600 7.800"), "{shown}");
    Ok(())
}

#[test]
fn copy_cuts_that_lose_frames_fall_back_to_the_whole_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let x265 = [
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error:keyint=50",
    ];
    let src = source(dir.path(), "opengop.mkv", &x265)?;
    let wf = lossless_workflow(dir.path(), "copy", "segment_seconds: 2, cut: copy")?;
    let outcome = run_succeeds(&wf, dir.path(), &src)?;
    let manifest = read_json(&dir.path().join("out/opengop/manifest.json"))?;
    assert_eq!(manifest["chunking"]["method"], "whole", "{outcome}");
    let why = manifest["fallback_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("did not decode to exactly its frames"),
        "{why}"
    );
    let out = dir.path().join("out/opengop/opengop.p.mp4");
    assert_eq!(frame_md5s(&out)?, frame_md5s(&src)?);
    Ok(())
}

#[test]
fn chunking_rules_are_checked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = lossless_workflow(
        dir.path(),
        "bad",
        "segment_seconds: 4, cut: copy, boundaries: scenes, min_seconds: 5, max_seconds: 2",
    )?;
    let out = spool().arg("validate").arg(&wf).assert().failure();
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned()
        + &String::from_utf8_lossy(&out.get_output().stdout);
    for field in [
        "chunking.min_seconds",
        "chunking.max_seconds",
        "chunking.boundaries",
    ] {
        assert!(text.contains(field), "{field}: {text}");
    }
    Ok(())
}
