//! The smaller sections: chunking, output naming, GIF, watch, schedule, webhooks, streams, loudness.

use super::Problems;
use crate::workflow::chunking::{Boundaries, Cut};
use crate::workflow::schema::Workflow;
use crate::workflow::streams::Select;

const NAMING_PLACEHOLDERS: &[&str] = &["stem", "profile", "codec", "height", "ext"];

pub(super) fn chunking(w: &Workflow, p: &mut Problems) {
    let c = &w.chunking;
    let seconds = c.segment_seconds;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 600.0) {
        p.err(
            "chunking.segment_seconds",
            format!("must be > 0 and ≤ 600, got {seconds}"),
        );
    }
    if !(c.min_duration_seconds.is_finite() && c.min_duration_seconds >= 0.0) {
        p.err(
            "chunking.min_duration_seconds",
            format!("must be ≥ 0, got {}", c.min_duration_seconds),
        );
    }
    let (min, max) = (c.min_seconds(), c.max_seconds());
    if c.min_seconds.is_some() && !(min.is_finite() && min > 0.0 && min <= seconds) {
        p.err(
            "chunking.min_seconds",
            format!("must be > 0 and ≤ segment_seconds ({seconds}), got {min}"),
        );
    }
    if c.max_seconds.is_some() && !(max.is_finite() && max >= seconds && max <= 1200.0) {
        p.err(
            "chunking.max_seconds",
            format!("must be ≥ segment_seconds ({seconds}) and ≤ 1200, got {max}"),
        );
    }
    if !(c.scene_threshold > 0.0 && c.scene_threshold <= 100.0) {
        p.err("chunking.scene_threshold", "must be > 0 and ≤ 100".into());
    }
    if c.boundaries == Boundaries::Scenes && c.cut == Cut::Copy {
        p.err(
            "chunking.boundaries",
            "scene boundaries need cut: frames (copy cuts fall on the source's keyframes)".into(),
        );
    }
}

pub(super) fn gif(w: &Workflow, p: &mut Problems) {
    if !w.gif.enabled {
        return;
    }
    if !(16..=1920).contains(&w.gif.width) {
        p.err(
            "gif.width",
            format!("must be 16 to 1920, got {}", w.gif.width),
        );
    }
    if !(1..=30).contains(&w.gif.fps) {
        p.err("gif.fps", format!("must be 1 to 30, got {}", w.gif.fps));
    }
    let d = w.gif.duration_seconds;
    if !(d.is_finite() && d > 0.0 && d <= 120.0) {
        p.err("gif.duration_seconds", "must be > 0 and ≤ 120".into());
    }
    if !(w.gif.start_seconds.is_finite() && w.gif.start_seconds >= 0.0) {
        p.err("gif.start_seconds", "must be ≥ 0".into());
    }
}

pub(super) fn watch(w: &Workflow, p: &mut Problems) {
    let Some(watch) = &w.watch else { return };
    if watch.folders.is_empty() {
        p.err("watch.folders", "name at least one folder".into());
    }
    if !(watch.settle_seconds.is_finite() && (0.0..=3600.0).contains(&watch.settle_seconds)) {
        p.err("watch.settle_seconds", "must be 0 to 3600".into());
    }
    if !(watch.rescan_seconds.is_finite() && watch.rescan_seconds >= 1.0) {
        p.err("watch.rescan_seconds", "must be at least 1".into());
    }
    if !(-100..=100).contains(&watch.priority) {
        p.err("watch.priority", "must be -100 to 100".into());
    }
    if !(1..=100).contains(&watch.max_attempts) {
        p.err("watch.max_attempts", "must be 1 to 100".into());
    }
    if watch
        .marker
        .as_ref()
        .is_some_and(|m| m.len() < 2 || !m.starts_with('.'))
    {
        p.err("watch.marker", "a suffix such as .done".into());
    }
    for (field, list) in [("include", &watch.include), ("exclude", &watch.exclude)] {
        for (j, g) in list.iter().enumerate() {
            if let Err(e) = globset::Glob::new(g) {
                p.err(&format!("watch.{field}[{j}]"), e.to_string());
            }
        }
    }
}

pub(super) fn schedule(w: &Workflow, p: &mut Problems) {
    let Some(schedule) = &w.schedule else { return };
    if schedule.windows.is_empty() {
        p.err("schedule.windows", "name at least one window".into());
    }
    for (j, win) in schedule.windows.iter().enumerate() {
        for (field, value) in [("from", &win.from), ("to", &win.to)] {
            if crate::workflow::schedule::parse_hhmm(value).is_none() {
                p.err(
                    &format!("schedule.windows[{j}].{field}"),
                    format!("{value:?}: use HH:MM, 00:00 to 23:59"),
                );
            }
        }
    }
}

pub(super) fn webhooks(w: &Workflow, p: &mut Problems) {
    for (i, hook) in w.webhooks.iter().enumerate() {
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            p.err(
                &format!("webhooks[{i}].url"),
                format!("{:?}: use an http:// or https:// URL", hook.url),
            );
        }
        if hook.events.is_empty() {
            p.err(
                &format!("webhooks[{i}].events"),
                "name at least one event, or leave it out for all".into(),
            );
        }
    }
}

pub(super) fn streams(w: &Workflow, p: &mut Problems) {
    for (field, select) in [
        ("audio", &w.streams.audio),
        ("subtitles", &w.streams.subtitles),
    ] {
        let Select::Languages(langs) = select else {
            continue;
        };
        if langs.is_empty() {
            p.err(
                &format!("streams.{field}.languages"),
                "name at least one language, or use none".into(),
            );
        }
        for (j, l) in langs.iter().enumerate() {
            if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_alphabetic()) {
                p.err(
                    &format!("streams.{field}.languages[{j}]"),
                    format!("{l:?}: an ISO 639 code such as eng or fra"),
                );
            }
        }
    }
}

pub(super) fn loudness(w: &Workflow, p: &mut Problems) {
    let Some(l) = &w.loudness else { return };
    if !(-70.0..=-5.0).contains(&l.target_lufs) {
        p.err(
            "loudness.target_lufs",
            "must be -70 to -5 LUFS (-16 for the web, -23 for broadcast)".into(),
        );
    }
    if !(-9.0..=0.0).contains(&l.true_peak_db) {
        p.err("loudness.true_peak_db", "must be -9 to 0 dBTP".into());
    }
    if !(1.0..=50.0).contains(&l.range_lu) {
        p.err("loudness.range_lu", "must be 1 to 50 LU".into());
    }
}

pub(super) fn naming_problems(template: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if template.contains('/') || template.contains('\\') || template.starts_with('.') {
        problems.push(format!(
            "{template:?}: a file name, not a path, and not hidden"
        ));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            problems.push(format!("{template:?}: unclosed '{{'"));
            break;
        };
        let key = &rest[open + 1..open + close];
        if !NAMING_PLACEHOLDERS.contains(&key) {
            problems.push(format!(
                "unknown placeholder {{{key}}}; known: {}",
                NAMING_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if !template.contains("{ext}") {
        problems.push("must end in {ext} so the file type is right".into());
    }
    problems
}
