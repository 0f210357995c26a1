//! The quality stage, between cutting and encoding: each rung with a target searches its
//! CRF (per chunk, or once on chunks sampled over the file), the rungs of one chunk in step
//! so every round is one probe ffmpeg and one scoring ffmpeg per chunk. Choices go into the
//! plan's tasks; a chosen probe made at the rung's own preset is the chunk's encode.

use super::probe::{probe_path, Wanted};
use super::JobCtx;
use crate::engine::artifacts::artifact_key;
use crate::engine::error::{JobError, JobStop};
use crate::engine::plan::quality::{ChunkCrf, SearchPlan, SearchResult, TITLE_SAMPLES};
use crate::engine::plan::JobPlan;
use crate::engine::task::execute::verify_rung;
use crate::engine::task::TaskRung;
use crate::media::quality::search::{Choice, Next, Probe};
use crate::media::quality::{MetricsTool, Scope};
use crate::store::{CacheRecord, ProbeRecord};

/// Chunks searched together, and the searches run on them.
struct Unit<'a> {
    chunks: Vec<usize>,
    searches: Vec<&'a SearchPlan>,
}

/// The chunk searches again, each starting at the CRF the first chunk chose for its rung.
fn warm_starts(searches: &[&SearchPlan], first: &[(Choice, Vec<Probe>)]) -> Vec<SearchPlan> {
    if first.len() != searches.len() {
        return searches.iter().map(|s| (*s).clone()).collect();
    }
    searches
        .iter()
        .zip(first)
        .map(|(s, (choice, _))| {
            let mut warm = (*s).clone();
            warm.search.start = choice.crf.clamp(s.search.min_crf, s.search.max_crf);
            warm
        })
        .collect()
}

