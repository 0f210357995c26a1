//! The coordinator's rounds: notice Redis losing its data (publish everything again),
//! publish new tasks (or adopt the entries a restarted coordinator left), take back the
//! deliveries whose worker stopped renewing its lease, and count live workers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamRangeReply};
use tokio_util::sync::CancellationToken;

use super::coordinator::Shared;
use super::{ensure_group, Envelope, RemoteError, GROUP, HEARTBEAT};
use crate::engine::metrics::Metrics;
use crate::engine::queue::TaskEvent;
use crate::engine::task::TaskError;
use crate::store::TaskId;

pub(super) async fn run(s: Arc<Shared>, stop: CancellationToken) {
    let tick = (s.settings.lease / 4).clamp(Duration::from_millis(250), Duration::from_secs(2));
    let mut last_reclaim = Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = s.nudge.notified() => {}
            _ = stop.cancelled() => return,
        }
        let reclaim = last_reclaim.elapsed() >= tick;
        match round(&s, reclaim).await {
            Ok(()) if failing => {
                tracing::info!("Redis answers again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "Redis does not answer; tasks wait on this coordinator");
                failing = true;
            }
            Err(_) => {}
        }
        if reclaim {
            last_reclaim = Instant::now();
        }
    }
}

async fn round(s: &Shared, reclaim: bool) -> Result<(), RemoteError> {
    let mut conn = s.conn.clone();
    check_epoch(s, &mut conn).await?;
    publish(s, &mut conn).await?;
    if reclaim {
        take_back_stale(s, &mut conn).await?;
        count_workers(s, &mut conn).await?;
    }
    Ok(())
}

/// Redis without our epoch has lost what it held (a restart without persistence): the
/// group is made again and every task in flight goes out again.
async fn check_epoch(s: &Shared, conn: &mut ConnectionManager) -> Result<(), RemoteError> {
    let epoch: Option<String> = redis::cmd("GET")
        .arg(s.keys.epoch())
        .query_async(conn)
        .await?;
    if epoch.as_deref() == Some(s.epoch.as_str()) {
        return Ok(());
    }
    ensure_group(conn, &s.keys).await?;
    let _: () = redis::cmd("SET")
        .arg(s.keys.epoch())
        .arg(&s.epoch)
        .query_async(conn)
        .await?;
    let n = match s.flights.lock() {
        Ok(mut flights) => flights
            .values_mut()
            .map(|f| {
                f.entry = None;
                f.worker = None;
            })
            .count(),
        Err(_) => 0,
    };
    s.reread.store(true, Ordering::Relaxed);
    let gates: Vec<String> = s
        .closed
        .lock()
        .map(|c| c.iter().cloned().collect())
        .unwrap_or_default();
    for gate in gates {
        s.tell_workers(&gate);
    }
    tracing::warn!(
        tasks = n,
        found = ?epoch,
        "Redis lost the queue (restarted empty, or another coordinator took this prefix): every task in flight is published again"
    );
    Ok(())
}

/// The tasks not yet on the stream, as envelopes; tasks of a closed schedule wait.
fn unpublished(s: &Shared) -> Vec<(TaskId, Envelope)> {
    let closed = s.closed.lock().map(|c| c.clone()).unwrap_or_default();
    let Ok(flights) = s.flights.lock() else {
        return Vec::new();
    };
    flights
        .iter()
        .filter(|(_, f)| f.entry.is_none() && !closed.contains(&f.task.gate))
        .map(|(id, f)| {
            (
                id.clone(),
                Envelope {
                    task: f.task.clone(),
                    delivery: f.delivery,
                    lease_ms: s.settings.lease.as_millis() as u64,
                },
            )
        })
        .collect()
}

/// With a shared root, the task's chunk is placed there before the task goes out (a
/// worker that finds it missing or wrong downloads it instead).
async fn share_chunk(s: &Shared, envelope: &Envelope) {
    let Some(root) = &s.root else { return };
    let (src, dest) = (
        envelope.task.local.input.clone(),
        root.chunk(&envelope.task.input.sha256),
    );
    let link = s.settings.shared_private;
    let placed = tokio::task::spawn_blocking(move || super::shared::place(&src, &dest, link)).await;
    if let Ok(Err(e)) = placed {
        tracing::warn!(task = %envelope.task.id, error = %e, "the chunk could not be placed in the shared root; workers download it");
    }
}

