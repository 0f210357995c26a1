//! HDR10 static metadata: the mastering display and the content light levels. HEVC and AV1
//! carry them in the bitstream (SEI, metadata OBUs), so they are read from the first frame.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProbeError;
use crate::media::tools::Tools;

/// The display a title was graded on: CIE 1931 xy chromaticities and luminance in cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MasteringDisplay {
    pub red: [f64; 2],
    pub green: [f64; 2],
    pub blue: [f64; 2],
    pub white: [f64; 2],
    pub max_luminance: f64,
    pub min_luminance: f64,
}

/// MaxCLL and MaxFALL, cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightLevel {
    pub max_content: u32,
    pub max_average: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mastering {
    pub display: Option<MasteringDisplay>,
    pub light: Option<LightLevel>,
}

/// The mastering metadata of the first video frame; None when it has none.
pub async fn mastering(tools: &Tools, path: &Path) -> Result<Option<Mastering>, ProbeError> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-read_intervals",
        "%+#1",
        "-show_frames",
        "-print_format",
        "json",
    ];
    let out = tools.ffprobe(&args, path).await?;
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// "34000/50000" → 0.68.
fn ratio(v: &serde_json::Value) -> Option<f64> {
    let (n, d) = v.as_str()?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d > 0.0 && n.is_finite()).then(|| n / d)
}

fn display(m: &serde_json::Value) -> Option<MasteringDisplay> {
    let xy = |x: &str, y: &str| Some([ratio(&m[x])?, ratio(&m[y])?]);
    Some(MasteringDisplay {
        red: xy("red_x", "red_y")?,
        green: xy("green_x", "green_y")?,
        blue: xy("blue_x", "blue_y")?,
        white: xy("white_point_x", "white_point_y")?,
        max_luminance: ratio(&m["max_luminance"])?,
        min_luminance: ratio(&m["min_luminance"])?,
    })
}

/// The mastering display and light levels in `ffprobe -show_frames` JSON.
pub fn parse(json: &str) -> Result<Option<Mastering>, ProbeError> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| ProbeError::BadJson(e.to_string()))?;
    let Some(side) = doc["frames"][0]["side_data_list"].as_array() else {
        return Ok(None);
    };
    let find = |kind: &str| {
        side.iter().find(|d| {
            d["side_data_type"]
                .as_str()
                .is_some_and(|t| t.starts_with(kind))
        })
    };
    let display = find("Mastering display").and_then(display);
    let light = find("Content light level").and_then(|c| {
        Some(LightLevel {
            max_content: u32::try_from(c["max_content"].as_u64()?).ok()?,
            max_average: u32::try_from(c["max_average"].as_u64()?).ok()?,
        })
    });
    Ok((display.is_some() || light.is_some()).then_some(Mastering { display, light }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_display_and_light_levels() -> Result<(), ProbeError> {
        let json = r#"{"frames":[{"side_data_list":[{"side_data_type":"Mastering display metadata",
          "red_x":"34000/50000","red_y":"16000/50000","green_x":"13250/50000","green_y":"34500/50000",
          "blue_x":"7500/50000","blue_y":"3000/50000","white_point_x":"15635/50000",
          "white_point_y":"16450/50000","min_luminance":"1/10000","max_luminance":"10000000/10000"},
          {"side_data_type":"Content light level metadata","max_content":1000,"max_average":400}]}]}"#;
        let m = parse(json)?.ok_or(ProbeError::BadJson("none".into()))?;
        let d = m.display.ok_or(ProbeError::BadJson("no display".into()))?;
        assert_eq!(d.red, [0.68, 0.32]);
        assert_eq!(d.white, [0.3127, 0.329]);
        assert_eq!((d.max_luminance, d.min_luminance), (1000.0, 0.0001));
        assert_eq!(
            m.light.map(|l| (l.max_content, l.max_average)),
            Some((1000, 400))
        );
        assert_eq!(parse(r#"{"frames":[{}]}"#)?, None);
        assert_eq!(parse(r#"{"frames":[]}"#)?, None);
        Ok(())
    }
}
