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
    // Two links of one file (a cached output put at `tmp` while `dest` already is it, after a
    // crash between publishing and finishing): rename does nothing and leaves `tmp`.
    if same_file(tmp, dest) {
        std::fs::remove_file(tmp)?;
    }
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
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
    fn renaming_a_link_over_its_twin_leaves_no_temp() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (dest, tmp) = (dir.path().join("out.mp4"), dir.path().join(".out.tmp"));
        std::fs::write(&dest, b"same")?;
        std::fs::hard_link(&dest, &tmp)?;
        rename_durably(&tmp, &dest)?;
        assert!(!tmp.exists() && std::fs::read(&dest)? == b"same");
        Ok(())
    }

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
