//! HLS packaging of finished encodes, with no re-encode: ffmpeg's hls muxer cuts each rung
//! (and one shared audio rendition) into segments; spool writes master.m3u8 itself, with
//! BANDWIDTH measured from the segments and CODECS read from the streams.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tools::file_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SegmentType {
    /// CMAF-style fragmented MP4 (init.mp4 + .m4s).
    #[default]
    Fmp4,
    /// MPEG-TS (.ts), for old players.
    Mpegts,
}

impl SegmentType {
    fn extension(self) -> &'static str {
        match self {
            SegmentType::Fmp4 => "m4s",
            SegmentType::Mpegts => "ts",
        }
    }
}

/// The directory of audio rendition `k` (the first is `audio`, as before several tracks).
pub fn audio_rendition(k: usize) -> String {
    match k {
        0 => "audio".into(),
        k => format!("audio-{k}"),
    }
}

/// The directory of subtitle rendition `k`.
pub fn subtitle_rendition(k: usize) -> String {
    format!("subs-{k}")
}

/// The directory of the transcript rendition in `language`.
pub fn transcript_rendition(language: &str) -> String {
    format!("transcript-{language}")
}

/// Whether a profile named `name` would share its directory with a rendition.
pub fn is_rendition_dir(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
    };
    name == "audio" || numbered("audio-") || numbered("subs-") || name.starts_with("transcript-")
}

/// One ffmpeg that copies every rung's video (and the first rung's `audio_tracks` audio
/// tracks) into `root/<name>/index.m3u8` and its segments, with no re-encode.
///
/// One process on purpose: a muxer shifts timestamps so none is negative (B-frames start
/// the video's DTS before 0; AAC priming starts the audio before 0). Packaged one track per
/// process, each track got its own shift and the picture and sound drifted apart by up to
/// 59 ms through the playlist. In one output every rendition gets the same shift.
pub fn package_ladder_args(
    rungs: &[(String, &Path)],
    audio_tracks: usize,
    segment_seconds: f64,
    kind: SegmentType,
    root: &Path,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-y".into()];
    for (_, file) in rungs {
        a.push("-i".into());
        a.push(file_url(file));
    }
    for i in 0..rungs.len() {
        a.push("-map".into());
        a.push(format!("{i}:v:0").into());
    }
    for k in 0..audio_tracks {
        a.push("-map".into());
        a.push(format!("0:a:{k}").into());
    }
    for s in [
        "-sn",
        "-dn",
        "-c",
        "copy",
        "-map_metadata",
        "-1",
        "-f",
        "hls",
        "-hls_time",
    ] {
        a.push(s.into());
    }
    a.push(format!("{segment_seconds}").into());
    for s in [
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_flags",
        "independent_segments",
    ] {
        a.push(s.into());
    }
    if kind == SegmentType::Fmp4 {
        for s in [
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ] {
            a.push(s.into());
        }
    }
    let group = if audio_tracks > 0 {
        ",agroup:audio"
    } else {
        ""
    };
    let mut map: Vec<String> = rungs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("v:{i}{group},name:{name}"))
        .collect();
    for k in 0..audio_tracks {
        map.push(format!("a:{k}{group},name:{}", audio_rendition(k)));
    }
    a.push("-var_stream_map".into());
    a.push(map.join(" ").into());
    a.push("-hls_segment_filename".into());
    a.push(
        root.join(format!("%v/seg_%05d.{}", kind.extension()))
            .into_os_string(),
    );
    a.push(root.join("%v/index.m3u8").into_os_string());
    a
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub init: Option<String>,
    pub segments: Vec<(f64, String)>,
    pub ended: bool,
}

impl MediaPlaylist {
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.0).sum()
    }
}

/// Parses a VOD media playlist strictly: a problem is an error, not a skipped line.
pub fn parse_media_playlist(text: &str) -> Result<MediaPlaylist, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("does not start with #EXTM3U".into());
    }
    let mut p = MediaPlaylist {
        target_duration: 0,
        init: None,
        segments: Vec::new(),
        ended: false,
    };
    let mut pending: Option<f64> = None;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v
                .parse()
                .map_err(|_| format!("bad target duration {v:?}"))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or("");
            let d: f64 = d.parse().map_err(|_| format!("bad EXTINF {v:?}"))?;
            if !(d.is_finite() && d > 0.0) {
                return Err(format!("segment duration {d} is not positive"));
            }
            pending = Some(d);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attribute(v, "URI").ok_or("EXT-X-MAP without a URI")?;
            p.init = Some(uri);
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') {
            let d = pending
                .take()
                .ok_or_else(|| format!("{line:?} has no #EXTINF"))?;
            p.segments.push((d, line.to_string()));
        }
    }
    if p.segments.is_empty() {
        return Err("no segments".into());
    }
    let longest = p.segments.iter().map(|s| s.0).fold(0.0, f64::max);
    if (longest.round() as u64) > p.target_duration {
        return Err(format!(
            "a segment of {longest:.3}s exceeds the target duration {}",
            p.target_duration
        ));
    }
    Ok(p)
}

