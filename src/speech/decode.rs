//! One 30 s window decoded the way the reference implementations do (openai-whisper,
//! faster-whisper): beam search at temperature 0, and when the result looks degenerate (text
//! that compresses too well, i.e. repeats; or a low average log-probability) decoded again by
//! sampling at rising temperatures, best of five. A window whose no-speech probability is high
//! and whose decoding is unsure is silence: it yields no text at all.

use std::io::Write;

use ct2rs::sys::{StorageView, Whisper, WhisperOptions};

use super::{engine, SpeechError};

/// Temperatures tried in turn (openai-whisper's defaults).
const TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
/// Above this gzip ratio the text repeats itself ("Good day to all." seven times).
pub const COMPRESSION_RATIO_MAX: f64 = 2.4;
/// Below this mean log-probability per token the decoding is unsure.
pub const LOGPROB_MIN: f64 = -1.0;
/// With an unsure decoding, a no-speech probability above this means silence.
pub const NO_SPEECH_MIN: f64 = 0.6;
/// Samples drawn at each temperature above 0.
const BEST_OF: usize = 5;

/// The decoding kept for a window, with the measures it was judged by.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub tokens: Vec<String>,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    /// How often its most repeated sentence occurs (a short loop compresses too little for
    /// the ratio to catch it: "I am very happy to see you again." three times).
    pub repeats: usize,
    pub no_speech_prob: f64,
    pub temperature: f32,
}

impl WindowResult {
    /// Whisper's silence rule: the model thinks nobody speaks and is unsure of what it heard.
    pub fn is_silence(&self) -> bool {
        self.no_speech_prob > NO_SPEECH_MIN && self.avg_logprob < LOGPROB_MIN
    }

    fn needs_fallback(&self) -> bool {
        if self.is_silence() {
            return false;
        }
        self.looping() || self.avg_logprob < LOGPROB_MIN
    }

    fn looping(&self) -> bool {
        self.compression_ratio > COMPRESSION_RATIO_MAX || self.repeats >= MAX_REPEATS
    }
}

/// Decodes one window's features; `text_of` turns tokens into text (for the ratio).
pub fn decode_window(
    whisper: &Whisper,
    view: &StorageView,
    prompt: &[String],
    beam_size: usize,
    text_of: impl Fn(&[String]) -> Result<String, SpeechError>,
) -> Result<WindowResult, SpeechError> {
    let mut tried: Vec<WindowResult> = Vec::new();
    for temperature in TEMPERATURES {
        let options = options_at(temperature, beam_size);
        let result = whisper
            .generate(view, &[prompt.to_vec()], &options)
            .map_err(engine)?
            .into_iter()
            .next()
            .ok_or_else(|| engine("Whisper returned no result"))?;
        let best = (0..result.sequences.len())
            .max_by(|a, b| {
                let score = |i: usize| result.scores.get(i).copied().unwrap_or(f32::MIN);
                score(*a).total_cmp(&score(*b))
            })
            .unwrap_or(0);
        let tokens = result.sequences.get(best).cloned().unwrap_or_default();
        // CTranslate2's score is the sum of log-probabilities divided by length^penalty (1).
        let score = f64::from(result.scores.get(best).copied().unwrap_or(0.0));
        let length = tokens.len() as f64;
        let text = text_of(&tokens)?;
        let window = WindowResult {
            avg_logprob: score * length / (length + 1.0),
            compression_ratio: compression_ratio(&text),
            repeats: repeats(&text),
            no_speech_prob: f64::from(result.no_speech_prob),
            temperature,
            tokens,
        };
        let done = !window.needs_fallback();
        tried.push(window);
        if done {
            break;
        }
    }
    Ok(pick(tried))
}

fn options_at(temperature: f32, beam_size: usize) -> WhisperOptions {
    let common = WhisperOptions {
        return_scores: true,
        return_no_speech_prob: true,
        ..WhisperOptions::default()
    };
    if temperature == 0.0 {
        WhisperOptions {
            beam_size: beam_size.max(1),
            ..common
        }
    } else {
        WhisperOptions {
            beam_size: 1,
            num_hypotheses: BEST_OF,
            sampling_topk: 0,
            sampling_temperature: temperature,
            ..common
        }
    }
}

