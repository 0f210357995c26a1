//! Nothing in the source is lost: every audio track, subtitle, chapter, tag and font, in
//! MP4, WebM and MKV outputs, or dropped on purpose with the reason written down.

mod common;

use std::path::Path;

use common::sources::*;
use common::*;
use serde_json::Value;

const THREE_CONTAINERS: &str = "profiles:\n\
  - {name: mp4, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
  - {name: webm, codec: vp9, height: 144, always_encode: true}\n\
  - {name: mkv, codec: h264, height: 144, always_encode: true, preset: ultrafast, container: mkv, audio_channels: keep}\n";

fn streams_of<'a>(probe: &'a Value, kind: &str) -> Vec<&'a Value> {
    probe["streams"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["codec_type"] == kind).collect())
        .unwrap_or_default()
}

fn tag<'a>(stream: &'a Value, name: &str) -> Option<&'a str> {
    let tags = stream["tags"].as_object()?;
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// A track's name: its title, or in MP4 its handler name.
fn name(stream: &Value) -> Option<&str> {
    tag(stream, "title").or_else(|| tag(stream, "handler_name"))
}

fn close(got: &[f64], want: &[f64], within: f64) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() <= within)
}

/// Chapter starts from the first picture (MP4's first chapter starts at zero).
fn chapters(media: &Path, probe: &Value) -> Result<Vec<(f64, String)>, String> {
    let picture = first_frame(media, "v:0")?;
    Ok(probe["chapters"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    let start: f64 = c["start_time"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(-1.0);
                    (start - picture, tag(c, "title").unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default())
}

#[test]
fn every_track_subtitle_chapter_tag_and_font_survives_in_mp4_webm_and_mkv() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = film(dir.path())?;
    let wf = write_workflow(dir.path(), "film", THREE_CONTAINERS)?;
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/film");
    let source = probe_all(&src)?;
    let src_chapters = chapters(&src, &source)?;
    let src_subs = [subtitle_times(&src, 0)?, subtitle_times(&src, 1)?];
    assert_eq!(src_subs[0].len(), 2, "the source's SRT cues: {src_subs:?}");
    let manifest = read_json(&out.join("manifest.json"))?;
    let cases = [
        ("film.mp4.mp4", ["mov_text", "mov_text"], [1, 1, 2]),
        ("film.webm.webm", ["webvtt", "webvtt"], [1, 1, 2]),
        ("film.mkv.mkv", ["subrip", "ass"], [1, 1, 2]),
    ];
    for (file, sub_codecs, channels) in cases {
        let path = out.join(file);
        let probe = probe_all(&path)?;
        let audio = streams_of(&probe, "audio");
        let langs: Vec<_> = audio.iter().map(|a| tag(a, "language")).collect();
        assert_eq!(langs, [Some("eng"), Some("fra"), Some("ger")], "{file}");
        let names: Vec<_> = audio.iter().map(|a| name(a)).collect();
        assert_eq!(
            names,
            [Some("English"), Some("Français"), Some("Deutsch")],
            "{file}"
        );
        let defaults: Vec<_> = audio
            .iter()
            .map(|a| a["disposition"]["default"].as_i64())
            .collect();
        assert_eq!(
            defaults,
            [Some(1), Some(0), Some(0)],
            "{file}: one default, the source's"
        );
        let got_channels: Vec<_> = audio
            .iter()
            .map(|a| a["channels"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(got_channels, channels, "{file}");

        // Each track in sync with the picture as in the source, bursts within 2 ms.
        for track in 0..3 {
            let want = bursts_from_picture(&src, track)?;
            let got = bursts_from_picture(&path, track)?;
            assert_eq!(want.len(), 8, "source track {track}: {want:?}");
            assert!(
                close(&got, &want, 0.002),
                "{file} a:{track}: {got:?} vs {want:?}"
            );
        }

        let subs = streams_of(&probe, "subtitle");
        let codecs: Vec<_> = subs
            .iter()
            .map(|s| s["codec_name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(codecs, sub_codecs, "{file}");
        let sub_langs: Vec<_> = subs.iter().map(|s| tag(s, "language")).collect();
        assert_eq!(sub_langs, [Some("eng"), Some("fra")], "{file}");
        let forced: Vec<_> = subs
            .iter()
            .map(|s| s["disposition"]["forced"].as_i64())
            .collect();
        assert_eq!(forced, [Some(0), Some(1)], "{file}");
        for (track, want) in src_subs.iter().enumerate() {
            let got = subtitle_times(&path, track)?;
            assert!(
                close(&got, want, 0.002),
                "{file} s:{track}: {got:?} vs {want:?}"
            );
        }

        let got_chapters = chapters(&path, &probe)?;
        assert_eq!(got_chapters.len(), 2, "{file}: {got_chapters:?}");
        for (i, ((got, title), (want, want_title))) in
            got_chapters.iter().zip(&src_chapters).enumerate()
        {
            assert_eq!(title, want_title, "{file}");
            // A chapter before the first picture may start with it instead (MP4's first does).
            let at_start = i == 0 && *want <= 0.0 && got.abs() <= 0.002;
            assert!(
                (got - want).abs() <= 0.002 || at_start,
                "{file}: chapter {title} at {got}, source {want}"
            );
        }
        assert_eq!(tag(&probe["format"], "title"), Some("Test Movie"), "{file}");

        let fonts = streams_of(&probe, "attachment");
        let entry = manifest["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["path"] == file))
            .ok_or("output missing from the manifest")?;
        let listed = entry["streams"].as_array().ok_or("no streams listed")?;
        assert_eq!(
            listed.len(),
            6,
            "{file}: video, 3 audio, 2 subtitles: {listed:?}"
        );
        assert_eq!(listed[2]["language"], "fra", "{file}");
        let dropped = manifest["dropped"].as_array().cloned().unwrap_or_default();
        let font_dropped = dropped.iter().any(|d| {
            d["kind"] == "attachment" && d["output"] == file.split('.').nth(1).unwrap_or("")
        });
        if file.ends_with(".mkv") {
            assert_eq!(fonts.len(), 1, "the ASS font is kept in mkv");
            assert_eq!(tag(fonts[0], "filename"), Some("DejaVuSans.ttf"));
            assert!(!font_dropped);
        } else {
            assert!(fonts.is_empty());
            assert!(
                font_dropped,
                "{file}: the font is dropped with a reason: {dropped:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn streams_rules_keep_only_what_they_name_and_record_the_rest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = film(dir.path())?;
    // `fre` and `de` are the same languages as the file's `fra` and `ger`.
    let wf = write_workflow(
        dir.path(),
        "picky",
        "streams:\n  audio: {languages: [fre, de]}\n  subtitles: {languages: [fr]}\n  \
         chapters: drop\n  metadata: drop\nprofiles:\n\
         - {name: mp4, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/film");
    let path = out.join("film.mp4.mp4");
    let probe = probe_all(&path)?;
    let audio = streams_of(&probe, "audio");
    let langs: Vec<_> = audio.iter().map(|a| tag(a, "language")).collect();
    assert_eq!(langs, [Some("fra"), Some("ger")]);
    let defaults: Vec<_> = audio
        .iter()
        .map(|a| a["disposition"]["default"].as_i64())
        .collect();
    assert_eq!(
        defaults,
        [Some(1), Some(0)],
        "the first kept track becomes the default"
    );
    for (track, src_track) in [(0, 1), (1, 2)] {
        let want = bursts_from_picture(&src, src_track)?;
        let got = bursts_from_picture(&path, track)?;
        assert!(
            close(&got, &want, 0.002),
            "a:{track} is the source's a:{src_track}: {got:?} vs {want:?}"
        );
    }
    let subs = streams_of(&probe, "subtitle");
    assert_eq!(subs.len(), 1);
    assert_eq!(tag(subs[0], "language"), Some("fra"));
    assert!(
        probe["chapters"].as_array().is_none_or(|c| c.is_empty()),
        "chapters dropped"
    );
    assert_eq!(tag(&probe["format"], "title"), None, "metadata dropped");

    let manifest = read_json(&out.join("manifest.json"))?;
    let dropped = manifest["dropped"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<String> = dropped
        .iter()
        .map(|d| format!("{} {} {}", d["kind"], d["language"], d["reason"]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("audio") && r.contains("eng") && r.contains("streams.audio")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("subtitle")
            && r.contains("eng")
            && r.contains("streams.subtitles")),
        "{reasons:?}"
    );
    Ok(())
}

#[test]
fn a_bitmap_subtitle_is_kept_in_mkv_and_dropped_from_mp4_with_its_reason() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = film_with_pgs(dir.path())?;
    let wf = write_workflow(
        dir.path(),
        "pgs",
        "profiles:\n\
         - {name: mp4, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n\
         - {name: mkv, codec: h264, height: 144, always_encode: true, preset: ultrafast, container: mkv}\n",
    )?;
    let plan = spool()
        .args(["plan", "--workflow"])
        .arg(&wf)
        .arg(&src)
        .assert()
        .success();
    let printed = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    let line = printed
        .lines()
        .find(|l| l.contains("dropped") && l.contains("hdmv_pgs_subtitle"))
        .ok_or_else(|| format!("spool plan does not show the dropped PGS:\n{printed}"))?;
    assert!(line.contains("mp4") && line.contains("bitmap"), "{line}");

    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/film-pgs");
    let mkv = probe_all(&out.join("film-pgs.mkv.mkv"))?;
    let codecs: Vec<_> = streams_of(&mkv, "subtitle")
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(codecs, ["subrip", "ass", "hdmv_pgs_subtitle"]);
    let mp4 = probe_all(&out.join("film-pgs.mp4.mp4"))?;
    assert_eq!(
        streams_of(&mp4, "subtitle").len(),
        2,
        "the two text tracks, as mov_text"
    );
    let manifest = read_json(&out.join("manifest.json"))?;
    let pgs: Vec<&Value> = manifest["dropped"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter(|d| d["codec"] == "hdmv_pgs_subtitle")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pgs.len(), 1, "{manifest}");
    assert_eq!(pgs[0]["output"], "mp4");
    assert_eq!(pgs[0]["language"], "eng");
    assert!(pgs[0]["reason"].as_str().unwrap_or("").contains("bitmap"));
    Ok(())
}

#[test]
fn a_typo_in_a_streams_rule_is_reported_at_its_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wf = write_workflow(
        dir.path(),
        "typos",
        "streams:\n  audio: {languges: [eng]}\n  subtitles: alll\n  chapters: kep\n",
    )?;
    let bad = dir.path().join("bad-lang.yaml");
    std::fs::write(
        &bad,
        "version: 1\nname: bad\nstreams:\n  audio: {languages: [english]}\nprofiles:\n\
         - {name: p, codec: h264, height: 144}\n",
    )?;
    let out = spool()
        .arg("validate")
        .arg(&wf)
        .arg(&bad)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    for want in [
        "typos.yaml:7:3: streams.audio",
        "languges",
        "typos.yaml:8:3: streams.subtitles",
        "alll",
        "typos.yaml:9:3: streams.chapters",
        "bad-lang.yaml:4:23: streams.audio.languages[0]",
        "an ISO 639 code",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    Ok(())
}

#[test]
fn a_plan_hook_can_choose_the_streams() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = film(dir.path())?;
    std::fs::write(
        dir.path().join("pick.lua"),
        "local M = {}\nfunction M.plan(media, plan)\n  \
         if #media.audio > 1 then plan.streams.audio = { languages = { media.audio[2].language } } end\n  \
         plan.streams.subtitles = 'none'\n  return plan\nend\nreturn M\n",
    )?;
    let wf = write_workflow(
        dir.path(),
        "hooked",
        "script: {path: pick.lua, hooks: [plan]}\nprofiles:\n\
         - {name: mp4, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let probe = probe_all(&dir.path().join("out/film/film.mp4.mp4"))?;
    let langs: Vec<_> = streams_of(&probe, "audio")
        .iter()
        .map(|a| tag(a, "language"))
        .collect();
    assert_eq!(langs, [Some("fra")]);
    assert!(streams_of(&probe, "subtitle").is_empty());
    Ok(())
}
