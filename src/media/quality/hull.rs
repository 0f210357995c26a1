//! Per-title ladders (Netflix's idea): sample encodes at several heights × CRFs give
//! (bitrate, quality) points; the ladder is chosen from their upper convex hull, the points
//! no mix of two others beats. Pure: the points are measured elsewhere.

use serde::{Deserialize, Serialize};

use super::Metric;

/// `ladder: per_title`'s settings: the workflow's profiles are the candidate heights; each is
/// sample-encoded at every CRF of `crfs` and the ladder is chosen from the hull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerTitle {
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// The CRFs each candidate is sampled at (the codec's usual spread by default).
    pub crfs: Option<Vec<u32>>,
    /// Rungs wanted, at most (4 by default, never more than the candidates).
    pub rungs: Option<usize>,
    /// No rung scores below this ([`Metric`]'s usual floor by default).
    pub min_score: Option<f64>,
    /// The top rung is the cheapest hull point reaching this.
    pub top_score: Option<f64>,
    /// The sample encodes' preset; each profile's own by default.
    pub probe_preset: Option<String>,
    /// Score every Nth frame (1 = all).
    #[serde(default = "default_subsample")]
    pub subsample: u32,
}

fn default_metric() -> Metric {
    Metric::Vmaf
}

fn default_subsample() -> u32 {
    2
}

impl Default for PerTitle {
    fn default() -> Self {
        PerTitle {
            metric: default_metric(),
            crfs: None,
            rungs: None,
            min_score: None,
            top_score: None,
            probe_preset: None,
            subsample: default_subsample(),
        }
    }
}

impl PerTitle {
    /// Hull points scoring below this are not offered: a picture too poor to watch.
    pub fn min_score(&self) -> f64 {
        self.min_score.unwrap_or(match self.metric {
            Metric::Vmaf => 40.0,
            Metric::Ssim => 0.9,
            Metric::Psnr | Metric::Xpsnr => 30.0,
        })
    }

    /// Past this, more bits buy nothing a viewer sees.
    pub fn top_score(&self) -> f64 {
        self.top_score.unwrap_or(match self.metric {
            Metric::Vmaf => 95.0,
            Metric::Ssim => 0.99,
            Metric::Psnr | Metric::Xpsnr => 45.0,
        })
    }
}

/// One sample encode setting, as measured over the sampled chunks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LadderPoint {
    /// The candidate profile (rung) it was encoded with.
    pub profile: String,
    pub height: u32,
    pub crf: u32,
    /// Over the sampled chunks.
    pub kbps: f64,
    /// Frame-weighted mean at the display size.
    pub score: f64,
    #[serde(default)]
    pub on_hull: bool,
    #[serde(default)]
    pub chosen: bool,
}

/// How rungs are taken from the hull.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    /// Rungs wanted, at most.
    pub rungs: usize,
    /// Hull points scoring below this are not offered to viewers.
    pub min_score: f64,
    /// The top rung is the cheapest hull point reaching this (more bits would be wasted).
    pub top_score: f64,
}

/// Indexes of the points on the upper convex hull, by rising bitrate: first the points no
/// cheaper point matches, then those above every chord between their neighbours.
pub fn upper_hull(points: &[LadderPoint]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|i| points[*i].kbps.is_finite() && points[*i].score.is_finite())
        .collect();
    order.sort_by(|a, b| {
        let (pa, pb) = (&points[*a], &points[*b]);
        pa.kbps
            .total_cmp(&pb.kbps)
            .then(pb.score.total_cmp(&pa.score))
    });
    let mut hull: Vec<usize> = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in order {
        let p = &points[i];
        if p.score <= best {
            continue;
        }
        best = p.score;
        while hull.len() >= 2 {
            let (a, b) = (&points[hull[hull.len() - 2]], &points[hull[hull.len() - 1]]);
            // b under (or on) the chord a→p: mixing a and p beats it.
            let turn =
                (b.kbps - a.kbps) * (p.score - a.score) - (b.score - a.score) * (p.kbps - a.kbps);
            if turn >= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(i);
    }
    hull
}

