//! Poster frames, sprite sheets and the WebVTT thumbnails track players use for scrubbing,
//! all with ffmpeg (the tile filter, no ImageMagick).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use super::tools::{file_url, Tools};

/// Size of the frames sampled to judge a poster candidate.
const PROBE_W: usize = 32;
const PROBE_H: usize = 18;

/// Brightness and contrast of a frame sampled at `time`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameStats {
    pub time: f64,
    pub mean: f64,
    pub stddev: f64,
}

/// Times to try for the poster: 10 %, 20 %, … 60 % in, where titles and fades are over.
pub fn poster_candidates(duration: f64) -> Vec<f64> {
    (1..=6).map(|i| duration * f64::from(i) / 10.0).collect()
}

/// The first candidate that is neither dark nor flat; failing that, the most detailed.
pub fn pick_poster(stats: &[FrameStats]) -> Option<f64> {
    stats
        .iter()
        .find(|s| s.mean >= 24.0 && s.stddev >= 10.0)
        .or_else(|| stats.iter().max_by(|a, b| a.stddev.total_cmp(&b.stddev)))
        .map(|s| s.time)
}

/// Samples one small grey frame at `time` through a pipe and measures it.
pub async fn frame_stats(tools: &Tools, input: &Path, time: f64) -> Option<FrameStats> {
    let mut a: Vec<OsString> = vec!["-v".into(), "error".into(), "-nostdin".into()];
    a.extend(["-ss".into(), format!("{time:.3}").into(), "-i".into()]);
    a.push(file_url(input));
    for s in ["-frames:v", "1", "-an", "-sn", "-vf"] {
        a.push(s.into());
    }
    a.push(format!("scale={PROBE_W}:{PROBE_H},format=gray").into());
    for s in ["-f", "rawvideo", "pipe:1"] {
        a.push(s.into());
    }
    let out = tokio::process::Command::new(&tools.ffmpeg)
        .args(&a)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let px = out.stdout;
    if px.len() != PROBE_W * PROBE_H {
        return None;
    }
    let n = px.len() as f64;
    let mean = px.iter().map(|p| f64::from(*p)).sum::<f64>() / n;
    let var = px
        .iter()
        .map(|p| (f64::from(*p) - mean).powi(2))
        .sum::<f64>()
        / n;
    Some(FrameStats {
        time,
        mean,
        stddev: var.sqrt(),
    })
}

/// What previews (poster, sprites, GIF) do to the picture first so they show what the
/// rungs show: upright, deinterlaced, cropped, tone-mapped to SDR.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preview {
    /// The picture is turned by `filters`, not by ffmpeg on decode.
    pub noautorotate: bool,
    /// Filters, each followed by `,`; empty when there are none.
    pub filters: String,
}

impl Preview {
    /// `-noautorotate` when the filters turn the picture, then `-i input`.
    pub fn input_args(&self, input: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        if self.noautorotate {
            a.push("-noautorotate".into());
        }
        a.push("-i".into());
        a.push(file_url(input));
        a
    }
}

pub fn poster_args(input: &Path, time: f64, width: u32, out: &Path, p: &Preview) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-y".into(), "-ss".into(), format!("{time:.3}").into()];
    a.extend(p.input_args(input));
    for s in ["-frames:v", "1", "-an", "-sn", "-vf"] {
        a.push(s.into());
    }
    a.push(format!("{}scale={width}:-2", p.filters).into());
    for s in ["-q:v", "2", "-f", "image2", "-update", "1"] {
        a.push(s.into());
    }
    a.push(out.as_os_str().to_owned());
    a
}

/// The layout of a sprite sheet run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpriteLayout {
    pub interval: f64,
    pub thumb_w: u32,
    pub thumb_h: u32,
    pub columns: u32,
    pub rows: u32,
}

impl SpriteLayout {
    /// Thumbnails the fps filter makes for `duration`: one at 0, interval, 2×interval, …
    pub fn count(&self, duration: f64) -> u32 {
        ((duration / self.interval) - 1e-9).ceil().max(1.0) as u32
    }
    pub fn per_sheet(&self) -> u32 {
        self.columns * self.rows
    }
}

/// Writes sheets `dir/sprites-001.jpg`, … of `columns × rows` thumbnails.
pub fn sprite_args(input: &Path, layout: &SpriteLayout, dir: &Path, p: &Preview) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-y".into()];
    a.extend(p.input_args(input));
    for s in ["-map", "0:v:0", "-an", "-sn", "-vf"] {
        a.push(s.into());
    }
    a.push(
        format!(
            "{}fps=1/{},scale={}:{},tile={}x{}",
            p.filters, layout.interval, layout.thumb_w, layout.thumb_h, layout.columns, layout.rows
        )
        .into(),
    );
    for s in ["-q:v", "3", "-f", "image2"] {
        a.push(s.into());
    }
    a.push(dir.join("sprites-%03d.jpg").into_os_string());
    a
}

/// A thumbnail's height for `width`, keeping the display aspect ratio, even.
pub fn thumb_height(width: u32, display: (u32, u32)) -> u32 {
    let (w, h) = display;
    let exact = f64::from(width) * f64::from(h) / f64::from(w.max(1));
    (((exact / 2.0).round() as u32) * 2).max(2)
}

pub fn sheet_name(index: u32) -> String {
    format!("sprites-{:03}.jpg", index + 1)
}

/// The WebVTT thumbnails track: one cue per thumbnail, `sheet.jpg#xywh=x,y,w,h`.
pub fn sprite_vtt(layout: &SpriteLayout, duration: f64) -> String {
    let mut out = String::from("WEBVTT\n");
    for i in 0..layout.count(duration) {
        let start = f64::from(i) * layout.interval;
        let end = (start + layout.interval).min(duration);
        let within = i % layout.per_sheet();
        let x = (within % layout.columns) * layout.thumb_w;
        let y = (within / layout.columns) * layout.thumb_h;
        let _ = write!(
            out,
            "\n{} --> {}\n{}#xywh={x},{y},{},{}\n",
            vtt_time(start),
            vtt_time(end),
            sheet_name(i / layout.per_sheet()),
            layout.thumb_w,
            layout.thumb_h
        );
    }
    out
}

fn vtt_time(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posters_avoid_dark_and_flat_frames() {
        let s = |time, mean, stddev| FrameStats { time, mean, stddev };
        assert_eq!(
            pick_poster(&[s(1.0, 3.0, 1.0), s(2.0, 90.0, 2.0), s(3.0, 80.0, 40.0)]),
            Some(3.0)
        );
        assert_eq!(
            pick_poster(&[s(1.0, 3.0, 1.0), s(2.0, 5.0, 6.0)]),
            Some(2.0)
        );
        assert_eq!(pick_poster(&[]), None);
    }

    #[test]
    fn the_vtt_track_addresses_each_thumbnail_on_its_sheet() {
        let layout = SpriteLayout {
            interval: 2.0,
            thumb_w: 160,
            thumb_h: 90,
            columns: 2,
            rows: 2,
        };
        assert_eq!(layout.count(7.5), 4);
        assert_eq!(layout.count(8.0), 4);
        assert_eq!(layout.count(9.0), 5);
        let vtt = sprite_vtt(&layout, 9.0);
        assert!(vtt.starts_with(
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprites-001.jpg#xywh=0,0,160,90\n"
        ));
        assert!(vtt.contains("00:00:06.000 --> 00:00:08.000\nsprites-001.jpg#xywh=160,90,160,90\n"));
        assert!(vtt.ends_with("00:00:08.000 --> 00:00:09.000\nsprites-002.jpg#xywh=0,0,160,90\n"));
    }
}
