//! `manifest.json`: the typed record of a finished job, written last. Its fields are the
//! contract the README documents; `schema` changes when they do.

use serde::{Deserialize, Serialize};

use crate::media::picture::Picture;
use serde_json::Value;

pub use super::plan::streams::Dropped;
use crate::media::probe::MediaInfo;
use crate::store::JobId;
use crate::workflow::Original;

pub const MANIFEST_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub job: JobId,
    pub input: String,
    pub input_md5: String,
    pub workflow: WorkflowRef,
    pub source: SourceSummary,
    pub outputs: Vec<OutputEntry>,
    /// Each step's data, by step name.
    pub steps: serde_json::Map<String, Value>,
    /// Profiles not encoded, each with the reason.
    pub skipped: Vec<String>,
    /// Why the file was encoded whole instead of in chunks.
    pub fallback_reason: Option<String>,
    pub chunks: usize,
    /// How the source was chunked (frame ranges, scenes, copy cuts, whole) and why.
    #[serde(default)]
    pub chunking: crate::engine::plan::chunks::ChunkingSummary,
    pub reused_chunks: usize,
    pub original: Original,
    pub elapsed_s: f64,
    /// Source streams left out of some output or of all, each with why.
    #[serde(default)]
    pub dropped: Vec<Dropped>,
    /// What was done to the picture: deinterlacing, crop, rotation.
    #[serde(default)]
    pub picture: Picture,
    /// Each normalised audio encode: its loudness measured before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loudness: Vec<LoudnessEntry>,
    /// What could not be measured before planning, and so was not acted on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The earlier job whose verified outputs were linked here instead of encoding again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<JobId>,
    /// Each quality rung's search: the CRF chosen per chunk and the probes behind it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<crate::engine::plan::quality::SearchResult>,
    /// `ladder: per_title`: every sampled point, the hull, and the rungs chosen from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_title: Option<crate::engine::plan::ladder::LadderResult>,
    /// Every file in the job's output directory when it finished (HLS segments and
    /// playlists, sprites, subtitles included; not this manifest), with its SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
}

/// One published file, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Every file under `dir` but the manifest and temp files, hashed, sorted by path.
pub fn published_files(dir: &std::path::Path) -> std::io::Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !kind.is_file() || rel == "manifest.json" || rel.contains(".spool-tmp") {
                continue;
            }
            let digest = crate::media::hash::digest_file(&path)?;
            files.push(FileEntry {
                path: rel,
                bytes: digest.size,
                sha256: digest.sha256,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// One audio track's loudness normalisation (EBU R128), as measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoudnessEntry {
    /// Source audio track (`a:N`).
    pub track: usize,
    pub encoder: String,
    pub target_lufs: f64,
    pub measured_lufs: f64,
    pub measured_true_peak_db: f64,
    /// Integrated loudness of the encoded track.
    pub result_lufs: f64,
    pub result_true_peak_db: f64,
}

impl Manifest {
    /// Bytes of every published output.
    pub fn bytes_out(&self) -> u64 {
        self.outputs.iter().map(|o| o.bytes).sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowRef {
    pub name: String,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceSummary {
    pub duration: f64,
    /// Display size (after rotation).
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: u64,
    pub has_audio: bool,
}

/// What an output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Video,
    Gif,
    Hls,
    Poster,
    Sprite,
    ThumbnailsVtt,
    Subtitles,
    /// A kind a Lua step named.
    #[serde(untagged)]
    Other(String),
}

/// One published file (or, for HLS, the master playlist of a published tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputEntry {
    /// The profile (rung) or step that made it.
    pub profile: String,
    pub kind: OutputKind,
    /// Relative to the output directory.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    pub bytes: u64,
    /// SHA-256 of the published file (rungs and previews), for consumers and for reuse.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Every stream of the file, as verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamEntry>,
    /// The published file's measured quality, for a rung with a quality target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<MeasuredQuality>,
}

/// A published rung scored against its source, on sampled frames at the display size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredQuality {
    pub metric: crate::media::quality::Metric,
    pub target: f64,
    pub tolerance: f64,
    pub mean: f64,
    /// 5th percentile over the frames scored.
    pub p5: f64,
    pub min: f64,
    pub frames_scored: usize,
    /// Every Nth frame was scored, at this size.
    pub subsample: u32,
    pub display: (u32, u32),
    /// mean ≥ target − tolerance.
    pub meets_target: bool,
}

/// One stream of a published file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub kind: String,
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
}

impl StreamEntry {
    /// The streams of a probed file: video, audio, subtitles.
    pub fn all_of(info: &MediaInfo) -> Vec<StreamEntry> {
        let blank = |kind: &str, codec: &str| StreamEntry {
            kind: kind.into(),
            codec: codec.into(),
            language: None,
            title: None,
            channels: None,
            bit_depth: None,
            transfer: None,
        };
        let mut out = Vec::new();
        if let Some(v) = &info.video {
            out.push(StreamEntry {
                bit_depth: Some(v.colour.bit_depth),
                transfer: v.colour.transfer.clone(),
                ..blank("video", &v.codec)
            });
        }
        for a in &info.audio {
            out.push(StreamEntry {
                language: a.label.language.clone(),
                title: a.label.title.clone(),
                channels: Some(a.channels),
                ..blank("audio", &a.codec)
            });
        }
        for s in &info.subtitles {
            out.push(StreamEntry {
                language: s.label.language.clone(),
                title: s.label.title.clone(),
                ..blank("subtitle", &s.codec)
            });
        }
        out
    }
}

impl OutputEntry {
    /// A file with no media facts (a step's sidecar, a playlist).
    pub fn file(profile: &str, kind: OutputKind, path: String, bytes: u64) -> OutputEntry {
        OutputEntry {
            profile: profile.to_string(),
            kind,
            path,
            codec: None,
            width: None,
            height: None,
            duration: None,
            frames: None,
            bytes,
            sha256: String::new(),
            streams: Vec::new(),
            quality: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_and_write_as_plain_strings() -> Result<(), serde_json::Error> {
        for (kind, text) in [
            (OutputKind::Video, "\"video\""),
            (OutputKind::ThumbnailsVtt, "\"thumbnails_vtt\""),
            (OutputKind::Other("sidecar".into()), "\"sidecar\""),
        ] {
            assert_eq!(serde_json::to_string(&kind)?, text);
            assert_eq!(serde_json::from_str::<OutputKind>(text)?, kind);
        }
        let e = OutputEntry::file("s", OutputKind::Other("file".into()), "a.txt".into(), 3);
        let v = serde_json::to_value(&e)?;
        assert!(v.get("codec").is_none() && v["bytes"] == 3 && v["kind"] == "file");
        Ok(())
    }
}
