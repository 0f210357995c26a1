//! Operations on watched-file records shared by the CLI and the daemon's API.

use super::records::{now_ms, FileStatus, JobId};
use super::{StoreError, WatchRecords};

/// Which parked or failed files `retry` brings back.
#[derive(Debug, Clone, Copy)]
pub enum RetryTarget<'a> {
    Job(&'a JobId),
    Path(&'a str),
}

/// Makes every parked or failed file matching `target` eligible again (attempts reset);
/// the next scan takes it. Returns how many files changed.
pub fn retry_files(repo: &dyn WatchRecords, target: RetryTarget<'_>) -> Result<usize, StoreError> {
    let mut changed = 0;
    for mut f in repo.list_files()? {
        let hit = match target {
            RetryTarget::Job(j) => f.job.as_ref() == Some(j),
            RetryTarget::Path(p) => f.paths.iter().any(|x| x == p),
        };
        if hit && matches!(f.status, FileStatus::Parked | FileStatus::Failed) {
            f.status = FileStatus::Failed;
            f.attempts = 0;
            f.reason = None;
            f.updated_ms = now_ms();
            repo.put_file(&f)?;
            changed += 1;
        }
    }
    Ok(changed)
}
