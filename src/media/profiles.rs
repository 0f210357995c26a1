//! Codec tables: encoders, containers, CRF defaults and bitrate ladders.

use serde::{Deserialize, Serialize};

use super::colour::ColourPlan;
use super::picture::Picture;
use super::probe::SubtitleKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
    Vp9,
    Av1,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::H264, Codec::H265, Codec::Vp9, Codec::Av1];

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
        }
    }
    /// The codec name ffprobe reports for this codec's output.
    pub fn probe_name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "hevc",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
        }
    }
    pub fn encoder(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::H265 => "libx265",
            Codec::Vp9 => "libvpx-vp9",
            Codec::Av1 => "libsvtav1",
        }
    }
    /// Extension of the published file (and of the encoded chunks, so concat can copy).
    pub fn container_ext(self) -> &'static str {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => "mp4",
            Codec::Vp9 => "webm",
        }
    }
    /// The muxer (`-f`) of the published file.
    pub fn muxer(self) -> &'static str {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => "mp4",
            Codec::Vp9 => "webm",
        }
    }
    /// Whether the published file is an MP4, whose sample table spool reads in-process.
    pub fn is_mp4(self) -> bool {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => true,
            Codec::Vp9 => false,
        }
    }
    pub fn audio_encoder(self) -> &'static str {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => "aac",
            Codec::Vp9 => "libopus",
        }
    }
    pub fn default_audio_kbps(self) -> u32 {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => 128,
            Codec::Vp9 => 96,
        }
    }
    pub fn default_crf(self) -> u32 {
        match self {
            Codec::H264 => 23,
            Codec::H265 => 28,
            Codec::Vp9 => 32,
            Codec::Av1 => 35,
        }
    }
    pub fn crf_range(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Codec::H264 | Codec::H265 => 0..=51,
            Codec::Vp9 | Codec::Av1 => 0..=63,
        }
    }
    pub fn default_preset(self) -> &'static str {
        match self {
            Codec::H264 | Codec::H265 => "medium",
            Codec::Vp9 => "4",
            Codec::Av1 => "8",
        }
    }
    /// Whether `preset` is one this encoder accepts.
    pub fn preset_is_valid(self, preset: &str) -> bool {
        const X26X: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ];
        match self {
            Codec::H264 | Codec::H265 => X26X.contains(&preset),
            Codec::Vp9 => preset.parse::<u8>().is_ok_and(|n| n <= 8),
            Codec::Av1 => preset.parse::<u8>().is_ok_and(|n| n <= 13),
        }
    }
    /// ffmpeg 5.1's libsvtav1 wrapper has no multi-pass mode.
    pub fn supports_two_pass(self) -> bool {
        self != Codec::Av1
    }
    /// Relative cost of encoding one pixel, for weighting job progress.
    pub fn cost_weight(self) -> f64 {
        match self {
            Codec::H264 => 1.0,
            Codec::H265 => 3.0,
            Codec::Vp9 => 2.5,
            Codec::Av1 => 2.0,
        }
    }
}

pub const MIN_HEIGHT: u32 = 144;
pub const MAX_HEIGHT: u32 = 2160;

/// H.264 target bitrates (kbit/s) at up to 30 fps, per rung height.
const H264_KBPS: &[(u32, u32)] = &[
    (144, 150),
    (240, 300),
    (360, 600),
    (480, 1000),
    (720, 2500),
    (1080, 4500),
    (1440, 9000),
    (2160, 18000),
];

