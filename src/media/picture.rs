//! What is done to a source's picture before the rungs scale it, decided once per job and
//! the same for every rung: deinterlacing, cropping, turning upright. Runs once, before the
//! ladder splits.

use serde::{Deserialize, Serialize};

/// What bwdif outputs: one frame per frame, or one per field (double rate, smoother motion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldRate {
    #[default]
    Frame,
    Field,
}

/// A crop rectangle in coded pixels (even numbers, for 4:2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Crop {
    pub width: u32,
    pub height: u32,
    pub x: u32,
    pub y: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    /// Deinterlace with bwdif at this rate.
    pub deinterlace: Option<FieldRate>,
    pub crop: Option<Crop>,
    /// Clockwise degrees the coded picture is turned to stand upright (0, 90, 180, 270).
    pub turn: u32,
    /// Clockwise degrees written on the output as its display rotation instead of turning.
    pub keep_rotation: u32,
}

/// Clockwise degrees from ffprobe's display-matrix rotation (counter-clockwise).
pub fn clockwise(probe_rotation: i32) -> u32 {
    (360 - probe_rotation.rem_euclid(360)).rem_euclid(360) as u32
}

impl Picture {
    /// The filters, in order: deinterlace (on whole fields), crop, turn.
    pub fn filters(&self) -> Vec<String> {
        let mut f = Vec::new();
        match self.deinterlace {
            Some(FieldRate::Frame) => f.push("bwdif=mode=send_frame:deint=all".to_string()),
            Some(FieldRate::Field) => f.push("bwdif=mode=send_field:deint=all".to_string()),
            None => {}
        }
        if let Some(c) = self.crop {
            f.push(format!("crop={}:{}:{}:{}", c.width, c.height, c.x, c.y));
        }
        match self.turn {
            90 => f.push("transpose=clock".into()),
            180 => f.push("hflip,vflip".into()),
            270 => f.push("transpose=cclock".into()),
            _ => {}
        }
        f
    }

    /// Output frames per source frame.
    pub fn frame_factor(&self) -> u64 {
        match self.deinterlace {
            Some(FieldRate::Field) => 2,
            Some(FieldRate::Frame) | None => 1,
        }
    }

    /// Whether the encoded picture lies on its side and a rotation flag stands it up: its
    /// coded width is then the rung's height.
    pub fn sideways(&self) -> bool {
        self.keep_rotation % 180 == 90
    }

    /// The size the rungs scale from: coded size after crop and turn.
    pub fn size(&self, coded: (u32, u32)) -> (u32, u32) {
        let (w, h) = self.crop.map_or(coded, |c| (c.width, c.height));
        match self.turn % 180 {
            90 => (h, w),
            _ => (w, h),
        }
    }

    /// The height the viewer sees before scaling.
    pub fn upright_height(&self, coded: (u32, u32)) -> u32 {
        let (w, h) = self.size(coded);
        if self.sideways() {
            w
        } else {
            h
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_frames_and_sizes() {
        assert_eq!(clockwise(-90), 90, "a phone's portrait video");
        assert_eq!(clockwise(90), 270);
        assert_eq!(clockwise(180), 180);
        assert_eq!(clockwise(0), 0);
        let p = Picture {
            deinterlace: Some(FieldRate::Field),
            crop: Some(Crop {
                width: 1920,
                height: 800,
                x: 0,
                y: 140,
            }),
            turn: 90,
            keep_rotation: 0,
        };
        assert_eq!(
            p.filters(),
            [
                "bwdif=mode=send_field:deint=all",
                "crop=1920:800:0:140",
                "transpose=clock"
            ]
        );
        assert_eq!(p.frame_factor(), 2);
        assert_eq!(p.size((1920, 1080)), (800, 1920));
        assert_eq!(p.upright_height((1920, 1080)), 1920);
        let kept = Picture {
            keep_rotation: 90,
            ..Picture::default()
        };
        assert!(kept.filters().is_empty() && kept.sideways());
        assert_eq!(kept.upright_height((1920, 1080)), 1920);
    }
}
