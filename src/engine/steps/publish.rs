//! Publishing a step's files: copied beside the destination under a temp name, synced,
//! renamed into place.

use std::path::{Path, PathBuf};

use crate::engine::publish::{fsync_file, rename_durably, temp_name};

/// Moves a file a step wrote in `from` into the output directory, durably.
/// Returns its name there and its size.
pub fn publish_step_file(
    from: &Path,
    out_dir: &Path,
    given: &str,
) -> Result<(String, u64), String> {
    let rel = Path::new(given);
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "manifest.json" && n != "hls")
        .ok_or_else(|| format!("output {given:?}: not a publishable file name"))?;
    if rel.is_absolute() || rel.components().count() != 1 {
        return Err(format!(
            "output {given:?}: give a file name in the work directory"
        ));
    }
    let source = from.join(rel);
    let meta = std::fs::symlink_metadata(&source).map_err(|e| format!("output {given:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("output {given:?}: not a regular file"));
    }
    let dest = out_dir.join(&name);
    let tmp = out_dir.join(temp_name(&name, "step"));
    std::fs::copy(&source, &tmp).map_err(|e| format!("output {given:?}: {e}"))?;
    rename_durably(&tmp, &dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("publishing {}: {e}", dest.display())
    })?;
    Ok((name, meta.len()))
}

/// Publishes a directory tree as `out_dir/name`: copied beside it under a temp name,
/// every file synced, then swapped in by rename. Returns the bytes published.
pub fn publish_dir(from: &Path, out_dir: &Path, name: &str) -> std::io::Result<u64> {
    let tmp = out_dir.join(format!(".{name}.spool-tmp"));
    let old = out_dir.join(format!(".{name}.spool-old"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&old);
    let bytes = copy_tree(from, &tmp).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    let dest = out_dir.join(name);
    if dest.exists() {
        std::fs::rename(&dest, &old)?;
    }
    std::fs::rename(&tmp, &dest)?;
    std::fs::File::open(out_dir)?.sync_all()?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(bytes)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(from)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let target = to.join(path.file_name().unwrap_or_default());
        let kind = std::fs::symlink_metadata(&path)?.file_type();
        if kind.is_dir() {
            bytes += copy_tree(&path, &target)?;
        } else if kind.is_file() {
            bytes += std::fs::copy(&path, &target)?;
            fsync_file(&target)?;
        }
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(bytes)
}
