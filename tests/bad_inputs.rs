//! A corpus of bad and unusual inputs, all generated here, run together in one `spool run`:
//! each must end, in bounded time, as a success (valid media) or a failure with a clear
//! reason; the others keep going; nothing panics; no temp files remain.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// (file, expected: Some(true) = must succeed, Some(false) = must fail, words in the reason)
struct Case {
    path: PathBuf,
    ok: bool,
    reason: &'static str,
}

fn corpus(dir: &Path) -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    let mut cases = Vec::new();
    let mut case = |name: &str, ok: bool, reason: &'static str| -> PathBuf {
        let p = dir.join(name);
        cases.push(Case {
            path: p.clone(),
            ok,
            reason,
        });
        p
    };
    let good = dir.join("good.mp4");
    make_clip(&good, "320x180", 25, 3, Audio::Bursts)?;
    let bytes = std::fs::read(&good)?;

    std::fs::write(case("zero.mp4", false, "empty"), b"")?;
    std::fs::write(
        case("text.mp4", false, "not a media file"),
        b"hello, I am a text file\n",
    )?;
    // Cut in half: the moov (written last by default) is gone.
    std::fs::write(
        case("half.mp4", false, "not a media file"),
        &bytes[..bytes.len() / 2],
    )?;
    // Fast-start (moov first), then the media data cut short.
    let faststart = dir.join("faststart.mp4");
    ffmpeg(&[
        "-i",
        s(&good),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        s(&faststart),
    ])?;
    let fs_bytes = std::fs::read(&faststart)?;
    std::fs::write(
        case("moov-first-cut.mp4", false, "cut short"),
        &fs_bytes[..fs_bytes.len() * 2 / 3],
    )?;
    std::fs::remove_file(&faststart)?;
    // The moov missing entirely: only the mdat part.
    let mdat = fs_bytes
        .windows(4)
        .position(|w| w == b"mdat")
        .unwrap_or(8)
        .saturating_sub(4);
    std::fs::write(
        case("no-moov.mp4", false, "not a media file"),
        &fs_bytes[mdat..],
    )?;

    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=2",
        "-c:a",
        "aac",
        s(&case("audio-only.m4a", false, "no video stream")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&case("video-only.mp4", true, "")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:d=1",
        "-frames:v",
        "1",
        s(&case("image.png", false, "still image")),
    ])?;
    // A y4m header declaring 60000x60000, with a few bytes of "frame".
    let mut y4m = b"YUV4MPEG2 W60000 H60000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(vec![128u8; 4096]);
    std::fs::write(case("huge.y4m", false, ""), y4m)?;
    // Variable frame rate: timestamps jitter.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=3",
        "-vf",
        "setpts='PTS+0.02*random(0)/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&case("vfr.mp4", true, "")),
    ])?;
    // A phone video: rotation side data.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-metadata:s:v:0",
        "rotate=90",
        s(&case("rotated.mp4", true, "")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=641x359:r=25:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        s(&case("odd-641x359.mkv", true, "")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv422p10le",
        s(&case("10bit-422.mkv", true, "")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=50:d=2",
        "-vf",
        "tinterlace=interleave_top,fieldorder=tff",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-flags",
        "+ildct+ilme",
        s(&case("interlaced.mkv", true, "")),
    ])?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=300:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=600:d=2",
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
        "-c:a",
        "aac",
        s(&case("two-audio.mkv", true, "")),
    ])?;
    let srt = dir.join("subs.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nhello\n")?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-i",
        s(&srt),
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
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
        "-c:a",
        "aac",
        "-c:s",
        "mov_text",
        s(&case("subtitles.mp4", true, "")),
    ])?;
    // Names a shell would choke on, and one that is not UTF-8.
    for name in [
        "with space.mp4",
        "quote'\"s.mp4",
        "$(touch pwned).mp4",
        "new\nline.mp4",
    ] {
        std::fs::copy(&good, case(name, true, ""))?;
    }
    std::fs::copy(&good, case("good-copy.mp4", true, ""))?;
    let raw = std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9.mp4");
    let raw_path = dir.join(raw);
    std::fs::copy(&good, &raw_path)?;
    cases.push(Case {
        path: raw_path,
        ok: true,
        reason: "",
    });
    std::fs::remove_file(&srt)?;
    std::fs::remove_file(&good)?;
    Ok(cases)
}

#[test]
fn every_bad_input_ends_clearly_and_the_good_ones_finish() -> TestResult {
    let dir = tempfile::tempdir()?;
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs)?;
    let cases = corpus(&inputs)?;
    let wf = write_workflow(dir.path(), "corpus", "")?;
    let started = Instant::now();
    let out = spool()
        .args(["run", "--json", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .args(cases.iter().map(|c| &c.path))
        .timeout(Duration::from_secs(600))
        .assert()
        .code(1);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let results = outcomes(&out.get_output().stdout);
    assert_eq!(results.len(), cases.len());
    let mut wrong = Vec::new();
    for (c, r) in cases.iter().zip(&results) {
        let status = r["status"].as_str().unwrap_or("");
        let reason = r["reason"].as_str().unwrap_or("");
        let name = c.path.display();
        eprintln!("{name}: {status} {reason}");
        if c.ok {
            let frames = read_json(Path::new(r["manifest"].as_str().unwrap_or("")))
                .map(|m| m["outputs"][0]["frames"].as_u64().unwrap_or(0))
                .unwrap_or(0);
            if status != "succeeded" || frames == 0 {
                wrong.push(format!("{name}: {status} {reason}"));
            }
        } else if status != "failed" || reason.len() < 10 || !reason.contains(c.reason) {
            wrong.push(format!(
                "{name}: expected a failure with {:?}, got {status} {reason:?}",
                c.reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists());
    assert!(find_files(&dir.path().join("out"), "spool-tmp").is_empty());
    // Every original is still there, untouched.
    for c in &cases {
        assert!(c.path.exists(), "{} is gone", c.path.display());
    }
    eprintln!("{} inputs in {:.1}s", cases.len(), elapsed.as_secs_f64());
    Ok(())
}

#[test]
fn a_file_that_disappears_mid_job_ends_in_bounded_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("vanishing.mp4");
    make_clip(&src, "426x240", 25, 8, Audio::Bursts)?;
    let wf = write_workflow(dir.path(), "vanish", "")?;
    let child = std::process::Command::new(spool_path())
        .args(["run", "--json", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&src)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let work = dir.path().join("state/work").display().to_string();
    wait_until("an encode", Duration::from_secs(60), || {
        ffmpeg_processes_mentioning(&work) > 0
    })?;
    std::fs::remove_file(&src)?;
    let started = Instant::now();
    let out = child.wait_with_output()?;
    assert!(started.elapsed() < Duration::from_secs(120));
    let result = outcomes(&out.stdout);
    let status = result[0]["status"].as_str().unwrap_or("");
    // Open files stay readable after an unlink, so finishing is as valid as a clear failure.
    match status {
        "succeeded" => {
            let m = read_json(Path::new(result[0]["manifest"].as_str().unwrap_or("")))?;
            assert_eq!(m["outputs"][0]["frames"], 200);
        }
        "failed" => assert!(
            result[0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("vanishing.mp4"),
            "{result:?}"
        ),
        other => unreachable!("unexpected status {other}: {result:?}"),
    }
    assert!(find_files(&dir.path().join("out"), "spool-tmp").is_empty());
    Ok(())
}
