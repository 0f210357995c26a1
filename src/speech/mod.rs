//! Speech to text with Whisper, in-process (CTranslate2 through ct2rs). Knows nothing of
//! ffmpeg, Lua or sled: 16 kHz mono samples in, timed cues out.
//!
//! spool computes the features itself (see `features`), builds the decoder prompt itself
//! (so English-only models get theirs, and translation works), and walks long audio in
//! 30 s windows the way Whisper does: after each window it moves to the end of the last
//! complete segment, so speech cut at a window edge is decoded again whole.

mod activity;
pub mod child;
pub mod cues;
mod decode;
mod features;
mod model;
mod music;
mod walk;
mod words;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper};
use ct2rs::tokenizers::hf::Tokenizer as HfTokenizer;
use ct2rs::Tokenizer as _;
use serde::{Deserialize, Serialize};

pub use cues::{to_srt, to_vtt, Cue, Word};
pub use features::SAMPLE_RATE;

/// How far a running transcription got (samples behind the current window), for progress.
/// It is stopped and paused from outside as a process: the engine runs it in a child (see
/// `child`) and signals that.
#[derive(Debug, Default, Clone)]
pub struct Control {
    pub done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Whisper's log-mel features of 16 kHz audio, the 30 s window from `start_frame` (10 ms
/// frames), `n_mels × 3000` row-major, as the model sees it.
pub fn log_mel(samples: &[f32], n_mels: usize, start_frame: usize) -> Vec<f32> {
    MelExtractor::new(n_mels)
        .log_mel(samples)
        .window(start_frame)
}

/// The seed of the sampled fallback decodings.
const SAMPLING_SEED: u32 = 20_240_601;

/// Bumped whenever decoding changes what a transcript says (part of a kept transcript's key).
pub const DECODER_VERSION: u32 = 4;
use features::MelExtractor;
pub use model::{find_model, model_fingerprint, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    /// 8-bit weights: the fast choice on CPU.
    #[default]
    Int8,
    Int8Float32,
    Float32,
    /// Whatever the model was converted with.
    Default,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// ISO code (`en`, `de`); None detects it on multilingual models.
    pub language: Option<String>,
    /// Translate to English instead of transcribing (multilingual models only).
    pub translate: bool,
    pub beam_size: usize,
    pub compute: Compute,
    /// CPU threads; 0 lets CTranslate2 choose.
    pub threads: usize,
    /// Each word's time too (cross-attention alignment; karaoke-style WebVTT).
    pub word_timestamps: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub cues: Vec<Cue>,
    pub text: String,
    pub audio_seconds: f64,
    pub elapsed_s: f64,
    /// 30 s windows decoded; of them, those decoded again at a higher temperature (their
    /// first result repeated itself or was unsure) and those judged silent (no text kept).
    pub windows: usize,
    pub fallbacks: usize,
    pub silent_windows: usize,
    /// Seconds of silence (and music) skipped without decoding, and cues dropped for having
    /// no sound.
    pub silence_skipped_s: f64,
    pub dropped_cues: usize,
    /// Stretches of music without speech, [start, end] seconds: not decoded, no cue there.
    #[serde(default)]
    pub music: Vec<[f64; 2]>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("Whisper: {0}")]
    Engine(String),
    #[error("{0}")]
    Options(String),
}

fn engine(e: impl std::fmt::Display) -> SpeechError {
    SpeechError::Engine(e.to_string())
}

pub struct Transcriber {
    whisper: Whisper,
    tokenizer: HfTokenizer,
    mel: MelExtractor,
    options: Options,
    model: PathBuf,
    /// Loaded when word timings are asked for.
    vocabulary: Option<words::Vocabulary>,
}

