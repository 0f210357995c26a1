//! The inputs on a worker's disk. Tasks may read the same input: a file cut by frame range
//! gives every task the whole source, and twin chunks have one SHA-256. Each input is
//! fetched once, by one task while the others wait for it, and kept after its last task
//! ends, up to a byte budget (least recently used first out), so the next task of the same
//! file finds it here. An input is taken, in order, from this disk, from the shared root
//! (size and SHA-256 checked, once per file version), or downloaded (both checked).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::shared::SharedRoot;
use super::transfer::{sha256_of, Coordinator, TransferError};

type Entry = (Arc<tokio::sync::Mutex<()>>, usize);

pub(super) struct Inputs {
    dir: PathBuf,
    /// Bytes of inputs no task holds that may stay on disk.
    budget: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    held: HashMap<String, Entry>,
    /// Inputs no task holds, oldest first, with their sizes.
    idle: VecDeque<(String, u64)>,
    /// Shared-root files whose SHA-256 was checked: sha → (size, modified).
    checked: HashMap<String, (u64, SystemTime)>,
}

/// One task's hold on an input.
pub(super) struct InputHold {
    inputs: Arc<Inputs>,
    sha256: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// Where an input came from.
pub(super) enum Found {
    Here,
    Shared,
    Downloaded(Duration),
}

impl Inputs {
    pub fn new(dir: PathBuf, budget: u64) -> Arc<Inputs> {
        Arc::new(Inputs {
            dir,
            budget,
            state: Mutex::new(State::default()),
        })
    }

    pub fn hold(self: &Arc<Self>, sha256: &str) -> InputHold {
        let lock = match self.state.lock() {
            Ok(mut s) => {
                s.idle.retain(|(sha, _)| sha != sha256);
                let e = s
                    .held
                    .entry(sha256.to_string())
                    .or_insert_with(|| (Arc::new(tokio::sync::Mutex::new(())), 0));
                e.1 += 1;
                e.0.clone()
            }
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        };
        InputHold {
            inputs: self.clone(),
            sha256: sha256.to_string(),
            lock,
        }
    }

    /// The last hold on `sha256` ended: it stays while the budget allows.
    fn idle(&self, sha256: &str) {
        let size = std::fs::metadata(self.dir.join(sha256)).map_or(0, |m| m.len());
        let mut evict = Vec::new();
        if let Ok(mut s) = self.state.lock() {
            s.held.remove(sha256);
            if size > 0 {
                s.idle.push_back((sha256.to_string(), size));
            }
            let mut kept: u64 = s.idle.iter().map(|(_, b)| b).sum();
            while kept > self.budget {
                let Some((sha, bytes)) = s.idle.pop_front() else {
                    break;
                };
                kept -= bytes;
                evict.push(sha);
            }
        }
        for sha in evict {
            remove_quietly(&self.dir.join(sha));
        }
    }

    /// Whether the shared file was checked already as it is now.
    fn checked(&self, sha256: &str, size: u64, modified: SystemTime) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.checked.get(sha256) == Some(&(size, modified)))
    }

    fn mark_checked(&self, sha256: &str, size: u64, modified: SystemTime) {
        if let Ok(mut s) = self.state.lock() {
            s.checked.insert(sha256.to_string(), (size, modified));
        }
    }
}

impl InputHold {
    /// The input's path: kept here, in the shared root, or downloaded.
    pub async fn fetch(
        &self,
        coordinator: &Coordinator,
        root: Option<&SharedRoot>,
        size: u64,
    ) -> Result<(PathBuf, Found), TransferError> {
        let _one_at_a_time = self.lock.lock().await;
        let dir = self.inputs.dir.clone();
        let here = dir.join(&self.sha256);
        if tokio::fs::metadata(&here)
            .await
            .is_ok_and(|m| m.len() == size)
        {
            return Ok((here, Found::Here));
        }
        if let Some(path) = self.shared(root, size).await {
            return Ok((path, Found::Shared));
        }
        let (coordinator, sha) = (coordinator.clone(), self.sha256.clone());
        let began = Instant::now();
        let got = tokio::task::spawn_blocking(move || coordinator.download(&sha, size, &dir))
            .await
            .map_err(|e| TransferError::Unreachable(e.to_string()))?;
        got.map(|(path, _moved)| (path, Found::Downloaded(began.elapsed())))
    }

    /// The input in the shared root, when it is there whole and hashes to its name.
    async fn shared(&self, root: Option<&SharedRoot>, size: u64) -> Option<PathBuf> {
        let path = root?.chunk(&self.sha256);
        let meta = tokio::fs::metadata(&path).await.ok()?;
        let modified = meta.modified().ok()?;
        if meta.len() == size && self.inputs.checked(&self.sha256, size, modified) {
            return Some(path);
        }
        let p = path.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_of(&p))
            .await
            .ok()?
            .ok()?;
        if meta.len() != size || sha != self.sha256 {
            tracing::warn!(path = %path.display(), size = meta.len(), "the shared chunk is not the task's: downloading it instead");
            return None;
        }
        self.inputs.mark_checked(&self.sha256, size, modified);
        Some(path)
    }
}

impl Drop for InputHold {
    fn drop(&mut self) {
        let last = match self.inputs.state.lock() {
            Ok(mut s) => match s.held.get_mut(&self.sha256) {
                Some(e) if e.1 > 1 => {
                    e.1 -= 1;
                    false
                }
                _ => true,
            },
            Err(_) => true,
        };
        if last {
            self.inputs.idle(&self.sha256);
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a used input");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_stay_while_held_and_then_within_the_budget() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inputs = Inputs::new(dir.path().to_path_buf(), 5);
        for name in ["a", "b"] {
            std::fs::write(dir.path().join(name), b"xxx").expect("write");
        }
        let (a1, a2) = (inputs.hold("a"), inputs.hold("a"));
        drop(a1);
        assert!(
            dir.path().join("a").exists(),
            "the twin task still reads it"
        );
        drop(a2);
        assert!(dir.path().join("a").exists(), "kept: 3 bytes within 5");
        drop(inputs.hold("b"));
        assert!(
            !dir.path().join("a").exists(),
            "the older one goes past the budget"
        );
        assert!(dir.path().join("b").exists());
        let again = inputs.hold("b");
        drop(inputs.hold("a"));
        assert!(
            dir.path().join("b").exists(),
            "a held input is never evicted"
        );
        drop(again);
    }
}
