//! Cutting the source: frame ranges need no cutting (each task decodes its own); copy cuts
//! run the planned segment command, then every chunk is hashed and its frames counted. A
//! cut spool cannot trust becomes a whole-file encode with the reason recorded.

use super::JobCtx;
use crate::engine::error::JobStop;
use crate::engine::plan::chunks::{ChunkContent, ChunkRef, ChunkingPlan, SegmentPlan};
use crate::engine::plan::PlanInputs;
use crate::media::chunk::parse_segment_list;
use crate::media::hash::digest_file;
use crate::media::probe::count_video_frames;
use crate::media::run::RunError;

/// What cutting gave: chunks, or the reason to encode the whole file instead.
enum Segmented {
    Chunks(Vec<ChunkRef>),
    Whole(String),
}

/// The chunks to encode, and why the file is encoded whole if it is.
pub struct Cut {
    pub whole_file_reason: Option<String>,
    pub chunks: Vec<ChunkRef>,
}

impl JobCtx<'_> {
    pub(super) async fn cut(
        &self,
        inputs: &PlanInputs<'_>,
        chunking: &ChunkingPlan,
        whole: ChunkContent,
    ) -> Result<Cut, JobStop> {
        let reason = match chunking {
            ChunkingPlan::Whole { reason } => reason.clone(),
            ChunkingPlan::Ranges(ranges) => {
                return Ok(Cut {
                    whole_file_reason: None,
                    chunks: ChunkRef::ranges(inputs, ranges, Some(&whole.digest)),
                })
            }
            ChunkingPlan::Segment(segment) => match self.segment(segment, whole.frames).await? {
                Segmented::Chunks(chunks) => {
                    return Ok(Cut {
                        whole_file_reason: None,
                        chunks,
                    })
                }
                Segmented::Whole(reason) => reason,
            },
        };
        self.note(format!("encoding whole file: {reason}"));
        Ok(Cut {
            whole_file_reason: Some(reason),
            chunks: vec![ChunkRef::whole(inputs, Some(whole))],
        })
    }

    /// Runs the segment muxer and inspects its chunks.
    async fn segment(&self, plan: &SegmentPlan, source_frames: u64) -> Result<Segmented, JobStop> {
        tokio::fs::create_dir_all(&plan.dir)
            .await
            .map_err(crate::engine::error::JobError::io("work dir"))?;
        let run = self
            .engine
            .runner
            .run(&plan.command, &self.placement, &self.cancel, |_| {})
            .await;
        match run {
            Err(RunError::Cancelled) => return Err(JobStop::Cancelled),
            Err(e) => return Ok(Segmented::Whole(format!("segmenting failed: {e}"))),
            Ok(_) => {}
        }
        let text = match tokio::fs::read_to_string(&plan.list).await {
            Ok(t) => t,
            Err(e) => {
                return Ok(Segmented::Whole(format!(
                    "the segment list is unreadable: {e}"
                )))
            }
        };
        let segments = match parse_segment_list(&text, &plan.dir) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => return Ok(Segmented::Whole("the segment muxer wrote no chunks".into())),
            Err(e) => return Ok(Segmented::Whole(format!("unreadable segment list: {e}"))),
        };
        // Hash and count every chunk at once: each count is an ffprobe start (~80 ms).
        let tools = self.engine.runner.tools();
        let inspected = futures::future::join_all(segments.iter().map(|seg| async move {
            let path = seg.path.clone();
            let digest = tokio::task::spawn_blocking(move || digest_file(&path)).await;
            let frames = count_video_frames(tools, &seg.path).await;
            (digest, frames)
        }))
        .await;
        let mut chunks = Vec::new();
        for (i, (seg, (digest, frames))) in segments.iter().zip(inspected).enumerate() {
            let Ok(Ok(digest)) = digest else {
                return Ok(Segmented::Whole(format!("chunk {i} could not be hashed")));
            };
            let frames = match frames {
                Ok(n) => n,
                Err(e) => return Ok(Segmented::Whole(format!("chunk {i} is unreadable: {e}"))),
            };
            if frames == 0 {
                continue;
            }
            chunks.push(ChunkRef {
                index: Some(i as u32),
                path: seg.path.clone(),
                duration: (seg.end_s - seg.start_s).max(0.001),
                content: Some(ChunkContent { digest, frames }),
                range: None,
            });
        }
        let total: u64 = chunks
            .iter()
            .filter_map(|c| c.content.as_ref())
            .map(|c| c.frames)
            .sum();
        if total != source_frames {
            return Ok(Segmented::Whole(format!(
                "chunks hold {total} frames but the source has {source_frames}"
            )));
        }
        Ok(Segmented::Chunks(chunks))
    }
}
