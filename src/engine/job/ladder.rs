//! The per-title ladder's sampling, between cutting and planning the encodes: every
//! candidate rung at every sample CRF on a few chunks spread over the file (one probe ffmpeg
//! per chunk and candidate, decoding it once; one scoring ffmpeg for its CRFs), each probe
//! cached like a quality search's, then the hull and the rungs taken from it.

use super::probe::{probe_path, Wanted};
use super::quality::{pooled, samples};
use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::plan::ladder::{LadderPlan, LadderResult};
use crate::engine::plan::JobPlan;
use crate::media::quality::hull::LadderPoint;
use crate::store::ProbeRecord;

impl JobCtx<'_> {
    /// Samples the plan's candidates and chooses the ladder; None for a fixed ladder.
    pub(super) async fn choose_ladder(
        &self,
        plan: &JobPlan,
        fps: f64,
    ) -> Result<Option<LadderResult>, JobStop> {
        let Some(ladder) = &plan.ladder else {
            return Ok(None);
        };
        let metrics = self.metrics_tool("per_title").await?;
        if let Some(why) = metrics.missing(ladder.metric) {
            return Err(JobStop::Failed(JobError::Quality {
                rung: "per_title".into(),
                message: why,
            }));
        }
        let sampled = samples(plan.chunks.len());
        // One unit per chunk and candidate: a probe ffmpeg holds one height's encoders only.
        let units: Vec<(usize, Vec<Wanted>)> = sampled
            .iter()
            .flat_map(|c| {
                ladder.candidates.iter().map(move |s| {
                    let wanted = ladder
                        .crfs
                        .iter()
                        .map(|crf| Wanted {
                            search: s,
                            crf: *crf,
                        })
                        .collect();
                    (*c, wanted)
                })
            })
            .collect();
        let runs = units
            .iter()
            .map(|(c, wanted)| self.measure_chunk(plan, &metrics, *c, wanted));
        let measured = futures::future::try_join_all(runs).await?;
        let points = self.points(plan, ladder, &units, &measured, fps)?;
        self.drop_samples(plan, &units).await;
        let result = ladder.decide(points, sampled);
        if result.chosen().next().is_none() {
            return Err(JobStop::Failed(JobError::Quality {
                rung: "per_title".into(),
                message: "no sample encode could be measured, so no rung can be chosen".into(),
            }));
        }
        let chosen: Vec<String> = result
            .chosen()
            .map(|p| {
                format!(
                    "{} CRF {} ({:.0} kbit/s, {:.2})",
                    p.profile, p.crf, p.kbps, p.score
                )
            })
            .collect();
        self.note(format!(
            "per-title ladder: {} of {} points on the hull; chose {}",
            result.points.iter().filter(|p| p.on_hull).count(),
            result.points.len(),
            chosen.join(", ")
        ));
        Ok(Some(result))
    }

    /// Each candidate × CRF over the sampled chunks: bytes summed into kbit/s over the
    /// chunks' frames, scores weighted by the frames scored.
    fn points(
        &self,
        plan: &JobPlan,
        ladder: &LadderPlan,
        units: &[(usize, Vec<Wanted>)],
        measured: &[Vec<ProbeRecord>],
        fps: f64,
    ) -> Result<Vec<LadderPoint>, JobStop> {
        let mut points = Vec::new();
        for candidate in &ladder.candidates {
            let rung = &plan.rungs[candidate.rung];
            for (k, crf) in ladder.crfs.iter().enumerate() {
                let mut over: Vec<&ProbeRecord> = Vec::new();
                let mut frames = 0u64;
                for ((c, wanted), records) in units.iter().zip(measured) {
                    if wanted.first().map(|w| w.search.rung) != Some(candidate.rung) {
                        continue;
                    }
                    over.push(records.get(k).ok_or_else(|| {
                        JobError::Internal("a sample encode was not measured".into())
                    })?);
                    frames += plan.chunks[*c].content.as_ref().map_or(0, |d| d.frames);
                }
                let probe = pooled(*crf, &over);
                let seconds = frames as f64 / fps.max(1e-3);
                points.push(LadderPoint {
                    profile: rung.name.clone(),
                    height: rung.height,
                    crf: *crf,
                    kbps: probe.bytes as f64 * 8.0 / 1000.0 / seconds.max(1e-3),
                    score: probe.score,
                    on_hull: false,
                    chosen: false,
                });
            }
        }
        Ok(points)
    }

    /// Sample encodes are measured and cached; their files are not kept.
    async fn drop_samples(&self, plan: &JobPlan, units: &[(usize, Vec<Wanted<'_>>)]) {
        for (c, wanted) in units {
            for w in wanted {
                let rung = w.search.probe_rung(&plan.rungs[w.search.rung], w.crf);
                let _ = tokio::fs::remove_file(probe_path(&self.work, *c, &rung)).await;
            }
        }
    }
}
