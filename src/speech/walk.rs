//! The walk through a recording, 30 s window after window: silence skipped, each window
//! decoded (see `decode`), its segments turned into cues at absolute times, and the next
//! window started where the last complete segment ended.

use std::sync::atomic::Ordering;

use ct2rs::sys::{Device, StorageView};
use ct2rs::Tokenizer as _;

use super::activity::Activity;
use super::features::{self, WINDOW_SAMPLES};
use super::SAMPLE_RATE;
use super::{decode, engine, split_segments, Control, Cue, SpeechError, Transcriber, Word};

/// What the walk found, before the cues are fitted to the sound.
pub(super) struct Walked {
    pub cues: Vec<Cue>,
    pub language: Option<String>,
    pub windows: usize,
    pub fallbacks: usize,
    pub silent_windows: usize,
    /// Seconds of silence jumped over.
    pub skipped_s: f64,
}

impl Transcriber {
    /// Decodes `samples` window by window.
    pub(super) fn walk(
        &self,
        samples: &[f32],
        activity: &Activity,
        control: &Control,
    ) -> Result<Walked, SpeechError> {
        let total = samples.len();
        let multilingual = self.whisper.is_multilingual();
        let mut language = self.options.language.clone();
        let mut cues = Vec::new();
        let mut seek = 0usize;
        let (mut windows, mut fallbacks, mut silent_windows) = (0, 0, 0);
        let mel = self.mel.log_mel(samples);
        let mut skipped = 0usize;
        while seek + SAMPLE_RATE / 10 < total {
            control.done.store(seek, Ordering::Relaxed);
            let Some(start) = activity.next_start(seek) else {
                skipped += total - seek;
                break;
            };
            if start > seek {
                skipped += start - seek;
                seek = start;
                continue;
            }
            let window = &samples[seek..(seek + WINDOW_SAMPLES).min(total)];
            let mut feats = mel.window(seek / features::HOP);
            let shape = [1, self.mel.n_mels(), features::WINDOW_FRAMES];
            let view = StorageView::new(&shape, &mut feats, Device::CPU).map_err(engine)?;
            if multilingual && language.is_none() {
                language = Some(self.detect(&view)?);
            }
            // No previous-text prompt: with it, tiny models stopped emitting timestamps and
            // gave 30 s cues (measured in bench/whisper.py).
            let prompt = self.prompt(multilingual, language.as_deref());
            let result = decode::decode_window(
                &self.whisper,
                &view,
                &prompt,
                self.options.beam_size,
                |tokens| self.text_of(tokens),
            )?;
            windows += 1;
            if result.temperature > 0.0 {
                fallbacks += 1;
            }
            if result.is_silence() {
                silent_windows += 1;
                seek += window.len();
                continue;
            }
            let window_s = window.len() as f64 / SAMPLE_RATE as f64;
            let offset = seek as f64 / SAMPLE_RATE as f64;
            let decoded = split_segments(&result.tokens, window_s);
            let timed = match &self.vocabulary {
                Some(v) => self.align_words(v, &view, &prompt, &decoded.segments, window.len())?,
                None => vec![Vec::new(); decoded.segments.len()],
            };
            for (seg, words) in decoded.segments.iter().zip(timed) {
                let text = self.tokenizer.decode(seg.tokens.clone()).map_err(engine)?;
                let text = text.trim().to_string();
                if !text.is_empty() {
                    cues.push(Cue {
                        start: offset + seg.start,
                        end: offset + seg.end.max(seg.start + 0.02),
                        text,
                        words: words
                            .into_iter()
                            .map(|w| Word {
                                start: offset + w.start,
                                end: offset + w.end,
                                ..w
                            })
                            .collect(),
                    });
                }
            }
            seek += (decoded.advance_s * SAMPLE_RATE as f64).round() as usize;
        }
        Ok(Walked {
            cues,
            language,
            windows,
            fallbacks,
            silent_windows,
            skipped_s: skipped as f64 / SAMPLE_RATE as f64,
        })
    }
}
