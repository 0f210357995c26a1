//! Measurements taken once per job before planning, each one decode of part of the source:
//! interlacing (idet), black borders (cropdetect sampled across the file) and loudness
//! (EBU R128 through loudnorm's first pass), and scene cuts (scdet).

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::picture::Crop;
use super::tools::{file_url, Tools};

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("ffmpeg could not start for {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what}: ffmpeg printed no result ({tail})")]
    NoResult { what: &'static str, tail: String },
}

/// Runs ffmpeg with `args` and returns its stderr, where the filters print.
async fn stderr_of(
    tools: &Tools,
    what: &'static str,
    args: Vec<OsString>,
) -> Result<String, MeasureError> {
    let out = tokio::process::Command::new(&tools.ffmpeg)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| MeasureError::Spawn { what, source })?;
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn no_result(what: &'static str, stderr: &str) -> MeasureError {
    let tail: Vec<&str> = stderr.lines().rev().take(2).collect();
    MeasureError::NoResult {
        what,
        tail: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
    }
}

fn video_args(input: &Path, at: f64, filter: &str, frames: u32) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-noautorotate", "-ss"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(format!("{at:.3}").into());
    a.push("-i".into());
    a.push(file_url(input));
    for s in [
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-vf",
        filter,
        "-frames:v",
    ] {
        a.push(s.into());
    }
    a.push(frames.to_string().into());
    for s in ["-f", "null", "-"] {
        a.push(s.into());
    }
    a
}

/// Where shots change: scdet over the whole video at a small size, the first frame of each
/// new shot (the source's own timestamps, `-copyts`). `threshold` is scdet's score
/// (0-100; 10 finds hard cuts).
pub async fn scene_cuts(
    tools: &Tools,
    input: &Path,
    threshold: f64,
) -> Result<Vec<f64>, MeasureError> {
    let filter = format!("scale=-2:144,scdet=threshold={threshold}");
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-noautorotate", "-copyts", "-i"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(file_url(input));
    for s in ["-map", "0:v:0", "-an", "-sn", "-dn", "-vf", &filter] {
        a.push(s.into());
    }
    for s in ["-fps_mode", "passthrough", "-f", "null", "-"] {
        a.push(s.into());
    }
    let stderr = stderr_of(tools, "scdet", a).await?;
    if !stderr.contains("frame=") {
        return Err(no_result("scdet", &stderr));
    }
    Ok(stderr
        .lines()
        .filter_map(|l| l.split("lavfi.scd.time: ").nth(1))
        .filter_map(|t| t.trim().parse::<f64>().ok())
        .collect())
}

/// Real interlacing has one field order throughout; fine moving detail in progressive video
/// fools idet about equally in both orders, so one order must outvote all the rest 3 to 1.
fn fields_dominate(tff: u64, bff: u64, progressive: u64) -> bool {
    let (major, minor) = (tff.max(bff), tff.min(bff));
    major >= 10 && major >= 3 * (minor + progressive)
}

/// idet over 300 frames from a tenth into the file: interlaced when fields outvote frames.
pub async fn interlacing(tools: &Tools, input: &Path, duration: f64) -> Result<bool, MeasureError> {
    let args = video_args(input, duration * 0.1, "idet", 300);
    let stderr = stderr_of(tools, "idet", args).await?;
    let line = stderr
        .lines()
        .rfind(|l| l.contains("Multi frame detection:"))
        .ok_or_else(|| no_result("idet", &stderr))?;
    let count = |key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok(fields_dominate(
        count("TFF:"),
        count("BFF:"),
        count("Progressive:"),
    ))
}

/// Where the picture is inside black borders, from cropdetect at `samples` points spread over
/// the whole file: the union of what each saw, so one dark scene cannot crop the picture.
/// None when there is nothing worth cutting (under 2% on every side) or the result is
/// implausible (less than half the frame: a black video).
pub async fn black_borders(
    tools: &Tools,
    input: &Path,
    duration: f64,
    coded: (u32, u32),
    samples: u32,
) -> Result<Option<Crop>, MeasureError> {
    let (w, h) = coded;
    let (mut x1, mut y1, mut x2, mut y2) = (w, h, 0u32, 0u32);
    let mut seen = 0;
    for i in 0..samples {
        let at = duration * (f64::from(i) + 0.5) / f64::from(samples);
        let args = video_args(input, at, "cropdetect=limit=0.094:round=2:reset=0", 10);
        let stderr = stderr_of(tools, "cropdetect", args).await?;
        let Some(c) = stderr.lines().rev().find_map(parse_crop) else {
            continue;
        };
        seen += 1;
        x1 = x1.min(c.x);
        y1 = y1.min(c.y);
        x2 = x2.max(c.x + c.width);
        y2 = y2.max(c.y + c.height);
    }
    if seen == 0 || x2 <= x1 || y2 <= y1 {
        return Ok(None);
    }
    let crop = Crop {
        width: (x2 - x1) & !1,
        height: (y2 - y1) & !1,
        x: x1 & !1,
        y: y1 & !1,
    };
    let worth = |border: u32, side: u32| border * 50 >= side;
    let cuts = worth(crop.x, w)
        || worth(crop.y, h)
        || worth(w - crop.x - crop.width, w)
        || worth(h - crop.y - crop.height, h);
    let plausible =
        u64::from(crop.width) * u64::from(crop.height) * 2 >= u64::from(w) * u64::from(h);
    Ok((cuts && plausible).then_some(crop))
}

