//! ffprobe JSON → typed [`MediaInfo`].

use serde::{Deserialize, Serialize};
use std::path::Path;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AudioStream {
    pub index: u32,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub start_time: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaInfo {
    pub format: String,
    pub duration: f64,
    pub start_time: f64,
    pub bit_rate: Option<u64>,
    pub video: Option<VideoStream>,
    pub audio: Vec<AudioStream>,
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

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    pix_fmt: Option<String>,
    field_order: Option<String>,
    bit_rate: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    nb_read_packets: Option<String>,
    tags: Option<serde_json::Map<String, serde_json::Value>>,
    side_data_list: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    disposition: Option<serde_json::Map<String, serde_json::Value>>,
}

fn num<T: std::str::FromStr>(s: &Option<String>) -> Option<T> {
    s.as_deref().and_then(|s| s.trim().parse().ok())
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

impl RawStream {
    fn rotation(&self) -> i32 {
        let from_side_data = self.side_data_list.iter().flatten().find_map(|sd| {
            sd.get("rotation")
                .and_then(|r| r.as_f64().or_else(|| r.as_str()?.parse().ok()))
        });
        let from_tag = self
            .tags
            .as_ref()
            .and_then(|t| t.get("rotate")?.as_str()?.parse::<f64>().ok());
        from_side_data
            .or(from_tag)
            .map_or(0, |r| (r.round() as i64).rem_euclid(360) as i32)
    }

    fn is_attached_picture(&self) -> bool {
        self.disposition
            .as_ref()
            .and_then(|d| d.get("attached_pic")?.as_i64())
            == Some(1)
    }
}

/// How long the audio and video last together: from the earliest start to the latest end.
/// An MP4 whose timestamps start late (an initial empty edit) reports the empty edit in
/// its format duration; the streams say how much media there is.
fn media_span(streams: &[RawStream]) -> Option<f64> {
    let spans: Vec<(f64, f64)> = streams
        .iter()
        .filter(|s| matches!(s.codec_type.as_deref(), Some("video" | "audio")))
        .filter(|s| !s.is_attached_picture())
        .filter_map(|s| {
            let start = finite(num(&s.start_time))?;
            let duration = finite(num(&s.duration)).filter(|d| *d > 0.0)?;
            Some((start, start + duration))
        })
        .collect();
    let first = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let last = spans.iter().map(|s| s.1).reduce(f64::max)?;
    Some(last - first)
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
pub fn parse_probe_json(path: &str, json: &str) -> Result<MediaInfo, ProbeError> {
    let raw: RawProbe =
        serde_json::from_str(json).map_err(|e| ProbeError::BadJson(e.to_string()))?;
    let not_media = |reason: &str| ProbeError::NotMedia {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let format = raw
        .format
        .ok_or_else(|| not_media("no container format found"))?;
    if raw.streams.is_empty() {
        return Err(not_media("it has no audio or video streams"));
    }
    let video = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && !s.is_attached_picture())
        .map(|s| -> Result<VideoStream, ProbeError> {
            let (width, height) = match (s.width, s.height) {
                (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
                _ => return Err(not_media("the video stream has no frame size")),
            };
            let fps = s
                .avg_frame_rate
                .as_deref()
                .and_then(Rational::parse)
                .or_else(|| s.r_frame_rate.as_deref().and_then(Rational::parse))
                .ok_or_else(|| not_media("the video stream has no frame rate"))?;
            Ok(VideoStream {
                index: s.index,
                codec: s.codec_name.clone().unwrap_or_default(),
                width,
                height,
                fps,
                pix_fmt: s.pix_fmt.clone().unwrap_or_default(),
                rotation: s.rotation(),
                interlaced: matches!(s.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt")),
                bit_rate: num(&s.bit_rate),
                start_time: finite(num(&s.start_time)).unwrap_or(0.0),
                frames: num(&s.nb_read_packets),
            })
        })
        .transpose()?;
    let audio = raw
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|s| AudioStream {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
            sample_rate: num(&s.sample_rate).unwrap_or(0),
            channels: s.channels.unwrap_or(0),
            start_time: finite(num(&s.start_time)).unwrap_or(0.0),
        })
        .collect();
    let duration = media_span(&raw.streams)
        .or_else(|| finite(num(&format.duration)))
        .unwrap_or(0.0);
    Ok(MediaInfo {
        format: format.format_name.unwrap_or_default(),
        duration: duration.max(0.0),
        start_time: finite(num(&format.start_time)).unwrap_or(0.0),
        bit_rate: num(&format.bit_rate),
        video,
        audio,
        stream_types: raw
            .streams
            .iter()
            .map(|s| s.codec_type.clone().unwrap_or_else(|| "unknown".into()))
            .collect(),
    })
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

/// Presentation times of the first video stream's keyframes, read from packet flags
/// (nothing is decoded). Used to predict where the segment muxer will cut.
pub async fn keyframe_times(tools: &Tools, path: &Path) -> Result<Vec<f64>, ProbeError> {
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
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (t, flags) = l.split_once(',')?;
            flags.starts_with('K').then(|| t.parse().ok()).flatten()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_streams_rotation_and_interlacing() {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
           "avg_frame_rate":"30000/1001","pix_fmt":"yuv420p","field_order":"tt","start_time":"0.033",
           "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
          {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2},
          {"index":2,"codec_type":"subtitle","codec_name":"mov_text"}],
          "format":{"format_name":"mov,mp4","duration":"12.5","bit_rate":"800000"}}"#;
        let info = parse_probe_json("x.mp4", json).expect("valid probe");
        let v = info.video.as_ref().expect("video");
        assert_eq!(
            v.fps,
            Rational {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(v.rotation, 270);
        assert_eq!(v.display_size(), (1080, 1920));
        assert!(v.interlaced);
        assert!(info.has_audio());
        assert_eq!(info.stream_types, ["video", "audio", "subtitle"]);
        assert_eq!(info.duration, 12.5);
    }

    #[test]
    fn duration_is_the_media_span_not_an_initial_empty_edit() {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"h264","width":320,"height":180,
           "avg_frame_rate":"25/1","start_time":"1.500000","duration":"8.000000"},
          {"index":1,"codec_type":"audio","codec_name":"aac","start_time":"1.478000","duration":"8.021333"}],
          "format":{"format_name":"mov,mp4","start_time":"1.478000","duration":"9.500000"}}"#;
        let info = parse_probe_json("x.mp4", json).expect("valid probe");
        // From the audio's start (1.478) to the video's end (9.5).
        assert!((info.duration - 8.022).abs() < 1e-6, "{}", info.duration);
        // Without stream durations (Matroska), the format's duration stands.
        let mkv = r#"{"streams":[{"index":0,"codec_type":"video","width":2,"height":2,
          "avg_frame_rate":"25/1","start_time":"0.000000"}],"format":{"duration":"4.000000"}}"#;
        assert_eq!(
            parse_probe_json("x.mkv", mkv).map(|i| i.duration).ok(),
            Some(4.0)
        );
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(matches!(
            parse_probe_json("a", r#"{"streams":[],"format":{}}"#),
            Err(ProbeError::NotMedia { .. })
        ));
        assert!(matches!(
            parse_probe_json("a", "{"),
            Err(ProbeError::BadJson(_))
        ));
        let bad_fps = r#"{"streams":[{"index":0,"codec_type":"video","width":2,"height":2,"avg_frame_rate":"0/0"}],"format":{}}"#;
        assert!(parse_probe_json("a", bad_fps).is_err());
    }
}
