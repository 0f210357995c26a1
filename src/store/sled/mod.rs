//! The sled implementation of every store trait. Records are versioned JSON envelopes;
//! changes that must go together go in one transaction.

mod jobs;

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::TransactionError;

use super::records::*;
use super::{
    CacheIndex, HookLog, JobStore, Maintenance, StoreError, TaskStore, WatchRecords,
    WorkflowVersions,
};

pub struct SledRepo {
    db: sled::Db,
    jobs: sled::Tree,
    /// `<md5>\0<out dir>\0<job id>` → (): finds the jobs of one input without a scan.
    jobs_by_input: sled::Tree,
    /// `<job id>` → () for every job running or queued: what recovery must look at.
    active: sled::Tree,
    /// Which indexes this store has (`indexes` → version), so an older store gets them once.
    meta: sled::Tree,
    tasks: sled::Tree,
    cache: sled::Tree,
    probes: sled::Tree,
    results: sled::Tree,
    hooks: sled::Tree,
    workflows: sled::Tree,
    files: sled::Tree,
    seen: sled::Tree,
    submissions: sled::Tree,
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

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl SledRepo {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledRepo, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| StoreError::open(dir, e))?;
        let repo = SledRepo {
            jobs: db.open_tree("jobs")?,
            jobs_by_input: db.open_tree("jobs_by_input")?,
            active: db.open_tree("active")?,
            meta: db.open_tree("meta")?,
            tasks: db.open_tree("tasks")?,
            cache: db.open_tree("cache")?,
            probes: db.open_tree("probes")?,
            results: db.open_tree("results")?,
            hooks: db.open_tree("hooks")?,
            workflows: db.open_tree("workflows")?,
            files: db.open_tree("files")?,
            seen: db.open_tree("seen")?,
            submissions: db.open_tree("submissions")?,
            db,
        };
        repo.build_missing_index()?;
        Ok(repo)
    }

    /// Opens an existing store only: a reader (`spool status`) must not create one.
    pub fn open_existing(dir: &Path) -> Result<SledRepo, StoreError> {
        if !dir.join("db").exists() {
            return Err(StoreError::NoState {
                dir: dir.display().to_string(),
            });
        }
        Self::open(dir)
    }

    /// Stores written before the indexes existed get them once.
    fn build_missing_index(&self) -> Result<(), StoreError> {
        const VERSION: &[u8] = b"2";
        if self.meta.get("indexes")?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        for job in self.list_jobs()? {
            self.jobs_by_input.insert(jobs::index_key(&job), &[])?;
            jobs::mark_active(&self.active, &job)?;
        }
        self.meta.insert("indexes", VERSION)?;
        Ok(())
    }

    fn scan<T: DeserializeOwned>(tree: &sled::Tree, prefix: &str) -> Result<Vec<T>, StoreError> {
        tree.scan_prefix(prefix)
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>, StoreError> {
        tree.get(key.as_bytes())?.map(|v| decode(&v)).transpose()
    }

    /// Inserts and flushes: durable at return.
    fn put_durable<T: Serialize>(
        tree: &sled::Tree,
        key: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        tree.insert(key.as_bytes(), encode(record)?.as_slice())?;
        tree.flush()?;
        Ok(())
    }
}

impl crate::store::Submissions for SledRepo {
    fn claim_submission(&self, key: &str, job: &JobId) -> Result<Option<JobId>, StoreError> {
        let swapped = self.submissions.compare_and_swap(
            key.as_bytes(),
            None::<&[u8]>,
            Some(job.as_str().as_bytes()),
        )?;
        let held = match swapped {
            Ok(()) => None,
            Err(e) => e
                .current
                .map(|v| JobId(String::from_utf8_lossy(&v).into_owned())),
        };
        self.submissions.flush()?;
        Ok(held)
    }
}

impl CacheIndex for SledRepo {
    fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>, StoreError> {
        Self::get(&self.cache, key)
    }

