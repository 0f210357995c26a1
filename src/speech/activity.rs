//! Where there is sound: the loudness of every 20 ms frame against the recording's own noise
//! floor, less long stretches of music without speech (see `music`). Used twice: to skip stretches of silence before decoding (a long silence costs no
//! decoding, and Whisper cannot invent words over it), and to fit each cue to its speech (or
//! drop a cue that has none: Whisper's "You" over 15 s of room noise).

use super::{Cue, SAMPLE_RATE};

const FRAME: usize = SAMPLE_RATE / 50;
const FRAME_S: f64 = FRAME as f64 / SAMPLE_RATE as f64;
/// The longest silence within one speech; a longer one ends it.
const MAX_PAUSE_S: f64 = 0.8;
/// Silence shorter than this before the next speech is decoded anyway (it costs little and
/// keeps Whisper's context).
const SKIP_AFTER_S: f64 = 2.0;
/// A run of sound shorter than this at a cue's edge, apart from the rest, is a neighbour's.
const EDGE_RUN_S: f64 = 0.25;
/// Silence within one word's aligned span longer than this separates it from the next word.
const WORD_GAP_S: f64 = 0.3;
/// How far over the floor a frame must be to be sound. Speech over a music bed sits only
/// 6–12 dB above it: at 4× (12 dB) most syllables of espeak-ng over the music test's bed
/// (−9 dB) were "silence", and their cue was narrowed to 0.2 s of a 3 s sentence.
const FLOOR_RATIO: f32 = 2.0;
/// Air kept before speech when a silence is skipped.
const LEAD_IN_S: f64 = 0.4;

pub struct Activity {
    loud: Vec<bool>,
    /// Music-only stretches (seconds), counted as silence: never decoded, no cue kept there.
    pub music: Vec<(f64, f64)>,
}

impl Activity {
    /// Frames louder than [`FLOOR_RATIO`] × the 10th-percentile frame outside the music (the
    /// noise floor, or the music bed under speech), and at least 0.005; music stretches are quiet.
    pub fn measure(samples: &[f32]) -> Activity {
        let rms: Vec<f32> = samples
            .chunks(FRAME)
            .map(|f| (f.iter().map(|x| x * x).sum::<f32>() / f.len().max(1) as f32).sqrt())
            .collect();
        let music = super::music::stretches(samples);
        let mut in_music = vec![false; rms.len()];
        for (a, b) in &music {
            in_music[(*a).min(rms.len())..(*b).min(rms.len())].fill(true);
        }
        let mut sorted: Vec<f32> = rms
            .iter()
            .zip(&in_music)
            .filter(|(_, m)| !**m)
            .map(|(r, _)| *r)
            .collect();
        sorted.sort_by(f32::total_cmp);
        let floor = sorted.get(sorted.len() / 10).copied().unwrap_or(0.0);
        let threshold = (floor * FLOOR_RATIO).max(0.005);
        let loud: Vec<bool> = rms
            .iter()
            .zip(&in_music)
            .map(|(r, m)| *r >= threshold && !m)
            .collect();
        Activity {
            loud,
            music: music
                .iter()
                .map(|(a, b)| (*a as f64 * FRAME_S, *b as f64 * FRAME_S))
                .collect(),
        }
    }

    /// Where decoding should go on from `seek` (a sample index): `seek` itself when speech
    /// comes within two seconds, else a little before the next speech; None when only
    /// silence is left.
    pub fn next_start(&self, seek: usize) -> Option<usize> {
        let from = seek / FRAME;
        let next = (from..self.loud.len()).find(|i| self.loud[*i])?;
        let gap_s = (next - from) as f64 * FRAME_S;
        if gap_s < SKIP_AFTER_S {
            return Some(seek);
        }
        let start_s = next as f64 * FRAME_S - LEAD_IN_S;
        Some(((start_s * SAMPLE_RATE as f64) as usize).max(seek))
    }

