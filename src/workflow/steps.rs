//! The settings of the built-in steps that take more than a line: thumbnails and
//! transcription (re-exported by `schema`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThumbnailsStep {
    /// Width of poster.jpg; the height follows the aspect ratio.
    pub poster_width: u32,
    /// One thumbnail every this many seconds.
    pub interval_seconds: f64,
    /// Width of each thumbnail in the sheets.
    pub thumb_width: u32,
    /// Thumbnails per sheet: columns × rows.
    pub columns: u32,
    pub rows: u32,
}

impl Default for ThumbnailsStep {
    fn default() -> Self {
        ThumbnailsStep {
            poster_width: 1280,
            interval_seconds: 5.0,
            thumb_width: 160,
            columns: 10,
            rows: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscribeStep {
    /// A CTranslate2 Whisper model directory, relative to the workflow file;
    /// `$SPOOL_WHISPER_MODEL` when absent.
    pub model: Option<std::path::PathBuf>,
    /// ISO 639-1 code; detected when absent (multilingual models; English-only ones are `en`).
    pub language: Option<String>,
    /// Translate to English (multilingual models).
    pub translate: bool,
    pub beam_size: u32,
    pub compute_type: ComputeType,
    /// CPU threads for Whisper; 0 = one per core.
    pub threads: u32,
    /// Each word's time too (manifest cues, karaoke-style WebVTT).
    pub word_timestamps: bool,
}

impl Default for TranscribeStep {
    fn default() -> Self {
        TranscribeStep {
            model: None,
            language: None,
            translate: false,
            beam_size: 5,
            compute_type: ComputeType::Int8,
            threads: 0,
            word_timestamps: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeType {
    Int8,
    Int8Float32,
    Float32,
    Default,
}
