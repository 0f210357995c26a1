//! Parsing `ffprobe -print_format json -show_format -show_streams -show_chapters`.
//! Pure, so it can be fuzzed.

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    #[serde(default)]
    chapters: Vec<RawChapter>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    start_time: Option<String>,
    bit_rate: Option<String>,
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawChapter {
    start_time: Option<String>,
    end_time: Option<String>,
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// MP4 names a track only by its handler; these are the muxers' placeholders, not names.
fn is_default_handler(name: &str) -> bool {
    name.ends_with("Handler")
        || name.starts_with("Core Media")
        || name.starts_with("Mainconcept")
        || matches!(
            name,
            "" | "ISO Media file produced by Google Inc." | "L-SMASH Audio Handler"
        )
}

/// A tag, by name in any case (Matroska writes `TITLE`, MP4 `title`).
fn tag(tags: &Option<serde_json::Map<String, serde_json::Value>>, name: &str) -> Option<String> {
    tags.as_ref()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(String::from)
        .filter(|v| !v.is_empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    pix_fmt: Option<String>,
    field_order: Option<String>,
    color_primaries: Option<String>,
    color_transfer: Option<String>,
    color_space: Option<String>,
    color_range: Option<String>,
    bits_per_raw_sample: Option<String>,
    channel_layout: Option<String>,
    bit_rate: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    nb_read_packets: Option<String>,
    tags: Option<serde_json::Map<String, serde_json::Value>>,
    side_data_list: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    disposition: Option<serde_json::Map<String, serde_json::Value>>,
}

fn num<T: std::str::FromStr>(s: &Option<String>) -> Option<T> {
    s.as_deref().and_then(|s| s.trim().parse().ok())
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

impl RawStream {
    fn rotation(&self) -> i32 {
        let from_side_data = self.side_data_list.iter().flatten().find_map(|sd| {
            sd.get("rotation")
                .and_then(|r| r.as_f64().or_else(|| r.as_str()?.parse().ok()))
        });
        let from_tag = self
            .tags
            .as_ref()
            .and_then(|t| t.get("rotate")?.as_str()?.parse::<f64>().ok());
        from_side_data
            .or(from_tag)
            .map_or(0, |r| (r.round() as i64).rem_euclid(360) as i32)
    }

    fn flag(&self, name: &str) -> bool {
        self.disposition
            .as_ref()
            .and_then(|d| d.get(name)?.as_i64())
            == Some(1)
    }

    fn label(&self) -> Label {
        Label {
            language: tag(&self.tags, "language").filter(|l| l != "und"),
            title: tag(&self.tags, "title")
                .or_else(|| tag(&self.tags, "handler_name").filter(|h| !is_default_handler(h))),
            default: self.flag("default"),
            forced: self.flag("forced"),
        }
    }

    fn colour(&self) -> Colour {
        let known = |v: &Option<String>| v.clone().filter(|v| v != "unknown" && v != "reserved");
        let from_format = self.pix_fmt.as_deref().map_or(8, |f| {
            if f.contains("16") {
                16
            } else if f.contains("12") {
                12
            } else if f.contains("10") || f.starts_with("p010") {
                10
            } else {
                8
            }
        });
        Colour {
            primaries: known(&self.color_primaries),
            transfer: known(&self.color_transfer),
            matrix: known(&self.color_space),
            range: known(&self.color_range),
            bit_depth: num(&self.bits_per_raw_sample).unwrap_or(from_format),
        }
    }

    fn is_attached_picture(&self) -> bool {
        self.disposition
            .as_ref()
            .and_then(|d| d.get("attached_pic")?.as_i64())
            == Some(1)
    }
}

/// How long the audio and video last together: from the earliest start to the latest end.
/// An MP4 whose timestamps start late (an initial empty edit) reports the empty edit in
/// its format duration; the streams say how much media there is.
fn media_span(streams: &[RawStream]) -> Option<f64> {
    let spans: Vec<(f64, f64)> = streams
        .iter()
        .filter(|s| matches!(s.codec_type.as_deref(), Some("video" | "audio")))
        .filter(|s| !s.is_attached_picture())
        .filter_map(|s| {
            let start = finite(num(&s.start_time))?;
            let duration = finite(num(&s.duration)).filter(|d| *d > 0.0)?;
            Some((start, start + duration))
        })
        .collect();
    let first = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let last = spans.iter().map(|s| s.1).reduce(f64::max)?;
    Some(last - first)
}

/// The format's duration. Matroska's segment duration runs from time zero, so a file whose
/// timestamps start late (cut from a broadcast) reports its end, not its length.
fn format_span(format: &RawFormat) -> Option<f64> {
    let duration = finite(num(&format.duration))?;
    let matroska = format
        .format_name
        .as_deref()
        .is_some_and(|f| f.starts_with("matroska"));
    let start = finite(num(&format.start_time)).unwrap_or(0.0);
    Some(match matroska && start > 0.0 && duration > start {
        true => duration - start,
        false => duration,
    })
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
pub fn parse_probe_json(path: &str, json: &str) -> Result<MediaInfo, ProbeError> {
    let raw: RawProbe =
        serde_json::from_str(json).map_err(|e| ProbeError::BadJson(e.to_string()))?;
    let not_media = |reason: &str| ProbeError::NotMedia {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let format = raw
        .format
        .ok_or_else(|| not_media("no container format found"))?;
    if raw.streams.is_empty() {
        return Err(not_media("it has no audio or video streams"));
    }
    let video = raw
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video") && !s.is_attached_picture())
        .map(|s| -> Result<VideoStream, ProbeError> {
            let (width, height) = match (s.width, s.height) {
                (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
                _ => return Err(not_media("the video stream has no frame size")),
            };
            let fps = s
                .avg_frame_rate
                .as_deref()
                .and_then(Rational::parse)
                .or_else(|| s.r_frame_rate.as_deref().and_then(Rational::parse))
                .ok_or_else(|| not_media("the video stream has no frame rate"))?;
            Ok(VideoStream {
                index: s.index,
                codec: s.codec_name.clone().unwrap_or_default(),
                width,
                height,
                fps,
                pix_fmt: s.pix_fmt.clone().unwrap_or_default(),
                rotation: s.rotation(),
                interlaced: matches!(s.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt")),
                bit_rate: num(&s.bit_rate),
                start_time: finite(num(&s.start_time)).unwrap_or(0.0),
                frames: num(&s.nb_read_packets),
                colour: s.colour(),
                field_order: s.field_order.clone().filter(|f| f != "unknown"),
            })
        })
        .transpose()?;
    let audio = raw
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("audio"))
        .map(|s| AudioStream {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
            sample_rate: num(&s.sample_rate).unwrap_or(0),
            channels: s.channels.unwrap_or(0),
            start_time: finite(num(&s.start_time)).unwrap_or(0.0),
            channel_layout: s.channel_layout.clone(),
            label: s.label(),
        })
        .collect();
    let subtitles = raw
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("subtitle"))
        .map(|s| SubtitleStream {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
            label: s.label(),
        })
        .collect();
    let attachments = raw
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("attachment"))
        .map(|s| Attachment {
            index: s.index,
            filename: tag(&s.tags, "filename"),
            mimetype: tag(&s.tags, "mimetype"),
        })
        .collect();
    let chapters = raw
        .chapters
        .iter()
        .filter_map(|c| {
            Some(Chapter {
                start: finite(num(&c.start_time))?,
                end: finite(num(&c.end_time))?,
                title: tag(&c.tags, "title"),
            })
        })
        .collect();
    let duration = media_span(&raw.streams)
        .or_else(|| format_span(&format))
        .unwrap_or(0.0);
    Ok(MediaInfo {
        format: format.format_name.unwrap_or_default(),
        duration: duration.max(0.0),
        start_time: finite(num(&format.start_time)).unwrap_or(0.0),
        bit_rate: num(&format.bit_rate),
        title: tag(&format.tags, "title"),
        video,
        audio,
        subtitles,
        attachments,
        chapters,
        stream_types: raw
            .streams
            .iter()
            .map(|s| s.codec_type.clone().unwrap_or_else(|| "unknown".into()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::Rational;

    #[test]
    fn reads_streams_rotation_and_interlacing() {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
           "avg_frame_rate":"30000/1001","pix_fmt":"yuv420p","field_order":"tt","start_time":"0.033",
           "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
          {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2},
          {"index":2,"codec_type":"subtitle","codec_name":"mov_text"}],
          "format":{"format_name":"mov,mp4","duration":"12.5","bit_rate":"800000"}}"#;
        let info = parse_probe_json("x.mp4", json).expect("valid probe");
        let v = info.video.as_ref().expect("video");
        assert_eq!(
            v.fps,
            Rational {
                num: 30000,
                den: 1001
            }
        );
        assert_eq!(v.rotation, 270);
        assert_eq!(v.display_size(), (1080, 1920));
        assert!(v.interlaced);
        assert!(info.has_audio());
        assert_eq!(info.stream_types, ["video", "audio", "subtitle"]);
        assert_eq!(info.duration, 12.5);
    }

    #[test]
    fn duration_is_the_media_span_not_an_initial_empty_edit() {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"h264","width":320,"height":180,
           "avg_frame_rate":"25/1","start_time":"1.500000","duration":"8.000000"},
          {"index":1,"codec_type":"audio","codec_name":"aac","start_time":"1.478000","duration":"8.021333"}],
          "format":{"format_name":"mov,mp4","start_time":"1.478000","duration":"9.500000"}}"#;
        let info = parse_probe_json("x.mp4", json).expect("valid probe");
        // From the audio's start (1.478) to the video's end (9.5).
        assert!((info.duration - 8.022).abs() < 1e-6, "{}", info.duration);
        // Without stream durations (Matroska), the format's duration stands.
        let mkv = r#"{"streams":[{"index":0,"codec_type":"video","width":2,"height":2,
          "avg_frame_rate":"25/1","start_time":"0.000000"}],"format":{"duration":"4.000000"}}"#;
        assert_eq!(
            parse_probe_json("x.mkv", mkv).map(|i| i.duration).ok(),
            Some(4.0)
        );
    }

    #[test]
    fn reads_tracks_labels_chapters_title_and_colour() {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"hevc","width":320,"height":180,
           "avg_frame_rate":"25/1","pix_fmt":"yuv420p10le","color_transfer":"smpte2084",
           "color_primaries":"bt2020","color_space":"bt2020nc","color_range":"tv"},
          {"index":1,"codec_type":"audio","codec_name":"aac","channels":2,"channel_layout":"stereo",
           "tags":{"language":"eng"},"disposition":{"default":1,"forced":0}},
          {"index":2,"codec_type":"audio","codec_name":"aac","channels":6,
           "tags":{"LANGUAGE":"fra","title":"Français"},"disposition":{"default":0}},
          {"index":3,"codec_type":"subtitle","codec_name":"subrip","tags":{"language":"eng"}},
          {"index":4,"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle","tags":{"language":"und"}},
          {"index":5,"codec_type":"attachment","codec_name":"ttf","tags":{"filename":"a.ttf","mimetype":"font/ttf"}}],
          "chapters":[{"start_time":"0.000000","end_time":"2.000000","tags":{"title":"One"}},
                      {"start_time":"2.000000","end_time":"4.000000"}],
          "format":{"format_name":"matroska,webm","duration":"4.0","tags":{"TITLE":"My film"}}}"#;
        let info = parse_probe_json("x.mkv", json).expect("valid probe");
        let v = info.video.as_ref().expect("video");
        assert_eq!(v.colour.bit_depth, 10);
        assert_eq!(v.colour.hdr(), Some(Hdr::Pq));
        assert_eq!(info.audio[0].label.language.as_deref(), Some("eng"));
        assert!(info.audio[0].label.default && !info.audio[1].label.default);
        assert_eq!(info.audio[1].label.title.as_deref(), Some("Français"));
        assert_eq!(info.audio[1].label.language.as_deref(), Some("fra"));
        assert_eq!(info.subtitles.len(), 2);
        assert_eq!(
            info.subtitles[0].kind(),
            crate::media::probe::SubtitleKind::Text
        );
        assert_eq!(
            info.subtitles[1].kind(),
            crate::media::probe::SubtitleKind::Bitmap
        );
        assert_eq!(info.subtitles[1].label.language, None, "und is no language");
        assert_eq!(info.attachments[0].filename.as_deref(), Some("a.ttf"));
        assert_eq!(info.chapters.len(), 2);
        assert_eq!(info.chapters[0].title.as_deref(), Some("One"));
        assert_eq!(info.title.as_deref(), Some("My film"));
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(matches!(
            parse_probe_json("a", r#"{"streams":[],"format":{}}"#),
            Err(ProbeError::NotMedia { .. })
        ));
        assert!(matches!(
            parse_probe_json("a", "{"),
            Err(ProbeError::BadJson(_))
        ));
        let bad_fps = r#"{"streams":[{"index":0,"codec_type":"video","width":2,"height":2,"avg_frame_rate":"0/0"}],"format":{}}"#;
        assert!(parse_probe_json("a", bad_fps).is_err());
    }
}
