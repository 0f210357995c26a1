//! Chunks as frame ranges of the source, with boundaries spool chooses. A range is decoded
//! from the keyframe before it (its pre-roll) and trimmed to exactly its frames by their
//! timestamps, so it does not matter where the source's keyframes are, or whether its GOPs
//! are open: leading pictures that need an earlier GOP are decoded from that GOP, then cut.

use serde::{Deserialize, Serialize};

/// The first video stream's packets in presentation order, read by demuxing only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoPackets {
    /// Every frame's presentation time, ascending (source timeline, seconds).
    pub pts: Vec<f64>,
    /// The keyframes' presentation times, ascending.
    pub keys: Vec<f64>,
}

impl VideoPackets {
    /// Reads ffprobe's `packet=pts_time,flags` CSV. Packets without a time are left out
    /// (they are not frames a decoder shows).
    pub fn parse(csv: &str) -> VideoPackets {
        let mut p = VideoPackets::default();
        for line in csv.lines() {
            let mut cols = line.split(',');
            let (Some(t), Some(flags)) = (cols.next(), cols.next()) else {
                continue;
            };
            let Ok(t) = t.trim().parse::<f64>() else {
                continue;
            };
            p.pts.push(t);
            if flags.starts_with('K') {
                p.keys.push(t);
            }
        }
        p.pts.sort_by(f64::total_cmp);
        p.keys.sort_by(f64::total_cmp);
        p
    }

    /// Index of the first frame at or after `t`.
    pub fn frame_at(&self, t: f64) -> usize {
        self.pts.partition_point(|p| *p < t - 1e-6)
    }
}

/// Frames `[start, end)` of the source, and how to get exactly them out of ffmpeg.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameRange {
    pub start: u64,
    pub end: u64,
    /// Presentation time of frame `start` and of frame `end` (the source's end for the last).
    pub start_s: f64,
    pub end_s: f64,
    /// Where decoding starts: a keyframe at or before frame `start` (a timestamp of the
    /// source's, for `-seek_timestamp`); None to decode from the file's start.
    pub seek_s: Option<f64>,
    /// Frames decoded only to reach `start`.
    pub preroll: u64,
    /// The trim window, in the source's own timestamps (`-copyts`): half a frame before
    /// `start` to half a frame before `end` (None for the last range).
    pub trim_from_s: f64,
    pub trim_to_s: Option<f64>,
}

impl FrameRange {
    pub fn frames(&self) -> u64 {
        self.end - self.start
    }

    pub fn seconds(&self) -> f64 {
        (self.end_s - self.start_s).max(0.001)
    }

    /// Input options, before `-i`. The source's own timestamps are kept (`-copyts`) and the
    /// seek is to one of them (`-seek_timestamp`): how ffmpeg offsets an input otherwise
    /// differs by container (an MPEG-TS is offset by its video's start, not the file's).
    /// No accurate seek: it lands a GOP late in some MPEG-TS files; the trim does not.
    pub fn input_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["-copyts".into()];
        if let Some(seek) = self.seek_s {
            a.extend([
                "-seek_timestamp".into(),
                "1".into(),
                "-ss".into(),
                format!("{seek:.6}"),
                "-noaccurate_seek".into(),
            ]);
        }
        a
    }

    /// The first filters: exactly this range's frames, the first at zero.
    pub fn filter(&self) -> String {
        let to = self
            .trim_to_s
            .map_or(String::new(), |t| format!(":end={t:.6}"));
        format!("trim=start={:.6}{to},setpts=PTS-STARTPTS", self.trim_from_s)
    }

    /// What makes this range another chunk for the artifact cache.
    pub fn fingerprint(&self) -> String {
        format!(
            "frames {}..{} seek {:?} trim {:.6}..{:?}",
            self.start, self.end, self.seek_s, self.trim_from_s, self.trim_to_s
        )
    }
}

/// How a demuxer seeks decides how far back decoding must start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekIndex {
    /// Matroska and MP4 seek by an index of keyframes: the keyframe itself is enough.
    Indexed,
    /// Others (MPEG-TS, PS, AVI…) search by timestamps and can land one keyframe late:
    /// start one keyframe earlier.
    Searched,
}

