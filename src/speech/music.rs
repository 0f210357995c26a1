//! Music without speech: long stretches of sound that Whisper should not decode (it costs
//! decodings, with fallbacks, and Whisper invents words over music). Two measures per second
//! of sound, both cheap:
//! - how steady the strongest partial (100–2000 Hz) stays from one 40 ms frame to the next:
//!   a note holds its pitch, speech glides and changes formant every syllable;
//! - the low-energy ratio, the share of 20 ms frames under half the second's mean energy:
//!   speech falls silent between syllables, sustained music seldom does.
//!
//! Measured on espeak-ng speech, synthetic melodic and percussive music and speech mixed over
//! each at −9 dB: speech seconds steady ≤ 0.84 with a low-energy ratio ≥ 0.36; music ≥ 0.82 and
//! ≤ 0.02, percussion ≥ 0.96. Only a run of at least [`MIN_RUN_S`] music seconds counts. A
//! second where speech begins glides and dips, so it is not music: the decoder starts there
//! (with `activity`'s lead-in). Keeping a music second at each edge was tried: it joined a
//! loud second of music to the next cue, which then began 25 s before its speech.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::SAMPLE_RATE;

/// 20 ms, the activity frame.
const FRAME: usize = SAMPLE_RATE / 50;
const FRAMES_PER_S: usize = 50;
/// Consecutive music seconds needed before a stretch is skipped.
pub const MIN_RUN_S: usize = 8;
const STEADY_ALONE: f32 = 0.85;
const STEADY_WITH_FEW_DIPS: f32 = 0.75;
const FEW_DIPS: f32 = 0.1;

/// Below this RMS a frame is quiet whatever the recording's floor (as in `activity`).
const AUDIBLE_RMS: f32 = 0.005;

/// Music-only stretches, as [first, last) activity frames (20 ms each).
pub fn stretches(samples: &[f32]) -> Vec<(usize, usize)> {
    let peaks = Peaks::new();
    let seconds = samples.len() / SAMPLE_RATE;
    let music: Vec<bool> = (0..seconds)
        .map(|s| is_music_second(samples, s, &peaks))
        .collect();
    let mut out = Vec::new();
    let mut s = 0;
    while s < music.len() {
        let run = music[s..].iter().take_while(|m| **m).count();
        if run >= MIN_RUN_S {
            out.push((s * FRAMES_PER_S, (s + run) * FRAMES_PER_S));
        }
        s += run.max(1);
    }
    out
}

/// A second of sound (half its frames audible at least) that sounds like music alone.
fn is_music_second(samples: &[f32], second: usize, peaks: &Peaks) -> bool {
    let frames = second * FRAMES_PER_S..(second + 1) * FRAMES_PER_S;
    let energy: Vec<f32> = frames
        .clone()
        .map(|f| {
            let s = &samples[f * FRAME..(f + 1) * FRAME];
            s.iter().map(|x| x * x).sum::<f32>() / FRAME as f32
        })
        .collect();
    let audible = energy
        .iter()
        .filter(|e| **e >= AUDIBLE_RMS * AUDIBLE_RMS)
        .count();
    if audible < FRAMES_PER_S / 2 {
        return false;
    }
    let mean = energy.iter().sum::<f32>() / energy.len() as f32;
    let dips = energy.iter().filter(|e| **e < 0.5 * mean).count() as f32 / energy.len() as f32;
    let strongest: Vec<usize> = frames.map(|f| peaks.strongest(samples, f)).collect();
    let steady = strongest
        .windows(2)
        .filter(|p| p[0].abs_diff(p[1]) <= 1)
        .count() as f32
        / (strongest.len() - 1) as f32;
    steady >= STEADY_ALONE || (steady >= STEADY_WITH_FEW_DIPS && dips < FEW_DIPS)
}

/// The strongest partial of the 40 ms from a frame's start (25 Hz bins).
struct Peaks {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
}

impl Peaks {
    fn new() -> Peaks {
        let n = 2 * FRAME;
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        Peaks {
            fft: FftPlanner::new().plan_fft_forward(n),
            window,
        }
    }

    fn strongest(&self, samples: &[f32], frame: usize) -> usize {
        let n = self.window.len();
        let start = frame * FRAME;
        let mut buf: Vec<Complex<f32>> = (0..n)
            .map(|i| {
                Complex::new(
                    samples.get(start + i).copied().unwrap_or(0.0) * self.window[i],
                    0.0,
                )
            })
            .collect();
        self.fft.process(&mut buf);
        let bin_hz = SAMPLE_RATE as f32 / n as f32;
        let (lo, hi) = ((100.0 / bin_hz) as usize, (2000.0 / bin_hz) as usize);
        (lo..hi)
            .max_by(|a, b| buf[*a].norm_sqr().total_cmp(&buf[*b].norm_sqr()))
            .unwrap_or(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(i: usize) -> f32 {
        i as f32 / SAMPLE_RATE as f32
    }

    /// A melody of held notes over a pad.
    fn melody(seconds: usize) -> Vec<f32> {
        (0..seconds * SAMPLE_RATE)
            .map(|i| {
                let t = at(i);
                let note = 220.0 * 2f32.powf(((t * 2.5).floor() * 7.0 % 12.0) / 12.0);
                0.25 * (2.0 * std::f32::consts::PI * note * t).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 110.0 * t).sin()
            })
            .collect()
    }

    /// Syllable-like bursts whose pitch glides, 4 per second, with gaps between.
    fn babble(seconds: usize) -> Vec<f32> {
        (0..seconds * SAMPLE_RATE)
            .map(|i| {
                let t = at(i);
                let phase = (t * 4.0).fract();
                if phase > 0.7 {
                    return 0.0;
                }
                let pitch = 150.0 + 400.0 * phase + 80.0 * (t * 1.3).sin();
                0.3 * (2.0 * std::f32::consts::PI * pitch * t).sin()
                    * (std::f32::consts::PI * phase / 0.7).sin()
            })
            .collect()
    }

    #[test]
    fn held_notes_are_music_and_gliding_syllables_are_not() {
        assert_eq!(stretches(&melody(12)), vec![(0, 600)]);
        assert!(stretches(&babble(12)).is_empty());
    }

    #[test]
    fn a_short_run_or_a_quiet_one_is_not_skipped() {
        assert!(stretches(&melody(7)).is_empty());
        let faint: Vec<f32> = melody(12).iter().map(|x| x * 0.01).collect();
        assert!(stretches(&faint).is_empty());
    }
}
