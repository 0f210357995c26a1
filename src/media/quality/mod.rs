//! Quality you can name: the metrics (VMAF, SSIM, PSNR, XPSNR), which ffmpeg can measure
//! them, the commands that score an encode against its source at the viewer's size, and the
//! CRF search that meets a target. No job state here.

pub mod hull;
pub mod score;
pub mod search;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

/// A full-reference picture metric, as ffmpeg's filter of that name computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// libvmaf with its standard model (vmaf_v0.6.1); 0-100.
    Vmaf,
    /// SSIM of all planes, 0-1.
    Ssim,
    /// PSNR of all planes (average), dB.
    Psnr,
    /// XPSNR of the luma plane, dB (ffmpeg 7.1 and later).
    Xpsnr,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Vmaf => "vmaf",
            Metric::Ssim => "ssim",
            Metric::Psnr => "psnr",
            Metric::Xpsnr => "xpsnr",
        }
    }

    /// The ffmpeg filter that measures it.
    pub fn filter(self) -> &'static str {
        match self {
            Metric::Vmaf => "libvmaf",
            other => other.name(),
        }
    }

    /// The scores this metric can give.
    pub fn range(self) -> std::ops::RangeInclusive<f64> {
        match self {
            Metric::Vmaf => 0.0..=100.0,
            Metric::Ssim => 0.0..=1.0,
            Metric::Psnr | Metric::Xpsnr => 0.0..=100.0,
        }
    }

    /// How far above the target a choice may land and still be "on target", and how far
    /// below it a published output may measure before the job says so: one VMAF point,
    /// about the same step for the others.
    pub fn default_tolerance(self) -> f64 {
        match self {
            Metric::Vmaf => 1.0,
            Metric::Ssim => 0.002,
            Metric::Psnr | Metric::Xpsnr => 0.5,
        }
    }

    /// Metrics every ffmpeg build has (the filters are part of libavfilter itself).
    pub fn always_available(self) -> bool {
        matches!(self, Metric::Ssim | Metric::Psnr)
    }
}

/// Whether the target is one CRF for the whole file or one per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One CRF per rung per chunk: easy scenes get fewer bits, hard ones more.
    #[default]
    Chunk,
    /// One CRF per rung for the file, searched on a few chunks spread over it.
    Title,
}

/// The size a rung is scored at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoredAt {
    /// The source's picture, at most 1080 lines: as a viewer sees any rung on one screen
    /// (a low rung then scores low, as it looks).
    #[default]
    Display,
    /// The rung's own size against the source scaled to it (ab-av1's way): the target
    /// means the same on every rung.
    Rung,
}

/// A rung's quality target: the CRF is searched so the encode scores at least `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityTarget {
    pub metric: Metric,
    pub target: f64,
    #[serde(default)]
    pub scope: Scope,
    /// The CRFs the search may choose (the codec's usual range by default).
    pub min_crf: Option<u32>,
    pub max_crf: Option<u32>,
    /// Preset of the probe encodes; the rung's own by default, which makes the chosen probe
    /// the final encode (no encode is spent twice). A faster one costs less but its CRF
    /// transfers less exactly.
    pub probe_preset: Option<String>,
    /// Above the target by at most this, a probe ends the search ([`Metric::default_tolerance`]).
    pub tolerance: Option<f64>,
    #[serde(default)]
    pub scored_at: ScoredAt,
    /// Score every Nth frame (1 = all).
    #[serde(default = "default_subsample")]
    pub subsample: u32,
}

fn default_subsample() -> u32 {
    2
}

impl QualityTarget {
    pub fn tolerance(&self) -> f64 {
        self.tolerance
            .unwrap_or_else(|| self.metric.default_tolerance())
    }
}

/// The ffmpeg that scores, and which metrics it has.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsTool {
    pub ffmpeg: PathBuf,
    /// First line of its `-version`: part of every cached score's key.
    pub version: String,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsToolError {
    #[error("SPOOL_METRICS_FFMPEG names {0}, which is not a file")]
    BadOverride(String),
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
}

impl MetricsTool {
    pub fn has(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric)
    }

    /// The ffmpeg that scores: `$SPOOL_METRICS_FFMPEG` when set, else `main` (the encoding
    /// ffmpeg). Its filters are listed once to know which metrics it has.
    pub fn locate(main: &Path) -> Result<MetricsTool, MetricsToolError> {
        let ffmpeg = match std::env::var_os("SPOOL_METRICS_FFMPEG") {
            Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
            Some(p) => {
                return Err(MetricsToolError::BadOverride(
                    Path::new(&p).display().to_string(),
                ))
            }
            None => main.to_path_buf(),
        };
        let run = |arg: &str| {
            std::process::Command::new(&ffmpeg)
                .args(["-hide_banner", arg])
                .stdin(Stdio::null())
                .output()
                .map_err(|source| MetricsToolError::Spawn {
                    path: ffmpeg.display().to_string(),
                    source,
                })
        };
        let filters = String::from_utf8_lossy(&run("-filters")?.stdout).into_owned();
        let version = String::from_utf8_lossy(&run("-version")?.stdout)
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string();
        let metrics = [Metric::Vmaf, Metric::Ssim, Metric::Psnr, Metric::Xpsnr]
            .into_iter()
            .filter(|m| has_filter(&filters, m.filter()))
            .collect();
        Ok(MetricsTool {
            ffmpeg,
            version,
            metrics,
        })
    }

    /// Why `metric` cannot be measured here, in words that say how to get it.
    pub fn missing(&self, metric: Metric) -> Option<String> {
        if self.has(metric) {
            return None;
        }
        Some(format!(
            "{} needs an ffmpeg with the {} filter, and {} has none; point SPOOL_METRICS_FFMPEG at one that has it \
             (pip install imageio-ffmpeg ships a static ffmpeg with libvmaf and xpsnr; recent distributions' ffmpeg has libvmaf), \
             or use metric: ssim or psnr",
            metric.name(),
            metric.filter(),
            self.ffmpeg.display()
        ))
    }
}

/// Whether `ffmpeg -filters` lists `name` (a line "<flags> <name> <pads> <description>").
fn has_filter(listing: &str, name: &str) -> bool {
    listing
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

/// The size a rung is scored at: the source's upright picture at most `max_height` lines
/// high (1080 for the display), even sides, the aspect kept.
pub fn display_size(upright: (u32, u32), max_height: u32) -> (u32, u32) {
    let (w, h) = (upright.0.max(2), upright.1.max(2));
    let height = h.min(max_height);
    let width = (u64::from(w) * u64::from(height) / u64::from(h)) as u32;
    (width.max(2) & !1, height.max(2) & !1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_found_by_name_not_by_substring() {
        let listing = " .. libvmaf           VV->V      Calculate the VMAF\n TS ssim360  VV->V x\n";
        assert!(has_filter(listing, "libvmaf"));
        assert!(!has_filter(listing, "ssim"));
        assert!(!has_filter(listing, "vmaf"));
    }

    #[test]
    fn the_display_size_keeps_the_aspect_and_caps_at_1080() {
        assert_eq!(display_size((3840, 2160), 1080), (1920, 1080));
        assert_eq!(display_size((320, 180), 1080), (320, 180));
        assert_eq!(display_size((1080, 1920), 1080), (606, 1080));
        assert_eq!(display_size((1920, 1080), 360), (640, 360));
    }
}
