//! Whisper's input features: an 80- (or 128-) band log-mel spectrogram of 30 s of 16 kHz
//! audio, computed as OpenAI's reference does (periodic Hann window of 400, hop 160,
//! reflect-padded STFT, Slaney mel filters, log10, clamp to max − 8, then (x + 4) / 4),
//! over the whole recording at once as faster-whisper does: the clamp uses the recording's
//! maximum, and windows are cut from it (the last one padded with zeros).

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// 30 s: the window Whisper sees at once.
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE;
pub const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP;

pub struct MelExtractor {
    n_mels: usize,
    /// n_mels × (N_FFT / 2 + 1), row-major.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl MelExtractor {
    pub fn new(n_mels: usize) -> MelExtractor {
        let bins = N_FFT / 2 + 1;
        let bank = mel_spec::mel::mel(SAMPLE_RATE as f64, N_FFT, n_mels, None, None, false, true);
        let filters = (0..n_mels)
            .flat_map(|m| (0..bins).map(move |b| (m, b)))
            .map(|(m, b)| bank.get((m, b)).copied().unwrap_or(0.0) as f32)
            .collect();
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        MelExtractor {
            n_mels,
            filters,
            window,
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The whole audio's features, computed as faster-whisper does before it cuts windows:
    /// 160 samples of silence appended, the STFT reflect-padded at the file's edges only,
    /// and the clamp at the loudest value of the whole file (a quiet window keeps its
    /// distance from the file's loudest speech).
    pub fn log_mel(&self, samples: &[f32]) -> LogMel {
        let mut audio = samples.to_vec();
        audio.resize(samples.len() + HOP, 0.0);
        let n = audio.len();
        // numpy's "reflect": x[pad], …, x[1] | x | x[n-2], …
        let at = |i: isize| -> f32 {
            let j = if i < 0 {
                -i
            } else if i as usize >= n {
                2 * (n as isize - 1) - i
            } else {
                i
            };
            audio[j.clamp(0, n as isize - 1) as usize]
        };
        // The STFT's last frame is dropped, as the reference does.
        let frames = n / HOP;
        let bins = N_FFT / 2 + 1;
        let pad = (N_FFT / 2) as isize;
        let mut mel = vec![0.0f32; self.n_mels * frames];
        let mut buf = vec![Complex::new(0.0f32, 0.0); N_FFT];
        let mut power = vec![0.0f32; bins];
        for frame in 0..frames {
            let start = (frame * HOP) as isize - pad;
            for (k, b) in buf.iter_mut().enumerate() {
                *b = Complex::new(at(start + k as isize) * self.window[k], 0.0);
            }
            self.fft.process(&mut buf);
            for (p, b) in power.iter_mut().zip(&buf) {
                *p = b.norm_sqr();
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * bins..(m + 1) * bins];
                let energy: f32 = row.iter().zip(&power).map(|(f, p)| f * p).sum();
                mel[m * frames + frame] = energy.max(1e-10).log10();
            }
        }
        let top = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut mel {
            *v = (v.max(top - 8.0) + 4.0) / 4.0;
        }
        LogMel {
            n_mels: self.n_mels,
            frames,
            mel,
        }
    }
}

/// A whole recording's log-mel features, `n_mels × frames` row-major.
pub struct LogMel {
    n_mels: usize,
    frames: usize,
    mel: Vec<f32>,
}

impl LogMel {
    /// Frames of audio content (one per 10 ms; the appended silence's frame not counted).
    pub fn content_frames(&self) -> usize {
        self.frames.saturating_sub(1)
    }

    /// The window Whisper sees from frame `start`: up to 30 s of content, `n_mels ×
    /// WINDOW_FRAMES` row-major, the rest zeros (as the reference pads its windows).
    pub fn window(&self, start: usize) -> Vec<f32> {
        let end = (start + WINDOW_FRAMES).min(self.content_frames());
        let mut out = vec![0.0f32; self.n_mels * WINDOW_FRAMES];
        if start < end {
            for m in 0..self.n_mels {
                let row = &self.mel[m * self.frames..(m + 1) * self.frames];
                out[m * WINDOW_FRAMES..m * WINDOW_FRAMES + (end - start)]
                    .copy_from_slice(&row[start..end]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_the_band_of_its_frequency() {
        let x = MelExtractor::new(80);
        let tone: Vec<f32> = (0..SAMPLE_RATE)
            .map(|i| {
                (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SAMPLE_RATE as f32).sin() * 0.5
            })
            .collect();
        let mut audio = tone.clone();
        audio.resize(25 * SAMPLE_RATE, 0.0);
        let f = x.log_mel(&audio).window(0);
        assert_eq!(f.len(), 80 * WINDOW_FRAMES);
        // Frame 50 (0.5 s): the loudest band is the one holding 1 kHz; silence after 1 s
        // sits at the floor (max − 8, scaled), and past the audio's end the window is zeros.
        let column = |t: usize| {
            (0..80)
                .map(|m| f[m * WINDOW_FRAMES + t])
                .collect::<Vec<_>>()
        };
        let loud = column(50);
        let best = (0..80)
            .max_by(|a, b| loud[*a].total_cmp(&loud[*b]))
            .unwrap_or(0);
        assert!((20..35).contains(&best), "band {best}");
        let quiet = column(2000);
        let floor = quiet.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(quiet.iter().all(|v| (v - floor).abs() < 1e-6));
        assert!(loud[best] - floor > 1.5);
        assert!(column(2600).iter().all(|v| *v == 0.0));
    }
}
