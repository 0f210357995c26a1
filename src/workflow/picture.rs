//! The `picture:` section (what is done to the source's picture before the ladder) and
//! `loudness:` (what is done to its sound).

use serde::{Deserialize, Serialize};

pub use crate::media::picture::FieldRate;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PictureSettings {
    /// auto: when the stream says it is interlaced, or idet finds it is when it does not say.
    pub deinterlace: Deinterlace,
    /// frame: one frame per interlaced frame; field: one per field (double rate).
    pub field_rate: FieldRate,
    /// upright: rotated sources are turned; keep: encoded as stored, with the rotation flag.
    pub rotation: Rotation,
    /// auto: black borders found by cropdetect sampled across the whole file are cut.
    pub crop: CropMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deinterlace {
    #[default]
    Auto,
    Off,
    Always,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotation {
    #[default]
    Upright,
    Keep,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    #[default]
    Off,
    Auto,
}

/// Two-pass loudnorm: measured once per track, applied in the track's single encode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoudnessSettings {
    /// Integrated loudness to reach, LUFS (-16 for the web, -23 for EBU broadcast).
    pub target_lufs: f64,
    /// Highest true peak, dBTP.
    #[serde(default = "default_true_peak")]
    pub true_peak_db: f64,
    /// Loudness range to keep within, LU.
    #[serde(default = "default_range")]
    pub range_lu: f64,
}

fn default_true_peak() -> f64 {
    -1.5
}

fn default_range() -> f64 {
    11.0
}
