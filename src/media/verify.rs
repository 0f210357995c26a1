//! Checks an encoded file against what it must be before anyone trusts it.

use std::path::Path;

use super::mp4::read_video_track;
use super::probe::{probe, probe_counting_frames, MediaInfo, ProbeError};
use super::tools::Tools;

fn is_mp4(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "mp4")
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
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("output is empty")]
    Empty,
    #[error("output unreadable: {0}")]
    Probe(#[from] ProbeError),
    #[error("output check failed: {0}")]
    Mismatch(String),
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
    if let Some(h) = want.height.filter(|h| *h != video.height) {
        return fail(format!("height is {}, expected {h}", video.height));
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
            return fail(format!("{got} video frames, expected {frames}"));
        }
    }
    Ok(info)
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
        return fail(format!("{} video frames, expected {frames}", track.samples));
    }
    Ok(())
}
