//! Which of the source's streams each output keeps, and everything left out with why.
//! Pure: the planner calls it, and `spool plan` shows its result.

use serde::{Deserialize, Serialize};

use crate::media::join::{SubtitleCopy, TrackTags};
use crate::media::probe::{Attachment, Label, MediaInfo};
use crate::media::profiles::{Container, Rung};
use crate::workflow::streams::{Keep, Streams};

/// A source stream an output does not carry, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// The stream's index in the source.
    pub stream: u32,
    pub kind: String,
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The output (profile) it is missing from; None when no output has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub reason: String,
}

/// What every output keeps of the source.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Source audio tracks (`a:N`), in output order, and their tags.
    pub audio: Vec<(usize, TrackTags)>,
    /// Source subtitle tracks (`s:N`) selected.
    pub subtitles: Vec<usize>,
    pub chapters: bool,
    pub metadata: bool,
    /// Left out of every output.
    pub dropped: Vec<Dropped>,
}

fn tags(label: &Label) -> TrackTags {
    TrackTags {
        language: label.language.clone(),
        title: label.title.clone(),
        default: label.default,
        forced: label.forced,
    }
}

/// Exactly one kept track is the default: the source's default if kept, else the first.
fn one_default(tracks: &mut [TrackTags]) {
    let chosen = tracks.iter().position(|t| t.default).unwrap_or(0);
    for (i, t) in tracks.iter_mut().enumerate() {
        t.default = i == chosen;
    }
}

pub fn kept(streams: &Streams, media: &MediaInfo) -> Kept {
    let mut dropped = Vec::new();
    let langs: Vec<Option<&str>> = media
        .audio
        .iter()
        .map(|a| a.label.language.as_deref())
        .collect();
    let audio_pick = streams.audio.pick(&langs);
    for (i, a) in media.audio.iter().enumerate() {
        if !audio_pick.contains(&i) {
            dropped.push(Dropped {
                stream: a.index,
                kind: "audio".into(),
                codec: a.codec.clone(),
                language: a.label.language.clone(),
                output: None,
                reason: "not selected by streams.audio".into(),
            });
        }
    }
    let mut audio_tags: Vec<TrackTags> = audio_pick
        .iter()
        .map(|i| tags(&media.audio[*i].label))
        .collect();
    one_default(&mut audio_tags);
    let sub_langs: Vec<Option<&str>> = media
        .subtitles
        .iter()
        .map(|s| s.label.language.as_deref())
        .collect();
    let subtitles = streams.subtitles.pick(&sub_langs);
    for (i, s) in media.subtitles.iter().enumerate() {
        if !subtitles.contains(&i) {
            dropped.push(Dropped {
                stream: s.index,
                kind: "subtitle".into(),
                codec: s.codec.clone(),
                language: s.label.language.clone(),
                output: None,
                reason: "not selected by streams.subtitles".into(),
            });
        }
    }
    Kept {
        audio: audio_pick.into_iter().zip(audio_tags).collect(),
        subtitles,
        chapters: streams.chapters == Keep::Keep && !media.chapters.is_empty(),
        metadata: streams.metadata == Keep::Keep,
        dropped,
    }
}

/// The selected subtitles one rung's container can carry, and the ones it cannot.
pub fn subtitles_for(
    rung: &Rung,
    kept: &Kept,
    media: &MediaInfo,
) -> (Vec<SubtitleCopy>, Vec<Dropped>) {
    let container = rung.container;
    let mut copies = Vec::new();
    let mut dropped = Vec::new();
    for &i in &kept.subtitles {
        let s = &media.subtitles[i];
        match container.subtitle_codec(s.kind(), &s.codec) {
            Ok(codec) => copies.push(SubtitleCopy {
                track: i,
                codec,
                tags: tags(&s.label),
            }),
            Err(reason) => dropped.push(Dropped {
                stream: s.index,
                kind: "subtitle".into(),
                codec: s.codec.clone(),
                language: s.label.language.clone(),
                output: Some(rung.name.clone()),
                reason,
            }),
        }
    }
    // At most one subtitle is on by default: the first the source marks so.
    let mut seen = false;
    for c in &mut copies {
        c.tags.default = c.tags.default && !seen;
        seen |= c.tags.default;
    }
    if !container.carries_attachments() {
        for a in &media.attachments {
            dropped.push(Dropped {
                stream: a.index,
                kind: "attachment".into(),
                codec: a.mimetype.clone().unwrap_or_default(),
                language: None,
                output: Some(rung.name.clone()),
                reason: format!(
                    "{} cannot carry attachments; an mkv profile keeps them",
                    container.ext()
                ),
            });
        }
    }
    (copies, dropped)
}