impl JobCtx<'_> {
    /// The scoring ffmpeg, found once per job that needs one (and kept for the job).
    pub(super) async fn metrics_tool(&self, rung: &str) -> Result<MetricsTool, JobStop> {
        let main = self.engine.runner.tools().ffmpeg.clone();
        let tool = self
            .metrics
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || MetricsTool::locate(&main))
                    .await
                    .map_err(|e| JobStop::Failed(JobError::Internal(e.to_string())))?
                    .map_err(|e| {
                        JobStop::Failed(JobError::Quality {
                            rung: rung.to_string(),
                            message: e.to_string(),
                        })
                    })
            })
            .await?;
        Ok(tool.clone())
    }

    /// Runs every search of the plan and returns their results (empty when none).
    pub(super) async fn search_quality(
        &self,
        plan: &JobPlan,
    ) -> Result<Vec<SearchResult>, JobStop> {
        let Some(first) = plan.searches.first() else {
            return Ok(Vec::new());
        };
        let metrics = self.metrics_tool(&first.name).await?;
        for s in &plan.searches {
            if let Some(why) = metrics.missing(s.metric) {
                return Err(JobStop::Failed(JobError::Quality {
                    rung: s.name.clone(),
                    message: why,
                }));
            }
        }
        let of_scope = |scope| -> Vec<&SearchPlan> {
            plan.searches.iter().filter(|s| s.scope == scope).collect()
        };
        let (per_chunk, per_title) = (of_scope(Scope::Chunk), of_scope(Scope::Title));
        // The first chunk is searched first (beside a title search); every other chunk starts
        // from its choice, rung by rung: neighbouring scenes mostly need a CRF or two apart,
        // so most land on target at their first probe. Deterministic, so a repeated job asks
        // for the same (cached) probes.
        let mut units: Vec<Unit> = Vec::new();
        if !per_chunk.is_empty() {
            units.push(Unit {
                chunks: vec![0],
                searches: per_chunk.clone(),
            });
        }
        if !per_title.is_empty() {
            units.push(Unit {
                chunks: samples(plan.chunks.len()),
                searches: per_title,
            });
        }
        let runs = units.iter().map(|u| self.search_unit(plan, &metrics, u));
        let mut decided = futures::future::try_join_all(runs).await?;
        let warm: Vec<SearchPlan> = match decided.first() {
            Some(first) if !per_chunk.is_empty() => warm_starts(&per_chunk, first),
            _ => Vec::new(),
        };
        let rest: Vec<Unit> = (1..plan.chunks.len())
            .filter(|_| !warm.is_empty())
            .map(|c| Unit {
                chunks: vec![c],
                searches: warm.iter().collect(),
            })
            .collect();
        let runs = rest.iter().map(|u| self.search_unit(plan, &metrics, u));
        decided.extend(futures::future::try_join_all(runs).await?);
        units.extend(rest);
        let mut results: Vec<SearchResult> = plan
            .searches
            .iter()
            .map(|s| SearchResult {
                plan: s.clone(),
                chunks: Vec::new(),
                sampled: Vec::new(),
            })
            .collect();
        for (unit, choices) in units.iter().zip(decided) {
            for (search, (choice, probes)) in unit.searches.iter().zip(choices) {
                let Some(result) = results.iter_mut().find(|r| r.plan.rung == search.rung) else {
                    continue;
                };
                let rung = &plan.rungs[search.rung];
                let covered: Vec<usize> = match search.scope {
                    Scope::Chunk => unit.chunks.clone(),
                    Scope::Title => (0..plan.chunks.len()).collect(),
                };
                if search.scope == Scope::Title {
                    result.sampled = unit.chunks.clone();
                }
                for c in covered {
                    let chosen = search.probe_rung(rung, choice.crf);
                    let file = probe_path(&self.work, c, &chosen);
                    result.chunks.push(ChunkCrf {
                        chunk: c,
                        choice,
                        probes: if unit.chunks.contains(&c) {
                            probes.clone()
                        } else {
                            Vec::new()
                        },
                        final_probe: (search.probe_is_final(rung) && file.is_file())
                            .then_some(file),
                    });
                }
                result.chunks.sort_by_key(|c| c.chunk);
            }
        }
        for r in &results {
            let crfs: Vec<String> = r.chunks.iter().map(|c| c.choice.crf.to_string()).collect();
            self.note(format!(
                "{}: {} ≥ {} → CRF {}",
                r.plan.name,
                r.plan.metric.name(),
                r.plan.search.target,
                crfs.join(" ")
            ));
        }
        Ok(results)
    }

    /// One unit's searches, in step: each round asks every unfinished search for its next
    /// CRF and measures them all on the unit's chunks.
    async fn search_unit(
        &self,
        plan: &JobPlan,
        metrics: &MetricsTool,
        unit: &Unit<'_>,
    ) -> Result<Vec<(Choice, Vec<Probe>)>, JobStop> {
        let n = unit.searches.len();
        let mut probes: Vec<Vec<Probe>> = vec![Vec::new(); n];
        let mut chosen: Vec<Option<Choice>> = vec![None; n];
        loop {
            let mut wanted: Vec<(usize, Wanted)> = Vec::new();
            for (i, s) in unit.searches.iter().enumerate() {
                if chosen[i].is_some() {
                    continue;
                }
                match s.search.next(&probes[i]) {
                    Next::Done(c) => chosen[i] = Some(c),
                    Next::Probe(crf) => wanted.push((i, Wanted { search: s, crf })),
                }
            }
            if wanted.is_empty() {
                break;
            }
            let asked: Vec<Wanted> = wanted
                .iter()
                .map(|(_, w)| Wanted {
                    search: w.search,
                    crf: w.crf,
                })
                .collect();
            let per_chunk = unit
                .chunks
                .iter()
                .map(|c| self.measure_chunk(plan, metrics, *c, &asked));
            let measured = futures::future::try_join_all(per_chunk).await?;
            for (k, (i, w)) in wanted.iter().enumerate() {
                let over: Vec<&ProbeRecord> = measured.iter().map(|m| &m[k]).collect();
                probes[*i].push(pooled(w.crf, &over));
            }
        }
        Ok(chosen
            .into_iter()
            .zip(probes)
            .filter_map(|(c, p)| Some((c?, p)))
            .collect())
    }

    /// The chunk's encode made by its chosen probe, verified and admitted to the cache as
    /// the task's own encode; None when there is none (or it does not check out).
    pub(super) async fn adopt_probe(
        &self,
        probe: &std::path::Path,
        rung: &TaskRung,
        content: &crate::engine::plan::chunks::ChunkContent,
    ) -> Option<CacheRecord> {
        let tools = self.engine.runner.tools();
        if let Err(e) = verify_rung(tools, rung, content.frames, probe).await {
            tracing::info!(job = %self.id, error = %e, "chosen probe does not check out; encoding");
            return None;
        }
        let key = artifact_key(&content.digest, &rung.settings, &tools.version);
        let ext = rung.rung.chunk_ext();
        match self
            .engine
            .artifacts
            .admit(&key, probe, &content.digest, content.frames, ext)
            .await
        {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::info!(job = %self.id, error = %e, "cannot keep the chosen probe; encoding");
                None
            }
        }
    }
}

/// Probes of one CRF on several chunks as one: the frame-weighted mean, the bytes summed.
pub(super) fn pooled(crf: u32, over: &[&ProbeRecord]) -> Probe {
    let frames: u64 = over.iter().map(|p| p.frames.max(1)).sum();
    let score = over
        .iter()
        .map(|p| p.mean * p.frames.max(1) as f64)
        .sum::<f64>()
        / frames.max(1) as f64;
    Probe {
        crf,
        score,
        bytes: over.iter().map(|p| p.bytes).sum(),
    }
}

/// Up to [`TITLE_SAMPLES`] chunks spread evenly over `n` (each in the middle of its share).
pub(super) fn samples(n: usize) -> Vec<usize> {
    let k = TITLE_SAMPLES.min(n);
    let mut picked: Vec<usize> = (0..k).map(|i| (2 * i + 1) * n / (2 * k)).collect();
    picked.dedup();
    picked
}

#[cfg(test)]
mod tests {
    use super::samples;

    #[test]
    fn title_samples_spread_over_the_file() {
        assert_eq!(samples(1), vec![0]);
        assert_eq!(samples(2), vec![0, 1]);
        assert_eq!(samples(12), vec![2, 6, 10]);
    }
}
