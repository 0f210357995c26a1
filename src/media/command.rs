//! Profile + media → ffmpeg argv. Always argv vectors, never a shell string.

use std::ffi::OsString;
use std::path::Path;

use super::profiles::{Codec, RateControl, Rung};
use super::ranges::FrameRange;
use super::thumbs::Preview;
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
        rung.colour.pix_fmt().into(),
    ];
    a.extend(rung.colour.tag_args());
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
            let mut params = format!(
                "log-level=error:keyint={g}:min-keyint={g}:scenecut=0:open-gop=0{}",
                rung.colour.x265_params()
            );
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
        Codec::Av1 => {
            a.extend(["-preset", &rung.preset, "-g", &g].map(String::from));
            if let Some(params) = rung.colour.svtav1_params() {
                a.extend(["-svtav1-params".into(), params]);
            }
        }
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
/// `range`, when given, picks exactly those frames of `input` (see [`FrameRange`]).
pub fn encode_commands(
    input: &Path,
    range: Option<&FrameRange>,
    outputs: &[RungOutput<'_>],
) -> Vec<Vec<OsString>> {
    let two_pass: Vec<&RungOutput> = outputs
        .iter()
        .filter(|o| o.rung.rate_control == RateControl::TwoPass)
        .collect();
    let mut commands = Vec::new();
    if !two_pass.is_empty() {
        commands.push(encode_command(input, range, &two_pass, Some(1)));
    }
    let all: Vec<&RungOutput> = outputs.iter().collect();
    commands.push(encode_command(
        input,
        range,
        &all,
        if two_pass.is_empty() { None } else { Some(2) },
    ));
    commands
}

/// A rung's own filters: the scale to its height, with an SD matrix converted to BT.709.
fn rung_chain(o: &RungOutput) -> String {
    let matrix = o.rung.colour.convert_matrix_from.as_deref();
    // A picture kept on its side (rotation flag) is as wide as the rung is high.
    let size = match o.rung.picture.sideways() {
        true => format!("{}:-2", o.rung.height),
        false => format!("-2:{}", o.rung.height),
    };
    match (o.scale, matrix) {
        (false, None) => "null".to_string(),
        (true, None) => format!("scale={size}:flags=bicubic"),
        (scale, Some(from)) => {
            let size = if scale { size } else { "iw:ih".into() };
            format!("scale={size}:flags=bicubic:in_color_matrix={from}:out_color_matrix=bt709")
        }
    }
}

/// The filters every rung shares, run once before the split: a frame range's trim, then the
/// picture's own (deinterlace, crop, turn), `,`-terminated; empty when there are none.
fn shared_prefix(range: Option<&FrameRange>, outputs: &[&RungOutput<'_>]) -> String {
    let filters = outputs
        .first()
        .map(|o| o.rung.picture.filters())
        .unwrap_or_default();
    range
        .map(FrameRange::filter)
        .into_iter()
        .chain(filters)
        .map(|f| format!("{f},"))
        .collect()
}

/// The source as a rung sees it before its scale: the range's trim, the picture's filters,
/// the tone map and any matrix conversion, `,`-joined (empty when there are none). What a
/// quality score compares the rung's encode with.
pub fn reference_filters(range: Option<&FrameRange>, rung: &Rung) -> String {
    let path = Path::new("");
    let o = RungOutput {
        rung,
        path,
        passlog: path,
        scale: false,
    };
    let tonemap = rung
        .colour
        .tonemap
        .as_deref()
        .map_or(String::new(), |t| format!("{t},"));
    let chain = format!("{}{tonemap}{}", shared_prefix(range, &[&o]), rung_chain(&o));
    chain
        .trim_end_matches(",null")
        .trim_end_matches("null")
        .trim_end_matches(',')
        .to_string()
}

/// The filter graph feeding `[oN]` for each output: the source is split once per colour
/// branch (a tone-map chain runs once for every rung that wants SDR), then once per rung.
fn ladder_graph(range: Option<&FrameRange>, outputs: &[&RungOutput<'_>]) -> String {
    let mut branches: Vec<Option<&str>> = Vec::new();
    for o in outputs {
        let t = o.rung.colour.tonemap.as_deref();
        if !branches.contains(&t) {
            branches.push(t);
        }
    }
    let pre = |t: Option<&str>| t.map_or(String::new(), |t| format!("{t},"));
    let members = |t: Option<&str>| -> String {
        let labels: String = outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.rung.colour.tonemap.as_deref() == t)
            .map(|(i, _)| format!("[s{i}]"))
            .collect();
        format!("{}split={}{labels}", pre(t), labels.matches('[').count())
    };
    let shared = shared_prefix(range, outputs);
    let mut graph = match branches.as_slice() {
        [only] => format!("[0:v:0]{shared}{}", members(*only)),
        many => {
            let labels: String = (0..many.len()).map(|b| format!("[b{b}]")).collect();
            let mut g = format!("[0:v:0]{shared}split={}{labels}", many.len());
            for (b, t) in many.iter().enumerate() {
                g.push_str(&format!(";[b{b}]{}", members(*t)));
            }
            g
        }
    };
    for (i, o) in outputs.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]{}[o{i}]", rung_chain(o)));
    }
    graph
}