/// Reads `KEY="value"` or `KEY=value` from an attribute list.
fn attribute(list: &str, key: &str) -> Option<String> {
    let start = list.find(&format!("{key}="))? + key.len() + 1;
    let rest = &list[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?.to_string(),
        None => rest.split(',').next()?.to_string(),
    })
}

/// One rung in the master playlist.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub uri: String,
    /// Peak segment bit rate, bits/s, audio included.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub codecs: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RenditionKind {
    Audio,
    Subtitles,
}

/// An alternate rendition: an audio track or a subtitle (WebVTT) track.
#[derive(Debug, Clone, Serialize)]
pub struct Rendition {
    pub kind: RenditionKind,
    pub uri: String,
    pub language: Option<String>,
    /// Unique within its kind.
    pub name: String,
    pub default: bool,
    pub forced: bool,
}

pub const AUDIO_GROUP: &str = "audio";
pub const SUBTITLE_GROUP: &str = "subs";

/// Quotes are not allowed inside an attribute's quoted string.
fn quoted(v: &str) -> String {
    v.replace(['"', '\n', '\r'], "'")
}

fn media_line(r: &Rendition) -> String {
    let (kind, group) = match r.kind {
        RenditionKind::Audio => ("AUDIO", AUDIO_GROUP),
        RenditionKind::Subtitles => ("SUBTITLES", SUBTITLE_GROUP),
    };
    let yes = |b: bool| if b { "YES" } else { "NO" };
    let mut line = format!("#EXT-X-MEDIA:TYPE={kind},GROUP-ID=\"{group}\"");
    if let Some(l) = &r.language {
        line.push_str(&format!(",LANGUAGE=\"{}\"", quoted(l)));
    }
    // A forced track is shown on its own only when chosen for it, so it is not AUTOSELECT.
    line.push_str(&format!(
        ",NAME=\"{}\",DEFAULT={},AUTOSELECT={}",
        quoted(&r.name),
        yes(r.default),
        yes(!r.forced || r.default)
    ));
    if r.kind == RenditionKind::Subtitles {
        line.push_str(&format!(",FORCED={}", yes(r.forced)));
    }
    line.push_str(&format!(",URI=\"{}\"", r.uri));
    line
}

/// The master playlist: every rendition, then every variant (its codecs with the audio's).
pub fn master_playlist(
    variants: &[Variant],
    audio_codecs: Option<&str>,
    renditions: &[Rendition],
) -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in renditions {
        let _ = writeln!(m, "{}", media_line(r));
    }
    let has = |k: RenditionKind| renditions.iter().any(|r| r.kind == k);
    let audio = audio_codecs.filter(|_| has(RenditionKind::Audio));
    for v in variants {
        let codecs = match audio {
            Some(a) => format!("{},{a}", v.codecs),
            None => v.codecs.clone(),
        };
        let _ = write!(
            m,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},FRAME-RATE={:.3},CODECS=\"{codecs}\"",
            v.bandwidth, v.average_bandwidth, v.width, v.height, v.frame_rate
        );
        if audio.is_some() {
            let _ = write!(m, ",AUDIO=\"{AUDIO_GROUP}\"");
        }
        if has(RenditionKind::Subtitles) {
            let _ = write!(m, ",SUBTITLES=\"{SUBTITLE_GROUP}\"");
        }
        let _ = writeln!(m, "\n{}", v.uri);
    }
    m
}

/// A subtitle rendition's playlist: one WebVTT file covering the whole title.
pub fn subtitle_playlist(duration: f64, vtt: &str) -> String {
    let target = duration.ceil().max(1.0) as u64;
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXTINF:{duration:.3},\n{vtt}\n#EXT-X-ENDLIST\n"
    )
}