    /// Narrows each cue to its main run of loud frames (Whisper's timestamps are coarse at the
    /// edges of speech: a first cue often starts at 0.00 after seconds of silence) and drops
    /// cues with no loud frame at all. Returns how many were dropped.
    pub fn fit(&self, cues: &mut Vec<Cue>) -> usize {
        let max_pause = (MAX_PAUSE_S / FRAME_S) as usize;
        let before = cues.len();
        cues.retain_mut(|cue| {
            if !cue.words.is_empty() {
                return self.fit_words(cue);
            }
            let first = (cue.start / FRAME_S) as usize;
            let last = ((cue.end / FRAME_S).ceil() as usize).min(self.loud.len());
            let loud: Vec<usize> = (first..last).filter(|i| self.loud[*i]).collect();
            // Pauses inside a sentence are shorter; a longer silence separates two speeches,
            // and a cue is narrowed to its own speech, not a neighbour's first syllable.
            let run = own_speech(&loud, max_pause);
            let (Some(a), Some(b)) = (run.first(), run.last()) else {
                return false;
            };
            // A little air either side, as subtitles usually have.
            cue.start = (*a as f64 * FRAME_S - 0.1).max(cue.start);
            cue.end = ((*b + 1) as f64 * FRAME_S + 0.1)
                .min(cue.end)
                .max(cue.start + 0.2);
            true
        });
        before - cues.len()
    }
}

impl Activity {
    /// The loud frames in [start, end) seconds.
    fn loud_in(&self, start: f64, end: f64) -> Vec<usize> {
        let first = (start.max(0.0) / FRAME_S) as usize;
        let last = ((end / FRAME_S).ceil() as usize).min(self.loud.len());
        (first..last).filter(|i| self.loud[*i]).collect()
    }

    /// A cue with word times: each word narrowed to the sound within its aligned span (the
    /// alignment is coarse at the edges of speech, e.g. a first word "starting" at 0.00 after
    /// a second of silence), then the cue to its words. False when no word has sound.
    fn fit_words(&self, cue: &mut Cue) -> bool {
        let mut heard = false;
        // The frame after the previous word's sound: a word never reaches back past it.
        let mut free = (cue.start.max(0.0) / FRAME_S) as usize;
        let gap = (WORD_GAP_S / FRAME_S) as usize;
        for w in &mut cue.words {
            let loud = self.loud_in(w.start, w.end.max(w.start + FRAME_S));
            // The word's first run of sound; a later run is the next word's onset.
            let run = match loud.windows(2).position(|p| p[1] - p[0] > gap) {
                Some(k) => &loud[..=k],
                None => &loud[..],
            };
            if let (Some(a), Some(b)) = (run.first(), run.last()) {
                // Sound running on from before the aligned start is this word's beginning.
                let mut a = *a;
                while a > free && self.loud.get(a - 1).copied().unwrap_or(false) {
                    a -= 1;
                }
                w.start = a as f64 * FRAME_S;
                w.end = ((*b + 1) as f64 * FRAME_S).max(w.start + FRAME_S);
                free = *b + 1;
                heard = true;
            }
        }
        let (Some(first), Some(last)) = (cue.words.first(), cue.words.last()) else {
            return false;
        };
        cue.start = (first.start - 0.1).max(cue.start);
        cue.end = (last.end + 0.1).min(cue.end).max(cue.start + 0.2);
        heard
    }
}

