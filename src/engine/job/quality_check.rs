//! The published rungs' quality, measured after the join: every rung with a target (or a
//! per-title hull point) scored against the source on sampled frames (every 5th at least),
//! all of them in one ffmpeg per way of scoring, so the source is decoded once.

use std::path::PathBuf;

use super::join::Staged;
use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::exec::{Command, Phase};
use crate::engine::manifest::MeasuredQuality;
use crate::engine::plan::JobPlan;
use crate::media::profiles::Rung;
use crate::media::quality::score::{read_scores, score_args, share_runs, Distorted, Scoring, Way};

/// One staged rung to score, and what it is held to.
struct Check<'a> {
    staged: usize,
    rung: &'a Rung,
    scoring: Scoring,
    target: f64,
    tolerance: f64,
    log: PathBuf,
}

impl JobCtx<'_> {
    /// Scores every staged rung that has an expectation and fills its manifest `quality`;
    /// a note says which miss.
    pub(super) async fn verify_quality(
        &self,
        plan: &JobPlan,
        staged: &mut [Staged],
    ) -> Result<(), JobStop> {
        let checks: Vec<Check> = staged
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let rung = plan.rungs.iter().find(|r| r.name == s.entry.profile)?;
                let (scoring, target, tolerance) = expectation(plan, rung)?;
                Some(Check {
                    staged: i,
                    rung,
                    scoring: Scoring {
                        subsample: scoring.subsample.max(5),
                        ..scoring
                    },
                    target,
                    tolerance,
                    log: self.work.join(format!("quality-{}.log", rung.name)),
                })
            })
            .collect();
        let Some(first) = checks.first() else {
            return Ok(());
        };
        let metrics = self.metrics_tool(&first.rung.name).await?;
        let runs = share_runs(&checks, |c| Way::of(None, c.rung, &c.scoring));
        for (way, group) in runs {
            let members: Vec<&Check> = group.iter().map(|i| &checks[*i]).collect();
            self.score_group(&metrics, way, &members, staged).await?;
        }
        for c in &checks {
            let scores = read_scores(c.scoring.metric, &c.log).map_err(|e| JobError::Quality {
                rung: c.rung.name.clone(),
                message: e.to_string(),
            })?;
            let _ = tokio::fs::remove_file(&c.log).await;
            let meets_target = scores.mean >= c.target - c.tolerance;
            if !meets_target {
                self.note(format!(
                    "{}: measured {} {:.2} is below the target {} by more than {}",
                    c.rung.name,
                    c.scoring.metric.name(),
                    scores.mean,
                    c.target,
                    c.tolerance
                ));
            }
            staged[c.staged].entry.quality = Some(MeasuredQuality {
                metric: c.scoring.metric,
                target: c.target,
                tolerance: c.tolerance,
                mean: scores.mean,
                p5: scores.p5,
                min: scores.min,
                frames_scored: scores.frames,
                subsample: c.scoring.subsample,
                display: c.scoring.display,
                meets_target,
            });
        }
        Ok(())
    }

    /// One scoring ffmpeg for rungs that see the source the same way.
    async fn score_group(
        &self,
        metrics: &crate::media::quality::MetricsTool,
        way: Way,
        members: &[&Check<'_>],
        staged: &[Staged],
    ) -> Result<(), JobStop> {
        let head = members[0];
        let reference = way.reference(self.input, None);
        let distorted: Vec<Distorted> = members
            .iter()
            .map(|c| Distorted {
                path: &staged[c.staged].tmp,
                log: &c.log,
                display: c.scoring.display,
            })
            .collect();
        let names: Vec<&str> = members.iter().map(|c| c.rung.name.as_str()).collect();
        let command = Command {
            phase: Phase::Score,
            label: format!("score {}", names.join(", ")),
            args: score_args(&reference, &distorted, &head.scoring),
        };
        self.score(metrics, &command).await
    }
}

/// What a published rung is checked against: its search's target, or for a per-title rung the
/// score its hull point was sampled at (the check then says how well the samples foretold it).
fn expectation(plan: &JobPlan, rung: &Rung) -> Option<(Scoring, f64, f64)> {
    if let Some(s) = plan.searches.iter().find(|s| s.name == rung.name) {
        return Some((s.scoring, s.search.target, s.search.tolerance));
    }
    let ladder = plan.per_title.as_ref()?;
    let point = ladder.chosen().find(|p| p.profile == rung.name)?;
    let scoring = Scoring {
        metric: ladder.metric,
        display: ladder.display,
        subsample: ladder.subsample,
    };
    Some((scoring, point.score, ladder.metric.default_tolerance()))
}
