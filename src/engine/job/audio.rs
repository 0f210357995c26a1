//! The audio stage: each distinct audio setting encoded once, straight from the source,
//! alongside the video tasks (so nothing drifts at chunk boundaries), and kept in the
//! artifact cache (see `derived`): the same track in the same setting is never encoded
//! twice. A normalised track is measured again once encoded, so the manifest says what
//! came out.

use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::manifest::LoudnessEntry;
use crate::engine::plan::{JobPlan, PlannedAudio};
use crate::media::hash::FileDigest;
use crate::media::measure::loudness;
use crate::media::probe::probe;
use crate::media::verify::VerifyError;

impl JobCtx<'_> {
    pub(super) async fn encode_audio(
        &self,
        plan: &JobPlan,
        source: &FileDigest,
    ) -> Result<Vec<LoudnessEntry>, JobStop> {
        let runs = plan.audio.iter().map(|a| self.encode_one(plan, a, source));
        let done = futures::future::join_all(runs)
            .await
            .into_iter()
            .collect::<Result<Vec<Option<LoudnessEntry>>, JobStop>>()?;
        Ok(done.into_iter().flatten().collect())
    }

    async fn encode_one(
        &self,
        plan: &JobPlan,
        a: &PlannedAudio,
        source: &FileDigest,
    ) -> Result<Option<LoudnessEntry>, JobStop> {
        let tools = self.engine.runner.tools();
        let key = self.derived_key(source, &a.command.args, &a.out);
        if !self.take_cached(&key, &a.out).await? {
            self.engine
                .runner
                .run(&a.command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run("encoding the audio"))?;
            self.keep_derived(&key, &a.out, source).await;
        }
        let wrong = |source: VerifyError| JobError::Verify {
            what: "the encoded audio".into(),
            source,
        };
        match probe(tools, &a.out).await {
            Ok(info) if info.has_audio() => {}
            Ok(_) => return Err(wrong(VerifyError::Mismatch("no audio stream".into())).into()),
            Err(e) => return Err(wrong(VerifyError::Probe(e)).into()),
        }
        let (Some(target), Some(measured)) = (
            self.workflow.loudness.as_ref(),
            plan.loudness_of(a.encode.track),
        ) else {
            return Ok(None);
        };
        let result = loudness(tools, &a.out, 0)
            .await
            .map_err(|e| wrong(VerifyError::Mismatch(format!("loudness: {e}"))))?;
        Ok(Some(LoudnessEntry {
            track: a.encode.track,
            encoder: a.encode.encoder.to_string(),
            target_lufs: target.target_lufs,
            measured_lufs: measured.integrated,
            measured_true_peak_db: measured.true_peak,
            result_lufs: result.integrated,
            result_true_peak_db: result.true_peak,
        }))
    }
}
