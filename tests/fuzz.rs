//! Property-based fuzzing (proptest; cargo-fuzz needs a nightly compiler) of the parsers that
//! take outside input: ffmpeg's progress stream, ffprobe JSON, workflow files, Lua replies.
//! Each runs a bounded number of cases (SPOOL_FUZZ_CASES, default 10000) in every test run.
//! Inputs are mutations of valid documents, so they reach deep into each parser.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use spool::media::probe::parse_probe_json;
use spool::media::progress::ProgressParser;

fn cases() -> u32 {
    std::env::var("SPOOL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// A valid document with random bytes replaced, inserted and deleted.
fn mutated(valid: &'static str) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 0..12);
    edits.prop_map(move |edits| {
        let mut chars: Vec<char> = valid.chars().collect();
        for (at, kind, c) in edits {
            if chars.is_empty() {
                chars.push(c);
                continue;
            }
            let i = at.index(chars.len());
            match kind {
                0 => chars[i] = c,
                1 => chars.insert(i, c),
                _ => {
                    chars.remove(i);
                }
            }
        }
        chars.into_iter().collect()
    })
}

const PROBE: &str = r#"{"streams":[
  {"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
   "avg_frame_rate":"30000/1001","pix_fmt":"yuv420p","field_order":"tt","start_time":"0.033",
   "nb_read_packets":"750","side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
  {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2}],
  "format":{"format_name":"mov,mp4","duration":"12.5","bit_rate":"800000"}}"#;

#[test]
fn ffprobe_json_never_panics() {
    let ok = std::cell::Cell::new(0u32);
    let result = runner().run(&mutated(PROBE), |text| {
        if let Ok(info) = parse_probe_json("x.mp4", &text) {
            ok.set(ok.get() + 1);
            prop_assert!(info.duration.is_finite() && info.duration >= 0.0);
            if let Some(v) = &info.video {
                prop_assert!(v.fps.as_f64().is_finite());
            }
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!("ffprobe JSON: {} cases, {} parsed", cases(), ok.get());
}

const PROGRESS: &str = "frame=120\nfps=59.94\nstream_0_0_q=23.0\nbitrate= 912.3kbits/s\n\
total_size=524288\nout_time_us=4004000\nout_time_ms=4004000\nout_time=00:00:04.004000\n\
dup_frames=0\ndrop_frames=0\nspeed=2.01x\nprogress=continue\n";

#[test]
fn progress_parser_never_panics_and_keeps_values_sane() {
    let result = runner().run(&mutated(PROGRESS), |text| {
        let mut p = ProgressParser::default();
        for line in text.lines() {
            if let Some(report) = p.feed_line(line) {
                prop_assert!(report.out_time_s.is_none_or(|t| t.is_finite() && t >= 0.0));
                prop_assert!(report.fps.is_none_or(f64::is_finite));
                prop_assert!(report.speed.is_none_or(f64::is_finite));
            }
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!("progress: {} cases", cases());
}

const WORKFLOW: &str =
    "version: 1\nname: w\nchunking: {segment_seconds: 4, min_duration_seconds: 10}\n\
encode: {mode: ladder, keyframe_interval_seconds: 2}\nretries: {max_attempts: 2}\n\
output: {naming: \"{stem}.{profile}.{ext}\"}\ngif: {enabled: true, width: 320}\n\
steps:\n- hls: {segment_seconds: 4}\n- thumbnails: {interval_seconds: 5}\n\
profiles:\n- {name: a, codec: h264, height: 240, crf: 23, preset: fast}\n\
- {name: b, codec: h265, height: 720, bitrate_kbps: 2000}\n\
webhooks:\n- {url: \"http://127.0.0.1:9/x\", events: [succeeded]}\n\
schedule: {windows: [{from: \"22:00\", to: \"07:00\", days: [mon]}]}\n";

#[test]
fn the_workflow_loader_never_panics_and_every_error_has_a_place() {
    let dir = std::path::Path::new(".");
    assert!(spool::workflow::load_str(WORKFLOW, "w.yaml", dir).is_ok());
    let valid = std::cell::Cell::new(0u32);
    let result = runner().run(&mutated(WORKFLOW), |text| {
        match spool::workflow::load_str(&text, "w.yaml", dir) {
            Ok(_) => valid.set(valid.get() + 1),
            Err(spool::workflow::WorkflowError::Invalid { errors, .. }) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(!e.message.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!("workflow loader: {} cases, {} valid", cases(), valid.get());
}

const REPLY: &str = "{ { name = 'a', codec = 'h264', height = 240, crf = 23, preset = 'fast' }, \
{ name = 'b', codec = 'vp9', height = 360, always_encode = true, rate_control = 'crf' } }";

#[test]
fn lua_replies_are_checked_without_panics() -> Result<(), Box<dyn std::error::Error>> {
    use spool::script::{Limits, ScriptHost};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("reply.lua");
    let checked = std::cell::Cell::new(0u32);
    // Fewer cases: each one builds a Lua state.
    let mut runner = TestRunner::new(Config {
        cases: cases() / 4,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&mutated(REPLY), |literal| {
        let source = format!("return {{ run = function() return {literal} end }}");
        let host = ScriptHost::load(&path, &source, dir.path(), Limits::default(), &[]);
        let Ok(host) = host else { return Ok(()) };
        match host.call::<i32, Vec<spool::workflow::Profile>>("run", &[0]) {
            Ok(_) => checked.set(checked.get() + 1),
            Err(e) => prop_assert!(e.to_string().contains("run")),
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!(
        "Lua replies: {} cases, {} deserialized",
        cases() / 4,
        checked.get()
    );
    Ok(())
}
