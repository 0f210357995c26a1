//! The join: encoded video chunks, encoded audio tracks, and what the source carries besides
//! (subtitles, attachments, chapters, tags), put together into one file.

use std::ffi::OsString;
use std::path::Path;

use super::probe::Attachment;
use super::profiles::{Container, SubtitleCodec};
use super::tools::{file_url, os_args};

/// A kept track's name, language and flags, written on the output stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackTags {
    pub language: Option<String>,
    pub title: Option<String>,
    pub default: bool,
    pub forced: bool,
}

/// A subtitle track of the source to carry into a joined output.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleCopy {
    /// Which subtitle track of the source (`s:N`).
    pub track: usize,
    pub codec: SubtitleCodec,
    pub tags: TrackTags,
}

/// Everything a join puts together.
pub struct Join<'a> {
    /// The concat list of the encoded video chunks.
    pub list: &'a Path,
    /// The encoded audio tracks, in output order.
    pub audio: Vec<(&'a Path, TrackTags)>,
    /// The source, for subtitles, attachments, chapters and tags.
    pub source: &'a Path,
    /// Added to the source's timestamps so its subtitles line up with the output, whose
    /// video starts at 0 (before any shift of the muxer, which moves subtitles too).
    pub source_offset_s: f64,
    /// The same for chapters, which no muxer shift moves (see [`Container::packet_shift_s`]).
    pub chapter_offset_s: f64,
    pub subtitles: Vec<SubtitleCopy>,
    /// The source's attachments to carry (all or none).
    pub attachments: Vec<Attachment>,
    pub chapters: bool,
    pub metadata: bool,
    pub container: Container,
    /// Clockwise degrees to flag the video with (a kept rotation; MP4 only).
    pub rotation: u32,
    pub out: &'a Path,
}

fn tag_args(a: &mut Vec<OsString>, container: Container, kind: char, n: usize, tags: &TrackTags) {
    let spec = format!("{kind}:{n}");
    a.extend(os_args([
        format!("-metadata:s:{spec}"),
        format!("language={}", tags.language.as_deref().unwrap_or("und")),
    ]));
    if let Some(t) = &tags.title {
        a.extend(os_args([
            format!("-metadata:s:{spec}"),
            format!("title={t}"),
        ]));
        if container.is_mp4() {
            // MP4 keeps a track's name only as its handler name.
            a.extend(os_args([
                format!("-metadata:s:{spec}"),
                format!("handler_name={t}"),
            ]));
        }
    }
    let mut flags: Vec<&str> = Vec::new();
    if tags.default {
        flags.push("default");
    }
    if tags.forced {
        flags.push("forced");
    }
    let flags = if flags.is_empty() {
        "0".to_string()
    } else {
        flags.join("+")
    };
    a.extend(os_args([format!("-disposition:{spec}"), flags]));
}

/// Joins encoded chunks (concat demuxer), the encoded audio tracks and what the source
/// carries besides (subtitles, attachments, chapters, tags) into one file. Video and audio
/// are copied; text subtitles are converted to what the container takes.
pub fn join_args(j: &Join<'_>) -> Vec<OsString> {
    let mut a = os_args(["-y", "-f", "concat", "-safe", "0", "-i"]);
    a.push(j.list.as_os_str().to_owned());
    for (file, _) in &j.audio {
        a.push("-i".into());
        a.push(file_url(file));
    }
    let mut inputs = j.audio.len() + 1;
    let mut source_input = |a: &mut Vec<OsString>, offset: f64| {
        if offset.abs() > 0.0005 {
            a.extend(os_args(["-itsoffset", &format!("{offset:.6}")]));
        }
        a.push("-i".into());
        a.push(file_url(j.source));
        inputs += 1;
        inputs - 1
    };
    let streams_from = (!j.subtitles.is_empty() || !j.attachments.is_empty() || j.metadata)
        .then(|| source_input(&mut a, j.source_offset_s));
    let chapters_from = match (j.chapters, streams_from) {
        (false, _) => None,
        (true, Some(n)) if (j.chapter_offset_s - j.source_offset_s).abs() <= 0.0005 => Some(n),
        (true, _) => Some(source_input(&mut a, j.chapter_offset_s)),
    };
    a.extend(os_args(["-map", "0:v:0"]));
    for (i, _) in j.audio.iter().enumerate() {
        a.extend(os_args(["-map", &format!("{}:a:0", i + 1)]));
    }
    if let Some(source) = streams_from {
        for s in &j.subtitles {
            a.extend(os_args(["-map", &format!("{source}:s:{}", s.track)]));
        }
        for n in 0..j.attachments.len() {
            a.extend(os_args(["-map", &format!("{source}:t:{n}")]));
        }
    }
    a.extend(os_args([
        "-c:v",
        "copy",
        "-c:a",
        "copy",
        "-fps_mode",
        "passthrough",
    ]));
    for (n, s) in j.subtitles.iter().enumerate() {
        a.extend(os_args([
            format!("-c:s:{n}"),
            s.codec.encoder().to_string(),
        ]));
    }
    if !j.attachments.is_empty() {
        a.extend(os_args(["-c:t", "copy"]));
    }
    // Stream tags are written, not inherited (a source's statistics tags would be stale):
    // what the output says is what the plan says. Chapters keep their titles.
    a.extend(os_args(["-map_metadata:s", "-1"]));
    let global = match (j.metadata, streams_from) {
        (true, Some(source)) => format!("{source}:g"),
        _ => "-1".to_string(),
    };
    a.extend(os_args(["-map_metadata:g", &global]));
    let chapters = chapters_from.map_or("-1".to_string(), |n| n.to_string());
    a.extend(os_args(["-map_chapters", &chapters]));
    for (n, (_, tags)) in j.audio.iter().enumerate() {
        tag_args(&mut a, j.container, 'a', n, tags);
    }
    for (n, s) in j.subtitles.iter().enumerate() {
        tag_args(&mut a, j.container, 's', n, &s.tags);
    }
    // Matroska needs an attachment's name and type, which the stream tags held.
    for (n, t) in j.attachments.iter().enumerate() {
        let name = t
            .filename
            .clone()
            .unwrap_or_else(|| format!("attachment-{n}"));
        let mime = t.mimetype.as_deref().unwrap_or("application/octet-stream");
        a.extend(os_args([
            format!("-metadata:s:t:{n}"),
            format!("filename={name}"),
        ]));
        a.extend(os_args([
            format!("-metadata:s:t:{n}"),
            format!("mimetype={mime}"),
        ]));
    }
    if j.rotation != 0 {
        // The mov muxer turns this tag into the display matrix (counter-clockwise degrees).
        let ccw = (360 - j.rotation % 360) % 360;
        a.extend(os_args([
            "-metadata:s:v:0".to_string(),
            format!("rotate={ccw}"),
        ]));
    }
    if j.container.is_mp4() {
        a.extend(os_args(["-movflags", "+faststart"]));
    }
    a.extend(os_args(["-f", j.container.muxer()]));
    a.push(j.out.as_os_str().to_owned());
    a
}
