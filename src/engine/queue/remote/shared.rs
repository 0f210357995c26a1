//! Shared storage (`queue.shared` on the coordinator, `spool worker --shared DIR`): where
//! workers and the coordinator mount one file system (NFS or similar), chunks and results
//! move through it instead of over HTTP, with the same checks. Under `ROOT/PREFIX/`:
//! `chunks/<sha256>` holds the chunks of tasks in flight (placed by the coordinator before
//! it publishes the task, removed when the task lands), `results/<sha256>` the outputs
//! workers place for the coordinator's intake. A worker checks a shared chunk's size and
//! SHA-256 before it encodes it (and downloads it instead when it does not match); the
//! coordinator checks a shared result exactly as an upload.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SharedRoot {
    dir: PathBuf,
}

impl SharedRoot {
    pub fn new(root: &Path, prefix: &str) -> SharedRoot {
        SharedRoot {
            dir: root.join(prefix),
        }
    }

    pub fn chunk(&self, sha256: &str) -> PathBuf {
        self.dir.join("chunks").join(sha256)
    }

    pub fn result(&self, sha256: &str) -> PathBuf {
        self.dir.join("results").join(sha256)
    }

    pub fn prepare(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("chunks"))?;
        std::fs::create_dir_all(self.dir.join("results"))
    }

    /// Removes what a stopped coordinator left: its chunks (placed again as it resumes) and
    /// half-placed or half-taken results (finished ones stay for their late reports).
    pub fn clear_leftovers(&self) {
        let entries = |d: &str| {
            std::fs::read_dir(self.dir.join(d))
                .into_iter()
                .flatten()
                .flatten()
        };
        for e in entries("chunks") {
            let _ = std::fs::remove_file(e.path());
        }
        for e in entries("results").filter(|e| e.file_name().to_string_lossy().starts_with('.')) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Puts `src` at `dest` whole or not at all: a copy under a temporary name, synced, then
/// renamed; a hard link instead where `link` says no one else can write `dest` (a link
/// shares the file: a writer on the shared root could otherwise change the source, which
/// may be the user's original).
pub fn place(src: &Path, dest: &Path, link: bool) -> std::io::Result<()> {
    if dest.exists() {
        return Ok(());
    }
    // Unique among the processes and tasks that may place the same name at once.
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dest.with_file_name(format!(".part-{name}-{}-{n}", std::process::id()));
    let linked = match link {
        true => std::fs::hard_link(src, &temp),
        false => Err(std::io::Error::other("copy")),
    };
    let placed = linked.or_else(|_| {
        std::fs::copy(src, &temp)?;
        std::fs::File::open(&temp)?.sync_all()
    });
    let renamed = placed.and_then(|()| std::fs::rename(&temp, dest));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placed_file_appears_whole_under_its_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = SharedRoot::new(dir.path(), "spool");
        root.prepare().expect("prepare");
        let src = dir.path().join("src");
        std::fs::write(&src, b"chunk").expect("write");
        place(&src, &root.chunk("ab"), false).expect("place");
        assert_eq!(std::fs::read(root.chunk("ab")).expect("read"), b"chunk");
        std::fs::write(root.chunk("ab"), b"changed").expect("write");
        assert_eq!(
            std::fs::read(&src).expect("read"),
            b"chunk",
            "a copy, not a link"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("spool/chunks"))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
        root.clear_leftovers();
        assert!(!root.chunk("ab").exists());
    }
}
