//! Which disk is full: checked where a command was allowed to write, so an error can name
//! the directory whose disk refused it.

use std::path::{Path, PathBuf};

/// Below this many free bytes a disk counts as full.
const FULL_BELOW: u64 = 1 << 20;
/// A disk that refused a write has room again once this much more is free.
const ROOM_AGAIN: u64 = 64 << 10;

/// Of `dirs`, the one whose disk has the least room, with its free bytes: after a write
/// was refused for lack of space, the disk to name.
pub fn fullest(dirs: &[PathBuf]) -> Option<(PathBuf, u64)> {
    dirs.iter()
        .filter_map(|d| free_bytes(d).map(|f| (d.clone(), f)))
        .min_by_key(|(_, f)| *f)
}

/// The fullest of `dirs`, if it is nearly full: evidence that a broken output is the
/// disk's fault.
pub fn full_disk(dirs: &[PathBuf]) -> Option<(PathBuf, u64)> {
    fullest(dirs).filter(|(_, f)| *f < FULL_BELOW)
}

/// Whether the disk holding `dir`, which had `free_then` bytes when it refused a write,
/// has room again.
pub fn has_room_again(dir: &Path, free_then: u64) -> bool {
    free_bytes(dir).is_some_and(|f| f > free_then.saturating_add(ROOM_AGAIN))
}

/// Free bytes on the disk holding `dir`, or its nearest existing ancestor (a job's output
/// directory may be gone by the time anyone asks).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|a| a.exists())?;
    let s = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}
