//! Scoring encodes against their source: one ffmpeg decodes the reference once (picked,
//! turned, tone-mapped exactly as the rung's encode saw it), scales it once per display size
//! and every encode to its own, and writes each encode's per-frame scores to its own log.

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Metric;
use crate::media::edits::escape;
use crate::media::ranges::FrameRange;
use crate::media::tools::{file_url, os_args};

/// The source side of a comparison.
pub struct Reference<'a> {
    pub path: &'a Path,
    /// The frames of `path` the encodes hold (a chunk cut by range), if not all of it.
    pub range: Option<&'a FrameRange>,
    /// From [`crate::media::command::reference_filters`]: the rung's picture before its scale.
    pub filters: String,
    /// The encodes' pixel format; the reference is converted to it.
    pub pix_fmt: &'static str,
    /// The colour tags both sides are given before comparing (see [`same_tags`]).
    pub tags: String,
}

/// Tags both sides of a comparison alike, as the encode is tagged. The pixels are compared
/// as they are: a newer ffmpeg otherwise converts an untagged source's range or matrix to
/// the encode's before comparing, and scores a perfect copy 24 dB PSNR.
pub fn same_tags(colour: &crate::media::colour::ColourPlan) -> String {
    format!(
        "setparams=range=tv:color_primaries={}:color_trc={}:colorspace={}",
        colour.primaries, colour.transfer, colour.matrix
    )
}

/// What encodes must share to be scored by one run (their reference decoded once): the
/// metric and the frames scored, and the reference picture. Their sizes may differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Way {
    pub metric: Metric,
    pub subsample: u32,
    pub filters: String,
    pub pix_fmt: &'static str,
    pub tags: String,
}

impl Way {
    /// How `rung`'s encode of the frames `range` (all when None) is scored by `scoring`.
    pub fn of(
        range: Option<&FrameRange>,
        rung: &crate::media::profiles::Rung,
        scoring: &Scoring,
    ) -> Way {
        Way {
            metric: scoring.metric,
            subsample: scoring.subsample,
            filters: crate::media::command::reference_filters(range, rung),
            pix_fmt: rung.colour.pix_fmt(),
            tags: same_tags(&rung.colour),
        }
    }

    /// The reference these encodes are compared with.
    pub fn reference<'a>(self, path: &'a Path, range: Option<&'a FrameRange>) -> Reference<'a> {
        Reference {
            path,
            range,
            filters: self.filters,
            pix_fmt: self.pix_fmt,
            tags: self.tags,
        }
    }
}

/// The indices of `items` grouped by their way of scoring, in first-seen order: one scoring
/// run per group.
pub fn share_runs<T>(items: &[T], way: impl Fn(&T) -> Way) -> Vec<(Way, Vec<usize>)> {
    let mut groups: Vec<(Way, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let w = way(item);
        match groups.iter_mut().find(|(g, _)| *g == w) {
            Some((_, members)) => members.push(i),
            None => groups.push((w, vec![i])),
        }
    }
    groups
}

/// How to score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scoring {
    pub metric: Metric,
    /// Both sides are scaled to this size (the viewer's screen) before comparing.
    pub display: (u32, u32),
    /// Every Nth frame is scored.
    pub subsample: u32,
}

/// One encode to score, and where its per-frame scores go.
pub struct Distorted<'a> {
    pub path: &'a Path,
    pub log: &'a Path,
    /// The size both sides are compared at (the scoring's display size): encodes of one
    /// reference at different sizes share its decode.
    pub display: (u32, u32),
}

/// A distribution of per-frame scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub mean: f64,
    /// The 5th percentile: what the worst moments look like.
    pub p5: f64,
    pub min: f64,
    /// Frames scored.
    pub frames: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("the {metric} log {path} cannot be read: {source}")]
    Read {
        metric: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the {metric} log holds no frame scores ({detail})")]
    Empty {
        metric: &'static str,
        detail: String,
    },
}

