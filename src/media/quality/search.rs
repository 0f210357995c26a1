//! The CRF search: given the probes so far (CRF → measured score), which CRF to probe next,
//! or which to choose. Interpolated between a passing and a failing probe, extrapolated with
//! the measured (else the usual) slope when all probes fall on one side. Pure.

use serde::{Deserialize, Serialize};

/// One probe encode's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub crf: u32,
    /// The score searched on (the mean over the frames scored).
    pub score: f64,
    /// Bytes of the probe encode.
    pub bytes: u64,
}

/// What is searched for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Search {
    pub target: f64,
    /// A probe scoring in `[target, target + tolerance]` ends the search.
    pub tolerance: f64,
    pub min_crf: u32,
    pub max_crf: u32,
    /// The first CRF probed.
    pub start: u32,
    pub max_probes: usize,
    /// How much the score usually falls per CRF step near the target (used until two probes
    /// measure it).
    pub slope: f64,
}

/// Why the search chose what it chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A probe scored within the tolerance above the target.
    OnTarget,
    /// Neighbouring CRFs straddle the target: the passing one.
    Bracketed,
    /// Even `max_crf` scores above the target.
    AtMaxCrf,
    /// Even `min_crf` scores below the target: the best that is allowed.
    Unreachable,
    /// The probe limit was reached: the highest passing CRF (or the best score).
    ProbeLimit,
}

/// The search's answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub crf: u32,
    /// The chosen probe's measured score.
    pub score: f64,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Probe(u32),
    Done(Choice),
}

impl Search {
    /// Where a choice aims: inside the tolerance window, not on its edge.
    fn aim(&self) -> f64 {
        self.target + self.tolerance / 2.0
    }

    /// The next step after `probes` (in any order).
    pub fn next(&self, probes: &[Probe]) -> Next {
        if probes.is_empty() {
            return Next::Probe(self.start.clamp(self.min_crf, self.max_crf));
        }
        let passing = probes
            .iter()
            .filter(|p| p.score >= self.target)
            .max_by_key(|p| p.crf);
        let failing = probes
            .iter()
            .filter(|p| p.score < self.target)
            .min_by_key(|p| p.crf);
        let done = |p: &Probe, reason| {
            Next::Done(Choice {
                crf: p.crf,
                score: p.score,
                reason,
            })
        };
        if let Some(p) = passing.filter(|p| p.score <= self.target + self.tolerance) {
            return done(p, Reason::OnTarget);
        }
        let wanted = match (passing, failing) {
            (Some(g), Some(b)) if b.crf <= g.crf + 1 => return done(g, Reason::Bracketed),
            (Some(g), Some(b)) => self.between(g, b),
            (Some(g), None) if g.crf >= self.max_crf => return done(g, Reason::AtMaxCrf),
            (Some(g), None) => {
                let step = ((g.score - self.aim()) / self.slope_of(probes)).round() as u32;
                (g.crf + step.max(1)).min(self.max_crf)
            }
            (None, Some(b)) if b.crf <= self.min_crf => return done(b, Reason::Unreachable),
            (None, Some(b)) => {
                let step = ((self.aim() - b.score) / self.slope_of(probes)).round() as u32;
                b.crf.saturating_sub(step.max(1)).max(self.min_crf)
            }
            (None, None) => return Next::Probe(self.start),
        };
        let probed = probes.iter().any(|p| p.crf == wanted);
        if probed || probes.len() >= self.max_probes {
            return match passing.or(failing) {
                Some(p) => done(passing.unwrap_or(p), Reason::ProbeLimit),
                None => Next::Probe(wanted),
            };
        }
        Next::Probe(wanted)
    }

    /// The CRF where the line through a passing and a failing probe meets the aim, strictly
    /// between them.
    fn between(&self, g: &Probe, b: &Probe) -> u32 {
        let span = (b.crf - g.crf) as f64;
        let fall = (g.score - b.score).max(1e-9);
        let at = g.crf as f64 + (g.score - self.aim()) / fall * span;
        // Down, toward the passing side: a miss costs another probe, a bit more is harmless.
        (at.floor() as u32).clamp(g.crf + 1, b.crf - 1)
    }

    /// The fall per CRF step measured by the two probes nearest the target, if they measure
    /// a fall; else the usual slope.
    fn slope_of(&self, probes: &[Probe]) -> f64 {
        let mut near: Vec<&Probe> = probes.iter().collect();
        near.sort_by(|a, b| {
            (a.score - self.target)
                .abs()
                .total_cmp(&(b.score - self.target).abs())
        });
        match near.as_slice() {
            [a, b, ..] if a.crf != b.crf => {
                let s = (a.score - b.score) / (b.crf as f64 - a.crf as f64);
                if s > 0.0 {
                    s
                } else {
                    self.slope
                }
            }
            _ => self.slope,
        }
    }

    /// Runs the search against `score_at` (for tests and the benchmark's model).
    pub fn run(&self, mut score_at: impl FnMut(u32) -> f64) -> (Choice, Vec<Probe>) {
        let mut probes = Vec::new();
        loop {
            match self.next(&probes) {
                Next::Done(c) => return (c, probes),
                Next::Probe(crf) => probes.push(Probe {
                    crf,
                    score: score_at(crf),
                    bytes: 0,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(target: f64) -> Search {
        Search {
            target,
            tolerance: 1.0,
            min_crf: 15,
            max_crf: 40,
            start: 23,
            max_probes: 4,
            slope: 1.5,
        }
    }

    /// A falling, slightly curved score like VMAF's over CRF.
    fn curve(base: f64, slope: f64) -> impl Fn(u32) -> f64 {
        move |c| (base - slope * (c as f64 - 15.0) - 0.02 * (c as f64 - 15.0).powi(2)).min(100.0)
    }

    #[test]
    fn easy_and_hard_content_get_different_crfs_within_four_probes() {
        for (base, slope) in [(99.0, 0.6), (97.0, 1.2), (90.0, 1.0), (99.5, 2.5)] {
            let f = curve(base, slope);
            let (choice, probes) = search(93.0).run(&f);
            assert!(probes.len() <= 4, "{base}/{slope}: {probes:?}");
            if f(15) < 93.0 {
                assert_eq!((choice.crf, choice.reason), (15, Reason::Unreachable));
                continue;
            }
            assert!(
                choice.score >= 93.0,
                "{base}/{slope}: {choice:?} {probes:?}"
            );
            // The best passing CRF, or one step below it.
            let best = (15..=40).filter(|c| f(*c) >= 93.0).max().unwrap_or(15);
            assert!(
                choice.crf + 2 >= best,
                "{base}/{slope}: {choice:?}, best {best}, {probes:?}"
            );
        }
        let easy = search(93.0).run(curve(99.0, 0.6)).0.crf;
        let hard = search(93.0).run(curve(97.0, 1.2)).0.crf;
        assert!(easy >= hard + 3, "easy {easy} hard {hard}");
    }

    #[test]
    fn bounds_hold_and_say_why() {
        let (c, _) = search(50.0).run(|_| 99.0);
        assert_eq!((c.crf, c.reason), (40, Reason::AtMaxCrf));
        let (c, p) = search(99.9).run(|crf| 95.0 - crf as f64 * 0.1);
        assert_eq!((c.crf, c.reason), (15, Reason::Unreachable));
        assert!(p.len() <= 4);
    }

    #[test]
    fn a_score_that_does_not_fall_never_loops() {
        let (c, p) = search(93.0).run(|crf| if crf > 23 { 80.0 } else { 99.0 });
        assert!(p.len() <= 4, "{p:?}");
        assert_eq!(c.crf, 23);
    }
}