/// Target bitrate for a rung: the H.264 table scaled by codec efficiency, ×1.5 above 30 fps.
pub fn target_kbps(codec: Codec, height: u32, fps: f64) -> u32 {
    let base = H264_KBPS
        .iter()
        .find(|(h, _)| *h >= height)
        .or(H264_KBPS.last())
        .map_or(4500, |(_, k)| *k);
    let efficiency = match codec {
        Codec::H264 => 1.0,
        Codec::H265 => 0.6,
        Codec::Vp9 => 0.65,
        Codec::Av1 => 0.5,
    };
    let fps_factor = if fps > 30.5 { 1.5 } else { 1.0 };
    (f64::from(base) * efficiency * fps_factor).round() as u32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateControl {
    /// Constant quality, capped by maxrate/bufsize where the encoder supports it.
    Crf,
    /// Two passes at the target bitrate, each task with its own passlogfile.
    TwoPass,
}

/// One rung, with every value decided: what the argv builders consume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    pub name: String,
    pub codec: Codec,
    pub height: u32,
    pub rate_control: RateControl,
    pub crf: u32,
    pub preset: String,
    pub bitrate_kbps: u32,
    pub maxrate_kbps: u32,
    pub bufsize_kbps: u32,
    pub audio_kbps: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    pub container: Container,
    pub audio_channels: AudioChannels,
    /// Bit depth, tone mapping, tags and HDR metadata, decided for this source.
    pub colour: ColourPlan,
    /// Deinterlacing, crop and rotation, decided for this source (the same for every rung).
    pub picture: Picture,
    /// A quality target: `crf` is then searched per chunk or per title (not part of the
    /// cache key: the CRF it leads to is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<crate::media::quality::QualityTarget>,
}

impl Rung {
    /// Extension (and muxer) of this rung's encoded chunks. A picture spool turns upright
    /// is encoded from a source that carries a rotation flag, and ffmpeg 5.1 copies that
    /// flag onto an MP4 output with no way to clear it; Matroska does not store it.
    pub fn chunk_ext(&self) -> &'static str {
        match self.picture.turn {
            0 => self.codec.container_ext(),
            _ => "mkv",
        }
    }

    /// Everything that decides the encoded video (and nothing else: not the rung's name,
    /// its container or its audio), as the cache fingerprints it.
    pub fn video_settings(&self) -> serde_json::Value {
        serde_json::json!({
            "codec": self.codec, "height": self.height, "rate_control": self.rate_control,
            "crf": self.crf, "preset": self.preset, "bitrate_kbps": self.bitrate_kbps,
            "maxrate_kbps": self.maxrate_kbps, "bufsize_kbps": self.bufsize_kbps, "gop": self.gop,
            "colour": self.colour, "picture": self.picture,
        })
    }

    /// The coded height each encoded chunk must have; None when the picture lies on its side
    /// (a kept rotation), where the rung's height is the coded width.
    pub fn coded_height(&self) -> Option<u32> {
        (!self.picture.sideways()).then_some(self.height)
    }

    /// Frames out for `source_frames` in (deinterlacing to field rate doubles them).
    pub fn frames_from(&self, source_frames: u64) -> u64 {
        source_frames * self.picture.frame_factor()
    }
}

/// A plain H.264 CRF rung, for tests.
#[cfg(test)]
pub(crate) fn sample_rung(name: &str, height: u32) -> Rung {
    Rung {
        name: name.into(),
        codec: Codec::H264,
        height,
        rate_control: RateControl::Crf,
        crf: 23,
        preset: "fast".into(),
        bitrate_kbps: 300,
        maxrate_kbps: 450,
        bufsize_kbps: 600,
        audio_kbps: 128,
        gop: 25,
        container: Container::Mp4,
        audio_channels: AudioChannels::Stereo,
        colour: crate::media::colour::sdr_8bit(),
        picture: Picture::default(),
        quality: None,
    }
}

/// The file a rung is published as. What each can carry decides what a job keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Webm,
    Mkv,
}

/// How text subtitles go into a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtitleCodec {
    MovText,
    WebVtt,
    SubRip,
    Copy,
}

impl SubtitleCodec {
    pub fn encoder(self) -> &'static str {
        match self {
            SubtitleCodec::MovText => "mov_text",
            SubtitleCodec::WebVtt => "webvtt",
            SubtitleCodec::SubRip => "srt",
            SubtitleCodec::Copy => "copy",
        }
    }
}

