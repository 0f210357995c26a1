//! Hot reload for long-running spool processes: a changed workflow (or its script) is
//! validated again; a valid one replaces the current version for new jobs, an invalid one
//! is reported and the old version stays. Jobs already running keep the version they have.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::{load_file, LoadedWorkflow, WorkflowError};

/// What a reload did, for the caller's logs.
#[derive(Debug, Clone)]
pub enum Reload {
    /// A new valid version is now current.
    Replaced { hash: String },
    /// The file changed but is invalid; the previous version stays current.
    Rejected { error: String },
}

/// The current version of one workflow file, kept up to date while this value lives.
pub struct WatchedWorkflow {
    current: Arc<RwLock<Arc<LoadedWorkflow>>>,
    _watcher: notify::RecommendedWatcher,
}

/// Editors save by writing a new file and renaming it; wait for the burst to end.
const SETTLE: Duration = Duration::from_millis(200);

impl WatchedWorkflow {
    /// Loads `path` (it must be valid now) and watches it and its script for changes.
    /// `report` hears about every reload attempt.
    pub fn watch(
        path: &Path,
        report: impl Fn(Reload) + Send + 'static,
    ) -> Result<WatchedWorkflow, WorkflowError> {
        let first = load_file(path)?;
        let mut dirs = vec![parent_of(path)];
        if let Some(script) = first.script_path() {
            dirs.push(parent_of(&script));
        }
        let current = Arc::new(RwLock::new(Arc::new(first)));
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| watch_error(path, e))?;
        dirs.sort();
        dirs.dedup();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| watch_error(path, e))?;
        }
        let (file, shared) = (path.to_path_buf(), current.clone());
        std::thread::Builder::new()
            .name("spool-workflow-reload".into())
            .spawn(move || reload_loop(&file, &shared, &rx, &report))
            .map_err(|error| WorkflowError::Read {
                source_name: path.display().to_string(),
                error,
            })?;
        Ok(WatchedWorkflow {
            current,
            _watcher: watcher,
        })
    }

    /// The version new jobs should use.
    pub fn current(&self) -> Arc<LoadedWorkflow> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn watch_error(path: &Path, e: notify::Error) -> WorkflowError {
    WorkflowError::Read {
        source_name: path.display().to_string(),
        error: std::io::Error::other(format!("cannot watch for changes: {e}")),
    }
}

/// Runs until the watcher (and with it the sender) is dropped.
fn reload_loop(
    file: &Path,
    current: &RwLock<Arc<LoadedWorkflow>>,
    changes: &mpsc::Receiver<()>,
    report: &dyn Fn(Reload),
) {
    while changes.recv().is_ok() {
        while changes.recv_timeout(SETTLE).is_ok() {}
        let before = match current.read() {
            Ok(c) => c.content_hash.clone(),
            Err(_) => String::new(),
        };
        match load_file(file) {
            Ok(wf) if wf.content_hash == before => {}
            Ok(wf) => {
                let hash = wf.content_hash.clone();
                if let Ok(mut c) = current.write() {
                    *c = Arc::new(wf);
                }
                report(Reload::Replaced { hash });
            }
            Err(e) => report(Reload::Rejected {
                error: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(events: &mpsc::Receiver<Reload>) -> Option<Reload> {
        events.recv_timeout(Duration::from_secs(10)).ok()
    }

    #[test]
    fn valid_changes_replace_invalid_ones_are_reported_and_ignored() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.yaml");
        let body = |height: u32| {
            format!(
                "version: 1\nname: w\nprofiles:\n- {{name: a, codec: h264, height: {height}}}\n"
            )
        };
        std::fs::write(&path, body(240))?;
        let (tx, rx) = mpsc::channel();
        let watched = WatchedWorkflow::watch(&path, move |r| {
            let _ = tx.send(r);
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let first = watched.current();
        assert_eq!(first.workflow.profiles[0].height, 240);

        // Saved the way editors do: a new file renamed over the old one.
        let tmp = dir.path().join(".w.yaml.swp");
        std::fs::write(&tmp, body(360))?;
        std::fs::rename(&tmp, &path)?;
        assert!(matches!(wait_for(&rx), Some(Reload::Replaced { .. })));
        assert_eq!(watched.current().workflow.profiles[0].height, 360);

        std::fs::write(&path, body(361))?;
        match wait_for(&rx) {
            Some(Reload::Rejected { error }) => {
                assert!(error.contains("profiles[0].height"), "{error}")
            }
            other => unreachable!("expected a rejection, got {other:?}"),
        }
        assert_eq!(watched.current().workflow.profiles[0].height, 360);
        // A job that took the first version still holds it, unchanged.
        assert_eq!(first.workflow.profiles[0].height, 240);
        Ok(())
    }
}