/// The kept text subtitles in a file of `container`: (its subtitle index there, tags).
pub fn text_subtitles(
    container: Container,
    kept: &Kept,
    media: &MediaInfo,
) -> Vec<(usize, TrackTags)> {
    kept.subtitles
        .iter()
        .map(|&i| &media.subtitles[i])
        .filter(|s| container.subtitle_codec(s.kind(), &s.codec).is_ok())
        .enumerate()
        .filter(|(_, s)| s.kind() == crate::media::probe::SubtitleKind::Text)
        .map(|(n, s)| (n, tags(&s.label)))
        .collect()
}

/// The source's attachments a rung keeps: all, where its container takes them.
pub fn attachments_for(container: Container, media: &MediaInfo) -> Vec<Attachment> {
    match container.carries_attachments() {
        true => media.attachments.clone(),
        false => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::probe::parse_probe_json;
    use crate::media::profiles::sample_rung;
    use crate::workflow::streams::Select;

    fn media() -> MediaInfo {
        let json = r#"{"streams":[
          {"index":0,"codec_type":"video","codec_name":"h264","width":320,"height":180,"avg_frame_rate":"25/1"},
          {"index":1,"codec_type":"audio","codec_name":"aac","tags":{"language":"eng"}},
          {"index":2,"codec_type":"audio","codec_name":"aac","tags":{"language":"fra"},"disposition":{"default":1}},
          {"index":3,"codec_type":"audio","codec_name":"ac3","tags":{"language":"ger"}},
          {"index":4,"codec_type":"subtitle","codec_name":"subrip","tags":{"language":"eng"}},
          {"index":5,"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle","tags":{"language":"fra"}},
          {"index":6,"codec_type":"attachment","codec_name":"ttf","tags":{"filename":"f.ttf"}}],
          "format":{"format_name":"matroska","duration":"4"}}"#;
        parse_probe_json("x.mkv", json).expect("probe")
    }

    #[test]
    fn by_default_everything_is_kept_and_the_default_track_follows_the_source() {
        let m = media();
        let k = kept(&Streams::default(), &m);
        assert_eq!(k.audio.iter().map(|a| a.0).collect::<Vec<_>>(), [0, 1, 2]);
        let defaults: Vec<bool> = k.audio.iter().map(|a| a.1.default).collect();
        assert_eq!(
            defaults,
            [false, true, false],
            "the source's default stays the default"
        );
        assert!(k.dropped.is_empty());
        // An mp4 rung keeps the text subtitle and says why the bitmap one and the font go.
        let (subs, dropped) = subtitles_for(&sample_rung("p", 144), &k, &m);
        assert_eq!(subs.len(), 1);
        let reasons: Vec<&str> = dropped.iter().map(|d| d.reason.as_str()).collect();
        assert!(reasons[0].contains("bitmap subtitles (hdmv_pgs_subtitle) cannot go into mp4"));
        assert!(reasons[1].contains("cannot carry attachments"));
        // An mkv rung keeps both subtitles (the bitmap one copied) and the font.
        let mut mkv = sample_rung("a", 144);
        mkv.container = Container::Mkv;
        let (subs, dropped) = subtitles_for(&mkv, &k, &m);
        assert_eq!(subs.len(), 2);
        assert!(dropped.is_empty());
        assert_eq!(
            attachments_for(Container::Mkv, &m).len(),
            m.attachments.len()
        );
    }

    #[test]
    fn a_language_filter_keeps_its_tracks_and_records_the_rest() {
        let m = media();
        let streams = Streams {
            audio: Select::Languages(vec!["fra".into(), "eng".into()]),
            subtitles: Select::None,
            ..Streams::default()
        };
        let k = kept(&streams, &m);
        assert_eq!(k.audio.iter().map(|a| a.0).collect::<Vec<_>>(), [0, 1]);
        let dropped: Vec<(u32, &str)> = k
            .dropped
            .iter()
            .map(|d| (d.stream, d.reason.as_str()))
            .collect();
        assert_eq!(
            dropped,
            [
                (3, "not selected by streams.audio"),
                (4, "not selected by streams.subtitles"),
                (5, "not selected by streams.subtitles")
            ]
        );
    }
}
