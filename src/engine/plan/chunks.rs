//! How a source is cut: whole (and why), or by the segment muxer into chunks; and the
//! chunks themselves, predicted from keyframes (`spool plan`) or inspected after the cut.

use std::path::{Path, PathBuf};

use super::PlanInputs;
use crate::engine::exec::{Command, Phase};
use crate::media::chunk::predict_segments;
use crate::media::command::segment_args;
use crate::media::hash::FileDigest;
use crate::media::probe::MediaInfo;
use crate::workflow::schema::Chunking;

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
        }
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
        })
        .collect()
}
