//! Which files in a watched folder are ready: never a partial upload, never spool's own
//! temp files, and only once the file has stopped changing for the settle window.
//! Pure (the clock is passed in), so every rule is unit-tested.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a name is never admitted (until it is renamed).
pub fn ignored_reason(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if name.starts_with('.') {
        // Also rsync's in-flight `.name.XXXXXX` and spool's own `.x.spool-tmp.*`.
        return Some("hidden or in-flight");
    }
    if name.contains(".spool-tmp") {
        return Some("spool temp file");
    }
    if name.ends_with('~') {
        return Some("editor backup");
    }
    for suffix in [
        ".part",
        ".partial",
        ".tmp",
        ".crdownload",
        ".download",
        ".filepart",
        ".!qb",
        ".swp",
    ] {
        if lower.ends_with(suffix) {
            return Some("partial upload");
        }
    }
    None
}

/// Files that travel with videos and are never videos themselves: taken only when a
/// workflow's `include` names them.
pub const SIDECAR_EXTENSIONS: &[&str] = &[
    "nfo", "txt", "srt", "vtt", "ass", "ssa", "sub", "idx", "sup", "lrc", "jpg", "jpeg", "png",
    "bmp", "webp", "tif", "tiff", "xml", "json", "yaml", "yml", "md5", "sha1", "sha256", "sfv",
    "par2", "log", "url", "ini", "db", "ds_store", "torrent", "nzb", "pdf", "html", "htm", "cue",
    "m3u", "m3u8", "pls", "md",
];

/// Why a name is, by default, a sidecar rather than a video.
pub fn sidecar_reason(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    SIDECAR_EXTENSIONS
        .contains(&ext.as_str())
        .then_some("a sidecar or text file (watch.include can name it)")
}

/// What identifies a file's current state on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub dev: u64,
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl Fingerprint {
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(Fingerprint {
            dev: m.dev(),
            inode: m.ino(),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still settling (or changed since last seen).
    Wait,
    /// Unchanged for the whole settle window (or closed after writing and confirmed).
    Ready,
}

struct Watching {
    print: Fingerprint,
    stable_since: Instant,
    closed_after_write: bool,
}

/// Tracks candidates until each is stable.
pub struct Settler {
    settle: Duration,
    /// After a close-write event the file only has to hold still this long.
    confirm: Duration,
    files: HashMap<PathBuf, Watching>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            confirm: settle.min(Duration::from_secs(2)),
            files: HashMap::new(),
        }
    }

    /// The writer closed the file: it may be complete, so a short confirmation is enough.
    pub fn closed_after_write(&mut self, path: &Path) {
        if let Some(w) = self.files.get_mut(path) {
            w.closed_after_write = true;
        }
    }

    pub fn observe(&mut self, path: &Path, print: Fingerprint, now: Instant) -> Verdict {
        let entry = self.files.entry(path.to_path_buf()).or_insert(Watching {
            print,
            stable_since: now,
            closed_after_write: false,
        });
        if entry.print != print {
            *entry = Watching {
                print,
                stable_since: now,
                closed_after_write: false,
            };
            return Verdict::Wait;
        }
        let needed = if entry.closed_after_write {
            self.confirm
        } else {
            self.settle
        };
        // An empty file that stays empty twice as long is a file in its own right (and will
        // fail with a clear reason); before that it is more likely a transfer not yet begun.
        let needed = if print.size == 0 { needed * 2 } else { needed };
        if now.duration_since(entry.stable_since) >= needed {
            Verdict::Ready
        } else {
            Verdict::Wait
        }
    }

    pub fn forget(&mut self, path: &Path) {
        self.files.remove(path);
    }

    pub fn pending(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_hidden_names_are_ignored() {
        for name in [
            ".movie.mp4.Xy12Ab",
            "movie.mp4.part",
            "a.MP4.crdownload",
            "x.mov~",
            "v.tmp",
            ".talk.h264-240p.mp4.spool-tmp.mp4",
        ] {
            assert!(ignored_reason(name).is_some(), "{name}");
        }
        for name in ["movie.mp4", "my part.mov", "tmp.mkv"] {
            assert_eq!(ignored_reason(name), None, "{name}");
        }
    }

    #[test]
    fn sidecars_are_known_by_extension() {
        for name in [
            "movie.nfo",
            "Movie.SRT",
            "poster.jpg",
            "notes.txt",
            "Thumbs.db",
        ] {
            assert!(sidecar_reason(name).is_some(), "{name}");
        }
        for name in ["movie.mkv", "clip.mp4", "noext", "a.txt.mp4"] {
            assert_eq!(sidecar_reason(name), None, "{name}");
        }
    }

    #[test]
    fn a_file_is_ready_only_after_holding_still_for_the_window() {
        let t0 = Instant::now();
        let p = Path::new("/w/a.mp4");
        let print = |size| Fingerprint {
            dev: 1,
            inode: 2,
            size,
            mtime_ns: size as i128,
        };
        let mut s = Settler::new(Duration::from_secs(10));
        assert_eq!(s.observe(p, print(100), t0), Verdict::Wait);
        assert_eq!(
            s.observe(p, print(200), t0 + Duration::from_secs(9)),
            Verdict::Wait
        );
        // It grew at 9 s: the clock starts again.
        assert_eq!(
            s.observe(p, print(200), t0 + Duration::from_secs(18)),
            Verdict::Wait
        );
        assert_eq!(
            s.observe(p, print(200), t0 + Duration::from_secs(19)),
            Verdict::Ready
        );
        // A close-write shortens the wait to the confirmation window.
        let q = Path::new("/w/b.mp4");
        assert_eq!(s.observe(q, print(5), t0), Verdict::Wait);
        s.closed_after_write(q);
        assert_eq!(
            s.observe(q, print(5), t0 + Duration::from_secs(2)),
            Verdict::Ready
        );
        // Empty files wait twice as long, then go ahead (to fail with a clear reason).
        let e = Path::new("/w/empty.mp4");
        assert_eq!(s.observe(e, print(0), t0), Verdict::Wait);
        assert_eq!(
            s.observe(e, print(0), t0 + Duration::from_secs(15)),
            Verdict::Wait
        );
        assert_eq!(
            s.observe(e, print(0), t0 + Duration::from_secs(20)),
            Verdict::Ready
        );
    }
}
