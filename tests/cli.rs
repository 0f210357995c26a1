//! The smaller commands, and codecs beyond H.264, through the real binary.

mod common;

use common::*;

#[test]
fn every_shipped_workflow_validates_and_bad_ones_list_every_error() -> TestResult {
    let shipped: Vec<_> = std::fs::read_dir("workflows")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(!shipped.is_empty());
    spool().arg("validate").args(&shipped).assert().success();

    let dir = tempfile::tempdir()?;
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "version: 1\nname: t\nprofiles: []\nchunking:\n  segment_secs: 4\n",
    )?;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 2\nname: b\nprofiles:\n- {name: a, codec: av1, height: 4000, rate_control: two_pass}\n",
    )?;
    let out = spool()
        .arg("validate")
        .arg(&typo)
        .arg(&bad)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("typo.yaml:5:3: chunking.segment_secs: unknown field")
            && stderr.contains("did you mean `segment_seconds`?"),
        "{stderr}"
    );
    // Semantic errors carry their place too, every one of them.
    for place in [
        "bad.yaml:1:1: version",
        "bad.yaml:4:25: profiles[0].height",
        "bad.yaml:4:39: profiles[0].rate_control",
    ] {
        assert!(stderr.contains(place), "missing {place}: {stderr}");
    }
    // A bad workflow given to run is a configuration error: exit 2, nothing processed.
    spool()
        .args(["run", "--workflow"])
        .arg(&bad)
        .arg("x.mp4")
        .assert()
        .code(2);
    Ok(())
}

#[test]
fn gif_command_uses_a_palette_and_the_requested_width() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("g.mp4");
    make_clip(&src, "320x180", 25, 3, Audio::None)?;
    let gif = dir.path().join("preview.gif");
    spool()
        .arg("gif")
        .arg(&src)
        .arg("--out")
        .arg(&gif)
        .args(["--width", "160", "--fps", "5"])
        .assert()
        .success();
    assert!(ffprobe(&gif, "stream=codec_name", "v")?.contains("gif"));
    assert_eq!(probe_value(&gif, "v:0", "width"), Some(160.0));
    let frames = probe_value(&gif, "v:0", "nb_read_packets").unwrap_or(0.0);
    assert!(
        (10.0..=16.0).contains(&frames),
        "5 fps over ~2.4 s, got {frames}"
    );
    spool()
        .arg("gif")
        .arg(dir.path().join("none.mp4"))
        .assert()
        .failure();
    Ok(())
}

#[test]
fn h265_and_av1_rungs_in_one_ladder_with_fixed_keyframes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("codecs.mp4");
    make_clip(&src, "256x144", 25, 3, Audio::Bursts)?;
    let wf = write_workflow(
        dir.path(),
        "codecs",
        "profiles:\n\
         - {name: hevc, codec: h265, height: 144, preset: ultrafast}\n\
         - {name: av1, codec: av1, height: 144, preset: '12'}\n\
         - {name: avc, codec: h264, height: 144, preset: ultrafast}\n",
    )?;
    let out = dir.path().join("out");
    spool()
        .args(["run", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(&out)
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&src)
        .assert()
        .success();
    for (name, codec) in [("hevc", "hevc"), ("av1", "av1"), ("avc", "h264")] {
        let file = out.join(format!("codecs/codecs.{name}.mp4"));
        assert!(
            ffprobe(&file, "stream=codec_name", "v")?.contains(codec),
            "{file:?}"
        );
        assert_eq!(
            probe_value(&file, "v:0", "nb_read_packets"),
            Some(75.0),
            "{file:?}"
        );
    }
    // keyframe_interval_seconds: 1 at 25 fps: a keyframe on every 25th frame, and only there.
    let flags = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
        ])
        .arg(out.join("codecs/codecs.avc.mp4"))
        .output()?;
    let keyframes: Vec<usize> = String::from_utf8_lossy(&flags.stdout)
        .lines()
        .enumerate()
        .filter(|(_, f)| f.starts_with('K'))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, [0, 25, 50]);
    Ok(())
}

#[test]
fn status_of_an_empty_state_and_unknown_jobs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let out = spool()
        .args(["status", "--state"])
        .arg(&state)
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("no jobs"));
    spool()
        .args(["status", "0123abcd", "--state"])
        .arg(&state)
        .assert()
        .code(2);
    spool()
        .args(["cancel", "../../etc", "--state"])
        .arg(&state)
        .assert()
        .code(2);
    // Well-formed, but nothing there: the operation fails (1); the command line was fine.
    spool()
        .args(["status", "0123456789abcdef", "--state"])
        .arg(&state)
        .assert()
        .code(1);
    spool()
        .args(["retry", "0123456789abcdef", "--state"])
        .arg(&state)
        .assert()
        .code(1);
    spool()
        .args(["pause", "/nowhere", "--state"])
        .arg(&state)
        .assert()
        .code(1);
    // A state directory that does not exist is said so, and not created.
    let missing = dir.path().join("missing");
    let out = spool()
        .args(["status", "--state"])
        .arg(&missing)
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("no spool state"));
    assert!(!missing.exists(), "status created a state directory");
    Ok(())
}

#[test]
fn version_names_the_ffmpeg_and_the_features_and_run_ends_with_a_summary() -> TestResult {
    let shown = spool().arg("--version").assert().success();
    let text = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    assert!(
        text.starts_with(&format!("spool {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains("ffmpeg: /") && text.contains("ffmpeg version"),
        "{text}"
    );
    assert!(text.contains("features: whisper"), "{text}");
    // No ffmpeg to be found: said so, exit 1.
    let missing = spool()
        .arg("--version")
        .env("SPOOL_FFMPEG", "/nonexistent/ffmpeg")
        .assert()
        .code(1);
    assert!(String::from_utf8_lossy(&missing.get_output().stdout).contains("not usable"));

    let dir = tempfile::tempdir()?;
    let src = dir.path().join("short clip.mp4");
    make_clip(&src, "256x144", 25, 2, Audio::Bursts)?;
    let wf = write_workflow(dir.path(), "w", "")?;
    let run = spool()
        .args(["run", "--progress", "none", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&src)
        .arg(dir.path().join("missing.mp4"))
        .assert()
        .code(1);
    let out = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "one line per job: {out}");
    assert!(
        lines[0].starts_with("succeeded") && lines[0].contains("short clip.mp4: 1 output, "),
        "{out}"
    );
    assert!(lines[0].contains("chunks reused"), "{out}");
    assert!(
        lines[1].starts_with("failed") && lines[1].contains("missing.mp4"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        !err.contains("task done"),
        "no progress lines with --progress none: {err}"
    );
    Ok(())
}
