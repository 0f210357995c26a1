//! Parser for ffmpeg's `-progress` key=value stream. Pure, so it can be fuzzed.

/// One progress report; ffmpeg emits a block of keys that ends in `progress=...`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Output position in seconds (from `out_time_us`).
    pub out_time_s: Option<f64>,
    pub frame: Option<u64>,
    pub fps: Option<f64>,
    /// Encode speed as a multiple of real time.
    pub speed: Option<f64>,
    /// True on the final block (`progress=end`).
    pub ended: bool,
}

#[derive(Debug, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    /// Feeds one line; returns a complete report when the line closes a block.
    pub fn feed_line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            // out_time_ms is a misnomer in ffmpeg: it is microseconds too.
            "out_time_us" | "out_time_ms" => {
                if let Ok(us) = value.parse::<i64>() {
                    self.current.out_time_s = Some(us.max(0) as f64 / 1e6);
                }
            }
            "frame" => self.current.frame = value.parse().ok(),
            "fps" => self.current.fps = value.parse().ok().filter(|f: &f64| f.is_finite()),
            "speed" => {
                self.current.speed = value
                    .trim_end_matches('x')
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite())
            }
            "progress" => {
                self.current.ended = value == "end";
                return Some(std::mem::take(&mut self.current));
            }
            _ => {}
        }
        None
    }
}

impl Progress {
    /// Fraction done against a known duration, clamped to 0..=1.
    pub fn fraction_of(&self, duration_s: f64) -> f64 {
        if self.ended {
            return 1.0;
        }
        match self.out_time_s {
            Some(t) if duration_s > 0.0 => (t / duration_s).clamp(0.0, 1.0),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_block_and_the_end() {
        let mut p = ProgressParser::default();
        let lines = "frame=48\nfps=24.5\nout_time_us=2000000\nspeed=1.5x\nprogress=continue\n\
                     frame=96\nout_time_us=4000000\nspeed=N/A\nprogress=end\n";
        let reports: Vec<_> = lines.lines().filter_map(|l| p.feed_line(l)).collect();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].frame, Some(48));
        assert_eq!(reports[0].out_time_s, Some(2.0));
        assert_eq!(reports[0].speed, Some(1.5));
        assert!((reports[0].fraction_of(4.0) - 0.5).abs() < 1e-9);
        assert!(reports[1].ended);
        assert_eq!(reports[1].speed, None);
        assert_eq!(reports[1].fraction_of(4.0), 1.0);
    }

    #[test]
    fn garbage_never_panics_and_negative_time_clamps() {
        let mut p = ProgressParser::default();
        for l in [
            "",
            "=",
            "out_time_us=-5",
            "fps=nan",
            "speed=inf x",
            "\u{0}=\u{1}",
            "progress",
        ] {
            let _ = p.feed_line(l);
        }
        let r = p.feed_line("progress=continue");
        assert_eq!(r.and_then(|r| r.out_time_s), Some(0.0));
    }
}