/// WebVTT with the header line HLS uses to place its cues on the media timeline: cue time 0
/// is the first video frame, at `first_frame_s` in the packaged segments (90 kHz).
pub fn with_timestamp_map(vtt: &str, first_frame_s: f64) -> Result<String, String> {
    let body = vtt.strip_prefix('\u{feff}').unwrap_or(vtt);
    let rest = body.strip_prefix("WEBVTT").ok_or("not a WebVTT file")?;
    let (header, cues) = rest.split_once('\n').unwrap_or((rest, ""));
    let cues = cues
        .lines()
        .filter(|l| !l.starts_with("X-TIMESTAMP-MAP"))
        .collect::<Vec<_>>()
        .join("\n");
    let mpegts = (first_frame_s.max(0.0) * 90_000.0).round() as u64;
    Ok(format!(
        "WEBVTT{header}\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n{cues}\n"
    ))
}

/// A subtitle track of `file` (`s:N`) as a WebVTT file.
pub fn subtitle_args(file: &Path, track: usize, out: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["-y".into(), "-i".into(), file_url(file)];
    for s in [
        "-map",
        &format!("0:s:{track}"),
        "-c:s",
        "webvtt",
        "-f",
        "webvtt",
    ] {
        a.push(s.into());
    }
    a.push(out.as_os_str().to_owned());
    a
}

/// Peak and average bit rates of a playlist's segments, from their sizes on disk.
pub fn measured_bitrates(dir: &Path, playlist: &MediaPlaylist) -> std::io::Result<(u64, u64)> {
    let init = match &playlist.init {
        Some(i) => std::fs::metadata(dir.join(i))?.len(),
        None => 0,
    };
    let (mut peak, mut total_bits) = (0.0f64, init as f64 * 8.0);
    for (duration, uri) in &playlist.segments {
        let bits = std::fs::metadata(dir.join(uri))?.len() as f64 * 8.0;
        peak = peak.max(bits / duration);
        total_bits += bits;
    }
    let average = total_bits / playlist.duration().max(1e-3);
    Ok((peak.ceil() as u64, average.ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fmp4_playlists_and_refuses_damage() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                    #EXTINF:4.000000,\nseg_00000.m4s\n#EXTINF:2.5,\nseg_00001.m4s\n#EXT-X-ENDLIST\n";
        let p = parse_media_playlist(text).map_err(|e| e.to_string());
        let p = p.as_ref().map_err(String::as_str);
        assert_eq!(p.map(|p| p.init.clone()), Ok(Some("init.mp4".into())));
        assert_eq!(p.map(|p| p.duration()), Ok(6.5));
        assert_eq!(p.map(|p| p.ended), Ok(true));
        for bad in [
            "#EXTINF:4,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:4.0,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:-1,\nseg.ts\n",
        ] {
            assert!(parse_media_playlist(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn master_lists_every_variant_with_the_audio_group() {
        let v = Variant {
            uri: "h264-360p/index.m3u8".into(),
            bandwidth: 900_000,
            average_bandwidth: 700_000,
            width: 640,
            height: 360,
            frame_rate: 25.0,
            codecs: "avc1.64001E".into(),
        };
        let renditions = [
            Rendition {
                kind: RenditionKind::Audio,
                uri: "audio/index.m3u8".into(),
                language: Some("eng".into()),
                name: "English".into(),
                default: true,
                forced: false,
            },
            Rendition {
                kind: RenditionKind::Subtitles,
                uri: "subs-1/index.m3u8".into(),
                language: Some("fra".into()),
                name: "Fran\"çais".into(),
                default: false,
                forced: true,
            },
        ];
        let m = master_playlist(&[v], Some("mp4a.40.2"), &renditions);
        assert!(m.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",LANGUAGE=\"eng\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/index.m3u8\""
        ));
        assert!(m.contains(
            "TYPE=SUBTITLES,GROUP-ID=\"subs\",LANGUAGE=\"fra\",NAME=\"Fran'çais\",DEFAULT=NO,AUTOSELECT=NO,FORCED=YES,"
        ));
        let vtt =
            with_timestamp_map("WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n", 1.4).unwrap_or_default();
        assert!(
            vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n"),
            "{vtt}"
        );
        assert!(with_timestamp_map("1\n00:00:01,000 --> 00:00:02,000\n", 0.0).is_err());
        assert!(m.contains(
            "BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360,FRAME-RATE=25.000,CODECS=\"avc1.64001E,mp4a.40.2\",AUDIO=\"audio\",SUBTITLES=\"subs\"\nh264-360p/index.m3u8"
        ));
    }
}
