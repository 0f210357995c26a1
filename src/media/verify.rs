//! Checks an encoded file against what it must be before anyone trusts it.

use std::path::Path;

use super::mp4::read_video_track;
use super::probe::{probe, probe_counting_frames, MediaInfo, ProbeError};
use super::tools::Tools;

fn is_mp4(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "mp4")
}

/// The streams a joined output must hold besides its video.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedStreams {
    /// Each audio track's language, in order (None: untagged).
    pub audio_languages: Vec<Option<String>>,
    pub subtitles: usize,
    /// Chapter start times, from the first video frame.
    pub chapters: Vec<f64>,
    pub title: Option<String>,
    pub colour: Option<ExpectedColour>,
}

/// What a joined output's video must say about its colours.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedColour {
    pub bit_depth: u32,
    pub primaries: String,
    pub transfer: String,
    pub matrix: String,
    /// HDR10 mastering metadata in the bitstream's first frame.
    pub mastering: bool,
}

/// The colour tags and bit depth of `info`'s video, and its mastering metadata, against `want`.
async fn check_colour(
    tools: &Tools,
    path: &Path,
    info: &MediaInfo,
    want: &ExpectedColour,
) -> Result<(), String> {
    let got = info
        .video
        .as_ref()
        .map(|v| v.colour.clone())
        .unwrap_or_default();
    if got.bit_depth != want.bit_depth {
        return Err(format!(
            "video is {}-bit, expected {}-bit",
            got.bit_depth, want.bit_depth
        ));
    }
    for (what, got, want) in [
        ("transfer", &got.transfer, &want.transfer),
        ("primaries", &got.primaries, &want.primaries),
        ("matrix", &got.matrix, &want.matrix),
    ] {
        if got.as_deref() != Some(want.as_str()) {
            return Err(format!(
                "colour {what} is {}, expected {want}",
                got.as_deref().unwrap_or("untagged")
            ));
        }
    }
    if want.mastering {
        let found = super::probe::mastering(tools, path)
            .await
            .map_err(|e| e.to_string())?;
        if found.is_none() {
            return Err("the HDR mastering metadata is missing".into());
        }
    }
    Ok(())
}

