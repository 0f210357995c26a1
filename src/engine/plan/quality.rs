//! What a rung's quality target makes the planner do: which search it runs (bounds, start,
//! probes, the scoring size and frames), and, once searched, the CRF each chunk's task uses.
//! Pure: the search itself runs in the job (`engine/job/quality.rs`).

use serde::{Deserialize, Serialize};

use super::JobPlan;
use crate::media::profiles::{Codec, Rung};
use crate::media::quality::score::Scoring;
use crate::media::quality::search::{Choice, Probe, Search};
use crate::media::quality::{display_size, Metric, QualityTarget, Scope, ScoredAt};

/// Probe encodes per decision, at most.
pub const MAX_PROBES: usize = 4;

/// Title searches probe this many chunks, spread over the file.
pub const TITLE_SAMPLES: usize = 3;

/// One rung's search, as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchPlan {
    /// Index into `JobPlan::rungs`.
    pub rung: usize,
    pub name: String,
    pub metric: Metric,
    pub scope: Scope,
    pub search: Search,
    pub scoring: Scoring,
    /// The probes' preset; the rung's own means the chosen probe is the final encode.
    pub probe_preset: String,
}

impl SearchPlan {
    /// The rung as a probe at `crf` encodes it.
    pub fn probe_rung(&self, rung: &Rung, crf: u32) -> Rung {
        Rung {
            crf,
            preset: self.probe_preset.clone(),
            ..rung.clone()
        }
    }

    /// Whether a probe is exactly the final encode at its CRF.
    pub fn probe_is_final(&self, rung: &Rung) -> bool {
        self.probe_preset == rung.preset
    }

    /// Words for `spool plan`.
    pub fn describe(&self) -> String {
        let s = &self.search;
        let scope = match self.scope {
            Scope::Chunk => {
                "a CRF per chunk (the first chunk searched first, the others from its choice)"
                    .to_string()
            }
            Scope::Title => format!(
                "one CRF for the file, probed on up to {TITLE_SAMPLES} chunks spread over it"
            ),
        };
        format!(
            "{}: {} ≥ {} (tolerance {}), {scope}; interpolated search from CRF {} within {}..={}, at most {} probes at preset {} (each cached by chunk, settings and CRF); scored at {}x{} on every {} frame(s)",
            self.name,
            self.metric.name(),
            s.target,
            s.tolerance,
            s.start,
            s.min_crf,
            s.max_crf,
            s.max_probes,
            self.probe_preset,
            self.scoring.display.0,
            self.scoring.display.1,
            self.scoring.subsample,
        )
    }
}

/// The search each quality rung runs; `upright` is the picture's size as the viewer sees it.
pub fn plan_searches(rungs: &[Rung], upright: (u32, u32)) -> Vec<SearchPlan> {
    rungs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let q = r.quality.as_ref()?;
            Some(search_plan(i, r, q, upright))
        })
        .collect()
}

fn search_plan(index: usize, rung: &Rung, q: &QualityTarget, upright: (u32, u32)) -> SearchPlan {
    let (lo, hi) = default_bounds(rung.codec);
    let min_crf = q.min_crf.unwrap_or(lo);
    let max_crf = q.max_crf.unwrap_or(hi).max(min_crf);
    SearchPlan {
        rung: index,
        name: rung.name.clone(),
        metric: q.metric,
        scope: q.scope,
        search: Search {
            target: q.target,
            tolerance: q.tolerance(),
            min_crf,
            max_crf,
            start: rung.codec.default_crf().clamp(min_crf, max_crf),
            max_probes: MAX_PROBES,
            slope: usual_slope(q.metric, rung.codec),
        },
        scoring: Scoring {
            metric: q.metric,
            display: display_size(
                upright,
                match q.scored_at {
                    ScoredAt::Display => 1080,
                    ScoredAt::Rung => rung.height,
                },
            ),
            subsample: q.subsample,
        },
        probe_preset: q
            .probe_preset
            .clone()
            .unwrap_or_else(|| rung.preset.clone()),
    }
}

/// The CRFs a search looks in when the workflow does not say.
fn default_bounds(codec: Codec) -> (u32, u32) {
    match codec {
        Codec::H264 => (16, 38),
        Codec::H265 => (18, 40),
        Codec::Vp9 | Codec::Av1 => (20, 55),
    }
}

/// How much a score usually falls per CRF step near common targets (measured on x264 and
/// the others' wider scales); the search measures its own after two probes.
fn usual_slope(metric: Metric, codec: Codec) -> f64 {
    let per_step = match metric {
        // x264 veryfast on testsrc2 at 240p-720p near VMAF 92-95: 0.4-1.0 per step (session
        // 10; 1.5 before made the second probe a one-step move, and most chunks took 4 probes).
        Metric::Vmaf => 0.8,
        Metric::Ssim => 0.002,
        Metric::Psnr | Metric::Xpsnr => 0.5,
    };
    match codec {
        Codec::H264 | Codec::H265 => per_step,
        Codec::Vp9 | Codec::Av1 => per_step * 0.6,
    }
}

/// A rung's search as it ran: the CRF each chunk got, and every probe behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResult {
    pub plan: SearchPlan,
    /// One per chunk, in chunk order.
    pub chunks: Vec<ChunkCrf>,
    /// Title scope: the chunks probed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampled: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkCrf {
    pub chunk: usize,
    pub choice: Choice,
    /// The probes this choice came from (title scope: the aggregate over the samples).
    pub probes: Vec<Probe>,
    /// The chosen probe's file when it is exactly the chunk's final encode.
    #[serde(skip)]
    pub final_probe: Option<std::path::PathBuf>,
}

impl JobPlan {
    /// The chosen probe that is already chunk `chunk`'s encode of rung `rung`, if any.
    pub fn final_probe(&self, chunk: usize, rung: usize) -> Option<&std::path::Path> {
        self.quality
            .iter()
            .find(|r| r.plan.rung == rung)?
            .chunks
            .iter()
            .find(|c| c.chunk == chunk)?
            .final_probe
            .as_deref()
    }

    /// The rungs a task encodes, each with the CRF its search chose for the task's chunk.
    pub fn task_rungs(&self, task: &super::PlannedTask) -> Vec<Rung> {
        task.rungs
            .iter()
            .zip(&task.crf)
            .map(|(r, crf)| {
                let rung = &self.rungs[*r];
                match crf {
                    Some(crf) => Rung {
                        crf: *crf,
                        ..rung.clone()
                    },
                    None => rung.clone(),
                }
            })
            .collect()
    }

    /// Gives every task the CRFs the searches chose and rebuilds its commands (before any
    /// hook sees them).
    pub fn apply_searches(&mut self, results: Vec<SearchResult>) {
        for task in &mut self.tasks {
            task.crf = task
                .rungs
                .iter()
                .map(|r| {
                    results
                        .iter()
                        .find(|s| s.plan.rung == *r)
                        .and_then(|s| s.chunks.iter().find(|c| c.chunk == task.chunk))
                        .map(|c| c.choice.crf)
                })
                .collect();
        }
        let rebuilt: Vec<Vec<crate::engine::exec::Command>> = self
            .tasks
            .iter()
            .map(|task| {
                let rungs = self.task_rungs(task);
                let refs: Vec<&Rung> = rungs.iter().collect();
                let mut commands =
                    super::encode_task_commands(&self.chunks[task.chunk], &refs, &task.outputs);
                for c in &mut commands {
                    c.label = task.label.clone();
                }
                commands
            })
            .collect();
        for (task, commands) in self.tasks.iter_mut().zip(rebuilt) {
            task.commands = commands;
        }
        self.quality = results;
    }
}
