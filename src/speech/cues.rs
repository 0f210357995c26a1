//! Transcript segments → subtitle files. Pure, so it is tested without a model.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One stretch of speech with absolute times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Each word's own time, when word timings were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// One word of a cue, with absolute times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// A cue's text with a WebVTT timestamp tag before every word after the first (karaoke
/// style: players highlight each word from its time on); the plain text without words.
fn vtt_text(c: &Cue) -> String {
    if c.words.is_empty() {
        return clean(&c.text);
    }
    let mut out = String::new();
    for (i, w) in c.words.iter().enumerate() {
        if i > 0 {
            let _ = write!(out, " <{}>", stamp(w.start, '.'));
        }
        out.push_str(&clean(&w.text).replace(['<', '>'], ""));
    }
    out
}

fn stamp(seconds: f64, decimal: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{decimal}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text safe in both formats: no blank lines (they end a cue) and no "-->".
fn clean(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        .replace("-->", "->")
}

pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n");
    for c in cues {
        let _ = write!(
            out,
            "\n{} --> {}\n{}\n",
            stamp(c.start, '.'),
            stamp(c.end, '.'),
            vtt_text(c)
        );
    }
    out
}

pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            stamp(c.start, ','),
            stamp(c.end, ','),
            clean(&c.text)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_vtt_and_srt_with_hours_and_clean_text() {
        let cues = vec![
            Cue {
                start: 0.0,
                end: 2.5,
                text: " Hello there. ".into(),
                words: Vec::new(),
            },
            Cue {
                start: 3661.042,
                end: 3662.0,
                text: "a --> b\n\nc".into(),
                words: Vec::new(),
            },
        ];
        assert_eq!(
            to_vtt(&cues),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n01:01:01.042 --> 01:01:02.000\na -> b\nc\n"
        );
        assert_eq!(
            to_srt(&cues),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:01:01,042 --> 01:01:02,000\na -> b\nc\n\n"
        );
    }

    #[test]
    fn word_times_become_karaoke_tags_in_vtt_only() {
        let word = |start: f64, end: f64, text: &str| Word {
            start,
            end,
            text: text.into(),
        };
        let cue = Cue {
            start: 1.0,
            end: 2.6,
            text: "Hello big world".into(),
            words: vec![
                word(1.0, 1.4, " Hello"),
                word(1.5, 1.9, " big"),
                word(2.0, 2.6, " <world>"),
            ],
        };
        assert_eq!(
            to_vtt(std::slice::from_ref(&cue)),
            "WEBVTT\n\n00:00:01.000 --> 00:00:02.600\nHello <00:00:01.500>big <00:00:02.000>world\n"
        );
        assert!(to_srt(&[cue]).contains("\nHello big world\n"));
    }
}
