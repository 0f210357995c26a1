//! ffprobe → typed [`MediaInfo`]: every stream with what must survive an encode (languages,
//! titles, dispositions, colour, chapters, the title), and the few extra reads some jobs need.

mod mastering;
mod parse;

pub use mastering::{mastering, LightLevel, Mastering, MasteringDisplay};

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use parse::parse_probe_json;

use super::tools::{FfmpegError, Tools};

/// A frame rate kept as a rational, so 30000/1001 stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub fn parse(s: &str) -> Option<Rational> {
        let (n, d) = s.split_once('/')?;
        let (num, den) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
        (num > 0 && den > 0).then_some(Rational { num, den })
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

/// How a video's colours are to be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Colour {
    pub primaries: Option<String>,
    pub transfer: Option<String>,
    pub matrix: Option<String>,
    pub range: Option<String>,
    pub bit_depth: u32,
}

/// A high-dynamic-range transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hdr {
    /// SMPTE ST 2084 (HDR10).
    Pq,
    /// ARIB STD-B67.
    Hlg,
}

impl Colour {
    pub fn hdr(&self) -> Option<Hdr> {
        match self.transfer.as_deref() {
            Some("smpte2084") => Some(Hdr::Pq),
            Some("arib-std-b67") => Some(Hdr::Hlg),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoStream {
    pub index: u32,
    pub codec: String,
    /// Coded size, before rotation.
    pub width: u32,
    pub height: u32,
    pub fps: Rational,
    pub pix_fmt: String,
    /// Degrees from the display matrix or the legacy `rotate` tag.
    pub rotation: i32,
    pub interlaced: bool,
    pub bit_rate: Option<u64>,
    pub start_time: f64,
    /// Packet count, when probed with frame counting.
    pub frames: Option<u64>,
    #[serde(default)]
    pub colour: Colour,
    /// `tt`, `bb`, `tb`, `bt`, `progressive`, or unknown.
    #[serde(default)]
    pub field_order: Option<String>,
}

impl VideoStream {
    /// Size as displayed, after rotation.
    pub fn display_size(&self) -> (u32, u32) {
        if self.rotation.rem_euclid(180) == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// What a track is called and how players treat it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Label {
    /// ISO 639-2 language tag, as the file has it.
    pub language: Option<String>,
    pub title: Option<String>,
    pub default: bool,
    pub forced: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioStream {
    pub index: u32,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub start_time: f64,
    #[serde(default)]
    pub channel_layout: Option<String>,
    /// Flattened: a hook reads `media.audio[2].language`.
    #[serde(flatten)]
    pub label: Label,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubtitleStream {
    pub index: u32,
    pub codec: String,
    #[serde(flatten)]
    pub label: Label,
}

/// What a subtitle track is made of, which decides where it can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtitleKind {
    /// Text ffmpeg can decode and write as mov_text, WebVTT or SubRip.
    Text,
    /// Pictures (PGS, DVD, DVB): copied or nothing.
    Bitmap,
    /// A codec ffmpeg cannot convert.
    Other,
}

impl SubtitleStream {
    pub fn kind(&self) -> SubtitleKind {
        match self.codec.as_str() {
            "hdmv_pgs_subtitle" | "dvd_subtitle" | "dvb_subtitle" | "xsub" => SubtitleKind::Bitmap,
            "subrip" | "srt" | "ass" | "ssa" | "mov_text" | "webvtt" | "text" | "microdvd"
            | "subviewer" | "subviewer1" | "sami" | "realtext" | "jacosub" | "mpl2" | "pjs"
            | "vplayer" | "stl" | "eia_608" => SubtitleKind::Text,
            _ => SubtitleKind::Other,
        }
    }
}

/// A file carried in the container (fonts for ASS subtitles).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub index: u32,
    pub filename: Option<String>,
    pub mimetype: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    pub start: f64,
    pub end: f64,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaInfo {
    pub format: String,
    pub duration: f64,
    pub start_time: f64,
    pub bit_rate: Option<u64>,
    pub video: Option<VideoStream>,
    pub audio: Vec<AudioStream>,
    #[serde(default)]
    pub subtitles: Vec<SubtitleStream>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub chapters: Vec<Chapter>,
    /// The container's title tag.
    #[serde(default)]
    pub title: Option<String>,
    /// Every stream's type, in file order (subtitle and data streams included).
    pub stream_types: Vec<String>,
}

impl MediaInfo {
    pub fn has_audio(&self) -> bool {
        !self.audio.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{path}: not a media file ffprobe can read: {reason}")]
    NotMedia { path: String, reason: String },
    #[error("ffprobe gave output spool cannot read: {0}")]
    BadJson(String),
    #[error(transparent)]
    Tool(#[from] FfmpegError),
}

/// Probes a file with ffprobe.
pub async fn probe(tools: &Tools, path: &Path) -> Result<MediaInfo, ProbeError> {
    probe_inner(tools, path, false).await
}

/// Probes a file and counts its video packets (the frame count) in the same ffprobe run:
/// one process instead of two, which matters at ~80 ms per ffprobe start.
pub async fn probe_counting_frames(
    tools: &Tools,
    path: &Path,
) -> Result<(MediaInfo, u64), ProbeError> {
    let info = probe_inner(tools, path, true).await?;
    // No video stream: 0 frames, and the caller says what the file holds instead.
    let Some(video) = info.video.as_ref() else {
        return Ok((info, 0));
    };
    let frames = video.frames.ok_or_else(|| ProbeError::NotMedia {
        path: path.display().to_string(),
        reason: "could not count its video frames".into(),
    })?;
    Ok((info, frames))
}

async fn probe_inner(tools: &Tools, path: &Path, count: bool) -> Result<MediaInfo, ProbeError> {
    let display = path.display().to_string();
    let mut args = vec![
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-show_chapters",
    ];
    if count {
        args.push("-count_packets");
    }
    let out = tools.ffprobe(&args, path).await?;
    if !out.status.success() {
        let reason = String::from_utf8_lossy(&out.stderr);
        let reason = reason.lines().last().unwrap_or("ffprobe failed").trim();
        let reason = reason
            .trim_start_matches(&format!("file:{display}: "))
            .to_string();
        return Err(ProbeError::NotMedia {
            path: display,
            reason,
        });
    }
    parse_probe_json(&display, &String::from_utf8_lossy(&out.stdout))
}

/// Counts the packets of the first video stream: the frame count, without decoding.
pub async fn count_video_frames(tools: &Tools, path: &Path) -> Result<u64, ProbeError> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
    ];
    let out = tools.ffprobe(&args, path).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_end_matches(',')
        .parse()
        .map_err(|_| ProbeError::NotMedia {
            path: path.display().to_string(),
            reason: format!(
                "could not count its video frames: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
}

/// The first video stream's frame and keyframe times, read from packets (nothing is
/// decoded). Frame ranges are cut by them.
pub async fn video_packets(
    tools: &Tools,
    path: &Path,
) -> Result<crate::media::ranges::VideoPackets, ProbeError> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
    ];
    let out = tools.ffprobe(&args, path).await?;
    if !out.status.success() {
        return Err(ProbeError::NotMedia {
            path: path.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(crate::media::ranges::VideoPackets::parse(
        &String::from_utf8_lossy(&out.stdout),
    ))
}

/// Presentation times of the first video stream's keyframes, read from packet flags
/// (nothing is decoded). Used to predict where the segment muxer will cut.
pub async fn keyframe_times(tools: &Tools, path: &Path) -> Result<Vec<f64>, ProbeError> {
    Ok(video_packets(tools, path).await?.keys)
}