    fn cache_remove(&self, key: &str) -> Result<(), StoreError> {
        self.cache.remove(key.as_bytes())?;
        Ok(())
    }

    fn cache_put(&self, record: &CacheRecord) -> Result<(), StoreError> {
        self.cache
            .insert(record.key.as_bytes(), encode(record)?.as_slice())?;
        self.cache.flush()?;
        Ok(())
    }

    fn cache_touch(&self, key: &str, now_ms: u64) -> Result<(), StoreError> {
        // A lost race with a remove or another touch is fine: the entry is gone or fresh.
        let Some(old) = self.cache.get(key.as_bytes())? else {
            return Ok(());
        };
        let mut record: CacheRecord = decode(&old)?;
        record.last_used_ms = record.last_used_ms.max(now_ms);
        let new = encode(&record)?;
        let _ = self
            .cache
            .compare_and_swap(key.as_bytes(), Some(old), Some(new))?;
        Ok(())
    }

    fn cache_entries(&self) -> Result<Vec<CacheRecord>, StoreError> {
        Self::scan(&self.cache, "")
    }
}

impl crate::store::ProbeBook for SledRepo {
    fn probe_get(&self, key: &str) -> Result<Option<ProbeRecord>, StoreError> {
        Self::get(&self.probes, key)
    }

    fn probe_put(&self, record: &ProbeRecord) -> Result<(), StoreError> {
        Self::put_durable(&self.probes, &record.key, record)
    }
}

impl crate::store::ResultBook for SledRepo {
    fn result_get(&self, key: &str) -> Result<Option<ResultRecord>, StoreError> {
        Self::get(&self.results, key)
    }

    fn result_put(&self, record: &ResultRecord) -> Result<(), StoreError> {
        Self::put_durable(&self.results, &record.key, record)
    }
}

impl HookLog for SledRepo {
    fn put_hook_result(
        &self,
        job: &JobId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.hooks
            .insert(format!("{job}/{key}").as_bytes(), encode(value)?)?;
        // A decision is made once: it must outlive a crash right after it.
        self.hooks.flush()?;
        Ok(())
    }

    fn hook_result(&self, job: &JobId, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Self::get(&self.hooks, &format!("{job}/{key}"))
    }
}

impl WorkflowVersions for SledRepo {
    fn put_workflow_version(&self, version: &WorkflowVersion) -> Result<(), StoreError> {
        self.workflows
            .insert(version.hash.as_bytes(), encode(version)?)?;
        Ok(())
    }

    fn workflow_version(&self, hash: &str) -> Result<Option<WorkflowVersion>, StoreError> {
        Self::get(&self.workflows, hash)
    }
}

impl WatchRecords for SledRepo {
    fn put_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        let key = format!("{}/{}", file.workflow, file.content);
        self.files.insert(key.as_bytes(), encode(file)?)?;
        Ok(())
    }

    fn get_file(&self, workflow: &str, content: &str) -> Result<Option<FileRecord>, StoreError> {
        Self::get(&self.files, &format!("{workflow}/{content}"))
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
}

impl Maintenance for SledRepo {
    fn recover(&self) -> Result<u32, StoreError> {
        let mut fixed = 0;
        let active: Vec<JobRecord> = self
            .active
            .iter()
            .keys()
            .map(|k| {
                let id = JobId(String::from_utf8_lossy(&k?).into_owned());
                self.get_job(&id)
            })
            .collect::<Result<Vec<_>, StoreError>>()?
            .into_iter()
            .flatten()
            .collect();
        for mut job in active {
            if matches!(job.status, JobStatus::Running | JobStatus::Queued) {
                job.status = JobStatus::Interrupted;
                job.updated_ms = now_ms();
                self.save_job(&job)?;
                fixed += 1;
            }
            for mut task in self.tasks_of(&job.id)? {
                if task.status == TaskStatus::Running {
                    task.status = TaskStatus::Pending;
                    self.save_task(&task)?;
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
