//! `ladder: per_title` through `spool run` with real ffmpeg and libvmaf: every candidate is
//! sampled at every CRF, the manifest shows the points, the hull (checked here against its
//! definition, not spool's code) and the rungs chosen from it; exactly those rungs are
//! published, at the chosen heights and CRFs; a second run samples nothing; `spool plan`
//! says what it will sample; bad per-title settings are refused all at once.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// testsrc2 at 640x360 with grain, 3 s: three 1 s chunks.
fn source(path: &Path) -> Result<(), String> {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=640x360:r=25:d=3,noise=alls=12:allf=t+u",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        path.to_str().unwrap_or_default(),
    ])
}

fn per_title_workflow(dir: &Path) -> Result<std::path::PathBuf, std::io::Error> {
    write_workflow(
        dir,
        "pt",
        "ladder: per_title\n\
         per_title: {metric: vmaf, crfs: [20, 30, 40], rungs: 2, min_score: 30, top_score: 97}\n\
         profiles:\n\
         - {name: p360, codec: h264, height: 360, preset: veryfast}\n\
         - {name: p240, codec: h264, height: 240, preset: veryfast}\n\
         - {name: p144, codec: h264, height: 144, preset: veryfast}\n",
    )
}

#[derive(Debug, Clone)]
struct Point {
    profile: String,
    height: u64,
    crf: u64,
    kbps: f64,
    score: f64,
    on_hull: bool,
    chosen: bool,
}

