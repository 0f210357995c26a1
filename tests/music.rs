//! Music without speech is not decoded (Whisper invents words over it, and every window it
//! decodes there costs fallbacks), while speech over the same music is still heard: real
//! `spool transcribe`, the tiny.en model, espeak-ng speech, music that ffmpeg synthesises.

mod common;

use common::sources::{say, transcribe, whisper_model};
use common::{ffmpeg, TestResult};

/// Held notes of a melody over a pad, and a drum-and-bass loop.
const MELODY: &str = "aevalsrc='0.25*sin(2*PI*t*(220*pow(2,floor(mod(t*2.5*7,12))/12)))\
    *(0.6+0.4*exp(-mod(t,0.4)*6))+0.1*sin(2*PI*110*t)+0.1*sin(2*PI*164.8*t)\
    +0.08*sin(2*PI*277*t*(1+0.003*sin(2*PI*5*t)))':s=16000:d=";
const DRUMS: &str = "aevalsrc='0.6*sin(2*PI*60*t)*exp(-mod(t,0.5)*12)\
    +0.15*(random(0)-0.5)*exp(-mod(t+0.25,0.5)*30)\
    +0.2*sin(2*PI*(55*pow(2,floor(mod(t,4))/12))*t)':s=16000:d=";

#[test]
fn music_alone_is_skipped_and_speech_over_music_is_heard() -> TestResult {
    let model = whisper_model()?;
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("speech.wav");
    let spoken = say(
        "The harbour master counted every boat before the storm arrived.",
        &wav,
    )?;
    // 0-12 s a melody, 12-24 s drums (both as loud as the speech), 24-40 s the melody again,
    // 9 dB lower, as a bed under the speech from 25 s.
    let src = dir.path().join("mix.wav");
    ffmpeg(&[
        "-i",
        wav.to_str().unwrap_or_default(),
        "-f",
        "lavfi",
        "-i",
        &format!("{MELODY}12"),
        "-f",
        "lavfi",
        "-i",
        &format!("{DRUMS}12"),
        "-f",
        "lavfi",
        "-i",
        &format!("{MELODY}16"),
        "-filter_complex",
        "[3]volume=0.35[bed];[1][2][bed]concat=n=3:v=0:a=1[m];\
         [0]aresample=16000,adelay=25000,apad=whole_dur=40[s];\
         [s][m]amix=inputs=2:duration=longest:normalize=0[out]",
        "-map",
        "[out]",
        "-t",
        "40",
        src.to_str().unwrap_or_default(),
    ])?;
    let heard = transcribe(&model, &src, &[])?;
    let text = heard["text"].as_str().unwrap_or("").to_lowercase();
    for w in ["harbour", "boat", "storm"] {
        let w_us = w.replace("our", "or");
        assert!(
            text.contains(w) || text.contains(&w_us),
            "{w} missing from {text:?}"
        );
    }
    // The music alone (edges aside) is reported and never decoded: one window, from just
    // before the speech, holds everything heard.
    let music: Vec<(f64, f64)> = heard["music"]
        .as_array()
        .ok_or("no music field")?
        .iter()
        .filter_map(|s| Some((s[0].as_f64()?, s[1].as_f64()?)))
        .collect();
    let skipped: f64 = music.iter().map(|(a, b)| b - a).sum();
    assert!(skipped >= 16.0, "music stretches {music:?}");
    // None over the speech (the music goes on after it, alone again; espeak-ng's file ends
    // with a little silence).
    assert!(
        music
            .iter()
            .all(|(a, b)| *b <= 25.0 || *a >= 25.0 + spoken - 0.5),
        "{music:?}, the speech 25-{} s",
        25.0 + spoken
    );
    assert_eq!(heard["windows"], 1, "{heard}");
    // The cue holds the sentence and ends with it: not stretched back over the music (it
    // began at 3.1 s without music detection) nor narrowed to a syllable (at 26.54-26.76 s
    // when the music bed set the loudness floor).
    let cues = heard["cues"].as_array().ok_or("no cues")?;
    let first = cues.first().ok_or("no cue")?;
    let last = cues.last().ok_or("no cue")?;
    let (start, end) = (
        first["start"].as_f64().unwrap_or(0.0),
        last["end"].as_f64().unwrap_or(0.0),
    );
    assert!((24.7..=25.4).contains(&start), "{cues:?}");
    assert!(
        end >= 25.0 + spoken - 0.8 && end <= 25.0 + spoken + 0.4,
        "ends at {end} s, the speech at {} s: {cues:?}",
        25.0 + spoken
    );
    Ok(())
}
