//! HLS carries every kept stream: each audio track as an alternate rendition with its
//! language and name, text subtitles and the Whisper transcript as WebVTT renditions, all
//! in step with the picture as a player reads them from master.m3u8.

mod common;

use std::path::Path;

use common::sources::*;
use common::*;

/// `KEY="value"` or `KEY=value` of an `#EXT-X-MEDIA` line.
fn attr(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?.to_string(),
        None => rest.split(',').next()?.to_string(),
    })
}

fn media_lines(master: &str, kind: &str) -> Vec<String> {
    master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:") && l.contains(&format!("TYPE={kind},")))
        .map(String::from)
        .collect()
}

/// Cue start times of a subtitle rendition as a player places them: WebVTT time plus the
/// X-TIMESTAMP-MAP offset, from the first picture.
fn cue_starts(
    hls: &Path,
    line: &str,
    picture: f64,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let playlist = hls.join(attr(line, "URI").ok_or("no URI")?);
    let dir = playlist.parent().ok_or("no dir")?;
    let list = std::fs::read_to_string(&playlist)?;
    let vtt_name = list
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .ok_or("no segment")?;
    let vtt = std::fs::read_to_string(dir.join(vtt_name))?;
    let map = vtt
        .lines()
        .find(|l| l.starts_with("X-TIMESTAMP-MAP="))
        .ok_or("no X-TIMESTAMP-MAP")?;
    let mpegts: f64 = map
        .split("MPEGTS:")
        .nth(1)
        .and_then(|v| v.split(',').next()?.parse().ok())
        .ok_or("bad MPEGTS")?;
    let seconds = |t: &str| -> Option<f64> {
        let parts: Vec<f64> = t
            .split(':')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        Some(parts.iter().fold(0.0, |acc, p| acc * 60.0 + p))
    };
    Ok(vtt
        .lines()
        .filter_map(|l| l.split_once(" --> "))
        .filter_map(|(start, _)| seconds(start.trim()))
        .map(|t| t + mpegts / 90_000.0 - picture)
        .collect())
}

#[test]
fn every_audio_track_and_subtitle_is_a_rendition_in_step_with_the_picture() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = film(dir.path())?;
    let wf = write_workflow(
        dir.path(),
        "hls",
        "steps:\n- hls: {segment_seconds: 2}\nprofiles:\n\
         - {name: p144, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
         - {name: p180, codec: h264, height: 180, always_encode: true, preset: fast}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let hls = dir.path().join("out/film/hls");
    let master_path = hls.join("master.m3u8");
    let master = std::fs::read_to_string(&master_path)?;

    let audio = media_lines(&master, "AUDIO");
    let described: Vec<_> = audio
        .iter()
        .map(|l| {
            (
                attr(l, "LANGUAGE"),
                attr(l, "NAME"),
                attr(l, "DEFAULT"),
                attr(l, "AUTOSELECT"),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        described,
        [
            (s("eng"), s("English"), s("YES"), s("YES")),
            (s("fra"), s("Français"), s("NO"), s("YES")),
            (s("ger"), s("Deutsch"), s("NO"), s("YES")),
        ],
        "{master}"
    );
    // A player reading the master: every audio rendition's bursts where the source has them.
    for track in 0..3 {
        let want = bursts_from_picture(&src, track)?;
        let got = bursts_from_picture(&master_path, track)?;
        assert_eq!(got.len(), want.len(), "a:{track}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 0.002,
                "a:{track}: burst at {g:.4}, source {w:.4}"
            );
        }
    }

    let subs = media_lines(&master, "SUBTITLES");
    assert_eq!(subs.len(), 2, "{master}");
    assert_eq!(attr(&subs[0], "LANGUAGE").as_deref(), Some("eng"));
    assert_eq!(attr(&subs[1], "LANGUAGE").as_deref(), Some("fra"));
    assert_eq!(attr(&subs[1], "FORCED").as_deref(), Some("YES"));
    assert!(
        master.contains("SUBTITLES=\"subs\""),
        "variants name the group: {master}"
    );
    let picture = first_frame(&master_path, "v:0")?;
    for (k, line) in subs.iter().enumerate() {
        let want = subtitle_times(&src, k)?;
        let got = cue_starts(&hls, line, picture)?;
        assert_eq!(got.len(), want.len(), "s:{k}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 0.002,
                "s:{k}: cue at {g:.4}, source {w:.4}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_whisper_transcript_is_a_subtitle_rendition() -> TestResult {
    let model = whisper_model()?;
    let dir = tempfile::tempdir()?;
    let speech = dir.path().join("speech.wav");
    say("The quick brown fox jumps over the lazy dog.", &speech)?;
    let src = dir.path().join("talk.mp4");
    let (speech_s, src_s) = (speech.display().to_string(), src.display().to_string());
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=128x72:r=10:d=6",
        "-i",
        &speech_s,
        "-filter_complex",
        "[1]adelay=1000,aresample=48000,apad=whole_dur=6[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "10",
        "-c:a",
        "aac",
        &src_s,
    ])?;
    let wf = write_workflow(
        dir.path(),
        "captions",
        &format!(
            "steps:\n- transcribe: {{model: {}, beam_size: 2, threads: 2}}\n- hls: {{segment_seconds: 2}}\n\
             profiles:\n- {{name: p72, codec: h264, height: 144, always_encode: true, preset: ultrafast}}\n",
            model.display()
        ),
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let hls = dir.path().join("out/talk/hls");
    let master_path = hls.join("master.m3u8");
    let master = std::fs::read_to_string(&master_path)?;
    let subs = media_lines(&master, "SUBTITLES");
    assert_eq!(subs.len(), 1, "{master}");
    assert_eq!(attr(&subs[0], "LANGUAGE").as_deref(), Some("en"));
    assert_eq!(attr(&subs[0], "NAME").as_deref(), Some("en (transcript)"));
    let picture = first_frame(&master_path, "v:0")?;
    let cues = cue_starts(&hls, &subs[0], picture)?;
    assert!(!cues.is_empty());
    // The speech starts at 1 s: the first cue is near it, on the presentation's timeline.
    assert!(
        (0.4..2.0).contains(&cues[0]),
        "first cue at {:.3}s",
        cues[0]
    );
    let published = std::fs::read_to_string(dir.path().join("out/talk/talk.en.vtt"))?;
    let first_published = published
        .lines()
        .find_map(|l| l.split_once(" --> "))
        .map(|(s, _)| s.trim().to_string())
        .ok_or("no cue in talk.en.vtt")?;
    assert!(
        std::fs::read_to_string(hls.join("transcript-en/subtitles.vtt"))?
            .contains(&first_published)
    );
    Ok(())
}
