//! The sled implementation of [`Repo`].

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::records::*;
use super::{Repo, StoreError};

pub struct SledRepo {
    db: sled::Db,
    jobs: sled::Tree,
    tasks: sled::Tree,
    cache: sled::Tree,
    hooks: sled::Tree,
    workflows: sled::Tree,
    files: sled::Tree,
    seen: sled::Tree,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    record: T,
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(&Envelope {
        v: RECORD_VERSION,
        record,
    })?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let env: Envelope<serde_json::Value> = serde_json::from_slice(bytes)?;
    if env.v != RECORD_VERSION {
        return Err(StoreError::Version(env.v));
    }
    Ok(serde_json::from_value(env.record)?)
}

fn task_key(job: &str, index: u32) -> String {
    format!("{job}/{index:06}")
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl SledRepo {
    pub fn open(dir: &Path) -> Result<SledRepo, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| StoreError::open(dir, e))?;
        Ok(SledRepo {
            jobs: db.open_tree("jobs")?,
            tasks: db.open_tree("tasks")?,
            cache: db.open_tree("cache")?,
            hooks: db.open_tree("hooks")?,
            workflows: db.open_tree("workflows")?,
            files: db.open_tree("files")?,
            seen: db.open_tree("seen")?,
            db,
        })
    }

    fn scan<T: DeserializeOwned>(tree: &sled::Tree, prefix: &str) -> Result<Vec<T>, StoreError> {
        tree.scan_prefix(prefix)
            .values()
            .map(|v| decode(&v?))
            .collect()
    }
}

impl Repo for SledRepo {
    fn create_job(&self, job: &JobRecord, tasks: &[TaskRecord]) -> Result<(), StoreError> {
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
                for k in &stale {
                    task_tree.remove(k)?;
                }
                jobs.insert(job.id.as_bytes(), job_bytes.as_slice())?;
                for (k, v) in &task_bytes {
                    task_tree.insert(k.as_bytes(), v.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error)
    }

    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.jobs.insert(job.id.as_bytes(), encode(job)?)?;
        Ok(())
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.jobs
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn list_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Self::scan(&self.jobs, "")
    }

    fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.tasks
            .insert(task_key(&task.job, task.index).as_bytes(), encode(task)?)?;
        Ok(())
    }

    fn tasks_of(&self, job: &str) -> Result<Vec<TaskRecord>, StoreError> {
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
                tasks.insert(key.as_bytes(), task_bytes.as_slice())?;
                for (k, v) in &entries {
                    cache.insert(k.as_bytes(), v.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error)?;
        // Finished work must survive a crash the moment it is reported done.
        self.db.flush()?;
        Ok(())
    }

    fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>, StoreError> {
        self.cache
            .get(key.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn cache_remove(&self, key: &str) -> Result<(), StoreError> {
        self.cache.remove(key.as_bytes())?;
        Ok(())
    }

    fn cache_entries(&self) -> Result<Vec<CacheRecord>, StoreError> {
        Self::scan(&self.cache, "")
    }

    fn put_hook_result(
        &self,
        job: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.hooks
            .insert(format!("{job}/{key}").as_bytes(), encode(value)?)?;
        // A decision is made once: it must outlive a crash right after it.
        self.hooks.flush()?;
        Ok(())
    }

    fn hook_result(&self, job: &str, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.hooks
            .get(format!("{job}/{key}").as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn put_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError> {
        self.workflows
            .insert(version.hash.as_bytes(), encode(version)?)?;
        Ok(())
    }

    fn workflow_version(&self, hash: &str) -> Result<Option<WorkflowVersion>, StoreError> {
        self.workflows
            .get(hash.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn put_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        let key = format!("{}/{}", file.workflow, file.content);
        self.files.insert(key.as_bytes(), encode(file)?)?;
        Ok(())
    }

    fn get_file(&self, workflow: &str, content: &str) -> Result<Option<FileRecord>, StoreError> {
        self.files
            .get(format!("{workflow}/{content}").as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn list_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        Self::scan(&self.files, "")
    }

    fn put_seen(&self, fingerprint: &str, content: &str) -> Result<(), StoreError> {
        self.seen
            .insert(fingerprint.as_bytes(), content.as_bytes())?;
        Ok(())
    }

    fn seen(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .seen
            .get(fingerprint.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn recover(&self) -> Result<u32, StoreError> {
        let mut fixed = 0;
        for mut job in self.list_jobs()? {
            if matches!(job.status, JobStatus::Running | JobStatus::Queued) {
                job.status = JobStatus::Interrupted;
                job.updated_ms = now_ms();
                self.put_job(&job)?;
                fixed += 1;
            }
            for mut task in self.tasks_of(&job.id)? {
                if task.status == TaskStatus::Running {
                    task.status = TaskStatus::Pending;
                    self.put_task(&task)?;
                }
            }
        }
        Ok(fixed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
