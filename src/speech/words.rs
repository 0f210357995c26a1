//! Word timings, as the reference implementations make them: a window's text tokens are
//! aligned with its audio through the cross-attention heads the model names
//! (`alignment_heads` in config.json) by CTranslate2's dynamic time warping; a word starts at
//! the encoder frame (20 ms) where the path reaches its first token and ends where it reaches
//! the next word's. The grouping and timing are pure and tested without a model.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::SpeechError;

/// Seconds per encoder frame (the second convolution halves the 10 ms mel frames).
const FRAME_S: f64 = 0.02;

/// Width of the median filter over the attention weights (the reference's default).
pub const MEDIAN_FILTER_WIDTH: i64 = 7;

/// Token string → id, from the model's vocabulary (the line number in vocabulary.txt, the
/// index in vocabulary.json).
pub struct Vocabulary(HashMap<String, usize>);

impl Vocabulary {
    pub fn load(dir: &Path) -> Result<Vocabulary, SpeechError> {
        let bad = |e: String| SpeechError::Engine(format!("vocabulary of {}: {e}", dir.display()));
        let tokens: Vec<String> = match std::fs::read_to_string(dir.join("vocabulary.json")) {
            Ok(json) => serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?,
            Err(_) => std::fs::read_to_string(dir.join("vocabulary.txt"))
                .map_err(|e| bad(e.to_string()))?
                .lines()
                .map(String::from)
                .collect(),
        };
        Ok(Vocabulary(
            tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, i))
                .collect(),
        ))
    }

    /// Every token's id, or None when one is not in the vocabulary.
    pub fn ids(&self, tokens: &[String]) -> Option<Vec<usize>> {
        tokens.iter().map(|t| self.0.get(t).copied()).collect()
    }
}

/// The tokens of a text (byte-level BPE strings, `Ġ` for a space) grouped into words: a
/// token beginning with a space starts one; punctuation stays with the word before it.
pub fn group_words(tokens: &[String]) -> Vec<Range<usize>> {
    let mut words: Vec<Range<usize>> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let spaced = t.starts_with('Ġ');
        let punctuation = !t.chars().any(char::is_alphanumeric);
        match words.last_mut() {
            Some(w) if !spaced || (punctuation && t.trim_start_matches('Ġ').len() <= 1) => {
                w.end = i + 1
            }
            _ => words.push(i..i + 1),
        }
    }
    words
}

/// Each word's (start, end) in seconds from the window's start, from the alignment path
/// (pairs of token index and encoder frame; the tokens are the text and the end token).
pub fn word_times(path: &[(i64, i64)], n_tokens: usize, words: &[Range<usize>]) -> Vec<(f64, f64)> {
    // The frame where the path first reaches each token.
    let mut first: Vec<Option<f64>> = vec![None; n_tokens + 1];
    for (token, frame) in path {
        let Ok(t) = usize::try_from(*token) else {
            continue;
        };
        if let Some(slot) = first.get_mut(t) {
            if slot.is_none() {
                *slot = Some(*frame as f64 * FRAME_S);
            }
        }
    }
    // A token the path skipped takes the time of the one before it.
    let mut last = 0.0;
    let at: Vec<f64> = first
        .into_iter()
        .map(|f| {
            last = f.unwrap_or(last);
            last
        })
        .collect();
    words
        .iter()
        .map(|w| {
            let start = at[w.start.min(n_tokens)];
            let end = at[w.end.min(n_tokens)].max(start);
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn words_start_at_spaces_and_keep_their_punctuation() {
        let t = toks("The Ġquick Ġbro wn Ġfox . Ġ\"Yes \"");
        let w = group_words(&t);
        assert_eq!(w, vec![0..1, 1..2, 2..4, 4..6, 6..8]);
    }

    #[test]
    fn a_word_runs_from_its_first_token_to_the_next_words() {
        // Tokens 0-2 then the end token (3); the path stays on token 1 for frames 10-19.
        let path: Vec<(i64, i64)> = vec![(0, 5), (0, 6), (1, 10), (1, 19), (2, 20), (3, 40)];
        let times = word_times(&path, 3, &[0..1, 1..3]);
        assert_eq!(times.len(), 2);
        assert!((times[0].0 - 0.10).abs() < 1e-9 && (times[0].1 - 0.20).abs() < 1e-9);
        assert!((times[1].0 - 0.20).abs() < 1e-9 && (times[1].1 - 0.80).abs() < 1e-9);
        // A token the path never reached borrows the time before it; nothing panics.
        let times = word_times(&[(0, 5)], 3, &[0..1, 1..3, 3..9]);
        assert_eq!(times[2], (0.1, 0.1));
    }
}