impl Transcriber {
    /// Loads the model in `dir` (a CTranslate2 Whisper model directory).
    pub fn open(dir: &Path, options: Options) -> Result<Transcriber, SpeechError> {
        model::check_model_dir(dir)?;
        let compute = match options.compute {
            Compute::Int8 => ComputeType::INT8,
            Compute::Int8Float32 => ComputeType::INT8_FLOAT32,
            Compute::Float32 => ComputeType::FLOAT32,
            Compute::Default => ComputeType::DEFAULT,
        };
        let config = Config {
            device: Device::CPU,
            compute_type: compute,
            num_threads_per_replica: options.threads,
            ..Config::default()
        };
        // Sampled fallbacks draw from generators each new worker thread seeds from this: the
        // same audio gives the same transcript (and a kept one stays what a rerun would say).
        ct2rs::sys::set_random_seed(SAMPLING_SEED);
        let whisper = Whisper::new(dir, config).map_err(engine)?;
        if options.translate && !whisper.is_multilingual() {
            return Err(SpeechError::Options(format!(
                "{}: an English-only model cannot translate; use a multilingual model",
                dir.display()
            )));
        }
        let tokenizer = HfTokenizer::new(dir).map_err(engine)?;
        let vocabulary = match options.word_timestamps {
            true => Some(words::Vocabulary::load(dir)?),
            false => None,
        };
        Ok(Transcriber {
            vocabulary,
            mel: MelExtractor::new(whisper.n_mels()),
            whisper,
            tokenizer,
            options,
            model: dir.to_path_buf(),
        })
    }

    pub fn model(&self) -> &Path {
        &self.model
    }

    /// Transcribes 16 kHz mono samples in [-1, 1], steered by `control`.
    pub fn transcribe(
        &self,
        samples: &[f32],
        control: &Control,
    ) -> Result<Transcript, SpeechError> {
        let started = Instant::now();
        let total = samples.len();
        let activity = activity::Activity::measure(samples);
        let walked = self.walk(samples, &activity, control)?;
        let walk::Walked {
            mut cues,
            language,
            windows,
            fallbacks,
            silent_windows,
            skipped_s,
        } = walked;
        let dropped_cues = activity.fit(&mut cues);
        // Words stay inside their cue, which now ends with its sound.
        for c in &mut cues {
            for w in &mut c.words {
                w.start = w.start.clamp(c.start, c.end);
                w.end = w.end.clamp(w.start, c.end);
            }
        }
        let text = cues
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Transcript {
            language: language.unwrap_or_else(|| "en".into()),
            cues,
            text,
            audio_seconds: total as f64 / SAMPLE_RATE as f64,
            elapsed_s: started.elapsed().as_secs_f64(),
            windows,
            fallbacks,
            silent_windows,
            silence_skipped_s: skipped_s,
            dropped_cues,
            music: activity.music.iter().map(|(a, b)| [*a, *b]).collect(),
        })
    }

    /// Each segment's words with times from the window's start: the window's text tokens
    /// aligned with its audio (see `words`). No words when a token is not in the vocabulary.
    fn align_words(
        &self,
        vocabulary: &words::Vocabulary,
        view: &StorageView,
        prompt: &[String],
        segments: &[WindowSegment],
        samples: usize,
    ) -> Result<Vec<Vec<Word>>, SpeechError> {
        let mut out: Vec<Vec<Word>> = vec![Vec::new(); segments.len()];
        let all: Vec<String> = segments.iter().flat_map(|s| s.tokens.clone()).collect();
        let (Some(ids), Some(start)) = (vocabulary.ids(&all), vocabulary.ids(prompt)) else {
            return Ok(out);
        };
        if ids.is_empty() {
            return Ok(out);
        }
        let frames = samples.div_ceil(features::HOP);
        let aligned = self
            .whisper
            .align(view, &start, &[ids], &[frames], words::MEDIAN_FILTER_WIDTH)
            .map_err(engine)?;
        let path: Vec<(i64, i64)> = aligned
            .first()
            .map(|r| {
                r.alignments
                    .iter()
                    .map(|a| (a.token_x, a.frame_x))
                    .collect()
            })
            .unwrap_or_default();
        // Words are grouped per segment (a segment always starts a word).
        let mut groups = Vec::new();
        let mut at = 0;
        for (i, seg) in segments.iter().enumerate() {
            for g in words::group_words(&seg.tokens) {
                groups.push((i, g.start + at..g.end + at));
            }
            at += seg.tokens.len();
        }
        let ranges: Vec<std::ops::Range<usize>> = groups.iter().map(|(_, g)| g.clone()).collect();
        let times = words::word_times(&path, all.len(), &ranges);
        for ((i, g), (start, end)) in groups.into_iter().zip(times) {
            let seg = &segments[i];
            let text = self.tokenizer.decode(all[g].to_vec()).map_err(engine)?;
            let start = start.clamp(seg.start, seg.end);
            out[i].push(Word {
                start,
                end: end.clamp(start, seg.end),
                text,
            });
        }
        Ok(out)
    }

    /// The words of a decoding, without its timestamp and control tokens.
    fn text_of(&self, tokens: &[String]) -> Result<String, SpeechError> {
        let words: Vec<String> = tokens
            .iter()
            .filter(|t| !(t.starts_with("<|") && t.ends_with("|>")))
            .cloned()
            .collect();
        self.tokenizer.decode(words).map_err(engine)
    }

    fn detect(&self, view: &StorageView) -> Result<String, SpeechError> {
        let found = self.whisper.detect_language(view).map_err(engine)?;
        let best = found
            .into_iter()
            .next()
            .and_then(|d| d.into_iter().next())
            .ok_or_else(|| engine("language detection returned nothing"))?;
        Ok(best
            .language
            .trim_start_matches("<|")
            .trim_end_matches("|>")
            .to_string())
    }

    /// English-only models take the start token alone; multilingual ones the language and
    /// the task. No `<|notimestamps|>`: the timestamps make the segments.
    fn prompt(&self, multilingual: bool, language: Option<&str>) -> Vec<String> {
        let mut p = vec!["<|startoftranscript|>".to_string()];
        if multilingual {
            p.push(format!("<|{}|>", language.unwrap_or("en")));
            p.push(if self.options.translate {
                "<|translate|>".into()
            } else {
                "<|transcribe|>".into()
            });
        }
        p
    }
}

