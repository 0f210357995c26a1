//! HLS packaging end to end: playlists parse, segment durations add up to the source,
//! the master lists every rung with BANDWIDTH/RESOLUTION/CODECS, and ffmpeg plays the
//! master from start to end as a player would.

mod common;

use std::path::Path;

use common::sources::first_frame;
use common::*;
use spool::media::hls::parse_media_playlist;

/// Decodes the master playlist's best variant with its audio; returns (frames, seconds).
fn play(master: &Path) -> Result<(u64, f64), String> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(master)
        .output()
        .map_err(|e| e.to_string())?;
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .max()
        .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(master)
        .args(["-map", "0:v:0", "-map", "0:a:0?", "-f", "null", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    if !decoded.status.success() || !decoded.stderr.is_empty() {
        return Err(format!(
            "ffmpeg: {}",
            String::from_utf8_lossy(&decoded.stderr)
        ));
    }
    // The audio rendition's length, in decoded samples.
    let pcm = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(master)
        .args([
            "-map", "0:a:0?", "-ac", "1", "-ar", "8000", "-f", "s16le", "-",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    Ok((frames, pcm.stdout.len() as f64 / 2.0 / 8000.0))
}

#[test]
fn the_web_hls_example_packages_every_rung_and_plays_to_the_end() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("talk.mp4");
    make_clip(&src, "320x180", 25, 8, Audio::Bursts)?;
    run_succeeds(Path::new("workflows/web-hls.yaml"), dir.path(), &src)?;
    let hls = dir.path().join("out/talk/hls");
    let master = std::fs::read_to_string(hls.join("master.m3u8"))?;
    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(variants.len(), 2, "240p and 360p: {master}");
    for v in &variants {
        for attr in [
            "BANDWIDTH=",
            "AVERAGE-BANDWIDTH=",
            "RESOLUTION=",
            "CODECS=\"avc1.",
            "mp4a.40.2",
            "AUDIO=\"audio\"",
        ] {
            assert!(v.contains(attr), "{attr} missing in {v}");
        }
    }
    assert!(master.contains("RESOLUTION=426x240") && master.contains("RESOLUTION=640x360"));
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO"));
    for list in ["h264-240p", "h264-360p", "audio"] {
        let text = std::fs::read_to_string(hls.join(list).join("index.m3u8"))?;
        let p = parse_media_playlist(&text)?;
        assert!(p.ended && p.init.is_some(), "{list}");
        assert!(
            (p.duration() - 8.0).abs() < 0.05,
            "{list}: {}",
            p.duration()
        );
        if list != "audio" {
            // 6 s segments on 2 s keyframes: 6 + 2.
            let lengths: Vec<f64> = p.segments.iter().map(|s| s.0).collect();
            assert_eq!(lengths.len(), 2, "{lengths:?}");
            assert!((lengths[0] - 6.0).abs() < 0.01, "{lengths:?}");
        }
    }
    let (frames, audio_s) = play(&hls.join("master.m3u8"))?;
    assert_eq!(frames, 200, "every frame of the source plays");
    assert!((audio_s - 8.0).abs() < 0.1, "audio plays {audio_s}s");
    let manifest = read_json(&dir.path().join("out/talk/manifest.json"))?;
    assert_eq!(
        manifest["steps"]["hls"]["variants"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    Ok(())
}

#[test]
fn mpegts_segments_and_silent_sources_work_too() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("silent.mp4");
    make_clip(&src, "256x144", 25, 4, Audio::None)?;
    let wf = write_workflow(
        dir.path(),
        "ts",
        "steps:\n- hls: {segment_seconds: 2, segment_type: mpegts}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let hls = dir.path().join("out/silent/hls");
    let p = parse_media_playlist(&std::fs::read_to_string(hls.join("p144/index.m3u8"))?)?;
    assert!(p.init.is_none() && p.segments.iter().all(|s| s.1.ends_with(".ts")));
    assert_eq!(p.segments.len(), 2);
    let master = std::fs::read_to_string(hls.join("master.m3u8"))?;
    assert!(
        !master.contains("AUDIO") && master.contains("CODECS=\"avc1."),
        "{master}"
    );
    assert_eq!(play(&hls.join("master.m3u8"))?.0, 100);
    Ok(())
}

#[test]
fn hls_settings_are_checked_against_the_keyframes_and_codecs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = write_workflow(
        dir.path(),
        "bad",
        "steps:\n- hls: {segment_seconds: 1.5}\nprofiles:\n- {name: v, codec: vp9, height: 144}\n",
    )?;
    let out = spool().arg("validate").arg(&wf).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("steps[0].hls.segment_seconds") && stderr.contains("not a multiple"),
        "{stderr}"
    );
    assert!(stderr.contains("h264 and h265 rungs only"), "{stderr}");
    Ok(())
}

/// The first video frame's time and the first audio frame's time of `media`, as decoded.
fn first_times(media: &Path) -> Result<(f64, f64), String> {
    Ok((first_frame(media, "v:0")?, first_frame(media, "a:0")?))
}

/// Where the picture starts and where each tone burst starts, in seconds from the start of
/// the presentation (the earliest first frame, which a player takes as time 0).
fn timeline(media: &Path) -> Result<(f64, Vec<f64>), Box<dyn std::error::Error>> {
    let (video, audio) = first_times(media)?;
    let start = video.min(audio);
    let bursts = burst_onsets(media)?
        .into_iter()
        .map(|t| audio + t - start)
        .collect();
    Ok((video - start, bursts))
}

/// A playlist of one variant with the master's audio rendition, so ffmpeg decodes exactly
/// what a player choosing that variant gets.
fn single_variant(master: &Path, variant: &str) -> Result<std::path::PathBuf, std::io::Error> {
    let text = std::fs::read_to_string(master)?;
    let mut lines: Vec<&str> = Vec::new();
    let mut keep_next = true;
    for line in text.lines() {
        if line.starts_with("#EXT-X-STREAM-INF") {
            keep_next = false;
            continue;
        }
        if !keep_next {
            keep_next = true;
            if line.starts_with(variant) {
                let inf = text
                    .lines()
                    .take_while(|l| *l != line)
                    .last()
                    .unwrap_or_default();
                lines.push(inf);
                lines.push(line);
            }
            continue;
        }
        lines.push(line);
    }
    let path = master.with_file_name(format!("only-{variant}.m3u8"));
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(path)
}

#[test]
fn picture_and_sound_stay_together_through_master_m3u8() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Two rungs with different B-frame delays (veryfast has B-frames, ultrafast none), each
    // source starting at 0 and at 1.5 s, packaged as fMP4 and as TS.
    let profiles = "profiles:\n\
        - {name: p144, codec: h264, height: 144, always_encode: true, preset: veryfast}\n\
        - {name: p180, codec: h264, height: 180, always_encode: true, preset: ultrafast}\n";
    for start in ["0", "1.5"] {
        // Bursts half a second into each second, so none sits on the stream's first
        // audio frame (AAC's first frame is attenuated, which is not drift); the offset is
        // set while encoding, as a capture's would be.
        let src = dir.path().join(format!("src-{start}.mp4"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=25:d=8",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.5*sin(2*PI*1000*t)*between(mod(t\\,1)\\,0.5\\,0.6):s=48000:d=8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-output_ts_offset",
            start,
            &src.display().to_string(),
        ])?;
        let (src_picture, src_bursts) = timeline(&src)?;
        assert_eq!(src_bursts.len(), 8, "the source has a burst every second");
        for kind in ["fmp4", "mpegts"] {
            let name = format!("{kind}-{}", start.replace('.', "_"));
            let wf = write_workflow(
                dir.path(),
                &name,
                &format!("steps:\n- hls: {{segment_seconds: 2, segment_type: {kind}}}\n{profiles}"),
            )?;
            let run = dir.path().join(&name);
            run_succeeds(&wf, &run, &src)?;
            let master = run.join(format!("out/src-{start}/hls/master.m3u8"));
            for variant in ["p144", "p180"] {
                let only = single_variant(&master, variant)?;
                let (picture, bursts) = timeline(&only)?;
                let at = format!("{name} {variant}");
                assert!(
                    picture <= 0.040 + 1e-6,
                    "{at}: the picture starts {:.1} ms into the presentation",
                    picture * 1000.0
                );
                assert_eq!(bursts.len(), src_bursts.len(), "{at}: {bursts:?}");
                for (i, (got, want)) in bursts.iter().zip(&src_bursts).enumerate() {
                    // Each burst against the first picture, as in the source.
                    let drift = (got - picture) - (want - src_picture);
                    assert!(
                        drift.abs() <= 0.002,
                        "{at}: burst {i} is {:+.1} ms off the picture",
                        drift * 1000.0
                    );
                }
            }
        }
    }
    Ok(())
}
