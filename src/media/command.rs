//! Profile + media → ffmpeg argv. Always argv vectors, never a shell string.

use std::ffi::OsString;
use std::path::Path;

use super::probe::Attachment;
use super::profiles::{Codec, Container, RateControl, Rung, SubtitleCodec};
use super::tools::{file_url, os_args};

/// One encoded output of an encode command.
#[derive(Debug, Clone)]
pub struct RungOutput<'a> {
    pub rung: &'a Rung,
    pub path: &'a Path,
    /// Prefix for this output's 2-pass statistics files.
    pub passlog: &'a Path,
    /// Scale to `rung.height`; false when the rung already equals the source height.
    pub scale: bool,
}

/// `-f segment` over the first video stream, copied, with a CSV segment list.
pub fn segment_args(
    source: &Path,
    segment_seconds: f64,
    list: &Path,
    pattern: &Path,
) -> Vec<OsString> {
    let mut a = os_args(["-y", "-i"]);
    a.push(file_url(source));
    a.extend(os_args([
        // bitexact + no metadata: the same video always yields byte-identical chunks,
        // which is what lets the MD5 cache find them again.
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-c",
        "copy",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-f",
        "segment",
        "-segment_time",
        &format!("{segment_seconds}"),
        "-segment_format",
        "matroska",
        "-reset_timestamps",
        "1",
        "-segment_list_type",
        "csv",
        "-segment_list",
    ]));
    a.push(list.as_os_str().to_owned());
    a.push(pattern.as_os_str().to_owned());
    a
}

fn video_codec_args(rung: &Rung, pass: Option<(u8, &Path)>) -> Vec<String> {
    let kbps = |k: u32| format!("{k}k");
    let g = rung.gop.to_string();
    let mut a: Vec<String> = vec![
        "-c:v".into(),
        rung.codec.encoder().into(),
        "-pix_fmt".into(),
        "yuv420p".into(),
    ];
    let two_pass = rung.rate_control == RateControl::TwoPass;
    match rung.codec {
        Codec::H264 => {
            a.extend(
                [
                    "-preset",
                    &rung.preset,
                    "-g",
                    &g,
                    "-keyint_min",
                    &g,
                    "-sc_threshold",
                    "0",
                ]
                .map(String::from),
            );
        }
        Codec::H265 => {
            let mut params =
                format!("log-level=error:keyint={g}:min-keyint={g}:scenecut=0:open-gop=0");
            if let Some((n, log)) = pass {
                params.push_str(&format!(":pass={n}:stats={}", log.display()));
            }
            a.extend(
                [
                    "-preset",
                    &rung.preset,
                    "-tag:v",
                    "hvc1",
                    "-x265-params",
                    &params,
                ]
                .map(String::from),
            );
        }
        Codec::Vp9 => {
            a.extend(
                [
                    "-deadline",
                    "good",
                    "-cpu-used",
                    &rung.preset,
                    "-row-mt",
                    "1",
                    "-g",
                    &g,
                    "-keyint_min",
                    &g,
                ]
                .map(String::from),
            );
        }
        Codec::Av1 => a.extend(["-preset", &rung.preset, "-g", &g].map(String::from)),
    }
    if two_pass {
        a.extend(["-b:v".into(), kbps(rung.bitrate_kbps)]);
    } else {
        a.extend(["-crf".into(), rung.crf.to_string()]);
        if rung.codec == Codec::Vp9 {
            // Constant quality mode in libvpx needs -b:v 0.
            a.extend(["-b:v".into(), "0".into()]);
        }
    }
    if rung.codec != Codec::Av1 && (two_pass || rung.codec != Codec::Vp9) {
        a.extend([
            "-maxrate".into(),
            kbps(rung.maxrate_kbps),
            "-bufsize".into(),
            kbps(rung.bufsize_kbps),
        ]);
    }
    if let Some((n, log)) = pass {
        if rung.codec != Codec::H265 {
            a.extend([
                "-pass".into(),
                n.to_string(),
                "-passlogfile".into(),
                log.display().to_string(),
            ]);
        }
    }
    a
}

