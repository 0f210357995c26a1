//! The thumbnails step: a poster frame (at the time the analysis chose, away from black and
//! flat frames), tile-filter sprite sheets, and the sprites.vtt scrubbing track.

use std::path::Path;

use futures::future::BoxFuture;
use serde_json::json;

use super::{
    ffmpeg, publish_step_file, RungFile, StepCtx, StepDetail, StepDone, StepError, StepKind,
    StepPlan,
};
use crate::engine::exec::{Command, Phase};
use crate::engine::manifest::{OutputEntry, OutputKind};
use crate::engine::plan::PlanInputs;
use crate::media::picture::Picture;
use crate::media::probe::{probe, VideoStream};
use crate::media::thumbs::{
    poster_args, sheet_name, sprite_args, sprite_vtt, thumb_height, SpriteLayout,
};
use crate::workflow::schema::ThumbnailsStep;

/// The sheets' layout: thumbnails keep the display aspect ratio.
/// The sheets' layout; thumbnails keep the aspect of the picture the rungs show (cropped).
pub fn sprite_layout(
    step: &ThumbnailsStep,
    video: &VideoStream,
    picture: &Picture,
) -> SpriteLayout {
    let upright = match picture.keep_rotation % 180 {
        90 => {
            let (w, h) = picture.size((video.width, video.height));
            (h, w)
        }
        _ => picture.size((video.width, video.height)),
    };
    SpriteLayout {
        interval: step.interval_seconds,
        thumb_w: step.thumb_width,
        thumb_h: thumb_height(step.thumb_width, upright),
        columns: step.columns,
        rows: step.rows,
    }
}

impl StepKind for ThumbnailsStep {
    fn validate(&self, _inputs: &PlanInputs<'_>) -> Result<(), String> {
        Ok(())
    }

    fn plan(&self, inputs: &PlanInputs<'_>, _rungs: &[RungFile]) -> StepPlan {
        let dir = inputs.work.join("thumbs");
        let (picture, preview) = crate::engine::plan::picture::of_inputs(inputs);
        let layout = sprite_layout(self, inputs.video, &picture);
        let poster_time = inputs.analysis.poster_time.unwrap_or(0.0);
        let sheets = layout
            .count(inputs.media.duration)
            .div_ceil(layout.per_sheet());
        let outputs = std::iter::once("poster.jpg".to_string())
            .chain((0..sheets).map(sheet_name))
            .chain(["sprites.vtt".to_string()])
            .collect();
        StepPlan {
            label: "thumbnails".into(),
            commands: vec![
                Command {
                    phase: Phase::Thumbnails,
                    label: "poster".into(),
                    args: poster_args(
                        inputs.input,
                        poster_time,
                        self.poster_width,
                        &dir.join("poster.jpg"),
                        &preview,
                    ),
                },
                Command {
                    phase: Phase::Thumbnails,
                    label: "sprites".into(),
                    args: sprite_args(inputs.input, &layout, &dir, &preview),
                },
            ],
            outputs,
            detail: StepDetail::Thumbnails {
                dir,
                poster_time,
                layout,
            },
        }
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        plan: &'a StepPlan,
    ) -> BoxFuture<'a, Result<StepDone, StepError>> {
        Box::pin(async move {
            let (
                StepDetail::Thumbnails {
                    dir,
                    poster_time,
                    layout,
                },
                [poster, sprites],
            ) = (&plan.detail, plan.commands.as_slice())
            else {
                return Err(StepError::Failed(
                    "internal error: not a thumbnails plan".into(),
                ));
            };
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            ffmpeg(ctx, poster).await?;
            let poster_size = image_size(ctx, &dir.join("poster.jpg")).await?;
            ffmpeg(ctx, sprites).await?;
            let count = layout.count(ctx.media.duration);
            let sheets = count.div_ceil(layout.per_sheet());
            let want = (
                layout.columns * layout.thumb_w,
                layout.rows * layout.thumb_h,
            );
            let mut made = vec![("poster.jpg".to_string(), OutputKind::Poster)];
            for i in 0..sheets {
                let name = sheet_name(i);
                let size = image_size(ctx, &dir.join(&name)).await?;
                if size != want {
                    return Err(format!(
                        "{name} is {}x{}, expected {}x{}",
                        size.0, size.1, want.0, want.1
                    )
                    .into());
                }
                made.push((name, OutputKind::Sprite));
            }
            if dir.join(sheet_name(sheets)).exists() {
                return Err(format!(
                    "ffmpeg made more sprite sheets than the {count} thumbnails need"
                )
                .into());
            }
            tokio::fs::write(
                dir.join("sprites.vtt"),
                sprite_vtt(layout, ctx.media.duration),
            )
            .await
            .map_err(|e| format!("sprites.vtt: {e}"))?;
            made.push(("sprites.vtt".into(), OutputKind::ThumbnailsVtt));
            let mut outputs = Vec::new();
            for (name, kind) in made {
                let (name, bytes) = publish_step_file(dir, ctx.out_dir, &name)?;
                outputs.push(OutputEntry::file("thumbnails", kind, name, bytes));
            }
            let data = json!({
                "poster": { "path": "poster.jpg", "time": poster_time, "width": poster_size.0, "height": poster_size.1 },
                "sprites": { "vtt": "sprites.vtt", "sheets": sheets, "thumbnails": count,
                             "interval": layout.interval, "width": layout.thumb_w, "height": layout.thumb_h,
                             "columns": layout.columns, "rows": layout.rows },
            });
            Ok(StepDone { outputs, data })
        })
    }
}

/// An image that ffprobe reads, with its size.
async fn image_size(ctx: &StepCtx<'_>, path: &Path) -> Result<(u32, u32), StepError> {
    let info = probe(ctx.runner.tools(), path)
        .await
        .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
    info.video
        .map(|v| (v.width, v.height))
        .ok_or_else(|| StepError::Failed(format!("{} holds no image", path.display())))
}
