//! The inputs on a worker's disk. Tasks in hand may read the same chunk (twin chunks have
//! one SHA-256, and a worker holds one task ahead): each input is fetched once, by one task
//! while the others wait for it, and removed when the last task holding it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::transfer::{Coordinator, TransferError};

type Entry = (Arc<tokio::sync::Mutex<()>>, usize);

pub(super) struct Inputs {
    dir: PathBuf,
    held: Mutex<HashMap<String, Entry>>,
}

/// One task's hold on an input; the file goes when the last hold is dropped.
pub(super) struct InputHold {
    inputs: Arc<Inputs>,
    sha256: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Inputs {
    pub fn new(dir: PathBuf) -> Arc<Inputs> {
        Arc::new(Inputs {
            dir,
            held: Mutex::new(HashMap::new()),
        })
    }

    pub fn hold(self: &Arc<Self>, sha256: &str) -> InputHold {
        let lock = match self.held.lock() {
            Ok(mut held) => {
                let e = held
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
}

impl InputHold {
    /// The input's path, downloaded unless a twin task has it here already (size checked;
    /// a download checks size and SHA-256). With the time a download took, if one ran.
    pub async fn fetch(
        &self,
        coordinator: &Coordinator,
        size: u64,
    ) -> Result<(PathBuf, Option<Duration>), TransferError> {
        let _one_at_a_time = self.lock.lock().await;
        let dir = self.inputs.dir.clone();
        let here = dir.join(&self.sha256);
        if tokio::fs::metadata(&here)
            .await
            .is_ok_and(|m| m.len() == size)
        {
            return Ok((here, None));
        }
        let (coordinator, sha) = (coordinator.clone(), self.sha256.clone());
        let began = Instant::now();
        let got = tokio::task::spawn_blocking(move || coordinator.download(&sha, size, &dir))
            .await
            .map_err(|e| TransferError::Unreachable(e.to_string()))?;
        got.map(|(path, _moved)| (path, Some(began.elapsed())))
    }
}

impl Drop for InputHold {
    fn drop(&mut self) {
        let last = match self.inputs.held.lock() {
            Ok(mut held) => match held.get_mut(&self.sha256) {
                Some(e) if e.1 > 1 => {
                    e.1 -= 1;
                    false
                }
                _ => {
                    held.remove(&self.sha256);
                    true
                }
            },
            Err(_) => true,
        };
        if last {
            remove_quietly(&self.inputs.dir.join(&self.sha256));
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
    fn an_input_held_twice_stays_until_both_holds_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inputs = Inputs::new(dir.path().to_path_buf());
        let file = dir.path().join("ab");
        std::fs::write(&file, b"x").expect("write");
        let a = inputs.hold("ab");
        let b = inputs.hold("ab");
        drop(a);
        assert!(file.exists(), "the twin task still reads it");
        drop(b);
        assert!(!file.exists());
    }
}
