//! Chunking with the segment muxer (copy cuts), and concat lists for the join.

use std::path::{Path, PathBuf};

/// One segment as the muxer's CSV list reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub path: PathBuf,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("segment list line {line}: {reason}")]
pub struct SegmentListError {
    pub line: usize,
    pub reason: String,
}

/// Parses `-segment_list_type csv` output (`name,start,end`), resolving names against `dir`.
pub fn parse_segment_list(csv: &str, dir: &Path) -> Result<Vec<Segment>, SegmentListError> {
    let mut out = Vec::new();
    for (i, line) in csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let err = |reason: &str| SegmentListError {
            line: i + 1,
            reason: reason.to_string(),
        };
        // Names can be quoted and hold commas, so split the two numbers off the right.
        let mut parts = line.rsplitn(3, ',');
        let end = parts
            .next()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| err("bad end time"))?;
        let start = parts
            .next()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| err("bad start time"))?;
        let name = parts.next().ok_or_else(|| err("missing file name"))?;
        let name = name.trim().trim_matches('"').replace("\"\"", "\"");
        if name.is_empty() || name.contains('/') {
            return Err(err("segment name must be a plain file name"));
        }
        if !(end.is_finite() && start.is_finite() && end >= start) {
            return Err(err("segment ends before it starts"));
        }
        out.push(Segment {
            path: dir.join(name),
            start_s: start,
            end_s: end,
        });
    }
    Ok(out)
}

/// A concat-demuxer list; paths are quoted so any file name survives. A file's duration,
/// when given, places the next file (frame-range chunks take their source's timing, which
/// keeps a variable frame rate exact; a file's own length guesses its last frame's).
pub fn concat_list(files: &[(PathBuf, Option<f64>)]) -> String {
    files
        .iter()
        .map(|(p, duration)| {
            let mut entry = format!(
                "file '{}'\n",
                p.display().to_string().replace('\'', "'\\''")
            );
            if let Some(d) = duration {
                entry.push_str(&format!("duration {d:.6}\n"));
            }
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_muxer_list() -> Result<(), SegmentListError> {
        let csv = "c000.mkv,0.000000,3.770000\nc001.mkv,3.771000,6.239000\n\n\"a,b.mkv\",6.2,7\n";
        let segs = parse_segment_list(csv, Path::new("/w"))?;
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[1].path, Path::new("/w/c001.mkv"));
        assert_eq!(segs[2].path, Path::new("/w/a,b.mkv"));
        assert!(parse_segment_list("x.mkv,2,1", Path::new("/w")).is_err());
        assert!(parse_segment_list("../x.mkv,0,1", Path::new("/w")).is_err());
        Ok(())
    }

    #[test]
    fn concat_list_escapes_quotes() {
        let list = concat_list(&[(PathBuf::from("/w/it's.mp4"), None)]);
        assert_eq!(list, "file '/w/it'\\''s.mp4'\n");
        let list = concat_list(&[(PathBuf::from("/w/a.mp4"), Some(4.04))]);
        assert_eq!(list, "file '/w/a.mp4'\nduration 4.040000\n");
    }
}

/// Where the segment muxer will cut: at the first keyframe at or after each multiple of
/// `segment_seconds` from the first keyframe. Returns (start, end) of each chunk.
pub fn predict_segments(keyframes: &[f64], segment_seconds: f64, end: f64) -> Vec<(f64, f64)> {
    let Some(&first) = keyframes.first() else {
        return Vec::new();
    };
    let mut starts = vec![first];
    let mut next_cut = first + segment_seconds;
    for &k in &keyframes[1..] {
        if k >= next_cut - 1e-6 {
            starts.push(k);
            while next_cut <= k + 1e-6 {
                next_cut += segment_seconds;
            }
        }
    }
    let ends = starts.iter().skip(1).copied().chain([end.max(first)]);
    starts.iter().copied().zip(ends).collect()
}

#[cfg(test)]
mod prediction_tests {
    use super::predict_segments;

    #[test]
    fn cuts_at_the_first_keyframe_past_each_multiple() {
        let keys: Vec<f64> = (0..12).map(|i| i as f64 * 2.0).collect();
        let segs = predict_segments(&keys, 6.0, 24.0);
        assert_eq!(
            segs,
            vec![(0.0, 6.0), (6.0, 12.0), (12.0, 18.0), (18.0, 24.0)]
        );
        let segs = predict_segments(&[0.0, 5.0, 7.0, 13.0], 6.0, 15.0);
        assert_eq!(segs, vec![(0.0, 7.0), (7.0, 13.0), (13.0, 15.0)]);
    }
}
