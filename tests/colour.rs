//! Colour is right: HDR tone-mapped to SDR BT.709 for H.264, kept at 10 bits with its tags
//! and mastering metadata for HEVC and AV1, never an 8-bit output tagged PQ or HLG.

mod common;

use std::path::Path;

use common::sources::*;
use common::*;
use serde_json::Value;

fn video(media: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let probe = probe_all(media)?;
    let v = probe["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video").cloned())
        .ok_or("no video stream")?;
    Ok(v)
}

fn tags(v: &Value) -> [&str; 4] {
    let s = |k: &str| v[k].as_str().unwrap_or("untagged");
    [
        s("pix_fmt"),
        s("color_primaries"),
        s("color_transfer"),
        s("color_space"),
    ]
}

/// ffprobe's JSON of the first video frame, side data included.
fn first_frame_json(media: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_frames", "-of", "json"])
        .arg(media)
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The first frame's side data types.
fn side_data(media: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let doc = first_frame_json(media)?;
    Ok(doc["frames"][0]["side_data_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|d| d["side_data_type"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// The reference tone map: ffmpeg's zscale + tonemap (Hable) chain, run directly.
fn reference_tonemap(src: &Path, out: &Path, trc: &str) -> Result<(), String> {
    let chain = format!(
        "zscale=tin={trc}:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,format=gbrpf32le,\
         zscale=p=bt709,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
    );
    let (src, out) = (src.display().to_string(), out.display().to_string());
    ffmpeg(&[
        "-i",
        &src,
        "-vf",
        &chain,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        &out,
    ])
}

const LADDER: &str =
    "gif: {enabled: true, width: 160, start_seconds: 0, duration_seconds: 2}\nprofiles:\n\
  - {name: sdr, codec: h264, height: 180, always_encode: true, preset: ultrafast}\n\
  - {name: hdr, codec: h265, height: 180, always_encode: true, preset: ultrafast}\n\
  - {name: av1, codec: av1, height: 144, always_encode: true, preset: '12'}\n";

#[test]
fn hdr10_and_hlg_are_tone_mapped_for_h264_and_kept_for_hevc_and_av1() -> TestResult {
    for (hlg, trc) in [(false, "smpte2084"), (true, "arib-std-b67")] {
        let dir = tempfile::tempdir()?;
        let src = hdr_source(dir.path(), hlg)?;
        let wf = write_workflow(dir.path(), "hdr", LADDER)?;
        run_succeeds(&wf, dir.path(), &src)?;
        let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let out = dir.path().join("out").join(stem);

        let sdr = out.join(format!("{stem}.sdr.mp4"));
        assert_eq!(
            tags(&video(&sdr)?),
            ["yuv420p", "bt709", "bt709", "bt709"],
            "{trc}"
        );
        let reference = dir.path().join("reference.mkv");
        reference_tonemap(&src, &reference, trc)?;
        let (got, want) = (mean_luma(&sdr)?, mean_luma(&reference)?);
        assert!((30.0..220.0).contains(&got), "{trc}: mean luma {got:.1}");
        assert!(
            (got - want).abs() < 3.0,
            "{trc}: mean luma {got:.1}, reference {want:.1}"
        );

        // The GIF preview is tone-mapped too (an HDR source read as SDR looks washed out).
        // Compared with a GIF of the same span made from the tone-mapped rung.
        let gif = mean_luma(&out.join(format!("{stem}.gif")))?;
        let from_sdr = dir.path().join("from-sdr.gif");
        let (sdr_s, from_s) = (sdr.display().to_string(), from_sdr.display().to_string());
        ffmpeg(&[
            "-t",
            "2",
            "-i",
            &sdr_s,
            "-vf",
            "fps=10,scale=160:-2",
            &from_s,
        ])?;
        let want_gif = mean_luma(&from_sdr)?;
        assert!(
            (gif - want_gif).abs() < 3.0,
            "{trc}: GIF mean luma {gif:.1}, from the SDR rung {want_gif:.1}"
        );

        let hdr = out.join(format!("{stem}.hdr.mp4"));
        assert_eq!(
            tags(&video(&hdr)?),
            ["yuv420p10le", "bt2020", trc, "bt2020nc"]
        );
        let av1 = out.join(format!("{stem}.av1.mp4"));
        assert_eq!(
            tags(&video(&av1)?),
            ["yuv420p10le", "bt2020", trc, "bt2020nc"]
        );
        for file in [&hdr, &av1] {
            let side = side_data(file)?;
            let has = |t: &str| side.iter().any(|s| s.starts_with(t));
            // HLG carries no mastering metadata; HDR10's is written again by the encoder.
            assert_eq!(has("Mastering display"), !hlg, "{file:?}: {side:?}");
            assert_eq!(has("Content light level"), !hlg, "{file:?}: {side:?}");
        }
        if !hlg {
            let text = first_frame_json(&hdr)?.to_string();
            for want in [
                "\"red_x\":\"34000/50000\"",
                "\"max_luminance\":\"10000000/10000\"",
                "\"max_content\":1000",
                "\"max_average\":400",
            ] {
                assert!(
                    text.contains(want),
                    "{want} missing from the HEVC rung's first frame"
                );
            }
        }
        let manifest = read_json(&out.join("manifest.json"))?;
        let entries = manifest["outputs"].as_array().cloned().unwrap_or_default();
        let video_of = |name: &str| {
            entries
                .iter()
                .find(|o| o["profile"] == name)
                .map(|o| o["streams"][0].clone())
                .unwrap_or_default()
        };
        assert_eq!(video_of("sdr")["transfer"], "bt709");
        assert_eq!(video_of("sdr")["bit_depth"], 8);
        assert_eq!(video_of("hdr")["transfer"], trc);
        assert_eq!(video_of("hdr")["bit_depth"], 10);
    }
    Ok(())
}

#[test]
fn refuse_keep_and_bit_depth_rules_hold() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = hdr_source(dir.path(), false)?;
    // hdr: refuse fails the job with the reason, and publishes nothing.
    let wf = write_workflow(
        dir.path(),
        "refuse",
        "profiles:\n- {name: web, codec: h264, height: 144, always_encode: true, preset: ultrafast, hdr: refuse}\n",
    )?;
    let result = run_fails(&wf, dir.path(), &src)?;
    let error = result[0]["reason"].as_str().unwrap_or("").to_string();
    assert!(
        error.contains("web") && error.contains("HDR (PQ") && error.contains("refuse"),
        "{error}"
    );
    assert!(find_files(&dir.path().join("out"), ".mp4").is_empty());

    // 8 bits with hdr: keep is refused when the workflow is loaded, with its place.
    let bad = write_workflow(
        dir.path(),
        "eight",
        "profiles:\n- {name: archive, codec: h265, height: 144, hdr: keep, bit_depth: 8}\n- {name: x, codec: h264, height: 144, bit_depth: 12}\n",
    )?;
    let check = spool().arg("validate").arg(&bad).assert().failure();
    let stderr = String::from_utf8_lossy(&check.get_output().stderr).into_owned();
    assert!(
        stderr.contains("profiles[0].bit_depth") && stderr.contains("needs 10 bits"),
        "{stderr}"
    );
    assert!(
        stderr.contains("profiles[1].bit_depth") && stderr.contains("12 bits"),
        "{stderr}"
    );

    // An explicit keep on H.264 gives 10-bit HDR H.264, never 8-bit tagged PQ.
    let keep = write_workflow(
        dir.path(),
        "keep",
        "profiles:\n- {name: k, codec: h264, height: 144, always_encode: true, preset: ultrafast, hdr: keep}\n",
    )?;
    let run_dir = dir.path().join("keep-run");
    run_succeeds(&keep, &run_dir, &src)?;
    let v = video(&run_dir.join("out/hdr10/hdr10.k.mp4"))?;
    assert_eq!(tags(&v), ["yuv420p10le", "bt2020", "smpte2084", "bt2020nc"]);
    Ok(())
}

#[test]
fn a_10_bit_422_source_becomes_10_bit_hevc_and_sdr_gets_bt709_tags() -> TestResult {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("pro.mov");
    let src_s = src.display().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=3",
        "-vf",
        "format=yuv422p10le",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        &src_s,
    ])?;
    let wf = write_workflow(
        dir.path(),
        "pro",
        "profiles:\n\
         - {name: hevc, codec: h265, height: 180, always_encode: true, preset: ultrafast}\n\
         - {name: web, codec: h264, height: 144, always_encode: true, preset: ultrafast}\n",
    )?;
    run_succeeds(&wf, dir.path(), &src)?;
    let out = dir.path().join("out/pro");
    assert_eq!(
        tags(&video(&out.join("pro.hevc.mp4"))?),
        ["yuv420p10le", "bt709", "bt709", "bt709"]
    );
    assert_eq!(
        tags(&video(&out.join("pro.web.mp4"))?),
        ["yuv420p", "bt709", "bt709", "bt709"]
    );
    Ok(())
}
