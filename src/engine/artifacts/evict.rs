//! Keeping the cache bounded, and honest: least-recently-used eviction down to a size that
//! never removes an entry a running job may still use, and a check of every entry's file
//! against its recorded size and SHA-256.

use std::sync::Arc;

use super::ArtifactStore;
use crate::store::{CacheIndex, CacheRecord, StoreError};

/// Entries and bytes the cache holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
}

pub fn usage(entries: &[CacheRecord]) -> Usage {
    Usage {
        entries: entries.len() as u64,
        bytes: entries.iter().map(|e| e.bytes).sum(),
    }
}

/// The entries to remove, least recently used first, until what is left fits `max_bytes`.
/// Entries used at or after `protect_from_ms` (when the oldest running job started) stay,
/// even if the cache then stays over its limit.
pub fn victims(entries: &[CacheRecord], max_bytes: u64, protect_from_ms: u64) -> Vec<CacheRecord> {
    let mut total = usage(entries).bytes;
    let mut by_age: Vec<&CacheRecord> = entries
        .iter()
        .filter(|e| e.last_used_ms.max(e.created_ms) < protect_from_ms)
        .collect();
    by_age.sort_by_key(|e| (e.last_used_ms.max(e.created_ms), e.key.clone()));
    let mut out = Vec::new();
    for e in by_age {
        if total <= max_bytes {
            break;
        }
        total = total.saturating_sub(e.bytes);
        out.push(e.clone());
    }
    out
}

/// What an eviction did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evicted {
    pub removed: u64,
    pub freed_bytes: u64,
    pub left: Usage,
}

/// Removes least-recently-used entries (record first, then file) until the cache fits
/// `max_bytes`, sparing what was used since `protect_from_ms`.
pub async fn evict(
    index: Arc<dyn CacheIndex>,
    store: &ArtifactStore,
    max_bytes: u64,
    protect_from_ms: u64,
) -> Result<Evicted, StoreError> {
    let _alone = store.guard.write().await;
    let idx = index.clone();
    let entries = blocking(move || idx.cache_entries()).await?;
    let doomed = victims(&entries, max_bytes, protect_from_ms);
    let mut done = Evicted::default();
    for e in &doomed {
        let (idx, key) = (index.clone(), e.key.clone());
        blocking(move || idx.cache_remove(&key)).await?;
        let _ = tokio::fs::remove_file(store.path_of(e)).await;
        done.removed += 1;
        done.freed_bytes += e.bytes;
    }
    let all = usage(&entries);
    done.left = Usage {
        entries: all.entries - done.removed,
        bytes: all.bytes - done.freed_bytes,
    };
    Ok(done)
}

/// One entry `verify` dropped, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dropped {
    pub key: String,
    pub reason: String,
}

/// Checks every entry's file: present, of its recorded size, of its recorded SHA-256 (when
/// recorded). A bad entry is removed (record and file) and listed.
pub async fn verify(
    index: Arc<dyn CacheIndex>,
    store: &ArtifactStore,
) -> Result<(Usage, Vec<Dropped>), StoreError> {
    let _alone = store.guard.write().await;
    let idx = index.clone();
    let entries = blocking(move || idx.cache_entries()).await?;
    let mut dropped = Vec::new();
    for e in &entries {
        let path = store.path_of(e);
        let owned = path.clone();
        let found = tokio::task::spawn_blocking(move || crate::media::hash::digest_file(&owned))
            .await
            .map_err(|err| StoreError::Blocking(err.to_string()))?;
        let problem = match found {
            Err(err) => Some(format!("{}: {err}", path.display())),
            Ok(d) if d.size != e.bytes => Some(format!("{} bytes, recorded {}", d.size, e.bytes)),
            Ok(d) if !e.sha256.is_empty() && d.sha256 != e.sha256 => {
                Some(format!("SHA-256 {}, recorded {}", d.sha256, e.sha256))
            }
            Ok(_) => None,
        };
        if let Some(reason) = problem {
            let (idx, key) = (index.clone(), e.key.clone());
            blocking(move || idx.cache_remove(&key)).await?;
            let _ = tokio::fs::remove_file(&path).await;
            dropped.push(Dropped {
                key: e.key.clone(),
                reason,
            });
        }
    }
    let kept: Vec<CacheRecord> = entries
        .into_iter()
        .filter(|e| !dropped.iter().any(|d| d.key == e.key))
        .collect();
    Ok((usage(&kept), dropped))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))?
}

/// Parses a size such as `50GiB`, `500 MB`, `1.5T` or `123456` (bytes). Binary and decimal
/// units both mean what they say.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a size such as 50GiB or 500MB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024f64.powi(2),
        "mb" => 1e6,
        "g" | "gib" => 1024f64.powi(3),
        "gb" => 1e9,
        "t" | "tib" => 1024f64.powi(4),
        "tb" => 1e12,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MB, GiB, TB…)"
            ))
        }
    };
    Ok((n * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, bytes: u64, used: u64) -> CacheRecord {
        CacheRecord {
            key: key.into(),
            chunk_md5: String::new(),
            chunk_sha256: String::new(),
            chunk_size: 0,
            path: key.into(),
            bytes,
            frames: 1,
            created_ms: 1,
            last_used_ms: used,
            sha256: String::new(),
        }
    }

    #[test]
    fn the_least_recently_used_go_first_and_a_running_jobs_entries_never() {
        let all = [
            entry("new", 40, 300),
            entry("old", 40, 100),
            entry("mid", 40, 200),
            entry("running", 40, 500),
        ];
        let keys = |v: Vec<CacheRecord>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(keys(victims(&all, 100, 400)), ["old", "mid"]);
        assert_eq!(keys(victims(&all, 1000, 400)), Vec::<String>::new());
        // Over the limit with only protected entries left: they stay.
        assert_eq!(keys(victims(&all, 0, 400)), ["old", "mid", "new"]);
        assert_eq!(keys(victims(&all, 0, 50)), Vec::<String>::new());
    }

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(parse_size("50GiB"), Ok(50 << 30));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