impl Container {
    pub fn ext(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Webm => "webm",
            Container::Mkv => "mkv",
        }
    }
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Webm => "webm",
            Container::Mkv => "matroska",
        }
    }
    /// How a source subtitle track of `kind` and `codec` is written, or why it cannot be:
    /// text becomes mov_text in MP4 and WebVTT in WebM and is copied into Matroska (but
    /// mov_text, which Matroska does not take, becomes SubRip); bitmaps are copied into
    /// Matroska only.
    pub fn subtitle_codec(self, kind: SubtitleKind, codec: &str) -> Result<SubtitleCodec, String> {
        match (self, kind) {
            (Container::Mp4, SubtitleKind::Text) => Ok(SubtitleCodec::MovText),
            (Container::Webm, SubtitleKind::Text) => Ok(SubtitleCodec::WebVtt),
            (Container::Mkv, SubtitleKind::Text) if codec == "mov_text" => {
                Ok(SubtitleCodec::SubRip)
            }
            (Container::Mkv, SubtitleKind::Text | SubtitleKind::Bitmap) => Ok(SubtitleCodec::Copy),
            (Container::Mp4 | Container::Webm, SubtitleKind::Bitmap) => Err(format!(
                "bitmap subtitles ({codec}) cannot go into {}; an mkv profile keeps them",
                self.ext()
            )),
            (Container::Mkv, SubtitleKind::Other) if codec != "none" && !codec.is_empty() => {
                Ok(SubtitleCodec::Copy)
            }
            (_, SubtitleKind::Other) => Err(format!(
                "subtitles in {} cannot be converted for {}",
                if codec.is_empty() {
                    "an unknown codec"
                } else {
                    codec
                },
                self.ext()
            )),
        }
    }
    /// How far the muxer moves every packet (subtitles too) but not the chapters: Matroska
    /// takes no negative timestamps and shifts the whole file by AAC's 1024-sample priming
    /// (the audio is always encoded at 48 kHz); MP4 keeps the priming in an edit list.
    pub fn packet_shift_s(self, audio_encoder: Option<&str>) -> f64 {
        match (self, audio_encoder) {
            (Container::Mkv | Container::Webm, Some("aac")) => 1024.0 / 48_000.0,
            (Container::Mkv | Container::Webm | Container::Mp4, _) => 0.0,
        }
    }
    /// Whether attachments (fonts) fit.
    pub fn carries_attachments(self) -> bool {
        match self {
            Container::Mkv => true,
            Container::Mp4 | Container::Webm => false,
        }
    }
    /// Whether `codec`'s video can go in.
    pub fn takes(self, codec: Codec) -> bool {
        match (self, codec) {
            (Container::Mp4 | Container::Mkv, _) => true,
            (Container::Webm, Codec::Vp9 | Codec::Av1) => true,
            (Container::Webm, Codec::H264 | Codec::H265) => false,
        }
    }
    pub fn is_mp4(self) -> bool {
        self == Container::Mp4
    }
}

/// A rung's audio channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioChannels {
    /// At most two (a web player's usual).
    #[default]
    Stereo,
    Mono,
    /// As the source has them (5.1 stays 5.1).
    Keep,
}

impl AudioChannels {
    /// The channel count to ask the encoder for, if it must change.
    pub fn downmix(self, source: u32) -> Option<u32> {
        match self {
            AudioChannels::Stereo if source > 2 => Some(2),
            AudioChannels::Mono if source > 1 => Some(1),
            _ => None,
        }
    }
}

impl Codec {
    /// The container a rung of this codec is published in unless the profile says.
    pub fn default_container(self) -> Container {
        match self {
            Codec::H264 | Codec::H265 | Codec::Av1 => Container::Mp4,
            Codec::Vp9 => Container::Webm,
        }
    }
}
