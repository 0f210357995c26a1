//! Jobs and tasks in sled: every write checks the stored status may become the new one.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::{decode, encode, tx_error, SledRepo};
use crate::store::records::*;
use crate::store::{JobStore, StoreError, TaskStore};

pub(super) fn index_key(job: &JobRecord) -> Vec<u8> {
    let mut key = index_prefix(&job.input_md5, &job.out_dir);
    key.extend_from_slice(job.id.as_str().as_bytes());
    key
}

fn index_prefix(md5: &str, out_dir: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(md5.len() + out_dir.len() + 2);
    key.extend_from_slice(md5.as_bytes());
    key.push(0);
    key.extend_from_slice(out_dir.as_bytes());
    key.push(0);
    key
}

/// Keeps `active` in step with a job's status: recovery reads only what is there.
pub(super) fn mark_active(active: &sled::Tree, job: &JobRecord) -> Result<(), StoreError> {
    match job.status {
        JobStatus::Running | JobStatus::Queued => active.insert(job.id.as_str(), &[])?,
        _ => active.remove(job.id.as_str())?,
    };
    Ok(())
}

fn task_key(job: &JobId, index: u32) -> String {
    format!("{job}/{index:06}")
}

fn job_refused(job: &JobRecord, from: JobStatus) -> StoreError {
    StoreError::IllegalTransition {
        what: format!("job {}", job.id),
        from: from.as_str(),
        to: job.status.as_str(),
    }
}

fn task_refused(task: &TaskRecord, from: TaskStatus) -> StoreError {
    StoreError::IllegalTransition {
        what: format!("task {}", task.id()),
        from: from.as_str(),
        to: task.status.as_str(),
    }
}

/// Replaces `key`'s record with `new` if `allowed(old)` says so, atomically (CAS loop).
fn checked_swap<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    new: &[u8],
    allowed: impl Fn(Option<T>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    loop {
        let old = tree.get(key)?;
        allowed(old.as_deref().map(decode).transpose()?)?;
        if tree.compare_and_swap(key, old, Some(new))?.is_ok() {
            return Ok(());
        }
    }
}

impl JobStore for SledRepo {
    fn begin_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.write_job(job, |from| match from {
            Some(from) if from == JobStatus::Running || !from.may_become(job.status) => {
                Err(job_refused(job, from))
            }
            _ => Ok(()),
        })?;
        self.jobs_by_input.insert(index_key(job), &[])?;
        Ok(())
    }

    fn plan_job(&self, job: &JobRecord, tasks: &[TaskRecord]) -> Result<(), StoreError> {
        let job_bytes = encode(job)?;
        let task_bytes: Vec<(String, Vec<u8>)> = tasks
            .iter()
            .map(|t| Ok((task_key(&t.job, t.index), encode(t)?)))
            .collect::<Result<_, StoreError>>()?;
        // Old tasks of a resumed job go in the same transaction as the new plan.
        let stale: Vec<sled::IVec> = self
            .tasks
            .scan_prefix(format!("{}/", job.id))
            .keys()
            .collect::<Result<_, _>>()?;
        (&self.jobs, &self.tasks)
            .transaction(|(jobs, task_tree)| {
                let stored = jobs.get(job.id.as_str().as_bytes())?;
                let from = match stored.as_deref().map(decode::<JobRecord>) {
                    Some(Ok(j)) => j.status,
                    Some(Err(e)) => return Err(ConflictableTransactionError::Abort(e)),
                    None => {
                        return Err(ConflictableTransactionError::Abort(StoreError::Missing {
                            what: format!("job {}", job.id),
                        }))
                    }
                };
                if from != JobStatus::Running || job.status != JobStatus::Running {
                    return Err(ConflictableTransactionError::Abort(job_refused(job, from)));
                }
                for k in &stale {
                    task_tree.remove(k)?;
                }
                jobs.insert(job.id.as_str().as_bytes(), job_bytes.as_slice())?;
                for (k, v) in &task_bytes {
                    task_tree.insert(k.as_bytes(), v.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_error)
    }

    fn save_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.write_job(job, |from| match from {
            None => Err(StoreError::Missing {
                what: format!("job {}", job.id),
            }),
            Some(from) if !from.may_become(job.status) => Err(job_refused(job, from)),
            Some(_) => Ok(()),
        })
    }

    fn get_job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Self::get(&self.jobs, id.as_str())
    }

    fn list_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Self::scan(&self.jobs, "")
    }

    fn recent_jobs(
        &self,
        before: Option<&JobId>,
        limit: usize,
        status: Option<JobStatus>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let range = match before {
            Some(id) => self.jobs.range(..id.as_str().as_bytes()),
            None => self.jobs.range::<&[u8], _>(..),
        };
        let mut out = Vec::new();
        for item in range.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let job: JobRecord = decode(&v)?;
            if status.is_none_or(|s| s == job.status) {
                out.push(job);
            }
        }
        Ok(out)
    }

    fn jobs_for_input(&self, md5: &str, out_dir: &str) -> Result<Vec<JobRecord>, StoreError> {
        self.indexed_jobs(&index_prefix(md5, out_dir))
    }

    fn jobs_for_content(&self, md5: &str) -> Result<Vec<JobRecord>, StoreError> {
        let mut prefix = md5.as_bytes().to_vec();
        prefix.push(0);
        self.indexed_jobs(&prefix)
    }
}