/// What an output must match.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub codec: &'a str,
    pub height: Option<u32>,
    pub frames: Option<u64>,
    /// Source duration and one frame's length: the allowed difference.
    pub duration: Option<(f64, f64)>,
    pub has_audio: bool,
    /// Longest allowed gap between the audio and video start (one audio frame).
    pub max_av_start_gap_s: f64,
    /// Beyond the video and the first audio track, when the output must carry them.
    pub streams: Option<&'a ExpectedStreams>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("output is empty")]
    Empty,
    #[error("output unreadable: {0}")]
    Probe(#[from] ProbeError),
    #[error("output check failed: {0}")]
    Mismatch(String),
    /// Fewer or more frames than the input had: a chunk that did not decode whole.
    #[error("output check failed: {got} video frames, expected {expected}")]
    Frames { got: u64, expected: u64 },
    #[error("output unreadable: {0}")]
    Io(#[from] std::io::Error),
}

/// Probes `path` and compares it with `want`; returns the probe on success.
pub async fn verify_output(
    tools: &Tools,
    path: &Path,
    want: &Expected<'_>,
) -> Result<MediaInfo, VerifyError> {
    if tokio::fs::metadata(path).await?.len() == 0 {
        return Err(VerifyError::Empty);
    }
    // One ffprobe run does both the probe and the frame count.
    let (info, counted) = match want.frames {
        Some(_) => probe_counting_frames(tools, path)
            .await
            .map(|(i, n)| (i, Some(n)))?,
        None => (probe(tools, path).await?, None),
    };
    let video = info
        .video
        .as_ref()
        .ok_or_else(|| VerifyError::Mismatch("no video stream".into()))?;
    let fail = |m: String| Err(VerifyError::Mismatch(m));
    if video.codec != want.codec {
        return fail(format!(
            "video codec is {}, expected {}",
            video.codec, want.codec
        ));
    }
    // As displayed: a kept rotation stands the picture up.
    let (_, shown) = video.display_size();
    if let Some(h) = want.height.filter(|h| *h != shown) {
        return fail(format!("height is {shown}, expected {h}"));
    }
    if info.has_audio() != want.has_audio {
        return fail(format!(
            "audio present: {}, expected {}",
            info.has_audio(),
            want.has_audio
        ));
    }
    if let Some((duration, tolerance)) = want.duration {
        if (info.duration - duration).abs() > tolerance + 1e-3 {
            return fail(format!(
                "duration {:.3}s differs from the source's {duration:.3}s",
                info.duration
            ));
        }
    }
    if let Some(audio) = info.audio.first() {
        let gap = (audio.start_time - video.start_time).abs();
        if gap > want.max_av_start_gap_s + 1e-3 {
            return fail(format!("audio starts {gap:.3}s away from video"));
        }
    }
    if let (Some(frames), Some(got)) = (want.frames, counted) {
        if got != frames {
            return Err(VerifyError::Frames {
                got,
                expected: frames,
            });
        }
    }
    if let Some(streams) = want.streams {
        check_streams(&info, streams, want.duration.map_or(0.04, |d| d.1))
            .map_err(VerifyError::Mismatch)?;
        if let Some(colour) = &streams.colour {
            check_colour(tools, path, &info, colour)
                .await
                .map_err(VerifyError::Mismatch)?;
        }
    }
    Ok(info)
}

/// Every audio track with its language, the subtitles, the chapters (within a frame) and
/// the title, named when one is missing.
fn check_streams(info: &MediaInfo, want: &ExpectedStreams, frame_s: f64) -> Result<(), String> {
    let got: Vec<Option<String>> = info
        .audio
        .iter()
        .map(|a| a.label.language.clone())
        .collect();
    if got != want.audio_languages {
        let show = |l: &[Option<String>]| {
            l.iter()
                .map(|x| x.as_deref().unwrap_or("und"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "audio tracks [{}], expected [{}]",
            show(&got),
            show(&want.audio_languages)
        ));
    }
    if info.subtitles.len() != want.subtitles {
        return Err(format!(
            "{} subtitle tracks, expected {}",
            info.subtitles.len(),
            want.subtitles
        ));
    }
    if info.chapters.len() != want.chapters.len() {
        return Err(format!(
            "{} chapters, expected {}",
            info.chapters.len(),
            want.chapters.len()
        ));
    }
    let first_frame = info.video.as_ref().map_or(0.0, |v| v.start_time);
    for (i, (c, start)) in info.chapters.iter().zip(&want.chapters).enumerate() {
        let at = c.start - first_frame;
        if (at - start).abs() > frame_s + 1e-3 {
            return Err(format!(
                "chapter {} starts {at:.3}s after the first frame, expected {start:.3}s",
                i + 1
            ));
        }
    }
    if info.title != want.title {
        return Err(format!("title {:?}, expected {:?}", info.title, want.title));
    }
    Ok(())
}

/// The cheaper check for an encoded chunk: MP4s are read from their sample table in-process
/// (codec, coded height, frame count); other containers get the full ffprobe check.
/// The joined output is always checked in full, so a chunk the table misjudges is still caught.
pub async fn verify_chunk(
    tools: &Tools,
    path: &Path,
    want: &Expected<'_>,
) -> Result<(), VerifyError> {
    if !is_mp4(path) {
        return verify_output(tools, path, want).await.map(|_| ());
    }
    let owned = path.to_path_buf();
    let track = tokio::task::spawn_blocking(move || read_video_track(&owned))
        .await
        .map_err(std::io::Error::other)??
        .ok_or_else(|| VerifyError::Mismatch("no video track".into()))?;
    let fail = |m: String| Err(VerifyError::Mismatch(m));
    if track.codec != want.codec {
        return fail(format!(
            "video codec is {}, expected {}",
            track.codec, want.codec
        ));
    }
    if let Some(h) = want.height.filter(|h| *h != track.height) {
        return fail(format!("height is {}, expected {h}", track.height));
    }
    if let Some(frames) = want.frames.filter(|f| *f != track.samples) {
        return Err(VerifyError::Frames {
            got: track.samples,
            expected: frames,
        });
    }
    Ok(())
}
