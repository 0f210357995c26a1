//! Workflow + probed media → the rungs to encode. Pure.

use crate::media::colour::{plan_colour, ColourError};
use crate::media::picture::Picture;
use crate::media::probe::{Mastering, VideoStream};
use crate::media::profiles::{target_kbps, Rung};
use crate::workflow::Workflow;

#[derive(Debug, Clone)]
pub struct RungPlan {
    /// In scheduling order: always-encode rungs first, then low to high.
    pub rungs: Vec<Rung>,
    /// Profiles left out, each with the reason.
    pub skipped: Vec<String>,
    /// (rung, what of the source's colour metadata it cannot carry).
    pub colour_dropped: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RungError {
    #[error("no profile fits a {height}p source: every rung is taller and none is always_encode")]
    NoRungFits { height: u32 },
    #[error("profile {profile}: {source}")]
    Colour {
        profile: String,
        source: ColourError,
    },
}

pub fn plan_rungs(
    w: &Workflow,
    video: &VideoStream,
    mastering: Option<Mastering>,
    picture: &Picture,
) -> Result<RungPlan, RungError> {
    let source_height = picture.upright_height((video.width, video.height));
    let fps = video.fps.as_f64() * picture.frame_factor() as f64;
    let mut rungs = Vec::new();
    let mut skipped = Vec::new();
    let mut colour_dropped = Vec::new();
    for p in &w.profiles {
        if p.height > source_height && !p.always_encode {
            skipped.push(format!(
                "{}: the source is only {source_height} px high (no upscaling)",
                p.name
            ));
            continue;
        }
        let (colour, dropped) = plan_colour(p.codec, p.hdr, p.bit_depth, &video.colour, mastering)
            .map_err(|source| RungError::Colour {
                profile: p.name.clone(),
                source,
            })?;
        colour_dropped.extend(dropped.map(|d| (p.name.clone(), d)));
        let bitrate = p
            .bitrate_kbps
            .unwrap_or_else(|| target_kbps(p.codec, p.height, fps));
        rungs.push((
            !p.always_encode,
            p.height,
            Rung {
                name: p.name.clone(),
                codec: p.codec,
                height: p.height,
                rate_control: p.rate_control,
                crf: p.crf.unwrap_or_else(|| p.codec.default_crf()),
                preset: p
                    .preset
                    .clone()
                    .unwrap_or_else(|| p.codec.default_preset().to_string()),
                bitrate_kbps: bitrate,
                maxrate_kbps: bitrate * 3 / 2,
                bufsize_kbps: bitrate * 2,
                audio_kbps: p.audio_kbps.unwrap_or_else(|| p.codec.default_audio_kbps()),
                gop: (fps * w.encode.keyframe_interval_seconds).round().max(1.0) as u32,
                container: p.container.unwrap_or_else(|| p.codec.default_container()),
                audio_channels: p.audio_channels,
                colour,
                picture: picture.clone(),
                quality: p.quality.clone(),
            },
        ));
    }
    if rungs.is_empty() {
        return Err(RungError::NoRungFits {
            height: source_height,
        });
    }
    // Stable sort keeps workflow order among equals.
    rungs.sort_by_key(|(not_always, height, _)| (*not_always, *height));
    Ok(RungPlan {
        rungs: rungs.into_iter().map(|(_, _, r)| r).collect(),
        skipped,
        colour_dropped,
    })
}

/// Fills the output naming template.
pub fn output_name(template: &str, stem: &str, rung: &Rung) -> String {
    template
        .replace("{stem}", stem)
        .replace("{profile}", &rung.name)
        .replace("{codec}", rung.codec.name())
        .replace("{height}", &rung.height.to_string())
        .replace("{ext}", rung.container.ext())
}

/// Relative cost of a rung, for weighting job progress.
pub fn rung_cost(rung: &Rung) -> f64 {
    let pixels = f64::from(rung.height).powi(2) / (1080.0 * 1080.0);
    rung.codec.cost_weight() * (0.05 + pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::Rational;

    fn video(height: u32) -> VideoStream {
        VideoStream {
            index: 0,
            codec: "h264".into(),
            width: height * 16 / 9,
            height,
            fps: Rational { num: 25, den: 1 },
            pix_fmt: "yuv420p".into(),
            rotation: 0,
            interlaced: false,
            bit_rate: None,
            start_time: 0.0,
            frames: None,
            colour: Default::default(),
            field_order: None,
        }
    }

    #[test]
    fn skips_taller_rungs_but_keeps_always_encode_and_orders_them_first() -> Result<(), RungError> {
        let w = crate::workflow::load_default()
            .map_err(|_| RungError::NoRungFits { height: 0 })?
            .workflow;
        let plan = plan_rungs(&w, &video(360), None, &Picture::default())?;
        let names: Vec<_> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["h264-240p", "h264-360p"]);
        assert_eq!(plan.skipped.len(), 3);
        assert_eq!(plan.rungs[0].gop, 50);
        let tiny = plan_rungs(&w, &video(144), None, &Picture::default())?;
        assert_eq!(
            tiny.rungs.len(),
            2,
            "always-encode rungs survive a tiny source"
        );
        Ok(())
    }

    #[test]
    fn naming_template() {
        let w = crate::workflow::load_default().map(|l| l.workflow);
        let Ok(w) = w else { return };
        let Ok(plan) = plan_rungs(&w, &video(1080), None, &Picture::default()) else {
            return;
        };
        assert_eq!(
            output_name("{stem}-{height}.{ext}", "my clip", &plan.rungs[0]),
            "my clip-240.mp4"
        );
    }
}