/// ffmpeg arguments (after spool's fixed prefix) that score each of `distorted` against
/// `reference`. Inputs: the encodes first, the reference last.
pub fn score_args(
    reference: &Reference<'_>,
    distorted: &[Distorted<'_>],
    s: &Scoring,
) -> Vec<OsString> {
    let mut a = os_args(["-y"]);
    for d in distorted {
        a.extend(os_args(["-noautorotate", "-i"]));
        a.push(file_url(d.path));
    }
    a.push("-noautorotate".into());
    if let Some(r) = reference.range {
        a.extend(os_args(r.input_args()));
    }
    a.push("-i".into());
    a.push(file_url(reference.path));
    a.push("-filter_complex".into());
    a.push(score_graph(reference, distorted, s).into());
    for i in 0..distorted.len() {
        a.extend(os_args(["-map", &format!("[m{i}]"), "-f", "null", "-"]));
    }
    a
}

fn score_graph(reference: &Reference<'_>, distorted: &[Distorted<'_>], s: &Scoring) -> String {
    let n = distorted.len();
    let every = s.subsample.max(1);
    // VMAF's motion feature needs consecutive frames: it subsamples itself. The others
    // compare only the frames kept by select, numbered the same on both sides.
    let pick = match (s.metric, every) {
        (Metric::Vmaf, _) | (_, 1) => String::new(),
        _ => format!(",select=not(mod(n\\,{every}))"),
    };
    let fit = |(w, h): (u32, u32)| {
        format!(
            "scale={w}:{h}:flags=bicubic,format={}{pick}",
            reference.pix_fmt
        )
    };
    let lead = match reference.filters.as_str() {
        "" => String::new(),
        f => format!("{f},"),
    };
    // The reference is decoded once, scaled once per display size, and split among the
    // encodes compared at that size.
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for d in distorted {
        if !sizes.contains(&d.display) {
            sizes.push(d.display);
        }
    }
    let size_labels: String = (0..sizes.len()).map(|k| format!("[s{k}]")).collect();
    let mut g = format!(
        "[{n}:v:0]{lead}setpts=PTS-STARTPTS,{},split={}{size_labels}",
        reference.tags,
        sizes.len()
    );
    for (k, size) in sizes.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|i| distorted[*i].display == *size).collect();
        let labels: String = members.iter().map(|i| format!("[r{i}]")).collect();
        g.push_str(&format!(
            ";[s{k}]{},split={}{labels}",
            fit(*size),
            members.len()
        ));
    }
    for (i, d) in distorted.iter().enumerate() {
        g.push_str(&format!(
            ";[{i}:v:0]setpts=PTS-STARTPTS,{},{}[d{i}];[d{i}][r{i}]{}[m{i}]",
            reference.tags,
            fit(d.display),
            metric_filter(s.metric, every, d.log)
        ));
    }
    g
}

/// The metric's filter with its log; the path escaped for the option and the graph level.
fn metric_filter(metric: Metric, every: u32, log: &Path) -> String {
    let path = escape(&log.display().to_string(), "\\':");
    let options = match metric {
        Metric::Vmaf => format!("log_fmt=json:log_path={path}:n_subsample={every}:n_threads=2"),
        _ => format!("stats_file={path}"),
    };
    format!("{}={}", metric.filter(), escape(&options, "\\'[],;"))
}

/// The per-frame scores a finished scoring run wrote to `log`.
pub fn read_scores(metric: Metric, log: &Path) -> Result<Scores, ScoreError> {
    let text = std::fs::read_to_string(log).map_err(|source| ScoreError::Read {
        metric: metric.name(),
        path: log.display().to_string(),
        source,
    })?;
    let frames = match metric {
        Metric::Vmaf => vmaf_frames(&text),
        Metric::Ssim => field_frames(&text, "All:"),
        Metric::Psnr => field_frames(&text, "psnr_avg:"),
        Metric::Xpsnr => xpsnr_frames(&text),
    };
    summarise(&frames).ok_or_else(|| ScoreError::Empty {
        metric: metric.name(),
        detail: text
            .lines()
            .next()
            .unwrap_or("empty file")
            .chars()
            .take(120)
            .collect(),
    })
}

fn vmaf_frames(text: &str) -> Vec<f64> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    v["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .filter_map(|f| f["metrics"]["vmaf"].as_f64())
                .collect()
        })
        .unwrap_or_default()
}

/// A `key:value` field of each line (ssim's and psnr's stats files). Identical frames give
/// PSNR "inf", counted as 100 dB.
fn field_frames(text: &str, key: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| {
            let value = line.split_whitespace().find_map(|t| t.strip_prefix(key))?;
            match value {
                "inf" => Some(100.0),
                v => v.parse::<f64>().ok().filter(|x| x.is_finite()),
            }
        })
        .collect()
}

