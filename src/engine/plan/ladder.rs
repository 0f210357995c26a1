//! `ladder: per_title` in the plan: the profiles that fit the source are candidates, each
//! sample-encoded at a few CRFs on chunks spread over the file; the rungs are then taken from
//! the bitrate-quality hull and planned like a fixed ladder at the CRFs chosen. Pure: the
//! sample encodes run in the job (`engine/job/ladder.rs`).

use serde::{Deserialize, Serialize};

use super::quality::{SearchPlan, TITLE_SAMPLES};
use crate::media::profiles::{Codec, RateControl, Rung};
use crate::media::quality::hull::{choose, upper_hull, LadderPoint, Pick};
use crate::media::quality::score::Scoring;
use crate::media::quality::search::Search;
use crate::media::quality::{display_size, Metric};
use crate::workflow::schema::{Ladder, Workflow};

/// What a per-title ladder samples and how it picks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LadderPlan {
    pub metric: Metric,
    pub crfs: Vec<u32>,
    pub rungs: usize,
    pub min_score: f64,
    pub top_score: f64,
    /// One per candidate rung: its probe preset and scoring (at the display size, so every
    /// height is judged as the viewer sees it).
    pub candidates: Vec<SearchPlan>,
}

/// The hull as measured, and the rungs taken from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LadderResult {
    pub metric: Metric,
    /// The size every sample was scored at, and every how many frames.
    pub display: (u32, u32),
    pub subsample: u32,
    /// The chunks sampled.
    pub sampled: Vec<usize>,
    /// Every candidate × CRF, with whether it is on the hull and chosen.
    pub points: Vec<LadderPoint>,
}

impl LadderResult {
    /// The chosen points, by rising bitrate.
    pub fn chosen(&self) -> impl Iterator<Item = &LadderPoint> {
        self.points.iter().filter(|p| p.chosen)
    }
}

/// The per-title ladder a workflow asks for, over the rungs that fit the source.
pub fn plan_ladder(w: &Workflow, rungs: &[Rung], upright: (u32, u32)) -> Option<LadderPlan> {
    if w.ladder != Ladder::PerTitle || rungs.is_empty() {
        return None;
    }
    let settings = w.per_title.clone().unwrap_or_default();
    let codec = rungs[0].codec;
    let crfs = settings.crfs.clone().unwrap_or_else(|| default_crfs(codec));
    let scoring = Scoring {
        metric: settings.metric,
        display: display_size(upright, 1080),
        subsample: settings.subsample,
    };
    let candidates = rungs
        .iter()
        .enumerate()
        .map(|(i, r)| SearchPlan {
            rung: i,
            name: r.name.clone(),
            metric: settings.metric,
            scope: crate::media::quality::Scope::Title,
            search: Search {
                target: settings.top_score(),
                tolerance: settings.metric.default_tolerance(),
                min_crf: crfs.iter().copied().min().unwrap_or(0),
                max_crf: crfs.iter().copied().max().unwrap_or(0),
                start: crfs.first().copied().unwrap_or(0),
                max_probes: crfs.len(),
                slope: 1.0,
            },
            scoring,
            probe_preset: settings
                .probe_preset
                .clone()
                .unwrap_or_else(|| r.preset.clone()),
        })
        .collect();
    Some(LadderPlan {
        metric: settings.metric,
        rungs: settings.rungs.unwrap_or(4).min(rungs.len()),
        min_score: settings.min_score(),
        top_score: settings.top_score(),
        crfs,
        candidates,
    })
}

/// CRFs spread over the usable range of each codec's scale.
fn default_crfs(codec: Codec) -> Vec<u32> {
    match codec {
        Codec::H264 => vec![20, 24, 28, 32, 36],
        Codec::H265 => vec![22, 26, 30, 34, 38],
        Codec::Vp9 | Codec::Av1 => vec![24, 32, 40, 48, 56],
    }
}

impl LadderPlan {
    /// Marks the hull and the chosen points.
    pub fn decide(&self, mut points: Vec<LadderPoint>, sampled: Vec<usize>) -> LadderResult {
        let hull = upper_hull(&points);
        let pick = Pick {
            rungs: self.rungs,
            min_score: self.min_score,
            top_score: self.top_score,
        };
        let chosen = choose(&points, &hull, pick);
        for i in hull {
            points[i].on_hull = true;
        }
        for i in chosen {
            points[i].chosen = true;
        }
        let scoring = self.candidates.first().map(|c| c.scoring);
        LadderResult {
            metric: self.metric,
            display: scoring.map_or((0, 0), |s| s.display),
            subsample: scoring.map_or(1, |s| s.subsample),
            sampled,
            points,
        }
    }

    /// Words for `spool plan`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.candidates.iter().map(|c| c.name.as_str()).collect();
        let (display, subsample, preset) =
            self.candidates
                .first()
                .map_or(((0, 0), 1, String::new()), |c| {
                    (
                        c.scoring.display,
                        c.scoring.subsample,
                        c.probe_preset.clone(),
                    )
                });
        format!(
            "per-title ladder: samples {} × CRF {:?} on up to {TITLE_SAMPLES} chunks spread over the file (preset {preset}, each cached), {} scored at {}x{} on every {} frame(s); keeps the bitrate-{} hull and takes up to {} rungs from it, the top one the cheapest reaching {}, none below {}",
            names.join(", "),
            self.crfs,
            self.metric.name(),
            display.0,
            display.1,
            subsample,
            self.metric.name(),
            self.rungs,
            self.top_score,
            self.min_score,
        )
    }
}

/// The workflow as the hull chose it: the chosen profiles at their CRFs, a fixed ladder.
pub fn chosen_workflow(w: &Workflow, result: &LadderResult) -> Workflow {
    let mut chosen = w.clone();
    chosen.ladder = Ladder::Fixed;
    chosen.per_title = None;
    chosen.profiles = w
        .profiles
        .iter()
        .filter_map(|p| {
            let point = result.chosen().find(|c| c.profile == p.name)?;
            let mut p = p.clone();
            p.crf = Some(point.crf);
            p.rate_control = RateControl::Crf;
            p.quality = None;
            Some(p)
        })
        .collect();
    chosen
}
