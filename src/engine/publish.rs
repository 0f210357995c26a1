//! Durable publishing: temp name → fsync → rename → fsync the directory.

use std::path::Path;

/// fsyncs a file's contents.
pub fn fsync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Renames `tmp` over `dest` and makes the rename itself durable.
/// Across filesystems (EXDEV) it copies to a temp name beside `dest` first.
pub fn rename_durably(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    fsync_file(tmp)?;
    if let Err(e) = std::fs::rename(tmp, dest) {
        if e.raw_os_error() != Some(nix::libc::EXDEV) {
            return Err(e);
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let near = dest.with_file_name(format!(".{name}.spool-tmp"));
        std::fs::copy(tmp, &near)?;
        fsync_file(&near)?;
        std::fs::rename(&near, dest)?;
        let _ = std::fs::remove_file(tmp);
    }
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes bytes to `dest` through a hidden temp file in the same directory.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.spool-tmp"));
    std::fs::write(&tmp, bytes)?;
    rename_durably(&tmp, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The hidden temp name an output is written under before it is verified.
pub fn temp_name(final_name: &str, ext: &str) -> String {
    format!(".{final_name}.spool-tmp.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let dest = dir.path().join("manifest.json");
        write_atomic(&dest, b"{}")?;
        write_atomic(&dest, b"{\"a\":1}")?;
        assert_eq!(std::fs::read(&dest)?, b"{\"a\":1}");
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }
}
