//! Where ffmpeg and ffprobe live, and which ffmpeg this is (part of every cache key).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("{tool} was not found on PATH; install it with `sudo apt-get install ffmpeg`, or set {env} to its path")]
    Missing {
        tool: &'static str,
        env: &'static str,
    },
    #[error("{env}={path} is not a file; point it at the {tool} binary or unset it to use PATH")]
    BadOverride {
        tool: &'static str,
        env: &'static str,
        path: String,
    },
    #[error("could not run {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// First line of `ffmpeg -version`.
    pub version: String,
}

fn find_on_path(name: &'static str, env: &'static str) -> Result<PathBuf, FfmpegError> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(FfmpegError::BadOverride {
                tool: name,
                env,
                path: p.display().to_string(),
            })
        };
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(FfmpegError::Missing { tool: name, env })
}

/// Where ffmpeg is (`SPOOL_FFMPEG`, else PATH), without running it.
pub fn ffmpeg_path() -> Result<PathBuf, FfmpegError> {
    find_on_path("ffmpeg", "SPOOL_FFMPEG")
}

impl Tools {
    /// Finds ffmpeg and ffprobe (SPOOL_FFMPEG / SPOOL_FFPROBE override PATH) and reads the version.
    pub async fn locate() -> Result<Tools, FfmpegError> {
        let ffmpeg = find_on_path("ffmpeg", "SPOOL_FFMPEG")?;
        let ffprobe = find_on_path("ffprobe", "SPOOL_FFPROBE")?;
        let out = tokio::process::Command::new(&ffmpeg)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| FfmpegError::Spawn {
                tool: ffmpeg.display().to_string(),
                source,
            })?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string();
        Ok(Tools {
            ffmpeg,
            ffprobe,
            version,
        })
    }

    /// Runs ffprobe with `args` then the input path, collecting its output.
    pub async fn ffprobe(&self, args: &[&str], input: &Path) -> Result<Output, FfmpegError> {
        tokio::process::Command::new(&self.ffprobe)
            .args(args)
            // "file:" stops ffprobe reading a name like "a:b.mp4" as a protocol.
            .arg(file_url(input))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| FfmpegError::Spawn {
                tool: self.ffprobe.display().to_string(),
                source,
            })
    }
}

/// Prefixes a path with `file:` so that ffmpeg never treats it as a URL or an option.
pub fn file_url(path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from("file:");
    s.push(path.as_os_str());
    s
}

/// Convenience for building argv vectors from string slices.
pub fn os_args<I, S>(items: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    items
        .into_iter()
        .map(|s| s.as_ref().to_os_string())
        .collect()
}
