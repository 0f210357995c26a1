//! Probe encodes: one chunk into the rungs being searched, each at its candidate CRF, in
//! one ffmpeg (decoded once); then one scoring ffmpeg against the chunk. Every probe's
//! score is kept in the store under (chunk content + settings + CRF + scoring + both
//! ffmpeg versions), so a resumed or repeated job never probes it again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::JobCtx;
use crate::confine::Paths;
use crate::engine::error::{JobError, JobStop};
use crate::engine::exec::{Command, Phase, Placement};
use crate::engine::metrics::Metrics;
use crate::engine::plan::quality::SearchPlan;
use crate::engine::plan::{encode_task_commands, JobPlan};
use crate::engine::task::OutputPaths;
use crate::media::command::reference_filters;
use crate::media::hash::sha256_hex;
use crate::media::profiles::Rung;
use crate::media::quality::score::{read_scores, score_args, share_runs, Distorted, Way};
use crate::media::quality::MetricsTool;
use crate::media::tools::Tools;
use crate::store::{now_ms, ProbeRecord};

/// One probe to measure: a search and the CRF it asks for.
pub(super) struct Wanted<'a> {
    pub search: &'a SearchPlan,
    pub crf: u32,
}

/// Where a chunk's probe at a CRF is written (and kept, when it can be the final encode).
pub(super) fn probe_path(work: &std::path::Path, chunk: usize, rung: &Rung) -> PathBuf {
    work.join("probe").join(format!(
        "c{chunk:05}-{}-crf{}.{}",
        rung.name,
        rung.crf,
        rung.chunk_ext()
    ))
}

