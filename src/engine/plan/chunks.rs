//! How a source is cut: whole (and why), into exact frame ranges (boundaries every N
//! seconds or on scene cuts, decided before planning and kept with the job), or by the
//! segment muxer into copied chunks, predicted from keyframes (`spool plan`) or inspected
//! after the cut.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::analysis::Source;
use super::PlanInputs;
use crate::engine::exec::{Command, Phase};
use crate::media::chunk::predict_segments;
use crate::media::command::segment_args;
use crate::media::hash::FileDigest;
use crate::media::measure::scene_cuts;
use crate::media::probe::{video_packets, MediaInfo};
use crate::media::ranges::{
    frame_ranges, scene_boundaries, time_boundaries, FrameRange, SeekIndex,
};
use crate::media::tools::Tools;
use crate::workflow::chunking::{Boundaries, Chunking, Cut};

/// Why a source is encoded whole instead of in chunks, if it is.
pub fn whole_file_reason(c: &Chunking, media: &MediaInfo) -> Option<String> {
    if !c.enabled {
        return Some("chunking is disabled in the workflow".into());
    }
    if media.duration < c.min_duration_seconds {
        return Some(format!(
            "the source is {:.1}s, shorter than chunking.min_duration_seconds ({}s)",
            media.duration, c.min_duration_seconds
        ));
    }
    None
}

/// The decision before anything is cut.
#[derive(Debug, Clone)]
pub enum ChunkingPlan {
    Whole { reason: String },
    Segment(SegmentPlan),
    Ranges(Vec<FrameRange>),
}

/// Frame ranges decided before planning, kept with the job so a resumed job cuts the same
/// chunks (the same cache keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChunkLayout {
    pub ranges: Vec<FrameRange>,
    /// The scene cuts scdet found (scene boundaries only).
    pub scene_cuts: Option<Vec<f64>>,
    /// Why there are no ranges, when there are none.
    pub problem: Option<String>,
}

/// Reads the source's frame times and places the boundaries; None when the workflow does
/// not cut frame ranges or the source is encoded whole anyway.
pub async fn layout(
    tools: &Tools,
    c: &Chunking,
    source: &Source,
    input: &Path,
) -> Option<ChunkLayout> {
    if c.cut != Cut::Frames || whole_file_reason(c, &source.media).is_some() {
        return None;
    }
    let failed = |problem: String| ChunkLayout {
        problem: Some(problem),
        ..ChunkLayout::default()
    };
    let packets = match video_packets(tools, input).await {
        Ok(p) => p,
        Err(e) => return Some(failed(format!("frame times could not be read: {e}"))),
    };
    if packets.pts.len() as u64 != source.frames {
        return Some(failed(format!(
            "{} of the source's {} video packets carry a time",
            packets.pts.len(),
            source.frames
        )));
    }
    let (starts, cuts) = match c.boundaries {
        Boundaries::Time => (time_boundaries(&packets, c.segment_seconds), None),
        Boundaries::Scenes => match scene_cuts(tools, input, c.scene_threshold).await {
            Ok(cuts) => {
                let (min, max) = (c.min_seconds(), c.max_seconds());
                let starts = scene_boundaries(&packets, &cuts, c.segment_seconds, min, max);
                (starts, Some(cuts))
            }
            Err(e) => return Some(failed(format!("scene cuts could not be found: {e}"))),
        },
    };
    let frame = 1.0 / source.video.fps.as_f64().max(1.0);
    let end = packets.pts.last().map_or(0.0, |t| t + frame);
    let index = SeekIndex::of_format(&source.media.format);
    Some(ChunkLayout {
        ranges: frame_ranges(&packets, &starts, end, index),
        scene_cuts: cuts,
        problem: None,
    })
}

#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub command: Command,
    pub dir: PathBuf,
    /// The muxer's CSV list of segments.
    pub list: PathBuf,
}

impl SegmentPlan {
    /// The file the muxer writes for segment `index`.
    pub fn chunk_path(&self, index: usize) -> PathBuf {
        chunk_path(&self.dir, index)
    }
}

fn chunk_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("chunk-{index:05}.mkv"))
}

pub fn plan_chunking(inputs: &PlanInputs<'_>) -> ChunkingPlan {
    let c = &inputs.workflow.chunking;
    if let Some(reason) = whole_file_reason(c, inputs.media) {
        return ChunkingPlan::Whole { reason };
    }
    if let Some(reason) = &inputs.analysis.abandoned_chunking {
        return ChunkingPlan::Whole {
            reason: reason.clone(),
        };
    }
    if c.cut == Cut::Frames {
        let reason = match &inputs.analysis.chunks {
            None => "the source's frame times were not read".to_string(),
            Some(ChunkLayout {
                problem: Some(p), ..
            }) => p.clone(),
            Some(l) if l.ranges.len() < 2 => {
                "the source makes one chunk at this segment length".to_string()
            }
            Some(l) => return ChunkingPlan::Ranges(l.ranges.clone()),
        };
        return ChunkingPlan::Whole { reason };
    }
    let dir = inputs.work.join("chunks");
    let list = dir.join("chunks.csv");
    let args = segment_args(
        inputs.input,
        c.segment_seconds,
        &list,
        &dir.join("chunk-%05d.mkv"),
    );
    ChunkingPlan::Segment(SegmentPlan {
        command: Command {
            phase: Phase::Segment,
            label: "segment".into(),
            args,
        },
        dir,
        list,
    })
}

