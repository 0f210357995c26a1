//! Quality targets, through `spool run` with real ffmpeg: the CRF follows the content, the
//! published outputs meet the target as an independent VMAF run measures them, probes are
//! never run twice, the size guard holds a rung back with its reason, and a workflow asking
//! for a metric this machine cannot measure is refused at validation.
//!
//! VMAF needs an ffmpeg with libvmaf: `SPOOL_METRICS_FFMPEG`, or the static ffmpeg of the
//! `imageio-ffmpeg` wheel that `.ci/setup` installs.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// testsrc2 at 320x180, 3 s; `noise` > 0 adds temporal grain (hard to compress).
fn source(path: &Path, noise: u32) -> Result<(), String> {
    let grain = match noise {
        0 => String::new(),
        n => format!(",noise=alls={n}:allf=t+u"),
    };
    let video = format!("testsrc2=s=320x180:r=25:d=3{grain}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:d=3",
        "-c:v",
        "libx264",
        "-crf",
        "8",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-shortest",
        path.to_str().unwrap_or_default(),
    ])
}

fn quality_workflow(dir: &Path, name: &str, rung: &str) -> Result<PathBuf, std::io::Error> {
    write_workflow(
        dir,
        name,
        &format!(
            "profiles:\n\
             - {{name: p180, codec: h264, height: 180, preset: veryfast, bitrate_kbps: 8000, {rung}}}\n"
        ),
    )
}

fn run_with_metrics(
    wf: &Path,
    dir: &Path,
    src: &Path,
    extra: &[&str],
) -> Result<Value, Box<dyn std::error::Error>> {
    let out = run_command(wf, dir)
        .env("SPOOL_METRICS_FFMPEG", metrics_ffmpeg()?)
        .args(extra)
        .arg(src)
        .assert()
        .success();
    let results = outcomes(&out.get_output().stdout);
    assert_eq!(results[0]["status"], "succeeded", "{results:?}");
    Ok(results[0].clone())
}

/// VMAF of `encoded` against `source`, every frame, both at `width`x`height`, measured here
/// (not by spool).
fn vmaf(
    encoded: &Path,
    source: &Path,
    (width, height): (u32, u32),
) -> Result<f64, Box<dyn std::error::Error>> {
    let side = format!(
        "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709,\
         scale={width}:{height}:flags=bicubic,format=yuv420p"
    );
    let graph = format!("[0:v]{side}[d];[1:v]{side}[r];[d][r]libvmaf");
    let out = std::process::Command::new(metrics_ffmpeg()?)
        .args(["-hide_banner", "-i"])
        .arg(encoded)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let score = text
        .lines()
        .find_map(|l| l.split("VMAF score: ").nth(1))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no VMAF score: {text}"))?;
    Ok(score)
}

fn manifest(dir: &Path, stem: &str) -> Result<Value, Box<dyn std::error::Error>> {
    read_json(&dir.join(format!("out/{stem}/manifest.json")))
}

