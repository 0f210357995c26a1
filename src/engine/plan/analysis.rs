//! What is measured before planning, the same way for `spool run` and `spool plan`: the
//! probed source (refusing what is not a video), and the poster frame's time.

use std::path::Path;

use crate::engine::error::JobError;
use serde::{Deserialize, Serialize};

use crate::media::measure::{self, Loudness};
use crate::media::picture::Crop;
use crate::media::probe::{mastering, probe_counting_frames, Mastering, MediaInfo, VideoStream};
use crate::media::thumbs::{frame_stats, pick_poster, poster_candidates};
use crate::media::tools::Tools;
use crate::workflow::picture::{CropMode, Deinterlace};
use crate::workflow::{Step, Workflow};

/// A source that can be encoded: its streams, its video, and its frames counted by demuxing
/// (a header's nb_frames can lie).
#[derive(Debug, Clone)]
pub struct Source {
    pub media: MediaInfo,
    pub video: VideoStream,
    pub frames: u64,
}

/// Measurements the plan depends on, taken once and kept with the job (a resumed job
/// plans from the same numbers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// When the thumbnails step's poster is taken: away from black or flat frames.
    pub poster_time: Option<f64>,
    /// An HDR source's mastering display and light levels, which HDR rungs write again.
    pub mastering: Option<Mastering>,
    /// idet's verdict on a stream that does not say whether it is interlaced.
    pub interlaced: Option<bool>,
    /// The picture inside black borders, from cropdetect across the whole file.
    pub crop: Option<Crop>,
    /// Each kept audio track's loudness (source track index, measurement).
    pub loudness: Vec<(usize, Loudness)>,
    /// How the source is cut into frame ranges (`chunking.cut: frames`).
    pub chunks: Option<super::chunks::ChunkLayout>,
    /// Why chunks were given up for this job after encoding showed them wrong: the job then
    /// encodes the whole file (kept, so a resumed job does not try chunks again).
    #[serde(default)]
    pub abandoned_chunking: Option<String>,
    /// What could not be measured, and so is not acted on.
    pub notes: Vec<String>,
}

/// Crop detection looks at this many points spread over the file.
const CROP_SAMPLES: u32 = 8;

pub async fn analyse(
    tools: &Tools,
    workflow: &Workflow,
    source: &Source,
    input: &Path,
) -> Analysis {
    let mut a = Analysis::default();
    let video = &source.video;
    let duration = source.media.duration;
    if workflow
        .steps
        .iter()
        .any(|s| matches!(s, Step::Thumbnails(_)))
    {
        let mut stats = Vec::new();
        for t in poster_candidates(duration) {
            stats.extend(frame_stats(tools, input, t).await);
        }
        a.poster_time = Some(pick_poster(&stats).unwrap_or(0.0));
    }
    if video.colour.hdr().is_some() {
        match mastering(tools, input).await {
            Ok(m) => a.mastering = m,
            Err(e) => a.notes.push(unmeasured("HDR mastering metadata", &e)),
        }
    }
    let pic = &workflow.picture;
    if pic.deinterlace == Deinterlace::Auto && video.field_order.is_none() {
        match measure::interlacing(tools, input, duration).await {
            Ok(i) => a.interlaced = Some(i),
            Err(e) => a.notes.push(unmeasured("interlacing", &e)),
        }
    }
    if pic.crop == CropMode::Auto {
        let coded = (video.width, video.height);
        match measure::black_borders(tools, input, duration, coded, CROP_SAMPLES).await {
            Ok(c) => a.crop = c,
            Err(e) => a.notes.push(unmeasured("black borders", &e)),
        }
    }
    a.chunks = super::chunks::layout(tools, &workflow.chunking, source, input).await;
    if workflow.loudness.is_some() {
        for track in super::streams::kept(&workflow.streams, &source.media)
            .audio
            .iter()
            .map(|(t, _)| *t)
        {
            match measure::loudness(tools, input, track).await {
                Ok(l) => a.loudness.push((track, l)),
                Err(e) => a
                    .notes
                    .push(unmeasured(&format!("loudness of audio track {track}"), &e)),
            }
        }
    }
    a
}

fn unmeasured(what: &str, e: &dyn std::fmt::Display) -> String {
    format!("{what} not measured, so not acted on: {e}")
}

/// What ffprobe reads as "video" but is not: text shown as ANSI art (`.nfo`, `.txt`), single
/// images and image sequences, subtitle and metadata files.
const NOT_VIDEO_FORMATS: &[&str] = &[
    "tty",
    "image2",
    "lavfi",
    "ffmetadata",
    "srt",
    "webvtt",
    "ass",
    "subviewer",
    "microdvd",
];
const NOT_VIDEO_CODECS: &[&str] = &["ansi", "text", "subrip"];

/// Fewer frames than this is a picture, not something to encode as a ladder.
const MIN_FRAMES: u64 = 2;

const STILL: &[&str] = &[
    "png", "mjpeg", "bmp", "tiff", "webp", "jpeg2000", "jpegls", "pam", "ppm", "qoi",
];

/// Probes the source and refuses, with a clear reason, what cannot be encoded.
pub async fn probe_source(tools: &Tools, input: &Path) -> Result<Source, JobError> {
    let (media, frames) = probe_counting_frames(tools, input)
        .await
        .map_err(|e| JobError::Input(e.to_string()))?;
    // ffprobe reads a cut-short MP4 whose index comes first without complaint; the box
    // structure shows the cut (a half-uploaded or damaged file).
    if media.format.contains("mp4") || media.format.contains("mov") {
        let owned = input.to_path_buf();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || crate::media::mp4::read_video_track(&owned)).await
        {
            if e.kind() == std::io::ErrorKind::InvalidData {
                return Err(JobError::Input(format!(
                    "{}: the file is cut short or damaged ({e}); if it is still being copied, it will be taken when complete",
                    input.display()
                )));
            }
        }
    }
    let Some(video) = media.video.clone() else {
        return Err(JobError::Input(format!(
            "{}: no video stream to encode (streams: {})",
            input.display(),
            media.stream_types.join(", ")
        )));
    };
    if frames == 0 {
        return Err(JobError::Input(format!(
            "{}: the video stream holds no frames",
            input.display()
        )));
    }
    if frames <= 1 && STILL.contains(&video.codec.as_str()) {
        return Err(JobError::Input(format!(
            "{}: a still image ({}), not a video",
            input.display(),
            video.codec
        )));
    }
    let pipe = media.format.ends_with("_pipe");
    if pipe
        || NOT_VIDEO_FORMATS.contains(&media.format.as_str())
        || NOT_VIDEO_CODECS.contains(&video.codec.as_str())
    {
        return Err(JobError::Input(format!(
            "{}: not a video: ffprobe reads it as {} ({}), which is a text, subtitle or image file",
            input.display(),
            media.format,
            video.codec
        )));
    }
    if frames < MIN_FRAMES {
        return Err(JobError::Input(format!(
            "{}: a single frame ({}), not a video",
            input.display(),
            video.codec
        )));
    }
    Ok(Source {
        media,
        video,
        frames,
    })
}