/// One piece of the source a task encodes: a chunk file, or the whole source.
#[derive(Debug, Clone)]
pub struct ChunkRef {
    /// The segment number; None for the whole source.
    pub index: Option<u32>,
    pub path: PathBuf,
    pub duration: f64,
    /// Known once the chunk exists (a run); a plan only predicts where chunks fall.
    pub content: Option<ChunkContent>,
    /// The frames of `path` this chunk is (frame-range cuts; `path` is the source).
    pub range: Option<FrameRange>,
}

#[derive(Debug, Clone)]
pub struct ChunkContent {
    pub digest: FileDigest,
    pub frames: u64,
}

impl ChunkRef {
    /// The whole source as the one chunk.
    pub fn whole(inputs: &PlanInputs<'_>, content: Option<ChunkContent>) -> ChunkRef {
        ChunkRef {
            index: None,
            path: inputs.input.to_path_buf(),
            duration: inputs.media.duration,
            content,
            range: None,
        }
    }

    /// Frame ranges of the source as chunks; `source` is the whole source's content when
    /// known (a range's content is the source's, its frames its own).
    pub fn ranges(
        inputs: &PlanInputs<'_>,
        ranges: &[FrameRange],
        source: Option<&FileDigest>,
    ) -> Vec<ChunkRef> {
        ranges
            .iter()
            .enumerate()
            .map(|(i, r)| ChunkRef {
                index: Some(i as u32),
                path: inputs.input.to_path_buf(),
                duration: r.seconds(),
                content: source.map(|digest| ChunkContent {
                    digest: digest.clone(),
                    frames: r.frames(),
                }),
                range: Some(*r),
            })
            .collect()
    }

    /// What besides the content and the settings makes this chunk's encode its own.
    pub fn cache_part(&self) -> Option<String> {
        self.range.map(|r| r.fingerprint())
    }
}

/// Where the segment muxer will cut, predicted from the keyframes.
pub fn predicted_chunks(
    segment: &SegmentPlan,
    keyframes: &[f64],
    segment_seconds: f64,
    end: f64,
) -> Vec<ChunkRef> {
    let cuts = predict_segments(keyframes, segment_seconds, end);
    let cuts = if cuts.is_empty() {
        vec![(0.0, end)]
    } else {
        cuts
    };
    cuts.iter()
        .enumerate()
        .map(|(i, (start, stop))| ChunkRef {
            index: Some(i as u32),
            path: segment.chunk_path(i),
            duration: (stop - start).max(0.001),
            content: None,
            range: None,
        })
        .collect()
}

/// How a job's source was chunked, as `spool plan` and the manifest say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkMethod {
    /// Exact frame ranges, boundaries every `segment_seconds`.
    Frames,
    /// Exact frame ranges, boundaries on scene cuts.
    Scenes,
    /// The segment muxer's copies, cut at the source's keyframes.
    Copy,
    #[default]
    Whole,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkingSummary {
    pub method: ChunkMethod,
    /// Why, in words.
    pub why: String,
    /// Where each chunk starts (seconds on the source's timeline; copy cuts: from the first
    /// frame).
    pub starts: Vec<f64>,
    /// Frames decoded only to reach chunks' first frames, all chunks together.
    pub preroll_frames: u64,
}

pub fn summarise(c: &Chunking, whole: Option<&str>, chunks: &[ChunkRef]) -> ChunkingSummary {
    if let Some(reason) = whole {
        return ChunkingSummary {
            method: ChunkMethod::Whole,
            why: reason.to_string(),
            ..ChunkingSummary::default()
        };
    }
    let ranges: Vec<&FrameRange> = chunks.iter().filter_map(|c| c.range.as_ref()).collect();
    if ranges.is_empty() {
        let mut at = 0.0;
        let starts = chunks
            .iter()
            .map(|c| {
                let s = at;
                at += c.duration;
                s
            })
            .collect();
        return ChunkingSummary {
            method: ChunkMethod::Copy,
            why: "chunking.cut: copy (the segment muxer cuts at the source's keyframes)".into(),
            starts,
            preroll_frames: 0,
        };
    }
    let (method, why) = match c.boundaries {
        Boundaries::Time => (
            ChunkMethod::Frames,
            format!(
                "exact frame ranges every {}s, each decoded from the keyframe before it",
                c.segment_seconds
            ),
        ),
        Boundaries::Scenes => (
            ChunkMethod::Scenes,
            format!(
                "exact frame ranges on scene cuts, {}s to {}s apart",
                c.min_seconds(),
                c.max_seconds()
            ),
        ),
    };
    ChunkingSummary {
        method,
        why,
        starts: ranges.iter().map(|r| r.start_s).collect(),
        preroll_frames: ranges.iter().map(|r| r.preroll).sum(),
    }
}
