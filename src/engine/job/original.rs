//! The input's fate after a verified, durable success: kept, moved or deleted.

use std::path::Path;

use crate::workflow::Original;

/// Keeps, moves or deletes the input as the workflow says. Called only after success.
pub fn dispose_original(input: &Path, policy: &Original, base_dir: &Path) -> std::io::Result<()> {
    match policy {
        Original::Keep => Ok(()),
        Original::Delete => {
            std::fs::remove_file(input)?;
            sync_parent(input)
        }
        Original::MoveTo(dir) => {
            let dir = base_dir.join(dir);
            std::fs::create_dir_all(&dir)?;
            let name = input
                .file_name()
                .ok_or_else(|| std::io::Error::other("the input has no file name"))?;
            let dest = dir.join(name);
            if dest.exists() {
                return Err(std::io::Error::other(format!(
                    "{} already exists",
                    dest.display()
                )));
            }
            match std::fs::rename(input, &dest) {
                Ok(()) => {}
                // Another file system: copy, make it durable, then remove the source.
                Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                    std::fs::copy(input, &dest)?;
                    std::fs::File::open(&dest)?.sync_all()?;
                    std::fs::remove_file(input)?;
                }
                Err(e) => return Err(e),
            }
            sync_parent(&dest)?;
            sync_parent(input)
        }
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::File::open(p)?.sync_all(),
        _ => Ok(()),
    }
}
