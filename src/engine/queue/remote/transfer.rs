//! How a worker moves media without shared storage: inputs come from the coordinator's
//! `GET /v1/blobs/<sha256>` (a broken download resumes with `Range`), results go back with
//! `PUT /v1/blobs/<sha256>`. Both ends check size and SHA-256. Blocking (ureq): callers run
//! these on the blocking pool.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the coordinator refused {what}: HTTP {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("blob {want} arrived as {got} ({size} bytes): dropped")]
    Mismatch {
        want: String,
        got: String,
        size: u64,
    },
    #[error("the coordinator cannot be reached: {0}")]
    Unreachable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TransferError {
    let context = context.into();
    move |source| TransferError::Io { context, source }
}

/// Tries per transfer; the next try resumes where the last one broke off.
const TRIES: u32 = 8;

#[derive(Clone)]
pub struct Coordinator {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Coordinator {
    pub fn new(base: &str, token: Option<String>) -> Coordinator {
        Coordinator {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout_read(Duration::from_secs(60))
                .timeout_write(Duration::from_secs(60))
                .build(),
        }
    }

    fn url(&self, sha256: &str) -> String {
        format!("{}/v1/blobs/{sha256}", self.base)
    }

    fn authorised(&self, req: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// Fetches blob `sha256` of `size` bytes into `dir/<sha256>`; returns its path and the
    /// bytes that crossed the network.
    pub fn download(
        &self,
        sha256: &str,
        size: u64,
        dir: &Path,
    ) -> Result<(PathBuf, u64), TransferError> {
        let dest = dir.join(sha256);
        let part = dir.join(format!("{sha256}.part"));
        let mut moved = 0;
        let mut last = TransferError::Unreachable("no try was made".into());
        for attempt in 0..TRIES {
            if attempt > 0 {
                std::thread::sleep(backoff(attempt));
            }
            match self.fetch_rest(sha256, size, &part) {
                Ok(n) => {
                    moved += n;
                    break;
                }
                Err((n, e @ TransferError::Unreachable(_))) => {
                    moved += n;
                    tracing::warn!(blob = %sha256, received = n, error = %e, "the download broke; asking for the rest");
                    last = e;
                    continue;
                }
                Err((_, e)) => return Err(e),
            }
        }
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if have != size {
            return Err(match last {
                TransferError::Unreachable(why) => TransferError::Unreachable(format!(
                    "{why} ({have} of {size} bytes of {sha256} arrived)"
                )),
                other => other,
            });
        }
        let got = sha256_of(&part)?;
        if got != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(TransferError::Mismatch {
                want: sha256.into(),
                got,
                size,
            });
        }
        std::fs::rename(&part, &dest).map_err(io(dest.display().to_string()))?;
        Ok((dest, moved))
    }

    /// One request for what `part` lacks. Err carries the bytes received before it broke.
    fn fetch_rest(
        &self,
        sha256: &str,
        size: u64,
        part: &Path,
    ) -> Result<u64, (u64, TransferError)> {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have >= size {
            if have > size {
                let _ = std::fs::remove_file(part);
                return Err((
                    0,
                    TransferError::Unreachable(
                        "a partial download grew too long; starting again".into(),
                    ),
                ));
            }
            return Ok(0);
        }
        let mut req = self.authorised(self.agent.get(&self.url(sha256)));
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = req.call().map_err(|e| (0, refusal(e, "the download")))?;
        let append = resp.status() == 206;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(|e| (0, io(part.display().to_string())(e)))?;
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut n: u64 = 0;
        loop {
            let read = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(r) => r,
                Err(e) => return Err((n, TransferError::Unreachable(e.to_string()))),
            };
            file.write_all(&buf[..read])
                .map_err(|e| (n, io(part.display().to_string())(e)))?;
            n += read as u64;
        }
        file.sync_data()
            .map_err(|e| (n, io(part.display().to_string())(e)))?;
        Ok(n)
    }

    /// Sends `path` as blob `sha256`; returns the bytes sent.
    pub fn upload(&self, path: &Path, sha256: &str) -> Result<u64, TransferError> {
        let size = std::fs::metadata(path)
            .map_err(io(path.display().to_string()))?
            .len();
        let mut last = TransferError::Unreachable("no try was made".into());
        for attempt in 0..TRIES {
            if attempt > 0 {
                std::thread::sleep(backoff(attempt));
            }
            let file = File::open(path).map_err(io(path.display().to_string()))?;
            let req = self
                .authorised(self.agent.put(&self.url(sha256)))
                .set("Content-Length", &size.to_string())
                .set("Content-Type", "application/octet-stream");
            match req.send(file) {
                Ok(_) => return Ok(size),
                Err(e) => match refusal(e, "the upload") {
                    e @ TransferError::Unreachable(_) => last = e,
                    e => return Err(e),
                },
            }
        }
        Err(last)
    }
}

/// 1, 2, 4 … 16 s between tries.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1 << (attempt - 1).min(4))
}

/// 5xx and transport errors may pass; 4xx are answers.
fn refusal(e: ureq::Error, what: &str) -> TransferError {
    match e {
        ureq::Error::Status(status, resp) if status < 500 => TransferError::Refused {
            what: what.into(),
            status,
            message: resp.into_string().unwrap_or_default(),
        },
        ureq::Error::Status(status, _) => TransferError::Unreachable(format!("HTTP {status}")),
        ureq::Error::Transport(t) => TransferError::Unreachable(t.to_string()),
    }
}

pub fn sha256_of(path: &Path) -> Result<String, TransferError> {
    crate::media::hash::sha256_file(path).map_err(io(path.display().to_string()))
}
