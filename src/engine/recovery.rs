//! Start-up recovery: ffmpeg processes orphaned by a killed spool, and stale work files.

use std::path::Path;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills every ffmpeg whose arguments point into `work_dir`. Safe because the sled lock
/// guarantees no other spool uses this state directory, so such a process is an orphan.
pub fn kill_orphaned_ffmpeg(work_dir: &Path) -> usize {
    let needle = work_dir.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let is_ffmpeg = args.next().is_some_and(|a| a.ends_with(b"ffmpeg"));
        if is_ffmpeg && args.any(|a| a.windows(needle.len()).any(|w| w == needle)) {
            // spool starts each ffmpeg as its own group leader.
            if killpg(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

/// At start, with the state locked by this process: orphaned ffmpeg killed, and the work
/// directories of earlier runs removed (nothing of this run exists yet).
pub fn clean_work_dir(work_dir: &Path) {
    let killed = kill_orphaned_ffmpeg(work_dir);
    if killed > 0 {
        tracing::warn!(
            killed,
            "killed ffmpeg processes left running by a spool that died"
        );
    }
    if let Ok(entries) = std::fs::read_dir(work_dir) {
        for e in entries.flatten() {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove an old work directory");
            }
        }
    }
}

/// Uploads and intakes of remote results that a stopped coordinator left half done.
pub fn clean_blobs_dir(blobs: &Path) {
    let Ok(entries) = std::fs::read_dir(blobs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".upload-") || name.starts_with(".intake-") {
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %e.path().display(), error = %err, "a partial upload could not be removed");
            }
        }
    }
}