/// Encode commands for one input and one or more rungs: a single ffmpeg that decodes once
/// and feeds every rung through `split`. Two-pass rungs add a first command (pass 1).
pub fn encode_commands(input: &Path, outputs: &[RungOutput<'_>]) -> Vec<Vec<OsString>> {
    let two_pass: Vec<&RungOutput> = outputs
        .iter()
        .filter(|o| o.rung.rate_control == RateControl::TwoPass)
        .collect();
    let mut commands = Vec::new();
    if !two_pass.is_empty() {
        commands.push(encode_command(input, &two_pass, Some(1)));
    }
    let all: Vec<&RungOutput> = outputs.iter().collect();
    commands.push(encode_command(
        input,
        &all,
        if two_pass.is_empty() { None } else { Some(2) },
    ));
    commands
}

fn encode_command(input: &Path, outputs: &[&RungOutput<'_>], pass: Option<u8>) -> Vec<OsString> {
    let mut a = os_args(["-y", "-i"]);
    a.push(file_url(input));
    let scale = |o: &RungOutput| {
        if o.scale {
            format!("scale=-2:{}:flags=bicubic", o.rung.height)
        } else {
            "null".to_string()
        }
    };
    if outputs.len() > 1 {
        let labels: String = (0..outputs.len()).map(|i| format!("[s{i}]")).collect();
        let mut graph = format!("[0:v:0]split={}{labels}", outputs.len());
        for (i, o) in outputs.iter().enumerate() {
            graph.push_str(&format!(";[s{i}]{}[o{i}]", scale(o)));
        }
        a.extend(os_args(["-filter_complex", &graph]));
    }
    for (i, o) in outputs.iter().enumerate() {
        if outputs.len() > 1 {
            a.extend(os_args(["-map", &format!("[o{i}]")]));
        } else {
            a.extend(os_args(["-map", "0:v:0", "-vf", &scale(o)]));
        }
        a.extend(os_args(["-an", "-sn", "-dn", "-fps_mode", "passthrough"]));
        let is_two_pass = o.rung.rate_control == RateControl::TwoPass;
        let pass_arg = pass.filter(|_| is_two_pass).map(|n| (n, o.passlog));
        a.extend(os_args(video_codec_args(o.rung, pass_arg)));
        if pass == Some(1) {
            a.extend(os_args(["-f", "null", "-"]));
        } else {
            a.push(o.path.as_os_str().to_owned());
        }
    }
    a
}

/// One source audio track, encoded once per distinct setting and shared by every rung's join.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioEncode {
    /// Which audio track of the source (`0:a:N`).
    pub track: usize,
    pub encoder: &'static str,
    pub kbps: u32,
    /// The channel count to mix down to, if any.
    pub channels: Option<u32>,
    /// Audio before the first video frame, trimmed so both start together.
    pub lead_in_s: f64,
}

impl AudioEncode {
    /// Extension and muxer of the intermediate audio file. AAC goes through mp4, whose edit
    /// list keeps the encoder's 1024-sample priming: through Matroska the joined audio came
    /// out 21 ms late (the burst test catches it).
    pub fn container(&self) -> (&'static str, &'static str) {
        if self.encoder == "aac" {
            ("m4a", "mp4")
        } else {
            ("mka", "matroska")
        }
    }
}

/// Encodes one audio track of `source` into an audio-only file (see [`AudioEncode::container`]).
pub fn audio_args(source: &Path, audio: &AudioEncode, out: &Path) -> Vec<OsString> {
    let mut a = os_args(["-y"]);
    if audio.lead_in_s > 0.0005 {
        // An input -ss on a decoded stream is sample-accurate.
        a.extend(os_args(["-ss", &format!("{:.6}", audio.lead_in_s)]));
    }
    a.extend(os_args(["-i"]));
    a.push(file_url(source));
    a.extend(os_args([
        "-map",
        &format!("0:a:{}", audio.track),
        "-vn",
        "-sn",
        "-dn",
        "-c:a",
        audio.encoder,
        "-b:a",
        &format!("{}k", audio.kbps),
    ]));
    if let Some(n) = audio.channels {
        a.extend(os_args(["-ac", &n.to_string()]));
    }
    // Opus takes 48 kHz only; AAC gets the same so every rung's audio is alike.
    a.extend(os_args([
        "-ar",
        "48000",
        "-map_metadata",
        "-1",
        "-f",
        audio.container().1,
    ]));
    a.push(out.as_os_str().to_owned());
    a
}

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
    if j.container.is_mp4() {
        a.extend(os_args(["-movflags", "+faststart"]));
    }
    a.extend(os_args(["-f", j.container.muxer()]));
    a.push(j.out.as_os_str().to_owned());
    a
}

/// A GIF preview through palettegen/paletteuse, in one ffmpeg.
pub fn gif_args(
    source: &Path,
    start_s: f64,
    duration_s: f64,
    width: u32,
    fps: u32,
    out: &Path,
) -> Vec<OsString> {
    let mut a = os_args([
        "-y",
        "-ss",
        &format!("{start_s:.3}"),
        "-t",
        &format!("{duration_s:.3}"),
        "-i",
    ]);
    a.push(file_url(source));
    let graph = format!(
        "[0:v:0]fps={fps},scale={width}:-2:flags=lanczos,split[a][b];\
         [a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle"
    );
    a.extend(os_args([
        "-filter_complex",
        &graph,
        "-an",
        "-loop",
        "0",
        "-f",
        "gif",
    ]));
    a.push(out.as_os_str().to_owned());
    a
}

/// The first audio stream as Whisper wants it: 16 kHz mono 32-bit float, raw.
pub fn speech_audio_args(source: &Path, out: &Path) -> Vec<OsString> {
    let mut a = os_args(["-y", "-i"]);
    a.push(file_url(source));
    a.extend(os_args([
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        "16000",
        "-c:a",
        "pcm_f32le",
        "-f",
        "f32le",
    ]));
    a.push(out.as_os_str().to_owned());
    a
}
