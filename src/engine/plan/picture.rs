//! The picture decision of a job: the workflow's `picture:` rules applied to the probed
//! source and what the analysis measured. Pure.

use super::analysis::Analysis;
use crate::media::picture::{clockwise, Picture};
use crate::media::probe::VideoStream;
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
