//! End-to-end: the real spool binary, real ffmpeg, generated media.

mod common;

use common::*;

#[test]
fn ladder_with_audio_keeps_frames_duration_and_sync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("talk.mp4");
    make_clip(&src, "320x180", 25, 6, Audio::Bursts)?;
    let wf = write_workflow(dir.path(), "ladder", "")?;
    let out = dir.path().join("out");
    let assert = spool()
        .args(["run", "--json", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(&out)
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&src)
        .assert()
        .success();
    let results = outcomes(&assert.get_output().stdout);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "succeeded");
    assert!(
        results[0]["chunks"].as_u64().unwrap_or(0) >= 5,
        "1 s segments of a 6 s clip: {results:?}"
    );

    let manifest = read_json(&out.join("talk/manifest.json"))?;
    let outputs = manifest["outputs"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = outputs
        .iter()
        .filter_map(|o| o["profile"].as_str())
        .collect();
    assert_eq!(
        names,
        ["p144", "p180"],
        "240p is taller than the source and not always_encode"
    );
    assert!(manifest["skipped"][0]
        .as_str()
        .unwrap_or("")
        .starts_with("p240"));
    assert_eq!(manifest["source"]["frames"], 150);

    let source_bursts = burst_onsets(&src)?;
    assert_eq!(source_bursts.len(), 6);
    for o in &outputs {
        let file = out.join("talk").join(o["path"].as_str().unwrap_or(""));
        assert_eq!(
            probe_value(&file, "v:0", "nb_read_packets"),
            Some(150.0),
            "{file:?} frame count"
        );
        assert_eq!(probe_value(&file, "v:0", "height"), o["height"].as_f64());
        let v_start = probe_value(&file, "v:0", "start_time").unwrap_or(-1.0);
        let a_start = probe_value(&file, "a:0", "start_time").unwrap_or(-1.0);
        assert!(
            (v_start - a_start).abs() <= 1024.0 / 48000.0,
            "A/V start {v_start} vs {a_start}"
        );
        let duration = o["duration"].as_f64().unwrap_or(0.0);
        assert!(
            (duration - 6.0).abs() <= 1.0 / 25.0 + 1e-3,
            "duration {duration}"
        );
        // Every burst must sit where it sits in the source: no drift across chunk joins.
        let bursts = burst_onsets(&file)?;
        assert_eq!(bursts.len(), source_bursts.len(), "{file:?}: {bursts:?}");
        for (got, want) in bursts.iter().zip(&source_bursts) {
            assert!(
                (got - want).abs() <= 0.003,
                "{file:?}: burst at {got}, source at {want}"
            );
        }
    }
    assert!(out
        .join("talk")
        .read_dir()?
        .all(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().contains("spool-tmp"))));
    Ok(())
}

#[test]
fn clip_without_audio_and_whole_file_fallback() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("silent.mp4");
    make_clip(&src, "256x144", 25, 3, Audio::None)?;
    // A threshold above the clip's length: encoded whole, and the reason is recorded.
    let wf = write_workflow(
        dir.path(),
        "whole",
        "profiles:\n- {name: p144, codec: h264, height: 144, preset: ultrafast}\n",
    )?;
    std::fs::write(
        &wf,
        std::fs::read_to_string(&wf)?
            .replace("min_duration_seconds: 0", "min_duration_seconds: 10"),
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
    let manifest = read_json(&out.join("silent/manifest.json"))?;
    assert!(
        manifest["fallback_reason"]
            .as_str()
            .unwrap_or("")
            .contains("shorter than"),
        "{manifest}"
    );
    assert_eq!(manifest["chunks"], 1);
    assert_eq!(manifest["source"]["has_audio"], false);
    let file = out.join("silent/silent.p144.mp4");
    assert_eq!(probe_value(&file, "v:0", "nb_read_packets"), Some(75.0));
    assert!(
        ffprobe(&file, "stream=codec_type", "a")?.trim().is_empty(),
        "no audio stream expected"
    );
    Ok(())
}

#[test]
fn two_pass_and_per_rung_mode_with_vp9_and_upscaled_always_rung() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("tiny.mp4");
    make_clip(&src, "192x108", 25, 3, Audio::Bursts)?;
    let wf = write_workflow(
        dir.path(),
        "twopass",
        "profiles:\n\
         - {name: x2, codec: h264, height: 144, always_encode: true, rate_control: two_pass, bitrate_kbps: 200, preset: ultrafast}\n\
         - {name: v9, codec: vp9, height: 144, always_encode: true, preset: '8'}\n",
    )?;
    std::fs::write(
        &wf,
        std::fs::read_to_string(&wf)?.replace("mode: ladder", "mode: per_rung"),
    )?;
    let out = dir.path().join("out");
    let trace = dir.path().join("trace.jsonl");
    spool()
        .args(["run", "--workflow"])
        .arg(&wf)
        .arg("--out")
        .arg(&out)
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--trace-commands")
        .arg(&trace)
        .arg(&src)
        .assert()
        .success();
    let h264 = out.join("tiny/tiny.x2.mp4");
    let vp9 = out.join("tiny/tiny.v9.webm");
    assert_eq!(
        probe_value(&h264, "v:0", "height"),
        Some(144.0),
        "always_encode rungs are upscaled"
    );
    assert_eq!(probe_value(&h264, "v:0", "nb_read_packets"), Some(75.0));
    assert_eq!(probe_value(&vp9, "v:0", "nb_read_packets"), Some(75.0));
    assert!(ffprobe(&vp9, "stream=codec_name", "a")?.contains("opus"));
    for file in [&h264, &vp9] {
        let bursts = burst_onsets(file)?;
        assert_eq!(bursts.len(), 3, "{file:?}: {bursts:?}");
        for (i, got) in bursts.iter().enumerate() {
            assert!(
                (got - i as f64).abs() <= 0.003,
                "{file:?}: burst {i} at {got}"
            );
        }
    }
    // Each 2-pass task ran pass 1 then pass 2 with its own passlog file.
    let trace = std::fs::read_to_string(&trace)?;
    let pass1: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(r#""-pass","1""#))
        .collect();
    assert!(pass1.len() >= 3, "one pass-1 run per chunk");
    let logs: std::collections::HashSet<String> = pass1
        .iter()
        .filter_map(|l| {
            l.split(r#""-passlogfile",""#)
                .nth(1)?
                .split('"')
                .next()
                .map(String::from)
        })
        .collect();
    assert_eq!(logs.len(), pass1.len(), "passlog files are unique per task");
    assert!(
        !trace.contains("split="),
        "per_rung mode runs one rung per ffmpeg"
    );
    Ok(())
}