impl SeekIndex {
    pub fn of_format(format: &str) -> SeekIndex {
        let indexed = ["matroska", "webm", "mov", "mp4"];
        match indexed.iter().any(|f| format.contains(f)) {
            true => SeekIndex::Indexed,
            false => SeekIndex::Searched,
        }
    }
}

/// Boundaries every `seconds` of presentation time, each on the first frame at or after it:
/// the index of each range's first frame, 0 first.
pub fn time_boundaries(packets: &VideoPackets, seconds: f64) -> Vec<usize> {
    let Some(&first) = packets.pts.first() else {
        return Vec::new();
    };
    let last = packets.pts.len();
    let mut starts = vec![0];
    let mut k = 1.0;
    loop {
        let i = packets.frame_at(first + k * seconds);
        k += 1.0;
        if i >= last {
            break;
        }
        if i > *starts.last().unwrap_or(&0) {
            starts.push(i);
        }
    }
    drop_short_tail(packets, starts, seconds * 0.5)
}

/// Boundaries on scene cuts: from each boundary, the cut nearest `target` seconds later
/// among those `min`..`max` seconds later; where no cut falls in that window, `target`
/// seconds later. `cuts` are the first frames of new shots (presentation times).
pub fn scene_boundaries(
    packets: &VideoPackets,
    cuts: &[f64],
    target: f64,
    min: f64,
    max: f64,
) -> Vec<usize> {
    let (Some(&first), Some(&end)) = (packets.pts.first(), packets.pts.last()) else {
        return Vec::new();
    };
    let mut starts = vec![0usize];
    let mut at = first;
    while end - at > max {
        let window = cuts
            .iter()
            .filter(|c| **c >= at + min - 1e-6 && **c <= at + max + 1e-6);
        let next = window
            .min_by(|a, b| {
                (*a - at - target)
                    .abs()
                    .total_cmp(&(*b - at - target).abs())
            })
            .copied()
            .unwrap_or(at + target);
        let i = packets.frame_at(next);
        if i >= packets.pts.len() || i <= *starts.last().unwrap_or(&0) {
            break;
        }
        starts.push(i);
        at = packets.pts[i];
    }
    drop_short_tail(packets, starts, min)
}

/// A last range shorter than `min_seconds` joins the one before it.
fn drop_short_tail(packets: &VideoPackets, mut starts: Vec<usize>, min_seconds: f64) -> Vec<usize> {
    let end = packets.pts.last().copied().unwrap_or(0.0);
    if starts.len() > 1 {
        if let Some(&last) = starts.last() {
            if end - packets.pts[last] < min_seconds {
                starts.pop();
            }
        }
    }
    starts
}

/// The ranges between `starts` (first-frame indexes, 0 first), each with its pre-roll.
/// `end_s` is where the video ends (the last frame's time plus its duration).
pub fn frame_ranges(
    packets: &VideoPackets,
    starts: &[usize],
    end_s: f64,
    index: SeekIndex,
) -> Vec<FrameRange> {
    let n = packets.pts.len();
    let ends = starts.iter().skip(1).copied().chain([n]);
    starts
        .iter()
        .zip(ends)
        .filter(|(a, b)| **a < *b)
        .map(|(&a, b)| {
            let pts = &packets.pts;
            let half_before = |i: usize| match i {
                0 => 0.0005,
                _ => ((pts[i] - pts[i - 1]) / 2.0).clamp(0.0005, 0.5),
            };
            let seek = pre_roll_keyframe(&packets.keys, pts[a], index);
            let from = seek.unwrap_or(f64::NEG_INFINITY);
            let preroll = pts[..a].iter().filter(|t| **t >= from - 1e-9).count() as u64;
            FrameRange {
                start: a as u64,
                end: b as u64,
                start_s: pts[a],
                end_s: if b < n { pts[b] } else { end_s.max(pts[n - 1]) },
                seek_s: seek,
                preroll,
                trim_from_s: pts[a] - half_before(a),
                trim_to_s: (b < n).then(|| pts[b] - half_before(b)),
            }
        })
        .collect()
}