/// `crop=W:H:X:Y` at the end of a cropdetect line.
fn parse_crop(line: &str) -> Option<Crop> {
    let spec = line
        .rsplit("crop=")
        .next()
        .filter(|_| line.contains("crop="))?;
    let v: Vec<u32> = spec
        .trim()
        .split(':')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match v.as_slice() {
        [width, height, x, y] if *width > 0 && *height > 0 => Some(Crop {
            width: *width,
            height: *height,
            x: *x,
            y: *y,
        }),
        _ => None,
    }
}

/// One audio track's loudness (EBU R128), as loudnorm's second pass wants it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness, LUFS.
    pub integrated: f64,
    /// True peak, dBTP.
    pub true_peak: f64,
    /// Loudness range, LU.
    pub range: f64,
    pub threshold: f64,
    pub offset: f64,
}

impl Loudness {
    /// loudnorm's second pass to `target` LUFS from this measurement: linear (one gain for
    /// the whole track) when the peaks allow it, which keeps the dynamics.
    pub fn second_pass(&self, target: f64, true_peak: f64, range: f64) -> String {
        format!(
            "loudnorm=I={target}:TP={true_peak}:LRA={range}:measured_I={:.2}:measured_TP={:.2}:\
             measured_LRA={:.2}:measured_thresh={:.2}:offset={:.2}:linear=true",
            self.integrated, self.true_peak, self.range, self.threshold, self.offset
        )
    }
}

/// loudnorm's JSON report of audio track `track` (of `input`, or the only one of a file).
pub async fn loudness(tools: &Tools, input: &Path, track: usize) -> Result<Loudness, MeasureError> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-i"]
        .iter()
        .map(OsString::from)
        .collect();
    a.push(file_url(input));
    let map = format!("0:a:{track}");
    for s in [
        "-map",
        &map,
        "-vn",
        "-sn",
        "-dn",
        "-af",
        "loudnorm=print_format=json",
        "-f",
        "null",
        "-",
    ] {
        a.push(s.into());
    }
    let stderr = stderr_of(tools, "loudnorm", a).await?;
    parse_loudness(&stderr).ok_or_else(|| no_result("loudnorm", &stderr))
}

fn parse_loudness(stderr: &str) -> Option<Loudness> {
    let start = stderr
        .rfind("\"input_i\"")
        .and_then(|i| stderr[..i].rfind('{'))?;
    let end = stderr[start..].find('}')? + start + 1;
    let doc: serde_json::Value = serde_json::from_str(&stderr[start..end]).ok()?;
    let num = |k: &str| -> Option<f64> {
        doc[k]
            .as_str()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    };
    Some(Loudness {
        integrated: num("input_i")?,
        true_peak: num("input_tp")?,
        range: num("input_lra")?,
        threshold: num("input_thresh")?,
        offset: num("target_offset")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cropdetect_and_loudnorm_reports() {
        let line = "[Parsed_cropdetect_0 @ 0x5] x1:0 x2:319 y1:30 y2:209 w:320 h:180 x:0 y:30 pts:2816 t:0.22 crop=320:180:0:30";
        assert_eq!(
            parse_crop(line),
            Some(Crop {
                width: 320,
                height: 180,
                x: 0,
                y: 30
            })
        );
        assert_eq!(parse_crop("no crop here"), None);
        assert_eq!(parse_crop("crop=-16:0:8:8"), None);
        let report = "[Parsed_loudnorm_0 @ 0x1] \n{\n\t\"input_i\" : \"-30.07\",\n\t\"input_tp\" : \"-5.25\",\n\
            \t\"input_lra\" : \"0.30\",\n\t\"input_thresh\" : \"-40.07\",\n\t\"output_i\" : \"-23.03\",\n\
            \t\"target_offset\" : \"-0.97\"\n}\n";
        let l = parse_loudness(report).expect("parsed");
        assert_eq!(
            (l.integrated, l.true_peak, l.offset),
            (-30.07, -5.25, -0.97)
        );
        assert!(
            parse_loudness("{\"input_i\" : \"-inf\"}").is_none(),
            "silence has no loudness"
        );
        assert!(fields_dominate(100, 0, 0), "a TFF broadcast");
        assert!(
            !fields_dominate(36, 25, 6),
            "testsrc2 at 25p, as idet saw it"
        );
        assert!(!fields_dominate(2, 0, 0), "too few frames to tell");
    }
}