fn points(m: &Value) -> Vec<Point> {
    m["per_title"]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Point {
            profile: p["profile"].as_str().unwrap_or_default().to_string(),
            height: p["height"].as_u64().unwrap_or(0),
            crf: p["crf"].as_u64().unwrap_or(0),
            kbps: p["kbps"].as_f64().unwrap_or(f64::NAN),
            score: p["score"].as_f64().unwrap_or(f64::NAN),
            on_hull: p["on_hull"].as_bool().unwrap_or(false),
            chosen: p["chosen"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// The definition: on the upper hull when no other point is at least as good for no more
/// bits, and no chord between a cheaper and a dearer point passes on or above it.
fn on_hull_by_definition(p: &Point, all: &[Point]) -> bool {
    let beaten = all.iter().any(|q| {
        !std::ptr::eq(p, q)
            && q.kbps <= p.kbps
            && q.score >= p.score
            && (q.kbps < p.kbps || q.score > p.score)
    });
    let under_a_chord = all.iter().any(|a| {
        all.iter().any(|b| {
            a.kbps < p.kbps && p.kbps < b.kbps && {
                let at = a.score + (b.score - a.score) * (p.kbps - a.kbps) / (b.kbps - a.kbps);
                at >= p.score
            }
        })
    });
    !beaten && !under_a_chord
}

/// The CRF x264 wrote into the stream's settings (its SEI text, e.g. "crf=30.0").
fn x264_crf(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let at = text.find(" crf=")? + 5;
    text[at..].split('.').next()?.parse().ok()
}

#[test]
fn a_per_title_ladder_takes_its_rungs_from_the_hull() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("grain.mp4");
    source(&src)?;
    let wf = per_title_workflow(dir.path())?;

    // spool plan says what a run will sample.
    let plan = spool()
        .env("SPOOL_METRICS_FFMPEG", metrics_ffmpeg()?)
        .args(["plan", "--workflow"])
        .arg(&wf)
        .arg(&src)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        text.contains("per-title ladder") && text.contains("p144, p240, p360"),
        "{text}"
    );

    let trace1 = dir.path().join("trace1.jsonl");
    let out = run_command(&wf, dir.path())
        .env("SPOOL_METRICS_FFMPEG", metrics_ffmpeg()?)
        .args(["--trace-commands", trace1.to_str().unwrap_or_default()])
        .arg(&src)
        .assert()
        .success();
    assert_eq!(outcomes(&out.get_output().stdout)[0]["status"], "succeeded");
    let m = read_json(&dir.path().join("out/grain/manifest.json"))?;
    let all = points(&m);
    assert_eq!(all.len(), 9, "3 candidates × 3 CRFs: {m}");
    for p in &all {
        assert!(p.kbps > 0.0 && (0.0..=100.0).contains(&p.score), "{p:?}");
        assert_eq!(
            p.on_hull,
            on_hull_by_definition(p, &all),
            "{p:?} in {all:#?}"
        );
    }
    // Within a candidate, more bits never score less.
    for name in ["p360", "p240", "p144"] {
        let mut of: Vec<&Point> = all.iter().filter(|p| p.profile == name).collect();
        of.sort_by_key(|p| p.crf);
        assert!(of.windows(2).all(|w| w[0].kbps > w[1].kbps), "{of:?}");
    }
    let chosen: Vec<&Point> = all.iter().filter(|p| p.chosen).collect();
    assert!(
        !chosen.is_empty() && chosen.len() <= 2,
        "at most 2 rungs: {chosen:?}"
    );
    assert!(chosen.iter().all(|p| p.on_hull), "{chosen:?}");
    let mut names: Vec<&str> = chosen.iter().map(|p| p.profile.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), chosen.len(), "one rung per profile");

    // Exactly the chosen rungs are published, at their heights and CRFs.
    let mut published: Vec<String> = m["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["profile"].as_str().map(String::from))
        .collect();
    published.sort_unstable();
    assert_eq!(published, names, "{m}");
    for p in &chosen {
        // Each published rung scored again, whole: the samples foretold it within 2 points.
        let out = m["outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["profile"] == p.profile.as_str())
            .ok_or("no output")?;
        let measured = out["quality"]["mean"].as_f64().unwrap_or(f64::NAN);
        assert_eq!(out["quality"]["target"].as_f64(), Some(p.score), "{out}");
        assert!(
            (measured - p.score).abs() <= 2.0,
            "{} measured {measured}, sampled {}",
            p.profile,
            p.score
        );
        let file = dir
            .path()
            .join(format!("out/grain/grain.{}.mp4", p.profile));
        let height = probe_value(&file, "v:0", "height");
        assert_eq!(height, Some(p.height as f64), "{}", file.display());
        assert_eq!(x264_crf(&file), Some(p.crf), "{}", file.display());
    }
    for p in all.iter().filter(|p| !names.contains(&p.profile.as_str())) {
        let file = dir
            .path()
            .join(format!("out/grain/grain.{}.mp4", p.profile));
        assert!(!file.exists(), "{} was not chosen", file.display());
    }

    // Forced again: every sample comes from the store, and the same rungs are chosen.
    let trace2 = dir.path().join("trace2.jsonl");
    run_command(&wf, dir.path())
        .env("SPOOL_METRICS_FFMPEG", metrics_ffmpeg()?)
        .args([
            "--force",
            "--trace-commands",
            trace2.to_str().unwrap_or_default(),
        ])
        .arg(&src)
        .assert()
        .success();
    let (first, second) = (traced_phases(&trace1), traced_phases(&trace2));
    assert_eq!(
        first.iter().filter(|p| *p == "probe").count(),
        9,
        "one probe ffmpeg per sampled chunk and candidate: {first:?}"
    );
    assert!(!second.iter().any(|p| p == "probe"), "{second:?}");
    let again = read_json(&dir.path().join("out/grain/manifest.json"))?;
    let chosen_again: Vec<(String, u64)> = points(&again)
        .into_iter()
        .filter(|p| p.chosen)
        .map(|p| (p.profile, p.crf))
        .collect();
    let chosen_first: Vec<(String, u64)> =
        chosen.iter().map(|p| (p.profile.clone(), p.crf)).collect();
    assert_eq!(chosen_again, chosen_first);
    Ok(())
}

#[test]
fn bad_per_title_settings_are_refused_together() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = write_workflow(
        dir.path(),
        "bad",
        "ladder: per_title\n\
         per_title: {metric: ssim, crfs: [20, 99], min_score: 0.99, top_score: 0.95}\n\
         profiles:\n\
         - {name: a, codec: h264, height: 240, crf: 23}\n\
         - {name: b, codec: vp9, height: 144}\n",
    )?;
    let out = spool().args(["validate"]).arg(&wf).assert().failure();
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for needle in [
        "profiles[0].crf",
        "profiles[1].codec",
        "per_title.crfs[1]",
        "per_title.min_score",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    // Settings without the ladder that uses them.
    let stray = write_workflow(dir.path(), "stray", "per_title: {rungs: 2}\n")?;
    let out = spool().args(["validate"]).arg(&stray).assert().failure();
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(text.contains("ladder: per_title"), "{text}");
    Ok(())
}
