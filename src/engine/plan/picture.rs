//! The picture decision of a job: the workflow's `picture:` rules applied to the probed
//! source and what the analysis measured. Pure.

use super::analysis::Analysis;
use crate::media::colour::sdr_preview_chain;
use crate::media::picture::{clockwise, Picture};
use crate::media::probe::VideoStream;
use crate::media::thumbs::Preview;
use crate::workflow::picture::{CropMode, Deinterlace, PictureSettings, Rotation};

pub fn plan_picture(
    settings: &PictureSettings,
    video: &VideoStream,
    analysis: &Analysis,
) -> Picture {
    let interlaced = match settings.deinterlace {
        Deinterlace::Off => false,
        Deinterlace::Always => true,
        // The stream's own field order when it states one; idet's verdict when it does not.
        Deinterlace::Auto => match &video.field_order {
            Some(order) => order != "progressive",
            None => analysis.interlaced == Some(true),
        },
    };
    let degrees = clockwise(video.rotation);
    let (turn, keep_rotation) = match settings.rotation {
        Rotation::Upright => (degrees, 0),
        Rotation::Keep => (0, degrees),
    };
    Picture {
        deinterlace: interlaced.then_some(settings.field_rate),
        crop: match settings.crop {
            CropMode::Auto => analysis.crop,
            CropMode::Off => None,
        },
        turn,
        keep_rotation,
    }
}

/// What previews do to the picture: the rungs' picture filters, always upright (a kept
/// rotation is turned too) and, for an HDR source, tone-mapped to SDR.
pub fn preview(picture: &Picture, video: &VideoStream) -> Preview {
    let upright = Picture {
        turn: (picture.turn + picture.keep_rotation) % 360,
        keep_rotation: 0,
        ..picture.clone()
    };
    let mut filters: Vec<String> = upright.filters();
    filters.extend(sdr_preview_chain(&video.colour));
    Preview {
        noautorotate: upright.turn != 0,
        filters: filters.iter().map(|f| format!("{f},")).collect(),
    }
}

/// The picture and its preview for a job's inputs.
pub fn of_inputs(inputs: &super::PlanInputs<'_>) -> (Picture, Preview) {
    let picture = plan_picture(&inputs.workflow.picture, inputs.video, inputs.analysis);
    let preview = preview(&picture, inputs.video);
    (picture, preview)
}

/// The picture as the viewer sees it (after crop and turns, stood up): what scores compare at.
pub fn upright(video: &VideoStream, picture: &Picture) -> (u32, u32) {
    let (w, h) = picture.size((video.width, video.height));
    match picture.sideways() {
        true => (h, w),
        false => (w, h),
    }
}