fn chosen_crfs(m: &Value) -> Vec<u64> {
    m["quality"][0]["chunks"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["choice"]["crf"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_crf_follows_the_content_and_every_output_meets_the_target() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (easy, hard) = (dir.path().join("easy.mp4"), dir.path().join("hard.mp4"));
    source(&easy, 0)?;
    source(&hard, 30)?;
    let wf = quality_workflow(dir.path(), "q", "quality: {metric: vmaf, target: 93}")?;
    run_with_metrics(&wf, dir.path(), &easy, &[])?;
    run_with_metrics(&wf, dir.path(), &hard, &[])?;
    let (me, mh) = (manifest(dir.path(), "easy")?, manifest(dir.path(), "hard")?);
    let (ce, ch) = (chosen_crfs(&me), chosen_crfs(&mh));
    assert_eq!((ce.len(), ch.len()), (3, 3), "a CRF per chunk: {me} {mh}");
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    assert!(mean(&ce) >= mean(&ch) + 3.0, "easy {ce:?} vs hard {ch:?}");
    for (m, stem, src) in [(&me, "easy", &easy), (&mh, "hard", &hard)] {
        let out = &m["outputs"][0];
        assert_eq!(out["quality"]["metric"], "vmaf", "{m}");
        assert_eq!(out["quality"]["meets_target"], true, "{m}");
        let published = dir.path().join(format!("out/{stem}/{stem}.p180.mp4"));
        let measured = vmaf(&published, src, (320, 180))?;
        assert!(measured >= 92.0, "{stem}: independent VMAF {measured}");
        let chunks = m["quality"][0]["chunks"].as_array().ok_or("no chunks")?;
        for chunk in chunks {
            assert!(
                chunk["probes"].as_array().map_or(0, |p| p.len()) <= 4,
                "{chunk}"
            );
        }
        // The first chunk is searched from the codec's CRF, every other one from its choice.
        let first_choice = &chunks[0]["choice"]["crf"];
        assert_eq!(chunks[0]["probes"][0]["crf"], 23, "{m}");
        for chunk in &chunks[1..] {
            assert_eq!(&chunk["probes"][0]["crf"], first_choice, "{m}");
        }
    }
    // At fixed CRF 23 the easy source costs much more than at the target.
    let fixed_dir = dir.path().join("fixed");
    std::fs::create_dir_all(&fixed_dir)?;
    let fixed = quality_workflow(&fixed_dir, "fixed", "crf: 23")?;
    run_succeeds(&fixed, &fixed_dir, &easy)?;
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let at_target = size(dir.path().join("out/easy/easy.p180.mp4"));
    let at_23 = size(fixed_dir.join("out/easy/easy.p180.mp4"));
    assert!(
        (at_target as f64) < 0.9 * at_23 as f64,
        "at the target {at_target} bytes (CRFs {ce:?}), at CRF 23 {at_23}"
    );
    Ok(())
}

#[test]
fn rungs_of_different_sizes_share_one_scoring_run_each_round() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("clip.mp4");
    source(&src, 12)?;
    let target = "quality: {metric: vmaf, target: 93, scored_at: rung}";
    let wf = write_workflow(
        dir.path(),
        "sizes",
        &format!(
            "profiles:\n\
             - {{name: p144, codec: h264, height: 144, preset: veryfast, {target}}}\n\
             - {{name: p180, codec: h264, height: 180, preset: veryfast, {target}}}\n"
        ),
    )?;
    let trace = dir.path().join("trace.jsonl");
    run_with_metrics(
        &wf,
        dir.path(),
        &src,
        &["--trace-commands", trace.to_str().unwrap_or_default()],
    )?;
    let phases = traced_phases(&trace);
    let count = |phase: &str| phases.iter().filter(|p| *p == phase).count();
    // Each probe round (one ffmpeg for both rungs) is scored by one ffmpeg, and the published
    // rungs by one more: the source is decoded once per round, not once per rung.
    assert!(count("probe") >= 3, "{phases:?}");
    assert_eq!(count("score"), count("probe") + 1, "{phases:?}");
    let m = manifest(dir.path(), "clip")?;
    for (name, size) in [("p144", (256, 144)), ("p180", (320, 180))] {
        let out = m["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["profile"] == name))
            .ok_or_else(|| format!("no {name}: {m}"))?;
        assert_eq!(
            out["quality"]["display"],
            serde_json::json!([size.0, size.1])
        );
        // Each rung's log holds its own scores: spool's mean over every 5th frame agrees
        // with an independent run over every frame at the rung's size.
        let spool = out["quality"]["mean"].as_f64().ok_or("no mean")?;
        let published = dir.path().join(format!("out/clip/clip.{name}.mp4"));
        let measured = vmaf(&published, &src, size)?;
        assert!(
            (spool - measured).abs() < 1.5,
            "{name}: spool {spool}, measured here {measured}"
        );
    }
    Ok(())
}

#[test]
fn probes_are_cached_and_a_title_search_uses_one_crf() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("clip.mp4");
    source(&src, 10)?;
    let wf = quality_workflow(
        dir.path(),
        "t",
        "quality: {metric: ssim, target: 0.97, scope: title, probe_preset: ultrafast}",
    )?;
    let trace1 = dir.path().join("trace1.jsonl");
    run_with_metrics(
        &wf,
        dir.path(),
        &src,
        &["--trace-commands", trace1.to_str().unwrap_or_default()],
    )?;
    let m = manifest(dir.path(), "clip")?;
    let crfs = chosen_crfs(&m);
    assert_eq!(crfs.len(), 3, "{m}");
    assert!(
        crfs.iter().all(|c| *c == crfs[0]),
        "one CRF for the title: {crfs:?}"
    );
    assert!(
        !m["quality"][0]["sampled"]
            .as_array()
            .is_none_or(|s| s.is_empty()),
        "{m}"
    );
    let first = traced_phases(&trace1);
    assert!(first.iter().any(|p| p == "probe"), "{first:?}");
    assert!(first.iter().any(|p| p == "score"), "{first:?}");
    // Again, forced to encode: every probe is answered from the store.
    let trace2 = dir.path().join("trace2.jsonl");
    run_with_metrics(
        &wf,
        dir.path(),
        &src,
        &[
            "--force",
            "--trace-commands",
            trace2.to_str().unwrap_or_default(),
        ],
    )?;
    let second = traced_phases(&trace2);
    assert!(second.iter().any(|p| p == "encode"), "{second:?}");
    assert!(
        !second.iter().any(|p| p == "probe"),
        "probed again: {second:?}"
    );
    assert_eq!(chosen_crfs(&manifest(dir.path(), "clip")?), crfs);
    Ok(())
}

#[test]
fn the_size_guard_holds_back_a_rung_bigger_than_the_source() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("small.mp4");
    // A heavily compressed source: a near-lossless rung of it is bigger.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=2",
        "-c:v",
        "libx264",
        "-crf",
        "40",
        src.to_str().unwrap_or_default(),
    ])?;
    let wf = write_workflow(
        dir.path(),
        "g",
        "size_guard: {max_ratio: 1.0}\n\
         profiles:\n\
         - {name: big, codec: h264, height: 180, crf: 5, preset: ultrafast, bitrate_kbps: 20000}\n\
         - {name: small, codec: h264, height: 144, crf: 45, preset: ultrafast}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let m = manifest(dir.path(), "small")?;
    let names: Vec<&str> = m["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["profile"].as_str())
        .collect();
    assert_eq!(names, ["small"], "{m}");
    let skipped = m["skipped"].to_string();
    assert!(
        skipped.contains("big:") && skipped.contains("size_guard max_ratio 1"),
        "{skipped}"
    );
    assert!(!dir.path().join("out/small/small.big.mp4").exists());
    assert!(src.exists(), "the original stays");
    Ok(())
}

#[test]
fn asking_for_vmaf_without_libvmaf_is_a_validation_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = quality_workflow(dir.path(), "v", "quality: {metric: vmaf, target: 93}")?;
    // Debian's ffmpeg 5.1 has no libvmaf filter.
    let out = spool()
        .env("SPOOL_METRICS_FFMPEG", "/usr/bin/ffmpeg")
        .args(["validate"])
        .arg(&wf)
        .assert()
        .failure();
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(text.contains("profiles[0].quality.metric"), "{text}");
    assert!(
        text.contains("libvmaf") && text.contains("SPOOL_METRICS_FFMPEG"),
        "{text}"
    );
    // And crf with quality, or a target off the metric's scale, is refused too.
    let bad = quality_workflow(
        dir.path(),
        "b",
        "crf: 20, quality: {metric: ssim, target: 93}",
    )?;
    let out = spool().args(["validate"]).arg(&bad).assert().failure();
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        text.contains("either crf or quality") && text.contains("0..=1"),
        "{text}"
    );
    Ok(())
}
