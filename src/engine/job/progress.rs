//! A job's progress: each task's fraction weighted by its chunk's length and its rungs'
//! cost, reported as events and as webhook milestones (25, 50, 75 %).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::json;

use super::JobCtx;
use crate::engine::notify::MILESTONES;
use crate::engine::plan::rungs::rung_cost;
use crate::engine::plan::JobPlan;
use crate::engine::Event;
use crate::workflow::schema::WebhookEvent;

pub(super) struct ProgressBook {
    weights: Vec<f64>,
    total: f64,
    done: Mutex<Vec<f64>>,
    milestones_sent: AtomicUsize,
}

impl ProgressBook {
    pub fn new(_ctx: &JobCtx<'_>, plan: &JobPlan) -> ProgressBook {
        let weights: Vec<f64> = plan
            .tasks
            .iter()
            .map(|t| {
                plan.chunks[t.chunk].duration
                    * t.rungs
                        .iter()
                        .map(|r| rung_cost(&plan.rungs[*r]))
                        .sum::<f64>()
            })
            .collect();
        ProgressBook {
            total: weights.iter().sum::<f64>().max(1e-9),
            done: Mutex::new(vec![0.0; weights.len()]),
            weights,
            milestones_sent: AtomicUsize::new(0),
        }
    }

    /// Task `index` is `fraction` done.
    pub fn report(&self, ctx: &JobCtx<'_>, index: usize, fraction: f64) {
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        if let (Some(slot), Some(w)) = (done.get_mut(index), self.weights.get(index)) {
            *slot = fraction * w;
        }
        let job_fraction = done.iter().sum::<f64>() / self.total;
        drop(done);
        ctx.engine.emit(Event::JobProgress {
            job: ctx.id.clone(),
            fraction: job_fraction,
        });
        let due = MILESTONES
            .iter()
            .filter(|m| job_fraction * 100.0 >= f64::from(**m))
            .count();
        let before = self.milestones_sent.fetch_max(due, Ordering::Relaxed);
        for m in &MILESTONES[before.min(due)..due] {
            let mut body = ctx.event_body();
            if let serde_json::Value::Object(b) = &mut body {
                b.insert("progress".into(), json!(m));
            }
            ctx.engine
                .notify(&ctx.workflow.webhooks, WebhookEvent::Progress, body);
        }
    }
}
