//! The picture and the sound before the ladder: rotated phone videos chunked and upright (or
//! flagged), interlaced sources deinterlaced at frame or field rate (idet when the stream does
//! not say), black borders found across the whole file, loudness normalised to a target.

mod common;

use std::path::Path;

use common::*;

fn video_entry(media: &Path, entries: &str) -> Result<String, String> {
    ffprobe(media, entries, "v:0")
}

/// PSNR of `a` against `b` (same size), frame by frame from each one's first.
fn psnr(a: &Path, b: &Path) -> Result<f64, String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args([
            "-lavfi",
            "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]psnr",
        ])
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.rsplit("average:")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| {
            if v == "inf" {
                Some(99.0)
            } else {
                v.parse().ok()
            }
        })
        .ok_or_else(|| format!("no PSNR: {text}"))
}

fn one_rung(
    dir: &Path,
    name: &str,
    extra: &str,
    height: u32,
) -> Result<std::path::PathBuf, std::io::Error> {
    write_workflow(
        dir,
        name,
        &format!(
            "{extra}profiles:\n- {{name: p, codec: h264, height: {height}, always_encode: true, preset: ultrafast, crf: 10}}\n"
        ),
    )
}

#[test]
fn a_rotated_phone_video_is_chunked_and_comes_out_upright_or_flagged() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stored = dir.path().join("stored.mp4");
    make_clip(&stored, "320x180", 25, 4, Audio::Bursts)?;
    let phone = dir.path().join("phone.mp4");
    let (s, p) = (stored.display().to_string(), phone.display().to_string());
    // A portrait phone video: stored landscape, a display matrix turning it 90° clockwise.
    ffmpeg(&["-i", &s, "-c", "copy", "-metadata:s:v:0", "rotate=270", &p])?;
    assert_eq!(
        ffprobe(&phone, "stream_side_data=rotation", "v:0")?.trim(),
        "rotation=-90"
    );

    let wf = one_rung(dir.path(), "upright", "", 320)?;
    let result = run_succeeds(&wf, dir.path(), &phone)?;
    assert!(
        result["chunks"].as_u64().unwrap_or(0) >= 4,
        "chunked like any other: {result}"
    );
    let out = dir.path().join("out/phone/phone.p.mp4");
    let shown = video_entry(
        &out,
        "stream=width,height,nb_read_packets:stream_side_data=rotation",
    )?;
    assert!(
        shown.contains("width=180") && shown.contains("height=320"),
        "{shown}"
    );
    assert!(
        shown.contains("nb_read_packets=100") && !shown.contains("rotation"),
        "{shown}"
    );
    // The same picture a player shows for the source (ffmpeg turns it on decode).
    let upright = dir.path().join("upright.mkv");
    ffmpeg(&["-i", &p, "-c:v", "ffv1", &upright.display().to_string()])?;
    let score = psnr(&out, &upright)?;
    assert!(
        score > 30.0,
        "the output is not the source turned upright: PSNR {score:.1} dB"
    );
    let manifest = read_json(&dir.path().join("out/phone/manifest.json"))?;
    assert_eq!(manifest["picture"]["turn"], 90);
    assert!(
        manifest["fallback_reason"].is_null(),
        "{}",
        manifest["fallback_reason"]
    );

    let keep_dir = dir.path().join("keep");
    std::fs::create_dir_all(&keep_dir)?;
    let wf = one_rung(&keep_dir, "flagged", "picture: {rotation: keep}\n", 320)?;
    run_succeeds(&wf, &keep_dir, &phone)?;
    let out = keep_dir.join("out/phone/phone.p.mp4");
    let kept = video_entry(&out, "stream=width,height:stream_side_data=rotation")?;
    assert!(
        kept.contains("width=320") && kept.contains("height=180"),
        "stored as the source: {kept}"
    );
    assert!(
        kept.contains("rotation=-90"),
        "flagged as the source: {kept}"
    );
    assert!(psnr(&out, &upright)? > 30.0, "a player shows it upright");
    Ok(())
}

