//! The `chunking:` section: whether a source is cut into chunks, how (exact frame ranges or
//! the segment muxer's copy cuts), and where the boundaries fall (every N seconds, or on
//! scene cuts within bounds).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chunking {
    pub enabled: bool,
    /// The length asked for (time boundaries), or the target (scene boundaries).
    pub segment_seconds: f64,
    /// Shorter sources are encoded whole.
    pub min_duration_seconds: f64,
    pub cut: Cut,
    pub boundaries: Boundaries,
    /// Bounds of a scene-cut chunk (default half and twice `segment_seconds`).
    pub min_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    /// scdet's score above which a frame starts a new shot (0-100).
    pub scene_threshold: f64,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            enabled: true,
            segment_seconds: 6.0,
            min_duration_seconds: 20.0,
            cut: Cut::Frames,
            boundaries: Boundaries::Time,
            min_seconds: None,
            max_seconds: None,
            scene_threshold: 10.0,
        }
    }
}

impl Chunking {
    pub fn min_seconds(&self) -> f64 {
        self.min_seconds.unwrap_or(self.segment_seconds / 2.0)
    }

    pub fn max_seconds(&self) -> f64 {
        self.max_seconds.unwrap_or(self.segment_seconds * 2.0)
    }
}

/// How a chunk is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// Exact frame ranges of the source: each task decodes from the keyframe before its
    /// range and keeps exactly its frames. Holds for open GOPs and long GOPs.
    #[default]
    Frames,
    /// The segment muxer copies the source into chunk files at keyframes (no pre-roll
    /// decode; chunk lengths follow the source's keyframes).
    Copy,
}

/// Where chunk boundaries fall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundaries {
    /// Every `segment_seconds`.
    #[default]
    Time,
    /// On scene cuts, `min_seconds`..`max_seconds` apart (frame cuts only).
    Scenes,
}
