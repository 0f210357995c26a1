//! `ladder: per_title`: the profiles are candidates of one codec, each sampled at the CRFs
//! listed; the settings must name scores the metric can give.

use super::Problems;
use crate::media::profiles::RateControl;
use crate::media::quality::hull::PerTitle;
use crate::workflow::schema::{Ladder, Workflow};

/// Sample CRFs per candidate, at most: each is an encode of every sampled chunk.
pub const MAX_SAMPLE_CRFS: usize = 8;

pub(super) fn check(w: &Workflow, p: &mut Problems) {
    let settings = match (w.ladder, &w.per_title) {
        (Ladder::Fixed, None) => return,
        (Ladder::Fixed, Some(_)) => {
            p.err(
                "per_title",
                "per_title settings apply with `ladder: per_title`; add it or remove them".into(),
            );
            return;
        }
        (Ladder::PerTitle, s) => s.clone().unwrap_or_default(),
    };
    let Some(first) = w.profiles.first() else {
        return;
    };
    for (i, profile) in w.profiles.iter().enumerate() {
        let at = |field: &str| format!("profiles[{i}].{field}");
        if profile.codec != first.codec {
            p.err(
                &at("codec"),
                format!(
                    "a per-title ladder compares candidates of one codec; {} is not {}",
                    profile.codec.name(),
                    first.codec.name()
                ),
            );
        }
        if profile.crf.is_some() || profile.quality.is_some() {
            p.err(
                &at("crf"),
                "with `ladder: per_title` each rung's CRF comes from the hull; remove crf and quality".into(),
            );
        }
        if profile.rate_control == RateControl::TwoPass {
            p.err(
                &at("rate_control"),
                "a per-title ladder samples CRFs; it cannot be two_pass".into(),
            );
        }
        if let Some(preset) = settings
            .probe_preset
            .as_deref()
            .filter(|s| !profile.codec.preset_is_valid(s))
        {
            p.err(
                "per_title.probe_preset",
                format!("{preset:?} is not a {} preset", profile.codec.encoder()),
            );
        }
    }
    numbers(&settings, w, p);
}

fn numbers(s: &PerTitle, w: &Workflow, p: &mut Problems) {
    if let Some(crfs) = &s.crfs {
        if crfs.is_empty() || crfs.len() > MAX_SAMPLE_CRFS {
            p.err(
                "per_title.crfs",
                format!("list 1 to {MAX_SAMPLE_CRFS} CRFs, got {}", crfs.len()),
            );
        }
        if let Some(first) = w.profiles.first() {
            let range = first.codec.crf_range();
            for (k, crf) in crfs.iter().enumerate() {
                if !range.contains(crf) {
                    p.err(
                        &format!("per_title.crfs[{k}]"),
                        format!("{crf} is outside {range:?} for {}", first.codec.name()),
                    );
                }
            }
        }
    }
    if s.rungs == Some(0) {
        p.err("per_title.rungs", "must be at least 1".into());
    }
    let range = s.metric.range();
    for (field, value) in [("min_score", s.min_score), ("top_score", s.top_score)] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && range.contains(v))) {
            p.err(
                &format!("per_title.{field}"),
                format!(
                    "{} scores lie in {}..={}, got {v}",
                    s.metric.name(),
                    range.start(),
                    range.end()
                ),
            );
        }
    }
    if s.min_score() >= s.top_score() {
        p.err(
            "per_title.min_score",
            format!(
                "min_score {} must be below top_score {}",
                s.min_score(),
                s.top_score()
            ),
        );
    }
    if !(1..=30).contains(&s.subsample) {
        p.err("per_title.subsample", "must be 1 to 30".into());
    }
}