/// The rungs taken from the hull, by rising bitrate: the top rung is the cheapest hull point
/// reaching `top_score` (else the best), the others spread evenly in log-bitrate below it
/// down to the cheapest point scoring at least `min_score`; one rung per profile.
pub fn choose(points: &[LadderPoint], hull: &[usize], pick: Pick) -> Vec<usize> {
    if hull.is_empty() || pick.rungs == 0 {
        return Vec::new();
    }
    let mut eligible: Vec<usize> = hull
        .iter()
        .copied()
        .filter(|i| points[*i].score >= pick.min_score && points[*i].kbps > 0.0)
        .collect();
    if eligible.is_empty() {
        eligible.push(hull[hull.len() - 1]);
    }
    let top = eligible
        .iter()
        .copied()
        .find(|i| points[*i].score >= pick.top_score)
        .unwrap_or(eligible[eligible.len() - 1]);
    eligible.retain(|i| points[*i].kbps <= points[top].kbps);
    let (lo, hi) = (points[eligible[0]].kbps.ln(), points[top].kbps.ln());
    let mut chosen = vec![top];
    let steps = pick.rungs.saturating_sub(1);
    for k in (0..steps).rev() {
        let target = lo + (hi - lo) * k as f64 / steps.max(1) as f64;
        let nearest = eligible
            .iter()
            .copied()
            .filter(|i| {
                !chosen
                    .iter()
                    .any(|c| points[*c].profile == points[*i].profile)
            })
            .min_by(|a, b| {
                let da = (points[*a].kbps.ln() - target).abs();
                let db = (points[*b].kbps.ln() - target).abs();
                da.total_cmp(&db)
            });
        if let Some(i) = nearest {
            chosen.push(i);
        }
    }
    chosen.sort_by(|a, b| points[*a].kbps.total_cmp(&points[*b].kbps));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(profile: &str, height: u32, crf: u32, kbps: f64, score: f64) -> LadderPoint {
        LadderPoint {
            profile: profile.into(),
            height,
            crf,
            kbps,
            score,
            on_hull: false,
            chosen: false,
        }
    }

    fn grid() -> Vec<LadderPoint> {
        vec![
            pt("p240", 240, 35, 100.0, 50.0),
            pt("p240", 240, 27, 250.0, 65.0),
            pt("p240", 240, 19, 700.0, 70.0),
            pt("p480", 480, 35, 200.0, 55.0),
            pt("p480", 480, 27, 500.0, 80.0),
            pt("p480", 480, 19, 1400.0, 88.0),
            pt("p1080", 1080, 35, 600.0, 70.0),
            pt("p1080", 1080, 27, 1500.0, 93.0),
            pt("p1080", 1080, 19, 4000.0, 98.0),
        ]
    }

    #[test]
    fn the_hull_keeps_only_points_above_every_chord() {
        let points = grid();
        let hull = upper_hull(&points);
        let names: Vec<(u32, u32)> = hull
            .iter()
            .map(|i| (points[*i].height, points[*i].crf))
            .collect();
        // 480p CRF 35 is under the chord 240p/35 → 240p/27; 1080p/35 and 480p/19 are beaten.
        assert_eq!(
            names,
            vec![(240, 35), (240, 27), (480, 27), (1080, 27), (1080, 19)]
        );
        // Independent check: every point lies on or under the hull's piecewise line.
        for p in &points {
            let under = hull.windows(2).any(|w| {
                let (a, b) = (&points[w[0]], &points[w[1]]);
                p.kbps >= a.kbps
                    && p.kbps <= b.kbps
                    && p.score
                        <= a.score
                            + (b.score - a.score) * (p.kbps - a.kbps) / (b.kbps - a.kbps)
                            + 1e-9
            }) || p.kbps > points[hull[hull.len() - 1]].kbps;
            assert!(under, "{p:?} is above the hull");
        }
    }

    #[test]
    fn rungs_stop_at_the_top_score_and_spread_below_it() {
        let points = grid();
        let hull = upper_hull(&points);
        let pick = Pick {
            rungs: 3,
            min_score: 60.0,
            top_score: 93.0,
        };
        let chosen = choose(&points, &hull, pick);
        let got: Vec<(u32, u32)> = chosen
            .iter()
            .map(|i| (points[*i].height, points[*i].crf))
            .collect();
        // 1080p CRF 19 (98) is past the top; 240p CRF 35 is under the floor.
        assert_eq!(got, vec![(240, 27), (480, 27), (1080, 27)]);
    }

    #[test]
    fn one_rung_per_profile_and_never_more_than_the_hull() {
        let points = grid();
        let hull = upper_hull(&points);
        let pick = Pick {
            rungs: 8,
            min_score: 0.0,
            top_score: 100.0,
        };
        let chosen = choose(&points, &hull, pick);
        let mut profiles: Vec<&str> = chosen.iter().map(|i| points[*i].profile.as_str()).collect();
        profiles.dedup();
        assert_eq!(profiles.len(), chosen.len());
        assert_eq!(chosen.len(), 3);
        assert!(chosen.iter().all(|i| hull.contains(i)));
    }

    #[test]
    fn nothing_to_choose_from_nothing() {
        assert!(upper_hull(&[]).is_empty());
        let pick = Pick {
            rungs: 2,
            min_score: 0.0,
            top_score: 90.0,
        };
        assert!(choose(&[], &[], pick).is_empty());
        // Everything below the floor: still the best point, so the title gets a rung.
        let points = vec![pt("a", 144, 30, 50.0, 10.0), pt("b", 240, 30, 90.0, 20.0)];
        let hull = upper_hull(&points);
        let chosen = choose(
            &points,
            &hull,
            Pick {
                rungs: 2,
                min_score: 50.0,
                top_score: 90.0,
            },
        );
        assert_eq!(chosen, vec![1]);
    }
}