/// A segment of one window, in seconds from the window's start.
#[derive(Debug, PartialEq)]
struct WindowSegment {
    start: f64,
    end: f64,
    tokens: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct Decoded {
    segments: Vec<WindowSegment>,
    /// How far to move on: past the last complete segment, or the whole window.
    advance_s: f64,
}

fn timestamp(token: &str) -> Option<f64> {
    token.strip_prefix("<|")?.strip_suffix("|>")?.parse().ok()
}

/// Splits a window's tokens at Whisper's timestamp tokens (`<|1.24|>`).
fn split_segments(tokens: &[String], window_s: f64) -> Decoded {
    let mut segments = Vec::new();
    let mut start: Option<f64> = None;
    let mut text: Vec<String> = Vec::new();
    let mut last_complete_end = None;
    for t in tokens {
        if let Some(ts) = timestamp(t) {
            let ts = ts.min(window_s);
            match start {
                Some(s) if !text.is_empty() => {
                    segments.push(WindowSegment {
                        start: s,
                        end: ts,
                        tokens: std::mem::take(&mut text),
                    });
                    last_complete_end = Some(ts);
                    start = None;
                }
                _ => start = Some(ts),
            }
        } else if !(t.starts_with("<|") && t.ends_with("|>")) {
            text.push(t.clone());
        }
    }
    // Whisper's own rule: a single timestamp at the very end means no speech after it;
    // a pair (or text with no closing timestamp) means the window cut the speech.
    let is_ts = |t: Option<&String>| t.is_some_and(|t| timestamp(t).is_some());
    let n = tokens.len();
    let single_ending = n >= 2 && is_ts(tokens.get(n - 1)) && !is_ts(tokens.get(n - 2));
    if !text.is_empty() {
        // Speech runs past the window: keep it only if nothing else was found, and
        // otherwise decode it again from the next window.
        if segments.is_empty() {
            segments.push(WindowSegment {
                start: start.unwrap_or(0.0),
                end: window_s,
                tokens: text,
            });
            last_complete_end = None;
        }
    }
    let advance_s = match (single_ending, last_complete_end) {
        (false, Some(end)) if end >= 1.0 => end,
        _ => window_s,
    };
    Decoded {
        segments,
        advance_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn segments_follow_the_timestamp_tokens() {
        let d = split_segments(
            &toks("<|0.00|> Hello Ġworld <|1.50|> <|1.50|> ĠBye <|2.80|>"),
            30.0,
        );
        assert_eq!(d.segments.len(), 2);
        assert_eq!((d.segments[1].start, d.segments[1].end), (1.5, 2.8));
        assert_eq!(d.segments[0].tokens, toks("Hello Ġworld"));
        assert_eq!(d.advance_s, 30.0);
    }

    #[test]
    fn speech_cut_by_the_window_is_decoded_again_from_the_next() {
        let d = split_segments(&toks("<|0.00|> One <|12.00|> <|12.00|> Two Ġthree"), 30.0);
        assert_eq!(d.segments.len(), 1);
        assert_eq!(d.advance_s, 12.0);
        let d = split_segments(&toks("no Ġtimestamps"), 7.5);
        assert_eq!(d.segments[0].end, 7.5);
        assert_eq!(d.advance_s, 7.5);
    }
}