/// XPSNR's stats file: `n: 1  XPSNR y: 41.2  XPSNR u: 43.0  XPSNR v: 44.1`; the luma's.
fn xpsnr_frames(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| {
            let after = line.split("XPSNR y:").nth(1)?;
            match after.split_whitespace().next()? {
                "inf" => Some(100.0),
                v => v.parse::<f64>().ok().filter(|x| x.is_finite()),
            }
        })
        .collect()
}

/// Mean, 5th percentile and minimum; None for no frames.
pub fn summarise(frames: &[f64]) -> Option<Scores> {
    if frames.is_empty() {
        return None;
    }
    let mut sorted = frames.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p5 = sorted[(sorted.len() - 1) * 5 / 100];
    Some(Scores {
        mean: frames.iter().sum::<f64>() / frames.len() as f64,
        p5,
        min: sorted[0],
        frames: frames.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_log_format_reads_as_per_frame_scores() {
        let vmaf = r#"{"frames":[{"frameNum":0,"metrics":{"vmaf":90.0}},{"frameNum":2,"metrics":{"vmaf":96.0}}]}"#;
        assert_eq!(vmaf_frames(vmaf), vec![90.0, 96.0]);
        let ssim = "n:1 Y:0.990000 U:0.99 V:0.99 All:0.985000 (18.2)\nn:2 Y:1 U:1 V:1 All:0.995000 (23.0)\n";
        assert_eq!(field_frames(ssim, "All:"), vec![0.985, 0.995]);
        let psnr =
            "n:1 mse_avg:0.00 psnr_avg:inf psnr_y:inf\nn:2 mse_avg:1.2 psnr_avg:47.33 psnr_y:46\n";
        assert_eq!(field_frames(psnr, "psnr_avg:"), vec![100.0, 47.33]);
        let xpsnr = "n:    1  XPSNR y: 41.5000  XPSNR u: 43.0000  XPSNR v: 44.0000\n";
        assert_eq!(xpsnr_frames(xpsnr), vec![41.5]);
    }

    #[test]
    fn the_summary_has_the_mean_the_5th_percentile_and_the_worst() {
        let frames: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarise(&frames).unwrap_or(Scores {
            mean: 0.0,
            p5: 0.0,
            min: 0.0,
            frames: 0,
        });
        assert_eq!((s.mean, s.p5, s.min, s.frames), (50.5, 5.0, 1.0, 100));
        assert!(summarise(&[]).is_none());
    }

    #[test]
    fn one_reference_decode_serves_encodes_scored_at_different_sizes() {
        let reference = Reference {
            path: Path::new("/w/ref.mkv"),
            range: None,
            filters: String::new(),
            pix_fmt: "yuv420p",
            tags: "setparams=range=tv".into(),
        };
        let d = |path: &'static str, display| Distorted {
            path: Path::new(path),
            log: Path::new("/w/x.log"),
            display,
        };
        let encodes = [
            d("/w/a.mp4", (426, 240)),
            d("/w/b.mp4", (1280, 720)),
            d("/w/c.mp4", (426, 240)),
        ];
        let scoring = Scoring {
            metric: Metric::Ssim,
            display: (1280, 720),
            subsample: 1,
        };
        let g = score_graph(&reference, &encodes, &scoring);
        assert!(g.starts_with("[3:v:0]setpts=PTS-STARTPTS,setparams=range=tv,split=2[s0][s1];"));
        assert!(g.contains("[s0]scale=426:240:flags=bicubic,format=yuv420p,split=2[r0][r2]"));
        assert!(g.contains("[s1]scale=1280:720:flags=bicubic,format=yuv420p,split=1[r1]"));
        assert!(g.contains("[1:v:0]setpts=PTS-STARTPTS,setparams=range=tv,scale=1280:720"));
        assert_eq!(g.matches("ssim=").count(), 3);
    }

    #[test]
    fn log_paths_are_escaped_inside_the_graph() {
        let f = metric_filter(Metric::Ssim, 1, Path::new("/w/a:b,c'd.log"));
        // Option level: a\:b,c\'d; graph level then escapes the backslashes, quote and comma.
        assert_eq!(f, r"ssim=stats_file=/w/a\\:b\,c\\\'d.log");
    }
}
