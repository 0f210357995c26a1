//! The ladder: each rung's name, size, rate control, container and colour.

use std::collections::HashSet;

use super::Problems;
use crate::media::colour::{BitDepth, HdrPolicy};
use crate::media::profiles::{RateControl, MAX_HEIGHT, MIN_HEIGHT};
use crate::workflow::picture::Rotation;
use crate::workflow::schema::{Profile, Workflow};

/// A ladder of more rungs than this is a mistake (a plan hook once returned 100,000).
pub const MAX_PROFILES: usize = 32;

pub(super) fn check(w: &Workflow, p: &mut Problems) {
    if w.profiles.is_empty() {
        p.err("profiles", "at least one profile is needed".into());
    }
    if w.profiles.len() > MAX_PROFILES {
        p.err(
            "profiles",
            format!("{} profiles; at most {MAX_PROFILES}", w.profiles.len()),
        );
    }
    let mut names = HashSet::new();
    for (i, profile) in w.profiles.iter().enumerate() {
        let at = |field: &str| format!("profiles[{i}].{field}");
        if !name_is_valid(&profile.name) {
            p.err(
                &at("name"),
                format!(
                    "{:?}: use letters, digits, '-', '_' and '.' only",
                    profile.name
                ),
            );
        } else if !names.insert(profile.name.as_str()) {
            p.err(
                &at("name"),
                format!("{:?} is used by an earlier profile", profile.name),
            );
        }
        encoding(profile, &at, p);
        container_and_colour(w, profile, &at, p);
    }
}

fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn encoding(profile: &Profile, at: &dyn Fn(&str) -> String, p: &mut Problems) {
    let codec = profile.codec;
    if !(MIN_HEIGHT..=MAX_HEIGHT).contains(&profile.height) || !profile.height.is_multiple_of(2) {
        p.err(
            &at("height"),
            format!(
                "must be an even number from {MIN_HEIGHT} to {MAX_HEIGHT}, got {}",
                profile.height
            ),
        );
    }
    if let Some(crf) = profile.crf.filter(|c| !codec.crf_range().contains(c)) {
        p.err(
            &at("crf"),
            format!(
                "{crf} is outside {:?} for {}",
                codec.crf_range(),
                codec.name()
            ),
        );
    }
    let two_pass = profile.rate_control == RateControl::TwoPass;
    if two_pass && profile.crf.is_some() {
        p.err(
            &at("crf"),
            "a two_pass profile targets a bitrate; remove crf".into(),
        );
    }
    if let Some(preset) = profile
        .preset
        .as_deref()
        .filter(|s| !codec.preset_is_valid(s))
    {
        p.err(
            &at("preset"),
            format!("{preset:?} is not a {} preset", codec.encoder()),
        );
    }
    if two_pass && !codec.supports_two_pass() {
        p.err(
            &at("rate_control"),
            format!(
                "two_pass is not available for {} in ffmpeg 5.1; use crf",
                codec.name()
            ),
        );
    }
    if profile
        .bitrate_kbps
        .is_some_and(|b| !(50..=200_000).contains(&b))
    {
        p.err(&at("bitrate_kbps"), "must be 50 to 200000".into());
    }
    if profile.audio_kbps.is_some_and(|b| !(16..=512).contains(&b)) {
        p.err(&at("audio_kbps"), "must be 16 to 512".into());
    }
}

fn container_and_colour(
    w: &Workflow,
    profile: &Profile,
    at: &dyn Fn(&str) -> String,
    p: &mut Problems,
) {
    if let Some(c) = profile.container.filter(|c| !c.takes(profile.codec)) {
        p.err(
            &at("container"),
            format!(
                "{} cannot hold {} video; use mp4 or mkv",
                c.ext(),
                profile.codec.name()
            ),
        );
    }
    let container = profile
        .container
        .unwrap_or_else(|| profile.codec.default_container());
    if w.picture.rotation == Rotation::Keep && !container.is_mp4() {
        p.err(
            &at("container"),
            format!(
                "picture.rotation: keep needs mp4 outputs ({} has no rotation flag in ffmpeg 5.1)",
                container.ext()
            ),
        );
    }
    if profile.hdr == Some(HdrPolicy::Keep) && profile.bit_depth == Some(BitDepth::Eight) {
        p.err(
            &at("bit_depth"),
            "hdr: keep needs 10 bits (an 8-bit output tagged PQ or HLG shows wrong everywhere)"
                .into(),
        );
    }
}
