//! The audio stage: each distinct audio setting encoded once, straight from the source,
//! alongside the video tasks (so nothing drifts at chunk boundaries).

use super::JobCtx;
use crate::engine::error::{JobError, JobStop};
use crate::engine::plan::JobPlan;
use crate::media::probe::probe;
use crate::media::verify::VerifyError;

impl JobCtx<'_> {
    pub(super) async fn encode_audio(&self, plan: &JobPlan) -> Result<(), JobStop> {
        let runs = plan.audio.iter().map(|a| async move {
            self.engine
                .runner
                .run(&a.command, &self.placement, &self.cancel, |_| {})
                .await
                .map_err(JobStop::run("encoding the audio"))?;
            let wrong = |m: String| JobError::Verify {
                what: "the encoded audio".into(),
                source: VerifyError::Mismatch(m),
            };
            match probe(self.engine.runner.tools(), &a.out).await {
                Ok(info) if info.has_audio() => Ok(()),
                Ok(_) => Err(wrong("no audio stream".into()).into()),
                Err(e) => Err(JobError::Verify {
                    what: "the encoded audio".into(),
                    source: VerifyError::Probe(e),
                }
                .into()),
            }
        });
        futures::future::join_all(runs)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, JobStop>>()
            .map(|_| ())
    }
}