#[test]
fn interlaced_sources_are_deinterlaced_at_frame_or_field_rate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("tv.mp4");
    let src_s = src.display().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=50:d=4",
        "-vf",
        "tinterlace=mode=interleave_top,setfield=tff",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-flags",
        "+ildct+ilme",
        "-x264opts",
        "tff=1",
        "-g",
        "25",
        &src_s,
    ])?;
    assert!(video_entry(&src, "stream=field_order")?.contains("tt"));
    for (rate, frames, fps) in [("frame", 100, "25/1"), ("field", 200, "50/1")] {
        let run = dir.path().join(rate);
        std::fs::create_dir_all(&run)?;
        let wf = one_rung(
            &run,
            rate,
            &format!("picture: {{field_rate: {rate}}}\n"),
            180,
        )?;
        let plan = spool()
            .args(["plan", "--workflow"])
            .arg(&wf)
            .arg(&src)
            .assert()
            .success();
        let printed = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
        assert!(
            printed.contains(&format!("deinterlaced (bwdif, {rate} rate)")),
            "{printed}"
        );
        let result = run_succeeds(&wf, &run, &src)?;
        assert!(result["chunks"].as_u64().unwrap_or(0) >= 4);
        let out = run.join("out/tv/tv.p.mp4");
        let got = video_entry(&out, "stream=nb_read_packets,r_frame_rate,field_order")?;
        assert!(
            got.contains(&format!("nb_read_packets={frames}")),
            "{rate}: {got}"
        );
        assert!(
            got.contains(&format!("r_frame_rate={fps}")) && got.contains("progressive"),
            "{got}"
        );
        // Combing gone: idet on the output finds progressive frames.
        let idet = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-i"])
            .arg(&out)
            .args(["-vf", "idet", "-f", "null", "-"])
            .output()?;
        let report = String::from_utf8_lossy(&idet.stderr).into_owned();
        let line = report
            .lines()
            .rfind(|l| l.contains("Multi frame"))
            .unwrap_or_default();
        let count = |k: &str| -> u64 {
            line.split(k)
                .nth(1)
                .and_then(|r| r.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        assert!(
            count("Progressive:") > 10 * (count("TFF:") + count("BFF:")),
            "{rate}: {line}"
        );
    }
    Ok(())
}

#[test]
fn idet_decides_when_the_stream_does_not_say() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (name, filter, want) in [
        ("combed.avi", "tinterlace=mode=interleave_top", true),
        ("clean.avi", "null", false),
    ] {
        let src = dir.path().join(name);
        let rate = if want { "50" } else { "25" };
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s=320x180:r={rate}:d=3"),
            "-vf",
            filter,
            "-c:v",
            "mpeg4",
            "-q:v",
            "2",
            "-g",
            "25",
            &src.display().to_string(),
        ])?;
        assert!(
            !video_entry(&src, "stream=field_order")?.contains("field_order=t"),
            "the header must not say"
        );
        let run = dir.path().join(name.replace('.', "-"));
        std::fs::create_dir_all(&run)?;
        let wf = one_rung(&run, "idet", "", 180)?;
        run_succeeds(&wf, &run, &src)?;
        let stem = name.trim_end_matches(".avi");
        let manifest = read_json(&run.join(format!("out/{stem}/manifest.json")))?;
        assert_eq!(
            manifest["picture"]["deinterlace"].is_string(),
            want,
            "{name}: {}",
            manifest["picture"]
        );
    }
    Ok(())
}

#[test]
fn black_borders_are_found_across_the_whole_file_not_just_the_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("film.mp4");
    // A 2.35:1-ish picture letterboxed in 320x240; the first 2 s are a dark scene with only a
    // small light square, where a detector looking at the start alone would crop far too much.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=8",
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=320x180:r=25:d=8",
        "-filter_complex",
        "[1:v]drawbox=x=150:y=80:w=20:h=20:c=white:t=fill[dark];\
         [0:v][dark]overlay=enable='lt(t,2)'[pic];[pic]pad=320:240:0:30:black",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        &src.display().to_string(),
    ])?;
    let wf = one_rung(dir.path(), "crop", "picture: {crop: auto}\n", 180)?;
    let plan = spool()
        .args(["plan", "--workflow"])
        .arg(&wf)
        .arg(&src)
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(printed.contains("cropped to 320x180 at 0,30"), "{printed}");
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/film/film.p.mp4");
    let size = video_entry(&out, "stream=width,height")?;
    assert!(
        size.contains("width=320") && size.contains("height=180"),
        "{size}"
    );
    let manifest = read_json(&dir.path().join("out/film/manifest.json"))?;
    assert_eq!(
        manifest["picture"]["crop"]["y"], 30,
        "{}",
        manifest["picture"]
    );
    // The picture is the source's, bars gone: compare with a crop done by hand.
    let reference = dir.path().join("reference.mkv");
    let (s, r) = (src.display().to_string(), reference.display().to_string());
    ffmpeg(&["-i", &s, "-vf", "crop=320:180:0:30", "-c:v", "ffv1", &r])?;
    assert!(psnr(&out, &reference)? > 30.0);
    Ok(())
}

/// Integrated loudness of audio track `track` of `media`, LUFS, by ebur128.
fn integrated_lufs(media: &Path, track: usize) -> Result<f64, String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(media)
        .args([
            "-map",
            &format!("0:a:{track}"),
            "-af",
            "ebur128",
            "-f",
            "null",
            "-",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap_or("");
    summary
        .split("I:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no loudness: {summary}"))
}

#[test]
fn quiet_tracks_come_out_at_the_target_loudness() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("quiet.mkv");
    // Two tracks: pink noise near -30 LUFS and a louder tone, both to reach -16.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=6",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=c=pink:a=0.16:d=6:r=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=6:r=48000,volume=0.3",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "flac",
        &src.display().to_string(),
    ])?;
    let before = integrated_lufs(&src, 0)?;
    assert!(
        (-34.0..-26.0).contains(&before),
        "the quiet track is {before} LUFS"
    );
    let wf = one_rung(dir.path(), "loud", "loudness: {target_lufs: -16}\n", 180)?;
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/quiet/quiet.p.mp4");
    for track in 0..2 {
        let after = integrated_lufs(&out, track)?;
        assert!(
            (after + 16.0).abs() <= 1.0,
            "track {track}: {after} LUFS, target -16 ±1"
        );
    }
    let manifest = read_json(&dir.path().join("out/quiet/manifest.json"))?;
    let entries = manifest["loudness"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2, "{manifest}");
    let measured = entries[0]["measured_lufs"].as_f64().unwrap_or(0.0);
    assert!(
        (measured - before).abs() < 0.5,
        "measured {measured} vs {before}"
    );
    let result = entries[0]["result_lufs"].as_f64().unwrap_or(0.0);
    assert!((result + 16.0).abs() <= 1.0, "{result}");
    Ok(())
}