impl SledRepo {
    /// The jobs whose index key starts with `prefix` (the job id follows the last `\0`).
    fn indexed_jobs(&self, prefix: &[u8]) -> Result<Vec<JobRecord>, StoreError> {
        let mut jobs = Vec::new();
        for key in self.jobs_by_input.scan_prefix(prefix).keys() {
            let key = key?;
            let start = key.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
            let id = String::from_utf8_lossy(&key[start..]).into_owned();
            if let Some(job) = self.get_job(&JobId(id))? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Writes a job and its place in the `active` index in one transaction, if `allowed`
    /// accepts the stored status: a crash never leaves a running job that recovery misses.
    fn write_job(
        &self,
        job: &JobRecord,
        allowed: impl Fn(Option<JobStatus>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let bytes = encode(job)?;
        let key = job.id.as_str().as_bytes();
        let active = matches!(job.status, JobStatus::Running | JobStatus::Queued);
        (&self.jobs, &self.active)
            .transaction(|(jobs, act)| {
                let from = match jobs.get(key)? {
                    Some(old) => Some(
                        decode::<JobRecord>(&old)
                            .map_err(ConflictableTransactionError::Abort)?
                            .status,
                    ),
                    None => None,
                };
                allowed(from).map_err(ConflictableTransactionError::Abort)?;
                jobs.insert(key, bytes.as_slice())?;
                match active {
                    true => act.insert(key, &[])?,
                    false => act.remove(key)?,
                };
                Ok(())
            })
            .map_err(tx_error)
    }
}

impl TaskStore for SledRepo {
    fn save_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let bytes = encode(task)?;
        let key = task_key(&task.job, task.index);
        checked_swap(&self.tasks, key.as_bytes(), &bytes, |old| {
            match old.map(|o: TaskRecord| o.status) {
                None => Err(StoreError::Missing {
                    what: format!("task {}", task.id()),
                }),
                Some(from) if !from.may_become(task.status) => Err(task_refused(task, from)),
                Some(_) => Ok(()),
            }
        })
    }

    fn tasks_of(&self, job: &JobId) -> Result<Vec<TaskRecord>, StoreError> {
        Self::scan(&self.tasks, &format!("{job}/"))
    }

    fn finish_task(&self, task: &TaskRecord, cached: &[CacheRecord]) -> Result<(), StoreError> {
        let task_bytes = encode(task)?;
        let entries: Vec<(String, Vec<u8>)> = cached
            .iter()
            .map(|c| Ok((c.key.clone(), encode(c)?)))
            .collect::<Result<_, StoreError>>()?;
        let key = task_key(&task.job, task.index);
        (&self.tasks, &self.cache)
            .transaction(|(tasks, cache)| {
                if let Some(old) = tasks.get(key.as_bytes())? {
                    let from = decode::<TaskRecord>(&old)
                        .map_err(ConflictableTransactionError::Abort)?
                        .status;
                    if !from.may_become(task.status) {
                        return Err(ConflictableTransactionError::Abort(task_refused(
                            task, from,
                        )));
                    }
                }
                tasks.insert(key.as_bytes(), task_bytes.as_slice())?;
                for (k, v) in &entries {
                    cache.insert(k.as_bytes(), v.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_error)?;
        // Finished work must survive a crash the moment it is reported done.
        self.db.flush()?;
        Ok(())
    }
}
