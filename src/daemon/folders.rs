//! One workflow's watched folders: events and rescans feed candidates; a candidate that
//! settles (or has its marker) is admitted once; a missing folder pauses, never deletes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::admission::{ignored_reason, sidecar_reason, Fingerprint, Settler, Verdict};
use super::{Daemon, Entry};

/// What the loop hears from notify.
enum Heard {
    Changed(PathBuf),
    Closed(PathBuf),
    /// Events were lost (the kernel's queue overflowed): only a rescan finds them.
    Overflow,
}

pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// Never take files from inside the output root.
    output: PathBuf,
    marker: Option<String>,
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("glob {p:?}: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

impl Filter {
    pub fn new(entry: &Entry) -> Result<Filter, String> {
        let w = &entry.watch;
        Ok(Filter {
            include: if w.include.is_empty() {
                None
            } else {
                Some(globs(&w.include)?)
            },
            exclude: globs(&w.exclude)?,
            output: entry.output.clone(),
            marker: w.marker.clone(),
        })
    }

    /// Why `path` is not a candidate, if it is not.
    pub fn refuse(&self, path: &Path) -> Option<String> {
        let name = path.file_name()?.to_string_lossy().into_owned();
        if let Some(why) = ignored_reason(&name) {
            return Some(why.into());
        }
        let included = self.include.as_ref().is_some_and(|g| g.is_match(&name));
        if let Some(why) = sidecar_reason(&name).filter(|_| !included) {
            return Some(why.into());
        }
        if self
            .marker
            .as_ref()
            .is_some_and(|m| name.ends_with(m.as_str()))
        {
            return Some("marker file".into());
        }
        if path.starts_with(&self.output) {
            return Some("inside the output folder".into());
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(&name)) {
            return Some("not matched by include".into());
        }
        if self.exclude.is_match(&name) || self.exclude.is_match(path) {
            return Some("matched by exclude".into());
        }
        None
    }

    fn marker_present(&self, path: &Path) -> bool {
        match &self.marker {
            None => true,
            Some(m) => {
                let mut p = path.as_os_str().to_owned();
                p.push(m);
                Path::new(&p).is_file()
            }
        }
    }
}

/// Regular files under `dir`; symlinks are never followed, so a symlink loop is harmless.
fn scan(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        if kind.is_dir() && recursive {
            if !e.file_name().to_string_lossy().starts_with('.') {
                scan(&path, recursive, out);
            }
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// Candidates in every folder being watched now.
fn scan_folders(
    watching: &HashMap<PathBuf, bool>,
    recursive: bool,
    filter: &Filter,
) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (folder, on) in watching {
        if *on {
            scan(folder, recursive, &mut found);
        }
    }
    found.retain(|p| filter.refuse(p).is_none());
    found
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Watches one workflow's folders until the daemon stops admitting.
pub async fn watch_loop(daemon: Arc<Daemon>, index: usize) -> Result<(), String> {
    let entry = &daemon.entries[index];
    let filter = Filter::new(entry)?;
    let settle = Duration::from_secs_f64(entry.watch.settle_seconds);
    let mut settler = Settler::new(settle);
    let (tx, mut rx) = mpsc::unbounded_channel::<Heard>();
    let mut watcher = if entry.watch.poll {
        None
    } else {
        let tx = tx.clone();
        Some(
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let event = match event {
                    Ok(e) => e,
                    // An error may mean lost events, too.
                    Err(_) => {
                        let _ = tx.send(Heard::Overflow);
                        return;
                    }
                };
                if event.need_rescan() {
                    let _ = tx.send(Heard::Overflow);
                }
                for path in event.paths {
                    let heard = match event.kind {
                        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                            Heard::Closed(path)
                        }
                        EventKind::Access(_) => continue,
                        _ => Heard::Changed(path),
                    };
                    let _ = tx.send(heard);
                }
            })
            .map_err(|e| format!("cannot watch: {e}"))?,
        )
    };
    let mode = if entry.watch.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    let rescan_every = if entry.watch.poll {
        Duration::from_secs_f64(entry.watch.rescan_seconds.min(5.0))
    } else {
        Duration::from_secs_f64(entry.watch.rescan_seconds)
    };
    // Folder → being watched now. A folder that vanishes is paused, not emptied.
    let mut watching: HashMap<PathBuf, bool> =
        entry.folders.iter().map(|f| (f.clone(), false)).collect();
    let mut candidates: HashSet<PathBuf> = HashSet::new();
    let mut last_scan: Option<Instant> = None;
    let stop = daemon.admitting.clone();
    loop {
        // Folders that appeared (or came back) are watched and scanned; missing ones paused.
        let mut rescan =
            last_scan.is_none_or(|t| t.elapsed() >= rescan_every) || daemon.take_rescan(index);
        for (folder, on) in watching.iter_mut() {
            let present = folder.is_dir();
            if present && !*on {
                if let Some(w) = watcher.as_mut() {
                    if let Err(e) = w.watch(folder, mode) {
                        tracing::warn!(folder = %folder.display(), error = %e, "cannot watch; relying on rescans");
                    }
                }
                *on = true;
                rescan = true;
                daemon.set_unavailable(folder, false);
            } else if !present && *on {
                if let Some(w) = watcher.as_mut() {
                    let _ = w.unwatch(folder);
                }
                *on = false;
                tracing::warn!(folder = %folder.display(), "watched folder is missing or unmounted; paused until it is back");
                daemon.set_unavailable(folder, true);
            } else if !present && last_scan.is_none() {
                daemon.set_unavailable(folder, true);
                tracing::warn!(folder = %folder.display(), "watched folder is missing; waiting for it");
            }
        }
        if rescan {
            candidates.extend(scan_folders(&watching, entry.watch.recursive, &filter));
            last_scan = Some(Instant::now());
        }
        let mut overflowed = false;
        while let Ok(heard) = rx.try_recv() {
            match heard {
                Heard::Overflow => overflowed = true,
                // A directory moved (or made) in: walked at once, never taken as a file.
                Heard::Changed(p) if is_real_dir(&p) => {
                    if entry.watch.recursive {
                        let mut found = Vec::new();
                        scan(&p, true, &mut found);
                        candidates.extend(found.into_iter().filter(|f| filter.refuse(f).is_none()));
                    }
                }
                Heard::Changed(p) if filter.refuse(&p).is_none() => {
                    candidates.insert(p);
                }
                Heard::Changed(p) => {
                    // A marker arriving makes its file ready.
                    if let Some(m) = &filter.marker {
                        let s = p.to_string_lossy();
                        if let Some(file) = s.strip_suffix(m.as_str()) {
                            candidates.insert(PathBuf::from(file));
                        }
                    }
                }
                Heard::Closed(p) if filter.refuse(&p).is_none() => {
                    settler.closed_after_write(&p);
                    candidates.insert(p);
                }
                Heard::Closed(_) => {}
            }
        }
        if overflowed {
            tracing::warn!(workflow = %entry.name, "file events were lost (queue overflow): rescanning now");
            candidates.extend(scan_folders(&watching, entry.watch.recursive, &filter));
            last_scan = Some(Instant::now());
        }
        let now = Instant::now();
        let mut admitted = Vec::new();
        let no_room = daemon.waiting_for_space();
        candidates.retain(|path| {
            // Only regular files (not a directory, nor a symlink to somewhere else).
            if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
                settler.forget(path);
                return false;
            }
            let Ok(print) = Fingerprint::of(path) else {
                // Gone (renamed, moved, deleted): nothing to do; the new name gets its own event.
                settler.forget(path);
                return false;
            };
            if daemon.known(index, &print) {
                settler.forget(path);
                return false;
            }
            let paused = entry
                .folders
                .iter()
                .any(|f| path.starts_with(f) && daemon.is_paused(f));
            let ready = if filter.marker.is_some() {
                filter.marker_present(path)
            } else {
                settler.observe(path, print, now) == Verdict::Ready
            };
            if ready && !paused && !no_room {
                settler.forget(path);
                admitted.push((path.clone(), print));
                return false;
            }
            true
        });
        daemon.set_settling(index, settler.pending());
        for (path, print) in admitted {
            daemon.admit(index, path, print);
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