impl JobCtx<'_> {
    /// Each wanted probe's measurement on chunk `c`, from the store or measured now.
    pub(super) async fn measure_chunk(
        &self,
        plan: &JobPlan,
        metrics: &MetricsTool,
        c: usize,
        wanted: &[Wanted<'_>],
    ) -> Result<Vec<ProbeRecord>, JobStop> {
        let chunk = &plan.chunks[c];
        let content = chunk
            .content
            .as_ref()
            .ok_or_else(|| JobError::Internal("a chunk was searched but never inspected".into()))?;
        let rungs: Vec<Rung> = wanted
            .iter()
            .map(|w| w.search.probe_rung(&plan.rungs[w.search.rung], w.crf))
            .collect();
        let tools = self.engine.runner.tools();
        let keys: Vec<String> = wanted
            .iter()
            .zip(&rungs)
            .map(|(w, rung)| {
                let print = serde_json::json!({
                    "v": 2, "chunk": content.digest.sha256, "part": chunk.cache_part(),
                    "video": rung.video_settings(), "scoring": w.search.scoring,
                    "reference": reference_filters(chunk.range.as_ref(), rung),
                    "ffmpeg": tools.version, "metrics": metrics.version,
                });
                sha256_hex(print.to_string().as_bytes())
            })
            .collect();
        let mut found: Vec<Option<ProbeRecord>> = Vec::new();
        for key in &keys {
            let key = key.clone();
            found.push(self.engine.store(move |r| r.probe_get(&key)).await?);
        }
        let hits = found.iter().filter(|f| f.is_some()).count();
        Metrics::add(&self.engine.metrics.probe_cache_hits, hits as u64);
        let missing: Vec<usize> = (0..wanted.len()).filter(|i| found[*i].is_none()).collect();
        if !missing.is_empty() {
            let asked: Vec<(&Rung, &SearchPlan)> = missing
                .iter()
                .map(|i| (&rungs[*i], wanted[*i].search))
                .collect();
            let measured = self.probe(plan, metrics, c, &asked).await?;
            for (i, mut record) in missing.iter().zip(measured) {
                record.key = keys[*i].clone();
                let stored = record.clone();
                self.engine.store(move |r| r.probe_put(&stored)).await?;
                found[*i] = Some(record);
            }
        }
        found
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                JobError::Internal("a probe was neither found nor measured".into()).into()
            })
    }

    /// Encodes chunk `c` into each asked rung (one ffmpeg), then scores them (one ffmpeg
    /// per way of scoring, usually one).
    async fn probe(
        &self,
        plan: &JobPlan,
        metrics: &MetricsTool,
        c: usize,
        asked: &[(&Rung, &SearchPlan)],
    ) -> Result<Vec<ProbeRecord>, JobStop> {
        let started = Instant::now();
        let chunk = &plan.chunks[c];
        let dir = self.work.join("probe");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(JobError::io(dir.display().to_string()))?;
        let rungs: Vec<&Rung> = asked.iter().map(|(r, _)| *r).collect();
        let outputs: Vec<OutputPaths> = rungs
            .iter()
            .map(|r| OutputPaths {
                path: probe_path(&self.work, c, r),
                passlog: dir.join(format!("c{c:05}-{}-pass", r.name)),
            })
            .collect();
        let what: Vec<String> = rungs
            .iter()
            .map(|r| format!("{} crf {}", r.name, r.crf))
            .collect();
        let label = format!("{} [{}]", chunk_name(chunk.index), what.join(", "));
        for mut command in encode_task_commands(chunk, &rungs, &outputs) {
            command.phase = Phase::Probe;
            command.label = format!("probe {label}");
            self.engine
                .runner
                .run(&command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run(command.label.clone()))?;
        }
        Metrics::add(&self.engine.metrics.probe_encodes, rungs.len() as u64);
        let logs: Vec<PathBuf> = outputs
            .iter()
            .map(|o| o.path.with_extension("score.log"))
            .collect();
        // Rungs scored the same way (metric, frames, reference picture) share one run, at
        // whatever sizes they are scored: the reference is decoded once for all of them.
        let runs = share_runs(asked, |(rung, search)| {
            Way::of(chunk.range.as_ref(), rung, &search.scoring)
        });
        for (way, members) in runs {
            let reference = way.reference(&chunk.path, chunk.range.as_ref());
            let distorted: Vec<Distorted> = members
                .iter()
                .map(|i| Distorted {
                    path: &outputs[*i].path,
                    log: &logs[*i],
                    display: asked[*i].1.scoring.display,
                })
                .collect();
            let command = Command {
                phase: Phase::Score,
                label: format!("score {label}"),
                args: score_args(&reference, &distorted, &asked[members[0]].1.scoring),
            };
            self.score(metrics, &command).await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        Metrics::add(&self.engine.metrics.probe_ms, (seconds * 1000.0) as u64);
        let mut records = Vec::new();
        for (((rung, search), out), log) in asked.iter().zip(&outputs).zip(&logs) {
            let scores = read_scores(search.metric, log).map_err(|e| JobError::Quality {
                rung: rung.name.clone(),
                message: e.to_string(),
            })?;
            let bytes = tokio::fs::metadata(&out.path).await.map_or(0, |m| m.len());
            if !search.probe_is_final(&plan.rungs[search.rung]) {
                let _ = tokio::fs::remove_file(&out.path).await;
            }
            let _ = tokio::fs::remove_file(log).await;
            records.push(ProbeRecord {
                key: String::new(),
                crf: rung.crf,
                mean: scores.mean,
                p5: scores.p5,
                min: scores.min,
                frames: scores.frames as u64,
                bytes,
                seconds: seconds / asked.len() as f64,
                created_ms: now_ms(),
            });
        }
        Ok(records)
    }

    /// Runs a scoring command with the scoring ffmpeg, which may read its own file too.
    pub(super) async fn score(
        &self,
        metrics: &MetricsTool,
        command: &Command,
    ) -> Result<(), JobStop> {
        let main = self.engine.runner.tools();
        let tools = Tools {
            ffmpeg: metrics.ffmpeg.clone(),
            ffprobe: main.ffprobe.clone(),
            version: metrics.version.clone(),
        };
        let mut read = self.placement.paths.read.clone();
        read.push(metrics.ffmpeg.clone());
        let at = Placement {
            paths: Arc::new(Paths {
                read,
                write: self.placement.paths.write.clone(),
            }),
            ..self.placement.clone()
        };
        self.engine
            .runner
            .run_program(&tools, command, &at, &self.cancel, |_| {})
            .await
            .map_err(JobStop::run(command.label.clone()))?;
        Ok(())
    }
}

fn chunk_name(index: Option<u32>) -> String {
    match index {
        Some(i) => format!("chunk {i}"),
        None => "whole file".into(),
    }
}