/// The last decoding if it passed; otherwise, as the references do, the most probable of
/// those that do not repeat themselves, or of all when every one does.
fn pick(mut tried: Vec<WindowResult>) -> WindowResult {
    let last_ok = tried.last().is_some_and(|w| !w.needs_fallback());
    if last_ok || tried.len() == 1 {
        return tried.pop().unwrap_or_else(empty);
    }
    let by_logprob = |a: &&WindowResult, b: &&WindowResult| a.avg_logprob.total_cmp(&b.avg_logprob);
    let not_repeating = tried.iter().filter(|w| !w.looping()).max_by(by_logprob);
    not_repeating
        .or_else(|| tried.iter().max_by(by_logprob))
        .cloned()
        .unwrap_or_else(empty)
}

fn empty() -> WindowResult {
    WindowResult {
        tokens: Vec::new(),
        avg_logprob: 0.0,
        compression_ratio: 0.0,
        repeats: 0,
        no_speech_prob: 0.0,
        temperature: 0.0,
    }
}

/// A sentence said this many times in one window is a decoding loop.
const MAX_REPEATS: usize = 3;

/// The count of the most repeated sentence or clause of three words or more.
pub fn repeats(text: &str) -> usize {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for sentence in text.split(['.', '!', '?', ',', ';']) {
        let words: Vec<String> = sentence
            .split_whitespace()
            .map(|w| {
                w.to_lowercase()
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .to_string()
            })
            .filter(|w| !w.is_empty())
            .collect();
        if words.len() >= 3 {
            *seen.entry(words.join(" ")).or_default() += 1;
        }
    }
    seen.into_values().max().unwrap_or(0)
}

/// Bytes of the text over bytes of its zlib compression (openai-whisper's measure).
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|_| z.finish())
        .map_or(text.len(), |c| c.len());
    text.len() as f64 / compressed.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(ratio: f64, logprob: f64, no_speech: f64) -> WindowResult {
        WindowResult {
            tokens: vec![format!("{ratio}")],
            avg_logprob: logprob,
            compression_ratio: ratio,
            repeats: 0,
            no_speech_prob: no_speech,
            temperature: 0.0,
        }
    }

    #[test]
    fn repeated_text_compresses_past_the_threshold_and_plain_text_does_not() {
        let loop_text = "Good day to all. ".repeat(7);
        assert!(compression_ratio(&loop_text) > COMPRESSION_RATIO_MAX);
        let plain = "Guten Morgen. Heute sprechen wir über das Wetter in Berlin.";
        assert!(compression_ratio(plain) < COMPRESSION_RATIO_MAX);
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn a_short_loop_is_a_loop_too() {
        let three = "I am very happy to see you again. I am very happy to see you again. i am very happy to see you again.";
        assert!(
            compression_ratio(three) < COMPRESSION_RATIO_MAX,
            "the ratio misses it"
        );
        assert_eq!(repeats(three), 3);
        assert_eq!(
            repeats("Yes. Yes. Yes. No."),
            0,
            "short replies are not loops"
        );
        assert_eq!(repeats("Good morning to you. Good morning to you."), 2);
        let mut w = window(1.5, -0.3, 0.0);
        w.repeats = 3;
        assert!(w.needs_fallback());
    }

    #[test]
    fn fallback_rules_follow_the_reference() {
        assert!(window(3.0, -0.2, 0.0).needs_fallback(), "repeating");
        assert!(window(1.2, -1.5, 0.1).needs_fallback(), "unsure");
        assert!(!window(1.2, -0.3, 0.0).needs_fallback());
        let silence = window(1.0, -1.5, 0.9);
        assert!(silence.is_silence() && !silence.needs_fallback());
        assert!(
            !window(1.0, -0.5, 0.9).is_silence(),
            "sure of its words: speech"
        );
    }

    #[test]
    fn when_every_try_fails_the_most_probable_non_repeating_one_is_kept() {
        let kept = pick(vec![
            window(3.1, -0.1, 0.0),
            window(1.5, -1.4, 0.0),
            window(1.6, -1.2, 0.0),
        ]);
        assert_eq!(kept.compression_ratio, 1.6);
        let all_repeat = pick(vec![window(3.1, -0.9, 0.0), window(2.9, -0.4, 0.0)]);
        assert_eq!(all_repeat.compression_ratio, 2.9);
    }
}