async fn publish(s: &Shared, conn: &mut ConnectionManager) -> Result<(), RemoteError> {
    for (id, envelope) in unpublished(s) {
        // Its result may be waiting already (it came while this coordinator was down).
        let waiting: Option<String> = redis::cmd("GET")
            .arg(s.keys.result(&id))
            .query_async(conn)
            .await?;
        if let Some(report) = waiting.and_then(|j| serde_json::from_str(&j).ok()) {
            super::reports::handle(s, report).await;
            if !s.flights.lock().is_ok_and(|f| f.contains_key(&id)) {
                continue;
            }
        }
        share_chunk(s, &envelope).await;
        let entry = match adopt(s, conn, &id, &envelope).await? {
            Some(entry) => entry,
            None => {
                let json = serde_json::to_string(&envelope)
                    .map_err(|e| RemoteError::Malformed(e.to_string()))?;
                let entry: String = redis::cmd("XADD")
                    .arg(s.keys.tasks())
                    .arg("*")
                    .arg("task")
                    .arg(json)
                    .query_async(conn)
                    .await?;
                let _: () = redis::cmd("HSET")
                    .arg(s.keys.entries())
                    .arg(id.to_string())
                    .arg(&entry)
                    .query_async(conn)
                    .await?;
                entry
            }
        };
        let placed = match s.flights.lock() {
            Ok(mut flights) => match flights.get_mut(&id) {
                Some(f) if f.entry.is_none() => {
                    f.entry = Some(entry.clone());
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        if !placed {
            // Answered (cancelled) while it was being published.
            let _: () = redis::cmd("XDEL")
                .arg(s.keys.tasks())
                .arg(&entry)
                .query_async(conn)
                .await?;
        }
    }
    Ok(())
}

/// The entry an earlier coordinator published for the same task, if the stream still has
/// it (a worker may be encoding it right now).
async fn adopt(
    s: &Shared,
    conn: &mut ConnectionManager,
    id: &TaskId,
    envelope: &Envelope,
) -> Result<Option<String>, RemoteError> {
    let known: Option<String> = redis::cmd("HGET")
        .arg(s.keys.entries())
        .arg(id.to_string())
        .query_async(conn)
        .await?;
    let Some(entry) = known else {
        return Ok(None);
    };
    let found: StreamRangeReply = redis::cmd("XRANGE")
        .arg(s.keys.tasks())
        .arg(&entry)
        .arg(&entry)
        .query_async(conn)
        .await?;
    let theirs: Option<Envelope> = found
        .ids
        .first()
        .and_then(|e| e.get::<String>("task"))
        .and_then(|j| serde_json::from_str(&j).ok());
    let same = theirs.is_some_and(|t| {
        t.task.input.sha256 == envelope.task.input.sha256
            && t.task.rungs.iter().map(|r| &r.settings).eq(envelope
                .task
                .rungs
                .iter()
                .map(|r| &r.settings))
    });
    if same {
        tracing::info!(task = %id, %entry, "adopted the task entry an earlier coordinator published");
    }
    Ok(same.then_some(entry))
}

/// Deliveries idle longer than the lease belong to a worker that died or lost its link:
/// taken back, and published again (or failed, past the delivery limit).
async fn take_back_stale(s: &Shared, conn: &mut ConnectionManager) -> Result<(), RemoteError> {
    let lease_ms = s.settings.lease.as_millis() as u64;
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(s.keys.tasks())
        .arg(GROUP)
        .arg(format!("coordinator-{}", s.epoch))
        .arg(lease_ms)
        .arg("0-0")
        .arg("COUNT")
        .arg(100)
        .query_async(conn)
        .await?;
    for stale in reply.claimed {
        let _: () = redis::pipe()
            .cmd("XACK")
            .arg(s.keys.tasks())
            .arg(GROUP)
            .arg(&stale.id)
            .ignore()
            .cmd("XDEL")
            .arg(s.keys.tasks())
            .arg(&stale.id)
            .ignore()
            .query_async(conn)
            .await?;
        requeue(s, &stale.id);
    }
    s.nudge.notify_one();
    Ok(())
}

/// The flight whose entry went stale is published again, or fails past the limit.
fn requeue(s: &Shared, entry: &str) {
    let failed = {
        let Ok(mut flights) = s.flights.lock() else {
            return;
        };
        let Some((id, f)) = flights
            .iter_mut()
            .find(|(_, f)| f.entry.as_deref() == Some(entry))
        else {
            tracing::debug!(%entry, "dropped a stale entry no task waits for");
            return;
        };
        f.lost.push(format!(
            "delivery {} on worker {} lost its lease (no renewal for {:.0} s)",
            f.delivery,
            f.worker.as_deref().unwrap_or("(not yet reported)"),
            s.settings.lease.as_secs_f64()
        ));
        tracing::warn!(task = %id, delivery = f.delivery, worker = ?f.worker, "a worker went quiet: its task goes out again");
        Metrics::add(&s.metrics.remote_redelivered, 1);
        f.delivery += 1;
        f.entry = None;
        f.worker = None;
        (f.delivery > s.settings.max_deliveries).then(|| (id.clone(), f.lost.clone()))
    };
    if let Some((id, lost)) = failed {
        if let Some(flight) = s.land(&id) {
            let _ = flight
                .events
                .send(TaskEvent::Finished(Err(TaskError::Attempts(lost))));
        }
    }
}

async fn count_workers(s: &Shared, conn: &mut ConnectionManager) -> Result<(), RemoteError> {
    let gone_before = super::now_ms().saturating_sub(3 * HEARTBEAT.as_millis() as u64);
    let (_, alive): ((), u64) = redis::pipe()
        .cmd("ZREMRANGEBYSCORE")
        .arg(s.keys.workers())
        .arg("-inf")
        .arg(gone_before)
        .cmd("ZCARD")
        .arg(s.keys.workers())
        .query_async(conn)
        .await?;
    Metrics::set(&s.metrics.workers_alive, alive);
    Ok(())
}