/// The loud frames that are the cue's own speech: its runs (split at gaps over `max_pause`
/// frames), less a short first or last run set apart by such a gap (the end of the speech
/// before, the onset of the next). Several long runs all stay: words said with pauses.
fn own_speech(loud: &[usize], max_pause: usize) -> &[usize] {
    let short = (EDGE_RUN_S / FRAME_S) as usize;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=loud.len() {
        if i == loud.len() || loud[i] - loud[i - 1] > max_pause {
            runs.push((start, i));
            start = i;
        }
    }
    let len = |r: &(usize, usize)| loud[r.1 - 1] + 1 - loud[r.0];
    if runs.len() > 1 && runs.last().is_some_and(|r| len(r) < short) {
        runs.pop();
    }
    if runs.len() > 1 && runs.first().is_some_and(|r| len(r) < short) {
        runs.remove(0);
    }
    match (runs.first(), runs.last()) {
        (Some(a), Some(b)) => &loud[a.0..b.1],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(s: &mut [f32]) {
        for (i, x) in s.iter_mut().enumerate() {
            *x = (i as f32 * 0.3).sin() * 0.3;
        }
    }

    fn at(seconds: f64) -> usize {
        (seconds * SAMPLE_RATE as f64) as usize
    }

    #[test]
    fn cues_are_narrowed_to_the_sound() {
        // 1 s of silence, 1 s of tone, 1 s of silence; Whisper said 0.0 → 3.0.
        let mut samples = vec![0.0f32; 3 * SAMPLE_RATE];
        tone(&mut samples[SAMPLE_RATE..2 * SAMPLE_RATE]);
        let mut cues = vec![Cue {
            start: 0.0,
            end: 3.0,
            text: "hi".into(),
            words: Vec::new(),
        }];
        assert_eq!(Activity::measure(&samples).fit(&mut cues), 0);
        assert!((cues[0].start - 0.9).abs() < 0.03, "{cues:?}");
        assert!((cues[0].end - 2.1).abs() < 0.03, "{cues:?}");
    }

    #[test]
    fn a_cue_ends_with_its_speech_not_at_the_next_ones_onset() {
        // Speech from 1 s to 5 s (with a 0.3 s pause), the next speech from 9.9 s; Whisper
        // said 0 → 10 for the first cue.
        let mut samples = vec![0.0f32; 11 * SAMPLE_RATE];
        tone(&mut samples[SAMPLE_RATE..3 * SAMPLE_RATE]);
        tone(&mut samples[at(3.3)..5 * SAMPLE_RATE]);
        tone(&mut samples[at(9.9)..11 * SAMPLE_RATE]);
        let mut cues = vec![Cue {
            start: 0.0,
            end: 10.0,
            text: "first".into(),
            words: Vec::new(),
        }];
        Activity::measure(&samples).fit(&mut cues);
        assert!((cues[0].start - 0.9).abs() < 0.03, "{cues:?}");
        assert!((cues[0].end - 5.1).abs() < 0.03, "{cues:?}");
    }

    #[test]
    fn a_cue_over_silence_is_dropped() {
        let mut samples = vec![0.0f32; 40 * SAMPLE_RATE];
        tone(&mut samples[SAMPLE_RATE..3 * SAMPLE_RATE]);
        let mut cues = vec![
            Cue {
                start: 0.9,
                end: 3.2,
                text: "speech".into(),
                words: Vec::new(),
            },
            Cue {
                start: 30.0,
                end: 32.0,
                text: "You".into(),
                words: Vec::new(),
            },
        ];
        assert_eq!(Activity::measure(&samples).fit(&mut cues), 1);
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].text, "speech");
    }

    #[test]
    fn decoding_jumps_over_long_silences_only() {
        let mut samples = vec![0.0f32; 100 * SAMPLE_RATE];
        tone(&mut samples[SAMPLE_RATE..3 * SAMPLE_RATE]);
        tone(&mut samples[at(60.0)..at(62.0)]);
        let activity = Activity::measure(&samples);
        assert_eq!(activity.next_start(0), Some(0), "speech within 2 s");
        let jumped = activity.next_start(at(3.5)).unwrap_or(0);
        assert!(
            (jumped as f64 / SAMPLE_RATE as f64 - 59.6).abs() < 0.03,
            "{jumped}"
        );
        assert_eq!(activity.next_start(at(63.0)), None, "only silence left");
    }

    #[test]
    fn a_cue_of_words_said_with_long_pauses_keeps_them_all() {
        // Five 0.4 s words 1.3 s apart, one cue over them all, and a neighbour's 0.1 s onset.
        let mut samples = vec![0.0f32; 10 * SAMPLE_RATE];
        for k in 0..5 {
            let from = 1.0 + 1.3 * k as f64;
            tone(&mut samples[at(from)..at(from + 0.4)]);
        }
        tone(&mut samples[at(9.9)..]);
        let mut cues = vec![Cue {
            start: 0.0,
            end: 10.0,
            text: "apple river yellow window garden".into(),
            words: Vec::new(),
        }];
        Activity::measure(&samples).fit(&mut cues);
        assert!((cues[0].start - 0.9).abs() < 0.03, "{cues:?}");
        assert!((cues[0].end - 6.7).abs() < 0.03, "{cues:?}");
    }
}
