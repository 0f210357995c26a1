//! Path helpers shared by the parts that confine what scripts may touch.

use std::path::{Path, PathBuf};

/// Canonicalizes the longest existing ancestor of `path` and appends the rest as written,
/// so a path that does not exist yet can still be checked against a root.
pub fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    out.extend(rest.into_iter().rev());
    out
}
