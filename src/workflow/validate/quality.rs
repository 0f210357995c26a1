//! Quality targets and size guards: each rung's target, its CRF bounds, and whether this
//! machine's ffmpeg can measure the metric it names.

use super::{FieldError, Problems};
use crate::media::profiles::RateControl;
use crate::media::quality::{Metric, MetricsTool};
use crate::workflow::schema::{Ladder, SizeGuard, Workflow};

pub(super) fn check(w: &Workflow, p: &mut Problems) {
    if let Some(g) = &w.size_guard {
        size_guard(g, "size_guard", p);
    }
    for (i, profile) in w.profiles.iter().enumerate() {
        let at = |field: &str| format!("profiles[{i}].{field}");
        if let Some(g) = &profile.size_guard {
            size_guard(g, &at("size_guard"), p);
        }
        let Some(q) = &profile.quality else { continue };
        if profile.crf.is_some() {
            p.err(
                &at("quality"),
                "a profile has either crf or quality (the CRF is then searched); remove crf".into(),
            );
        }
        if profile.rate_control == RateControl::TwoPass {
            p.err(
                &at("quality"),
                "a quality target searches a CRF; it cannot be two_pass".into(),
            );
        }
        let range = q.metric.range();
        if !(q.target.is_finite() && range.contains(&q.target)) {
            p.err(
                &at("quality.target"),
                format!(
                    "{} scores lie in {}..={}, got {}",
                    q.metric.name(),
                    range.start(),
                    range.end(),
                    q.target
                ),
            );
        }
        let crfs = profile.codec.crf_range();
        for (field, value) in [("min_crf", q.min_crf), ("max_crf", q.max_crf)] {
            if let Some(v) = value.filter(|v| !crfs.contains(v)) {
                p.err(
                    &at(&format!("quality.{field}")),
                    format!("{v} is outside {crfs:?} for {}", profile.codec.name()),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (q.min_crf, q.max_crf) {
            if lo > hi {
                p.err(
                    &at("quality.min_crf"),
                    format!("min_crf {lo} is above max_crf {hi}"),
                );
            }
        }
        if let Some(preset) = q
            .probe_preset
            .as_deref()
            .filter(|s| !profile.codec.preset_is_valid(s))
        {
            p.err(
                &at("quality.probe_preset"),
                format!("{preset:?} is not a {} preset", profile.codec.encoder()),
            );
        }
        if !(1..=30).contains(&q.subsample) {
            p.err(&at("quality.subsample"), "must be 1 to 30".into());
        }
        if q.tolerance.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            p.err(&at("quality.tolerance"), "must be above 0".into());
        }
    }
}

fn size_guard(g: &SizeGuard, at: &str, p: &mut Problems) {
    if !(g.max_ratio.is_finite() && g.max_ratio > 0.0 && g.max_ratio <= 10.0) {
        p.err(
            &format!("{at}.max_ratio"),
            format!("must be above 0 and at most 10, got {}", g.max_ratio),
        );
    }
}

/// Each profile whose metric this machine cannot measure, with how to get it. The scoring
/// ffmpeg is looked for only when some profile names a metric not every ffmpeg has.
pub(super) fn environment(w: &Workflow) -> Vec<FieldError> {
    let per_title = (w.ladder == Ladder::PerTitle).then(|| {
        let metric = w.per_title.as_ref().map_or(Metric::Vmaf, |s| s.metric);
        ("per_title.metric".to_string(), metric)
    });
    let wanted: Vec<(String, Metric)> = w
        .profiles
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            Some((
                format!("profiles[{i}].quality.metric"),
                p.quality.as_ref()?.metric,
            ))
        })
        .chain(per_title)
        .filter(|(_, m)| !m.always_available())
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let main = crate::media::tools::ffmpeg_path();
    let tool = match main
        .map_err(|e| e.to_string())
        .and_then(|m| MetricsTool::locate(&m).map_err(|e| e.to_string()))
    {
        Ok(t) => t,
        Err(e) => {
            return wanted
                .iter()
                .map(|(field, _)| FieldError::new(field.clone(), e.clone()))
                .collect()
        }
    };
    wanted
        .into_iter()
        .filter_map(|(field, m)| Some(FieldError::new(field, tool.missing(m)?)))
        .collect()
}