fn encode_command(
    input: &Path,
    range: Option<&FrameRange>,
    outputs: &[&RungOutput<'_>],
    pass: Option<u8>,
) -> Vec<OsString> {
    let mut a = os_args(["-y"]);
    // The picture is turned by spool's own filters, the same for a chunk (which lost the
    // rotation flag) and a whole file (which still has it).
    let rotated = |o: &&RungOutput| o.rung.picture.turn != 0 || o.rung.picture.keep_rotation != 0;
    if outputs.iter().any(rotated) {
        a.push("-noautorotate".into());
    }
    if let Some(r) = range {
        a.extend(os_args(r.input_args()));
    }
    a.push("-i".into());
    a.push(file_url(input));
    let single = match outputs {
        [o] => {
            let tonemap = o.rung.colour.tonemap.as_deref();
            let tonemap = tonemap.map_or(String::new(), |t| format!("{t},"));
            Some(format!(
                "{}{tonemap}{}",
                shared_prefix(range, outputs),
                rung_chain(o)
            ))
        }
        _ => None,
    };
    if single.is_none() {
        a.extend(os_args(["-filter_complex", &ladder_graph(range, outputs)]));
    }
    for (i, o) in outputs.iter().enumerate() {
        match &single {
            Some(chain) => a.extend(os_args(["-map", "0:v:0", "-vf", chain])),
            None => a.extend(os_args(["-map", &format!("[o{i}]")])),
        }
        // Each frame keeps its own time: the encoder's clock would otherwise tick at the
        // stream's nominal rate and move a variable-rate source's frames onto that grid.
        a.extend(os_args([
            "-an",
            "-sn",
            "-dn",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "1/90000",
        ]));
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
    /// The first video frame's timestamp (the source's own), where a lead-in is cut.
    pub video_start_s: f64,
    /// loudnorm's second pass, from the track's measured loudness.
    pub loudnorm: Option<String>,
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
    // The source's own timestamps (-copyts), so the lead-in is cut at the first video
    // frame's own time whatever offset ffmpeg would give this container.
    let mut a = os_args(["-y", "-copyts", "-i"]);
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
    let mut filters = Vec::new();
    if audio.lead_in_s > 0.0005 {
        // Decoded from the start and cut by a filter: an input -ss would start decoding at
        // the cut, and AAC's first frame there decodes without the one before (its onset
        // came out 10 ms late).
        filters.push(format!("atrim=start={:.6}", audio.video_start_s));
    }
    filters.push("asetpts=PTS-STARTPTS".to_string());
    filters.extend(audio.loudnorm.clone());
    a.extend(os_args(["-af", &filters.join(",")]));
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

/// A GIF preview through palettegen/paletteuse, in one ffmpeg.
pub fn gif_args(
    source: &Path,
    start_s: f64,
    duration_s: f64,
    width: u32,
    fps: u32,
    out: &Path,
    preview: &Preview,
) -> Vec<OsString> {
    let mut a = os_args([
        "-y",
        "-ss",
        &format!("{start_s:.3}"),
        "-t",
        &format!("{duration_s:.3}"),
    ]);
    a.extend(preview.input_args(source));
    let filters = &preview.filters;
    let graph = format!(
        "[0:v:0]{filters}fps={fps},scale={width}:-2:flags=lanczos,split[a][b];\
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
