//! One watched file's way through the daemon: admitted once (by fingerprint), known by its
//! content (hashed once, remembered by fingerprint), run as a job unless that content was
//! handled already, and its record updated with the outcome (bounded attempts, then parked).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::admission::Fingerprint;
use super::{fingerprint_key, log_store, Daemon};
use crate::engine::JobOptions;
use crate::media::hash::digest_file;
use crate::store::{now_ms, FileRecord, FileStatus, JobId, JobStatus};

impl Daemon {
    /// True when this exact file state is being processed or its content is settled
    /// (done, skipped or parked), so it needs no settling and no job.
    pub(super) fn known(&self, index: usize, print: &Fingerprint) -> bool {
        if self.in_flight.lock().is_ok_and(|f| f.contains(print)) {
            return true;
        }
        let Ok(Some(content)) = self.repo.seen(&fingerprint_key(print)) else {
            return false;
        };
        matches!(
            self.repo.get_file(&self.entries[index].name, &content),
            Ok(Some(FileRecord {
                status: FileStatus::Done | FileStatus::Skipped | FileStatus::Parked,
                ..
            }))
        )
    }

    pub(super) fn admit(self: &Arc<Self>, index: usize, path: PathBuf, print: Fingerprint) {
        if let Ok(mut f) = self.in_flight.lock() {
            if !f.insert(print) {
                return;
            }
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let daemon = self.clone();
        let handle = tokio::spawn(async move {
            let priority = daemon.entries[index].watch.priority;
            let _slot = daemon.job_slot(priority).await;
            daemon.queued.fetch_sub(1, Ordering::Relaxed);
            if !daemon.admitting.is_cancelled() {
                // A panic here must not take the daemon down: it is caught and logged.
                let d = daemon.clone();
                let p = path.clone();
                let work = tokio::spawn(async move { d.process(index, &p, print).await });
                if let Err(e) = work.await {
                    tracing::error!(file = %path.display(), error = %e, "processing a file failed unexpectedly; it will be tried again at the next scan");
                }
            }
            if let Ok(mut f) = daemon.in_flight.lock() {
                f.remove(&print);
            }
        });
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|h| !h.is_finished());
            t.push(handle);
        }
    }

    /// Identity first (content hash, remembered by fingerprint), then a job if needed.
    async fn process(&self, index: usize, path: &Path, print: Fingerprint) {
        let entry = &self.entries[index];
        let file = path.display().to_string();
        let key = fingerprint_key(&print);
        let mut digest = None;
        let seen = match self.repo.seen(&key) {
            Ok(seen) => seen,
            Err(e) => {
                tracing::error!(%file, error = %e, "state store unreadable; will look again at the next scan");
                return;
            }
        };
        let content = match seen {
            Some(c) => c,
            None => {
                let owned = path.to_path_buf();
                match tokio::task::spawn_blocking(move || digest_file(&owned)).await {
                    Ok(Ok(d)) => {
                        let c = format!("{}-{}", d.size, d.md5);
                        log_store(&file, self.repo.put_seen(&key, &c));
                        digest = Some(d);
                        c
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%file, error = %e, "cannot read; will look again at the next scan");
                        return;
                    }
                    Err(_) => return,
                }
            }
        };
        // Decided by content, one file at a time: a twin waits here, then finds it done.
        let claim = self.claim_content(&entry.name, &content);
        let _held = claim.lock.lock().await;
        let existing = match self.repo.get_file(&entry.name, &content) {
            Ok(existing) => existing,
            Err(e) => {
                tracing::error!(%file, error = %e, "state store unreadable; will look again at the next scan");
                return;
            }
        };
        let mut record = existing.clone().unwrap_or(FileRecord {
            content: content.clone(),
            workflow: entry.name.clone(),
            paths: Vec::new(),
            status: FileStatus::Queued,
            job: None,
            attempts: 0,
            reason: None,
            updated_ms: now_ms(),
        });
        if !record.paths.contains(&file) {
            record.paths.push(file.clone());
        }
        if let Some(FileRecord {
            status: status @ (FileStatus::Done | FileStatus::Skipped | FileStatus::Parked),
            job,
            ..
        }) = &existing
        {
            let job = job.as_ref().map_or("-", JobId::as_str);
            tracing::info!(%file, job, ?status, "same content as a file already handled; not processed again");
            record.updated_ms = now_ms();
            log_store(&file, self.repo.put_file(&record));
            return;
        }
        record.status = FileStatus::Queued;
        log_store(&file, self.repo.put_file(&record));
        let wf = entry.workflow.current();
        let span = tracing::info_span!("file", file = %file, workflow = %entry.name);
        let outcome = tracing::Instrument::instrument(
            async {
                tracing::info!("taking the file");
                let options = JobOptions {
                    known: digest,
                    priority: entry.watch.priority,
                    ..JobOptions::default()
                };
                let o = self
                    .engine
                    .run_file(path, &wf, &entry.output, options)
                    .await;
                tracing::info!(
                    job = o.id.as_ref().map_or("-", JobId::as_str),
                    status = o.status.as_str(),
                    reason = o.reason.as_deref().unwrap_or(""),
                    elapsed_s = o.elapsed_s,
                    "job finished"
                );
                o
            },
            span,
        )
        .await;
        record.job = outcome.id.clone().or(record.job);
        record.updated_ms = now_ms();
        record.reason = outcome.reason.clone();
        record.status = match outcome.status {
            JobStatus::Succeeded => FileStatus::Done,
            JobStatus::Skipped => FileStatus::Skipped,
            // Stopped by shutdown: it resumes at the next start.
            JobStatus::Interrupted => FileStatus::Queued,
            JobStatus::Cancelled => {
                record.reason =
                    Some("cancelled through the API; `spool retry` to try again".into());
                FileStatus::Parked
            }
            // A full disk is not the file's fault: no attempt is counted, and nothing is
            // taken until space returns.
            JobStatus::Failed if outcome.waiting_for_space.is_some() => {
                if let Some(place) = &outcome.waiting_for_space {
                    self.wait_for_space(place);
                }
                FileStatus::Failed
            }
            _ => {
                record.attempts += 1;
                if record.attempts >= entry.watch.max_attempts {
                    tracing::warn!(%file, attempts = record.attempts, reason = ?record.reason, "parked: `spool retry` brings it back");
                    FileStatus::Parked
                } else {
                    FileStatus::Failed
                }
            }
        };
        log_store(&file, self.repo.put_file(&record));
        log_store(&file, self.repo.flush());
    }

    fn claim_content(&self, workflow: &str, content: &str) -> ContentClaim<'_> {
        let key = format!("{workflow}/{content}");
        let lock = match self.contents.lock() {
            Ok(mut map) => map.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        ContentClaim {
            daemon: self,
            key,
            lock,
        }
    }
}

/// A hold on one content's lock; the map forgets the lock when its last holder goes.
struct ContentClaim<'a> {
    daemon: &'a Daemon,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for ContentClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.daemon.contents.lock() {
            // The map's reference and this one: nobody else waits for it.
            if Arc::strong_count(&self.lock) <= 2 {
                map.remove(&self.key);
            }
        }
    }
}