/// The keyframe decoding starts from: the last at or before `t`, one earlier where the
/// demuxer may land late. None (the file's start) before the first keyframe, and for the
/// first one: no seek is needed to start there.
fn pre_roll_keyframe(keys: &[f64], t: f64, index: SeekIndex) -> Option<f64> {
    let at_or_before = keys.partition_point(|k| *k <= t + 1e-6);
    let back = match index {
        SeekIndex::Indexed => 1,
        SeekIndex::Searched => 2,
    };
    match at_or_before.checked_sub(back) {
        Some(0) | None => None,
        Some(i) => Some(keys[i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(frames: usize, fps: f64, gop: usize) -> VideoPackets {
        let pts: Vec<f64> = (0..frames).map(|i| i as f64 / fps).collect();
        let keys = pts.iter().step_by(gop).copied().collect();
        VideoPackets { pts, keys }
    }

    #[test]
    fn reads_ffprobe_packets_in_presentation_order() {
        let p = VideoPackets::parse("0.080,K_\n0.040,__\nN/A,__\n\n0.000,__,\n0.120,K__\n");
        assert_eq!(p.pts, vec![0.0, 0.04, 0.08, 0.12]);
        assert_eq!(p.keys, vec![0.08, 0.12]);
    }

    #[test]
    fn time_boundaries_ignore_where_the_keyframes_are() {
        // 24 s at 25 fps with one keyframe every 10 s: 4 s ranges regardless.
        let p = packets(600, 25.0, 250);
        let starts = time_boundaries(&p, 4.0);
        assert_eq!(starts, vec![0, 100, 200, 300, 400, 500]);
        let r = frame_ranges(&p, &starts, 24.0, SeekIndex::Indexed);
        assert_eq!(r.len(), 6);
        assert_eq!(r.iter().map(FrameRange::frames).sum::<u64>(), 600);
        assert_eq!(
            r[3].seek_s,
            Some(10.0),
            "frame 300 decodes from the keyframe at 10 s"
        );
        assert_eq!(r[3].preroll, 50);
        assert!((r[3].trim_from_s - 11.98).abs() < 1e-9);
        assert_eq!((r[1].seek_s, r[1].preroll), (None, 100), "from the start");
        assert_eq!(r[5].trim_to_s, None);
        assert_eq!(r[5].end_s, 24.0);
        // Searched formats start one keyframe earlier.
        let r = frame_ranges(&p, &starts, 24.0, SeekIndex::Searched);
        assert_eq!((r[3].seek_s, r[3].preroll), (None, 300));
        assert_eq!((r[5].seek_s, r[5].preroll), (Some(10.0), 250));
    }

    #[test]
    fn a_short_tail_joins_the_range_before() {
        let p = packets(210, 25.0, 50); // 8.4 s
        assert_eq!(time_boundaries(&p, 4.0), vec![0, 100]);
        assert_eq!(time_boundaries(&packets(1, 25.0, 1), 4.0), vec![0]);
        assert!(time_boundaries(&VideoPackets::default(), 4.0).is_empty());
    }

    #[test]
    fn scene_boundaries_land_on_cuts_inside_the_bounds() {
        let p = packets(750, 25.0, 250); // 30 s
        let cuts = [3.0, 5.6, 7.8, 13.0, 14.0, 26.0];
        let starts = scene_boundaries(&p, &cuts, 6.0, 3.0, 9.0);
        let times: Vec<f64> = starts.iter().map(|i| p.pts[*i]).collect();
        // 5.6 is nearest 6 s; then 13.0 (7.4 s on, nearest 11.6 within 8.6..14.6);
        // then no cut in 16..22: forced at 19; then 26 (7 s on); 4 s left < max: stop.
        assert_eq!(times, vec![0.0, 5.6, 13.0, 19.0, 26.0]);
    }
}
